/**
 * bench/logstream: the log websocket under many watchers. Lines are written straight to etcd
 * with DeploymentStore at a steady rate (as the engine of some replica would), each carrying its
 * write timestamp; every watcher computes write → receipt latency and checks that it got every
 * line exactly once, in order, and the close 1000 DEPLOYED at the end. (A) 1,000 watchers on one
 * deployment, (B) 100 deployments × 10 watchers, (C, issue #18 "wide") 10,000 watchers over 500
 * deployments at 1 line/s each. cutover runs as its own process; its CPU and memory come from
 * /proc; "idle KiB/watcher" is cutover's RSS growth from connecting the watchers (before any line),
 * divided by their number. 10,000 watchers need 10,000+ file descriptors in this process and in
 * cutover (ulimit -n; both inherit the shell's).
 *
 *   npm run bench:logstream [-- --rate-a 50 --rate-b 10 --seconds 10 --watchers 1000 --deployments 100 --per-deployment 10 --client-threads 1 --scenarios A,B]
 *   npm run bench:logstream -- --scenarios C [--deployments-c 500 --per-deployment-c 20 --rate-c 1 --seconds-c 20 --client-threads 2]
 *
 * B's default rate is lower because one etcd client (the writer here, and cutover's engine too)
 * tops out at roughly 2,000 small transactions per second on a 2-core machine: 100 deployments ×
 * 50 lines/s could not even be written, and the table would measure the writer.
 *
 * The watchers run in worker thread(s), so the writer's timestamps are not delayed by them. The
 * writer, the watchers, etcd and cutover share the machine's cores, so latency includes the etcd
 * write and the watchers' own event loops.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RawWebSocket } from '../test/integration/logstream-support.js';
import { table } from './lib/measure.js';
import type { TestEtcd } from '../test/support/etcd.js';
import type { CutoverProcess } from '../test/support/process.js';
import type { EngineStandIn, SimulatedDeployment } from '../test/integration/logstream-support.js';

const now = () => performance.timeOrigin + performance.now();

/** Machine-wide CPU ticks from /proc/stat: busy, idle and stolen (the hypervisor ran someone else). */
function machineTicks(): { busy: number; idle: number; steal: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal };
}

// ---- watcher threads --------------------------------------------------------------------------

type ToWatchers = { type: 'finish'; lines: number; timeoutMs: number };
type FromWatchers =
  | { type: 'connected' }
  | { type: 'result'; latencies: Float64Array; received: number; lost: number; duplicated: number; badCloses: number };

/** One websocket that checks order and completeness of the bench lines and records latency. */
class Watcher {
  private nextLine = 1;
  received = 0;
  lost = 0;
  duplicated = 0;

  private constructor(readonly socket: RawWebSocket, private readonly latencies: number[]) {}

  static async open(url: string, latencies: number[]): Promise<Watcher> {
    const socket = await RawWebSocket.connect(url);
    const watcher = new Watcher(socket, latencies);
    socket.onData = (payload) => watcher.onLine(payload.toString('latin1'));
    socket.read();
    return watcher;
  }

  /** Lines look like "<time> bench n=<line> t=<write time ms>"; others (backlog, warm-up) are skipped. */
  private onLine(text: string): void {
    const at = text.indexOf(' bench n=');
    if (at < 0) return;
    const receivedAt = now();
    const tAt = text.indexOf(' t=', at);
    const n = Number(text.slice(at + 9, tAt));
    this.latencies.push(receivedAt - Number(text.slice(tAt + 3)));
    this.received++;
    if (n === this.nextLine) this.nextLine++;
    else if (n < this.nextLine) this.duplicated++;
    else {
      this.lost += n - this.nextLine;
      this.nextLine = n + 1;
    }
  }

  /** Lines never received (a gap at the tail counts too). */
  missing(total: number): number {
    return this.lost + Math.max(0, total - (this.nextLine - 1));
  }

