/**
 * bench/footprint (issue #18, "lean and fast"): memory and CPU of compiled cutover
 * (`node dist/src/main.js`, run `npm run build` first) as a child process, against a real etcd of
 * its own and the test bed's Kubernetes. Measured from outside through /proc/<pid>/stat and
 * /proc/<pid>/status (CPU of all the process's threads, 10 ms ticks):
 *
 *   - RSS once started and idle for 2 s
 *   - CPU while idle (ms per s over --idle-seconds), in all and by thread (schedstat of each of /proc/<pid>/task)
 *   - CPU per status GET `GET /deployments/{id}/?namespace=NS` (--gets sequential requests after a warm-up)
 *   - CPU per deployment of one app (replicas 1, drain 0 s), net of the bench's own status polling
 *     (polls × CPU per GET), and RSS every tenth of the deployments (the soak growth)
 *   - with --descriptors N: RSS after N descriptors were created through the API (and listed)
 *   - heap breakdown at the end: the child's process.memoryUsage(), V8 heap spaces and the largest
 *     constructors of a heap snapshot, read through the inspector (activated by SIGUSR1 only then,
 *     so it costs nothing during the measurements)
 *   - with --modules: RSS, heap and CPU of importing each main dependency alone in a fresh process
 *
 *   npm run bench:footprint [-- --deployments 50 --idle-seconds 30 --gets 2000 --descriptors 0 --node-flags="--max-semi-space-size=2" --modules --heap-during 200]
 *
 * Without --node-flags, cutover runs with production's flags (those of `npm run serve`).
 *
 * CPU figures are noisy on a shared machine: run it several times and compare medians.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TestEtcd } from '../test/support/etcd.js';
import { fakeAppDescriptor } from '../test/support/deploy.js';
import { request } from '../test/support/http.js';
import { freePort } from '../test/support/ports.js';
import { waitFor } from '../test/support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed } from '../test/testbed/harness.js';
import { percentile } from './lib/measure.js';
import { sampleProcess, sampleThreads, threadCpuByName } from './lib/proc.js';
import { productionNodeFlags } from './lib/production.js';

const { values } = parseArgs({
  options: {
    deployments: { type: 'string', default: '50' },
    'idle-seconds': { type: 'string', default: '30' },
    gets: { type: 'string', default: '2000' },
    descriptors: { type: 'string', default: '0' },
    'node-flags': { type: 'string' },
    modules: { type: 'boolean', default: false },
    'heap-top': { type: 'string', default: '15' },
    'heap-during': { type: 'string', default: '0' },
  },
});
const DEPLOYMENTS = Number(values.deployments);
const IDLE_SECONDS = Number(values['idle-seconds']);
const GETS = Number(values.gets);
const DESCRIPTORS = Number(values.descriptors);
const NODE_FLAGS = values['node-flags'] === undefined ? productionNodeFlags() : values['node-flags'].split(/\s+/).filter(Boolean);
const HEAP_TOP = Number(values['heap-top']);
/** After this many of the deployments (0: never), the live heap while deploying: a full GC and a snapshot (costs CPU; diagnostic). */
const HEAP_DURING = Number(values['heap-during']);

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const ENTRY = 'dist/src/main.js';
if (!existsSync(`${REPO_ROOT}${ENTRY}`)) throw new Error(`${ENTRY} is missing: run npm run build first`);

const MiB = 1024 * 1024;
const rows: Array<[string, string]> = [];
const out = (name: string, value: string) => {
  rows.push([name, value]);
  process.stderr.write(`  ${name}: ${value}\n`);
};

/** cutover compiled, as production runs it: no test loader, no forced GCs. */
class Child {
  readonly output: string[] = [];
  private inspectorUrl: string | undefined;

  private constructor(readonly child: ChildProcess, readonly url: string) {}

  static async start(env: Record<string, string>): Promise<Child> {
    const port = await freePort();
    const child = spawn(process.execPath, [...NODE_FLAGS, '--inspect-port=0', ENTRY], {
      cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'],
      // glibc's MALLOC_* settings pass through (MALLOC_ARENA_MAX=2: the allocator's share of RSS).
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...mallocEnv(), CUTOVER_AUTH: 'off', CUTOVER_LOG_LEVEL: 'warn', ...env, CUTOVER_PORT: String(port) },
    });
    const c = new Child(child, `http://127.0.0.1:${port}`);
    for (const s of [child.stdout!, child.stderr!]) {
      s.setEncoding('utf8');
      s.on('data', (chunk: string) => {
        c.output.push(chunk);
        const m = /Debugger listening on (ws:\/\/\S+)/.exec(chunk);
        if (m) c.inspectorUrl = m[1];
      });
    }
    await waitFor('cutover to answer /healthz', async () => {
      if (child.exitCode !== null) throw new Error(`cutover exited with ${child.exitCode}: ${c.output.join('').slice(-2000)}`);
      return (await fetch(`${c.url}/healthz`).catch(() => undefined))?.ok;
    }, { timeoutMs: 60_000, intervalMs: 50 });
    return c;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** CPU seconds of the process so far (all threads). */
  cpu(): number {
    return sampleProcess(this.pid).cpuSeconds;
  }

