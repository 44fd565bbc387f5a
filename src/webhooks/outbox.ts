import type { EngineEvent } from '../deployer/events.js';
import type { DeploymentRecord } from '../domain/deployment.js';
import type { WebhookEventKind } from '../domain/webhooks.js';
import type { Logger } from '../log.js';
import { StoreUnavailableError } from '../store/kv.js';
import type { NewOutboxItem, WebhookStore, WebhookSubscription } from '../store/webhooks.js';
import { DeploymentEventMapper, fallbackSwitchRevision, type DeploymentWebhookEvent } from './events.js';

export interface WebhookOutboxOptions {
  store: WebhookStore;
  /** The record and its revision (orders a switch published by a run that resumed mid-switch). */
  readRecord: (namespace: string, id: string) => Promise<{ value: DeploymentRecord; revision: string } | undefined>;
  log: Logger;
  now?: () => Date;
  /** Events put into the outbox (one per matching subscription). */
  onEnqueued?: (kind: WebhookEventKind, subscriptions: number) => void;
  /** An event that could not be put into the outbox (it is logged; the deployment goes on). */
  onEnqueueFailed?: (kind: WebhookEventKind) => void;
  /** Events waiting for the store at most; beyond, new ones are dropped and counted as failed. */
  maxBacklog?: number;
}

/** Whether a subscription wants an event of `app` and `kind`. */
export function subscriptionMatches(s: WebhookSubscription, app: string, kind: WebhookEventKind): boolean {
  return (!s.apps || s.apps.length === 0 || s.apps.includes(app)) && (!s.events || s.events.length === 0 || s.events.includes(kind));
}

/**
 * Puts deployment events into the etcd outbox, off the deployment's path: `observe` (a bus
 * listener) only queues the event in memory and returns; a single chain writes them in the order
 * they were published, each after reading the namespace's subscriptions. A write that fails (etcd
 * away for longer than a few retries) is logged and counted, never raised to the engine.
 */
export class WebhookOutbox {
  private readonly mapper = new DeploymentEventMapper();
  private chain: Promise<void> = Promise.resolve();
  private backlog = 0;
  private readonly maxBacklog: number;

  constructor(private readonly o: WebhookOutboxOptions) {
    this.maxBacklog = o.maxBacklog ?? 10_000;
  }

  observe(event: EngineEvent): void {
    const mapped = this.mapper.map(event);
    if (!mapped) return;
    const kind: WebhookEventKind = 'kind' in mapped ? mapped.kind : 'switched';
    if (this.backlog >= this.maxBacklog) {
      this.o.onEnqueueFailed?.(kind);
      this.o.log.error({ kind, backlog: this.backlog }, 'webhook event dropped: too many events waiting for etcd');
      return;
    }
    this.backlog++;
    this.chain = this.chain.then(async () => {
      try {
        const resolved = 'kind' in mapped ? mapped : await this.orderSwitch(mapped.needsRevision);
        if (resolved) await this.enqueue(resolved);
      } catch (err) {
        this.o.onEnqueueFailed?.(kind);
        this.o.log.error({ err: (err as Error).message, kind, deploymentId: 'kind' in mapped ? mapped.event.data.deploymentId : mapped.needsRevision.deploymentId }, 'webhook event could not be put into the outbox; it is not delivered');
      } finally {
        this.backlog--;
      }
    });
  }

  /** Resolves once every event observed so far is stored (or given up). */
  flush(): Promise<void> {
    return this.chain;
  }

  private async orderSwitch(event: Extract<EngineEvent, { type: 'switch' }>): Promise<DeploymentWebhookEvent | undefined> {
    const found = await this.retrying(() => this.o.readRecord(event.namespace, event.deploymentId));
    if (!found) return undefined;
    return this.mapper.switched(event, fallbackSwitchRevision(found.value, found.revision), found.value);
  }

  private async enqueue(mapped: DeploymentWebhookEvent): Promise<void> {
    const { namespace, app } = mapped.event.data;
    const subscriptions = (await this.retrying(() => this.o.store.list(namespace))).filter((s) => subscriptionMatches(s, app, mapped.kind));
    if (subscriptions.length === 0) return;
    const enqueued = (this.o.now?.() ?? new Date()).toISOString();
    const items: NewOutboxItem[] = subscriptions.map((s) => ({ namespace, subscription: s.id, item: { event: mapped.event, kind: mapped.kind, enqueued, attempts: 0 } }));
    await this.retrying(() => this.o.store.enqueue(items));
    this.o.onEnqueued?.(mapped.kind, items.length);
  }

  /** A few tries while etcd is unreachable (about 7 s), then the error. */
  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    let delay = 250;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError) || attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
  }
}
