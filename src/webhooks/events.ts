import { randomUUID } from 'node:crypto';
import type { EngineEvent } from '../deployer/events.js';
import type { DeploymentRecord, DeploymentStatus, DeploymentStep } from '../domain/deployment.js';
import { CLOUDEVENT_TYPE_PREFIX, type StoredCloudEvent, type WebhookEventData, type WebhookEventKind } from '../domain/webhooks.js';

/** A deployment event as the webhooks see it: its kind and the CloudEvent delivered for it. */
export interface DeploymentWebhookEvent {
  kind: WebhookEventKind;
  event: StoredCloudEvent;
}

/**
 * The kind of event a stored status change means. `started` is leaving the queue; every other
 * change of step before an outcome (deploying steps, rolling back, draining, removing) is a `step`.
 */
export function kindOfTransition(record: DeploymentRecord, previousStatus: DeploymentStatus, previousStep: DeploymentStep): WebhookEventKind {
  if (record.status === 'DEPLOYED' && previousStatus === 'DEPLOYING') return 'succeeded';
  if (record.status === 'FAILURE') return 'failed';
  if (record.status === 'UNDEPLOYED') return 'undeployed';
  if (record.status === 'DEPLOYING' && previousStatus === 'DEPLOYING' && previousStep === 'queued') return 'started';
  return 'step';
}

/**
 * Ordering key of an event: the etcd revision of the write that stored it (revisions grow across
 * all replicas, so a deployment's events sort in the order they happened even when its ownership
 * moved), zero-padded, then a position: 0 for the write's own event, 1 for a switch that happened
 * after it (and before the next write).
 */
export function sequenceOf(revision: string, position: 0 | 1): string {
  return `${revision.padStart(20, '0')}-${position}`;
}

/**
 * For a switch whose run published no transition here: the revision to sort it after, from the
 * record read now — its own revision while it is still deploying; once the outcome was stored,
 * just before it (the outcome is normally the record's latest write by then).
 */
export function fallbackSwitchRevision(record: DeploymentRecord, revision: string): string {
  return record.status === 'DEPLOYING' ? revision : String(BigInt(revision) - 1n);
}

const FINAL_KINDS: ReadonlySet<WebhookEventKind> = new Set(['succeeded', 'failed', 'undeployed']);

/**
 * Turns the engine's events into webhook events. `requested` and transitions carry the revision
 * of their write. A `switch` has no write of its own on the bus: it sorts right after the last
 * transition this replica saw for the deployment (the same run published both, `switching-traffic`
 * before it and `deployed` after it); a run resumed mid-switch on another replica has not seen one,
 * and the caller orders it by the record as read then (`fallbackSwitchRevision`).
 */
export class DeploymentEventMapper {
  /** Last transition revision per deployment id; bounded, entries go with final events. */
  private readonly lastRevision = new Map<string, string>();

  constructor(private readonly newId: () => string = randomUUID) {}

  /** The webhook event for an engine event, or undefined when it is not one webhooks report; `needsRevision` for a switch without a known one. */
  map(event: EngineEvent): DeploymentWebhookEvent | { needsRevision: Extract<EngineEvent, { type: 'switch' }> } | undefined {
    switch (event.type) {
      case 'requested':
        return this.build('requested', event.record, sequenceOf(event.revision, 0), event.at);
      case 'transition': {
        if (event.revision === undefined) return undefined;
        const kind = kindOfTransition(event.record, event.previousStatus, event.previousStep);
        this.remember(event.record.id, event.revision);
        const built = this.build(kind, event.record, sequenceOf(event.revision, 0), event.at, { previousStatus: event.previousStatus, previousStep: event.previousStep });
        if (FINAL_KINDS.has(kind)) this.lastRevision.delete(event.record.id);
        return built;
      }
      case 'switch': {
        const revision = this.lastRevision.get(event.deploymentId);
        if (revision === undefined) return { needsRevision: event };
        return this.switched(event, revision);
      }
      default:
        return undefined;
    }
  }

  /** A switch, ordered after the write at `revision`, for a record as it is. */
  switched(event: Extract<EngineEvent, { type: 'switch' }>, revision: string, record?: DeploymentRecord): DeploymentWebhookEvent {
    const data: WebhookEventData = {
      namespace: event.namespace, app: event.appName, deploymentId: event.deploymentId, version: event.toVersion,
      status: record?.status ?? 'DEPLOYING', step: record?.step ?? 'switching-traffic', oldVersion: event.fromVersion, fromVersion: event.fromVersion,
    };
    return { kind: 'switched', event: this.cloudEvent('switched', data, sequenceOf(revision, 1), event.at) };
  }

  private remember(id: string, revision: string): void {
    if (this.lastRevision.size >= 10_000 && !this.lastRevision.has(id)) {
      const oldest = this.lastRevision.keys().next().value;
      if (oldest !== undefined) this.lastRevision.delete(oldest);
    }
    this.lastRevision.set(id, revision);
  }

  private build(kind: WebhookEventKind, r: DeploymentRecord, sequence: string, at: Date, previous: { previousStatus?: DeploymentStatus; previousStep?: DeploymentStep } = {}): DeploymentWebhookEvent {
    const data: WebhookEventData = {
      namespace: r.namespace, app: r.appName, deploymentId: r.id, version: r.version, status: r.status, step: r.step,
      ...(previous.previousStatus ? { previousStatus: previous.previousStatus } : {}),
      ...(previous.previousStep ? { previousStep: previous.previousStep } : {}),
      oldVersion: r.OldVersion,
      ...(kind === 'failed' ? { reason: r.failureReason ?? 'unknown' } : {}),
      ...(FINAL_KINDS.has(kind) ? { durationMs: Math.max(0, at.getTime() - Date.parse(r.created)) } : {}),
    };
    return { kind, event: this.cloudEvent(kind, data, sequence, at) };
  }

  private cloudEvent(kind: WebhookEventKind, data: WebhookEventData, sequence: string, at: Date): StoredCloudEvent {
    return {
      specversion: '1.0',
      id: this.newId(),
      source: `/cutover/namespaces/${data.namespace}/apps/${data.app}`,
      type: `${CLOUDEVENT_TYPE_PREFIX}${kind}`,
      subject: data.deploymentId,
      time: at.toISOString(),
      datacontenttype: 'application/json',
      sequence,
      data,
    };
  }
}
