/**
 * bench/descriptors: latency and throughput of the descriptor API with 1,000 stored descriptors,
 * next to a raw etcd get/put baseline (cutover's etcd client, EtcdStore, with no prefix)
 * against the same etcd, in the same run.
 *
 *   npm run bench:descriptors [-- --requests 3000 --concurrency 16]
 *
 * cutover runs as its own process (as in production); the client, etcd and cutover share the
 * machine, so absolute numbers depend on it — compare rows of one run.
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { EtcdStore } from '../src/store/etcd.js';
import { TestEtcd } from '../test/support/etcd.js';
import { CutoverProcess } from '../test/support/process.js';
import { sampleDescriptor } from '../test/support/http.js';
import { unreachableKubeconfig } from '../test/support/cutover.js';
import { measure, printTable, type Row } from './lib/measure.js';

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '3000' },
    concurrency: { type: 'string', default: '16' },
    stored: { type: 'string', default: '1000' },
  },
});
const N = Number(values.requests);
const C = Number(values.concurrency);
const STORED = Number(values.stored);

const etcd = await TestEtcd.create();
const prefix = `/bench-${randomUUID().slice(0, 8)}/`;
const cutover = await CutoverProcess.start({ CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: prefix, CUTOVER_LOG_LEVEL: 'warn', CUTOVER_KUBECONFIG: unreachableKubeconfig(), CUTOVER_TEST_GC_INTERVAL_MS: '0' });
const agent = new Agent({ connections: C * 2, pipelining: 1 });
const raw = new EtcdStore({ endpoints: [etcd.endpoint], prefix: '', timeoutMs: 5000 });

try {
  const ns = 'bench';
  const body = JSON.stringify(sampleDescriptor());
  const post = async () => {
    const res = await request(`${cutover.url}/descriptors/?namespace=${ns}`, {
      method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body,
    });
    const text = await res.body.text();
    if (res.statusCode !== 201) throw new Error(`POST answered ${res.statusCode}: ${text}`);
    return (JSON.parse(text) as { id: string }).id;
  };

  process.stderr.write(`seeding ${STORED} descriptors…\n`);
  const ids: string[] = [];
  for (let i = 0; i < STORED; i += 50) ids.push(...(await Promise.all(Array.from({ length: Math.min(50, STORED - i) }, post))));
  const rawKeys = ids.map((id) => `${prefix}descriptors/${ns}/${id}`);
  const storedValue = (await raw.get(rawKeys[0]!))!.value;

  const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;
  const getById = async () => {
    const res = await request(`${cutover.url}/descriptors/${pick(ids)}/?namespace=${ns}`, { dispatcher: agent });
    await res.body.text();
    if (res.statusCode !== 200) throw new Error(`GET answered ${res.statusCode}`);
  };
  const rawGet = async () => {
    if ((await raw.get(pick(rawKeys))) === undefined) throw new Error('raw get found nothing');
  };
  const rawPut = async () => {
    await raw.transact([], [{ type: 'put', key: `${prefix}raw/${randomUUID()}`, value: storedValue }]);
  };

  // Warm up connections and JIT before measuring.
  await measure('warm-up', 300, C, getById);
  await measure('warm-up', 300, C, rawGet);

  const rows: Row[] = [];
  for (const [name, fn, concurrency] of [
    ['raw etcd get (c=1)', rawGet, 1], ['GET /descriptors/{id} (c=1)', getById, 1],
    ['raw etcd put (c=1)', rawPut, 1], ['POST /descriptors (c=1)', post, 1],
    [`raw etcd get (c=${C})`, rawGet, C], [`GET /descriptors/{id} (c=${C})`, getById, C],
    [`raw etcd put (c=${C})`, rawPut, C], [`POST /descriptors (c=${C})`, post, C],
  ] as const) {
    rows.push(await measure(name, concurrency === 1 ? Math.min(N, 1000) : N, concurrency, fn));
  }
  printTable(`descriptor API vs raw etcd — ${STORED} stored descriptors, ${N} requests per concurrent row`, rows);

  const target = (rawRow: Row, apiRow: Row) => 2 * rawRow.p99 + 1;
  for (const [rawName, apiName] of [['raw etcd get (c=1)', 'GET /descriptors/{id} (c=1)'], [`raw etcd get (c=${C})`, `GET /descriptors/{id} (c=${C})`]]) {
    const r = rows.find((x) => x.name === rawName)!;
    const a = rows.find((x) => x.name === apiName)!;
    const limit = target(r, a);
    console.log(`${apiName}: p99 ${a.p99.toFixed(2)} ms, target ≤ 2 × ${r.p99.toFixed(2)} + 1 = ${limit.toFixed(2)} ms → ${a.p99 <= limit ? 'MET' : 'MISSED'}`);
  }
} finally {
  await raw.close();
  await agent.close();
  await cutover.stop();
  await etcd.destroy();
}
