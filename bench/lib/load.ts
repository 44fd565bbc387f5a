/**
 * An open-loop HTTP load generator for traffic through the test bed's gateway (Traefik), and the
 * analysis of what it recorded around blue-green switches.
 *
 * Open loop: request i is due at t0 + i / rate, whatever happened to the earlier ones — a slow
 * or failing backend does not slow the generator down (no coordinated omission). Each tick sends
 * every request that is due; when the event loop was held up, the overdue ones go out at once and
 * their `lag` (sent − due) shows it, so a run can say whether the generator kept up. It runs in
 * a worker thread of its own (its timers and latencies are not held up by whatever else the
 * process does). Requests go over keep-alive connections of one undici Agent, with a Host header
 * (fetch() cannot set one).
 * Nothing is retried: a connection error or a non-2xx answer is recorded as it happened.
 *
 * Memory is bounded by the number of requests, not by their content: one row per request in
 * typed arrays (≈ 36 bytes), with versions, pods and error codes interned as small integers
 * (a run of 160,000 requests needs ≈ 6 MiB).
 */
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { percentile } from './measure.js';

export interface LoadOptions {
  /** The gateway's entryPoint, e.g. http://127.0.0.1:20280 (loopback only). */
  url: string;
  /** Host header: the app's frontend. */
  host: string;
  /** Requests per second (the schedule; not "as fast as answered"). */
  rate: number;
  /** Path of every request (default `/`). */
  path?: string;
  /** Response header naming the version the route points at (default X-Cutover-Version). */
  versionHeader?: string;
  /** Most connections the Agent opens to the gateway (default 256: never the bottleneck at these rates). */
  connections?: number;
  /** Headers timeout and body timeout of every request, ms (default 5000): a timeout is a failed request. */
  timeoutMs?: number;
}

/** `status` of a request that got no HTTP answer (connection refused/reset, timeout). */
export const STATUS_NO_ANSWER = 0;
/** `status` of a request still in flight. */
export const STATUS_PENDING = 1;

/** One request, as read back from the recorder. */
export interface RequestRow {
  index: number;
  /** When it was sent (epoch ms, sub-millisecond). */
  sentAt: number;
  /** sent − due, ms: how late the generator was. */
  lagMs: number;
  /** Send → body read (or error), ms. */
  latencyMs: number;
  /** HTTP status; STATUS_NO_ANSWER for a connection error or timeout. */
  status: number;
  /** `version` of the JSON body (the pod's version label); '' when absent. */
  bodyVersion: string;
  /** The version header of the answer (what the route says); '' when absent. */
  headerVersion: string;
  /** `x-fake-pod` (namespace/pod) of the answer; '' when absent. */
  pod: string;
  /** Error code (ECONNRESET, UND_ERR_HEADERS_TIMEOUT, …) of a request without answer; '' otherwise. */
  error: string;
}

class Interner {
  private readonly ids = new Map<string, number>([['', 0]]);
  readonly names: string[] = [''];

  id(s: string | undefined): number {
    if (!s) return 0;
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.names.length;
      if (id > 0xffff) throw new Error('too many distinct values to intern');
      this.ids.set(s, id);
      this.names.push(s);
    }
    return id;
  }
}

/** Per-request rows in growable typed arrays. */
class Rows {
  length = 0;
  sentAt = new Float64Array(0);
  lag = new Float32Array(0);
  latency = new Float32Array(0);
  status = new Uint16Array(0);
  bodyVersion = new Uint16Array(0);
  headerVersion = new Uint16Array(0);
  pod = new Uint16Array(0);
  error = new Uint16Array(0);

  constructor(capacity: number) {
    this.grow(capacity);
  }

  add(sentAt: number, lag: number): number {
    if (this.length === this.sentAt.length) this.grow(this.length * 2);
    const i = this.length++;
    this.sentAt[i] = sentAt;
    this.lag[i] = lag;
    this.latency[i] = Number.NaN;
    this.status[i] = STATUS_PENDING;
    return i;
  }

  private grow(capacity: number): void {
    const n = Math.max(1024, capacity);
    const copy = <T extends Float64Array | Float32Array | Uint16Array>(old: T, make: (n: number) => T): T => {
      const next = make(n);
      next.set(old.subarray(0, this.length));
      return next;
    };
    this.sentAt = copy(this.sentAt, (k) => new Float64Array(k));
    this.lag = copy(this.lag, (k) => new Float32Array(k));
    this.latency = copy(this.latency, (k) => new Float32Array(k));
    this.status = copy(this.status, (k) => new Uint16Array(k));
    this.bodyVersion = copy(this.bodyVersion, (k) => new Uint16Array(k));
    this.headerVersion = copy(this.headerVersion, (k) => new Uint16Array(k));
    this.pod = copy(this.pod, (k) => new Uint16Array(k));
    this.error = copy(this.error, (k) => new Uint16Array(k));
  }
}