  closedWith(code: number, reason: string): boolean {
    return this.socket.close?.code === code && this.socket.close.reason === reason;
  }
}

async function watcherThread(urls: string[]): Promise<void> {
  const port = parentPort!;
  const latencies: number[] = [];
  const watchers: Watcher[] = [];
  for (let i = 0; i < urls.length; i += 50) watchers.push(...(await Promise.all(urls.slice(i, i + 50).map((url) => Watcher.open(url, latencies)))));
  port.postMessage({ type: 'connected' } satisfies FromWatchers);
  const finish = await new Promise<ToWatchers>((resolve) => port.once('message', resolve));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(watchers.map((w) => w.socket.closed)), new Promise((resolve) => {
    timer = setTimeout(resolve, finish.timeoutMs);
  })]);
  clearTimeout(timer);
  for (const w of watchers) w.socket.destroy();
  const result: FromWatchers = {
    type: 'result',
    latencies: new Float64Array(latencies),
    received: watchers.reduce((s, w) => s + w.received, 0),
    lost: watchers.reduce((s, w) => s + w.missing(finish.lines), 0),
    duplicated: watchers.reduce((s, w) => s + w.duplicated, 0),
    badCloses: watchers.filter((w) => !w.closedWith(1000, 'DEPLOYED')).length,
  };
  port.postMessage(result, [result.latencies.buffer as ArrayBuffer]);
}

/** This file again, in a worker thread (registering tsx there first: workers do not inherit it). */
function startWatcherThread(urls: string[]): Worker {
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: urls });
}

if (!isMainThread) {
  await watcherThread(workerData as string[]);
} else {
  await main();
}

// ---- main thread: etcd, cutover, writer, report ------------------------------------------------

interface Result {
  scenario: string;
  /** Lines per second per deployment. */
  rate: number;
  watchers: number;
  linesWritten: number;
  framesExpected: number;
  received: number;
  lost: number;
  duplicated: number;
  badCloses: number;
  p50: number;
  p99: number;
  max: number;
  /** Line writes that failed and were retried by the writer (etcd too slow); none are written twice. */
  writeRetries: number;
  /** How long the etcd write of a line took (part of the latency above). */
  writeP50: number;
  writeP99: number;
  cutoverCpuPercent: number;
  rssBefore: number;
  rssAfter: number;
  /** cutover's RSS growth from connecting the watchers, per watcher (KiB), before any line was written. */
  idleKiBPerWatcher: number;
  peakRss: number;
  /** The other processes on the same cores. */
  etcdCpuPercent: number;
  /** This process: the writer and the watcher thread(s). */
  benchCpuPercent: number;
  /** Of all CPU time of the machine in the window: busy, and stolen by the hypervisor. */
  machineBusyPercent: number;
  stealPercent: number;
  /** CPU used by processes outside this benchmark (e.g. other work on a shared machine), in % of one core. */
  othersCpuPercent: number;
}

