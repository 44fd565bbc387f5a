// Bringing the whole test bed up and down, and reporting on it. `up` is idempotent (a healthy bed is left
// alone but for add-ons — Traefik — which are added or repaired in place; a broken one is removed and rebuilt); `down` stops exactly the processes recorded in state.json
// and removes the network objects by name, so it also cleans up after a crash.
import { createServer } from 'node:net';
import { mkdir, rm, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig } from '@kubernetes/client-node';
import { NETWORK, VERSIONS, defaultClusters, loadConfig, lockPath, paths, type TestbedConfig, type TraefikPorts } from './config.js';
import { ensureBinaries, kwokModuleDir } from './binaries.js';
import { requireRoot, requireTools } from './commands.js';
import { ensureCluster2Locked, removeCluster2Locked } from './cluster2.js';
import {
  ADDON_COMPONENTS, CLUSTER2_COMPONENTS, components, schedulerConfig, schedulerConfigPath, type Component, type ComponentName,
} from './components.js';
import { httpGet } from './health.js';
import { fakeNode, writeKwokConfig } from './kwok.js';
import { describeError, isConflict, isNotFound, loadKubeConfig, waitForNodes } from './kube.js';
import { pkiPaths } from './pki.js';
import {
  CRD_SET_KEY, SERVED_APIS, TRAEFIK, ensureTraefikBinary, objectsHash, serverSideApply, traefikComponent, traefikCrdSet,
  traefikObjects, traefikStaticConfig, type CrdSet, type TraefikState,
} from './traefik.js';
import { withLock } from './lock.js';
import { netnsExists, netnsPids, setupNetwork, teardownNetwork, type NetworkNames } from './network.js';
import { createPki, writeKubeconfig } from './pki.js';
import { isAlive, isRunning, rssKiB, startDetached, stopProcess, type ProcessRecord } from './processes.js';
import { readState, StateWriter, type TestbedState } from './state.js';
import { waitUntil } from './wait.js';

export type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`testbed: ${line}\n`);

const LOCK_TIMEOUT_MS = 60 * 60_000; // may wait for another process's cold build
const NODES_TIMEOUT_MS = 60_000;
const SERVICE_ACCOUNT_TIMEOUT_MS = 60_000;
const CRDS_TIMEOUT_MS = 60_000;
const GATEWAY_TIMEOUT_MS = 60_000;

export interface UpOptions {
  log?: Log;
  /** Set by the test harness: the bed is torn down when the harness's last user releases it. */
  ownedByHarness?: boolean;
  /**
   * 2: also the second cluster (added to a running bed that lacks it). 1 never removes a second
   * cluster the bed has. Default: CUTOVER_TESTBED_CLUSTERS, else 1.
   */
  clusters?: 1 | 2;
}

export interface UpResult {
  state: TestbedState;
  alreadyUp: boolean;
}

/** Serialises up/down/harness bookkeeping across processes. */
export function withTestbedLock<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return withLock(lockPath(loadConfig().dir), what, LOCK_TIMEOUT_MS, fn);
}

export function up(opts: UpOptions = {}): Promise<UpResult> {
  return withTestbedLock('up', () => upLocked(opts));
}

export function down(opts: { log?: Log; keepLogs?: boolean; cluster?: 2 } = {}): Promise<void> {
  if (opts.cluster === 2) return withTestbedLock('down cluster 2', () => downCluster2Locked(opts));
  return withTestbedLock('down', () => downLocked(opts));
}

/** `down --cluster 2`: removes only the second cluster; cluster 1 keeps running. */
async function downCluster2Locked(opts: { log?: Log; keepLogs?: boolean }): Promise<void> {
  const log = opts.log ?? defaultLog;
  const p = paths(loadConfig().dir);
  const state = await readState(p.state);
  if (!state?.cluster2 && !state?.processes.some((r) => (CLUSTER2_COMPONENTS as readonly string[]).includes(r.name))) {
    log('the test bed has no second cluster');
    return;
  }
  await removeCluster2Locked(new StateWriter(p.state, state), log, opts.keepLogs ? { keepLogs: true } : {});
}

