/**
 * The invariant observer (issue #12, "Proof"): watches one namespace — the traffic pointers
 * (stable Service, Ingress, HTTPRoute when served), Pods and EndpointSlices — and cutover's
 * deployment records in etcd, and records every interval during which invariant I1 or I4 does not
 * hold. The rules live in the pure InvariantModel (./invariant-model.ts); this module only feeds it:
 * Kubernetes list + watch from the list's resourceVersion (re-watch after a clean end, re-list with
 * backoff after an error or 410), etcd list at revision R + watch from R+1 (re-list when the watch
 * ends for good), and a timer for the end of the model's next settle window.
 *
 *   const observer = await InvariantObserver.start({ kubeConfig, namespace, etcdEndpoint, etcdPrefix });
 *   … deploy, break things …
 *   await observer.stop();
 *   observer.assertNone();
 *
 * Rules and windows: docs/testbed.md, "Invariant observer".
 */
import { AssertionError } from 'node:assert';
import http from 'node:http';
import https from 'node:https';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { EtcdStore } from '../../src/store/etcd.js';
import type { KvStore, WatchEvent, WatchHandle } from '../../src/store/kv.js';
import {
  ENDPOINT_SLICE, InvariantModel, POD, POINTER_KINDS, RECORDS, fmtOffset, formatTimeline, formatViolation,
  type Fact, type KubeObject, type PointerKind, type TimelineEntry, type Violation,
} from './invariant-model.js';

export { RULES, POINTER_KINDS, type PointerKind, type Violation, type TimelineEntry } from './invariant-model.js';

export interface InvariantObserverOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** cutover's etcd (CUTOVER_ETCD_ENDPOINTS) and key prefix (CUTOVER_ETCD_PREFIX, e.g. `/test-ab12cd34/`). */
  etcdEndpoint?: string | string[];
  etcdPrefix?: string;
  /** Instead of etcdEndpoint + etcdPrefix: a store whose keys are already relative to the prefix (not closed by stop()). */
  kv?: KvStore;
  /** How long a disagreement must last to count (I1 endpoints, I4 traffic). Default 1000 ms. */
  settleMs?: number;
  /** After a switch, how long late pod/endpoint events may still show the version ready. Default 500 ms. */
  switchSettleMs?: number;
  /** Pointer kinds to watch when served (default POINTER_KINDS: Service, Ingress, HTTPRoute). */
  pointerKinds?: readonly PointerKind[];
  /** Server-side timeout of each watch request (default 240-300 s, random); the stream is then resumed. */
  watchTimeoutSeconds?: number;
  /** How long start() waits for the first list of every source. Default 30 s. */
  startTimeoutMs?: number;
  /** Longest pause between re-list attempts. Default 3000 ms. */
  maxBackoffMs?: number;
  /** Injected clock (ms). Default Date.now. */
  clock?: () => number;
  /** Diagnostics (watch errors, re-lists). */
  log?: (line: string) => void;
}

export interface ObserverStats {
  /** Facts seen per source (records = etcd revisions, Service, Ingress, Pod, EndpointSlice, …). */
  events: Record<string, number>;
  eventsTotal: number;
  /** Watches resumed from the last resourceVersion after a clean end (no gap). */
  rewatches: number;
  /** Lists after the first one (each after a watch error, a 410 or a lost etcd watch). */
  relists: number;
  /** Watch gaps (a source's state was unknown until its re-list). */
  gaps: number;
  /** Values under deployments/{namespace}/ that were not a readable record. */
  unreadable: number;
  /** The kinds watched (pointer kinds the API server does not serve are left out). */
  watched: string[];
  /** Errors of the observer itself (a fact the model could not take); should be 0. */
  internalErrors: number;
}

interface Context {
  namespace: string;
  clock: () => number;
  log: (line: string) => void;
  apply(fact: Fact): void;
  counters: { rewatches: number; relists: number };
  maxBackoffMs: number;
}

interface ResourceKind {
  kind: string;
  group: string;
  version: string;
  plural: string;
}

