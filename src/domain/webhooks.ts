/**
 * Webhook vocabulary shared by the store, the delivery, the API and the CLI (docs/webhooks.md).
 * A subscription names a URL in a namespace and, optionally, the apps and kinds of events it wants.
 */

/** What happened to a deployment; the CloudEvents type is `io.cutover.deployment.<kind>`. */
export type WebhookEventKind = 'requested' | 'started' | 'step' | 'switched' | 'succeeded' | 'failed' | 'undeployed';

export const WEBHOOK_EVENT_KINDS: readonly WebhookEventKind[] = ['requested', 'started', 'step', 'switched', 'succeeded', 'failed', 'undeployed'];

export const CLOUDEVENT_TYPE_PREFIX = 'io.cutover.deployment.';

/** Subscription ids: "wh_" and 16 hex digits. */
export const WEBHOOK_ID_PATTERN = /^wh_[0-9a-f]{16}$/;

/** What a deployment event says, the `data` of its CloudEvent. */
export interface WebhookEventData {
  namespace: string;
  app: string;
  deploymentId: string;
  version: string;
  status: string;
  step: string;
  previousStatus?: string;
  previousStep?: string;
  /** The version this deployment replaces ("" when none). */
  oldVersion: string;
  /** With a cluster registry: the cluster, and the release the deployment belongs to. */
  cluster?: string;
  release?: string;
  /** failed: why. */
  reason?: string;
  /** switched: traffic moved from this version to `version`. */
  fromVersion?: string;
  /** Final events: milliseconds from the request to this event. */
  durationMs?: number;
}

/** A CloudEvent 1.0 in structured mode (exactly the JSON body a receiver gets). */
export interface StoredCloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  /** CloudEvents "sequence" extension: sorts a deployment's events in the order they happened. */
  sequence: string;
  data: WebhookEventData;
}

/** A namespace's subscription to deployment events, as the API shows it (never its secret). */
export interface WebhookInfo {
  id: string;
  namespace: string;
  url: string;
  /** Only events of these apps; unset: every app of the namespace. */
  apps?: string[];
  /** Only these kinds of events; unset: all. */
  events?: WebhookEventKind[];
  description?: string;
  created: string;
  createdBy: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One line of a subscription's delivery log, as GET /webhooks/{id}/deliveries shows it. */
export interface DeliveryLogEntry {
  eventId: string;
  type: string;
  deploymentId: string;
  app: string;
  sequence: string;
  status: DeliveryStatus;
  attempts: number;
  enqueued: string;
  firstAttempt?: string;
  lastAttempt?: string;
  nextAttempt?: string;
  lastError?: string;
  lastStatus?: number;
  /** Delivered: milliseconds from the event to the receiver's answer. */
  latencyMs?: number;
}
