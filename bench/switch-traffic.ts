/**
 * bench/switch-traffic: do users notice a blue-green switch? Requests go through the test bed's
 * Traefik at a steady rate (open loop, bench/lib/load.ts, in a worker thread) while one app
 * (2 replicas) is deployed N times in a row, behind an Ingress and behind an HTTPRoute, at each
 * rate. Per scenario: requests, failed ones (non-2xx or no answer; goal 0), requests answered by a
 * replaced version although sent after the replacing deployment was DEPLOYED (times.finished) or
 * had converged (times.converged), switch → convergence, latency during switches (times.healthy,
 * where the step switching-traffic starts, to convergence + 1 s) vs between them, and the rate the
 * generator achieved. cutover runs as its own process (drain 2 s, no forced GCs).
 *
 *   npm run bench:switch-traffic [-- --rates 50,500 --switches 20 --targets ingress,httproute --drain 2]
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { ClusterView, DeployClient, fakeAppDescriptor } from '../test/support/deploy.js';
import { waitFor } from '../test/support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { analyseSwitches, describeRequest, LoadGenerator, percentile, switchRecord, type SwitchAnalysis, type GeneratorStats } from './lib/load.js';
import { sampleProcess } from './lib/proc.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '50,500' },
    switches: { type: 'string', default: '20' },
    targets: { type: 'string', default: 'ingress,httproute' },
    drain: { type: 'string', default: '2' },
  },
});
const RATES = values.rates.split(',').map(Number);
const SWITCHES = Number(values.switches);
const TARGETS = values.targets.split(',') as Array<'ingress' | 'httproute'>;
const DRAIN_SECONDS = Number(values.drain);
for (const t of TARGETS) if (t !== 'ingress' && t !== 'httproute') throw new Error(`--targets: ingress or httproute, not ${t}`);

interface Scenario {
  target: string;
  rate: number;
  a: SwitchAnalysis;
  g: GeneratorStats;
  deployed: number;
  cutoverCpu: number;
}

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const cluster = new ClusterView(kc);
const t = testbed.traefik;
const etcd = await TestEtcd.create();
const cutover = await CutoverProcess.start({
  CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/bench-${randomUUID().slice(0, 8)}/`, CUTOVER_LOG_LEVEL: 'warn',
  CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: String(DRAIN_SECONDS), CUTOVER_HEALTHCHECK_INTERVAL_MS: '100',
  CUTOVER_ROUTING: 'httproute', CUTOVER_GATEWAY: `${t.gateway.namespace}/${t.gateway.name}/${t.gateway.sectionName}`,
  CUTOVER_INGRESS_CLASS: t.ingressClass, CUTOVER_INGRESS_PROFILE: 'traefik',
  CUTOVER_VERSION_HEADER: 'X-Cutover-Version', CUTOVER_TRAFFIC_PROBE_URL: t.url,
  CUTOVER_TEST_GC_INTERVAL_MS: '0',
});
const api = new DeployClient(cutover.url);
const namespaces: Array<{ delete(): Promise<void> }> = [];
const scenarios: Scenario[] = [];
const load0 = loadavg();
const started = Date.now();

async function scenario(target: 'ingress' | 'httproute', rate: number): Promise<Scenario> {
  const ns = await createTestNamespace(kc, `bench-sw-${target}`);
  namespaces.push(ns);
  const host = `${ns.name}.example.test`;
  const descriptorId = await api.createDescriptor(ns.name, fakeAppDescriptor(ns.name, { appName: 'shop', replicas: 2, frontend: host, routing: target }));
  let deployed = 0;
  const deploy = async () => {
    const res = await api.startDeployment(ns.name, descriptorId);
    const d = await api.waitForStatus(ns.name, res.body.id as string, undefined, 180_000);
    if (d.status !== 'DEPLOYED') throw new Error(`${target} @ ${rate}/s: version ${d.version} ended ${d.status}: ${d.failureReason}`);
    deployed++;
    return d;
  };
  const converged = (id: string) => waitFor(`deployment ${id} to converge`, async () => {
    const d = await api.get(ns.name, id);
    return d.times.converged ? d : undefined;
  }, { timeoutMs: 60_000, intervalMs: 50 });

  const first = await converged((await deploy()).id);
  const ids: string[] = [first.id];
  const cpu0 = sampleProcess(cutover.pid!).cpuSeconds;
  const generator = await new LoadGenerator({ url: t.url, host, rate }).start();
  let load;
  try {
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < SWITCHES; i++) {
      ids.push((await deploy()).id);
      process.stderr.write(`\r${target} @ ${rate}/s: ${i + 1}/${SWITCHES} deployed`);
    }
    const last = await converged(ids[ids.length - 1]!);
    await cluster.waitForWorkloads(ns.name, 'shop', [`shop-${last.version}`], 60_000);
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    load = await generator.stop();
  }
  process.stderr.write('\n');
  const cutoverCpu = sampleProcess(cutover.pid!).cpuSeconds - cpu0;
  const records = await Promise.all(ids.map((id) => api.get(ns.name, id)));
  const a = analyseSwitches(load, records.map((r, i) => switchRecord(r, i > 0 ? records[i - 1] : undefined)), DRAIN_SECONDS);
  for (const r of a.failed.slice(0, 50)) console.log(`  ${target} @ ${rate}/s failed: ${describeRequest(r)}`);
  for (const r of a.oldAfterConverged.slice(0, 50)) console.log(`  ${target} @ ${rate}/s old after converged: ${describeRequest(r)}`);
  ns.delete().catch(() => undefined);
  return { target, rate, a, g: load.stats(), deployed, cutoverCpu };
}

try {
  for (const rate of RATES) for (const target of TARGETS) scenarios.push(await scenario(target, rate));
} finally {
  await cutover.stop();
  await etcd.destroy();
  await Promise.all(namespaces.map((n) => n.delete().catch(() => undefined)));
  await testbed.release();
}

const f = (x: number) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '-');
const pq = (xs: number[]) => `${f(percentile(xs, 50))} / ${f(percentile(xs, 99))}`;
const header = ['target', 'rate/s', 'switches', 'requests', 'failed', 'old after DEPLOYED', 'old after converged', 'switch → converged p50 / p99 ms',
  'latency during switches p50 / p99 ms', 'latency between p50 / p99 ms', 'achieved req/s', 'generator lag p99 ms', 'cutover CPU s'];
const rows = scenarios.map((s) => [
  s.target, String(s.rate), `${s.deployed - 1}`, String(s.a.requests), String(s.a.failed.length), String(s.a.oldAfterDeployed.length),
  String(s.a.oldAfterConverged.length), pq(s.a.convergenceMs), pq(s.a.duringSwitches), pq(s.a.betweenSwitches),
  s.g.achievedRate.toFixed(1), f(s.g.lagP99Ms), s.cutoverCpu.toFixed(1),
]);
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
const load1 = loadavg();
console.log(`\nblue-green switches under load through Traefik (2 replicas, drain ${DRAIN_SECONDS} s, ${Math.round((Date.now() - started) / 1000)} s;`
  + ` load average ${load0[0]!.toFixed(1)} → ${load1[0]!.toFixed(1)})\n`);
console.log(fmt(header));
console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
for (const r of rows) console.log(fmt(r));
const failed = scenarios.reduce((n, s) => n + s.a.failed.length, 0);
const old = scenarios.reduce((n, s) => n + s.a.oldAfterConverged.length, 0);
console.log(`\n${failed === 0 ? 'goal met' : 'GOAL MISSED'}: ${failed} failed requests; ${old} answered by a replaced version after convergence`);
for (const s of scenarios) {
  console.log(`  ${s.target} @ ${s.rate}/s: generator ${s.g.requests} requests in ${s.g.seconds.toFixed(1)} s, lag p50 ${f(s.g.lagP50Ms)} / p99 ${f(s.g.lagP99Ms)} / max ${f(s.g.lagMaxMs)} ms,`
    + ` ${s.g.connections} connections, ${s.g.maxInFlight} max in flight, ${s.g.cpuSeconds.toFixed(1)} s CPU; version header ≠ body: ${s.a.mismatched}`);
}
process.exitCode = failed === 0 && old === 0 ? 0 : 1;