const POD_KIND: ResourceKind = { kind: POD, group: '', version: 'v1', plural: 'pods' };
const ENDPOINT_SLICE_KIND: ResourceKind = { kind: ENDPOINT_SLICE, group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' };

function groupVersionPath(k: ResourceKind): string {
  return k.group === '' ? `/api/${k.version}` : `/apis/${k.group}/${k.version}`;
}

function collectionPath(k: ResourceKind, namespace: string): string {
  return `${groupVersionPath(k)}/namespaces/${encodeURIComponent(namespace)}/${k.plural}`;
}

export class InvariantObserver {
  private readonly model: InvariantModel;
  private readonly ctx: Context;
  private readonly sources: Array<KubeSource | RecordsSource> = [];
  private readonly counters = { rewatches: 0, relists: 0 };
  private internalErrors = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickAt: number | undefined;
  private stopped = false;
  private ownedKv: EtcdStore | undefined;
  /** When the observer started (timeline offsets are relative to it). */
  readonly startedAt: number;

  private constructor(readonly options: InvariantObserverOptions, pointerKinds: readonly PointerKind[]) {
    const clock = options.clock ?? Date.now;
    this.startedAt = clock();
    this.model = new InvariantModel({
      namespace: options.namespace, pointerKinds,
      ...(options.settleMs !== undefined ? { settleMs: options.settleMs } : {}),
      ...(options.switchSettleMs !== undefined ? { switchSettleMs: options.switchSettleMs } : {}),
    });
    this.ctx = {
      namespace: options.namespace, clock, log: options.log ?? (() => {}),
      apply: (fact) => this.apply(fact),
      counters: this.counters,
      maxBackoffMs: options.maxBackoffMs ?? 3000,
    };
  }

  /** Lists every source, starts the watches and resolves once every source has been listed. */
  static async start(options: InvariantObserverOptions): Promise<InvariantObserver> {
    const startTimeoutMs = options.startTimeoutMs ?? 30_000;
    const wanted = options.pointerKinds ?? POINTER_KINDS;
    const served = await servedPointerKinds(options.kubeConfig, wanted, startTimeoutMs);
    const observer = new InvariantObserver(options, served);
    let kv = options.kv;
    if (!kv) {
      if (!options.etcdEndpoint || options.etcdPrefix === undefined) throw new Error('InvariantObserver: give etcdEndpoint and etcdPrefix, or kv');
      observer.ownedKv = new EtcdStore({
        endpoints: Array.isArray(options.etcdEndpoint) ? options.etcdEndpoint : [options.etcdEndpoint],
        prefix: options.etcdPrefix, timeoutMs: 2000,
      });
      kv = observer.ownedKv;
    }
    const timeoutSeconds = options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    observer.sources.push(new RecordsSource(observer.ctx, kv));
    for (const k of [...served, POD_KIND, ENDPOINT_SLICE_KIND]) observer.sources.push(new KubeSource(observer.ctx, options.kubeConfig, k, timeoutSeconds));
    for (const s of observer.sources) s.start();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(observer.sources.map((s) => s.firstSync)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const missing = observer.sources.filter((s) => !s.synced).map((s) => `${s.name}${s.lastError ? ` (${s.lastError})` : ''}`);
            reject(new Error(`InvariantObserver: no first list within ${startTimeoutMs} ms of ${missing.join(', ')}`));
          }, startTimeoutMs);
        }),
      ]);
    } catch (err) {
      await observer.stop({ settle: false });
      throw err;
    } finally {
      clearTimeout(timer);
    }
    return observer;
  }

  /** Every violation so far, oldest first (open ones have no `until`). */
  violations(): Violation[] {
    return this.model.violations();
  }

  /** What the observer saw: pointer changes, record status changes, readiness, gaps, violations. */
  timeline(): TimelineEntry[] {
    return this.model.timeline();
  }

  /** The timeline as lines, times relative to the observer's start. */
  timelineText(entries: TimelineEntry[] = this.timeline()): string[] {
    return formatTimeline(entries, this.startedAt);
  }

  stats(): ObserverStats {
    const m = this.model.stats();
    return {
      events: m.events, eventsTotal: Object.values(m.events).reduce((a, b) => a + b, 0),
      rewatches: this.counters.rewatches, relists: this.counters.relists, gaps: m.gaps, unreadable: m.unreadable,
      watched: this.sources.map((s) => s.name), internalErrors: this.internalErrors,
    };
  }

  /** Resolves with the first violation that matches (polling the model; for tests that break things on purpose). */
  async waitForViolation(match: Partial<Pick<Violation, 'invariant' | 'rule' | 'app'>> | ((v: Violation) => boolean), timeoutMs = 15_000): Promise<Violation> {
    const test = typeof match === 'function' ? match : (v: Violation) => Object.entries(match).every(([k, want]) => v[k as keyof Violation] === want);
    const deadline = this.ctx.clock() + timeoutMs;
    for (;;) {
      const found = this.violations().find(test);
      if (found) return found;
      if (this.ctx.clock() > deadline) {
        throw new AssertionError({ message: `no violation matching ${typeof match === 'function' ? 'the predicate' : JSON.stringify(match)} within ${timeoutMs} ms\n${this.report()}` });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Closes every watch and returns the final violations. With `settle` (default), it first waits
   * (at most the longer settle window + 200 ms) until no condition is pending, so a violation that
   * began just before stop() is not lost; the watches keep running meanwhile.
   */
  async stop(options: { settle?: boolean } = {}): Promise<Violation[]> {
    if (!this.stopped && (options.settle ?? true)) {
      const until = this.ctx.clock() + Math.max(this.model.settleMs, this.model.switchSettleMs) + 200;
      while (this.model.pending() > 0 && this.ctx.clock() < until) await new Promise((r) => setTimeout(r, 25));
    }
    if (!this.stopped) {
      this.apply({ type: 'tick', at: this.ctx.clock() });
      this.stopped = true;
      clearTimeout(this.tickTimer);
      this.tickTimer = undefined;
      await Promise.all(this.sources.map((s) => s.stop()));
      await this.ownedKv?.close();
    }
    return this.violations();
  }

  /** Throws an AssertionError listing every violation and the timeline around them. */
  assertNone(): void {
    const violations = this.violations();
    if (violations.length === 0 && this.internalErrors === 0) return;
    throw new AssertionError({ message: this.report() });
  }

  /** Violations, stats and the relevant excerpt of the timeline, for failure messages. */
  report(): string {
    const violations = this.violations();
    const lines = [`invariant observer, namespace ${this.options.namespace}: ${violations.length} violation(s)${this.internalErrors ? `, ${this.internalErrors} internal error(s)` : ''}`];
    violations.forEach((v, i) => lines.push(`  ${i + 1}. ${formatViolation(v, this.startedAt)}`));
    const all = this.timeline();
    let excerpt = all;
    if (violations.length > 0) {
      const from = Math.min(...violations.map((v) => v.since.getTime())) - 5000;
      const to = Math.max(...violations.map((v) => v.until?.getTime() ?? Infinity)) + 2000;
      excerpt = all.filter((e) => e.at.getTime() >= from && e.at.getTime() <= to);
    }
    const text = this.timelineText(excerpt);
    const shown = text.length > 200 ? [...text.slice(0, 50), `  … ${text.length - 200} entries left out …`, ...text.slice(-150)] : text;
    const s = this.stats();
    lines.push(`stats: ${s.eventsTotal} events ${JSON.stringify(s.events)}, ${s.rewatches} re-watches, ${s.relists} re-lists, ${s.gaps} gaps, ${s.unreadable} unreadable records; watched ${s.watched.join(', ')}`);
    lines.push(`timeline (${excerpt.length} of ${all.length} entries${excerpt.length ? `, ${fmtOffset(excerpt[0]!.at.getTime() - this.startedAt)} … ${fmtOffset(excerpt[excerpt.length - 1]!.at.getTime() - this.startedAt)}` : ''}):`);
    for (const l of shown) lines.push(`  ${l}`);
    return lines.join('\n');
  }

  private apply(fact: Fact): void {
    if (this.stopped) return;
    try {
      this.model.apply(fact);
    } catch (err) {
      this.internalErrors++;
      this.ctx.log(`invariant observer: model failed on a ${fact.type} fact: ${(err as Error).stack ?? err}`);
    }
    this.scheduleTick();
  }

  /** One strong timer for the end of the next settle window. */
  private scheduleTick(): void {
    if (this.stopped) return;
    const next = this.model.nextDeadline();
    if (next === this.tickAt && this.tickTimer) return;
    clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    this.tickAt = next;
    if (next === undefined) return;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = undefined;
      this.tickAt = undefined;
      this.apply({ type: 'tick', at: this.ctx.clock() });
    }, Math.max(0, next - this.ctx.clock()) + 1);
  }
}

