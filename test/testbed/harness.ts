// What integration tests import. useTestbed() brings the test bed up when it is not running and, on
// release, leaves it as it found it: a bed that the harness started is torn down when the last test
// process using it releases it; a bed started with `npm run testbed -- up` stays up.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { NETWORK, defaultClusters, loadConfig, paths } from './config.js';
import { ensureCluster2Locked } from './cluster2.js';
import { describeError, isNotFound, loadKubeConfig } from './kube.js';
import { isAlive } from './processes.js';
import { readState, StateWriter, type TestbedState } from './state.js';
import {
  downLocked, ensureAddonsLocked, healthyState, restartComponent, startStoppedComponent, stopComponent, upLocked, withTestbedLock,
  type Log, type RestartComponentOptions, type RestartComponentResult,
} from './testbed.js';
import { TRAEFIK } from './traefik.js';
import { waitFor, waitUntil } from './wait.js';
import { controlRequest, type FakePodState } from './fake-pods/protocol.js';

export { loadKubeConfig } from './kube.js';
export { waitFor, waitUntil } from './wait.js';
export type { FakePodState } from './fake-pods/protocol.js';

export interface Testbed {
  kubeconfigPath: string;
  /** Unix socket of the fake-pods server (listFakePods / waitForFakePods). */
  fakePodsSocket: string;
  apiserverUrl: string;
  /** kubectl built for the test bed (same version as the API server). */
  kubectl: string;
  /** Pod IPs come from here (198.18.0.0/16). */
  podCidr: string;
  /** Traefik v3 on loopback, serving Ingresses of class `traefik` and routes attached to the bed's Gateway (cluster 1 only). */
  traefik: TestbedTraefik;
  /** Cluster 2's admin kubeconfig; undefined when the bed has one cluster (see useTestbed's `clusters`). */
  cluster2KubeconfigPath: string | undefined;
  /** The second cluster; undefined when the bed has one cluster. */
  cluster2: TestbedCluster2 | undefined;
  release(): Promise<void>;
}

/**
 * The bed's second cluster: own API server, controllers, scheduler and kwok nodes (`kwok-c2-node-<i>`),
 * own Service and pod ranges; its pods are served by the same fake-pods server (`fakePodsSocket`).
 */
export interface TestbedCluster2 {
  kubeconfigPath: string;
  apiserverUrl: string;
  /** Pod IPs of cluster 2 come from here (198.19.64.0/18), disjoint from cluster 1's `podCidr`. */
  podCidr: string;
  /** ClusterIPs of cluster 2 (198.19.16.0/20). */
  serviceCidr: string;
  nodeNames: string[];
  /**
   * Outages of cluster 2's API server (serial tests only, like cluster 1's): cluster 1 and cluster 2's
   * pods keep running and serving meanwhile. See stopCluster2ApiServer() and friends.
   */
  stopApiServer(opts?: { log?: Log }): Promise<void>;
  startApiServer(opts?: { log?: Log }): Promise<void>;
  restartApiServer(opts?: RestartComponentOptions): Promise<RestartComponentResult>;
}

export interface TestbedTraefik {
  /** `http://127.0.0.1:<port>`: the web entryPoint. Send requests with a `Host:` header naming the app. */
  url: string;
  /** `http://127.0.0.1:<port>`: Traefik's API (`/api/http/routers`, …) and `/ping`. */
  apiUrl: string;
  /** IngressClass (controller traefik.io/ingress-controller); not the cluster's default class. */
  ingressClass: string;
  /** GatewayClass (controllerName traefik.io/gateway-controller). */
  gatewayClass: string;
  /** The bed's Gateway: an HTTP listener on the web entryPoint's port, routes from all namespaces. */
  gateway: { namespace: string; name: string; sectionName: string };
  /** A `parentRefs` entry for an HTTPRoute attached to the bed's Gateway. */
  parentRef: { group: 'gateway.networking.k8s.io'; kind: 'Gateway'; namespace: string; name: string; sectionName: string };
}

/**
 * `clusters: 2` also brings up (or adds to a running bed) the second cluster; default
 * CUTOVER_TESTBED_CLUSTERS, else 1. A bed that has a second cluster keeps it either way (and
 * `cluster2` is set whenever the bed has one).
 */
