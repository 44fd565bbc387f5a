import { performance } from 'node:perf_hooks';
import { FenceLostError } from '../domain/errors.js';
import type { WebhookEventKind } from '../domain/webhooks.js';
import { Deadline, sleep } from '../lib/deadline.js';
import type { Logger } from '../log.js';
import type { Guard, KvEntry, KvStore, Lease, WatchHandle } from '../store/kv.js';
import { LeaseUser, SharedLease, type LeaseHold, type LeaseSource } from '../store/shared-lease.js';
import { keys } from '../store/keys.js';
import { listAndWatch } from '../store/list-watch.js';
import {
  logFields, streamOfKey, type DeliveryLogEntry, type OutboxItem, type StoredOutboxItem, type StreamRef, type WebhookStore, type WebhookSubscription,
} from '../store/webhooks.js';
import { SIGNATURE_HEADER, signatureHeaderValue } from './signature.js';

/** One HTTP POST of an event; resolves with the status, rejects when there was no answer. */
export interface WebhookSender {
  send(request: { url: string; headers: Record<string, string>; body: string; signal: AbortSignal }): Promise<{ status: number }>;
}

export interface DeliveryPolicy {
  /** Retries end this long after the first attempt: the delivery is then logged as failed. */
  retryWindowMs: number;
  /** Wait after the first failed attempt; doubled after each further one (with jitter) … */
  firstBackoffMs: number;
  /** … up to this. */
  maxBackoffMs: number;
  /** One attempt's limit: connection, answer and body. */
  attemptTimeoutMs: number;
}

export interface DeliveryMetrics {
  delivered(kind: WebhookEventKind, latencyMs: number, attempts: number): void;
  attemptFailed(kind: WebhookEventKind): void;
  gaveUp(kind: WebhookEventKind): void;
}

export interface WebhookDispatcherOptions {
  kv: KvStore;
  store: WebhookStore;
  sender: WebhookSender;
  /** The subscription's signing secret in plain text (decrypted with the key-encryption key). */
  secretOf: (subscription: WebhookSubscription) => string;
  /** Why the URL may not be called now (the allow-list changed), or undefined when it may. */
  urlRefusal: (url: string) => string | undefined;
  policy: DeliveryPolicy;
  replicaId: string;
  leaseTtlSeconds: number;
  /** The replica's shared lease (else the dispatcher grants and revokes one of its own). */
  leases?: LeaseSource;
  log: Logger;
  metrics?: DeliveryMetrics;
  /** Finished deliveries kept per subscription in the log. */
  keepDeliveries?: number;
  userAgent?: string;
  /** Jitter source in [0, 1); tests pass a constant. */
  random?: () => number;
}

interface StreamRun {
  abort: AbortController;
  done: Promise<void>;
}

/** Stop acting on a stream this long before the lease may have run out (as the scheduler does for apps). */
const FENCE_MARGIN_MS = 1000;
const streamId = (s: StreamRef) => `${s.namespace}/${s.subscription}/${s.deploymentId}`;

/**
 * Delivers the webhook outbox. A stream (one subscription's events of one deployment) is
 * delivered by the replica that holds `webhook-owners/{ns}/{sub}/{deployment}` with its lease,
 * one event at a time in `sequence` order: the next is sent only when the previous one was
 * delivered or given up. Every outbox change is fenced by that owner key; a replica that dies
 * loses the key with its lease, and another replica, watching the owner keys, claims the stream
 * and sends the event again (at least once: receivers dedupe by the CloudEvent id).
 *
 * Event-driven like the scheduler: watches of the outbox (new events) and of the owner keys
 * (released or expired streams), re-listed after a watch failure; timers only for retries that
 * are due. An idle replica does nothing.
 */
