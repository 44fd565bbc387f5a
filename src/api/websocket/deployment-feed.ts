import { EventEmitter } from 'node:events';
import type { DeploymentEvent, DeploymentStatus, DeploymentStep } from '../../domain/deployment.js';
import type { DeploymentStore } from '../../store/deployments.js';
import { keys, seqOfEventKey } from '../../store/keys.js';
import { parseRecord } from '../../store/json.js';
import { StoreUnavailableError, type KvStore, type WatchEvent, type WatchHandle } from '../../store/kv.js';
import type { Logger } from '../../log.js';

export type StatusEvent = Extract<DeploymentEvent, { type: 'status' }>;

/** Everything that happens to a feed, in order; the websocket (and later SSE, metrics) observe these. */
export type FeedChange =
  /** `events` were appended at `fromIndex` of `feed.events`. */
  | { type: 'appended'; fromIndex: number; events: readonly DeploymentEvent[] }
  /** The deployment's events were deleted (the record was deleted); nothing more will come. */
  | { type: 'deleted' }
  /** The etcd watch ended with an error; the feed re-reads and watches again, losing nothing. */
  | { type: 'resyncing'; error: Error }
  | { type: 'resynced'; revision: string }
  /** The feed gave up (an unexpected error while resyncing); nothing more will come. */
  | { type: 'failed'; error: Error }
  | { type: 'stopped' };

export interface FeedDeps {
  store: DeploymentStore;
  kv: KvStore;
  log: Logger;
  /** First pause before a resync is retried; doubles up to 5 s. */
  retryDelayMs?: number;
}

const MAX_RETRY_DELAY_MS = 5000;
/** Unexpected (non-availability) errors in a row after which a feed gives up. */
const MAX_UNEXPECTED_FAILURES = 5;

/**
 * The events of one deployment, kept complete and in order in memory while someone watches:
 * one etcd range read, then one etcd watch from the revision after it, so nothing falls between
 * the two. Events are immutable and numbered densely, so anything seen twice (after a resync) is
 * dropped by sequence number. When the watch ends with an error (e.g. its start revision was
 * compacted away), the feed re-reads what came after its last event and watches again.
 *
 * The whole log of a watched deployment is held once per process, shared by all its watchers;
 * it is what GET /deployments/{id}/logs materialises per request anyway.
 */
export class DeploymentFeed {
  private readonly log: DeploymentEvent[] = [];
  private readonly emitter = new EventEmitter();
  private watch: WatchHandle | undefined;
  /** Identifies the current watch; callbacks of any other (older, failed) watch are ignored. */
  private watchToken: symbol | undefined;
  private resyncRequested = false;
  private latestStatus: StatusEvent | undefined;
  private lastRevision = '0';
  private stopped = false;
  private deletedFlag = false;
  private failure: Error | undefined;
  private resyncing = false;

  constructor(readonly namespace: string, readonly deploymentId: string, private readonly deps: FeedDeps) {
    this.emitter.setMaxListeners(0); // one listener per watcher; thousands are expected
  }

  /** The deployment's events so far, in sequence order (append-only while the feed runs). */
  get events(): readonly DeploymentEvent[] {
    return this.log;
  }

  /** Sequence number of the last event, 0 when there is none. */
  get lastSeq(): number {
    return this.log[this.log.length - 1]?.seq ?? 0;
  }

  /** The latest status event, if any was written. */
  get status(): StatusEvent | undefined {
    return this.latestStatus;
  }

  /** The etcd revision the feed is complete up to. */
  get revision(): string {
    return this.lastRevision;
  }