  rssMiB(): number {
    return sampleProcess(this.pid).rssMiB;
  }

  /** Evaluates expressions and runs commands in the child through the inspector (SIGUSR1 activates it). */
  async inspect<T>(fn: (send: (method: string, params?: object) => Promise<any>, on: (method: string, cb: (params: any) => void) => void) => Promise<T>): Promise<T> {
    if (!this.inspectorUrl) {
      this.child.kill('SIGUSR1');
      await waitFor('the inspector to listen', () => this.inspectorUrl, { timeoutMs: 10_000, intervalMs: 20 });
    }
    const ws = new WebSocket(this.inspectorUrl!);
    await once(ws as unknown as EventTarget & NodeJS.EventEmitter, 'open');
    let seq = 0;
    const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    const listeners = new Map<string, (params: unknown) => void>();
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: unknown };
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result);
      } else if (msg.method) listeners.get(msg.method)?.(msg.params);
    });
    const send = (method: string, params: object = {}) => new Promise<any>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
    try {
      return await fn(send, (method, cb) => listeners.set(method, cb));
    } finally {
      ws.close();
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

async function json(url: string, init?: Parameters<typeof request>[1]): Promise<any> {
  const res = await request(url, init);
  if (res.status >= 300) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  return res.body;
}

function mallocEnv(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('MALLOC_') && e[1] !== undefined));
}

/** Heap snapshot through the inspector, aggregated: self size by node type and constructor name. */
async function heapBreakdown(c: Child): Promise<{ beforeGc: NodeJS.MemoryUsage; memory: NodeJS.MemoryUsage; spaces: Array<{ space_name: string; space_used_size: number; space_size: number }>; top: Array<[string, number, number]>; total: number }> {
  return c.inspect(async (send, on) => {
    const evaluate = async (expression: string) => JSON.parse((await send('Runtime.evaluate', { expression, returnByValue: true })).result.value as string);
    const beforeGc = await evaluate('JSON.stringify(process.memoryUsage())');
    await send('HeapProfiler.collectGarbage');
    const memory = await evaluate('JSON.stringify(process.memoryUsage())');
    const spaces = await evaluate("JSON.stringify(process.getBuiltinModule('v8').getHeapSpaceStatistics())");
    const chunks: string[] = [];
    on('HeapProfiler.addHeapSnapshotChunk', (p: { chunk: string }) => chunks.push(p.chunk));
    await send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    const snap = JSON.parse(chunks.join('')) as { snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }; nodes: number[]; strings: string[] };
    const fields = snap.snapshot.meta.node_fields;
    const nf = fields.length;
    const iType = fields.indexOf('type');
    const iName = fields.indexOf('name');
    const iSize = fields.indexOf('self_size');
    const types = snap.snapshot.meta.node_types[0];
    const by = new Map<string, [number, number]>();
    let total = 0;
    for (let i = 0; i < snap.nodes.length; i += nf) {
      const type = types[snap.nodes[i + iType]!]!;
      const size = snap.nodes[i + iSize]!;
      total += size;
      // Objects by constructor; strings, code, arrays and the rest by their type.
      const key = type === 'object' || type === 'native' ? `${type}: ${snap.strings[snap.nodes[i + iName]!]}` : `(${type})`;
      const e = by.get(key) ?? [0, 0];
      e[0] += size;
      e[1] += 1;
      by.set(key, e);
    }
    const top = [...by.entries()].sort((a, b) => b[1][0] - a[1][0]).slice(0, HEAP_TOP).map(([k, [size, n]]) => [k, size, n] as [string, number, number]);
    return { beforeGc, memory, spaces, top, total };
  });
}