async function main(): Promise<void> {
  // Loaded here, not at the top: the watcher threads need none of it.
  const { TestEtcd } = await import('../test/support/etcd.js');
  const { CutoverProcess } = await import('../test/support/process.js');
  const { unreachableKubeconfig } = await import('../test/support/cutover.js');
  const { EngineStandIn, streamUrl } = await import('../test/integration/logstream-support.js');
  const { percentile } = await import('./lib/measure.js');
  const { sampleProcess } = await import('./lib/proc.js');

  const { values } = parseArgs({
    options: {
      'rate-a': { type: 'string', default: '50' },
      'rate-b': { type: 'string', default: '10' },
      seconds: { type: 'string', default: '10' },
      watchers: { type: 'string', default: '1000' },
      deployments: { type: 'string', default: '100' },
      'per-deployment': { type: 'string', default: '10' },
      'client-threads': { type: 'string', default: '1' },
      'deployments-c': { type: 'string', default: '500' },
      'per-deployment-c': { type: 'string', default: '20' },
      'rate-c': { type: 'string', default: '1' },
      'seconds-c': { type: 'string', default: '20' },
      scenarios: { type: 'string', default: 'A,B' },
    },
  });
  const SECONDS = Number(values.seconds);
  const THREADS = Number(values['client-threads']);

  /** Writes that failed (etcd too slow) and were retried by the writer, per scenario. */
  let writeRetries = 0;
  /** The last sequence number written per deployment: where "did my failed write land?" looks from. */
  const lastSeq = new Map<string, number>();

  /**
   * One line, exactly once, however slow etcd is: the writer is the load generator, not what is
   * measured, so a write that fails (a timeout of a starved etcd, 5 s, 10 s) is retried with
   * backoff — but only after reading the log back: a write whose answer was lost may have landed,
   * and writing it again would be a duplicate that the watchers would blame on cutover.
   */
  async function lineExactlyOnce(d: SimulatedDeployment, message: string): Promise<void> {
    const pause = (attempt: number) => new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000)));
    for (let attempt = 0; ; attempt++) {
      try {
        lastSeq.set(d.id, await d.line(message));
        return;
      } catch (err) {
        writeRetries++;
        if (attempt >= 10) throw err;
      }
      // Did it land? Ask until etcd answers (a failed read proves nothing either way).
      for (let read = 0; ; read++) {
        try {
          const { events } = await engine.store.events(d.namespace, d.id, lastSeq.get(d.id) ?? 0);
          const landed = events.find((e) => e.type === 'log' && e.message === message);
          if (landed) {
            lastSeq.set(d.id, landed.seq);
            return;
          }
          break;
        } catch (err) {
          if (read >= 10) throw err;
          await pause(read);
        }
      }
      await pause(attempt);
    }
  }

  /** Writes `lines` lines to every deployment at `rate` per second each; returns how long each write took. */
  async function writeSteadily(deployments: SimulatedDeployment[], rate: number, lines: number, text: (n: number, writeStart: number) => string): Promise<number[]> {
    const intervalMs = 1000 / rate;
    const writeMs: number[] = [];
    const t0 = now() + 50;
    await Promise.all(deployments.map(async (d) => {
      const offset = Math.random() * intervalMs; // spread the deployments over each interval
      for (let n = 1; n <= lines; n++) {
        const wait = t0 + offset + (n - 1) * intervalMs - now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const writeStart = now();
        await lineExactlyOnce(d, text(n, writeStart));
        writeMs.push(now() - writeStart);
      }
    }));
    return writeMs;
  }

  async function runScenario(name: string, cutover: CutoverProcess, etcd: TestEtcd, engine: EngineStandIn, deploymentCount: number, watchersPer: number, rate: number, seconds = SECONDS): Promise<Result> {
    const LINES = Math.round(rate * seconds);
    const ns = `bench-${name.slice(0, 1).toLowerCase()}`;
    const deployments = [];
    for (let i = 0; i < deploymentCount; i++) deployments.push(await engine.createDeployment(ns, `app-${i}`));
    const urls = deployments.flatMap((d) => Array.from({ length: watchersPer }, () => streamUrl(cutover.url, d.namespace, d.id)));
    const beforeConnect = sampleProcess(cutover.pid!);
    process.stderr.write(`${name}: connecting ${urls.length} watchers in ${THREADS} threads…\n`);
    const threads = Array.from({ length: THREADS }, (_, t) => startWatcherThread(urls.filter((_, i) => i % THREADS === t)));
    const results = threads.map((w) => new Promise<Extract<FromWatchers, { type: 'result' }>>((resolve, reject) => {
      w.on('message', (m: FromWatchers) => m.type === 'result' && resolve(m));
      w.once('error', reject);
    }));
    for (const r of results) r.catch(() => undefined); // awaited below; a thread's failure must not end the process before cleanup
    await Promise.all(threads.map((w) => new Promise<void>((resolve, reject) => {
      w.on('message', (m: FromWatchers) => m.type === 'connected' && resolve());
      w.once('error', reject);
    })));

    const idle = sampleProcess(cutover.pid!);
    // Warm-up (JIT, etcd, connections) with lines the watchers skip, at the same rate for 2 s.
    process.stderr.write(`${name}: warming up…\n`);
    await writeSteadily(deployments, rate, Math.round(rate * 2), (n) => `warm-up ${n}`);

    const pid = cutover.pid!;
    const before = sampleProcess(pid);
    const etcdBefore = sampleProcess(etcd.pid!);
    const benchBefore = process.cpuUsage();
    const machineBefore = machineTicks();
    const startedAt = Date.now();
    writeRetries = 0;
    process.stderr.write(`${name}: writing ${LINES} lines per deployment at ${rate}/s…\n`);
    const writeMs = await writeSteadily(deployments, rate, LINES, (n, writeStart) => `bench n=${n} t=${writeStart.toFixed(3)}`);
    // The final status closes every socket once all its lines are delivered.
    await Promise.all(deployments.map((d) => d.transition('DEPLOYED', 'deployed', ['bench done'])));
    for (const w of threads) w.postMessage({ type: 'finish', lines: LINES, timeoutMs: 30_000 } satisfies ToWatchers);
    const parts = await Promise.all(results);
    const after = sampleProcess(pid);
    const etcdAfter = sampleProcess(etcd.pid!);
    const benchCpu = process.cpuUsage(benchBefore);
    const machineAfter = machineTicks();
    const ticks = (k: 'busy' | 'idle' | 'steal') => machineAfter[k] - machineBefore[k];
    const allTicks = ticks('busy') + ticks('idle') + ticks('steal');
    const wallSeconds = (Date.now() - startedAt) / 1000;
    await Promise.all(threads.map((w) => w.terminate()));

    writeMs.sort((a, b) => a - b);
    const latencies = Float64Array.from(parts.flatMap((p) => Array.from(p.latencies))).sort();
    const sorted = Array.from(latencies);
    const sum = (f: (p: (typeof parts)[number]) => number) => parts.reduce((s, p) => s + f(p), 0);
    return {
      scenario: name,
      rate,
      watchers: urls.length,
      linesWritten: LINES * deploymentCount,
      framesExpected: LINES * urls.length,
      received: sum((p) => p.received),
      lost: sum((p) => p.lost),
      duplicated: sum((p) => p.duplicated),
      badCloses: sum((p) => p.badCloses),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      writeRetries,
      writeP50: percentile(writeMs, 50),
      writeP99: percentile(writeMs, 99),
      cutoverCpuPercent: (100 * (after.cpuSeconds - before.cpuSeconds)) / wallSeconds,
      rssBefore: before.rssMiB,
      rssAfter: after.rssMiB,
      idleKiBPerWatcher: ((idle.rssMiB - beforeConnect.rssMiB) * 1024) / urls.length,
      peakRss: after.peakRssMiB,
      etcdCpuPercent: (100 * (etcdAfter.cpuSeconds - etcdBefore.cpuSeconds)) / wallSeconds,
      benchCpuPercent: (benchCpu.user + benchCpu.system) / 1e4 / wallSeconds,
      machineBusyPercent: (100 * ticks('busy')) / allTicks,
      othersCpuPercent: Math.max(0, (100 * ticks('busy')) / allTicks * cpus().length
        - (100 * (after.cpuSeconds - before.cpuSeconds)) / wallSeconds
        - (100 * (etcdAfter.cpuSeconds - etcdBefore.cpuSeconds)) / wallSeconds
        - (benchCpu.user + benchCpu.system) / 1e4 / wallSeconds),
      stealPercent: (100 * ticks('steal')) / allTicks,
    };
  }

  const etcd = await TestEtcd.create();
  const prefix = `/bench-${randomUUID().slice(0, 8)}/`;
  let cutover: CutoverProcess | undefined;
  // 30 s per etcd call: a starved etcd slows the writer down instead of ending the run.
  const engine = EngineStandIn.create(etcd.endpoint, prefix, 30_000);
  const scenarios = new Set(values.scenarios.split(','));
  let failed = false;
  try {
    cutover = await CutoverProcess.start({
      CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: prefix, CUTOVER_LOG_LEVEL: 'warn', CUTOVER_KUBECONFIG: unreachableKubeconfig(),
      CUTOVER_TEST_GC_INTERVAL_MS: '0', // no forced GCs (the tests' GC pressure) in a measurement
    });
    const results: Result[] = [];
    if (scenarios.has('A')) results.push(await runScenario(`A: ${values.watchers} watchers × 1 deployment`, cutover, etcd, engine, 1, Number(values.watchers), Number(values['rate-a'])));
    if (scenarios.has('B')) {
      results.push(await runScenario(`B: ${values.deployments} deployments × ${values['per-deployment']} watchers`, cutover, etcd, engine, Number(values.deployments), Number(values['per-deployment']), Number(values['rate-b'])));
    }
    if (scenarios.has('C')) {
      const per = Number(values['per-deployment-c']);
      const n = Number(values['deployments-c']);
      results.push(await runScenario(`C: ${n} deployments × ${per} watchers`, cutover, etcd, engine, n, per, Number(values['rate-c']), Number(values['seconds-c'])));
    }
    printResults(`log websocket — lines written for ${SECONDS} s (C: ${values["seconds-c"]} s), text format; latency = etcd write start → websocket receipt`, results);
    for (const r of results) {
      const latencyOk = r.p99 <= 100;
      const exact = r.lost === 0 && r.duplicated === 0 && r.badCloses === 0;
      failed ||= !latencyOk || !exact;
      console.log(`${r.scenario}: p99 ${r.p99.toFixed(2)} ms (target ≤ 100) → ${latencyOk ? 'MET' : 'MISSED'}; `
        + `lost ${r.lost}, duplicated ${r.duplicated}, not closed with 1000 DEPLOYED ${r.badCloses} (target 0) → ${exact ? 'MET' : 'MISSED'}`
        + (r.othersCpuPercent > 20 ? ` (other processes used ${r.othersCpuPercent.toFixed(0)}% of a core meanwhile: latency is not representative)` : '')
        + (r.stealPercent > 1 ? ` (the hypervisor took ${r.stealPercent.toFixed(1)}% of the CPU time)` : ''));
    }
  } finally {
    await engine.close();
    await cutover?.stop();
    await etcd.destroy();
  }
  process.exit(failed ? 1 : 0);
}

