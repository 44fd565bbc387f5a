import { createHash } from 'node:crypto';
import type { DeploymentEvent, DeploymentRecord, DeploymentStatus, DeploymentStep } from '../domain/deployment.js';
import { CLOUDEVENT_TYPE_PREFIX, type StoredCloudEvent, type WebhookEventData, type WebhookEventKind } from '../domain/webhooks.js';
import type { StoredChange } from '../store/deployments.js';

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
 * Ordering key of an event: the sequence number, in the deployment's own log, of the event its
 * change wrote (the status event; for a switch without one, the change's last line), zero-padded,
 * then a position within that change. The store hands out these numbers one after another in
 * the order the changes are committed — a number is taken only if it is free, in the same
 * transaction as the change — so they sort a deployment's events in the order they happened,
 * whichever replica wrote them, and they are known before the transaction is sent.
 */
export function sequenceOf(seq: number, position: number): string {
  return `${String(seq).padStart(20, '0')}-${position}`;
}

/** The CloudEvent id: derived from the deployment and the sequence, so the same event always has the same id. */
export function eventIdOf(deploymentId: string, sequence: string): string {
  const h = createHash('sha256').update(`cutover-webhook-event\0${deploymentId}\0${sequence}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const FINAL_KINDS: ReadonlySet<WebhookEventKind> = new Set(['succeeded', 'failed', 'undeployed']);

/**
 * The webhook events a stored record change means — a pure function of the change, so it can be
 * computed before the change's transaction and written in it:
 * - a new record: `requested` (create(); records adopted or imported are not reported);
 * - a change of status or step: `started`, `step` or an outcome (kindOfTransition);
 * - `times.switched` set for the first time: `switched` (before an outcome stored with it).
 * Changes that only add log lines, or re-set the same state, mean nothing; so a run that resumes
 * a deployment never reports a step again.
 */
export function webhookEventsOf(change: StoredChange): DeploymentWebhookEvent[] {
  const { record, previous, events } = change;
  const status = [...events].reverse().find((e): e is Extract<DeploymentEvent, { type: 'status' }> => e.type === 'status');
  const out: DeploymentWebhookEvent[] = [];
  if (change.created) {
    if (status) out.push(build('requested', record, status.seq, 0, status.time));
    return out;
  }
  if (!previous) return out; // a change that does not say what it changed cannot be described
  const switched = !previous.times.switched && !!record.times.switched;
  const transition = record.status !== previous.status || record.step !== previous.step;
  const anchor = status ?? events.at(-1);
  if (!anchor) return out; // nothing written to order it by (the engine always writes a line or a status)
  let position = 0;
  if (switched) {
    const data: WebhookEventData = {
      ...common(record), status: previous.status, step: previous.step, fromVersion: record.OldVersion,
    };
    out.push(cloudEvent('switched', data, anchor.seq, position++, anchor.time));
  }
  if (transition && status) {
    out.push(build(kindOfTransition(record, previous.status, previous.step), record, status.seq, position, status.time, previous));
  }
  return out;
}

function common(r: DeploymentRecord): WebhookEventData {
  return {
    namespace: r.namespace, app: r.appName, deploymentId: r.id, version: r.version, status: r.status, step: r.step, oldVersion: r.OldVersion,
    ...(r.cluster ? { cluster: r.cluster } : {}), ...(r.release ? { release: r.release } : {}),
  };
}

function build(kind: WebhookEventKind, r: DeploymentRecord, seq: number, position: number, time: string, previous?: DeploymentRecord): DeploymentWebhookEvent {
  const data: WebhookEventData = {
    ...common(r),
    ...(previous ? { previousStatus: previous.status, previousStep: previous.step } : {}),
    ...(kind === 'failed' ? { reason: r.failureReason ?? 'unknown' } : {}),
    ...(FINAL_KINDS.has(kind) ? { durationMs: Math.max(0, Date.parse(time) - Date.parse(r.created)) } : {}),
  };
  return cloudEvent(kind, data, seq, position, time);
}

function cloudEvent(kind: WebhookEventKind, data: WebhookEventData, seq: number, position: number, time: string): DeploymentWebhookEvent {
  const sequence = sequenceOf(seq, position);
  return {
    kind,
    event: {
      specversion: '1.0',
      id: eventIdOf(data.deploymentId, sequence),
      source: `/cutover/namespaces/${data.namespace}/apps/${data.app}`,
      type: `${CLOUDEVENT_TYPE_PREFIX}${kind}`,
      subject: data.deploymentId,
      time,
      datacontenttype: 'application/json',
      sequence,
      data,
    },
  };
}