/** RSS, heap and CPU of importing each module alone in a fresh process (run from the repo, compiled). */
function moduleCosts(): Array<[string, string]> {
  const mods = ['koa', '@koa/router', '@koa/bodyparser', 'joi', 'joi-to-json', 'prom-client', 'undici', 'ws', 'bunyan', 'cloudevents', 'jose', 'tldts', 'yaml', 'commander',
    './dist/src/store/etcd.js', './dist/src/kube/client.js', './dist/src/api/app.js', './dist/src/api/openapi.js', './dist/src/api/routes/docs.js', './dist/src/deployer/engine.js', './dist/src/service.js'];
  const script = `
    const m0 = process.memoryUsage(); const c0 = process.cpuUsage();
    await import(process.argv[1].startsWith('./') ? new URL(process.argv[1], 'file://${REPO_ROOT}').href : process.argv[1]);
    globalThis.gc(); const m1 = process.memoryUsage(); const c1 = process.cpuUsage(c0);
    console.log(JSON.stringify({ rss: m1.rss, drss: m1.rss - m0.rss, heap: m1.heapUsed - m0.heapUsed, cpu: (c1.user + c1.system) / 1000 }));`;
  const base = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script.replace(/await import\([^;]*;/, ''), 'node:fs'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const res: Array<[string, string]> = [['(node itself)', `RSS ${(JSON.parse(base.stdout).rss / MiB).toFixed(1)} MiB`]];
  for (const m of mods) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, m], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (r.status !== 0) {
      res.push([m, `failed: ${r.stderr.split('\n').find((l) => l.includes('Error')) ?? r.status}`]);
      continue;
    }
    const v = JSON.parse(r.stdout) as { rss: number; drss: number; heap: number; cpu: number };
    res.push([m, `+${(v.drss / MiB).toFixed(1)} MiB RSS, +${(v.heap / MiB).toFixed(1)} MiB heap, ${v.cpu.toFixed(0)} ms CPU`]);
  }
  return res;
}

function printTable(title: string, table: Array<[string, string]>): void {
  const w = Math.max(...table.map(([k]) => k.length), 'measure'.length);
  const v = Math.max(...table.map(([, x]) => x.length), 'value'.length);
  console.log(`\n${title}\n`);
  console.log(`| ${'measure'.padEnd(w)} | ${'value'.padEnd(v)} |`);
  console.log(`|:${'-'.repeat(w + 1)}|:${'-'.repeat(v + 1)}|`);
  for (const [k, x] of table) console.log(`| ${k.padEnd(w)} | ${x.padEnd(v)} |`);
}