/** What the generator itself managed: did it keep to its schedule? */
export interface GeneratorStats {
  targetRate: number;
  requests: number;
  /** Seconds from the first send to the last. */
  seconds: number;
  /** Requests sent per second over that time. */
  achievedRate: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Most requests in flight at once. */
  maxInFlight: number;
  /** Connections the Agent opened after the warm-up (keep-alive: few, unless answers are slow). */
  connections: number;
  /** CPU time of the generator's thread (or process, when it runs in-thread), seconds. */
  cpuSeconds: number;
}

/** What a finished run hands over: the rows and the interned strings (transferable across threads). */
interface RecordingData {
  length: number;
  sentAt: Float64Array;
  lag: Float32Array;
  latency: Float32Array;
  status: Uint16Array;
  bodyVersion: Uint16Array;
  headerVersion: Uint16Array;
  pod: Uint16Array;
  error: Uint16Array;
  versions: string[];
  pods: string[];
  errors: string[];
  stats: GeneratorStats;
}

const now = () => performance.timeOrigin + performance.now();

/** The sender itself, on the thread it runs on. */
class Sender {
  private readonly rows: Rows;
  private readonly versions = new Interner();
  private readonly pods = new Interner();
  private readonly errors = new Interner();
  private readonly agent: Agent;
  private readonly headerName: string;
  private readonly timeoutMs: number;
  private readonly url: string;
  private t0 = 0;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight = 0;
  private maxInFlight = 0;
  private connections = 0;
  private cpu0 = process.cpuUsage();
  private drained: (() => void) | undefined;

  constructor(readonly options: LoadOptions) {
    this.headerName = (options.versionHeader ?? 'X-Cutover-Version').toLowerCase();
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.url = options.url + (options.path ?? '/');
    this.rows = new Rows(Math.ceil(options.rate * 120));
    this.agent = new Agent({ connections: options.connections ?? 256, pipelining: 1, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });
    this.agent.on('connect', () => { this.connections++; });
  }

  /**
   * Warm-up, not recorded: a few rounds of concurrent requests load and optimise the code paths
   * and open keep-alive connections, so the schedule does not start with a compile pause. Any
   * answer will do (it says nothing about the app); no answer at all means a wrong URL.
   */
  async warmUp(): Promise<void> {
    const n = Math.min(32, Math.max(4, Math.ceil(this.options.rate / 20)));
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: n }, async () => {
        const res = await request(this.url, { dispatcher: this.agent, headers: { host: this.options.host }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs });
        await res.body.dump();
      }));
    }
    this.connections = 0;
  }

  start(): void {
    this.running = true;
    this.cpu0 = threadCpuUsage();
    this.t0 = performance.now();
    this.seq = 0;
    this.tick();
  }

  async stop(): Promise<RecordingData> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
    const cpu = threadCpuUsage(this.cpu0);
    await this.agent.close();
    const r = this.rows;
    const n = r.length;
    const lags = Array.from(r.lag.subarray(0, n)).sort((a, b) => a - b);
    const seconds = n > 1 ? (r.sentAt[n - 1]! - r.sentAt[0]!) / 1000 : 0;
    const stats: GeneratorStats = {
      targetRate: this.options.rate, requests: n, seconds, achievedRate: seconds > 0 ? (n - 1) / seconds : 0,
      lagP50Ms: percentile(lags, 50), lagP99Ms: percentile(lags, 99), lagMaxMs: lags[lags.length - 1] ?? Number.NaN,
      maxInFlight: this.maxInFlight, connections: this.connections, cpuSeconds: (cpu.user + cpu.system) / 1e6,
    };
    return {
      length: n, sentAt: r.sentAt.slice(0, n), lag: r.lag.slice(0, n), latency: r.latency.slice(0, n), status: r.status.slice(0, n),
      bodyVersion: r.bodyVersion.slice(0, n), headerVersion: r.headerVersion.slice(0, n), pod: r.pod.slice(0, n), error: r.error.slice(0, n),
      versions: this.versions.names, pods: this.pods.names, errors: this.errors.names, stats,
    };
  }

  private tick = (): void => {
    if (!this.running) return;
    const interval = 1000 / this.options.rate;
    const t = performance.now();
    // Every request that is due goes out now (several, when the event loop was held up).
    for (let due = this.t0 + this.seq * interval; due <= t; due = this.t0 + this.seq * interval) {
      this.seq++;
      this.send(t - due);
    }
    this.timer = setTimeout(this.tick, Math.max(0, this.t0 + this.seq * interval - performance.now()));
  };

  private send(lag: number): void {
    const sentAt = now();
    const i = this.rows.add(sentAt, lag);
    if (++this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    const started = performance.now();
    request(this.url, {
      dispatcher: this.agent, headers: { host: this.options.host }, headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
    }).then(async (res) => {
      const text = await res.body.text();
      const rows = this.rows;
      rows.latency[i] = performance.now() - started;
      rows.status[i] = res.statusCode;
      rows.headerVersion[i] = this.versions.id(headerValue(res.headers[this.headerName]));
      rows.pod[i] = this.pods.id(headerValue(res.headers['x-fake-pod']));
      rows.bodyVersion[i] = this.versions.id(bodyVersion(text));
    }).catch((err: unknown) => {
      const rows = this.rows;
      rows.latency[i] = performance.now() - started;
      rows.status[i] = STATUS_NO_ANSWER;
      rows.error[i] = this.errors.id(errorCode(err));
    }).finally(() => {
      if (--this.inFlight === 0 && !this.running) this.drained?.();
    });
  }
}

