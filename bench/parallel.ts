/**
 * bench/parallel ("wide"): N apps deployed at once through the REST API versus the same apps one
 * after another, measured from outside by watchers on the cluster (bench/lib/watchers.ts):
 *
 *   ready → switched     last pod of the new version seen Ready → stable Service seen selecting it
 *                        (includes cutover's health check of the new pods, every 100 ms);
 *   healthy → switched   cutover's own switch overhead, from its record (last healthy check →
 *                        times.switched), as bench/deploy.ts reports it;
 *   submit → switched    POST /deployments accepted → Service seen switched.
 *
 * Goal (issue #18): parallel overhead p99 ≤ 2 × sequential p99. Also reported: cutover's event-loop
 * delay p99/max during the run (its /metrics, from monitorEventLoopDelay; reset at every scrape),
 * CPU and peak RSS, and the API server's CPU and RSS when the test bed runs it as a local process.
 *
 * With AMDATU_DEPLOYER_URL set (an original Amdatu deployer on the same test bed), the same
 * scenarios run against it too, through the same REST API and measured by the same watchers.
 *
 *   npm run bench:parallel [-- --apps 200 --sequential 10 --namespaces 1 --replicas 2 --repeat 1]
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { DeployClient, fakeAppDescriptor } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type TestNamespace } from '../test/testbed/harness.js';
import { percentile } from './lib/measure.js';
import { sampleProcess } from './lib/proc.js';
import { OutsideWatchers, eventLoopDelay } from './lib/watchers.js';
import { table } from './lib/measure.js';

const { values } = parseArgs({
  options: {
    apps: { type: 'string', default: '200' },
    sequential: { type: 'string', default: '10' },
    namespaces: { type: 'string', default: '1' },
    replicas: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '1' },
    /** Directory for a V8 CPU profile of the cutover process (--cpu-prof), written when it stops. */
    'cpu-prof': { type: 'string' },
    /** File for cutover's own log lines (warnings and errors: CUTOVER_LOG_LEVEL=warn). */
    log: { type: 'string' },
  },
});
const APPS = Number(values.apps);
const SEQUENTIAL = Number(values.sequential);
const NAMESPACES = Math.max(1, Math.min(Number(values.namespaces), APPS));
const REPLICAS = Number(values.replicas);
const REPEAT = Number(values.repeat);

interface Target {
  name: string;
  url: string;
  pid?: number;
  /** Exposes cutover's /metrics (event-loop delay). */
  metrics: boolean;
}

interface AppTiming {
  readyToSwitchedMs: number;
  healthyToSwitchedMs: number;
  submitToSwitchedMs: number;
  /** Where ready → switched goes: seen ready → cutover's times.podsReady → times.healthy → times.switched. */
  seenToPodsReadyMs: number;
  podsReadyToHealthyMs: number;
}

interface ScenarioResult {
  target: string;
  scenario: string;
  timings: AppTiming[];
  loopP99Ms: number;
  loopMaxMs: number;
  cpuSeconds: number;
  peakRssMiB: number;
  apiServerCpuSeconds: number;
  apiServerRssMiB: number;
  failed: number;
  /** Failure reason (numbers and names masked, so that alike reasons count together) → count. */
  failures: Map<string, number>;
  /** The log of the slowest deployment (healthy → switched, or a failed one), each line timed from its submit. */
  slowest?: { app: string; lines: string[] };
}

/** The test bed's (first cluster's) API server: the kube-apiserver serving on its URL's port. */
function apiServerPid(apiserverUrl: string): number | undefined {
  const port = new URL(apiserverUrl).port;
  try {
    const pids = execFileSync('pgrep', ['-x', 'kube-apiserver'], { encoding: 'utf8' }).trim().split('\n').map(Number);
    return pids.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(`--secure-port=${port}`));
  } catch {
    return undefined;
  }
}

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const watchers = new OutsideWatchers(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const cutover = await CutoverProcess.start({
  CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/bench-${randomUUID().slice(0, 8)}/`, CUTOVER_LOG_LEVEL: 'warn',
  CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_HEALTHCHECK_INTERVAL_MS: '100',
  CUTOVER_TEST_GC_INTERVAL_MS: '0',
  ...(values['cpu-prof'] ? { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --cpu-prof --cpu-prof-dir=${values['cpu-prof']}`.trim() } : {}),
});
const targets: Target[] = [{ name: 'cutover', url: cutover.url, pid: cutover.pid!, metrics: true }];
const amdatu = process.env['AMDATU_DEPLOYER_URL'];
if (amdatu) targets.push({ name: 'Amdatu deployer', url: amdatu.replace(/\/+$/, ''), metrics: false });
else process.stderr.write('AMDATU_DEPLOYER_URL is not set: cutover only\n');
const apiPid = apiServerPid(testbed.apiserverUrl);
const namespaces: TestNamespace[] = [];
const results: ScenarioResult[] = [];

