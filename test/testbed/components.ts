// The test bed's processes: command lines and readiness checks, in start order. Everything listens on
// 127.0.0.1 except the fake-pods server, which lives in the pod network namespace.
import { join } from 'node:path';
import { CLUSTER2, NETWORK, TESTBED_SRC, REPO_ROOT, paths, type TestbedConfig } from './config.js';
import type { BinaryPaths } from './binaries.js';
import { healthy } from './health.js';
import { pkiPaths, type Pki } from './pki.js';
import type { Cluster2State } from './state.js';
import { controlRequest } from './fake-pods/protocol.js';
import { NODE_LEASE_SECONDS } from './kwok.js';
import { traefikComponent, type TraefikState } from './traefik.js';

export type ComponentName =
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kwok'
  | 'fake-pods-server'
  | 'fake-pods-controller'
  | 'traefik'
  | Cluster2ComponentName;

/** Cluster 2's own control plane (it shares etcd, the netns and the fake pods with cluster 1). */
export type Cluster2ComponentName = 'c2-kube-apiserver' | 'c2-kube-controller-manager' | 'c2-kube-scheduler' | 'c2-kwok';

/** In start order. */
export const CLUSTER2_COMPONENTS: readonly Cluster2ComponentName[] = [
  'c2-kube-apiserver', 'c2-kube-controller-manager', 'c2-kube-scheduler', 'c2-kwok',
];

export interface Component {
  name: ComponentName;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Health endpoint (shown by `status`). */
  endpoint: string;
  /** true when ready, else a short reason. */
  check(): Promise<string | true>;
  startTimeoutMs: number;
}

/** What components() needs; all of it is recorded in state.json. */
export interface ComponentContext {
  config: TestbedConfig;
  bins: BinaryPaths;
  /** Present once `up` has added Traefik (a bed from before Traefik has none until the next `up`). */
  traefik?: TraefikState | undefined;
  /** Present once `up --clusters 2` has added the second cluster. */
  cluster2?: Cluster2State | undefined;
}

// Client QPS well above the defaults (20-50), so that tests creating many pods are not throttled.
const CLIENT_QPS = '500';
const CLIENT_BURST = '1000';

export function schedulerConfigPath(dir: string): string {
  return join(dir, 'kube-scheduler.yaml');
}

/** The scheduler takes its client settings from a config file (the equivalent flags are deprecated). */
export function schedulerConfig(kubeconfig: string): string {
  return [
    'apiVersion: kubescheduler.config.k8s.io/v1',
    'kind: KubeSchedulerConfiguration',
    'clientConnection:',
    `  kubeconfig: ${JSON.stringify(kubeconfig)}`,
    `  qps: ${CLIENT_QPS}`,
    `  burst: ${CLIENT_BURST}`,
    'leaderElection:',
    '  leaderElect: false',
    '',
  ].join('\n');
}

/**
 * The core components (whose health decides whether `up` must rebuild the bed), then cluster 2's
 * (judged and repaired on their own) and Traefik if added.
 */
export function components(ctx: ComponentContext): Component[] {
  const core = coreComponents(ctx);
  const c2 = ctx.cluster2 ? cluster2Components(ctx, ctx.cluster2) : [];
  return ctx.traefik ? [...core, ...c2, traefikComponent(ctx.traefik, paths(ctx.config.dir).kubeconfig)] : [...core, ...c2];
}

/** What one cluster's control plane (API server, KCM, scheduler, kwok) is made of. */
interface ControlPlaneSpec {
  /** '' for cluster 1, 'c2-' for cluster 2. */
  prefix: '' | 'c2-';
  bins: BinaryPaths;
  pki: Pki;
  kubeconfig: string;
  ports: { apiserver: number; controllerManager: number; scheduler: number; kwok: number };
  etcdUrl: string;
  /** Only cluster 2's API server sets one (cluster 1 keeps the default `/registry`). */
  etcdPrefix?: string;
  serviceCidr: string;
  podCidr: string;
  schedulerConfig: string;
  kwokConfig: string;
  kwokHome: string;
}