/** CPU of the current thread (getrusage RUSAGE_THREAD), or of the process where not available. */
function threadCpuUsage(prev?: NodeJS.CpuUsage): NodeJS.CpuUsage {
  const usage = typeof process.threadCpuUsage === 'function' ? process.threadCpuUsage() : process.cpuUsage();
  return prev ? { user: usage.user - prev.user, system: usage.system - prev.system } : usage;
}

/** What a run recorded, read after stop(). */
export class LoadRecording {
  constructor(private readonly d: RecordingData) {}

  /** Requests sent. */
  get count(): number {
    return this.d.length;
  }

  row(index: number): RequestRow {
    const d = this.d;
    return {
      index, sentAt: d.sentAt[index]!, lagMs: d.lag[index]!, latencyMs: d.latency[index]!, status: d.status[index]!,
      bodyVersion: d.versions[d.bodyVersion[index]!]!, headerVersion: d.versions[d.headerVersion[index]!]!,
      pod: d.pods[d.pod[index]!]!, error: d.errors[d.error[index]!]!,
    };
  }

  /** Send time (epoch ms) of request `index`, without building a row. */
  sentAt(index: number): number {
    return this.d.sentAt[index]!;
  }

  latency(index: number): number {
    return this.d.latency[index]!;
  }

  /** A request that failed: no answer, or an answer that is not 2xx (none is pending after stop()). */
  failed(index: number): boolean {
    const s = this.d.status[index]!;
    return s < 200 || s > 299;
  }

  /** The versions (body, header) that answered request `index`, '' when absent. */
  versionsOf(index: number): { body: string; header: string } {
    return { body: this.d.versions[this.d.bodyVersion[index]!]!, header: this.d.versions[this.d.headerVersion[index]!]! };
  }

  stats(): GeneratorStats {
    return this.d.stats;
  }
}

const WORKER_KIND = 'cutover-load-generator';

/**
 * The generator. By default it runs in a worker thread of its own, so the schedule and the
 * latencies do not depend on what else the process does (cutover in-process in the tests, the
 * test runner's forced GCs, API polling in the benchmark); `inThread: true` runs it here.
 */
export class LoadGenerator {
  private worker: Worker | undefined;
  private sender: Sender | undefined;
  private result: Promise<RecordingData> | undefined;

  constructor(readonly options: LoadOptions & { inThread?: boolean }) {
    const host = new URL(options.url).hostname;
    if (host !== '127.0.0.1' && host !== 'localhost' && host !== '[::1]') throw new Error(`LoadGenerator sends to loopback gateways only, not ${options.url}`);
    if (!(options.rate > 0)) throw new Error(`rate must be > 0, not ${options.rate}`);
  }

