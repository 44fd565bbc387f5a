import type { WebhookEventKind } from '../domain/webhooks.js';
import { sleep } from '../lib/deadline.js';
import type { Logger } from '../log.js';
import type { ChangeOps, StoredChange } from '../store/deployments.js';
import type { KvOp, KvStore, WatchHandle } from '../store/kv.js';
import { keys } from '../store/keys.js';
import { fanoutPut, outboxItemPut, type WebhookSubscription } from '../store/webhooks.js';
import { webhookEventsOf } from './events.js';

/** What the outbox needs of a subscription: who it is and what it wants (never its secret). */
export type SubscriptionFilter = Pick<WebhookSubscription, 'id' | 'namespace' | 'apps' | 'events'>;

/** Whether a subscription wants an event of `app` and `kind`. */
export function subscriptionMatches(s: SubscriptionFilter, app: string, kind: WebhookEventKind): boolean {
  return (!s.apps || s.apps.length === 0 || s.apps.includes(app)) && (!s.events || s.events.length === 0 || s.events.includes(kind));
}

export interface OutboxOps {
  ops: KvOp[];
  /** Outbox items written (directly or through fan-out entries), by kind. */
  enqueued: Map<WebhookEventKind, number>;
  /** Events that matched subscriptions but did not fit at all (room 0), by kind. */
  dropped: Map<WebhookEventKind, number>;
  /** Whether fan-out entries were written instead of items. */
  fannedOut: boolean;
}

/**
 * The outbox writes for record changes, to go into the changes' own transaction: a pure function
 * of the changes (their events and sequence numbers), the subscriptions and the room etcd's
 * operation limit leaves. One outbox item per webhook event and matching subscription when they
 * all fit; otherwise one fan-out entry per webhook event naming its subscriptions (a dispatcher
 * turns it into items, before it delivers anything later of that deployment), so the events are
 * stored with their change either way. Only when not even those fit (never with the engine's
 * changes, which take about a dozen operations) are events left out — reported in `dropped`.
 */
export function outboxOps(changes: readonly StoredChange[], subscriptionsOf: (namespace: string) => readonly SubscriptionFilter[], room: number): OutboxOps {
  const matched: Array<{ namespace: string; kind: WebhookEventKind; event: ReturnType<typeof webhookEventsOf>[number]['event']; subscriptions: string[] }> = [];
  for (const change of changes) {
    const subscriptions = subscriptionsOf(change.record.namespace);
    if (subscriptions.length === 0) continue;
    for (const e of webhookEventsOf(change)) {
      const ids = subscriptions.filter((s) => subscriptionMatches(s, change.record.appName, e.kind)).map((s) => s.id);
      if (ids.length > 0) matched.push({ namespace: change.record.namespace, kind: e.kind, event: e.event, subscriptions: ids });
    }
  }
  const enqueued = new Map<WebhookEventKind, number>();
  const dropped = new Map<WebhookEventKind, number>();
  const add = (m: Map<WebhookEventKind, number>, kind: WebhookEventKind, n: number) => m.set(kind, (m.get(kind) ?? 0) + n);
  const items = matched.reduce((n, m) => n + m.subscriptions.length, 0);
  const ops: KvOp[] = [];
  if (items <= room) {
    for (const m of matched) {
      // The item's enqueue time is the event's: both are the instant the change was stored.
      for (const id of m.subscriptions) ops.push(outboxItemPut(m.namespace, id, { event: m.event, kind: m.kind, enqueued: m.event.time, attempts: 0 }));
      add(enqueued, m.kind, m.subscriptions.length);
    }
    return { ops, enqueued, dropped, fannedOut: false };
  }
  for (const m of matched) {
    if (ops.length < room) {
      ops.push(fanoutPut({ event: m.event, kind: m.kind, enqueued: m.event.time, subscriptions: m.subscriptions }));
      add(enqueued, m.kind, m.subscriptions.length);
    } else {
      add(dropped, m.kind, m.subscriptions.length);
    }
  }
  return { ops, enqueued, dropped, fannedOut: true };
}

/**
 * Every namespace's subscriptions (id and filters) in memory, kept current by a watch of
 * `webhooks/`, so the outbox writes of a record change need no read of their own. A subscription
 * created on another replica is seen here after the watch delivers it (milliseconds); changes in
 * that moment, or while the watch is re-established after a failure, go by the previous list.
 */
export class SubscriptionCache {
  private readonly byNamespace = new Map<string, Map<string, SubscriptionFilter>>();
  private watch: WatchHandle | undefined;
  private closed = false;
  private loaded = false;

