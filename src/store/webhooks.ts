import { FenceLostError, RevisionConflictError } from '../domain/errors.js';
import type { DeliveryLogEntry, StoredCloudEvent, WebhookEventKind, WebhookInfo } from '../domain/webhooks.js';
import type { EncryptedSecret } from './api-keys.js';
import type { Guard, KvEntry, KvOp, KvStore } from './kv.js';
import { keys } from './keys.js';
import { parseRecord } from './json.js';

/** A namespace's subscription as stored: with its signing secret (docs/webhooks.md). */
export interface WebhookSubscription extends WebhookInfo {
  /** The signing secret, encrypted under the key-encryption key with the subscription id as AAD. */
  secret: EncryptedSecret;
}

/** One event still to be delivered to one subscription. */
export interface OutboxItem {
  event: StoredCloudEvent;
  kind: WebhookEventKind;
  /** When the event was put into the outbox. */
  enqueued: string;
  attempts: number;
  firstAttempt?: string;
  lastAttempt?: string;
  /** When the next attempt is due (after a failed one). */
  nextAttempt?: string;
  lastError?: string;
  /** HTTP status of the last answer, if there was one. */
  lastStatus?: number;
}

export type { DeliveryLogEntry, DeliveryStatus } from '../domain/webhooks.js';

/** An event whose outbox items are still to be written, one per subscription named (keys.webhookFanout). */
export interface FanoutEntry {
  event: StoredCloudEvent;
  kind: WebhookEventKind;
  enqueued: string;
  subscriptions: string[];
}

/** The put of one outbox item (for a record change's own transaction). */
export function outboxItemPut(namespace: string, subscription: string, item: OutboxItem): KvOp {
  return { type: 'put', key: keys.webhookOutboxItem(namespace, subscription, item.event.data.deploymentId, item.event.sequence), value: JSON.stringify(item) };
}

/** The put of a fan-out entry (for a record change's own transaction, when its outbox items do not fit). */
export function fanoutPut(entry: FanoutEntry): KvOp {
  const { namespace, deploymentId } = entry.event.data;
  return { type: 'put', key: keys.webhookFanout(namespace, deploymentId, entry.event.sequence), value: JSON.stringify(entry) };
}

/** A stream: the events of one deployment for one subscription, delivered in order by one replica at a time. */
export interface StreamRef {
  namespace: string;
  subscription: string;
  deploymentId: string;
}

export interface StoredOutboxItem {
  key: string;
  modRevision: string;
  item: OutboxItem;
}

/** etcd allows 128 operations per transaction by default. */
const MAX_OPS = 120;

/** Parses `webhook-outbox/{ns}/{sub}/{deployment}/{order}` and `webhook-owners/{ns}/{sub}/{deployment}`. */
export function streamOfKey(key: string): StreamRef | undefined {
  const [root, namespace, subscription, deploymentId] = key.split('/');
  if ((root !== 'webhook-outbox' && root !== 'webhook-owners') || !namespace || !subscription || !deploymentId) return undefined;
  return { namespace, subscription, deploymentId };
}

/** Subscriptions, the outbox and the delivery log in etcd (docs/store.md). */
export class WebhookStore {
  constructor(private readonly kv: KvStore, private readonly onCorrupt: (key: string, err: Error) => void = () => {}) {}