// ---- Kubernetes ----

type WatchEnd = { type: 'closed' | 'gone' | 'error'; lastedMs: number; error?: Error };

/** One kind: list, then watch from the list's resourceVersion; re-watch after a clean end, re-list after an error. */
class KubeSource {
  readonly name: string;
  synced = false;
  lastError: string | undefined;
  readonly firstSync: Promise<void>;
  private resolveFirst!: () => void;
  private stopped = false;
  private rv = '';
  private abortWatch: (() => void) | undefined;
  private cancelRequest: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly ctx: Context, private readonly kc: KubeConfig, private readonly kind: ResourceKind, private readonly timeoutSeconds: number) {
    this.name = kind.kind;
    this.firstSync = new Promise((resolve) => { this.resolveFirst = resolve; });
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abortWatch?.();
    this.cancelRequest?.();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    /** Failures since the last watch that ran for at least a second; sets the backoff. */
    let failures = 0;
    let lists = 0;
    while (!this.stopped) {
      let gone = false;
      try {
        await this.list();
        if (lists++ > 0) this.ctx.counters.relists++;
        for (;;) {
          const end = await this.watchOnce();
          if (this.stopped) return;
          if (end.lastedMs >= 1000) failures = 0;
          if (end.type !== 'closed') {
            gone = end.type === 'gone';
            throw end.error ?? new Error(`watch ${end.type}`);
          }
          // The server ended the watch (its timeout, or going away): resume from the last resourceVersion.
          this.ctx.counters.rewatches++;
          if (end.lastedMs < 1000) await this.sleep(200);
          if (this.stopped) return;
        }
      } catch (err) {
        if (this.stopped) return;
        this.lastError = (err as Error).message;
        if (this.synced) {
          this.synced = false;
          this.ctx.apply({ type: 'gap', at: this.ctx.clock(), source: this.name, reason: this.lastError });
        }
        this.ctx.log(`invariant observer: ${this.name} watch: ${this.lastError}; re-listing`);
        failures++;
        // History expired (410): re-list at once the first time; otherwise back off exponentially.
        await this.sleep(gone && failures === 1 ? 0 : Math.min(100 * 2 ** Math.min(failures - 1, 10), this.ctx.maxBackoffMs));
      }
    }
  }

  private async list(): Promise<void> {
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const query = new URLSearchParams({ limit: '500', ...(cont ? { continue: cont } : {}) });
      const res = await kubeGet(this.kc, `${collectionPath(this.kind, this.ctx.namespace)}?${query}`, 15_000, (cancel) => { this.cancelRequest = cancel; });
      if (res.status !== 200) throw new Error(`list ${this.name}: HTTP ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}`);
      const body = res.body as { items?: KubeObject[]; metadata?: { resourceVersion?: string; continue?: string } };
      items.push(...(body.items ?? []));
      rv = body.metadata?.resourceVersion ?? rv;
      cont = body.metadata?.continue || undefined;
    } while (cont && !this.stopped);
    if (this.stopped) return;
    this.rv = rv;
    this.ctx.apply({ type: 'snapshot', at: this.ctx.clock(), kind: this.name, objects: items });
    this.synced = true;
    this.lastError = undefined;
    this.resolveFirst();
  }

  private watchOnce(): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let settled = false;
      let controller: AbortController | undefined;
      const started = this.ctx.clock();
      const finish = (end: Omit<WatchEnd, 'lastedMs'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.abortWatch = undefined;
        controller?.abort();
        resolve({ ...end, lastedMs: this.ctx.clock() - started });
      };
      // The server ends the watch after timeoutSeconds; a stream silent well past that is dead.
      const watchdog = setTimeout(() => finish({ type: 'error', error: new Error(`watch silent for ${this.timeoutSeconds + 30} s`) }), (this.timeoutSeconds + 30) * 1000);
      this.abortWatch = () => finish({ type: 'error', error: new Error('stopped') });
      const query = { resourceVersion: this.rv, allowWatchBookmarks: true, timeoutSeconds: this.timeoutSeconds };
      new Watch(this.kc).watch(collectionPath(this.kind, this.ctx.namespace), query, (type: string, obj: any) => {
        if (settled) return;
        if (type === 'ERROR') {
          const code = obj?.code;
          finish({ type: code === 410 ? 'gone' : 'error', error: new Error(`watch ERROR ${code ?? ''} ${obj?.reason ?? ''}: ${obj?.message ?? JSON.stringify(obj)}`) });
          return;
        }
        const rv = obj?.metadata?.resourceVersion;
        if (typeof rv === 'string' && rv) this.rv = rv;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
          this.ctx.apply({ type: 'object', at: this.ctx.clock(), kind: this.name, event: type === 'DELETED' ? 'delete' : 'upsert', object: obj as KubeObject });
        }
      }, (err: unknown) => {
        if (err) finish({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) });
        else finish({ type: 'closed' });
      }).then((c) => {
        controller = c;
        if (settled) c.abort();
      }, (err: unknown) => finish({ type: 'error', error: err instanceof Error ? err : new Error(String(err)) }));
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** GET a path of the API server with the kubeconfig's credentials; a strong timer bounds it. */
async function kubeGet(kc: KubeConfig, path: string, timeoutMs: number, onCancel?: (cancel: () => void) => void): Promise<{ status: number; body: unknown }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const transport = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, { ...opts, method: 'GET', headers: { ...(opts.headers ?? {}), accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: text });
        }
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`GET ${path}: no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    onCancel?.(() => req.destroy(new Error('cancelled')));
    req.end();
  });
}

/** The pointer kinds the API server serves (discovery of their group/version); retried until timeoutMs. */
async function servedPointerKinds(kc: KubeConfig, kinds: readonly PointerKind[], timeoutMs: number): Promise<PointerKind[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const served: PointerKind[] = [];
      const cache = new Map<string, Set<string> | undefined>();
      for (const k of kinds) {
        const gv = groupVersionPath(k);
        if (!cache.has(gv)) {
          const res = await kubeGet(kc, gv, 10_000);
          if (res.status === 404) cache.set(gv, undefined);
          else if (res.status === 200) cache.set(gv, new Set(((res.body as { resources?: Array<{ name: string }> }).resources ?? []).map((r) => r.name)));
          else throw new Error(`discovery ${gv}: HTTP ${res.status}`);
        }
        if (cache.get(gv)?.has(k.plural)) served.push(k);
      }
      return served;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`InvariantObserver: API discovery failed: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