function networkNames(cfg: TestbedConfig): NetworkNames {
  return { netns: cfg.netns, vethHost: cfg.vethHost, vethPeer: cfg.vethPeer };
}

/** The network objects of a recorded bed. */
export function networkNamesOf(state: TestbedState): NetworkNames {
  return state.network ?? networkNames(state.config);
}

/**
 * The recorded bed, when it is complete and every core component answers its health check. Add-ons
 * (Traefik) do not count: a bed without them, or with a dead one, is completed by ensureAddonsLocked()
 * instead of being rebuilt.
 */
export async function healthyState(): Promise<TestbedState | undefined> {
  const state = await readState(paths(loadConfig().dir).state);
  if (!state?.ready) return undefined;
  // Cluster 2 is judged (and repaired) on its own by ensureCluster2Locked(): never a reason to rebuild cluster 1.
  const report = (await componentStatus(state)).filter((c) => !ADDON_COMPONENTS.includes(c.name as ComponentName) &&
    !(CLUSTER2_COMPONENTS as readonly string[]).includes(c.name));
  return report.every((c) => c.running && c.health === true) ? state : undefined;
}

export async function upLocked(opts: UpOptions = {}): Promise<UpResult> {
  const log = opts.log ?? defaultLog;
  const cfg = loadConfig();
  const p = paths(cfg.dir);

  const existing = await readState(p.state);
  // A bed that has a second cluster keeps it (also when it has to be rebuilt).
  const wantCluster2 = (opts.clusters ?? defaultClusters()) === 2 || existing?.cluster2 !== undefined;
  if (existing) {
    if (await healthyState()) {
      const writer = new StateWriter(p.state, existing);
      if (opts.ownedByHarness !== true && existing.ownedByHarness) {
        existing.ownedByHarness = false; // someone brought it up explicitly: it now stays up
        await writer.save();
      }
      // Never rebuilt for an add-on: what is missing is added to the running bed.
      const added = await ensureAddonsLocked(writer, log);
      added.push(...await ensureCluster2Locked(writer, log, wantCluster2));
      log(`already up (${existing.apiserverUrl}); ${added.length ? `added: ${added.join('; ')}` : 'nothing to do'}`);
      return { state: existing, alreadyUp: true };
    }
    log('found an incomplete or unhealthy test bed; removing it first');
    await downLocked({ log });
  } else if (await netnsExists(cfg.netns)) {
    log(`found leftovers of an earlier run (netns ${cfg.netns}); removing them first`);
    await downLocked({ log });
  }

  requireRoot();
  await requireTools(['ip', 'openssl']);
  await assertPortsFree(portsToCheck(cfg));
  const started = Date.now();
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const r = await fn();
    timings[name] = Date.now() - t;
    return r;
  };

  const bins = await step('binaries', () => ensureBinaries({ log }));
  // Before anything starts, so that a missing pip or proxy fails early.
  const traefikBinary = await step('traefik-binary', () => ensureTraefikBinary({ dir: cfg.traefikBinDir, log }));
  const crdSet = await step('crd-modules', () => traefikCrdSet());
  const kwokDir = await kwokModuleDir();
  await mkdir(p.logs, { recursive: true });
  await mkdir(p.users, { recursive: true });
  const apiserverUrl = `https://127.0.0.1:${cfg.ports.apiserver}`;
  const writer = new StateWriter(p.state, {
    version: 1,
    createdAt: new Date().toISOString(),
    ready: false,
    ownedByHarness: opts.ownedByHarness === true,
    config: cfg,
    bins,
    apiserverUrl,
    kubeconfig: p.kubeconfig,
    envFile: p.env,
    fakePodsSocket: p.fakePodsSocket,
    processes: [],
    nodes: [],
    timings,
  });
  const state = writer.state;
  await writer.save();

  try {
    await step('files', async () => {
      const pki = await createPki(p.pki, ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default',
        'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local', 'IP:198.19.0.1']);
      await writeKubeconfig(p.kubeconfig, apiserverUrl, pki);
      await writeKwokConfig(p.kwokConfig, kwokDir);
      await writeFile(schedulerConfigPath(cfg.dir), schedulerConfig(p.kubeconfig));
    });
    state.network = networkNames(cfg);
    await writer.save();
    await step('network', () => setupNetwork(networkNames(cfg)));

    const byName = new Map(components({ config: cfg, bins }).map((c) => [c.name, c]));
    const start = (name: Component['name']) => step(name, () => startComponent(byName.get(name)!, p.logs, writer, log));
    await start('etcd');
    await start('kube-apiserver');
    // In parallel; but let every start settle before failing, so the cleanup sees every started process.
    const settled = await Promise.allSettled([
      start('kube-controller-manager'),
      start('kube-scheduler'),
      start('kwok'),
      start('fake-pods-server').then(() => start('fake-pods-controller')),
      // Needs only the API server: CRDs, objects, the process, the Gateway programmed.
      step('traefik', () => ensureTraefik(writer, log, { binary: traefikBinary, crdSet })),
    ]);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;

    await step('nodes', async () => {
      const kc = loadKubeConfig(p.kubeconfig);
      const core = kc.makeApiClient(CoreV1Api);
      state.nodes = Array.from({ length: cfg.nodeCount }, (_, i) => `kwok-node-${i}`);
      for (const name of state.nodes) {
        await core.createNode({ body: fakeNode(name) }).catch((err: unknown) => {
          if (!isConflict(err)) throw new Error(`creating node ${name}: ${describeError(err)}`);
        });
      }
      await waitForNodes(kc, state.nodes, NODES_TIMEOUT_MS, join(p.logs, 'kwok.log'));
      await waitUntil('ServiceAccount default/default (created by kube-controller-manager)', async () => {
        await core.readNamespacedServiceAccount({ name: 'default', namespace: 'default' });
        return true;
      }, { timeoutMs: SERVICE_ACCOUNT_TIMEOUT_MS, intervalMs: 200, logFile: join(p.logs, 'kube-controller-manager.log') });
      log(`nodes ${state.nodes.join(', ')} Ready and untainted; ServiceAccount default/default present`);
    });
    if (wantCluster2) await step('cluster-2', () => ensureCluster2Locked(writer, log, true));

    await writeEnvFile(state);
    timings.total = Date.now() - started;
    state.ready = true;
    await writer.save();
    log(`up in ${(timings.total / 1000).toFixed(1)} s`);
    return { state, alreadyUp: false };
  } catch (err) {
    log(`up failed: ${(err as Error).message}`);
    log(`stopping what was started; logs kept in ${p.logs}`);
    await writer.save().catch(() => undefined);
    await downLocked({ log, keepLogs: true });
    throw err;
  }
}

