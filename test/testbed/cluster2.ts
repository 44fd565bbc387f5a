// The optional second cluster (`up --clusters 2`, docs/testbed.md §Second cluster): its own kube-apiserver
// (data in the bed's etcd under its own prefix), kube-controller-manager, kube-scheduler and kwok, its own
// PKI and kubeconfig, Service range and pod range. Its pods live in the bed's network namespace and the
// one fake-pods controller follows both API servers. It is added to and removed from a running bed
// without touching cluster 1 (only the fake-pods controller is restarted, which the server rides out:
// it keeps its table until the new controller pushes a full one).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { CLUSTER2, cluster2NodeCount, cluster2Paths, cluster2Ports, paths } from './config.js';
import {
  CLUSTER2_COMPONENTS, components, fakePodsControllerSources, schedulerConfig, type Component, type ComponentName,
} from './components.js';
import { controlRequest } from './fake-pods/protocol.js';
import { fakeNode } from './kwok.js';
import { describeError, isConflict, loadKubeConfig, waitForNodes } from './kube.js';
import { addPodRange, removePodRange } from './network.js';
import { createPki, writeKubeconfig } from './pki.js';
import { isRunning, stopProcess } from './processes.js';
import type { Cluster2State, StateWriter, TestbedState } from './state.js';
import { assertPortsFree, networkNamesOf, startComponent, writeEnvFile, type Log } from './testbed.js';
import { waitUntil } from './wait.js';

const NODES_TIMEOUT_MS = 60_000;
const SERVICE_ACCOUNT_TIMEOUT_MS = 60_000;
const CONTROLLER_SYNC_TIMEOUT_MS = 30_000;

const isCluster2Component = (name: string) => (CLUSTER2_COMPONENTS as readonly string[]).includes(name);

/** Cluster 2's components that are not running or not healthy (empty: healthy). */
async function cluster2Problems(state: TestbedState): Promise<string[]> {
  if (!state.cluster2) return ['not added'];
  const problems: string[] = [];
  if (!state.cluster2.ready) problems.push('not (fully) up');
  for (const c of components({ config: state.config, bins: state.bins, cluster2: state.cluster2 }).filter((x) => isCluster2Component(x.name))) {
    const rec = state.processes.find((r) => r.name === c.name);
    if (!rec || !isRunning(rec)) problems.push(`${c.name} not running`);
    else {
      const h = await c.check().catch((e: Error) => e.message);
      if (h !== true) problems.push(`${c.name}: ${h}`);
    }
  }
  return problems;
}

/**
 * Makes the bed's cluster count what is wanted: adds cluster 2 when `want` and it is missing, repairs
 * it (removed and added again) when it is present but unhealthy, and makes sure the fake-pods
 * controller follows it. Never removes a healthy cluster 2 (`up` without `--clusters 2` leaves it).
 * Called with the test-bed lock held, on a bed whose cluster 1 is healthy. Returns what it did.
 */
export async function ensureCluster2Locked(writer: StateWriter, log: Log, want: boolean): Promise<string[]> {
  const state = writer.state;
  if (!want && !state.cluster2) return [];
  if (state.cluster2) {
    const problems = await cluster2Problems(state);
    if (problems.length === 0) {
      const done: string[] = [];
      if (await ensureControllerFollows(writer, log)) done.push('fake-pods controller now follows cluster 2');
      return done;
    }
    log(`cluster 2 is not healthy (${problems.join('; ')}); removing it first`);
    await removeCluster2Locked(writer, log);
  }
  return [await addCluster2(writer, log)];
}