// ---- etcd ----

/** cutover's records of the namespace: list at revision R, watch from R+1; re-list when the watch ends for good. */
class RecordsSource {
  readonly name = RECORDS;
  synced = false;
  lastError: string | undefined;
  readonly firstSync: Promise<void>;
  private resolveFirst!: () => void;
  private stopped = false;
  private handle: WatchHandle | undefined;
  private generation = 0;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private lists = 0;

  constructor(private readonly ctx: Context, private readonly kv: KvStore) {
    this.firstSync = new Promise((resolve) => { this.resolveFirst = resolve; });
  }

  private get prefix(): string {
    return `deployments/${this.ctx.namespace}/`;
  }

  start(): void {
    this.loop = this.sync();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    this.wake?.();
    // Creating a watch waits while etcd is unreachable; a handle that arrives later is closed by sync().
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loop, new Promise<void>((resolve) => { timer = setTimeout(resolve, 3000); })]);
    clearTimeout(timer);
    await this.handle?.close();
    this.handle = undefined;
  }

  /** (Re-)list and watch, with backoff while etcd does not answer. */
  private async sync(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      const generation = ++this.generation;
      try {
        await this.handle?.close();
        this.handle = undefined;
        const listed = await this.kv.list(this.prefix);
        if (this.stopped) return;
        if (this.lists++ > 0) this.ctx.counters.relists++;
        this.ctx.apply({ type: 'records-snapshot', at: this.ctx.clock(), revision: listed.revision, entries: listed.entries.map((e) => ({ key: e.key, value: e.value })) });
        this.synced = true;
        this.lastError = undefined;
        this.resolveFirst();
        const handle = await this.kv.watch(this.prefix, String(BigInt(listed.revision) + 1n), {
          onEvents: (events) => {
            if (generation === this.generation) this.onEvents(events);
          },
          onError: (err) => {
            if (generation !== this.generation || this.stopped) return;
            this.lost(err);
            this.loop = this.sync();
          },
        });
        if (this.stopped || generation !== this.generation) {
          await handle.close();
          return;
        }
        this.handle = handle;
        return;
      } catch (err) {
        if (this.stopped) return;
        this.lost(err as Error);
        backoff = Math.min(Math.max(backoff * 2, 100), this.ctx.maxBackoffMs);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private lost(err: Error): void {
    this.lastError = err.message;
    this.ctx.log(`invariant observer: records watch: ${err.message}; re-listing`);
    if (this.synced) {
      this.synced = false;
      this.ctx.apply({ type: 'gap', at: this.ctx.clock(), source: RECORDS, reason: err.message });
    }
  }

  /** Events arrive in revision order; all events of one revision (one transaction) are one fact. */
  private onEvents(events: WatchEvent[]): void {
    const at = this.ctx.clock();
    let batch: WatchEvent[] = [];
    const flush = () => {
      if (batch.length === 0) return;
      this.ctx.apply({ type: 'records', at, revision: batch[0]!.modRevision, changes: batch.map((e) => (e.type === 'delete' ? { key: e.key } : { key: e.key, value: e.value })) });
      batch = [];
    };
    for (const e of events) {
      if (batch.length > 0 && batch[0]!.modRevision !== e.modRevision) flush();
      batch.push(e);
    }
    flush();
  }
}
