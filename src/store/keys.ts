/**
 * The etcd key layout, relative to CUTOVER_ETCD_PREFIX (default "/deployer/"). Documented in
 * docs/store.md. Every path segment is validated before it gets here (namespaces and app names
 * are DNS labels, ids are UUIDs), so no segment can contain "/".
 */

/** What an import ledger mark stands for. */
export type ImportedKind = 'descriptors' | 'deployments';

/**
 * Key families every cluster shares. All other keys of a cluster other than the default one live
 * under `clusters/<name>/` (src/store/scoped-kv.ts): version numbers are unique across clusters
 * (a release has one version everywhere) and one webhook outbox serves all.
 */
export const SHARED_KEY_FAMILIES: readonly string[] = ['versions/', 'webhook-outbox/', 'webhook-fanout/'];

export const keys = {
  descriptor: (ns: string, id: string) => `descriptors/${ns}/${id}`,
  descriptorsOf: (ns: string) => `descriptors/${ns}/`,

  deployment: (ns: string, id: string) => `deployments/${ns}/${id}`,
  deploymentsOf: (ns: string) => `deployments/${ns}/`,
  allDeployments: () => 'deployments/',

  /** Per-app index of records (value: the record's `created`), so one app is read without its namespace. */
  appRecord: (ns: string, app: string, id: string) => `app-records/${ns}/${app}/${id}`,
  appRecordsOf: (ns: string, app: string) => `app-records/${ns}/${app}/`,

  /** The app's one DEPLOYED record ({deploymentId, version}); changed only together with record statuses. */
  live: (ns: string, app: string) => `live/${ns}/${app}`,

  /** Someone asked to cancel a deployment in progress ({by, at}); deleted with the record. */
  cancelRequest: (ns: string, id: string) => `cancel/${ns}/${id}`,

  /** A release: one version of an app on one or more clusters (shared by all clusters; docs/clusters.md). */
  release: (ns: string, id: string) => `releases/${ns}/${id}`,
  releasesOf: (ns: string) => `releases/${ns}/`,

  /** The cluster whose records use the root layout, written at the first start with a cluster registry. */
  defaultCluster: () => 'meta/default-cluster',

  /** A request to reconcile an app's objects (after a cleanup that could not finish); run by its owner. */
  reconcileRequest: (ns: string, app: string) => `reconcile/${ns}/${app}`,
  allReconcileRequests: () => 'reconcile/',

  /** Version of this key layout; start-up migrates older data. */
  layout: () => 'meta/layout',

  /** One key per log line or event; seq is zero-padded so key order is write order. */
  event: (ns: string, id: string, seq: number) => `events/${ns}/${id}/${String(seq).padStart(12, '0')}`,
  eventsOf: (ns: string, id: string) => `events/${ns}/${id}/`,

  health: (ns: string, id: string, pod: string) => `health/${ns}/${id}/${pod}`,
  healthOf: (ns: string, id: string) => `health/${ns}/${id}/`,

  /** Highest version number ever deployed of an app; "#" versions continue from it. */
  versionCounter: (ns: string, app: string) => `versions/${ns}/${app}`,

  /** Pending work per app, ordered by creation revision (arrival order). */
  queueItem: (ns: string, app: string, workId: string) => `queue/${ns}/${app}/${workId}`,
  queueOf: (ns: string, app: string) => `queue/${ns}/${app}/`,
  allQueues: () => 'queue/',

  /** The replica that currently works on an app; held with that replica's lease. */
  owner: (ns: string, app: string) => `owners/${ns}/${app}`,
  allOwners: () => 'owners/',

  /** Values injected as environment variables into every deployed container (Amdatu-compatible). */
  environment: (name: string) => `environment/${name}`,
  allEnvironment: () => 'environment/',
  /** Values injected only in one cluster's deployments, overriding environment/ (docs/clusters.md). */
  clusterEnvironment: (cluster: string, name: string) => `cluster-environment/${cluster}/${name}`,
  allClusterEnvironment: (cluster: string) => `cluster-environment/${cluster}/`,

  /** API keys (secret AES-256-GCM encrypted, never plain); ids are "ck_" + 16 hex digits. */
  apiKey: (id: string) => `apikeys/${id}`,
  allApiKeys: () => 'apikeys/',

  /** Webhook subscriptions of a namespace (secret AES-256-GCM encrypted like API keys); ids are "wh_" + 16 hex digits. */
  webhook: (ns: string, id: string) => `webhooks/${ns}/${id}`,
  webhooksOf: (ns: string) => `webhooks/${ns}/`,
  allWebhooks: () => 'webhooks/',

  /**
   * Webhook outbox: one item per event and subscription still to be delivered, written in the
   * transaction of the record change it reports. A stream is one subscription's events of one
   * deployment; `order` (the zero-padded sequence number of the change's event in the
   * deployment's log + a sub-position) sorts the stream in the order the events happened.
   */
  webhookOutboxItem: (ns: string, subscription: string, deploymentId: string, order: string) => `webhook-outbox/${ns}/${subscription}/${deploymentId}/${order}`,
  webhookStream: (ns: string, subscription: string, deploymentId: string) => `webhook-outbox/${ns}/${subscription}/${deploymentId}/`,
  webhookOutboxOf: (ns: string, subscription: string) => `webhook-outbox/${ns}/${subscription}/`,
  allWebhookOutbox: () => 'webhook-outbox/',

  /**
   * A deployment event whose outbox items did not fit into its change's transaction (etcd's
   * operation limit): one entry naming the matching subscriptions, written in that transaction
   * instead, and turned into outbox items by a dispatcher. Same `order` as the items.
   */
  webhookFanout: (ns: string, deploymentId: string, order: string) => `webhook-fanout/${ns}/${deploymentId}/${order}`,
  webhookFanoutOf: (ns: string, deploymentId: string) => `webhook-fanout/${ns}/${deploymentId}/`,
  allWebhookFanout: () => 'webhook-fanout/',

  /** The replica delivering one stream; held with that replica's lease, like owners/ for apps. */
  webhookStreamOwner: (ns: string, subscription: string, deploymentId: string) => `webhook-owners/${ns}/${subscription}/${deploymentId}`,
  allWebhookStreamOwners: () => 'webhook-owners/',

  /** Delivery log: the outcome of each finished delivery of a subscription (the newest few hundred are kept). */
  webhookDelivery: (ns: string, subscription: string, eventId: string) => `webhook-deliveries/${ns}/${subscription}/${eventId}`,
  webhookDeliveriesOf: (ns: string, subscription: string) => `webhook-deliveries/${ns}/${subscription}/`,

  /** Signatures already accepted (SHA-256 of key id + signature), by 30-s bucket of their timestamp; swept after the window. */
  seenSignature: (bucket: string, fingerprint: string) => `auth/seen-signatures/${bucket}/${fingerprint}`,
  allSeenSignatures: () => 'auth/seen-signatures/',

  /** Audit trail: one entry per state-changing call; ids sort by time. `_cluster` holds key management. */
  audit: (ns: string, id: string) => `audit/${ns}/${id}`,
  auditOf: (ns: string) => `audit/${ns}/`,

  /**
   * Import ledger: one mark per descriptor or record imported from another deployer's data
   * (`source` e.g. "amdatu"), so a re-run never imports again what was imported once — even after
   * retention or an operator deleted it.
   */
  importMark: (source: string, kind: ImportedKind, ns: string, id: string) => `imports/${source}/${kind}/${ns}/${id}`,
  importMarksOf: (source: string) => `imports/${source}/`,
} as const;

/** Parses the sequence number at the end of an event key. */
export function seqOfEventKey(key: string): number {
  const tail = key.slice(key.lastIndexOf('/') + 1);
  return Number.parseInt(tail, 10);
}
