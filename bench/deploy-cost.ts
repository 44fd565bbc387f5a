/**
 * bench/deploy-cost (issue #18): what one deployment costs compiled cutover, measured from outside.
 * Starts `--entry` (default dist/src/main.js; e.g. a build of another commit under the repo, so it
 * finds node_modules) on an etcd of its own and the test bed; deploys one app (`--replicas`, drain
 * 0 s, health checks every 100 ms) `--n` times in a row, polling each status every `--poll` ms; reports
 * the process's CPU per deployment (gross: the polls included), etcd gRPC calls per deployment (from
 * etcd's /metrics), switch overhead (last health check → switched) and the record's step times
 * (queued → finished is request → DEPLOYED), plus idle CPU over `--idle` s.
 *
 *   npm run build && node scripts/runtime.mjs node --import tsx bench/deploy-cost.ts [--n 10 --entry dist/src/main.js]
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { TestEtcd } from '../test/support/etcd.js';
import { fakeAppDescriptor } from '../test/support/deploy.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { sampleProcess } from './lib/proc.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '10' }, replicas: { type: 'string', default: '1' }, flags: { type: 'string', default: '' }, idle: { type: 'string', default: '10' }, poll: { type: 'string', default: '100' }, entry: { type: 'string', default: 'dist/src/main.js' } } });
const N = Number(values.n);
const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const ns = await createTestNamespace(kc, 'bench-drive');
const port = await freePort();
const child = spawn(process.execPath, [...values.flags.split(/\s+/).filter(Boolean), values.entry], { stdio: ['ignore', 'inherit', 'inherit'], env: { PATH: process.env['PATH'] ?? '', CUTOVER_AUTH: 'off', CUTOVER_LOG_LEVEL: 'warn', CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/d-${randomUUID().slice(0, 8)}/`, CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_HEALTHCHECK_INTERVAL_MS: '100', CUTOVER_PORT: String(port), ...(process.env.TRACE ? { TRACE: '1' } : {}) } });
const url = `http://127.0.0.1:${port}`;
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => { child.kill('SIGKILL'); void etcd.destroy().finally(() => process.exit(1)); });
const json = async (u: string, init?: { method?: string; json?: unknown }) => {
  const r = await fetch(u, { method: init?.method ?? 'GET', headers: init?.json ? { 'content-type': 'application/json' } : {}, body: init?.json ? JSON.stringify(init.json) : undefined });
  return (await r.json()) as any;
};
const metrics = async () => {
  const t = await (await fetch(`${etcd.endpoint}/metrics`)).text();
  const m = new Map<string, number>();
  for (const l of t.split('\n')) {
    const x = /^grpc_server_handled_total\{.*grpc_method="(\w+)".*\} (\d+)/.exec(l);
    if (x) m.set(x[1]!, (m.get(x[1]!) ?? 0) + Number(x[2]));
  }
  return m;
};
try {
  await waitFor('cutover', async () => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 60_000, intervalMs: 50 });
  const cpu = () => sampleProcess(child.pid!).cpuSeconds;
  let polls = 0;
  const deploy = async () => {
    const d = await json(`${url}/descriptors/?namespace=${ns.name}`, { method: 'POST', json: fakeAppDescriptor(ns.name, { appName: 'drv', replicas: Number(values.replicas) }) });
    const s = await json(`${url}/deployments/?namespace=${ns.name}&descriptorId=${d.id}`, { method: 'POST' });
    return await waitFor('done', async () => { polls++; const r = await json(`${url}/deployments/${s.id}/?namespace=${ns.name}`); return ['DEPLOYED', 'FAILURE'].includes(r.status) ? r : undefined; }, { timeoutMs: 120_000, intervalMs: Number(values.poll) });
  };
  await deploy(); await deploy();
  await new Promise((r) => setTimeout(r, 1000));
  let c0 = cpu(); await new Promise((r) => setTimeout(r, Number(values.idle) * 1000)); console.log('idle ms/s', ((cpu() - c0) * 1000 / Number(values.idle)).toFixed(2));
  c0 = cpu(); for (let i = 0; i < 200; i++) await json(`${url}/deployments/?namespace=${ns.name}&appName=nope`).catch(() => 0);
  const m0 = await metrics(); polls = 0; c0 = cpu();
  const recs: any[] = [];
  for (let i = 0; i < N; i++) recs.push(await deploy());
  const c1 = cpu(); const m1 = await metrics();
  console.log('gross CPU/deployment ms', ((c1 - c0) * 1000 / N).toFixed(1), 'polls/dep', (polls / N).toFixed(1));
  console.log('etcd calls/deployment', [...m1].filter(([k, v]) => v !== (m0.get(k) ?? 0)).map(([k, v]) => `${k}=${((v - (m0.get(k) ?? 0)) / N).toFixed(1)}`).join(' '));
  const ovh: number[] = [];
  for (const r of recs) {
    const h = await json(`${url}/deployments/${r.id}/healthcheckdata?namespace=${ns.name}`);
    const last = Math.max(...h.map((x: any) => Date.parse(x.checkedAt)), Date.parse(r.times.podsReady));
    ovh.push(Date.parse(r.times.switched) - last);
  }
  ovh.sort((a, b) => a - b);
  console.log('RESULT', JSON.stringify({ entry: values.entry, cpu: (c1 - c0) * 1000 / N, ovh50: ovh[Math.floor(N / 2)], ovh: ovh.join(' ') }));
  const lat = (a: string, b: string) => recs.map((r) => Date.parse(r.times[b]) - Date.parse(r.times[a])).sort((x, y) => x - y);
  const med = (xs: number[]) => xs[Math.floor(xs.length / 2)];
  console.log('times keys', Object.keys(recs[0].times).join(','));
  for (const [a, b] of [['queued', 'started'], ['started', 'resourcesCreated'], ['resourcesCreated', 'podsReady'], ['podsReady', 'healthy'], ['healthy', 'switched'], ['switched', 'converged'], ['converged', 'finished'], ['queued', 'finished']] as const) console.log(`${a}→${b} p50`, med(lat(a, b)), 'all', lat(a, b).join(' '));
  const ev = await json(`${url}/deployments/${recs.at(-1).id}/events?namespace=${ns.name}`).catch(() => undefined);
  console.log(JSON.stringify(ev)?.slice(0, 4000));
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  await etcd.destroy(); await ns.delete(); await testbed.release();
}