async function addCluster2(writer: StateWriter, log: Log): Promise<string> {
  const state = writer.state;
  const started = Date.now();
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - t;
    }
  };
  const p = paths(state.config.dir);
  const cp = cluster2Paths(state.config.dir);
  const ports = cluster2Ports();
  await assertPortsFree([
    { port: ports.apiserver, env: 'CUTOVER_TESTBED_CLUSTER2_APISERVER_PORT' },
    { port: ports.controllerManager, env: 'CUTOVER_TESTBED_CLUSTER2_KCM_PORT' },
    { port: ports.scheduler, env: 'CUTOVER_TESTBED_CLUSTER2_SCHEDULER_PORT' },
    { port: ports.kwok, env: 'CUTOVER_TESTBED_CLUSTER2_KWOK_PORT' },
  ]);
  const c2: Cluster2State = {
    name: CLUSTER2.name,
    ready: false,
    createdAt: new Date().toISOString(),
    dir: cp.dir,
    apiserverUrl: `https://127.0.0.1:${ports.apiserver}`,
    kubeconfig: cp.kubeconfig,
    pki: cp.pki,
    ports,
    podCidr: CLUSTER2.podCidr,
    serviceCidr: CLUSTER2.serviceCidr,
    etcdPrefix: CLUSTER2.etcdPrefix,
    nodes: Array.from({ length: cluster2NodeCount() }, (_, i) => `${CLUSTER2.nodePrefix}${i}`),
    timings,
  };
  state.cluster2 = c2;
  await writer.save();
  log(`adding cluster 2 (API server ${c2.apiserverUrl}, pods ${c2.podCidr}, services ${c2.serviceCidr}, etcd prefix ${c2.etcdPrefix})`);

  try {
    await step('files', async () => {
      await mkdir(cp.kwokHome, { recursive: true });
      const pki = await createPki(cp.pki, ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default',
        'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', `IP:${CLUSTER2.kubernetesServiceIp}`],
      'cutover-testbed-cluster-2-ca');
      await writeKubeconfig(cp.kubeconfig, c2.apiserverUrl, pki, 'cutover-testbed-cluster-2');
      await writeFile(cp.schedulerConfig, schedulerConfig(cp.kubeconfig));
    });
    await step('network', () => addPodRange(networkNamesOf(state), c2.podCidr));
    // Leftovers of an earlier cluster 2 (other CA, other service-account key) would confuse the new one.
    await step('etcd-prefix', () => deleteEtcdPrefix(state, c2.etcdPrefix));

    const byName = new Map(components({ config: state.config, bins: state.bins, cluster2: c2 }).map((c) => [c.name, c]));
    const start = (name: ComponentName) => step(name, () => startComponent(byName.get(name)!, p.logs, writer, log));
    await start('c2-kube-apiserver');
    const settled = await Promise.allSettled([start('c2-kube-controller-manager'), start('c2-kube-scheduler'), start('c2-kwok')]);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;

    await step('nodes', async () => {
      const kc = loadKubeConfig(c2.kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      for (const name of c2.nodes) {
        await core.createNode({ body: fakeNode(name) }).catch((err: unknown) => {
          if (!isConflict(err)) throw new Error(`creating node ${name} on cluster 2: ${describeError(err)}`);
        });
      }
      await waitForNodes(kc, c2.nodes, NODES_TIMEOUT_MS, join(p.logs, 'c2-kwok.log'));
      await waitUntil('cluster 2: ServiceAccount default/default (created by kube-controller-manager)', async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      }, { timeoutMs: SERVICE_ACCOUNT_TIMEOUT_MS, intervalMs: 200, logFile: join(p.logs, 'c2-kube-controller-manager.log') });
    });
    await step('fake-pods-controller', () => ensureControllerFollows(writer, log));
  } catch (err) {
    log(`adding cluster 2 failed: ${(err as Error).message}; removing what was added (cluster 1 keeps running)`);
    await removeCluster2Locked(writer, log, { keepLogs: true }).catch((e: Error) => log(`removing cluster 2 failed too: ${e.message}`));
    throw err;
  }
  timings.total = Date.now() - started;
  c2.ready = true;
  await writer.save();
  if (state.ready) await writeEnvFile(state);
  log(`cluster 2 up in ${(timings.total / 1000).toFixed(1)} s (nodes ${c2.nodes.join(', ')})`);
  return `cluster 2 (${c2.apiserverUrl}, pods ${c2.podCidr}) in ${(timings.total / 1000).toFixed(1)} s`;
}

/**
 * Removes cluster 2 from a running bed: the fake-pods controller stops following it (its pods are no
 * longer served), its processes are stopped, its pod range unrouted, its etcd keys deleted and
 * `.testbed/cluster-2/` removed. Cluster 1 is not touched. Called with the test-bed lock held.
 */