  get deleted(): boolean {
    return this.deletedFlag;
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Index of the first event with a sequence number above `seq` (events.length if none). */
  indexAfter(seq: number): number {
    let lo = 0;
    let hi = this.log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.log[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  subscribe(listener: (change: FeedChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  /** Reads the events and starts the watch; rejects (StoreUnavailableError…) when etcd cannot be read. */
  async start(): Promise<void> {
    const { events, revision } = await this.deps.store.events(this.namespace, this.deploymentId, 0);
    this.append(events, revision);
    await this.watchAfter(revision);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchToken = undefined;
    const watch = this.watch;
    this.watch = undefined;
    await watch?.close();
    this.emit({ type: 'stopped' });
    this.emitter.removeAllListeners();
  }

  /** Watches from the revision after `revision`; callbacks of an older watch are ignored (token). */
  private async watchAfter(revision: string): Promise<void> {
    const token = Symbol('watch');
    this.watchToken = token;
    const handle = await this.deps.kv.watch(keys.eventsOf(this.namespace, this.deploymentId), (BigInt(revision) + 1n).toString(), {
      onEvents: (events) => {
        if (this.watchToken === token) this.onWatchEvents(events);
      },
      onError: (error) => {
        if (this.watchToken === token) this.onWatchError(error);
      },
    });
    if (this.stopped || this.watchToken !== token) {
      // stopped meanwhile, or this watch already failed before its handle was known
      await handle.close();
      return;
    }
    this.watch = handle;
  }

  private onWatchEvents(changes: WatchEvent[]): void {
    const events: DeploymentEvent[] = [];
    let revision = this.lastRevision;
    for (const change of changes) {
      if (BigInt(change.modRevision) > BigInt(revision)) revision = change.modRevision;
      if (change.type === 'delete') {
        this.markDeleted();
        continue;
      }
      try {
        const event = parseRecord<DeploymentEvent>({ key: change.key, value: change.value, createRevision: change.createRevision, modRevision: change.modRevision });
        events.push({ ...event, seq: seqOfEventKey(change.key) } as DeploymentEvent);
      } catch {
        // a foreign value under the prefix is skipped, as DeploymentStore.events() does
      }
    }
    events.sort((a, b) => a.seq - b.seq);
    this.append(events, revision);
  }

  private onWatchError(error: Error): void {
    if (this.stopped) return;
    this.watchToken = undefined;
    const dead = this.watch;
    this.watch = undefined;
    void dead?.close();
    this.deps.log.warn({ namespace: this.namespace, deploymentId: this.deploymentId, err: error.message, lastSeq: this.lastSeq }, 'log feed watch ended; re-reading and watching again');
    this.emit({ type: 'resyncing', error });
    this.resyncRequested = true;
    if (!this.resyncing) void this.resync();
  }

  /**
   * Re-reads what came after the last event and watches again, retrying with backoff while etcd
   * is unavailable, until it works or the feed stops. A watch that fails during a resync asks for
   * another round.
   */
  private async resync(): Promise<void> {
    this.resyncing = true;
    try {
      while (this.resyncRequested && !this.stopped) {
        this.resyncRequested = false;
        let delay = this.deps.retryDelayMs ?? 200;
        let unexpected = 0;
        for (;;) {
          if (this.stopped) return;
          try {
            const { events, revision } = await this.deps.store.events(this.namespace, this.deploymentId, this.lastSeq);
            if (this.stopped) return;
            this.append(events, revision);
            await this.watchAfter(revision);
            if (this.watchToken !== undefined) this.emit({ type: 'resynced', revision });
            break;
          } catch (err) {
            if (!(err instanceof StoreUnavailableError) && ++unexpected >= MAX_UNEXPECTED_FAILURES) {
              this.failure = err as Error;
              this.deps.log.error({ namespace: this.namespace, deploymentId: this.deploymentId, err }, 'log feed gave up');
              this.emit({ type: 'failed', error: err as Error });
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, delay).unref());
            delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
          }
        }
      }
    } finally {
      this.resyncing = false;
    }
  }

  /** Appends events not seen yet (sequence number above the last), then tells the subscribers. */
  private append(events: readonly DeploymentEvent[], revision: string): void {
    if (BigInt(revision) > BigInt(this.lastRevision)) this.lastRevision = revision;
    const fromIndex = this.log.length;
    for (const event of events) {
      if (event.seq <= this.lastSeq) continue;
      this.log.push(event);
      if (event.type === 'status') this.latestStatus = event;
    }
    if (this.log.length > fromIndex) this.emit({ type: 'appended', fromIndex, events: this.log.slice(fromIndex) });
  }

  private markDeleted(): void {
    if (this.deletedFlag) return;
    this.deletedFlag = true;
    this.emit({ type: 'deleted' });
  }

  private emit(change: FeedChange): void {
    for (const listener of this.emitter.listeners('change')) {
      try {
        (listener as (c: FeedChange) => void)(change);
      } catch (err) {
        // one observer's bug must not starve the others
        this.deps.log.error({ err, namespace: this.namespace, deploymentId: this.deploymentId }, 'log feed listener failed');
      }
    }
  }
}

export interface FeedLease {
  readonly feed: DeploymentFeed;
  /** Gives the feed back; the last release stops its etcd watch. Idempotent. */
  release(): void;
}

export type FeedsChange =
  | { type: 'feed-started'; namespace: string; deploymentId: string }
  | { type: 'feed-stopped'; namespace: string; deploymentId: string };

interface Slot {
  feed: DeploymentFeed;
  users: number;
  ready: Promise<void>;
}

/** Feeds are closed for good (the server shuts down). */
export class FeedsClosedError extends Error {
  constructor() {
    super('log feeds are shut down');
    this.name = 'FeedsClosedError';
  }
}

/**
 * One DeploymentFeed per deployment per process, shared by reference count: started by the
 * first acquire, stopped (its etcd watch cancelled) when the last lease is released.
 */
export class DeploymentFeeds {
  private readonly slots = new Map<string, Slot>();
  private readonly emitter = new EventEmitter();
  private closed = false;

  constructor(private readonly deps: FeedDeps) {}

  /** Feeds running now (each holds one etcd watch). */
  get count(): number {
    return this.slots.size;
  }

  subscribe(listener: (change: FeedsChange) => void): () => void {
    this.emitter.on('change', listener);
    return () => this.emitter.off('change', listener);
  }

  /** The running feed of a deployment, started when needed; rejects when etcd cannot be read. */
  async acquire(namespace: string, deploymentId: string): Promise<FeedLease> {
    if (this.closed) throw new FeedsClosedError();
    const key = `${namespace}/${deploymentId}`;
    let slot = this.slots.get(key);
    if (!slot) {
      const feed = new DeploymentFeed(namespace, deploymentId, this.deps);
      const created: Slot = { feed, users: 0, ready: feed.start() };
      slot = created;
      this.slots.set(key, created);
      this.emitter.emit('change', { type: 'feed-started', namespace, deploymentId } satisfies FeedsChange);
      created.ready.catch(() => this.drop(key, created));
    }
    const acquired = slot;
    acquired.users++;
    try {
      await acquired.ready;
    } catch (err) {
      acquired.users--;
      throw err;
    }
    let released = false;
    return {
      feed: acquired.feed,
      release: () => {
        if (released) return;
        released = true;
        if (--acquired.users === 0) this.drop(key, acquired);
      },
    };
  }

  /** Stops every feed; later acquires are refused. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.slots.entries()];
    await Promise.all(all.map(([key, slot]) => this.drop(key, slot)));
  }

  private async drop(key: string, slot: Slot): Promise<void> {
    if (this.slots.get(key) !== slot) return;
    this.slots.delete(key);
    await slot.feed.stop();
    this.emitter.emit('change', { type: 'feed-stopped', namespace: slot.feed.namespace, deploymentId: slot.feed.deploymentId } satisfies FeedsChange);
  }
}
