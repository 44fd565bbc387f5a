import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, DiscoveryV1Api, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import { request, type JsonResponse } from './http.js';
import { waitFor } from './wait.js';

/** Helpers for tests that drive real deployments through the API onto the test bed. */

export const FINAL = new Set(['DEPLOYED', 'FAILURE', 'UNDEPLOYED']);

export interface AppSpec {
  appName?: string;
  replicas?: number;
  /** FAKE_HEALTH of the fake pods (healthy | unhealthy | probe-false | error | slow | flap). */
  health?: string;
  /** FAKE_POD of the fake pods (never-ready | crashloop | imagepull). */
  podBehaviour?: string;
  [field: string]: unknown;
}

/** A descriptor for the test bed's fake pods: one container answering HTTP on 8080. */
export function fakeAppDescriptor(namespace: string, spec: AppSpec = {}): Record<string, unknown> {
  const { appName = 'shop', replicas = 2, health, podBehaviour, ...rest } = spec;
  const env = [
    ...(health ? [{ name: 'FAKE_HEALTH', value: health }] : []),
    ...(podBehaviour ? [{ name: 'FAKE_POD', value: podBehaviour }] : []),
  ];
  return {
    namespace, appName, newVersion: '#', replicas,
    useHealthCheck: true, healthCheckType: 'probe', healthCheckPath: 'health', healthCheckPort: 8080,
    podspec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ containerPort: 8080, name: 'http' }], ...(env.length ? { env } : {}) }] },
    ...rest,
  };
}

export class DeployClient {
  constructor(readonly base: string) {}

  async createDescriptor(namespace: string, descriptor: Record<string, unknown>): Promise<string> {
    const res = await request(`${this.base}/descriptors/?namespace=${namespace}`, { method: 'POST', json: descriptor });
    assert.equal(res.status, 201, res.text);
    return res.body.id as string;
  }

  async startDeployment(namespace: string, descriptorId: string): Promise<JsonResponse> {
    const res = await request(`${this.base}/deployments/?namespace=${namespace}&descriptorId=${descriptorId}`, { method: 'POST' });
    assert.equal(res.status, 202, res.text);
    return res;
  }

  async get(namespace: string, id: string): Promise<any> {
    const res = await request(`${this.base}/deployments/${id}/?namespace=${namespace}`);
    assert.equal(res.status, 200, res.text);
    return res.body;
  }

  /** Polls the record until its status is one of `statuses` (default: any final one). */
  async waitForStatus(namespace: string, id: string, statuses: Set<string> = FINAL, timeoutMs = 120_000): Promise<any> {
    return waitFor(`deployment ${id} to reach ${[...statuses].join('|')}`, async () => {
      const d = await this.get(namespace, id);
      return statuses.has(d.status) ? d : undefined;
    }, { timeoutMs, intervalMs: 100 });
  }

  /** Creates a descriptor, deploys it and waits for the outcome. */
  async deploy(namespace: string, spec: AppSpec = {}, timeoutMs = 120_000): Promise<any> {
    const descriptorId = await this.createDescriptor(namespace, fakeAppDescriptor(namespace, spec));
    const started = await this.startDeployment(namespace, descriptorId);
    return this.waitForStatus(namespace, started.body.id, FINAL, timeoutMs);
  }

  async logs(namespace: string, id: string): Promise<string> {
    const res = await request(`${this.base}/deployments/${id}/logs?namespace=${namespace}`);
    assert.equal(res.status, 200);
    return res.text;
  }
}

/** Reads what exists in the cluster for an app, for assertions. */
export class ClusterView {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly discovery: DiscoveryV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.networking = kc.makeApiClient(NetworkingV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
  }

  async workloads(namespace: string, app: string): Promise<string[]> {
    const deployments = await this.apps.listNamespacedDeployment({ namespace, labelSelector: `app=${app}` });
    const rcs = await this.core.listNamespacedReplicationController({ namespace, labelSelector: `app=${app}` });
    return [...deployments.items, ...rcs.items].filter((w) => !w.metadata?.deletionTimestamp).map((w) => w.metadata?.name ?? '').sort();
  }

  /**
   * Like `workloads`, with kinds. A workload cutover deleted stays listed, marked for deletion,
   * until the garbage collector has removed its pods (Foreground); it counts as gone here.
   */
  async workloadKinds(namespace: string, app: string): Promise<string[]> {
    const deployments = await this.apps.listNamespacedDeployment({ namespace, labelSelector: `app=${app}` });
    const rcs = await this.core.listNamespacedReplicationController({ namespace, labelSelector: `app=${app}` });
    const live = <T extends { metadata?: { deletionTimestamp?: Date } }>(items: T[]) => items.filter((w) => !w.metadata?.deletionTimestamp);
    return [...live(deployments.items).map((d) => `Deployment/${d.metadata?.name}`), ...live(rcs.items).map((r) => `ReplicationController/${r.metadata?.name}`)].sort();
  }

  async services(namespace: string): Promise<string[]> {
    return (await this.core.listNamespacedService({ namespace })).items.map((s) => s.metadata?.name ?? '').sort();
  }

  async service(namespace: string, name: string) {
    try {
      return await this.core.readNamespacedService({ name, namespace });
    } catch {
      return undefined;
    }
  }

  async ingress(namespace: string, name: string) {
    try {
      return await this.networking.readNamespacedIngress({ name, namespace });
    } catch {
      return undefined;
    }
  }

  async ingresses(namespace: string): Promise<string[]> {
    return (await this.networking.listNamespacedIngress({ namespace })).items.map((i) => i.metadata?.name ?? '').sort();
  }

  async pods(namespace: string, selector: string) {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: selector })).items.filter((p) => !p.metadata?.deletionTimestamp);
  }

  /** Ready endpoint IPs of a Service, from its EndpointSlices. */
  async endpointIps(namespace: string, service: string): Promise<string[]> {
    const slices = await this.discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${service}` });
    return slices.items.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses)).sort();
  }

  /** Waits until nothing of `app` but `keep` workloads remains (drains and cleanups are asynchronous). */
  async waitForWorkloads(namespace: string, app: string, expected: string[], timeoutMs = 60_000): Promise<void> {
    await waitFor(`workloads of ${app} to be [${expected.join(', ')}]`, async () => {
      const now = await this.workloads(namespace, app);
      return JSON.stringify(now) === JSON.stringify([...expected].sort()) ? true : undefined;
    }, { timeoutMs, intervalMs: 200 });
  }
}
