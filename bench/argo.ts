/**
 * bench/argo: the same blue-green update driven through an Argo Rollouts controller on the test
 * bed, measured by the same outside watchers as bench/parallel.ts (bench/lib/watchers.ts):
 * pods ready → active Service switched, change → switched, change → Healthy (Rollout status),
 * and the controller's CPU per update, idle CPU and peak RSS from /proc. Sequential updates of one
 * Rollout, then N Rollouts updated at once (the "wide" case).
 *
 * Needs ARGO_ROLLOUTS_BIN (build it with bench/argo/build.sh; the CRDs are next to the binary);
 * without it, says so and exits 0. The controller runs here, namespaced to the bench's namespace.
 *
 *   ARGO_ROLLOUTS_BIN=~/.cache/cutover-bench/argo-rollouts-v1.10.2/rollouts-controller npm run bench:argo [-- --updates 10 --apps 200 --replicas 2]
 */
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { KubeClient } from '../src/kube/client.js';
import { loadClusterAccess } from '../src/kube/kubeconfig.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type TestNamespace } from '../test/testbed/harness.js';
import { sampleProcess } from './lib/proc.js';
import { OutsideWatchers } from './lib/watchers.js';
import { p50p99, table } from './lib/measure.js';

const { values } = parseArgs({ options: { updates: { type: 'string', default: '10' }, apps: { type: 'string', default: '200' }, replicas: { type: 'string', default: '2' } } });
const UPDATES = Number(values.updates);
const APPS = Number(values.apps);
const REPLICAS = Number(values.replicas);
const BIN = process.env['ARGO_ROLLOUTS_BIN'];
if (!BIN) {
  console.log('\nArgo Rollouts: skipped (ARGO_ROLLOUTS_BIN is not set; build it with bench/argo/build.sh)\n');
  process.exit(0);
}
const now = () => performance.timeOrigin + performance.now();
const freePort = () => new Promise<number>((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const port = (s.address() as { port: number }).port;
    s.close(() => resolve(port));
  });
});

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const client = new KubeClient(loadClusterAccess(testbed.kubeconfigPath));
const watchers = new OutsideWatchers(testbed.kubeconfigPath);
let ns: TestNamespace | undefined;
let controller: ReturnType<typeof spawn> | undefined;
const rolloutPath = (namespace: string, name?: string) => `/apis/argoproj.io/v1alpha1/namespaces/${namespace}/rollouts${name ? `/${name}` : ''}`;

function rollout(namespace: string, name: string, generation: number) {
  return {
    apiVersion: 'argoproj.io/v1alpha1', kind: 'Rollout', metadata: { name, namespace },
    spec: {
      replicas: REPLICAS, revisionHistoryLimit: 1, selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ containerPort: 8080, name: 'http' }], env: [{ name: 'GENERATION', value: String(generation) }] }] },
      },
      strategy: { blueGreen: { activeService: name, autoPromotionEnabled: true, scaleDownDelaySeconds: 0 } },
    },
  };
}

interface Update { readyToSwitchedMs: number; changeToSwitchedMs: number; changeToHealthyMs: number }

/** Changes the pod template of `name` and measures until the Rollout is Healthy on the new hash. */
async function update(namespace: string, name: string, generation: number): Promise<Update> {
  const before = watchers.selectors.get(`${namespace}/${name}`)?.at(-1)?.selector['rollouts-pod-template-hash'];
  const t0 = now();
  await client.json('PATCH', rolloutPath(namespace, name), {
    contentType: 'application/merge-patch+json',
    body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ containerPort: 8080, name: 'http' }], env: [{ name: 'GENERATION', value: String(generation) }] }] } } } },
  });
  const newHash = () => {
    const h = watchers.selectors.get(`${namespace}/${name}`)?.at(-1)?.selector['rollouts-pod-template-hash'];
    return h && h !== before ? h : undefined;
  };
  await watchers.until(() => newHash() !== undefined, `${name} switched`, 300_000);
  const hash = newHash()!;
  const switchedAt = watchers.switchedAt(namespace, name, 'rollouts-pod-template-hash', hash)!;
  let healthyAt: number;
  for (;;) {
    const r = await client.json<{ status?: { phase?: string; stableRS?: string } }>('GET', rolloutPath(namespace, name));
    if (r.status?.phase === 'Healthy' && r.status.stableRS === hash) {
      healthyAt = now();
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10)); // no watch on Rollouts here: a 10 ms poll bounds the error
  }
  const readyAt = watchers.lastReady(namespace, { app: name, 'rollouts-pod-template-hash': hash }, REPLICAS);
  return { readyToSwitchedMs: readyAt === undefined ? Number.NaN : switchedAt - readyAt, changeToSwitchedMs: switchedAt - t0, changeToHealthyMs: healthyAt - t0 };
}