export async function startComponent(c: Component, logDir: string, writer: StateWriter, log: Log): Promise<ProcessRecord> {
  const logFile = join(logDir, `${c.name}.log`);
  const rec = await startDetached({ name: c.name, command: c.command, args: c.args, log: logFile, cwd: c.cwd, env: c.env });
  writer.state.processes.push(rec);
  await writer.save();
  const t = Date.now();
  await waitUntil(`${c.name} to be ready (${c.endpoint})`, c.check, {
    timeoutMs: c.startTimeoutMs,
    intervalMs: 100,
    logFile,
    abortIf: () => (isRunning(rec) ? undefined : `${c.name} (pid ${rec.pid}) exited`),
  });
  log(`${c.name} ready (pid ${rec.pid}, ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  return rec;
}

export interface PortToCheck {
  port: number;
  env: string;
}

function traefikPortsToCheck(ports: TraefikPorts): PortToCheck[] {
  return [
    { port: ports.web, env: 'CUTOVER_TESTBED_TRAEFIK_PORT' },
    { port: ports.api, env: 'CUTOVER_TESTBED_TRAEFIK_API_PORT' },
  ];
}

function portsToCheck(cfg: TestbedConfig): PortToCheck[] {
  const p = cfg.ports;
  return [
    { port: p.etcdClient, env: 'CUTOVER_TESTBED_ETCD_PORT' },
    { port: p.etcdPeer, env: 'CUTOVER_TESTBED_ETCD_PEER_PORT' },
    { port: p.apiserver, env: 'CUTOVER_TESTBED_APISERVER_PORT' },
    { port: p.controllerManager, env: 'CUTOVER_TESTBED_KCM_PORT' },
    { port: p.scheduler, env: 'CUTOVER_TESTBED_SCHEDULER_PORT' },
    { port: p.kwok, env: 'CUTOVER_TESTBED_KWOK_PORT' },
    ...(cfg.traefikPorts ? traefikPortsToCheck(cfg.traefikPorts) : []),
  ];
}

// ---- Traefik (an add-on: added to a running bed, repaired alone) ----

/**
 * Adds what a healthy bed lacks (today: Traefik with its CRDs and objects) without touching the rest.
 * Called with the test-bed lock held. Returns what it did (empty when everything was in place).
 * A failure here leaves the core bed running.
 */
export async function ensureAddonsLocked(writer: StateWriter, log: Log): Promise<string[]> {
  return ensureTraefik(writer, log);
}

interface TraefikPrefetched {
  binary?: string;
  crdSet?: CrdSet;
}

/**
 * Idempotent: installs the binary if missing; applies the CRDs when this bed has not got this CRD set
 * (or the API server does not serve it); (re)starts Traefik when it is not running, unhealthy, or
 * started with another binary or configuration; applies the IngressClass, GatewayClass and Gateway
 * when missing or changed; waits until the Gateway is Programmed.
 */
async function ensureTraefik(writer: StateWriter, log: Log, pre: TraefikPrefetched = {}): Promise<string[]> {
  const state = writer.state;
  const cfg = loadConfig();
  const p = paths(state.config.dir);
  const started = Date.now();
  const done: string[] = [];
  const timings: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - t;
    }
  };
  const kc = loadKubeConfig(state.kubeconfig);

  const binary = pre.binary ?? await timed('binary', () => ensureTraefikBinary({ dir: state.config.traefikBinDir ?? cfg.traefikBinDir, log }));
  // Keep the ports of a Traefik this bed already has; a first add takes them from the environment.
  const ports: TraefikPorts = state.traefik?.ports ?? state.config.traefikPorts ?? cfg.traefikPorts!;
  const workDir = p.traefikDir;
  const t: TraefikState = {
    version: VERSIONS.traefik,
    binary,
    ports,
    url: `http://127.0.0.1:${ports.web}`,
    apiUrl: `http://127.0.0.1:${ports.api}`,
    workDir,
    configFile: join(workDir, 'traefik-static.yml'),
    ...(state.traefik?.crds ? { crds: state.traefik.crds } : {}),
    ...(state.traefik?.objects ? { objects: state.traefik.objects } : {}),
    timings: state.traefik?.timings ?? {},
  };

  // 1. CRDs (the CRD provider needs all of traefik.io's, the Gateway provider the standard channel).
  if (t.crds !== CRD_SET_KEY || (await apisMissing(state)).length > 0) {
    const set = pre.crdSet ?? await timed('crd-modules', () => traefikCrdSet());
    await timed('crds', async () => {
      await serverSideApply(state.bins.kubectl, state.kubeconfig, set.files);
      await waitForCrds(kc, set.names, CRDS_TIMEOUT_MS);
    });
    t.crds = set.key;
    done.push(`${set.names.length} CRDs (${set.key})`);
  }

  // 2. The process.
  await mkdir(workDir, { recursive: true });
  const config = traefikStaticConfig(ports);
  const component = traefikComponent(t, state.kubeconfig);
  const running = state.processes.find((r) => r.name === 'traefik' && isRunning(r));
  const onDisk = await readFile(t.configFile, 'utf8').catch(() => undefined);
  const why = !running ? (state.processes.some((r) => r.name === 'traefik') ? 'not running' : undefined)
    : running.command[0] !== binary ? `running ${running.command[0]}`
    : onDisk !== config ? 'configuration changed'
    : (await component.check()) !== true ? 'unhealthy' : '';
  if (why !== '') {
    if (why) log(`traefik: ${why}; starting it again`);
    if (running) log(`stopped traefik (pid ${running.pid}, ${await stopProcess(running)})`);
    state.processes = state.processes.filter((r) => r.name !== 'traefik');
    await assertPortsFree(traefikPortsToCheck(ports));
    await writeFile(t.configFile, config);
    state.traefik = t;
    await writer.save();
    const rec = await timed('start', () => startComponent(component, p.logs, writer, log)).catch(async (err: unknown) => {
      // Leave no half-started Traefik behind (on a running bed nothing else is stopped).
      for (const r of state.processes.filter((x) => x.name === 'traefik')) await stopProcess(r);
      state.processes = state.processes.filter((r) => r.name !== 'traefik');
      await writer.save();
      throw err;
    });
    done.push(`traefik ${VERSIONS.traefik} (pid ${rec.pid}, ${t.url})`);
  }

  // 3. IngressClass, GatewayClass, the Gateway's namespace, the Gateway.
  const objects = traefikObjects(ports);
  const hash = objectsHash(objects);
  if (t.objects !== hash || (await objectsMissing(kc)).length > 0) {
    await timed('objects', async () => {
      const file = join(workDir, 'objects.yaml');
      await writeFile(file, objects);
      await serverSideApply(state.bins.kubectl, state.kubeconfig, [file]);
    });
    t.objects = hash;
    done.push(`IngressClass ${TRAEFIK.ingressClass}, GatewayClass ${TRAEFIK.gatewayClass}, Gateway ${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName}`);
  }

  // 4. Traefik has taken the Gateway (proves its Gateway provider is connected and synced).
  await timed('gateway', () => waitForGatewayProgrammed(kc, GATEWAY_TIMEOUT_MS, join(p.logs, 'traefik.log')));

  if (done.length > 0) {
    timings.total = Date.now() - started;
    t.timings = timings;
    log(`traefik: added ${done.join('; ')} in ${(timings.total / 1000).toFixed(1)} s`);
  }
  state.traefik = t;
  if (state.config.traefikPorts === undefined) state.config.traefikPorts = ports;
  if (state.config.traefikBinDir === undefined) state.config.traefikBinDir = cfg.traefikBinDir;
  await writer.save();
  if (done.length > 0 && state.ready) await writeEnvFile(state);
  return done;
}

