/**
 * bench/updates (issue #18, "ahead of Argo Rollouts side by side"): the blue-green *update* of one
 * app — its pods changed, 2 replicas — done N times one after another by compiled cutover (with
 * production's node flags, from `npm run serve`), measured with the columns and the outside
 * watchers of bench/argo.ts (bench/lib/watchers.ts):
 *
 *   pods ready → switched   last new pod seen Ready → stable Service seen selecting the new version
 *                           (for cutover this includes its own health check of the new pods)
 *   change → switched       POST /deployments accepted → Service seen switched
 *   change → DEPLOYED       POST accepted → the record seen DEPLOYED in etcd (polled every 10 ms
 *                           straight from etcd, as bench/argo.ts polls the Rollout from the API
 *                           server: the poll costs cutover nothing)
 *   healthy → switched      cutover's own switch overhead, from its record (last healthy check →
 *                           times.switched)
 *   CPU ms/update           cutover's CPU (all threads, /proc) per update; the bench sends it
 *                           nothing but the two POSTs of each update
 *   idle CPU, peak RSS      over 5 s after the first deployment, and at the end
 *
 * With ARGO_ROLLOUTS_BIN set, bench/argo.ts then runs the same N updates through an Argo Rollouts
 * controller on the same test bed (`--apps 0`), so one command prints both tables.
 *
 * Each update starts on an app at rest: the version the previous one replaced is removed (that
 * wait is not timed). With --back-to-back, the next change is made as soon as the previous update
 * is DEPLOYED, as bench/argo.ts does for Argo (which scales its old ReplicaSet down beside the next
 * update, where cutover's next operation of the app waits for the removal).
 *
 *   npm run build && npm run bench:updates [-- --updates 20 --replicas 2 --back-to-back]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DeploymentStore } from '../src/store/deployments.js';
import { EtcdStore } from '../src/store/etcd.js';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { DeployClient, fakeAppDescriptor } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type TestNamespace } from '../test/testbed/harness.js';
import { p50p99, table } from './lib/measure.js';
import { sampleProcess } from './lib/proc.js';
import { productionNodeFlags } from './lib/production.js';
import { OutsideWatchers } from './lib/watchers.js';

const { values } = parseArgs({ options: { updates: { type: 'string', default: '20' }, replicas: { type: 'string', default: '2' }, 'back-to-back': { type: 'boolean', default: false } } });
const BACK_TO_BACK = values['back-to-back'];
const UPDATES = Number(values.updates);
const REPLICAS = Number(values.replicas);
const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const ENTRY = `${REPO_ROOT}dist/src/main.js`;
if (!existsSync(ENTRY)) throw new Error('dist/src/main.js is missing: run npm run build first (production runs compiled JavaScript)');
// CutoverProcess runs this build (not the TypeScript loader).
process.env['CUTOVER_TEST_ENTRY'] = ENTRY;

interface Update { id: string; t0: number; readyToSwitchedMs: number; changeToSwitchedMs: number; changeToDeployedMs: number; healthyToSwitchedMs: number }
const now = () => performance.timeOrigin + performance.now();

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const watchers = new OutsideWatchers(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const prefix = `/bench-${randomUUID().slice(0, 8)}/`;
const kv = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs: 5000 });
const records = new DeploymentStore(kv);
let cutover: CutoverProcess | undefined;
let ns: TestNamespace | undefined;
try {
  cutover = await CutoverProcess.start({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: prefix, CUTOVER_LOG_LEVEL: 'warn',
    CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_HEALTHCHECK_INTERVAL_MS: '100',
    CUTOVER_TEST_GC_INTERVAL_MS: '0',
    NODE_OPTIONS: [process.env['NODE_OPTIONS'] ?? '', ...productionNodeFlags()].join(' ').trim(),
  });
  const pid = cutover.pid!;
  const api = new DeployClient(cutover.url);
  ns = await createTestNamespace(kc, 'bench-updates');
  await watchers.watch(ns.name);
  const namespace = ns.name;

  /** One deployment of the app, measured from outside. */
  const deploy = async (n: number): Promise<Update> => {
    // Every deployment is a new version of the app: its own Deployment and pods, as a changed
    // pod template gives Argo a new ReplicaSet.
    const descriptorId = await api.createDescriptor(namespace, fakeAppDescriptor(namespace, { appName: 'upd', replicas: REPLICAS }));
    const t0 = now();
    const res = await api.startDeployment(namespace, descriptorId);
    const id = res.body.id as string;
    let deployedAt: number;
    let record;
    for (;;) {
      record = (await records.get(namespace, id))?.value;
      if (record && record.status !== 'DEPLOYING') {
        deployedAt = now();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10)); // as bench/argo.ts polls the Rollout: bounds the error
    }
    if (record.status !== 'DEPLOYED') throw new Error(`deployment ${n} ended ${record.status}: ${record.failureReason ?? ''}`);
    const version = record.version!;
    await watchers.until(() => watchers.switchedAt(namespace, 'upd', 'version', version) !== undefined, 'the switch seen', 30_000);
    const switchedAt = watchers.switchedAt(namespace, 'upd', 'version', version)!;
    const readyAt = watchers.lastReady(namespace, { app: 'upd', version }, REPLICAS);
    const health = (await request(`${cutover!.url}/deployments/${id}/healthcheckdata?namespace=${namespace}`)).body as Array<{ checkedAt: string }>;
    const lastHealthy = Math.max(...(Array.isArray(health) ? health : []).map((h) => Date.parse(h.checkedAt)), Date.parse(record.times?.podsReady ?? ''));
    // The next update starts on an app at rest (not timed): the replaced version removed, its
    // record UNDEPLOYED and its pods gone. cutover runs an app's operations one after another (at
    // most two versions ever run), so a change made during that removal waits for it, where Argo
    // starts at once and scales the old ReplicaSet down beside it: --back-to-back measures that.
    if (record.replaces && !BACK_TO_BACK) {
      for (;;) {
        if ((await records.get(namespace, record.replaces))?.value.status === 'UNDEPLOYED') break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const old = (await records.get(namespace, record.replaces))!.value.version;
      await watchers.until(() => watchers.podsWith(namespace, { app: 'upd', version: old }) === 0, `version ${old}'s pods gone`, 60_000);
    }
    return {
      id, t0,
      readyToSwitchedMs: readyAt === undefined ? Number.NaN : switchedAt - readyAt,
      changeToSwitchedMs: switchedAt - t0,
      changeToDeployedMs: deployedAt - t0,
      healthyToSwitchedMs: record.times?.switched ? Date.parse(record.times.switched) - lastHealthy : Number.NaN,
    };
  };

  process.stderr.write('cutover: first deployment of the app…\n');
  await deploy(0);
  const idleStart = sampleProcess(pid);
  const idleT0 = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 5000)); // the idle window itself is what is measured
  const idleCpuPercent = (100 * (sampleProcess(pid).cpuSeconds - idleStart.cpuSeconds)) / ((Date.now() - idleT0) / 1000);
  process.stderr.write(`cutover: ${UPDATES} sequential updates…\n`);
  const before = sampleProcess(pid);
  const updates: Update[] = [];
  // The health-check data and the descriptor POST of each update are the bench's own requests:
  // their CPU is counted (a deployment needs a descriptor), the record polls go to etcd.
  for (let g = 1; g <= UPDATES; g++) updates.push(await deploy(g));
  const cpuMsPerUpdate = ((sampleProcess(pid).cpuSeconds - before.cpuSeconds) * 1000) / UPDATES;
  table(`cutover blue-green update (${REPLICAS} replicas, compiled, probe health check every 100 ms, drain 0 s), measured from outside (p50 / p99 ms)`,
    ['scenario', 'n', 'pods ready → switched', 'change → switched', 'change → DEPLOYED', 'healthy → switched', 'CPU ms/update', 'idle CPU %', 'peak RSS MiB'],
    [[`${UPDATES} sequential updates of one app${BACK_TO_BACK ? ', back to back' : ', each at rest'}`, String(updates.length), p50p99(updates.map((u) => u.readyToSwitchedMs)), p50p99(updates.map((u) => u.changeToSwitchedMs)),
      p50p99(updates.map((u) => u.changeToDeployedMs)), p50p99(updates.map((u) => u.healthyToSwitchedMs)), cpuMsPerUpdate.toFixed(0), idleCpuPercent.toFixed(1), sampleProcess(pid).peakRssMiB.toFixed(0)]]);
  // Where a typical (median) and the slowest update (change → DEPLOYED) spent their time: their
  // logs, timed from the change.
  const byDeployed = [...updates].sort((a, b) => a.changeToDeployedMs - b.changeToDeployedMs);
  for (const [label, u] of [['the median update', byDeployed[Math.floor((byDeployed.length - 1) / 2)]!], ['the slowest update', byDeployed.at(-1)!]] as const) {
    const text = String((await request(`${cutover.url}/deployments/${u.id}/logs?namespace=${namespace}`)).text ?? '');
    console.log(`\n${label} (${u.changeToDeployedMs.toFixed(0)} ms to DEPLOYED, pods ready → switched ${u.readyToSwitchedMs.toFixed(0)} ms), times from the change:`);
    for (const line of text.split('\n').filter(Boolean)) {
      const m = /^(\S+) (.*)$/.exec(line);
      console.log(m ? `+${String(Math.round(Date.parse(m[1]!) - u.t0)).padStart(6)} ms  ${m[2]!.slice(0, 150)}` : line);
    }
  }
} finally {
  await cutover?.stop();
  await watchers.close();
  await ns?.delete().catch((err: Error) => process.stderr.write(`namespace: ${err.message}\n`));
  await kv.close();
  await etcd.destroy();
  await testbed.release();
}

if (process.env['ARGO_ROLLOUTS_BIN']) {
  process.stderr.write('\nthe same updates through Argo Rollouts (bench/argo.ts --apps 0)…\n');
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/argo.ts', '--updates', String(UPDATES), '--apps', '0', '--replicas', String(REPLICAS)], { cwd: REPO_ROOT, stdio: 'inherit' });
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  process.exitCode = code;
} else {
  console.log('\nArgo Rollouts: skipped (ARGO_ROLLOUTS_BIN is not set; build it with bench/argo/build.sh)');
}
