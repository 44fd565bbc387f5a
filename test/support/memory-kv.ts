import {
  StoreUnavailableError, type Guard, type KvEntry, type KvOp, type KvStore, type Lease, type ListOptions, type ListResult,
  type TxnResult, type WatchCallbacks, type WatchEvent, type WatchHandle,
} from '../../src/store/kv.js';

/**
 * An in-memory KvStore with etcd's revision semantics (list at a revision, watch from a revision
 * with replay), plus knobs to break watches the way etcd can (compaction, outages).
 */
export class MemoryKv implements KvStore {
  private revision = 1;
  private readonly data = new Map<string, KvEntry>();
  readonly history: Array<WatchEvent & { revision: number }> = [];
  private readonly watches = new Set<{ prefix: string; callbacks: WatchCallbacks }>();
  /** Watch creations to refuse with StoreUnavailableError (an etcd outage). */
  refuseWatches = 0;
  /** Report list revisions this much too low, so a watch replays events the list already had. */
  understateListRevisionBy = 0;

  get activeWatches(): number {
    return this.watches.size;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    return this.data.get(key);
  }

  async getMany(keys: string[]): Promise<Array<KvEntry | undefined>> {
    return keys.map((k) => this.data.get(k));
  }

  /** Every list() call's prefix, in order (tests of what is read, and how often). */
  readonly lists: string[] = [];

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    this.lists.push(prefix);
    let entries = [...this.data.values()].filter((e) => e.key.startsWith(prefix) && (options.fromKey === undefined || e.key >= options.fromKey));
    entries.sort(options.sortBy === 'create' ? (a, b) => Number(a.createRevision) - Number(b.createRevision) : (a, b) => (a.key < b.key ? -1 : 1));
    if (options.order === 'desc') entries.reverse();
    if (options.limit !== undefined) entries = entries.slice(0, options.limit);
    return { entries, revision: String(this.revision - this.understateListRevisionBy) };
  }

  async count(prefix: string): Promise<number> {
    return (await this.list(prefix)).entries.length;
  }

  async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    for (const g of guards) if ((this.data.get(g.key)?.modRevision ?? '0') !== g.modRevision) return { succeeded: false, revision: String(this.revision) };
    const rev = ++this.revision;
    const events: WatchEvent[] = [];
    for (const op of ops) {
      if (op.type === 'put') {
        if (op.leaseId !== undefined) this.leased.set(op.key, op.leaseId);
        const entry = { key: op.key, value: op.value, createRevision: this.data.get(op.key)?.createRevision ?? String(rev), modRevision: String(rev) };
        this.data.set(op.key, entry);
        events.push({ type: 'put', ...entry });
      } else {
        const doomed = op.type === 'delete' ? [op.key] : [...this.data.keys()].filter((k) => k.startsWith(op.prefix));
        for (const key of doomed) {
          const old = this.data.get(key);
          if (!old) continue;
          this.data.delete(key);
          events.push({ type: 'delete', key, value: '', createRevision: old.createRevision, modRevision: String(rev) });
        }
      }
    }
    this.history.push(...events.map((e) => ({ ...e, revision: rev })));
    for (const w of this.watches) {
      const mine = events.filter((e) => e.key.startsWith(w.prefix));
      if (mine.length > 0) queueMicrotask(() => this.watches.has(w) && w.callbacks.onEvents(mine));
    }
    return { succeeded: true, revision: String(rev) };
  }

  async watch(prefix: string, fromRevision: string | undefined, callbacks: WatchCallbacks): Promise<WatchHandle> {
    if (this.refuseWatches > 0) {
      this.refuseWatches--;
      throw new StoreUnavailableError('etcd unavailable: test outage');
    }
    const w = { prefix, callbacks };
    const from = fromRevision === undefined ? this.revision + 1 : Number(fromRevision);
    const replay = this.history.filter((e) => e.revision >= from && e.key.startsWith(prefix)).map(({ revision: _r, ...e }) => e);
    this.watches.add(w);
    if (replay.length > 0) queueMicrotask(() => this.watches.has(w) && callbacks.onEvents(replay));
    return { close: async () => void this.watches.delete(w) };
  }

  /** Ends every watch with an error, as etcd does when a watch's revision was compacted. */
  breakWatches(error: Error): void {
    const all = [...this.watches];
    this.watches.clear();
    for (const w of all) w.callbacks.onError(error);
  }

  /** Leases that never expire unless a test ends them with `lease.lose()`. */
  readonly leases: Array<Lease & { lose(): void }> = [];

  /** While true, granting a lease fails as if etcd were unreachable for this client. */
  refuseLeases = false;

  async grantLease(ttlSeconds: number): Promise<Lease> {
    if (this.refuseLeases) throw new StoreUnavailableError('etcd unavailable: test (no lease)');
    const listeners: Array<(err: Error) => void> = [];
    let valid = Number.POSITIVE_INFINITY;
    const id = String(this.leases.length + 1);
    const lease = {
      id, ttlSeconds,
      validUntil: () => valid,
      onLost: (l: (err: Error) => void) => void listeners.push(l),
      revoke: async () => {
        valid = 0;
      },
      lose: () => {
        valid = 0;
        for (const key of [...this.data.keys()]) if (this.leased.get(key) === id) void this.transact([], [{ type: 'delete', key }]);
        for (const l of listeners) l(new Error('lease lost (test)'));
      },
    };
    this.leases.push(lease);
    return lease;
  }

  private readonly leased = new Map<string, string>();

  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}