function controlPlane(s: ControlPlaneSpec): Component[] {
  const { pki, ports: port } = s;
  return [
    {
      name: `${s.prefix}kube-apiserver`,
      command: s.bins.kubeApiserver,
      args: [
        `--etcd-servers=${s.etcdUrl}`,
        ...(s.etcdPrefix ? [`--etcd-prefix=${s.etcdPrefix}`] : []),
        '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${port.apiserver}`,
        `--tls-cert-file=${pki.apiserverCert}`, `--tls-private-key-file=${pki.apiserverKey}`,
        `--client-ca-file=${pki.caCert}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${pki.serviceAccountPub}`,
        `--service-account-signing-key-file=${pki.serviceAccountKey}`,
        `--service-cluster-ip-range=${s.serviceCidr}`,
        // RBAC stays on: cutover's least-privilege Role is tested against it.
        '--authorization-mode=RBAC',
        // A loopback advertise address cannot go into the `kubernetes` Endpoints; nothing needs them here.
        '--endpoint-reconciler-type=none',
        '--allow-privileged=true', '--profiling=false', '--v=1',
      ],
      endpoint: `https://127.0.0.1:${port.apiserver}/readyz`,
      check: () => healthy(`https://127.0.0.1:${port.apiserver}/readyz`, { pki }, /^ok/),
      startTimeoutMs: 90_000,
    },
    {
      name: `${s.prefix}kube-controller-manager`,
      command: s.bins.kubeControllerManager,
      args: [
        `--kubeconfig=${s.kubeconfig}`,
        '--bind-address=127.0.0.1', `--secure-port=${port.controllerManager}`,
        '--leader-elect=false', '--controllers=*',
        `--service-account-private-key-file=${pki.serviceAccountKey}`, `--root-ca-file=${pki.caCert}`,
        '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
        `--kube-api-qps=${CLIENT_QPS}`, `--kube-api-burst=${CLIENT_BURST}`,
        '--concurrent-deployment-syncs=20', '--concurrent-replicaset-syncs=20', '--concurrent-rc-syncs=20',
        '--concurrent-service-endpoint-syncs=20',
        '--v=1',
      ],
      endpoint: `https://127.0.0.1:${port.controllerManager}/healthz`,
      check: () => healthy(`https://127.0.0.1:${port.controllerManager}/healthz`, { insecure: true }, /^ok/),
      startTimeoutMs: 60_000,
    },
    {
      name: `${s.prefix}kube-scheduler`,
      command: s.bins.kubeScheduler,
      args: [
        `--config=${s.schedulerConfig}`,
        '--bind-address=127.0.0.1', `--secure-port=${port.scheduler}`,
        '--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics',
        '--v=1',
      ],
      endpoint: `https://127.0.0.1:${port.scheduler}/readyz`,
      check: () => healthy(`https://127.0.0.1:${port.scheduler}/readyz`, { insecure: true }, /^ok/),
      startTimeoutMs: 60_000,
    },
    {
      name: `${s.prefix}kwok`,
      command: s.bins.kwok,
      args: [
        `--kubeconfig=${s.kubeconfig}`, `--config=${s.kwokConfig}`,
        '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        `--cidr=${s.podCidr}`, `--node-ip=${NETWORK.netnsAddress}`,
        `--server-address=127.0.0.1:${port.kwok}`,
        // Nodes renew a Lease every 10 s (duration/4), which the heartbeat-with-lease stage relies on.
        `--node-lease-duration-seconds=${NODE_LEASE_SECONDS}`,
      ],
      // kwok always reads ~/.kwok/kwok.yaml too; an own work dir keeps a developer's file out.
      env: { ...process.env, KWOK_WORKDIR: s.kwokHome },
      endpoint: `http://127.0.0.1:${port.kwok}/healthz`,
      check: () => healthy(`http://127.0.0.1:${port.kwok}/healthz`, {}, /^ok/),
      startTimeoutMs: 60_000,
    },
  ];
}

/** Cluster 2's API server, KCM, scheduler and kwok: own ports, PKI, kubeconfig, ranges; cluster 1's etcd and kwok stages. */
function cluster2Components(ctx: ComponentContext, c2: Cluster2State): Component[] {
  return controlPlane({
    prefix: CLUSTER2.componentPrefix,
    bins: ctx.bins,
    pki: pkiPaths(c2.pki),
    kubeconfig: c2.kubeconfig,
    ports: c2.ports,
    etcdUrl: `http://127.0.0.1:${ctx.config.ports.etcdClient}`,
    etcdPrefix: c2.etcdPrefix,
    serviceCidr: c2.serviceCidr,
    podCidr: c2.podCidr,
    schedulerConfig: join(c2.dir, 'kube-scheduler.yaml'),
    kwokConfig: paths(ctx.config.dir).kwokConfig,
    kwokHome: join(c2.dir, 'kwok-home'),
  });
}

