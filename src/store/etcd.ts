import { performance } from 'node:perf_hooks';
import { Etcd3, Range, isRecoverableError, type IKeyValue, type IOperation, type Namespace } from 'etcd3';
import { ConsecutiveBreaker, circuitBreaker, handleWhen, noop } from 'cockatiel';
import type {
  Guard, KvEntry, KvOp, KvStore, Lease, ListOptions, ListResult, TxnResult, WatchCallbacks, WatchEvent, WatchHandle,
} from './kv.js';
import { StoreUnavailableError } from './kv.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** Prefix of every key, e.g. "/deployer/". */
  prefix: string;
  /** Deadline of every unary call. */
  timeoutMs: number;
  /** Told about every call that failed because etcd was unreachable or too slow (metrics). */
  onUnavailable?: (operation: string) => void;
}

/**
 * KvStore on etcd v3. Every unary call carries a deadline, so an unreachable etcd surfaces as
 * StoreUnavailableError within `timeoutMs` instead of a hung request. The client library's own
 * retry and circuit-breaker policies are disabled: a breaker would keep failing calls for seconds
 * after etcd is back, and callers decide themselves whether a retry is safe.
 */
export class EtcdStore implements KvStore {
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly prefix: string;
  private readonly endpointCount: number;
  private readonly timeoutMs: number;
  private readonly onUnavailable: (operation: string) => void;
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    this.timeoutMs = options.timeoutMs;
    this.onUnavailable = options.onUnavailable ?? (() => {});
    this.client = new Etcd3({
      hosts: options.endpoints,
      dialTimeout: options.timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      // With one endpoint there is nowhere else to go: no breaker (it would keep failing calls
      // after etcd is back). With several, a member that failed twice in a row is skipped for
      // 2 s, so calls go to the live members instead of failing until it returns.
      faultHandling: {
        host: () => (options.endpoints.length > 1
          ? circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 2000, breaker: new ConsecutiveBreaker(2) })
          : noop),
        global: noop,
      },
      grpcOptions: {
        // Reconnect promptly after an etcd restart instead of grpc's default backoff of up to 120 s.
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2000,
        // A long deployment log read in one range can exceed grpc's 4 MiB default.
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      },
    });
    this.prefix = options.prefix;
    this.endpointCount = options.endpoints.length;
    this.ns = this.client.namespace(options.prefix);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.call(() => this.ns.get(key).exec(), 'get');
    const kv = res.kvs[0];
    return kv ? this.unprefixed(toEntry(kv)) : undefined;
  }

  async getMany(keys: string[]): Promise<Array<KvEntry | undefined>> {
    const out: Array<KvEntry | undefined> = [];
    let atRevision: string | undefined;
    // etcd allows 128 operations per transaction (--max-txn-ops); later chunks read at the first one's revision.
    for (let i = 0; i < keys.length; i += MAX_TXN_OPS) {
      const chunk = keys.slice(i, i + MAX_TXN_OPS);
      const res = await this.call(() => this.ns.if('txn-unconditional', 'Mod', '>', -1)
        .then(...chunk.map((k) => (atRevision ? this.ns.get(k).revision(atRevision) : this.ns.get(k))))
        .commit(), 'getMany');
      atRevision ??= String(res.header.revision);
      for (const r of res.responses) {
        const kv = r.response_range?.kvs?.[0];
        out.push(kv ? this.unprefixed(toEntry(kv)) : undefined);
      }
    }
    return out;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const res = await this.call(() => {
      let q = options.fromKey !== undefined
        ? this.ns.getAll().inRange(new Range(options.fromKey, Range.prefix(prefix).end))
        : this.ns.getAll().prefix(prefix);
      if (options.limit !== undefined) q = q.limit(options.limit);
      const order = options.order === 'desc' ? 'Descend' : 'Ascend';
      if (options.sortBy === 'create') q = q.sort('Create', order);
      else if (options.order === 'desc') q = q.sort('Key', order);
      if (options.minCreateRevision !== undefined) q = q.minCreateRevision(options.minCreateRevision);
      if (options.atRevision !== undefined) q = q.revision(options.atRevision);
      return q.exec();
    }, 'list');
    return { entries: res.kvs.map(toEntry), revision: String(res.header.revision) };
  }

  async count(prefix: string): Promise<number> {
    return this.call(() => this.ns.getAll().prefix(prefix).count(), 'count');
  }

  async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    const res = await this.call(() => {
      const first = guards[0];
      // etcd3's builder needs one comparison; "mod revision > -1" holds for every key, present or not.
      let txn = first ? this.ns.if(first.key, 'Mod', '==', first.modRevision) : this.ns.if('txn-unconditional', 'Mod', '>', -1);
      for (const g of guards.slice(1)) txn = txn.and(g.key, 'Mod', '==', g.modRevision);
      return txn.then(...ops.map((op) => this.toRequestOp(op))).commit();
    }, 'transact');
    return { succeeded: res.succeeded, revision: String(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: string | undefined, callbacks: WatchCallbacks): Promise<WatchHandle> {
    let builder = this.ns.watch().prefix(prefix);
    if (fromRevision !== undefined) builder = builder.startRevision(fromRevision);
    const watcher = await this.call(() => builder.create(), 'watch');
    let ended = false;
    watcher.on('data', (res) => {
      if (ended || res.events.length === 0) return;
      const events: WatchEvent[] = res.events.map((ev) => ({
        type: ev.type === 'Delete' ? 'delete' : 'put',
        key: ev.kv.key.toString('utf8'),
        value: ev.type === 'Delete' ? '' : ev.kv.value.toString('utf8'),
        createRevision: String(ev.kv.create_revision),
        modRevision: String(ev.kv.mod_revision),
      }));
      callbacks.onEvents(events);
    });
    watcher.on('error', (err) => {
      if (ended) return;
      ended = true;
      callbacks.onError(err);
    });
    return {
      close: async () => {
        ended = true;
        await watcher.cancel().catch(() => undefined);
      },
    };
  }

  async grantLease(ttlSeconds: number): Promise<Lease> {
    const lease = this.ns.lease(ttlSeconds, { autoKeepAlive: true });
    const ttlMs = ttlSeconds * 1000;
    // Sending times of keepalives not yet answered, oldest first (answers come back in order).
    const unanswered: number[] = [];
    const requestedAt = performance.now();
    const id = await this.call(() => lease.grant(), 'lease');
    let validUntil = requestedAt + ttlMs;
    let lost = false;
    const lostListeners: Array<(err: Error) => void> = [];
    // etcd3 notices a dead lease only after 2 × TTL; we know better: when no keepalive answer
    // extended the lease in time, the server may already have expired it.
    let expiry: NodeJS.Timeout | undefined;
    const markLost = (err: Error) => {
      if (lost) return;
      lost = true;
      validUntil = 0;
      if (expiry) clearTimeout(expiry);
      lease.release();
      for (const l of lostListeners) l(err);
    };
    const armExpiry = () => {
      if (expiry) clearTimeout(expiry);
      expiry = setTimeout(() => markLost(new Error(`lease ${id} not renewed within its TTL of ${ttlSeconds} s`)), Math.max(0, validUntil - performance.now()));
    };
    armExpiry();
    lease.on('keepaliveFired', () => unanswered.push(performance.now()));
    lease.on('keepaliveSucceeded', () => {
      const sentAt = unanswered.shift();
      if (sentAt === undefined || lost) return;
      validUntil = Math.max(validUntil, sentAt + ttlMs);
      armExpiry();
    });
    lease.on('keepaliveFailed', () => unanswered.splice(0));
    lease.on('lost', (err) => markLost(err));
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
        if (expiry) clearTimeout(expiry);
        await this.call(() => lease.revoke()).catch(() => lease.release());
      },
    };
  }

  async ping(): Promise<void> {
    await this.call(() => this.ns.get('health-probe').exec(), 'ping');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private unprefixed(entry: KvEntry): KvEntry {
    return entry.key.startsWith(this.prefix) ? { ...entry, key: entry.key.slice(this.prefix.length) } : entry;
  }

  private toRequestOp(op: KvOp): IOperation {
    switch (op.type) {
      case 'put': {
        const put = this.ns.put(op.key).value(op.value);
        if (op.leaseId !== undefined) put.lease(op.leaseId);
        return put;
      }
      case 'delete':
        return this.ns.delete().key(op.key);
      case 'deletePrefix':
        return this.ns.delete().prefix(op.prefix);
    }
  }

  /** Runs one etcd call and turns connectivity failures into StoreUnavailableError. */
  private async call<T>(fn: () => Promise<T>, operation = 'call'): Promise<T> {
    // A call refused before it was sent (the member is down) is safe to send again, to another member.
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt < this.endpointCount && err instanceof Error && /No connection established|ECONNREFUSED/.test(err.message)) continue;
        throw this.mapped(err, operation);
      }
    }
  }

  private mapped(err: unknown, operation: string): Error {
    const mapped = toStoreError(err);
    if (mapped instanceof StoreUnavailableError) this.onUnavailable(operation);
    return mapped;
  }
}

const MAX_TXN_OPS = 128;

function toEntry(kv: IKeyValue): KvEntry {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value.toString('utf8'),
    createRevision: String(kv.create_revision),
    modRevision: String(kv.mod_revision),
  };
}

const UNAVAILABLE_NAMES = new Set([
  'GRPCUnavailableError', 'GRPCDeadlineExceededError', 'GRPCCancelledError', 'GRPCConnectFailedError',
  'GRPCProtocolError', 'ClientClosedError', 'BrokenCircuitError',
]);

export function toStoreError(err: unknown): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  if (err instanceof StoreUnavailableError) return err;
  if (UNAVAILABLE_NAMES.has(err.name) || isRecoverableError(err) || /deadline|unavailable|ECONNREFUSED|No connection/i.test(err.message)) {
    return new StoreUnavailableError(`etcd unavailable: ${err.message.split('\n')[0]}`, { cause: err });
  }
  return err;
}