function printResults(title: string, results: Result[]): void {
  const header = ['scenario', 'lines/s per deployment', 'watchers', 'lines written', 'frames expected', 'received', 'lost', 'dup', 'p50 ms', 'p99 ms', 'max ms', 'etcd write p50/p99 ms', 'write retries',
    'cutover CPU %', 'cutover RSS MiB before → after', 'peak RSS MiB', 'idle KiB/watcher', 'etcd CPU %', 'bench CPU %', 'other processes CPU %'];
  const rows = results.map((r) => [
    r.scenario, String(r.rate), String(r.watchers), String(r.linesWritten), String(r.framesExpected), String(r.received), String(r.lost), String(r.duplicated),
    r.p50.toFixed(2), r.p99.toFixed(2), r.max.toFixed(2),
    `${r.writeP50.toFixed(1)} / ${r.writeP99.toFixed(1)}`, String(r.writeRetries), r.cutoverCpuPercent.toFixed(0), `${r.rssBefore.toFixed(0)} → ${r.rssAfter.toFixed(0)}`,
    r.peakRss.toFixed(0), r.idleKiBPerWatcher.toFixed(1), r.etcdCpuPercent.toFixed(0), r.benchCpuPercent.toFixed(0),
    r.othersCpuPercent.toFixed(0),
  ]);
  table(title, header, rows);
}
