/**
 * bench/rollback: instant rollback inside the drain window on the test bed, through the real API
 * of a cutover process. Per round: deploy a new version (a long drain), then POST
 * /deployments/{id}/rollback and measure (a) the switch back itself (every traffic target written:
 * `rolledBack.switchMs`) and (b) request → the replaced record DEPLOYED again, as a client sees it
 * (polling every 5 ms; includes convergence and two etcd transactions). Also the overhead of one
 * pre-switch gate answering at once on 127.0.0.1 (health checks passed → gates passed).
 *
 *   npm run bench:rollback [-- --rounds 20]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { DeployClient } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { waitFor } from '../test/support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { percentile } from './lib/measure.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const ROUNDS = Number(values.rounds);

const receiver = http.createServer((req, res) => {
  req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"pass": true, "reason": "bench"}'));
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const gateUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/gate`;

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const cutover = await CutoverProcess.start({
  CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/bench-${randomUUID().slice(0, 8)}/`, CUTOVER_LOG_LEVEL: 'warn',
  CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_INTERVAL_MS: '100', CUTOVER_INGRESS_CLASS: 'cutover-bench',
  CUTOVER_TEST_GC_INTERVAL_MS: '0', // no forced GCs (the tests' GC pressure) in a measurement
});
const api = new DeployClient(cutover.url);
const ns = await createTestNamespace(kc, 'bench-rollback');
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
try {
  const spec = { appName: 'shop', replicas: 2, frontend: `${ns.name}.example.test`, drainSeconds: 600 };
  let live = await api.deploy(ns.name, { ...spec, preSwitchGates: [{ url: gateUrl, timeoutSeconds: 5, retries: 0 }] });
  const switchMs: number[] = [];
  const requestMs: number[] = [];
  const gateMs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const next = await api.deploy(ns.name, { ...spec, preSwitchGates: [{ url: gateUrl, timeoutSeconds: 5, retries: 0 }] });
    if (next.status !== 'DEPLOYED') throw new Error(`deployment ${next.id} ended ${next.status}: ${next.failureReason}`);
    gateMs.push(Date.parse(next.times.gated) - Date.parse(next.times.healthy));
    await waitFor('the replaced version to drain', async () => (await api.get(ns.name, live.id)).step === 'draining', { intervalMs: 20 });
    const t0 = performance.now();
    const res = await request(`${cutover.url}/deployments/${next.id}/rollback?namespace=${ns.name}`, { method: 'POST' });
    if (res.status !== 202 || res.body.mode !== 'instant') throw new Error(`rollback answered ${res.status}: ${res.text}`);
    await waitFor('the replaced version to be live again', async () => (await api.get(ns.name, live.id)).status === 'DEPLOYED', { intervalMs: 5, timeoutMs: 30_000 });
    requestMs.push(Math.round(performance.now() - t0));
    const rolled = await api.waitForStatus(ns.name, next.id, new Set(['UNDEPLOYED', 'FAILURE']));
    switchMs.push(rolled.rolledBack.switchMs);
    live = await api.get(ns.name, live.id);
    process.stderr.write(`round ${i + 1}/${ROUNDS}: switch back ${rolled.rolledBack.switchMs} ms, request → DEPLOYED ${requestMs.at(-1)} ms\n`);
  }
  const s = sorted(switchMs);
  const r = sorted(requestMs);
  const g = sorted(gateMs);
  console.log(`\ninstant rollback in the drain window on the test bed (${ROUNDS} rounds; stable Service + Ingress; 2 replicas)\n`);
  console.log('| measure | p50 ms | p99 ms | max ms |');
  console.log('|:--|--:|--:|--:|');
  console.log(`| switch back (every traffic target written) | ${percentile(s, 50)} | ${percentile(s, 99)} | ${s.at(-1)} |`);
  console.log(`| request → replaced record DEPLOYED again (client view) | ${percentile(r, 50)} | ${percentile(r, 99)} | ${r.at(-1)} |`);
  console.log(`| one pre-switch gate on 127.0.0.1 (healthy → gates passed) | ${percentile(g, 50)} | ${percentile(g, 99)} | ${g.at(-1)} |`);
} finally {
  await cutover.stop();
  await etcd.destroy();
  await ns.delete();
  await testbed.release();
  receiver.closeAllConnections();
  receiver.close();
}