/**
 * The fake-pods controller's API sources: cluster 1, and cluster 2 once added (one process follows
 * both, so that it pushes one full table; see fake-pods/controller.ts).
 */
export function fakePodsControllerSources(ctx: ComponentContext): string[] {
  const p = paths(ctx.config.dir);
  const pki = pkiPaths(p.pki);
  const args = ['--server', `https://127.0.0.1:${ctx.config.ports.apiserver}`, '--ca', pki.caCert, '--cert', pki.adminCert,
    '--key', pki.adminKey];
  if (!ctx.cluster2) return args;
  const pki2 = pkiPaths(ctx.cluster2.pki);
  return [...args, '--pod-cidr', NETWORK.podCidr,
    '--server', ctx.cluster2.apiserverUrl, '--ca', pki2.caCert, '--cert', pki2.adminCert, '--key', pki2.adminKey,
    '--pod-cidr', ctx.cluster2.podCidr];
}

/** Components added to a running bed by `up` without rebuilding it (and repaired alone when unhealthy). */
export const ADDON_COMPONENTS: readonly ComponentName[] = ['traefik'];

function coreComponents(ctx: ComponentContext): Component[] {
  const { config: cfg, bins } = ctx;
  const p = paths(cfg.dir);
  const pki = pkiPaths(p.pki);
  const port = cfg.ports;
  const etcdUrl = `http://127.0.0.1:${port.etcdClient}`;
  const peerUrl = `http://127.0.0.1:${port.etcdPeer}`;
  const tsx = import.meta.resolve('tsx'); // absolute, so the children do not depend on their cwd
  const fakePodsStatus = () => controlRequest(p.fakePodsSocket, { type: 'status' }, 2_000);

  return [
    {
      name: 'etcd',
      command: bins.etcd,
      args: [
        '--name=testbed', `--data-dir=${p.etcdData}`,
        `--listen-client-urls=${etcdUrl}`, `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=testbed=${peerUrl}`,
        // Throw-away data: skip fsync (much faster on CI disks) and keep the db small.
        '--unsafe-no-fsync', '--quota-backend-bytes=2147483648', '--auto-compaction-retention=1',
      ],
      endpoint: `${etcdUrl}/health`,
      check: () => healthy(`${etcdUrl}/health`, {}, /"health":\s*"true"/),
      startTimeoutMs: 30_000,
    },
    ...controlPlane({
      prefix: '', bins, pki, kubeconfig: p.kubeconfig, ports: port, etcdUrl,
      serviceCidr: NETWORK.serviceCidr, podCidr: NETWORK.podCidr,
      schedulerConfig: schedulerConfigPath(cfg.dir), kwokConfig: p.kwokConfig, kwokHome: p.kwokHome,
    }),
    {
      name: 'fake-pods-server',
      command: 'ip',
      args: ['netns', 'exec', cfg.netns, process.execPath, '--import', tsx,
        join(TESTBED_SRC, 'fake-pods', 'server.ts'), '--socket', p.fakePodsSocket],
      cwd: REPO_ROOT,
      endpoint: `unix:${p.fakePodsSocket}`,
      check: async () => {
        const r = await fakePodsStatus();
        return r.type === 'status' || `unexpected reply ${r.type}`;
      },
      startTimeoutMs: 30_000,
    },
    {
      name: 'fake-pods-controller',
      command: process.execPath,
      args: ['--import', tsx, join(TESTBED_SRC, 'fake-pods', 'controller.ts'),
        ...fakePodsControllerSources(ctx), '--socket', p.fakePodsSocket],
      cwd: REPO_ROOT,
      endpoint: `unix:${p.fakePodsSocket} (syncs)`,
      // Ready once it has listed the pods and pushed the table at least once.
      check: async () => {
        const r = await fakePodsStatus();
        if (r.type !== 'status') return `unexpected reply ${r.type}`;
        return r.status.syncs > 0 || 'no pod table pushed yet';
      },
      startTimeoutMs: 30_000,
    },
  ];
}