export class WebhookDispatcher {
  /** The replica's shared lease, or one of the dispatcher's own (revoked by stop()), held per stream's delivery. */
  private readonly leases: LeaseUser;
  private readonly ownLeases: SharedLease | undefined;
  private readonly runs = new Map<string, StreamRun>();
  private readonly dirty = new Set<string>();
  private readonly watches = new Map<string, WatchHandle>();
  private readonly laterTimers = new Map<string, NodeJS.Timeout>();
  private stopping = false;
  private readonly keep: number;
  private readonly random: () => number;

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.ownLeases = o.leases ? undefined : new SharedLease(o.kv, o.leaseTtlSeconds);
    this.leases = new LeaseUser(o.leases ?? this.ownLeases!, (err) => this.leaseLost(err));
    this.keep = o.keepDeliveries ?? 200;
    this.random = o.random ?? Math.random;
  }

  async start(): Promise<void> {
    await Promise.all([keys.allWebhookOutbox(), keys.allWebhookStreamOwners(), keys.allWebhookFanout()].map((prefix) => this.watch(prefix)));
  }

  /** Stops: watches end, attempts in flight are abandoned (another replica sends them again), the lease is revoked. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.laterTimers.values()) clearTimeout(t);
    this.laterTimers.clear();
    await Promise.all([...this.watches.values()].map((w) => w.close()));
    this.watches.clear();
    const all = [...this.runs.values()];
    for (const run of all) run.abort.abort(new Error('cutover is shutting down'));
    await Promise.allSettled(all.map((r) => r.done));
    // A shared lease is revoked by its owner, once every user stopped.
    await this.ownLeases?.revoke().catch(() => undefined);
  }

  /** Streams this replica is delivering now (tests, diagnostics). */
  activeStreams(): number {
    return this.runs.size;
  }

  private async watch(prefix: string): Promise<void> {
    const owners = prefix === keys.allWebhookStreamOwners();
    const fanout = prefix === keys.allWebhookFanout();
    const handle = await listAndWatch({
      kv: this.o.kv, prefix, what: 'webhook outbox', log: this.o.log,
      onList: (entries) => {
        if (fanout) for (const e of entries) this.expand(e);
        else if (!owners) for (const e of entries) this.scheduleKey(e.key);
      },
      onEvents: (events) => {
        // Outbox: a new event. Owners: a stream released or its replica gone. Fan-out: items to write.
        for (const e of events) {
          if (fanout) {
            if (e.type === 'put') this.expand(e);
          } else if (owners ? e.type === 'delete' : e.type === 'put') {
            this.scheduleKey(e.key);
          }
        }
      },
    });
    this.watches.set(prefix, handle);
  }

  /** Writes a fan-out entry's outbox items (their puts wake the streams); on failure, again a little later. */
  private expand(entry: KvEntry, attempt = 0): void {
    if (this.stopping) return;
    this.o.store.expandFanout(entry).catch((err: unknown) => {
      this.o.log.warn({ err: (err as Error).message, key: entry.key }, 'webhook fan-out entry not expanded yet; retrying');
      setTimeout(() => this.expand(entry, attempt + 1), Math.min(250 * 2 ** attempt, 5000)).unref();
    });
  }

  private scheduleKey(key: string): void {
    const stream = streamOfKey(key);
    if (stream) this.schedule(stream);
  }

  private schedule(stream: StreamRef): void {
    if (this.stopping) return;
    const id = streamId(stream);
    if (this.runs.has(id)) {
      this.dirty.add(id);
      return;
    }
    const abort = new AbortController();
    const run: StreamRun = { abort, done: Promise.resolve() };
    this.runs.set(id, run);
    run.done = this.own(stream, abort.signal).catch((err: unknown) => {
      this.o.log.error({ err, stream: id }, 'webhook stream run failed');
      this.scheduleLater(stream, Date.now() + 2000);
    }).finally(() => {
      if (this.runs.get(id) === run) this.runs.delete(id);
      if (this.dirty.delete(id)) this.schedule(stream);
    });
  }

  private scheduleLater(stream: StreamRef, atMs: number): void {
    const id = streamId(stream);
    clearTimeout(this.laterTimers.get(id));
    this.laterTimers.set(id, setTimeout(() => {
      this.laterTimers.delete(id);
      this.schedule(stream);
    }, Math.max(0, atMs - Date.now())));
  }

  private async own(stream: StreamRef, signal: AbortSignal): Promise<void> {
    let hold: LeaseHold;
    try {
      hold = await this.leases.hold();
    } catch {
      this.scheduleLater(stream, Date.now() + 2000); // etcd unreachable: come back
      return;
    }
    try {
      await this.ownWith(hold.lease, stream, signal);
    } finally {
      hold.release(); // after the stream's release below: nothing of ours lives with the lease now
    }
  }

  private async ownWith(lease: Lease, stream: StreamRef, signal: AbortSignal): Promise<void> {
    const { store } = this.o;
    let claim: string | undefined;
    try {
      // Claim only streams with something to send: a claim/release cycle on an empty one would wake itself.
      if ((await store.streamItems(stream)).length === 0) return;
      claim = await store.claim(stream, lease.id, this.o.replicaId);
    } catch {
      this.scheduleLater(stream, Date.now() + 2000); // etcd unreachable: come back
      return;
    }
    if (claim === undefined) return; // another replica delivers it; its release (or death) wakes us
    const fence: Guard = { key: keys.webhookStreamOwner(stream.namespace, stream.subscription, stream.deploymentId), modRevision: claim };
    try {
      await this.deliverStream(stream, fence, lease, signal);
    } catch (err) {
      if (!(err instanceof FenceLostError) && !signal.aborted) throw err;
    } finally {
      await store.release(stream, claim).catch(() => undefined);
    }
  }

  private async deliverStream(stream: StreamRef, fence: Guard, lease: Lease, signal: AbortSignal): Promise<void> {
    const { store, log } = this.o;
    let subscription: WebhookSubscription | undefined;
    let secret: string | undefined;
    let secretProblem: string | undefined;
    while (!signal.aborted) {
      // Events stored as fan-out entries come before any later item of the deployment: write their items first.
      await store.expandFanouts(stream.namespace, stream.deploymentId);
      const [next] = await store.streamItems(stream);
      if (!next) return;
      subscription ??= await store.get(stream.namespace, stream.subscription);
      if (!subscription) {
        // Removed (its outbox went with it); items a change wrote in the same moment go now.
        await store.dropStream(stream, fence);
        return;
      }
      if (secret === undefined && secretProblem === undefined) {
        try {
          secret = this.o.secretOf(subscription);
        } catch (err) {
          secretProblem = `the signing secret cannot be decrypted: ${(err as Error).message}`;
          log.error({ webhook: subscription.id, namespace: stream.namespace, err: (err as Error).message }, 'webhook secret cannot be decrypted; deliveries fail until the key-encryption key is configured');
        }
      }
      const dueIn = next.item.nextAttempt ? Date.parse(next.item.nextAttempt) - Date.now() : 0;
      if (dueIn > 0) await sleep(dueIn, signal);
      if (performance.now() + FENCE_MARGIN_MS > lease.validUntil()) return; // the lease may be gone: let the next owner send
      await this.attempt(stream, next, subscription, secret, secretProblem, fence, signal);
    }
  }

  /** One attempt at the stream's first event; stores its outcome (delivered, failed, or the next try). */
  private async attempt(stream: StreamRef, stored: StoredOutboxItem, subscription: WebhookSubscription, secret: string | undefined, secretProblem: string | undefined,
    fence: Guard, signal: AbortSignal): Promise<void> {
    const { store, policy, metrics } = this.o;
    const item = stored.item;
    const startedAt = new Date();
    let error: string | undefined;
    let status: number | undefined;
    let permanent = false;
    const refusal = secretProblem ?? this.o.urlRefusal(subscription.url);
    if (refusal) {
      error = refusal;
      permanent = secretProblem === undefined; // a URL no longer allowed will not become allowed by retrying
    } else {
      const { body, contentType } = await structuredMessage(item);
      const attemptDeadline = Deadline.after(policy.attemptTimeoutMs, signal);
      try {
        const res = await this.o.sender.send({
          url: subscription.url,
          body,
          signal: attemptDeadline.signal,
          headers: {
            'content-type': contentType,
            'user-agent': this.o.userAgent ?? 'cutover-webhooks',
            [SIGNATURE_HEADER.toLowerCase()]: signatureHeaderValue(secret!, Math.floor(startedAt.getTime() / 1000), body),
            'x-cutover-webhook-id': subscription.id,
            'x-cutover-delivery-attempt': String(item.attempts + 1),
          },
        });
        status = res.status;
        if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}${res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''}`;
      } catch (err) {
        if (signal.aborted) return; // stopping or the stream was taken away: the item stays for the next owner
        error = attemptDeadline.expired ? `no answer within ${policy.attemptTimeoutMs} ms` : describe(err);
      } finally {
        attemptDeadline.clear();
      }
    }
    const finishedAt = new Date();
    const updated: OutboxItem = {
      ...item, attempts: item.attempts + 1, firstAttempt: item.firstAttempt ?? startedAt.toISOString(), lastAttempt: finishedAt.toISOString(),
      ...(status !== undefined ? { lastStatus: status } : {}),
    };
    delete updated.nextAttempt;
    if (error === undefined) {
      delete updated.lastError;
      const latencyMs = finishedAt.getTime() - Date.parse(item.event.time);
      await this.finish(stream, stored, { ...logFields(updated), status: 'delivered', latencyMs }, fence);
      metrics?.delivered(item.kind, latencyMs, updated.attempts);
      return;
    }
    updated.lastError = error.slice(0, 500);
    metrics?.attemptFailed(item.kind);
    const backoff = Math.min(policy.maxBackoffMs, policy.firstBackoffMs * 2 ** Math.min(item.attempts, 30)) * (0.8 + 0.4 * this.random());
    const nextAt = finishedAt.getTime() + backoff;
    if (permanent || nextAt > Date.parse(updated.firstAttempt!) + policy.retryWindowMs) {
      await this.finish(stream, stored, { ...logFields(updated), status: 'failed' }, fence);
      metrics?.gaveUp(item.kind);
      this.o.log.warn({ webhook: subscription.id, namespace: stream.namespace, eventId: item.event.id, type: item.event.type, attempts: updated.attempts, err: updated.lastError }, 'webhook delivery failed for good');
      return;
    }
    updated.nextAttempt = new Date(nextAt).toISOString();
    await store.recordAttempt(stored, updated, fence);
  }

  private async finish(stream: StreamRef, stored: StoredOutboxItem, entry: DeliveryLogEntry, fence: Guard): Promise<void> {
    await this.o.store.finish(stream, stored, entry, fence);
    await this.o.store.pruneDeliveries(stream.namespace, stream.subscription, this.keep).catch(() => undefined);
  }

  /** Every delivery stops: its stream claim died with the lease; the streams are looked at again with a new one. */
  private leaseLost(err: Error): void {
    this.o.log.error({ err: err.message }, 'lost the etcd lease of webhook deliveries: stopping them');
    const streams = [...this.runs.keys()];
    for (const run of this.runs.values()) run.abort.abort(new Error('lost the etcd lease'));
    for (const id of streams) {
      const [namespace, subscription, deploymentId] = id.split('/') as [string, string, string];
      this.scheduleLater({ namespace, subscription, deploymentId }, Date.now() + 500);
    }
  }
}

/**
 * The event in CloudEvents' structured HTTP mode: every attribute in the body, so the signature
 * covers them all. The SDK is loaded with the first webhook sent (a replica without subscriptions
 * never needs it).
 */
async function structuredMessage(item: OutboxItem): Promise<{ body: string; contentType: string }> {
  const { CloudEvent, HTTP } = await import('cloudevents');
  const message = HTTP.structured(new CloudEvent({ ...item.event }));
  const contentType = message.headers['content-type'];
  return { body: String(message.body), contentType: typeof contentType === 'string' ? contentType : 'application/cloudevents+json; charset=utf-8' };
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  const message = e.cause?.message ?? e.message ?? String(err);
  return code ? `${code}: ${message}` : message;
}