  /** Starts sending on the schedule; resolves once the first request is due. */
  async start(): Promise<this> {
    const { inThread, ...options } = this.options;
    if (inThread) {
      this.sender = new Sender(options);
      await this.sender.warmUp();
      this.sender.start();
      return this;
    }
    // This file again, in a worker thread (registering tsx there first: workers do not inherit it),
    // without the parent's Node options (the test runner's forced-GC import).
    const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
    const worker = new Worker(bootstrap, { eval: true, execArgv: [], workerData: { kind: WORKER_KIND, options } });
    this.worker = worker;
    this.result = new Promise<RecordingData>((resolve, reject) => {
      worker.on('message', (m: { type: string; data?: RecordingData }) => { if (m.type === 'result') resolve(m.data!); });
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the load generator's thread exited (${code}) before its result`)));
    });
    this.result.catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      worker.on('message', (m: { type: string }) => { if (m.type === 'started') resolve(); });
      worker.once('error', reject);
    });
    return this;
  }

  /** Stops sending, waits for the requests in flight to end (≤ the timeout), closes the connections. */
  async stop(): Promise<LoadRecording> {
    if (this.sender) return new LoadRecording(await this.sender.stop());
    if (!this.worker || !this.result) throw new Error('not started');
    this.worker.postMessage({ type: 'stop' });
    const data = await this.result;
    await this.worker.terminate();
    return new LoadRecording(data);
  }
}

if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) {
  const sender = new Sender((workerData as { options: LoadOptions }).options);
  parentPort!.on('message', (m: { type: string }) => {
    if (m.type !== 'stop') return;
    void sender.stop().then((data) => {
      parentPort!.postMessage({ type: 'result', data }, [
        data.sentAt.buffer, data.lag.buffer, data.latency.buffer, data.status.buffer, data.bodyVersion.buffer,
        data.headerVersion.buffer, data.pod.buffer, data.error.buffer,
      ] as ArrayBuffer[]);
    });
  });
  await sender.warmUp();
  sender.start();
  parentPort!.postMessage({ type: 'started' });
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

function bodyVersion(text: string): string | undefined {
  try {
    const v = (JSON.parse(text) as { version?: unknown }).version;
    return v === null || v === undefined ? undefined : String(v);
  } catch {
    return undefined;
  }
}

function errorCode(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; name?: string; message?: string };
  const code = e?.cause?.code ?? e?.code ?? e?.name ?? 'Error';
  return `${code}${e?.message ? `: ${e.message.slice(0, 80)}` : ''}`;
}

// ───────────────────────────── analysis around switches ─────────────────────────────

/** One deployment of the app, in order, with its record's times (epoch ms). */
export interface SwitchRecord {
  id: string;
  version: string;
  /** times.healthy: the step `switching-traffic` begins (the I1 guard, then the writes). */
  healthy?: number;
  /** times.switched (= times.finished: DEPLOYED). */
  switched?: number;
  finished?: number;
  /** times.converged: requests through the gateway reach this version; the replaced one drains from here. */
  converged?: number;
  /** times.removed of the record this one replaced: its workload and Service were deleted. */
  replacedRemoved?: number;
}

/** Epoch ms of an ISO time of a record, or undefined. */
export function ms(iso: unknown): number | undefined {
  const t = typeof iso === 'string' ? Date.parse(iso) : Number.NaN;
  return Number.isFinite(t) ? t : undefined;
}

/** A record as the API returns it → SwitchRecord (replacedRemoved from the replaced record, when given). */
export function switchRecord(record: { id: string; version: string; times: Record<string, string | undefined> }, replaced?: { times: Record<string, string | undefined> }): SwitchRecord {
  const t = record.times;
  return {
    id: record.id, version: record.version, healthy: ms(t['healthy']), switched: ms(t['switched']), finished: ms(t['finished']),
    converged: ms(t['converged']), replacedRemoved: replaced ? ms(replaced.times['removed']) : undefined,
  };
}

export interface FailedRequest extends RequestRow {
  /** Where in the deployments it happened: "v3 switch", "v3 drain of v2", … */
  phase: string;
}

export interface OldAnswer extends RequestRow {
  /** The deployment whose moment (DEPLOYED or converged) the request was sent after. */
  after: string;
  /** ms from that moment to the send. */
  afterMs: number;
}

export interface SwitchAnalysis {
  requests: number;
  failed: FailedRequest[];
  /** Answered (body or header) by a version that a deployment had replaced — sent after that deployment was DEPLOYED. */
  oldAfterDeployed: OldAnswer[];
  /** … sent after that deployment's times.converged. */
  oldAfterConverged: OldAnswer[];
  /** Answers whose header version and body version differ (route and pod disagree). */
  mismatched: number;
  /** times.converged − times.switched per switch, ms. */
  convergenceMs: number[];
  /** Latencies (ms) of requests sent from a switch's start (times.healthy) to its convergence + 1 s … */
  duringSwitches: number[];
  /** … and of all other requests. */
  betweenSwitches: number[];
}