/** Deploys `apps` (all at once when `parallel`), waits for every switch seen from outside, and reads the records. */
async function scenario(target: Target, label: string, apps: Array<{ ns: string; app: string }>, parallel: boolean): Promise<ScenarioResult> {
  const api = new DeployClient(target.url);
  if (target.metrics) await eventLoopDelay(target.url); // resets the histogram
  const before = target.pid ? sampleProcess(target.pid) : undefined;
  const apiBefore = apiPid ? sampleProcess(apiPid) : undefined;
  const submitted = new Map<string, { id: string; at: number }>();
  const submit = async ({ ns, app }: { ns: string; app: string }) => {
    const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: app, replicas: REPLICAS }));
    const at = performance.timeOrigin + performance.now();
    const res = await api.startDeployment(ns, descriptorId);
    submitted.set(`${ns}/${app}`, { id: res.body.id as string, at });
  };
  /** The record, once final; its version tells which Service selector means "switched". */
  const outcome = async (ns: string, id: string) => api.waitForStatus(ns, id, undefined, 600_000);
  const switchedSeen = (ns: string, app: string, version: string) => watchers.switchedAt(ns, app, 'version', version) !== undefined;
  const records = new Map<string, any>();
  if (parallel) {
    await Promise.all(apps.map(submit));
    // Versions are known only from the records: read each once it is final (slowly: no load on the API meanwhile).
    for (const { ns, app } of apps) records.set(`${ns}/${app}`, await outcome(ns, submitted.get(`${ns}/${app}`)!.id));
  } else {
    for (const a of apps) {
      await submit(a);
      records.set(`${a.ns}/${a.app}`, await outcome(a.ns, submitted.get(`${a.ns}/${a.app}`)!.id));
    }
  }
  const deployed = apps.filter(({ ns, app }) => records.get(`${ns}/${app}`)?.status === 'DEPLOYED');
  const failures = new Map<string, number>();
  for (const { ns, app } of apps) {
    const r = records.get(`${ns}/${app}`);
    if (r?.status === 'DEPLOYED') continue;
    const reason = `${r?.status ?? 'no record'} at step ${r?.step ?? '?'}: ${maskReason(String(r?.failureReason ?? 'no reason recorded'))}`;
    failures.set(reason, (failures.get(reason) ?? 0) + 1);
  }
  await watchers.until(() => deployed.every(({ ns, app }) => switchedSeen(ns, app, records.get(`${ns}/${app}`).version)), 'every switch seen', 30_000);
  const loop = target.metrics ? await eventLoopDelay(target.url) : { p99Ms: Number.NaN, maxMs: Number.NaN };
  const after = target.pid ? sampleProcess(target.pid) : undefined;
  const apiAfter = apiPid ? sampleProcess(apiPid) : undefined;
  const timings: AppTiming[] = [];
  const overheadOf = new Map<string, number>();
  for (const { ns, app } of deployed) {
    const d = records.get(`${ns}/${app}`);
    const switchedAt = watchers.switchedAt(ns, app, 'version', d.version)!;
    const readyAt = watchers.lastReady(ns, { app, version: d.version }, REPLICAS);
    const health = (await request(`${target.url}/deployments/${d.id}/healthcheckdata?namespace=${ns}`)).body as Array<{ checkedAt: string }>;
    const lastHealthy = Math.max(...(Array.isArray(health) ? health : []).map((h) => Date.parse(h.checkedAt)), Date.parse(d.times?.podsReady ?? ''));
    overheadOf.set(`${ns}/${app}`, d.times?.switched ? Date.parse(d.times.switched) - lastHealthy : Number.NaN);
    timings.push({
      readyToSwitchedMs: readyAt === undefined ? Number.NaN : switchedAt - readyAt,
      healthyToSwitchedMs: d.times?.switched ? Date.parse(d.times.switched) - lastHealthy : Number.NaN,
      submitToSwitchedMs: switchedAt - submitted.get(`${ns}/${app}`)!.at,
      seenToPodsReadyMs: readyAt === undefined ? Number.NaN : Date.parse(d.times?.podsReady ?? '') - readyAt,
      podsReadyToHealthyMs: Date.parse(d.times?.healthy ?? '') - Date.parse(d.times?.podsReady ?? ''),
    });
  }
  // Where the slowest one spent its time: a failed one if any, else the one with the longest switch
  // overhead (healthy → switched: what the goal is about).
  const failedApp = apps.find(({ ns, app }) => records.get(`${ns}/${app}`)?.status !== 'DEPLOYED');
  const slowestApp = failedApp ?? deployed.reduce<{ ns: string; app: string } | undefined>((worst, a) => {
    const overhead = (x: { ns: string; app: string }) => overheadOf.get(`${x.ns}/${x.app}`) ?? 0;
    return !worst || overhead(a) > overhead(worst) ? a : worst;
  }, undefined);
  let slowest: ScenarioResult['slowest'];
  if (slowestApp && records.get(`${slowestApp.ns}/${slowestApp.app}`)) {
    const text = (await request(`${target.url}/deployments/${records.get(`${slowestApp.ns}/${slowestApp.app}`).id}/logs?namespace=${slowestApp.ns}`)).text ?? '';
    const t0 = submitted.get(`${slowestApp.ns}/${slowestApp.app}`)!.at;
    slowest = {
      app: `${slowestApp.app} (${records.get(`${slowestApp.ns}/${slowestApp.app}`).status})`,
      lines: String(text).split('\n').filter(Boolean).map((l) => {
        const m = /^(\S+) (.*)$/.exec(l);
        const at = m ? Date.parse(m[1]!) : Number.NaN;
        return Number.isFinite(at) ? `+${String(Math.round(at - t0)).padStart(6)} ms  ${m![2]!.slice(0, 160)}` : l.slice(0, 180);
      }),
    };
  }
  return {
    slowest,
    target: target.name, scenario: label, timings, loopP99Ms: loop.p99Ms, loopMaxMs: loop.maxMs,
    cpuSeconds: before && after ? after.cpuSeconds - before.cpuSeconds : Number.NaN,
    peakRssMiB: after?.peakRssMiB ?? Number.NaN,
    apiServerCpuSeconds: apiBefore && apiAfter ? apiAfter.cpuSeconds - apiBefore.cpuSeconds : Number.NaN,
    apiServerRssMiB: apiAfter?.rssMiB ?? Number.NaN,
    failed: apps.length - deployed.length,
    failures,
  };
}

