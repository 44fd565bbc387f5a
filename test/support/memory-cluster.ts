import type { V1Pod } from '@kubernetes/client-node';
import { KubeError, type Cluster, type Kind, type KubeObject, type Watch } from '../../src/deployer/cluster.js';

/**
 * An in-memory Cluster for unit tests of the engine's paths (the integration tests run the same
 * paths on the real test bed). Workloads get `replicas` Ready pods with IPs at once; a Service's
 * ready endpoints are the pods its selector matches. Writes are recorded, and any call can be
 * made to fail, for the failure paths.
 */
export class MemoryCluster implements Cluster {
  private readonly objects = new Map<string, KubeObject>();
  private rv = 1;
  private ip = 1;
  private readonly watchers = new Set<() => void>();
  /** Every write, in order: "create Service ns/name". */
  readonly writes: string[] = [];
  /** Called before every call; throw to make it fail. */
  fault: (operation: string, kind: Kind | 'Pod' | 'EndpointSlice', name: string) => void = () => {};
  /** Called after a write succeeded (e.g. to fail "after it landed"). */
  afterWrite: (operation: string, kind: Kind, name: string) => void = () => {};
  /** What the endpoint controller has published of a Service's ready pods' addresses: override to make it lag. */
  publishedEndpoints: (serviceName: string, ready: string[]) => string[] = (_, ready) => ready;
  /** Acts as a Gateway's controller: HTTPRoutes get Accepted/ResolvedRefs status for their generation. */
  gatewayController = true;

  private key(kind: string, ns: string, name: string): string {
    return `${kind}/${ns}/${name}`;
  }

  object(kind: Kind, ns: string, name: string): KubeObject | undefined {
    return structuredClone(this.objects.get(this.key(kind, ns, name)));
  }

  names(kind: Kind, ns: string): string[] {
    return [...this.objects.keys()].filter((k) => k.startsWith(`${kind}/${ns}/`)).map((k) => k.split('/')[2]!).sort();
  }

  async get(kind: Kind, namespace: string, name: string): Promise<KubeObject | undefined> {
    this.fault('get', kind, name);
    return this.object(kind, namespace, name);
  }

  async create(kind: Kind, object: KubeObject): Promise<KubeObject> {
    const { namespace = '', name = '' } = object.metadata ?? {};
    this.fault('create', kind, name);
    const k = this.key(kind, namespace, name);
    if (this.objects.has(k)) throw new KubeError(`create ${kind}: 409 AlreadyExists`, 409, 'AlreadyExists');
    const stored = this.withStatus(kind, { ...structuredClone(object), metadata: { ...object.metadata, resourceVersion: String(++this.rv), uid: `uid-${this.rv}`, generation: 1 } });
    this.objects.set(k, stored);
    this.writes.push(`create ${kind} ${namespace}/${name}`);
    if (kind === 'Deployment' || kind === 'ReplicationController') this.startPods(stored);
    this.notify();
    this.afterWrite('create', kind, name);
    return structuredClone(stored);
  }

  async replace(kind: Kind, object: KubeObject): Promise<KubeObject> {
    const { namespace = '', name = '' } = object.metadata ?? {};
    this.fault('replace', kind, name);
    const k = this.key(kind, namespace, name);
    const existing = this.objects.get(k);
    if (!existing) throw new KubeError(`replace ${kind}: 404 NotFound`, 404, 'NotFound');
    if (object.metadata?.resourceVersion && object.metadata.resourceVersion !== existing.metadata?.resourceVersion) {
      throw new KubeError(`replace ${kind}: 409 Conflict`, 409, 'Conflict');
    }
    const changed = JSON.stringify(object.spec) !== JSON.stringify(existing.spec);
    const generation = Number(existing.metadata?.generation ?? 1) + (changed ? 1 : 0);
    const stored = this.withStatus(kind, { ...structuredClone(object), metadata: { ...object.metadata, resourceVersion: String(++this.rv), generation } });
    this.objects.set(k, stored);
    this.writes.push(`replace ${kind} ${namespace}/${name}`);
    this.notify();
    this.afterWrite('replace', kind, name);
    return structuredClone(stored);
  }

  async delete(kind: Kind, namespace: string, name: string): Promise<boolean> {
    this.fault('delete', kind, name);
    const k = this.key(kind, namespace, name);
    const existing = this.objects.get(k);
    if (!existing) return false;
    this.objects.delete(k);
    this.writes.push(`delete ${kind} ${namespace}/${name}`);
    if (kind === 'Deployment' || kind === 'ReplicationController') {
      for (const [pk, pod] of this.objects) if (pk.startsWith(`Pod/${namespace}/`) && pod.metadata?.labels?.['name'] === name) this.objects.delete(pk);
    }
    this.notify();
    this.afterWrite('delete', kind, name);
    return true;
  }

