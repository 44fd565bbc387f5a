import { performance } from 'node:perf_hooks';
import type {
  Guard, KvEntry, KvOp, KvStore, Lease, ListOptions, ListResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle,
} from './kv.js';
import { StoreUnavailableError } from './kv.js';
import {
  EtcdEndpoint, EtcdResponseError, EtcdTransportError, b64, prefixEnd, unb64,
  type WireKeyValue, type WireLeaseGrantResponse, type WireLeaseKeepAliveResponse, type WireRangeResponse, type WireStreamError,
  type WireTxnResponse, type WireWatchResponse,
} from './etcd-http.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Prefix of every key, e.g. "/deployer/". */
  prefix: string;
  /** Deadline of every unary call. */
  timeoutMs: number;
  /** Told about every call that failed because etcd was unreachable or too slow (metrics). */
  onUnavailable?: (operation: string) => void;
}

interface Member {
  endpoint: EtcdEndpoint;
  /** Consecutive failures that say "unreachable or too slow". */
  failures: number;
  /** `performance.now()` until which the member is skipped (its breaker is open). */
  openUntil: number;
}

/** Failures in a row after which a member is skipped, and for how long (only with several endpoints). */
const BREAKER_FAILURES = 2;
const BREAKER_OPEN_MS = 2000;
/** etcd allows 128 operations per transaction (--max-txn-ops); getMany reads in chunks of this. */
const MAX_TXN_OPS = 128;

/**
 * KvStore on etcd v3, over etcd's HTTP/JSON gateway (src/store/etcd-http.ts). Every unary call
 * carries a deadline, so an unreachable etcd surfaces as StoreUnavailableError within `timeoutMs`
 * instead of a hung request. Calls are not retried (callers decide whether a retry is safe),
 * except a call refused before it was sent, which goes to another member. With several
 * endpoints, each call goes to a random member whose breaker is closed: a member that failed
 * twice in a row is skipped for 2 s. With one endpoint there is no breaker (it would keep
 * failing calls after etcd is back). Watches reconnect by themselves (from the revision after
 * the last event delivered); leases are kept alive by single keepalive calls every TTL / 3, each
 * waiting up to the TTL for its answer (several may be in flight while etcd is slow).
 */
export class EtcdStore implements KvStore {
  /**
   * Tests only: every call, and every watch, goes to the LAST endpoint of a store's list (no
   * random choice, no breaker), so a test can put a watch or a lease on a chosen member.
   * Process-wide (test/support/etcd-cluster.ts onLastEndpoint).
   */
  static deterministicOrder = false;