/** Masks pod names, numbers and ids in a failure reason so that alike reasons count together. */
function maskReason(reason: string): string {
  return reason.replace(/\b[a-z0-9]+(?:-[a-z0-9]+){2,}\b/g, '<name>').replace(/\d+(?:\.\d+)?/g, 'N').slice(0, 300);
}

const sortedOf = (ts: AppTiming[], k: keyof AppTiming) => ts.map((t) => t[k]).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
const fmt = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '–');

try {
  for (let i = 0; i < NAMESPACES; i++) namespaces.push(await createTestNamespace(kc, 'bench-wide'));
  await Promise.all(namespaces.map((n) => watchers.watch(n.name)));
  for (const target of targets) {
    const tag = target.name === 'cutover' ? 'c' : 'a';
    for (let round = 1; round <= REPEAT; round++) {
      // Sequential baseline: the same number of namespaces, apps one after another.
      const seqApps = Array.from({ length: SEQUENTIAL }, (_, i) => ({ ns: namespaces[i % NAMESPACES]!.name, app: `s${tag}${round}-${i}` }));
      process.stderr.write(`${target.name}: ${SEQUENTIAL} sequential deployments (round ${round})…\n`);
      results.push(await scenario(target, `${SEQUENTIAL} sequential`, seqApps, false));
      const parApps = Array.from({ length: APPS }, (_, i) => ({ ns: namespaces[i % NAMESPACES]!.name, app: `p${tag}${round}-${i}` }));
      process.stderr.write(`${target.name}: ${APPS} apps in parallel over ${NAMESPACES} namespace(s) (round ${round})…\n`);
      results.push(await scenario(target, `${APPS} parallel`, parApps, true));
    }
  }
  const header = ['deployer', 'scenario', 'n', 'failed', 'ready→switched p50/p99 ms', 'healthy→switched p50/p99 ms', 'submit→switched p50/p99 ms', 'event-loop delay p99/max ms', 'CPU s', 'peak RSS MiB', 'API server CPU s / RSS MiB'];
  const rows = results.map((r) => {
    const rs = sortedOf(r.timings, 'readyToSwitchedMs');
    const hs = sortedOf(r.timings, 'healthyToSwitchedMs');
    const ss = sortedOf(r.timings, 'submitToSwitchedMs');
    return [r.target, r.scenario, String(r.timings.length), String(r.failed),
      `${fmt(percentile(rs, 50))} / ${fmt(percentile(rs, 99))}`, `${fmt(percentile(hs, 50))} / ${fmt(percentile(hs, 99))}`, `${fmt(percentile(ss, 50))} / ${fmt(percentile(ss, 99))}`,
      `${fmt(r.loopP99Ms, 1)} / ${fmt(r.loopMaxMs, 1)}`, fmt(r.cpuSeconds, 2), fmt(r.peakRssMiB), `${fmt(r.apiServerCpuSeconds, 1)} / ${fmt(r.apiServerRssMiB)}`];
  });
  table('where ready → switched goes (p50 / p99 ms): pods seen Ready outside → cutover noticed (times.podsReady) → health checked (times.healthy) → switched', ['deployer', 'scenario', 'seen ready → podsReady', 'podsReady → healthy', 'healthy → switched'], results.map((r) => {
    const q = (k: keyof AppTiming) => {
      const v = sortedOf(r.timings, k);
      return `${fmt(percentile(v, 50))} / ${fmt(percentile(v, 99))}`;
    };
    return [r.target, r.scenario, q('seenToPodsReadyMs'), q('podsReadyToHealthyMs'), q('healthyToSwitchedMs')];
  }));
  table(`wide: ${APPS} apps × ${REPLICAS} replicas in parallel vs ${SEQUENTIAL} sequential, ${NAMESPACES} namespace(s), probe health check every 100 ms, drain 0 s; measured from outside`, header, rows);
  for (const r of results) {
    if (!r.slowest) continue;
    console.log(`\n${r.target}, ${r.scenario}: log of ${r.slowest.app}, times from its submit`);
    for (const l of r.slowest.lines) console.log(`  ${l}`);
  }
  for (const r of results) {
    if (r.failures.size === 0) continue;
    console.log(`\n${r.target}, ${r.scenario}: ${r.failed} failed, by reason`);
    for (const [reason, n] of [...r.failures].sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(4)}  ${reason}`);
  }
  for (const target of targets) {
    const mine = results.filter((r) => r.target === target.name);
    const seq = mine.filter((r) => r.scenario.endsWith('sequential')).flatMap((r) => r.timings);
    const par = mine.filter((r) => r.scenario.endsWith('parallel')).flatMap((r) => r.timings);
    for (const k of ['readyToSwitchedMs', 'healthyToSwitchedMs'] as const) {
      const s = percentile(sortedOf(seq, k), 99);
      const p = percentile(sortedOf(par, k), 99);
      console.log(`${target.name} ${k === 'readyToSwitchedMs' ? 'ready→switched' : 'healthy→switched'}: parallel p99 ${fmt(p)} ms vs sequential p99 ${fmt(s)} ms → ${fmt(p / s, 2)}× (target ≤ 2×) ${p <= 2 * s ? 'MET' : 'MISSED'}`);
    }
  }
} finally {
  await watchers.close();
  await cutover.stop();
  if (values.log) writeFileSync(values.log, `${cutover.output.join('\n')}\n`);
  await etcd.destroy();
  await Promise.all(namespaces.map((n) => n.delete().catch((err: Error) => process.stderr.write(`namespace ${n.name}: ${err.message}\n`))));
  await testbed.release();
}