  async list(kind: Kind, namespace: string, labelSelector: string): Promise<KubeObject[]> {
    this.fault('list', kind, '');
    return [...this.objects.entries()].filter(([k, o]) => k.startsWith(`${kind}/${namespace}/`) && matches(o.metadata?.labels, labelSelector)).map(([, o]) => structuredClone(o));
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    this.fault('list', 'Pod', '');
    return this.pods(namespace, labelSelector);
  }

  async readyEndpoints(namespace: string, serviceName: string): Promise<string[]> {
    this.fault('list', 'EndpointSlice', serviceName);
    return this.endpointsOf(namespace, serviceName);
  }

  async watchReadyEndpoints(namespace: string, serviceName: string, onChange: (ready: string[]) => void): Promise<Watch> {
    const push = () => onChange(this.endpointsOf(namespace, serviceName));
    this.watchers.add(push);
    queueMicrotask(push);
    // publishedEndpoints may make the endpoint controller lag for a time: looked at every 10 ms.
    const lag = setInterval(push, 10);
    return { stop: () => { this.watchers.delete(push); clearInterval(lag); } };
  }

  private endpointsOf(namespace: string, serviceName: string): string[] {
    const svc = this.objects.get(this.key('Service', namespace, serviceName));
    const selector = svc?.spec?.selector as Record<string, string> | undefined;
    if (!selector) return [];
    return this.publishedEndpoints(serviceName, this.pods(namespace, Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(','))
      .filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((p) => p.status!.podIP!).sort());
  }

  async secretExists(): Promise<boolean> {
    return false;
  }

  async watchPods(namespace: string, labelSelector: string, onChange: (pods: V1Pod[]) => void): Promise<Watch> {
    const push = () => onChange(this.pods(namespace, labelSelector));
    this.watchers.add(push);
    queueMicrotask(push);
    return { stop: () => void this.watchers.delete(push) };
  }

  async proxyGet(): Promise<{ statusCode: number; body: string }> {
    return { statusCode: 200, body: '{"healthy": true}' };
  }

  async ping(): Promise<void> {}
  close(): void {}

  /** The Gateway's controller catches up: every HTTPRoute gets the status of its generation. */
  gatewayCatchesUp(): void {
    this.gatewayController = true;
    for (const [k, o] of this.objects) if (o.kind === 'HTTPRoute' || k.startsWith('HTTPRoute/')) this.objects.set(k, this.withStatus('HTTPRoute', o));
    this.notify();
  }

  private withStatus(kind: Kind, o: KubeObject): KubeObject {
    if (kind !== 'HTTPRoute' || !this.gatewayController) return o;
    const generation = o.metadata?.generation;
    const parents = (o.spec?.parentRefs ?? []).map((parentRef: unknown) => ({
      parentRef, controllerName: 'example.test/gateway',
      conditions: ['Accepted', 'ResolvedRefs'].map((type) => ({ type, status: 'True', observedGeneration: generation, reason: type })),
    }));
    return { ...o, status: { parents } };
  }

  /** Marks a pod (by name prefix) ready or not. */
  setReady(namePrefix: string, ready: boolean): void {
    for (const [, pod] of this.objects) {
      if (pod.kind === 'Pod' && pod.metadata?.name?.startsWith(namePrefix)) {
        pod.status = { ...pod.status, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
      }
    }
    this.notify();
  }

  private pods(namespace: string, labelSelector: string): V1Pod[] {
    return [...this.objects.entries()].filter(([k, o]) => k.startsWith(`Pod/${namespace}/`) && matches(o.metadata?.labels, labelSelector)).map(([, o]) => structuredClone(o) as V1Pod);
  }

  private startPods(workload: KubeObject): void {
    const { namespace = '', name = '' } = workload.metadata ?? {};
    const labels = workload.spec?.template?.metadata?.labels as Record<string, string>;
    for (let i = 0; i < (workload.spec?.replicas ?? 1); i++) {
      const podName = `${name}-pod${i}`;
      this.objects.set(this.key('Pod', namespace, podName), {
        kind: 'Pod', metadata: { name: podName, namespace, labels: { ...labels } },
        status: { phase: 'Running', podIP: `198.18.9.${this.ip++}`, conditions: [{ type: 'Ready', status: 'True' }] },
      });
    }
  }

  private notify(): void {
    for (const w of this.watchers) queueMicrotask(w);
  }
}

function matches(labels: Record<string, string> | undefined, selector: string): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels?.[k!] === v;
  });
}