export async function removeCluster2Locked(writer: StateWriter, log: Log, opts: { keepLogs?: boolean } = {}): Promise<void> {
  const state = writer.state;
  const c2 = state.cluster2;
  const recs = state.processes.filter((r) => isCluster2Component(r.name));
  if (!c2 && recs.length === 0) return;
  delete state.cluster2;
  await writer.save();
  // First, so the server drops cluster 2's pods from a complete table of cluster 1's.
  await ensureControllerFollows(writer, log);
  // Clients before the API server (a restarted API server's record comes last in `processes`), so that
  // it has no open watches left and exits at SIGTERM.
  const order = (name: string) => (CLUSTER2_COMPONENTS as readonly string[]).indexOf(name);
  for (const rec of [...recs].sort((a, b) => order(b.name) - order(a.name))) {
    const how = await stopProcess(rec);
    if (how !== 'not running') log(`stopped ${rec.name} (pid ${rec.pid}, ${how})`);
  }
  state.processes = state.processes.filter((r) => !recs.includes(r));
  await writer.save();
  if (c2) {
    for (const what of await removePodRange(networkNamesOf(state), c2.podCidr)) log(`removed ${what}`);
    await deleteEtcdPrefix(state, c2.etcdPrefix).catch((err: Error) => log(`could not delete cluster 2's etcd keys: ${err.message}`));
    await rm(c2.dir, { recursive: true, force: true });
  }
  if (!opts.keepLogs) {
    for (const name of CLUSTER2_COMPONENTS) await rm(join(paths(state.config.dir).logs, `${name}.log`), { force: true });
  }
  if (state.ready) await writeEnvFile(state);
  log('cluster 2 removed');
}

/**
 * Restarts the fake-pods controller when it does not follow exactly the bed's API servers (cluster 1,
 * and cluster 2 when present), and waits until the new one has pushed a full table. Returns whether it
 * restarted it.
 */
async function ensureControllerFollows(writer: StateWriter, log: Log): Promise<boolean> {
  const state = writer.state;
  const ctx = { config: state.config, bins: state.bins, cluster2: state.cluster2 };
  const want = servers(fakePodsControllerSources(ctx));
  const rec = state.processes.find((r) => r.name === 'fake-pods-controller' && isRunning(r));
  if (rec && sameSet(servers(rec.command), want)) return false;
  const component = components(ctx).find((c) => c.name === 'fake-pods-controller') as Component;
  if (rec) {
    log(`restarting fake-pods-controller (pid ${rec.pid}) to follow ${want.join(' and ')}: ${await stopProcess(rec)}`);
  }
  state.processes = state.processes.filter((r) => r.name !== 'fake-pods-controller');
  const since = new Date().toISOString();
  await startComponent(component, paths(state.config.dir).logs, writer, log);
  // Its readiness check (the server has had a sync) passed at once: the old controller synced before.
  await waitUntil('the new fake-pods controller to push its first table', async () => {
    const r = await controlRequest(state.fakePodsSocket, { type: 'status' }, 2_000);
    if (r.type !== 'status') return `unexpected reply ${r.type}`;
    return (r.status.lastSyncAt ?? '') >= since || `last sync ${r.status.lastSyncAt ?? 'never'}`;
  }, { timeoutMs: CONTROLLER_SYNC_TIMEOUT_MS, intervalMs: 50, logFile: join(paths(state.config.dir).logs, 'fake-pods-controller.log') });
  return true;
}

function servers(args: string[]): string[] {
  return args.flatMap((a, i) => (a === '--server' && args[i + 1] !== undefined ? [args[i + 1]!] : []));
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Deletes every key under `${prefix}/` in the bed's etcd (its JSON gateway; no etcdctl needed). */
async function deleteEtcdPrefix(state: TestbedState, prefix: string): Promise<void> {
  const from = Buffer.from(`${prefix}/`);
  const to = Buffer.from(from);
  to[to.length - 1] = from[from.length - 1]! + 1; // '/' + 1 = '0': the end of the keys that start with `${prefix}/`
  const body = JSON.stringify({ key: from.toString('base64'), range_end: to.toString('base64') });
  const url = `http://127.0.0.1:${state.config.ports.etcdClient}/v3/kv/deleterange`;
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, timeout: 10_000, headers: { 'content-type': 'application/json' } }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { t += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: t }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`POST ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
  if (status !== 200) throw new Error(`etcd deleterange ${prefix}/: HTTP ${status}: ${text.slice(0, 200)}`);
}