/** The CRDs this run installed (none that were there before: another run may be using them); removed at the end. */
let installedCrds: string[] = [];
const kubectl = (args: string[]) => execFileSync(testbed.kubectl, ['--kubeconfig', testbed.kubeconfigPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
try {
  const dir = dirname(BIN);
  const crds = readdirSync(dir).filter((f) => f.endsWith('-crd.yaml')).map((f) => join(dir, f));
  const present = new Set(kubectl(['get', 'crd', '-o', 'name']).split('\n').filter(Boolean));
  installedCrds = ['rollouts', 'analysisruns', 'analysistemplates', 'clusteranalysistemplates', 'experiments']
    .map((r) => `customresourcedefinition.apiextensions.k8s.io/${r}.argoproj.io`).filter((name) => !present.has(name));
  execFileSync(testbed.kubectl, ['--kubeconfig', testbed.kubeconfigPath, 'apply', '--server-side', '--force-conflicts', ...crds.flatMap((f) => ['-f', f])], { stdio: 'ignore' });
  // Not `kubectl wait`: on a CRD created a moment ago it fails at once (status.conditions is still nil).
  const established = () => {
    try {
      return /\bEstablished\b/.test(kubectl(['get', 'crd', 'rollouts.argoproj.io', '-o', 'jsonpath={.status.conditions[?(@.status=="True")].type}']));
    } catch {
      return false; // not there yet
    }
  };
  for (const started = Date.now(); !established();) {
    if (Date.now() - started > 60_000) throw new Error('the Rollout CRD was not Established within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  ns = await createTestNamespace(kc, 'bench-argo');
  await watchers.watch(ns.name);
  controller = spawn(BIN, ['--kubeconfig', testbed.kubeconfigPath, '--namespaced', '--namespace', ns.name, '--leader-elect=false',
    '--metricsport', String(await freePort()), '--healthzPort', String(await freePort()), '--loglevel', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = controller.pid!;
  const names = ['seq', ...Array.from({ length: APPS }, (_, i) => `par-${i}`)];
  for (const name of names) {
    await client.json('POST', `/api/v1/namespaces/${ns.name}/services`, { body: { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] } } });
    await client.json('POST', rolloutPath(ns.name), { body: rollout(ns.name, name, 0) });
  }
  process.stderr.write(`argo: waiting for ${names.length} Rollouts to be Healthy…\n`);
  for (const name of names) {
    await watchers.until(() => (watchers.selectors.get(`${ns!.name}/${name}`)?.at(-1)?.selector['rollouts-pod-template-hash'] ?? '') !== '', `${name} first switch`, 600_000);
  }
  const idleStart = sampleProcess(pid);
  const idleT0 = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 5000)); // the idle window itself is what is measured
  const idleCpuPercent = (100 * (sampleProcess(pid).cpuSeconds - idleStart.cpuSeconds)) / ((Date.now() - idleT0) / 1000);
  const rows: string[][] = [];
  const report = (label: string, us: Update[], cpu: number) => rows.push([label, String(us.length), p50p99(us.map((u) => u.readyToSwitchedMs)), p50p99(us.map((u) => u.changeToSwitchedMs)), p50p99(us.map((u) => u.changeToHealthyMs)), ((cpu * 1000) / us.length).toFixed(0), idleCpuPercent.toFixed(1), sampleProcess(pid).peakRssMiB.toFixed(0)]);
  process.stderr.write(`argo: ${UPDATES} sequential updates…\n`);
  let before = sampleProcess(pid);
  const seq: Update[] = [];
  for (let g = 1; g <= UPDATES; g++) seq.push(await update(ns.name, 'seq', g));
  report(`${UPDATES} sequential updates of one Rollout`, seq, sampleProcess(pid).cpuSeconds - before.cpuSeconds);
  if (APPS > 0) {
    process.stderr.write(`argo: ${APPS} Rollouts updated at once…\n`);
    before = sampleProcess(pid);
    const par = await Promise.all(names.slice(1).map((name) => update(ns!.name, name, 1)));
    report(`${APPS} Rollouts updated in parallel`, par, sampleProcess(pid).cpuSeconds - before.cpuSeconds);
  }
  table(`Argo Rollouts ${dir.split('-').pop()} blue-green (${REPLICAS} replicas, autoPromotion, scaleDownDelay 0), measured from outside (p50 / p99 ms)`,
    ['scenario', 'n', 'pods ready → switched', 'change → switched', 'change → Healthy', 'controller CPU ms/update', 'idle CPU %', 'peak RSS MiB'], rows);
} finally {
  controller?.kill('SIGTERM');
  await watchers.close();
  await ns?.delete().catch((err: Error) => process.stderr.write(`namespace: ${err.message}\n`));
  if (installedCrds.length > 0) {
    try {
      kubectl(['delete', '--wait=false', '--ignore-not-found', ...installedCrds]);
    } catch (err) {
      process.stderr.write(`CRDs: ${(err as Error).message}\n`);
    }
  }
  await client.close();
  await testbed.release();
}