export async function useTestbed(opts: { log?: Log; clusters?: 1 | 2 } = {}): Promise<Testbed> {
  const dir = loadConfig().dir;
  const clusters = opts.clusters ?? defaultClusters();
  const log = opts.log ?? ((l: string) => process.stderr.write(`testbed: ${l}\n`));
  const p = paths(dir);
  const token = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const state = await withTestbedLock('useTestbed', async () => {
    const healthy = await healthyState();
    let s;
    if (healthy) {
      // A bed without Traefik (up from before it was part of the bed) gets it now, without a rebuild;
      // cluster 2 is added when asked for (or repaired when the bed has it and it is broken).
      const writer = new StateWriter(p.state, healthy);
      await ensureAddonsLocked(writer, log);
      await ensureCluster2Locked(writer, log, clusters === 2);
      s = healthy;
    } else {
      s = (await upLocked({ ownedByHarness: true, clusters, ...(opts.log ? { log: opts.log } : {}) })).state;
    }
    await mkdir(p.users, { recursive: true });
    await writeFile(join(p.users, token), `${process.pid}\n`);
    return s;
  });
  let released = false;
  return {
    kubeconfigPath: state.kubeconfig,
    fakePodsSocket: state.fakePodsSocket,
    apiserverUrl: state.apiserverUrl,
    kubectl: state.bins.kubectl,
    podCidr: NETWORK.podCidr,
    traefik: traefikOf(state),
    cluster2KubeconfigPath: state.cluster2?.kubeconfig,
    cluster2: state.cluster2 ? {
      kubeconfigPath: state.cluster2.kubeconfig,
      apiserverUrl: state.cluster2.apiserverUrl,
      podCidr: state.cluster2.podCidr,
      serviceCidr: state.cluster2.serviceCidr,
      nodeNames: state.cluster2.nodes,
      stopApiServer: stopCluster2ApiServer,
      startApiServer: startCluster2ApiServer,
      restartApiServer: restartCluster2ApiServer,
    } : undefined,
    async release() {
      if (released) return;
      released = true;
      await withTestbedLock('release', async () => {
        await rm(join(p.users, token), { force: true });
        const current = await readState(p.state);
        if (!current?.ownedByHarness) return;
        if ((await liveUsers(p.users)).length === 0) await downLocked(opts.log ? { log: opts.log } : {});
      });
    },
  };
}

function traefikOf(state: TestbedState): TestbedTraefik {
  if (!state.traefik) throw new Error('the test bed has no Traefik (run npm run testbed -- up)');
  const gateway = { namespace: TRAEFIK.gatewayNamespace, name: TRAEFIK.gatewayName, sectionName: TRAEFIK.listenerName };
  return {
    url: state.traefik.url,
    apiUrl: state.traefik.apiUrl,
    ingressClass: TRAEFIK.ingressClass,
    gatewayClass: TRAEFIK.gatewayClass,
    gateway,
    parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', ...gateway },
  };
}

/** Registered users whose process is still alive (a crashed test leaves a file with a dead pid). */
async function liveUsers(usersDir: string): Promise<string[]> {
  const entries = await readdir(usersDir).catch(() => [] as string[]);
  return entries.filter((e) => isAlive(Number(e.split('-')[0])));
}

// ---- namespaces ----

export interface TestNamespace {
  name: string;
  /** Deletes the namespace and waits until it is gone (all its pods included). */
  delete(): Promise<void>;
}

/**
 * Creates `<prefix>-<random>` and waits for its `default` ServiceAccount: until that exists the
 * ServiceAccount admission plugin rejects pods in the namespace.
 */
export async function createTestNamespace(kc: KubeConfig, prefix: string, timeoutMs = 30_000): Promise<TestNamespace> {
  return createNamespaceNamed(kc, `${prefix}-${randomBytes(3).toString('hex')}`.toLowerCase().slice(0, 63), timeoutMs);
}

/** The same as createTestNamespace, under a given name (the same namespace on the bed's other cluster). */
export async function createNamespaceNamed(kc: KubeConfig, name: string, timeoutMs = 30_000): Promise<TestNamespace> {
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name, labels: { 'cutover.dev/testbed-test': 'true' } } } });
  await waitUntil(`ServiceAccount ${name}/default`, async () => {
    await core.readNamespacedServiceAccount({ name: 'default', namespace: name });
    return true;
  }, { timeoutMs, intervalMs: 100 });
  return { name, delete: () => deleteNamespace(kc, name) };
}