/** Resources of SERVED_APIS that the API server does not serve (cheap: two discovery GETs). */
async function apisMissing(state: TestbedState): Promise<string[]> {
  const pki = pkiPaths(paths(state.config.dir).pki);
  const missing: string[] = [];
  for (const [gv, plurals] of Object.entries(SERVED_APIS)) {
    const r = await httpGet(`${state.apiserverUrl}/apis/${gv}`, { pki }, 5_000).catch(() => undefined);
    const served = new Set(r?.status === 200 ? (JSON.parse(r.body) as { resources?: { name: string }[] }).resources?.map((x) => x.name) : []);
    missing.push(...plurals.filter((pl) => !served.has(pl)).map((pl) => `${pl}.${gv}`));
  }
  return missing;
}

async function waitForCrds(kc: KubeConfig, names: string[], timeoutMs: number): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  await waitUntil(`CRDs ${names.join(', ')} to be Established`, async () => {
    const pending: string[] = [];
    await Promise.all(names.map(async (name) => {
      const crd = await api.readCustomResourceDefinition({ name }).catch(() => undefined);
      if (!crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) pending.push(name);
    }));
    return pending.length === 0 || `not yet Established: ${pending.join(', ')}`;
  }, { timeoutMs, intervalMs: 200 });
}

