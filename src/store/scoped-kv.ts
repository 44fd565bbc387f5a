import type { Guard, KvEntry, KvOp, KvStore, Lease, ListOptions, ListResult, TxnResult, WatchCallbacks, WatchHandle } from './kv.js';

/**
 * One cluster's view of the store: every key under `scope` (e.g. "clusters/prod-b/"), except the
 * key families shared by all clusters, which pass through unchanged. The default cluster's scope
 * is "" (today's layout, which the Amdatu-compatible API and older data use), so its view is the
 * store itself. The stores, the scheduler and the engine run on a view and never learn which
 * cluster they serve; all views live in one etcd, so a transaction may span clusters.
 */
export class ScopedKv implements KvStore {
  constructor(
    private readonly root: KvStore,
    readonly scope: string,
    /** Key prefixes that mean the same in every cluster (version counters, the webhook outbox). */
    private readonly shared: readonly string[],
  ) {
    if (scope !== '' && !scope.endsWith('/')) throw new Error(`a scope ends with "/": ${scope}`);
  }

  /** The key in the whole store. */
  toRoot(key: string): string {
    if (this.scope === '' || this.isShared(key)) return key;
    return this.scope + key;
  }

  private isShared(key: string): boolean {
    return this.shared.some((p) => key.startsWith(p));
  }

  private fromRoot(key: string): string {
    return this.scope !== '' && key.startsWith(this.scope) ? key.slice(this.scope.length) : key;
  }

  private entry<T extends { key: string }>(e: T): T {
    return { ...e, key: this.fromRoot(e.key) };
  }

  /** A prefix is either wholly shared or wholly scoped; one that spans both would be a bug. */
  private prefix(prefix: string): string {
    if (this.scope !== '' && !this.isShared(prefix) && this.shared.some((p) => p.startsWith(prefix))) {
      throw new Error(`prefix "${prefix}" spans shared and scoped keys`);
    }
    return this.toRoot(prefix);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = await this.root.get(this.toRoot(key));
    return e && this.entry(e);
  }

  async getMany(keys: string[]): Promise<Array<KvEntry | undefined>> {
    return (await this.root.getMany(keys.map((k) => this.toRoot(k)))).map((e) => e && this.entry(e));
  }

  async list(prefix: string, options?: ListOptions): Promise<ListResult> {
    const opts = options?.fromKey !== undefined ? { ...options, fromKey: this.toRoot(options.fromKey) } : options;
    const res = await this.root.list(this.prefix(prefix), opts);
    return { ...res, entries: this.scope === '' ? res.entries : res.entries.map((e) => this.entry(e)) };
  }

  count(prefix: string): Promise<number> {
    return this.root.count(this.prefix(prefix));
  }

  transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    return this.root.transact(this.rootGuards(guards), this.rootOps(ops));
  }

  rootGuards(guards: Guard[]): Guard[] {
    return this.scope === '' ? guards : guards.map((g) => ({ ...g, key: this.toRoot(g.key) }));
  }

  rootOps(ops: KvOp[]): KvOp[] {
    if (this.scope === '') return ops;
    return ops.map((op) => (op.type === 'deletePrefix' ? { ...op, prefix: this.prefix(op.prefix) } : { ...op, key: this.toRoot(op.key) }));
  }

  watch(prefix: string, fromRevision: string | undefined, callbacks: WatchCallbacks): Promise<WatchHandle> {
    if (this.scope === '') return this.root.watch(prefix, fromRevision, callbacks);
    return this.root.watch(this.prefix(prefix), fromRevision, {
      onEvents: (events) => callbacks.onEvents(events.map((e) => this.entry(e))),
      onError: (err) => callbacks.onError(err),
    });
  }

  grantLease(ttlSeconds: number): Promise<Lease> {
    return this.root.grantLease(ttlSeconds);
  }

  ping(): Promise<void> {
    return this.root.ping();
  }

  /** The root store is closed by its owner, not by a view. */
  async close(): Promise<void> {}
}
