/**
 * bench/deploy: real deployments on the test bed. (a) 10 sequential deployments of one app,
 * (b) 20 apps deployed in parallel. Per deployment: time spent waiting for Kubernetes (resources
 * created → all pods ready and healthy) versus cutover's own switch overhead (last pod healthy →
 * traffic switched), plus cutover's CPU and memory.
 *
 *   npm run bench:deploy [-- --sequential 10 --parallel 20]
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { DeployClient, fakeAppDescriptor } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { percentile } from './lib/measure.js';
import { sampleProcess } from './lib/proc.js';

const { values } = parseArgs({ options: { sequential: { type: 'string', default: '10' }, parallel: { type: 'string', default: '20' } } });
const SEQUENTIAL = Number(values.sequential);
const PARALLEL = Number(values.parallel);

interface Timing {
  kubernetesMs: number;
  overheadMs: number;
  totalMs: number;
}

async function timing(api: DeployClient, base: string, ns: string, id: string): Promise<Timing> {
  const d = await api.get(ns, id);
  if (d.status !== 'DEPLOYED') throw new Error(`deployment ${id} ended ${d.status}: ${d.failureReason}`);
  const health = (await request(`${base}/deployments/${id}/healthcheckdata?namespace=${ns}`)).body as Array<{ checkedAt: string }>;
  const lastHealthy = Math.max(...health.map((h) => Date.parse(h.checkedAt)), Date.parse(d.times.podsReady));
  return {
    kubernetesMs: lastHealthy - Date.parse(d.times.resourcesCreated),
    overheadMs: Date.parse(d.times.switched) - lastHealthy,
    totalMs: Date.parse(d.times.switched) - Date.parse(d.times.queued),
  };
}

function row(name: string, ts: Timing[], cpu: number, rss: number): string[] {
  const sorted = (k: keyof Timing) => ts.map((t) => t[k]).sort((a, b) => a - b);
  const k = sorted('kubernetesMs');
  const o = sorted('overheadMs');
  const t = sorted('totalMs');
  return [name, String(ts.length), `${percentile(k, 50)}`, `${percentile(k, 99)}`, `${percentile(o, 50)}`, `${percentile(o, 99)}`, `${percentile(t, 50)}`, cpu.toFixed(2), rss.toFixed(0)];
}

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const cutover = await CutoverProcess.start({
  CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/bench-${randomUUID().slice(0, 8)}/`, CUTOVER_LOG_LEVEL: 'warn',
  CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_HEALTHCHECK_INTERVAL_MS: '100',
  CUTOVER_TEST_GC_INTERVAL_MS: '0', // no forced GCs (the tests' GC pressure) in a measurement
});
const api = new DeployClient(cutover.url);
const namespaces: Array<{ delete(): Promise<void> }> = [];
const rows: string[][] = [];
try {
  // (a) sequential deployments of one app
  const nsA = await createTestNamespace(kc, 'bench-seq');
  namespaces.push(nsA);
  let before = sampleProcess(cutover.pid!);
  const seq: Timing[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const d = await api.deploy(nsA.name, { appName: 'seq', replicas: 2 });
    seq.push(await timing(api, cutover.url, nsA.name, d.id));
  }
  let after = sampleProcess(cutover.pid!);
  rows.push(row(`${SEQUENTIAL} sequential deployments of one app`, seq, after.cpuSeconds - before.cpuSeconds, after.peakRssMiB));

  // (b) many apps in parallel
  const nsB = await createTestNamespace(kc, 'bench-par');
  namespaces.push(nsB);
  before = sampleProcess(cutover.pid!);
  const ids = await Promise.all(Array.from({ length: PARALLEL }, async (_, i) => {
    const descriptorId = await api.createDescriptor(nsB.name, fakeAppDescriptor(nsB.name, { appName: `app${i}`, replicas: 2 }));
    return (await api.startDeployment(nsB.name, descriptorId)).body.id as string;
  }));
  for (const id of ids) await api.waitForStatus(nsB.name, id, undefined, 300_000);
  const par = await Promise.all(ids.map((id) => timing(api, cutover.url, nsB.name, id)));
  after = sampleProcess(cutover.pid!);
  rows.push(row(`${PARALLEL} apps deployed in parallel`, par, after.cpuSeconds - before.cpuSeconds, after.peakRssMiB));

  const header = ['scenario', 'n', 'k8s p50 ms', 'k8s p99 ms', 'overhead p50 ms', 'overhead p99 ms', 'total p50 ms', 'cutover CPU s', 'cutover peak RSS MiB'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log('\nblue-green deployments on the test bed (2 replicas each, probe health check, drain 0 s)\n');
  console.log(fmt(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(fmt(r));
  const allOverheads = [...seq, ...par].map((t) => t.overheadMs).sort((a, b) => a - b);
  console.log(`\noverhead p50 ${percentile(allOverheads, 50)} ms (target ≤ 200), p99 ${percentile(allOverheads, 99)} ms (target ≤ 1000)`);
} finally {
  await cutover.stop();
  await etcd.destroy();
  await Promise.all(namespaces.map((n) => n.delete()));
  await testbed.release();
}