async function objectsMissing(kc: KubeConfig): Promise<string[]> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const gw = { group: 'gateway.networking.k8s.io', version: 'v1' };
  const checks: [string, () => Promise<unknown>][] = [
    [`IngressClass ${TRAEFIK.ingressClass}`, () => kc.makeApiClient(NetworkingV1Api).readIngressClass({ name: TRAEFIK.ingressClass })],
    [`GatewayClass ${TRAEFIK.gatewayClass}`, () => custom.getClusterCustomObject({ ...gw, plural: 'gatewayclasses', name: TRAEFIK.gatewayClass })],
    [`Gateway ${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName}`, () => custom.getNamespacedCustomObject({
      ...gw, plural: 'gateways', namespace: TRAEFIK.gatewayNamespace, name: TRAEFIK.gatewayName })],
  ];
  const missing: string[] = [];
  for (const [what, get] of checks) {
    try {
      await get();
    } catch (err) {
      if (!isNotFound(err)) throw new Error(`reading ${what}: ${describeError(err)}`);
      missing.push(what);
    }
  }
  return missing;
}

interface Condition { type: string; status: string; reason?: string; message?: string }

async function waitForGatewayProgrammed(kc: KubeConfig, timeoutMs: number, logFile: string): Promise<void> {
  const custom = kc.makeApiClient(CustomObjectsApi);
  await waitUntil(`Gateway ${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName} to be Programmed by Traefik`, async () => {
    const gw = await custom.getNamespacedCustomObject({
      group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways',
      namespace: TRAEFIK.gatewayNamespace, name: TRAEFIK.gatewayName,
    }) as { metadata?: { generation?: number }; status?: { conditions?: (Condition & { observedGeneration?: number })[] } };
    const c = gw.status?.conditions?.find((x) => x.type === 'Programmed');
    if (c?.status === 'True' && c.observedGeneration === gw.metadata?.generation) return true;
    return c ? `Programmed=${c.status} (${c.reason ?? ''}: ${c.message ?? ''}, generation ${c.observedGeneration}/${gw.metadata?.generation})` : 'no Programmed condition yet';
  }, { timeoutMs, intervalMs: 100, logFile });
}