  constructor(private readonly kv: KvStore, private readonly log: Logger) {}

  /** Reads every subscription and starts watching; the first read must succeed (start-up fails otherwise). */
  async start(): Promise<void> {
    await this.load();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
  }

  get ready(): boolean {
    return this.loaded;
  }

  of(namespace: string): readonly SubscriptionFilter[] {
    const found = this.byNamespace.get(namespace);
    return found ? [...found.values()] : [];
  }

  private async load(): Promise<void> {
    const prefix = keys.allWebhooks();
    const { entries, revision } = await this.kv.list(prefix);
    const fresh = new Map<string, Map<string, SubscriptionFilter>>();
    for (const e of entries) {
      const s = parse(e.value);
      if (s) setIn(fresh, s);
    }
    this.byNamespace.clear();
    for (const [ns, subs] of fresh) this.byNamespace.set(ns, subs);
    this.loaded = true;
    if (this.closed) return;
    const handle = await this.kv.watch(prefix, String(BigInt(revision) + 1n), {
      onEvents: (events) => {
        for (const e of events) {
          const [, namespace, id] = e.key.split('/');
          if (!namespace || !id) continue;
          if (e.type === 'delete') {
            this.byNamespace.get(namespace)?.delete(id);
          } else {
            const s = parse(e.value);
            if (s) setIn(this.byNamespace, s);
          }
        }
      },
      onError: (err) => {
        if (this.closed) return;
        this.log.warn({ err: err.message }, 'watch of webhook subscriptions ended; reading them again');
        void handle.close();
        void this.reload();
      },
    });
    this.watch = handle;
    if (this.closed) await handle.close();
  }

  private async reload(): Promise<void> {
    let backoff = 250;
    while (!this.closed) {
      try {
        await this.load();
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message, retryInMs: backoff }, 'cannot read webhook subscriptions; using the last known ones meanwhile');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
}

function parse(value: string): SubscriptionFilter | undefined {
  try {
    const s = JSON.parse(value) as Partial<WebhookSubscription>;
    if (typeof s.id !== 'string' || typeof s.namespace !== 'string') return undefined;
    return { id: s.id, namespace: s.namespace, ...(Array.isArray(s.apps) ? { apps: s.apps } : {}), ...(Array.isArray(s.events) ? { events: s.events } : {}) };
  } catch {
    return undefined; // the API and the dispatcher report unreadable subscriptions
  }
}

function setIn(map: Map<string, Map<string, SubscriptionFilter>>, s: SubscriptionFilter): void {
  let subs = map.get(s.namespace);
  if (!subs) map.set(s.namespace, (subs = new Map()));
  subs.set(s.id, s);
}

export interface WebhookOutboxOptions {
  subscriptions: Pick<SubscriptionCache, 'of'>;
  log: Logger;
  /** Outbox items stored with their change (counted once the transaction succeeded). */
  onEnqueued?: (kind: WebhookEventKind, items: number) => void;
  /** Items that found no room in their change's transaction: not delivered. */
  onEnqueueFailed?: (kind: WebhookEventKind, items: number) => void;
}

/**
 * The deployment store's change-ops hook for webhooks (DeploymentStore's `changeOps`): the outbox
 * writes of each record change, from the cached subscriptions. Never in the change's way: a
 * failure here is logged and counted, and the change is stored without them.
 */
export class WebhookOutbox {
  constructor(private readonly o: WebhookOutboxOptions) {}

  readonly changeOps = (changes: readonly StoredChange[], room: number): ChangeOps | undefined => {
    let computed: OutboxOps;
    try {
      computed = outboxOps(changes, (ns) => this.o.subscriptions.of(ns), room);
    } catch (err) {
      this.o.log.error({ err, deploymentId: changes[0]?.record.id }, 'webhook events of a change could not be computed; they are not delivered');
      return undefined;
    }
    if (computed.ops.length === 0 && computed.dropped.size === 0) return undefined;
    return {
      ops: computed.ops,
      committed: () => {
        for (const [kind, n] of computed.enqueued) this.o.onEnqueued?.(kind, n);
        for (const [kind, n] of computed.dropped) this.o.onEnqueueFailed?.(kind, n);
        if (computed.dropped.size > 0) {
          this.o.log.error({ deploymentId: changes[0]?.record.id, room }, 'webhook events did not fit into their change\'s etcd transaction; they are not delivered');
        } else if (computed.fannedOut) {
          this.o.log.debug({ deploymentId: changes[0]?.record.id, room }, 'webhook events stored as fan-out entries (too many subscriptions for one transaction)');
        }
      },
    };
  };
}
