import type { Logger } from '../log.js';
import type { KvStore, WatchHandle, WatchEvent } from '../store/kv.js';
import { mayUseNamespace, type Caller } from '../auth/caller.js';
import { readOverview, type AppSummary, type OverviewClusters } from './overview.js';

/**
 * Live changes of the overview, for the UI: one set of etcd watches per replica (deployment
 * records and descriptors), shared by every subscriber and started only while someone listens.
 * A change to an app is coalesced for `coalesceMs`, the app's summary is read again once, and
 * handed to each subscriber that may see its namespace.
 */
export interface OverviewSubscriber {
  caller: Caller;
  onSummary(summary: AppSummary): void;
  /** The feed cannot go on (watch failed, shutdown): the subscriber must start over with a snapshot. */
  onEnd(reason: string): void;
}

export interface OverviewFeedOptions {
  kv: KvStore;
  log: Logger;
  /** Changes of one app within this window become one summary (a deployment writes its record at every step). */
  coalesceMs?: number;
  /** Several clusters: the other clusters' records are watched and summarised too. */
  clusters?: OverviewClusters;
}

/** What the watches cover: a record's status changes together with its live pointer, so records suffice. */
const WATCHED_PREFIXES = ['deployments/', 'descriptors/'];

export class OverviewFeed {
  private readonly subscribers = new Set<OverviewSubscriber>();
  private watches: Promise<WatchHandle[]> | undefined;
  private readonly pending = new Map<string, { namespace: string; appName?: string; revision: string }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: OverviewFeedOptions) {}

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Starts the watches if needed; resolves once they are in place (so no later change is missed). */
  async subscribe(subscriber: OverviewSubscriber): Promise<() => void> {
    if (this.closed) throw new Error('the overview feed is closed');
    this.subscribers.add(subscriber);
    try {
      await (this.watches ??= this.startWatches());
    } catch (err) {
      this.subscribers.delete(subscriber);
      throw err;
    }
    return () => this.unsubscribe(subscriber);
  }

  /** Ends every subscription (shutdown); their streams close and clients reconnect elsewhere. */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.subscribers]) s.onEnd('server shutting down');
    this.subscribers.clear();
    await this.stopWatches();
  }

  private unsubscribe(subscriber: OverviewSubscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    if (this.subscribers.size === 0) void this.stopWatches();
  }

  private async startWatches(): Promise<WatchHandle[]> {
    const handles: WatchHandle[] = [];
    try {
      for (const prefix of WATCHED_PREFIXES) {
        handles.push(await this.o.kv.watch(prefix, undefined, {
          onEvents: (events) => this.noteChanges(prefix, events),
          onError: (err) => this.failAll(err),
        }));
      }
      // Another cluster's records (its view of the store maps the prefix into its own scope).
      for (const other of this.o.clusters?.others ?? []) {
        handles.push(await other.kv.watch('deployments/', undefined, {
          onEvents: (events) => this.noteChanges('deployments/', events),
          onError: (err) => this.failAll(err),
        }));
      }
    } catch (err) {
      await Promise.all(handles.map((h) => h.close()));
      this.watches = undefined;
      throw err;
    }
    return handles;
  }

  private async stopWatches(): Promise<void> {
    const watches = this.watches;
    this.watches = undefined;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.pending.clear();
    if (watches) await Promise.all((await watches.catch(() => [])).map((h) => h.close().catch(() => undefined)));
  }

  /** A watch ended for good (e.g. compaction): subscribers start over with a fresh snapshot. */
  private failAll(err: Error): void {
    this.o.log.warn({ err: { message: err.message } }, 'overview feed: watch failed; subscribers start over');
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    void this.stopWatches();
    for (const s of subscribers) s.onEnd('watch failed');
  }

  private noteChanges(prefix: string, events: WatchEvent[]): void {
    for (const e of events) {
      const [namespace, second] = e.key.slice(prefix.length).split('/');
      if (!namespace || !second) continue;
      // Records and descriptors name their app; a deleted one does not, so its whole namespace is read again.
      this.mark(namespace, e.type === 'put' ? appNameOf(e.value) : undefined, e.modRevision);
    }
    if (this.pending.size > 0 && !this.flushTimer) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        void this.flush();
      }, this.o.coalesceMs ?? 150);
    }
  }

  private mark(namespace: string, appName: string | undefined, revision: string): void {
    const key = appName === undefined ? `${namespace}/` : `${namespace}/${appName}`;
    this.pending.set(key, { namespace, ...(appName !== undefined ? { appName } : {}), revision });
  }

  private async flush(): Promise<void> {
    const batch = [...this.pending.values()];
    this.pending.clear();
    for (const change of batch) {
      if (this.subscribers.size === 0) return;
      try {
        const { apps, revision } = await readOverview(this.o.kv, { namespaces: [change.namespace], ...(change.appName !== undefined ? { appName: change.appName } : {}) },
          this.o.clusters?.defaultCluster, this.o.clusters?.others);
        if (change.appName !== undefined && apps.length === 0) {
          // Nothing left of the app (its descriptors and records were deleted).
          this.publish({ namespace: change.namespace, appName: change.appName, urls: [], descriptorCount: 0, revision, removed: true });
        }
        for (const summary of apps) this.publish(summary);
      } catch (err) {
        // etcd unavailable: subscribers start over once it answers again (their reconnect reads a snapshot).
        this.failAll(err as Error);
        return;
      }
    }
  }

  private publish(summary: AppSummary): void {
    for (const s of this.subscribers) {
      if (mayUseNamespace(s.caller, summary.namespace)) s.onSummary(summary);
    }
  }
}

function appNameOf(value: string): string | undefined {
  try {
    const parsed = JSON.parse(value) as { appName?: unknown };
    return typeof parsed.appName === 'string' ? parsed.appName : undefined;
  } catch {
    return undefined;
  }
}
