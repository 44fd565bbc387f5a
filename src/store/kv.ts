/**
 * The small key-value interface cutover's stores are written against. etcd (src/store/etcd.ts)
 * implements it over etcd's HTTP/JSON gateway (src/store/etcd-http.ts). Keys are relative to the configured
 * prefix. Revisions are etcd revisions as decimal strings (they are int64).
 */

export interface KvEntry {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
}

/** A transaction guard: the key's mod revision must equal `modRevision` ("0" = key must not exist). */
export interface Guard {
  key: string;
  modRevision: string;
}

export type KvOp =
  | { type: 'put'; key: string; value: string; leaseId?: string }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string };

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the transaction (when it succeeded, the revision of its writes). */
  revision: string;
}

export interface ListOptions {
  limit?: number;
  /** Sort by key (default) or by creation revision. */
  sortBy?: 'key' | 'create';
  order?: 'asc' | 'desc';
  /** Only keys whose creation revision is at least this. */
  minCreateRevision?: string;
  /** Read at this revision (consistent snapshot); default: latest. */
  atRevision?: string;
  /** Start at this key (inclusive) instead of the prefix's first key; for paging. */
  fromKey?: string;
}

export interface ListResult {
  entries: KvEntry[];
  /** The store revision the list was read at; watch from revision + 1 to continue without gaps. */
  revision: string;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** Empty for deletes. */
  value: string;
  createRevision: string;
  modRevision: string;
}

export interface WatchHandle {
  close(): Promise<void>;
}

export interface WatchCallbacks {
  /** Events in revision order. */
  onEvents(events: WatchEvent[]): void;
  /**
   * The watch ended for good (e.g. the start revision was compacted). The owner must re-read
   * and watch again; transient disconnects are retried inside the store and not reported here.
   */
  onError(error: Error): void;
}

/**
 * A lease keeps keys alive while its holder is alive; `lost` fires when it can no longer be kept.
 * `validUntil()` is the holder's own, conservative view: the lease is certainly alive on the
 * server until then (TTL counted from the *sending* of the last acknowledged keepalive), so a
 * replica can stop acting on what the lease protects before anyone else may take it over.
 */
export interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** `performance.now()` time until which the lease is known to be alive; 0 once lost. */
  validUntil(): number;
  onLost(listener: (error: Error) => void): void;
  revoke(): Promise<void>;
}

export interface KvStore {
  get(key: string): Promise<KvEntry | undefined>;
  /** Several keys in one round trip, at one revision; undefined where a key does not exist. */
  getMany(keys: string[]): Promise<Array<KvEntry | undefined>>;
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  count(prefix: string): Promise<number>;
  transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult>;
  watch(prefix: string, fromRevision: string | undefined, callbacks: WatchCallbacks): Promise<WatchHandle>;
  grantLease(ttlSeconds: number): Promise<Lease>;
  /** Resolves when the store answers a read within its deadline. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The store could not be reached or did not answer within its deadline (maps to HTTP 503). */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/** A value in the store could not be understood (corrupt or foreign data). */
export class StoreDataError extends Error {
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = 'StoreDataError';
  }
}

/**
 * Runs a store call, waiting while etcd is unreachable (backoff 250 ms … 3 s), until `signal`
 * ends: for reads of work in progress, which should pause during an outage rather than fail.
 */
export async function whileUnavailable<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
  let delay = 250;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StoreUnavailableError) || signal.aborted) throw err;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, delay);
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
      delay = Math.min(delay * 2, 3000);
    }
  }
}