export async function deleteNamespace(kc: KubeConfig, name: string, timeoutMs = 60_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  try {
    await core.deleteNamespace({ name });
  } catch (err) {
    if (isNotFound(err)) return;
    throw new Error(`deleting namespace ${name}: ${describeError(err)}`);
  }
  await waitUntil(`namespace ${name} to be gone`, async () => {
    try {
      const ns = await core.readNamespace({ name });
      const stuck = ns.status?.conditions?.filter((c) => c.status === 'True').map((c) => c.type) ?? [];
      return `phase ${ns.status?.phase}${stuck.length ? `, ${stuck.join(',')}` : ''}`;
    } catch (err) {
      if (isNotFound(err)) return true;
      throw err;
    }
  }, { timeoutMs, intervalMs: 200 });
}

// ---- pods ----

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' &&
    pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** Waits until `count` pods matching the selector are Running and Ready; returns them. */
export async function waitForReadyPods(
  kc: KubeConfig, namespace: string, labelSelector: string, count: number, timeoutMs = 30_000,
): Promise<V1Pod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  return waitFor(`${count} ready pods (${labelSelector}) in ${namespace}`, async () => {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector })).items
      .filter((p) => !p.metadata?.deletionTimestamp);
    const ready = pods.filter(isPodReady);
    return ready.length === count && pods.length === count
      ? { done: true as const, value: ready }
      : { done: false as const, reason: `${ready.length} ready of ${pods.length} (want ${count})` };
  }, { timeoutMs, intervalMs: 100 });
}

/** Polls one pod until `check` returns true (or times out with the last reason it returned). */
export async function waitForPod(
  kc: KubeConfig, namespace: string, name: string, what: string, check: (pod: V1Pod) => string | true, timeoutMs = 30_000,
): Promise<V1Pod> {
  const core = kc.makeApiClient(CoreV1Api);
  return waitFor(`pod ${namespace}/${name} ${what}`, async () => {
    const pod = await core.readNamespacedPod({ name, namespace });
    const r = check(pod);
    return r === true ? { done: true as const, value: pod } : { done: false as const, reason: r };
  }, { timeoutMs, intervalMs: 100 });
}

// ---- fake pods ----

/** The pods the fake-pods server currently answers for (with per-pod request counters). */
export async function listFakePods(fakePodsSocket: string): Promise<FakePodState[]> {
  const r = await controlRequest(fakePodsSocket, { type: 'list' });
  if (r.type !== 'pods') throw new Error(`fake-pods server: unexpected reply ${JSON.stringify(r)}`);
  return r.pods;
}

/**
 * Waits until the fake-pods server answers for (`serving: true`) or has dropped (`serving: false`) these
 * IPs. The server learns about pods a few milliseconds after the API server reports them Ready, so a
 * test that sends traffic right after seeing Ready should wait here first.
 */
export async function waitForFakePods(
  fakePodsSocket: string, ips: string[], opts: { serving?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  const serving = opts.serving ?? true;
  await waitUntil(`fake pods ${serving ? 'serving' : 'to drop'} ${ips.join(', ')}`, async () => {
    const known = new Set((await listFakePods(fakePodsSocket)).map((p) => p.ip));
    const wrong = ips.filter((ip) => known.has(ip) !== serving);
    return wrong.length === 0 || `${serving ? 'not yet served' : 'still served'}: ${wrong.join(', ')}`;
  }, { timeoutMs: opts.timeoutMs ?? 10_000, intervalMs: 50 });
}

// ---- outages ----

/**
 * Stops cluster 2's kube-apiserver (SIGTERM, then SIGKILL after 10 s). Cluster 2 stays unhealthy until
 * startCluster2ApiServer(); meanwhile a `useTestbed()` or `up` of another process would repair cluster 2
 * (cluster 1 is never touched for it): prefer restartCluster2ApiServer(), which holds the test-bed lock.
 */
export function stopCluster2ApiServer(opts: { log?: Log } = {}): Promise<void> {
  return stopComponent('c2-kube-apiserver', opts);
}

/** Starts cluster 2's kube-apiserver again with the same flags; returns once its /readyz says ok. */
export function startCluster2ApiServer(opts: { log?: Log } = {}): Promise<void> {
  return startStoppedComponent('c2-kube-apiserver', opts);
}

/**
 * Stops cluster 2's kube-apiserver, keeps it down (`downMs`, `during`) and starts it again, under the
 * test-bed lock (restartComponent, as cluster 1's restartApiServer() in test/support/faults.ts).
 */
export function restartCluster2ApiServer(opts: RestartComponentOptions = {}): Promise<RestartComponentResult> {
  return restartComponent('c2-kube-apiserver', opts);
}

export { restartComponent, stopComponent, startStoppedComponent } from './testbed.js';
export type { RestartComponentOptions, RestartComponentResult } from './testbed.js';
export type { ComponentName } from './components.js';