export async function assertPortsFree(ports: PortToCheck[]): Promise<void> {
  const busy: string[] = [];
  for (const { port, env } of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (!free) busy.push(`127.0.0.1:${port} (set ${env} to use another port)`);
  }
  if (busy.length) throw new Error(`ports in use: ${busy.join(', ')}`);
}

export async function writeEnvFile(state: TestbedState): Promise<void> {
  const c2 = state.cluster2?.ready ? state.cluster2 : undefined;
  const lines = [
    '# Written by `npm run testbed -- up`. Use: set -a; . .testbed/env; set +a   (or node --env-file=.testbed/env)',
    `KUBECONFIG=${state.kubeconfig}`,
    `CUTOVER_TESTBED_APISERVER=${state.apiserverUrl}`,
    `CUTOVER_TESTBED_KUBECTL=${state.bins.kubectl}`,
    `CUTOVER_TESTBED_ETCD_BIN=${state.bins.etcd}`,
    `CUTOVER_TESTBED_FAKE_PODS_SOCKET=${state.fakePodsSocket}`,
    `CUTOVER_TESTBED_POD_CIDR=${NETWORK.podCidr}`,
    `CUTOVER_TESTBED_SERVICE_CIDR=${NETWORK.serviceCidr}`,
    `CUTOVER_TESTBED_NODE_NAMES=${state.nodes.join(',')}`,
    ...(state.traefik ? [
      `CUTOVER_TESTBED_TRAEFIK_URL=${state.traefik.url}`,
      `CUTOVER_TESTBED_TRAEFIK_API_URL=${state.traefik.apiUrl}`,
      `CUTOVER_TESTBED_INGRESS_CLASS=${TRAEFIK.ingressClass}`,
      `CUTOVER_TESTBED_GATEWAY=${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName}`,
    ] : []),
    `CUTOVER_TESTBED_CLUSTERS=${c2 ? 2 : 1}`,
    ...(c2 ? [
      `CUTOVER_TESTBED_CLUSTER2_KUBECONFIG=${c2.kubeconfig}`,
      `CUTOVER_TESTBED_CLUSTER2_APISERVER=${c2.apiserverUrl}`,
      `CUTOVER_TESTBED_CLUSTER2_POD_CIDR=${c2.podCidr}`,
      `CUTOVER_TESTBED_CLUSTER2_SERVICE_CIDR=${c2.serviceCidr}`,
      `CUTOVER_TESTBED_CLUSTER2_NODE_NAMES=${c2.nodes.join(',')}`,
    ] : []),
    '',
  ];
  await writeFile(state.envFile, lines.join('\n'));
}