/**
 * Judges a load run against the app's deployments (in order; the first is the one that was live
 * when the load started). `drainSeconds` names the drain phase of failed requests.
 */
export function analyseSwitches(load: LoadRecording, deployments: SwitchRecord[], drainSeconds: number): SwitchAnalysis {
  const index = new Map(deployments.map((d, i) => [d.version, i]));
  const switches = deployments.slice(1);
  const windows = switches.map((d) => [d.healthy ?? d.switched ?? Infinity, (d.converged ?? d.switched ?? -Infinity) + 1000] as const);
  const out: SwitchAnalysis = { requests: load.count, failed: [], oldAfterDeployed: [], oldAfterConverged: [], mismatched: 0, convergenceMs: [], duringSwitches: [], betweenSwitches: [] };
  for (const d of switches) if (d.switched !== undefined && d.converged !== undefined) out.convergenceMs.push(d.converged - d.switched);

  // The latest deployment k (≥ 1) whose moment `at` is ≤ t: requests sent after it must not be answered by versions before k.
  const latest = (t: number, at: (d: SwitchRecord) => number | undefined): number => {
    for (let k = deployments.length - 1; k >= 1; k--) {
      const m = at(deployments[k]!);
      if (m !== undefined && m <= t) return k;
    }
    return 0;
  };
  const isOld = (version: string, k: number) => version !== '' && index.has(version) && index.get(version)! < k;

  for (let i = 0; i < load.count; i++) {
    const t = load.sentAt(i);
    const latency = load.latency(i);
    if (load.failed(i)) out.failed.push({ ...load.row(i), phase: phaseOf(t, deployments, drainSeconds) });
    const { body, header } = load.versionsOf(i);
    if (body && header && body !== header) out.mismatched++;
    const kd = latest(t, (d) => d.finished);
    if (kd > 0 && (isOld(body, kd) || isOld(header, kd))) out.oldAfterDeployed.push({ ...load.row(i), after: `v${deployments[kd]!.version} DEPLOYED`, afterMs: t - deployments[kd]!.finished! });
    const kc = latest(t, (d) => d.converged);
    if (kc > 0 && (isOld(body, kc) || isOld(header, kc))) out.oldAfterConverged.push({ ...load.row(i), after: `v${deployments[kc]!.version} converged`, afterMs: t - deployments[kc]!.converged! });
    if (Number.isFinite(latency)) (windows.some(([a, b]) => t >= a && t < b) ? out.duringSwitches : out.betweenSwitches).push(latency);
  }
  out.duringSwitches.sort((a, b) => a - b);
  out.betweenSwitches.sort((a, b) => a - b);
  out.convergenceMs.sort((a, b) => a - b);
  return out;
}

/** The phase of the deployments at time t, for failed requests. */
export function phaseOf(t: number, deployments: SwitchRecord[], drainSeconds: number): string {
  for (let k = deployments.length - 1; k >= 1; k--) {
    const d = deployments[k]!;
    const prev = deployments[k - 1]!.version;
    if (d.healthy === undefined || t < d.healthy) continue;
    if (d.finished === undefined || t < d.finished) return `v${d.version} switch (switching-traffic → DEPLOYED)`;
    if (d.converged === undefined || t < d.converged) return `v${d.version} DEPLOYED → converged`;
    const drainEnd = d.converged + drainSeconds * 1000;
    if (t < drainEnd) return `v${d.version} converged, v${prev} draining`;
    if (d.replacedRemoved === undefined || t < d.replacedRemoved + 2000) return `v${prev} being removed (drain over${d.replacedRemoved ? `, removed +${Math.round(d.replacedRemoved - drainEnd)} ms` : ''})`;
    return `v${d.version} steady`;
  }
  return `v${deployments[0]?.version ?? '?'} steady (before the first switch)`;
}

/** One line per failed or old answer, for reports. */
export function describeRequest(r: RequestRow & { phase?: string; after?: string; afterMs?: number }): string {
  const when = new Date(r.sentAt).toISOString();
  const answer = r.status === STATUS_NO_ANSWER ? `no answer (${r.error})` : `HTTP ${r.status}`;
  const extra = r.phase ? ` [${r.phase}]` : r.after ? ` [${Math.round(r.afterMs ?? 0)} ms after ${r.after}]` : '';
  return `#${r.index} sent ${when} ${answer} in ${r.latencyMs.toFixed(1)} ms, body v${r.bodyVersion || '-'} header v${r.headerVersion || '-'} pod ${r.pod || '-'}${extra}`;
}

export { percentile };