  private readonly members: Member[];
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly onUnavailable: (operation: string) => void;
  /** What close() must stop: running watches and lease keepalives. */
  private readonly running = new Set<() => void>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new Error('EtcdStore: no endpoints');
    this.timeoutMs = options.timeoutMs;
    this.onUnavailable = options.onUnavailable ?? (() => {});
    this.prefix = options.prefix;
    this.members = options.endpoints.map((url) => ({
      endpoint: new EtcdEndpoint(url, { connectTimeoutMs: options.timeoutMs }), failures: 0, openUntil: 0,
    }));
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.call<WireRangeResponse>('/v3/kv/range', { key: b64(this.prefix + key) }, 'get');
    const kv = res.kvs?.[0];
    return kv ? this.toEntry(kv) : undefined;
  }

  async getMany(keys: string[]): Promise<Array<KvEntry | undefined>> {
    const out: Array<KvEntry | undefined> = [];
    let atRevision: string | undefined;
    // Later chunks read at the first one's revision.
    for (let i = 0; i < keys.length; i += MAX_TXN_OPS) {
      const chunk = keys.slice(i, i + MAX_TXN_OPS);
      const res = await this.call<WireTxnResponse>('/v3/kv/txn', {
        success: chunk.map((k) => ({ request_range: { key: b64(this.prefix + k), ...(atRevision ? { revision: atRevision } : {}) } })),
      }, 'getMany');
      atRevision ??= revisionOf(res.header);
      const responses = res.responses ?? [];
      for (let j = 0; j < chunk.length; j++) {
        const kv = responses[j]?.response_range?.kvs?.[0];
        out.push(kv ? this.toEntry(kv) : undefined);
      }
    }
    return out;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const full = this.prefix + prefix;
    const req: Record<string, unknown> = {
      key: b64(options.fromKey !== undefined ? this.prefix + options.fromKey : full),
      range_end: b64(prefixEnd(full)),
    };
    if (options.limit !== undefined) req['limit'] = String(options.limit);
    const order = options.order === 'desc' ? 'DESCEND' : 'ASCEND';
    if (options.sortBy === 'create') {
      req['sort_target'] = 'CREATE';
      req['sort_order'] = order;
    } else if (options.order === 'desc') {
      req['sort_target'] = 'KEY';
      req['sort_order'] = order;
    }
    if (options.minCreateRevision !== undefined) req['min_create_revision'] = options.minCreateRevision;
    if (options.atRevision !== undefined) req['revision'] = options.atRevision;
    const res = await this.call<WireRangeResponse>('/v3/kv/range', req, 'list');
    return { entries: (res.kvs ?? []).map((kv) => this.toEntry(kv)), revision: revisionOf(res.header) };
  }

  async count(prefix: string): Promise<number> {
    const full = this.prefix + prefix;
    const res = await this.call<WireRangeResponse>('/v3/kv/range', { key: b64(full), range_end: b64(prefixEnd(full)), count_only: true }, 'count');
    return Number(res.count ?? 0);
  }

  async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    const res = await this.call<WireTxnResponse>('/v3/kv/txn', {
      compare: guards.map((g) => ({ key: b64(this.prefix + g.key), target: 'MOD', result: 'EQUAL', mod_revision: g.modRevision })),
      success: ops.map((op) => this.toRequestOp(op)),
    }, 'transact');
    return { succeeded: res.succeeded === true, revision: revisionOf(res.header) };
  }

  async watch(prefix: string, fromRevision: string | undefined, callbacks: WatchCallbacks): Promise<WatchHandle> {
    this.assertOpen();
    const full = this.prefix + prefix;
    const key = b64(full);
    const rangeEnd = b64(prefixEnd(full));
    // Where the next (re)connect starts: after the last event delivered, or after the revision
    // the first watch was created at when no start was given.
    let next = fromRevision;
    let ended = false;
    let controller: AbortController | undefined;
    let created!: () => void;
    let failed!: (err: Error) => void;
    const firstCreated = new Promise<void>((resolve, reject) => {
      created = resolve;
      failed = reject;
    });
    // Callbacks wait until watch() has handed out its handle (the owner may need it in onError).
    let handedOut = false;
    const queued: Array<() => void> = [];
    const deliver = (fn: () => void) => {
      if (handedOut) fn();
      else queued.push(fn);
    };
    const end = (err: Error) => {
      if (ended) return;
      ended = true;
      stop();
      deliver(() => callbacks.onError(err));
    };
    const stop = () => {
      ended = true;
      this.running.delete(stop);
      controller?.abort();
    };
    this.running.add(stop);

    const onMessage = (message: unknown, connected: () => void) => {
      const m = message as { result?: WireWatchResponse; error?: WireStreamError };
      if (m.error) throw new EtcdResponseError(m.error.grpc_code ?? 0, m.error.http_code ?? 0, m.error.message ?? 'watch stream error');
      const r = m.result;
      if (!r || ended) return;
      if (r.created) {
        next ??= String(BigInt(revisionOf(r.header)) + 1n);
        connected();
      }
      if (r.canceled) {
        const compacted = r.compact_revision !== undefined && r.compact_revision !== '0';
        end(new Error(compacted
          ? `etcd watch of ${prefix} from revision ${next}: required revision has been compacted (compacted up to ${r.compact_revision})`
          : `etcd watch of ${prefix} canceled: ${r.cancel_reason ?? 'no reason given'}`));
        return;
      }
      const events = r.events;
      if (!events || events.length === 0) return;
      const out: WatchEvent[] = events.map((ev) => {
        const isDelete = ev.type === 'DELETE';
        return {
          type: isDelete ? 'delete' : 'put',
          key: this.unprefixed(unb64(ev.kv.key)),
          value: isDelete ? '' : unb64(ev.kv.value),
          createRevision: ev.kv.create_revision ?? '0',
          modRevision: ev.kv.mod_revision ?? '0',
        };
      });
      next = String(BigInt(out[out.length - 1]!.modRevision) + 1n);
      deliver(() => callbacks.onEvents(out));
    };

    const run = async () => {
      let backoff = 200;
      let first = true;
      const deadline = performance.now() + this.timeoutMs;
      const tried = new Set<number>();
      while (!ended) {
        const index = this.pick(tried);
        const member = this.members[index]!;
        const ac = new AbortController();
        controller = ac;
        let isConnected = false;
        let createTimer: NodeJS.Timeout | undefined;
        if (first) createTimer = setTimeout(() => ac.abort(), Math.max(1, deadline - performance.now()));
        const body = { create_request: { key, range_end: rangeEnd, ...(next !== undefined ? { start_revision: next } : {}) } };
        try {
          await member.endpoint.stream('/v3/watch', body, ac.signal, (message) => onMessage(message, () => {
            isConnected = true;
            clearTimeout(createTimer);
            this.succeeded(member);
            tried.clear();
            backoff = 200;
            if (first) {
              first = false;
              created();
            }
          }));
          if (!ended) throw new EtcdTransportError(`${member.endpoint.url}: watch stream ended`, false);
        } catch (err) {
          clearTimeout(createTimer);
          if (ended) return;
          if (err instanceof EtcdResponseError && !err.unavailable && !isConnected) {
            // etcd refused the watch itself (not a connectivity problem): it will not work on a retry.
            if (first) {
              stop();
              failed(err);
            } else end(err);
            return;
          }
          if (!isConnected) this.failedOn(member, err);
          if (first) {
            const notSent = err instanceof EtcdTransportError && err.notSent;
            if (notSent) tried.add(index);
            if (performance.now() >= deadline || (!notSent && !(err instanceof EtcdResponseError)) || tried.size >= this.members.length) {
              stop();
              failed(this.mapped(err, 'watch'));
              return;
            }
            if (notSent) continue; // refused at once: try another member now
          }
          // A transient end (etcd restarted, member killed, connection broken): reconnect.
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 2000);
          if (tried.size >= this.members.length) tried.clear();
        }
      }
    };
    void run();
    await firstCreated;
    setImmediate(() => {
      handedOut = true;
      for (const fn of queued.splice(0)) fn();
    });
    return {
      close: async () => {
        stop();
      },
    };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const ttlMs = ttlSeconds * 1000;
    const requestedAt = performance.now();
    const granted = await this.call<WireLeaseGrantResponse>('/v3/lease/grant', { TTL: String(ttlSeconds) }, 'lease');
    if (granted.error || !granted.ID) throw new Error(`etcd lease grant: ${granted.error ?? 'no lease id in the answer'}`);
    const id = granted.ID;
    // etcd may grant more than asked for, never less; count with the smaller of the two.
    let validUntil = requestedAt + Math.min(ttlMs, Number(granted.TTL ?? ttlSeconds) * 1000);
    let lost = false;
    let stopped = false;
    const lostListeners: Array<(err: Error) => void> = [];
    let expiry: NodeJS.Timeout | undefined;
    let tick: NodeJS.Timeout | undefined;
    const stop = () => {
      stopped = true;
      this.running.delete(stop);
      if (expiry) clearTimeout(expiry);
      if (tick) clearInterval(tick);
    };
    const markLost = (err: Error) => {
      if (lost) return;
      lost = true;
      validUntil = 0;
      stop();
      for (const l of lostListeners) l(err);
    };
    // When no keepalive answer extended the lease in time, the server may already have expired it.
    const armExpiry = () => {
      if (expiry) clearTimeout(expiry);
      expiry = setTimeout(() => markLost(new Error(`lease ${id} not renewed within its TTL of ${ttlSeconds} s`)), Math.max(0, validUntil - performance.now()));
    };
    const interval = Math.max(100, Math.floor(ttlMs / 3));
    // A keepalive goes out every TTL / 3 whether or not the previous ones were answered (as on
    // etcd's keepalive stream), and waits for its answer up to the TTL: while etcd is paused or
    // slow, the keepalives sent meanwhile are answered as soon as it continues, and the latest
    // one sent extends the lease furthest. Waiting for each answer before sending the next would
    // leave the lease with less than TTL / 3 after an etcd pause longer than that.
    const keepAlive = async () => {
      if (stopped) return;
      const sentAt = performance.now();
      try {
        const res = await this.call<WireLeaseKeepAliveResponse>('/v3/lease/keepalive', { ID: id }, 'keepalive', false, ttlMs);
        if (stopped) return;
        if (res.error) throw new EtcdResponseError(res.error.grpc_code ?? 0, res.error.http_code ?? 0, res.error.message ?? 'keepalive failed');
        const ttl = Number(res.result?.TTL ?? 0);
        if (!(ttl > 0)) {
          markLost(new Error(`lease ${id} expired or revoked (etcd: lease not found)`));
          return;
        }
        validUntil = Math.max(validUntil, sentAt + Math.min(ttlMs, ttl * 1000));
        armExpiry();
      } catch {
        // Unreachable or too slow: the next keepalive goes out on time; the expiry timer says when it is too late.
      }
    };
    this.running.add(stop);
    armExpiry();
    tick = setInterval(() => void keepAlive(), interval);
    return {
      id,
      ttlSeconds,
      validUntil: () => (lost ? 0 : validUntil),
      onLost: (listener) => {
        lostListeners.push(listener);
      },
      revoke: async () => {
        lost = true;
        validUntil = 0;
        stop();
        await this.call('/v3/lease/revoke', { ID: id }, 'revoke').catch(() => undefined);
      },
    };
  }

  async ping(): Promise<void> {
    await this.call('/v3/kv/range', { key: b64(`${this.prefix}health-probe`) }, 'ping');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of [...this.running]) stop();
    await Promise.all(this.members.map((m) => m.endpoint.close().catch(() => undefined)));
  }

  private toEntry(kv: WireKeyValue): KvEntry {
    return {
      key: this.unprefixed(unb64(kv.key)),
      value: unb64(kv.value),
      createRevision: kv.create_revision ?? '0',
      modRevision: kv.mod_revision ?? '0',
    };
  }

  private unprefixed(key: string): string {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
  }

  private toRequestOp(op: KvOp): Record<string, unknown> {
    switch (op.type) {
      case 'put':
        return { request_put: { key: b64(this.prefix + op.key), value: b64(op.value), ...(op.leaseId !== undefined ? { lease: op.leaseId } : {}) } };
      case 'delete':
        return { request_delete_range: { key: b64(this.prefix + op.key) } };
      case 'deletePrefix': {
        const full = this.prefix + op.prefix;
        return { request_delete_range: { key: b64(full), range_end: b64(prefixEnd(full)) } };
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('etcd unavailable: the client is closed');
  }

  /** A member for the next call: the last one in deterministic order; else a random one whose breaker is closed. */
  private pick(exclude: ReadonlySet<number>): number {
    const n = this.members.length;
    if (n === 1) return 0;
    if (EtcdStore.deterministicOrder) {
      for (let i = n - 1; i >= 0; i--) if (!exclude.has(i)) return i;
      return n - 1;
    }
    const now = performance.now();
    const candidates: number[] = [];
    for (let i = 0; i < n; i++) if (!exclude.has(i) && this.members[i]!.openUntil <= now) candidates.push(i);
    if (candidates.length > 0) return candidates[Math.floor(Math.random() * candidates.length)]!;
    // Every member is excluded or skipped: the one whose breaker closes first gets a trial call.
    let best = -1;
    for (let i = 0; i < n; i++) {
      if (exclude.has(i)) continue;
      if (best === -1 || this.members[i]!.openUntil < this.members[best]!.openUntil) best = i;
    }
    return best === -1 ? Math.floor(Math.random() * n) : best;
  }

  private succeeded(member: Member): void {
    member.failures = 0;
    member.openUntil = 0;
  }

  private failedOn(member: Member, err: unknown): void {
    if (this.members.length === 1 || !isUnavailable(err)) return;
    member.failures++;
    if (member.failures >= BREAKER_FAILURES) member.openUntil = performance.now() + BREAKER_OPEN_MS;
  }

  /** One unary call with the store's deadline; a call refused before it was sent goes to another member. */
  private async call<T>(path: string, body: unknown, operation: string, report = true, timeoutMs = this.timeoutMs): Promise<T> {
    this.assertOpen();
    const deadline = performance.now() + timeoutMs;
    const tried = new Set<number>();
    for (;;) {
      const index = this.pick(tried);
      const member = this.members[index]!;
      try {
        const res = await member.endpoint.call<T>(path, body, Math.max(1, deadline - performance.now()));
        this.succeeded(member);
        return res;
      } catch (err) {
        this.failedOn(member, err);
        tried.add(index);
        if (err instanceof EtcdTransportError && err.notSent && tried.size < this.members.length && performance.now() < deadline && !this.closed) continue;
        throw report ? this.mapped(err, operation) : toStoreError(err);
      }
    }
  }

  private mapped(err: unknown, operation: string): Error {
    const mapped = toStoreError(err);
    if (mapped instanceof StoreUnavailableError) this.onUnavailable(operation);
    return mapped;
  }
}

function revisionOf(header: { revision?: string } | undefined): string {
  return header?.revision ?? '0';
}

function isUnavailable(err: unknown): boolean {
  return err instanceof EtcdTransportError || (err instanceof EtcdResponseError && err.unavailable);
}

export function toStoreError(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  if (err instanceof StoreUnavailableError) return err;
  if (isUnavailable(err)) return new StoreUnavailableError(`etcd unavailable: ${err.message.split('\n')[0]}`, { cause: err });
  if (err instanceof EtcdResponseError) return new Error(`etcd: ${err.message}`, { cause: err });
  return err;
}