export async function downLocked(opts: { log?: Log; keepLogs?: boolean } = {}): Promise<void> {
  const log = opts.log ?? defaultLog;
  const cfg = loadConfig();
  const p = paths(cfg.dir);
  const state = await readState(p.state);
  // Reverse start order: clients before the API server, the API server before etcd.
  for (const rec of [...(state?.processes ?? [])].reverse()) {
    const how = await stopProcess(rec);
    if (how !== 'not running') log(`stopped ${rec.name} (pid ${rec.pid}, ${how})`);
  }
  const names = state?.network ?? networkNames(cfg);
  // Anything still inside our namespace was started by us (only the fake-pods server lives there).
  for (const pid of await netnsPids(names.netns)) {
    if (!isAlive(pid)) continue;
    const how = await stopProcess({ name: `process in netns ${names.netns}`, pid, startTime: '', command: [], log: '' });
    log(`stopped leftover pid ${pid} in netns ${names.netns} (${how})`);
  }
  for (const what of await teardownNetwork(names)) log(`removed ${what}`);
  await rm(p.fakePodsSocket, { force: true });
  if (opts.keepLogs) {
    for (const entry of await readdir(cfg.dir).catch(() => [] as string[])) {
      if (entry !== 'logs') await rm(join(cfg.dir, entry), { recursive: true, force: true });
    }
  } else {
    await rm(cfg.dir, { recursive: true, force: true });
  }
  log(state ? 'down' : 'down (there was no state file; removed leftovers by name)');
}

export interface ComponentStatus {
  name: string;
  pid: number | undefined;
  running: boolean;
  endpoint: string;
  health: string | true;
  rssMiB: number | undefined;
}

export async function componentStatus(state: TestbedState): Promise<ComponentStatus[]> {
  const comps = components({ config: state.config, bins: state.bins, traefik: state.traefik, cluster2: state.cluster2 });
  return Promise.all(comps.map(async (c) => {
    const rec = state.processes.find((r) => r.name === c.name);
    const running = rec !== undefined && isRunning(rec);
    const rss = running ? rssKiB(rec.pid) : undefined;
    return {
      name: c.name,
      pid: rec?.pid,
      running,
      endpoint: c.endpoint,
      health: running ? await c.check().catch((e: Error) => e.message) : 'not running',
      rssMiB: rss === undefined ? undefined : Math.round(rss / 1024),
    };
  }));
}

export interface StatusReport {
  state: TestbedState | undefined;
  components: ComponentStatus[];
  netns: boolean;
  up: boolean;
}

export async function status(): Promise<StatusReport> {
  const cfg = loadConfig();
  const state = await readState(paths(cfg.dir).state);
  const comps = state ? await componentStatus(state) : [];
  const netns = await netnsExists(state?.network?.netns ?? cfg.netns);
  // Traefik is part of the bed: a bed without it (from before it was) is completed by the next `up`.
  const up = !!state?.ready && !!state.traefik && (state.cluster2 === undefined || state.cluster2.ready) && netns && comps.length > 0 && comps.every((c) => c.running && c.health === true);
  return { state, components: comps, netns, up };
}

/**
 * Stops one component of a running test bed (e.g. the API server, for outage tests). The bed is
 * unhealthy until startStoppedComponent() brings the component back; `down` still cleans up.
 * Meanwhile a `useTestbed()` or `up` elsewhere finds an unhealthy bed and rebuilds it: prefer
 * restartComponent(), which holds the lock for the whole outage.
 */
