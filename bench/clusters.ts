/**
 * bench/clusters: a release to an environment of two clusters against a deployment to each
 * cluster alone, on the test bed's two control planes (`npm run testbed -- up --clusters 2`),
 * through the real API of a cutover process. Per round, request → DEPLOYED as a client sees it
 * (polling every 20 ms): cluster one alone, cluster two alone, then both as one release. The
 * release runs both clusters in parallel, so it should take about as long as the slower cluster,
 * not the sum.
 *
 *   npm run bench:clusters [-- --rounds 10]
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../test/support/etcd.js';
import { writeBedRegistry } from '../test/support/clusters.js';
import { CutoverProcess } from '../test/support/process.js';
import { DeployClient, fakeAppDescriptor } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { waitFor } from '../test/support/wait.js';
import { createNamespaceNamed, createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { percentile } from './lib/measure.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10' } } });
const ROUNDS = Number(values.rounds);

const testbed = await useTestbed({ clusters: 2 });
if (!testbed.cluster2) throw new Error('the test bed has one cluster: npm run testbed -- up --clusters 2');
const { dir, file: registry } = writeBedRegistry(testbed, { one: 'production', two: 'production' });
const etcd = await TestEtcd.create();
const cutover = await CutoverProcess.start({
  CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/bench-${randomUUID().slice(0, 8)}/`, CUTOVER_LOG_LEVEL: 'warn',
  CUTOVER_CLUSTERS_FILE: registry, CUTOVER_HEALTHCHECK_INTERVAL_MS: '100', CUTOVER_DRAIN_SECONDS: '0',
  CUTOVER_TEST_GC_INTERVAL_MS: '0', // no forced GCs (the tests' GC pressure) in a measurement
});
const api = new DeployClient(cutover.url);
const ns1 = await createTestNamespace(loadKubeConfig(testbed.kubeconfigPath), 'bench-clusters');
const ns2 = await createNamespaceNamed(loadKubeConfig(testbed.cluster2.kubeconfigPath), ns1.name);
const ns = ns1.name;
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

async function timed(target: string): Promise<number> {
  const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 2 }));
  const t0 = performance.now();
  const res = await request(`${cutover.url}/deployments/?namespace=${ns}&descriptorId=${descriptorId}&${target}`, { method: 'POST' });
  if (res.status !== 202) throw new Error(`deploy ${target}: ${res.status} ${res.text}`);
  const releaseId = res.body.deployments ? res.body.id : res.body.release;
  const release = await waitFor(`release ${releaseId}`, async () => {
    const r = (await request(`${cutover.url}/releases/${releaseId}/?namespace=${ns}`)).body;
    return r.status !== 'DEPLOYING' ? r : undefined;
  }, { intervalMs: 20, timeoutMs: 120_000 });
  if (release.status !== 'DEPLOYED') throw new Error(`release ${releaseId} (${target}) ended ${release.status}: ${JSON.stringify(release.deployments)}`);
  return Math.round(performance.now() - t0);
}

try {
  const one: number[] = [];
  const two: number[] = [];
  const both: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    one.push(await timed('cluster=one'));
    two.push(await timed('cluster=two'));
    both.push(await timed('environment=production'));
    process.stderr.write(`round ${i + 1}/${ROUNDS}: one ${one.at(-1)} ms, two ${two.at(-1)} ms, both ${both.at(-1)} ms\n`);
  }
  const slower = one.map((x, i) => Math.max(x, two[i]!));
  const sum = one.map((x, i) => x + two[i]!);
  console.log(`\nrequest → DEPLOYED on the test bed's two clusters (${ROUNDS} rounds; 2 replicas; health check on; drain 0 s)\n`);
  console.log('| deploy | p50 ms | p90 ms | max ms |');
  console.log('|:--|--:|--:|--:|');
  for (const [label, xs] of [['cluster one alone', one], ['cluster two alone', two], ['slower of the two (per round)', slower], ['sum of the two (per round)', sum], ['environment of both, one release', both]] as const) {
    const s = sorted(xs);
    console.log(`| ${label} | ${percentile(s, 50)} | ${percentile(s, 90)} | ${s.at(-1)} |`);
  }
} finally {
  await cutover.stop();
  await etcd.destroy();
  await Promise.all([ns1.delete(), ns2.delete()]);
  await testbed.release();
  rmSync(dir, { recursive: true, force: true });
}