const testbed = await useTestbed();
const kc = loadKubeConfig(testbed.kubeconfigPath);
const etcd = await TestEtcd.create();
const ns = await createTestNamespace(kc, 'bench-footprint');
let c: Child | undefined;
try {
  c = await Child.start({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: `/footprint-${randomUUID().slice(0, 8)}/`,
    CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_HEALTHCHECK_INTERVAL_MS: '100',
  });
  out('node flags', NODE_FLAGS.join(' ') || '(none)');
  await new Promise((r) => setTimeout(r, 2000)); // a fixed settle time before the first reading, not a condition
  out('RSS at start', `${c.rssMiB().toFixed(1)} MiB`);

  // Idle: nothing asks anything of cutover.
  let cpu0 = c.cpu();
  const threads0 = sampleThreads(c.pid);
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const idle = ((c.cpu() - cpu0) * 1000) / IDLE_SECONDS;
  const idleThreads = threadCpuByName(threads0, sampleThreads(c.pid), IDLE_SECONDS);
  out(`idle CPU over ${IDLE_SECONDS} s`, `${idle.toFixed(2)} ms/s`);
  out('idle CPU by thread (ms/s, wakeups/s)', idleThreads.filter((t) => t.wakeupsPerS > 0)
    .map((t) => `${t.name}${t.threads > 1 ? ` ×${t.threads}` : ''} ${t.cpuMsPerS.toFixed(2)}, ${t.wakeupsPerS.toFixed(1)}`).join('; '));
  out('RSS after idle', `${c.rssMiB().toFixed(1)} MiB`);

  if (DESCRIPTORS > 0) {
    for (let i = 0; i < DESCRIPTORS; i++) {
      await json(`${c.url}/descriptors/?namespace=${ns.name}`, { method: 'POST', json: fakeAppDescriptor(ns.name, { appName: `d${i % 100}` }) });
    }
    await json(`${c.url}/descriptors/?namespace=${ns.name}`);
    out(`RSS after ${DESCRIPTORS} descriptors`, `${c.rssMiB().toFixed(1)} MiB`);
  }

  // Deployments of one app, one after the other; the bench polls each one's status every 100 ms.
  let polls = 0;
  const deploy = async (): Promise<string> => {
    const d = await json(`${c!.url}/descriptors/?namespace=${ns.name}`, { method: 'POST', json: fakeAppDescriptor(ns.name, { appName: 'lean', replicas: 1 }) });
    const started = await json(`${c!.url}/deployments/?namespace=${ns.name}&descriptorId=${d.id}`, { method: 'POST' });
    const id = started.id as string;
    const final = await waitFor(`deployment ${id}`, async () => {
      polls++;
      const r = await json(`${c!.url}/deployments/${id}/?namespace=${ns.name}`);
      return ['DEPLOYED', 'FAILURE', 'UNDEPLOYED'].includes(r.status) ? r : undefined;
    }, { timeoutMs: 180_000, intervalMs: 100 });
    if (final.status !== 'DEPLOYED') throw new Error(`deployment ${id} ended ${final.status}: ${final.failureReason}`);
    return id;
  };
  const firstId = await deploy();

  // CPU per status GET, after a warm-up.
  const statusUrl = `${c.url}/deployments/${firstId}/?namespace=${ns.name}`;
  for (let i = 0; i < 200; i++) await json(statusUrl);
  cpu0 = c.cpu();
  const latencies: number[] = [];
  for (let i = 0; i < GETS; i++) {
    const t0 = performance.now();
    await json(statusUrl);
    latencies.push(performance.now() - t0);
  }
  const perGetMs = ((c.cpu() - cpu0) * 1000) / GETS;
  latencies.sort((a, b) => a - b);
  out(`CPU per status GET (${GETS} sequential)`, `${perGetMs.toFixed(3)} ms (latency p50 ${percentile(latencies, 50).toFixed(2)} ms)`);

  if (DEPLOYMENTS > 0) {
    const checkpoints: Array<[number, number]> = [];
    const every = Math.max(1, Math.round(DEPLOYMENTS / 10));
    polls = 0;
    cpu0 = c.cpu();
    const t0 = performance.now();
    for (let i = 1; i <= DEPLOYMENTS; i++) {
      await deploy();
      if (i % every === 0 || i === DEPLOYMENTS) checkpoints.push([i, c.rssMiB()]);
      if (i === HEAP_DURING) {
        const during = await heapBreakdown(c);
        const mib = (m: NodeJS.MemoryUsage) => `rss ${(m.rss / MiB).toFixed(1)}, heapTotal ${(m.heapTotal / MiB).toFixed(1)}, heapUsed ${(m.heapUsed / MiB).toFixed(1)}, external ${(m.external / MiB).toFixed(1)} MiB`;
        printTable(`heap after deployment ${i} of ${DEPLOYMENTS}: before a full GC ${mib(during.beforeGc)}; after it ${mib(during.memory)}; largest after it`,
          during.top.map(([k, size, n]) => [k, `${(size / MiB).toFixed(2)} MiB in ${n} objects`]));
      }
    }
    const cpuMs = (c.cpu() - cpu0) * 1000;
    const net = (cpuMs - polls * perGetMs) / DEPLOYMENTS;
    out(`CPU per deployment (${DEPLOYMENTS}, net of ${polls} polls)`, `${net.toFixed(1)} ms (gross ${(cpuMs / DEPLOYMENTS).toFixed(1)} ms, ${((performance.now() - t0) / DEPLOYMENTS / 1000).toFixed(1)} s each)`);
    out('RSS during deployments', checkpoints.map(([n, r]) => `${n}: ${r.toFixed(0)}`).join(', ') + ' MiB');
    const first = checkpoints[0]![1];
    const last = checkpoints[checkpoints.length - 1]![1];
    out(`RSS after ${DEPLOYMENTS} deployments`, `${last.toFixed(1)} MiB (${(((last - first) / first) * 100).toFixed(1)} % over the soak from deployment ${checkpoints[0]![0]})`);
  }
  out('peak RSS', `${sampleProcess(c.pid).peakRssMiB.toFixed(1)} MiB`);

  const heap = await heapBreakdown(c);
  const m = heap.memory;
  out('memoryUsage after a full GC', `rss ${(m.rss / MiB).toFixed(1)}, heapTotal ${(m.heapTotal / MiB).toFixed(1)}, heapUsed ${(m.heapUsed / MiB).toFixed(1)}, external ${(m.external / MiB).toFixed(1)}, arrayBuffers ${(m.arrayBuffers / MiB).toFixed(1)} MiB`);
  out('V8 heap spaces (used/size MiB)', heap.spaces.filter((s) => s.space_size > 0).map((s) => `${s.space_name.replace('_space', '')} ${(s.space_used_size / MiB).toFixed(1)}/${(s.space_size / MiB).toFixed(1)}`).join(', '));
  printTable('cutover footprint (compiled, child process; CPU from /proc, shared machine: compare medians of several runs)', rows);
  printTable(`heap snapshot after a full GC: ${(heap.total / MiB).toFixed(1)} MiB in all, largest by constructor or type`, heap.top.map(([k, size, n]) => [k, `${(size / MiB).toFixed(2)} MiB in ${n} objects`]));
  if (values.modules) printTable('importing one module alone in a fresh process (compiled; + over node itself)', moduleCosts());
} finally {
  await c?.stop();
  await etcd.destroy();
  await ns.delete();
  await testbed.release();
}