export async function stopComponent(name: ComponentName, opts: { log?: Log } = {}): Promise<void> {
  await withTestbedLock(`stop ${name}`, async () => { await stopComponentLocked(name, opts.log ?? defaultLog); });
}

/** Starts a component that stopComponent() stopped, with the same flags, and waits until it is ready. */
export async function startStoppedComponent(name: ComponentName, opts: { log?: Log } = {}): Promise<void> {
  await withTestbedLock(`start ${name}`, () => startStoppedComponentLocked(name, opts.log ?? defaultLog));
}

export interface RestartComponentOptions {
  /**
   * How long the component is down, counted from the stop signal (the old process may take part
   * of it to exit) until the new process is started; default 0, i.e. as soon as the old one is gone.
   */
  downMs?: number;
  /** SIGTERM, then SIGKILL after this long (default 10 s, as `down`). */
  graceMs?: number;
  /**
   * Runs once the old process has exited; the start waits for it too. It must not take the
   * test-bed lock (useTestbed, up, down, stopComponent, …): the lock is held until the component
   * is back.
   */
  during?: () => Promise<void>;
  log?: Log;
}

export interface RestartComponentResult {
  /** From the stop signal until the old process was gone. */
  stopMs: number;
  /** From the stop signal until the new process was started. */
  downMs: number;
  /** From the start until the component's own readiness check passed. */
  startMs: number;
  /** How the old process ended. */
  stoppedBy: 'terminated' | 'killed';
}

/**
 * Stops a component, keeps it down, and starts it again, all under the test-bed lock: a
 * `useTestbed()` or `up` of another test process meanwhile waits for the restart instead of
 * finding an unhealthy bed and rebuilding it. The component is started again even if `during`
 * throws (its error is rethrown afterwards).
 */
export async function restartComponent(name: ComponentName, opts: RestartComponentOptions = {}): Promise<RestartComponentResult> {
  const log = opts.log ?? defaultLog;
  return withTestbedLock(`restart ${name}`, async () => {
    const t0 = Date.now();
    const how = await stopComponentLocked(name, log, opts.graceMs);
    const stopMs = Date.now() - t0;
    let duringError: unknown;
    const during = opts.during?.().catch((err: unknown) => { duringError = err; });
    await Promise.all([new Promise((r) => setTimeout(r, Math.max(0, (opts.downMs ?? 0) - stopMs))), during]);
    const downMs = Date.now() - t0;
    const t1 = Date.now();
    await startStoppedComponentLocked(name, log);
    const startMs = Date.now() - t1;
    if (duringError !== undefined) throw duringError;
    return { stopMs, downMs, startMs, stoppedBy: how === 'killed' ? 'killed' : 'terminated' };
  });
}

async function stopComponentLocked(name: ComponentName, log: Log, graceMs?: number): Promise<'terminated' | 'killed' | 'not running'> {
  const p = paths(loadConfig().dir);
  const state = await readState(p.state);
  if (!state) throw new Error('the test bed is down');
  const rec = state.processes.find((r) => r.name === name && isRunning(r));
  if (!rec) throw new Error(`${name} is not running`);
  const how = await stopProcess(rec, graceMs);
  const writer = new StateWriter(p.state, state);
  writer.state.processes = state.processes.filter((r) => r !== rec);
  await writer.save();
  log(`stopped ${name} (pid ${rec.pid}, ${how})`);
  return how;
}

async function startStoppedComponentLocked(name: ComponentName, log: Log): Promise<void> {
  const p = paths(loadConfig().dir);
  const state = await readState(p.state);
  if (!state) throw new Error('the test bed is down');
  if (state.processes.some((r) => r.name === name && isRunning(r))) return;
  const component = components({ config: state.config, bins: state.bins, traefik: state.traefik, cluster2: state.cluster2 })
    .find((c) => c.name === name);
  if (!component) throw new Error(`unknown component ${name}`);
  await startComponent(component, p.logs, new StateWriter(p.state, state), log);
}