  async create(record: WebhookSubscription): Promise<void> {
    const key = keys.webhook(record.namespace, record.id);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(record) }]);
    if (!res.succeeded) throw new RevisionConflictError(`webhook ${record.id} already exists`);
  }

  async get(namespace: string, id: string): Promise<WebhookSubscription | undefined> {
    const entry = await this.kv.get(keys.webhook(namespace, id));
    return entry ? parseRecord<WebhookSubscription>(entry) : undefined;
  }

  /** The namespace's subscriptions, oldest first (unreadable ones are reported and skipped). */
  async list(namespace: string): Promise<WebhookSubscription[]> {
    const { entries } = await this.kv.list(keys.webhooksOf(namespace), { sortBy: 'create' });
    const out: WebhookSubscription[] = [];
    for (const entry of entries) {
      try {
        out.push(parseRecord<WebhookSubscription>(entry));
      } catch (err) {
        this.onCorrupt(entry.key, err as Error);
      }
    }
    return out;
  }

  /** Deletes the subscription with its pending deliveries and its log; false when there was none. */
  async remove(namespace: string, id: string): Promise<boolean> {
    const key = keys.webhook(namespace, id);
    const entry = await this.kv.get(key);
    if (!entry) return false;
    await this.kv.transact([{ key, modRevision: entry.modRevision }], [
      { type: 'delete', key },
      { type: 'deletePrefix', prefix: keys.webhookOutboxOf(namespace, id) },
      { type: 'deletePrefix', prefix: keys.webhookDeliveriesOf(namespace, id) },
    ]);
    return true;
  }

  /**
   * Turns a deployment's fan-out entries into outbox items, oldest first: per entry one
   * transaction that puts an item for each of its subscriptions that still exists and removes the
   * entry — only if neither the entry nor those subscriptions changed meanwhile (then it reads
   * again). Any replica may do it, and several at once: the entry's revision decides.
   */
  async expandFanouts(namespace: string, deploymentId: string): Promise<void> {
    const { entries } = await this.kv.list(keys.webhookFanoutOf(namespace, deploymentId));
    for (const entry of entries) await this.expandFanout(entry);
  }

  async expandFanout(entry: KvEntry): Promise<void> {
    const { key, modRevision } = entry;
    let fanout: FanoutEntry;
    try {
      fanout = parseRecord<FanoutEntry>(entry);
    } catch (err) {
      this.onCorrupt(key, err as Error);
      await this.kv.transact([{ key, modRevision }], [{ type: 'delete', key }]);
      return;
    }
    const { namespace } = fanout.event.data;
    for (let attempt = 0; attempt < 10; attempt++) {
      const subs = await this.kv.getMany(fanout.subscriptions.map((id) => keys.webhook(namespace, id)));
      const guards: Guard[] = [{ key, modRevision }];
      const ops: KvOp[] = [{ type: 'delete', key }];
      fanout.subscriptions.forEach((id, i) => {
        guards.push({ key: keys.webhook(namespace, id), modRevision: subs[i]?.modRevision ?? '0' });
        if (subs[i]) ops.push(outboxItemPut(namespace, id, { event: fanout.event, kind: fanout.kind, enqueued: fanout.enqueued, attempts: 0 }));
      });
      const res = await this.kv.transact(guards, ops);
      if (res.succeeded) return;
      const now = (await this.kv.getMany([key]))[0];
      if (!now || now.modRevision !== modRevision) return; // expanded by someone else
    }
    throw new RevisionConflictError(`the subscriptions of ${namespace} keep changing; fan-out entry ${key} is expanded later`);
  }

  /** A stream's pending items, in order. */
  async streamItems(stream: StreamRef): Promise<StoredOutboxItem[]> {
    const { entries } = await this.kv.list(keys.webhookStream(stream.namespace, stream.subscription, stream.deploymentId));
    const out: StoredOutboxItem[] = [];
    for (const entry of entries) {
      try {
        out.push({ key: entry.key, modRevision: entry.modRevision, item: parseRecord<OutboxItem>(entry) });
      } catch (err) {
        // Never delivered, never blocking the stream: reported and removed.
        this.onCorrupt(entry.key, err as Error);
        await this.kv.transact([{ key: entry.key, modRevision: entry.modRevision }], [{ type: 'delete', key: entry.key }]);
      }
    }
    return out;
  }

  /** Removes a stream's items whose subscription is gone (written by a change that still saw it). */
  async dropStream(stream: StreamRef, fence: Guard): Promise<void> {
    await this.kv.transact([fence], [{ type: 'deletePrefix', prefix: keys.webhookStream(stream.namespace, stream.subscription, stream.deploymentId) }]);
  }

  /** Takes a stream for this replica (held with `leaseId`); the claim's revision, or undefined when another replica has it. */
  async claim(stream: StreamRef, leaseId: string, replica: string): Promise<string | undefined> {
    const key = keys.webhookStreamOwner(stream.namespace, stream.subscription, stream.deploymentId);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{
      type: 'put', key, leaseId, value: JSON.stringify({ replica, since: new Date().toISOString() }),
    }]);
    return res.succeeded ? res.revision : undefined;
  }

  async release(stream: StreamRef, claimRevision: string): Promise<void> {
    const key = keys.webhookStreamOwner(stream.namespace, stream.subscription, stream.deploymentId);
    await this.kv.transact([{ key, modRevision: claimRevision }], [{ type: 'delete', key }]);
  }

  /**
   * Stores an attempt's outcome on the item (attempts, last error, next attempt): the new mod
   * revision. FenceLostError when the stream is no longer ours; undefined when the item is gone
   * (its subscription was removed).
   */
  async recordAttempt(stored: StoredOutboxItem, item: OutboxItem, fence: Guard): Promise<string | undefined> {
    const res = await this.kv.transact([fence, { key: stored.key, modRevision: stored.modRevision }], [{ type: 'put', key: stored.key, value: JSON.stringify(item) }]);
    if (res.succeeded) return res.revision;
    return this.whyRefused(stored.key, fence);
  }

  /** Ends an item: removes it from the outbox and logs the outcome, in one transaction. False when the item is gone. */
  async finish(stream: StreamRef, stored: StoredOutboxItem, entry: DeliveryLogEntry, fence: Guard): Promise<boolean> {
    const res = await this.kv.transact([fence, { key: stored.key, modRevision: stored.modRevision }], [
      { type: 'delete', key: stored.key },
      { type: 'put', key: keys.webhookDelivery(stream.namespace, stream.subscription, entry.eventId), value: JSON.stringify(entry) },
    ]);
    if (res.succeeded) return true;
    await this.whyRefused(stored.key, fence);
    return false;
  }

  private async whyRefused(itemKey: string, fence: Guard): Promise<undefined> {
    const [owner] = await this.kv.getMany([fence.key, itemKey]);
    if ((owner?.modRevision ?? '0') !== fence.modRevision) throw new FenceLostError(`no longer delivering ${fence.key}`);
    return undefined;
  }

  /** The subscription's delivery log, newest first: pending items, then finished ones. */
  async deliveries(namespace: string, subscription: string, limit: number): Promise<DeliveryLogEntry[]> {
    const [pending, done] = await Promise.all([
      this.kv.list(keys.webhookOutboxOf(namespace, subscription)),
      this.kv.list(keys.webhookDeliveriesOf(namespace, subscription), { sortBy: 'create', order: 'desc', limit }),
    ]);
    const out: DeliveryLogEntry[] = [];
    for (const entry of pending.entries) {
      try {
        out.push(pendingEntry(parseRecord<OutboxItem>(entry)));
      } catch (err) {
        this.onCorrupt(entry.key, err as Error);
      }
    }
    out.sort((a, b) => (a.enqueued < b.enqueued ? 1 : a.enqueued > b.enqueued ? -1 : 0));
    for (const entry of done.entries) {
      try {
        out.push(parseRecord<DeliveryLogEntry>(entry));
      } catch (err) {
        this.onCorrupt(entry.key, err as Error);
      }
    }
    return out.slice(0, limit);
  }

  /** Keeps the newest `keep` finished deliveries of a subscription. */
  async pruneDeliveries(namespace: string, subscription: string, keep: number): Promise<void> {
    const prefix = keys.webhookDeliveriesOf(namespace, subscription);
    const count = await this.kv.count(prefix);
    if (count <= keep) return;
    const { entries } = await this.kv.list(prefix, { sortBy: 'create', order: 'asc', limit: Math.min(count - keep, MAX_OPS) });
    await this.kv.transact([], entries.map((e) => ({ type: 'delete', key: e.key })));
  }

  /** Items waiting in the whole outbox (metrics). */
  async pendingCount(): Promise<number> {
    return this.kv.count(keys.allWebhookOutbox());
  }
}

export function pendingEntry(item: OutboxItem): DeliveryLogEntry {
  return {
    ...logFields(item), status: 'pending',
    ...(item.nextAttempt ? { nextAttempt: item.nextAttempt } : {}),
  };
}

/** The fields an outbox item and its log entry share. */
export function logFields(item: OutboxItem): Omit<DeliveryLogEntry, 'status'> {
  return {
    eventId: item.event.id, type: item.event.type, deploymentId: item.event.data.deploymentId, app: item.event.data.app,
    sequence: item.event.sequence, attempts: item.attempts, enqueued: item.enqueued,
    ...(item.firstAttempt ? { firstAttempt: item.firstAttempt } : {}),
    ...(item.lastAttempt ? { lastAttempt: item.lastAttempt } : {}),
    ...(item.lastError ? { lastError: item.lastError } : {}),
    ...(item.lastStatus !== undefined ? { lastStatus: item.lastStatus } : {}),
  };
}
