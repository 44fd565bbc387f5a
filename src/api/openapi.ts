import Joi from 'joi';
import joiToJson from 'joi-to-json';
import { descriptorSchema, namespaceSchema } from '../domain/descriptor-schema.js';
import { CLUSTER_NAME } from '../domain/names.js';
import { environmentValueSchema } from './validation/environment.js';

/**
 * The OpenAPI 3.1 document of the REST API. Request bodies come from the same joi schemas the
 * handlers validate with (converted by joi-to-json), so the document cannot promise a shape the
 * API refuses. A test fails when a registered route is missing here, and sends every request
 * example through the real API.
 */

// A CommonJS module whose typings declare an ES default export; at run time the default is the function.
const parseJoi = joiToJson as unknown as (schema: Joi.Schema, mode: 'open-api-3.1') => Record<string, unknown>;

export interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path template, e.g. /deployments/{id}. */
  path: string;
  summary: string;
  tag: string;
  query?: Joi.ObjectSchema;
  body?: Joi.Schema;
  /** Example request body (sent through the real API by a test). */
  example?: unknown;
  responses: Record<string, { description: string; schema?: Joi.Schema | Record<string, unknown>; contentType?: string }>;
  /** Open without credentials. */
  open?: boolean;
}

const ns = Joi.object({ namespace: namespaceSchema.description('Kubernetes namespace.') });
const nsApp = ns.keys({ appname: Joi.string().max(63).description('Filter by app name (normalised like appName).') });
const errorSchema = Joi.object({
  error: Joi.string().required().description('Short machine-readable code, e.g. validation_failed.'),
  message: Joi.string().required(),
  details: Joi.array().items(Joi.object({ path: Joi.string(), message: Joi.string() }).unknown(true)),
  requestId: Joi.string().description('On 5xx answers.'),
});

const clusterName = Joi.string().pattern(CLUSTER_NAME);

const releaseSchema = Joi.object({
  id: Joi.string().guid().required(),
  namespace: Joi.string().required(),
  appName: Joi.string().required(),
  version: Joi.string().required(),
  environment: Joi.string(),
  status: Joi.string().valid('DEPLOYING', 'DEPLOYED', 'UNDEPLOYING', 'UNDEPLOYED', 'FAILURE').required().description('DEPLOYING while any cluster is; FAILURE if any failed; DEPLOYED only when every cluster is.'),
  members: Joi.array().items(Joi.object({ cluster: Joi.string(), deploymentId: Joi.string() })),
  deployments: Joi.array().items(Joi.object({ cluster: Joi.string(), deploymentId: Joi.string(), status: Joi.string(), step: Joi.string(), failureReason: Joi.string(), missing: Joi.boolean() })),
  created: Joi.string().isoDate(),
  by: Joi.string(),
  descriptorId: Joi.string(),
  promotedFrom: Joi.object({ release: Joi.string(), environment: Joi.string() }),
});

const storedDescriptor = descriptorSchema.keys({
  id: Joi.string().guid().required(),
  created: Joi.string().isoDate().required(),
  lastModified: Joi.string().isoDate().required(),
});

export const deploymentRecordSchema = Joi.object({
  id: Joi.string().guid().required(),
  created: Joi.string().isoDate().required(),
  lastModified: Joi.string().isoDate().required(),
  namespace: Joi.string().required(),
  appName: Joi.string().required(),
  version: Joi.string().required().description('The version this deployment brings up ("#" resolved at request time).'),
  status: Joi.string().valid('DEPLOYING', 'DEPLOYED', 'UNDEPLOYING', 'UNDEPLOYED', 'FAILURE').required(),
  step: Joi.string().valid('queued', 'preparing', 'creating-resources', 'waiting-for-pods', 'health-checking', 'gating', 'switching-traffic', 'deployed', 'rolling-back', 'failed', 'draining', 'removing', 'undeployed').required(),
  descriptor: Joi.object().unknown(true).description('The copy of the descriptor this deployment uses.'),
  OldVersion: Joi.string().allow('').description('The version this deployment replaced (the original deployer\'s field name).'),
  failureReason: Joi.string(),
  injectedEnvironment: Joi.array().items(Joi.string()).description('Names of injected environment values (never values).'),
  times: Joi.object().pattern(Joi.string(), Joi.string().isoDate()).description('queued, started, resourcesCreated, podsReady, healthy, gated, switched, converged, finished, drainStarted, checked, rolledBack, restored, removed.'),
  deadline: Joi.string().isoDate(),
  cluster: Joi.string().description('The cluster it runs in (docs/clusters.md).'),
  release: Joi.string().guid().description('The release it belongs to.'),
  promotedFrom: Joi.object({ release: Joi.string(), environment: Joi.string() }),
  restores: Joi.string().guid().description('The live deployment whose version it re-created on a cluster that had lost it (sync).'),
  images: Joi.array().items(Joi.object({ container: Joi.string(), image: Joi.string(), digest: Joi.string() })).description('Images as deployed, with the digest the pods ran.'),
  importedFrom: Joi.string().valid('amdatu'),
  originalStatus: Joi.string(),
  owner: Joi.string().description('The cutover replica that last worked on it.'),
  replacedBy: Joi.string(), replaces: Joi.string(), redeployOf: Joi.string(),
  rolledBack: Joi.object({
    to: Joi.string().required(), toVersion: Joi.string().required(), by: Joi.string().required(), automatic: Joi.boolean().required(),
    reason: Joi.string().required(), requested: Joi.string().isoDate().required(), switchMs: Joi.number().integer(),
  }).description('Traffic went back from this deployment to the one it replaced, while that one drained (instant rollback; automatic after a failed post-switch check).'),
  restoredFrom: Joi.string().description('The deployment whose instant rollback made this one live again.'),
});

const rollbackAnswerSchema = Joi.object({
  status: Joi.string().valid('rolling-back', 'redeploying').required(),
  mode: Joi.string().valid('instant', 'redeploy').required(),
  message: Joi.string().required(),
  rollbackTo: Joi.object({ deploymentId: Joi.string().required(), version: Joi.string().required() }).required(),
  deployment: deploymentRecordSchema.description('The record to follow: for "instant" the replaced deployment (it becomes DEPLOYED again), for "redeploy" the new deployment.'),
});

const eventSchema = Joi.object({
  seq: Joi.number().integer().required(), time: Joi.string().isoDate().required(), type: Joi.string().valid('log', 'status').required(),
  message: Joi.string(), status: Joi.string(), step: Joi.string(),
});
const healthSchema = Joi.object({
  podName: Joi.string().required(), healthy: Joi.boolean().required(), statusCode: Joi.number().integer(),
  body: Joi.string().description('Excerpt of the answer.'), reason: Joi.string(), latencyMs: Joi.number(), checkedAt: Joi.string().isoDate(),
  value: Joi.string().description('The original deployer\'s field: the body or the reason.'),
});

export const exampleDescriptor = {
  namespace: 'shop',
  appName: 'web',
  newVersion: '#',
  replicas: 2,
  frontend: 'shop.example.com',
  useHealthCheck: true,
  healthCheckType: 'probe',
  healthCheckPath: 'health',
  healthCheckPort: 8080,
  podspec: { containers: [{ name: 'web', image: 'registry.example.com/shop/web:1.4.2', ports: [{ containerPort: 8080, name: 'http' }] }] },
};

const id = Joi.object({ id: Joi.string().guid().required() });
const common = {
  '400': { description: 'Bad request (the body lists every problem with its field path).', schema: errorSchema },
  '401': { description: 'No valid credentials (authentication on).', schema: errorSchema },
  '403': { description: 'The caller may not use this namespace.', schema: errorSchema },
  '503': { description: 'etcd unavailable; retry (Retry-After).', schema: errorSchema },
};

export const operations: Operation[] = [
  { method: 'get', path: '/healthz', tag: 'operations', summary: 'Liveness: the process runs.', open: true, responses: { '200': { description: 'Alive.' } } },
  { method: 'get', path: '/readyz', tag: 'operations', summary: 'Readiness: etcd and Kubernetes answer and the replica is not shutting down.', open: true, responses: { '200': { description: 'Ready.' }, '503': { description: 'Not ready; the body names the failing checks.' } } },
  { method: 'get', path: '/metrics', tag: 'operations', summary: 'Prometheus metrics (docs/metrics.md).', open: true, responses: { '200': { description: 'Text format 0.0.4.', contentType: 'text/plain' } } },
  { method: 'get', path: '/openapi.json', tag: 'operations', summary: 'This document.', open: true, responses: { '200': { description: 'OpenAPI 3.1.' } } },
  { method: 'get', path: '/docs', tag: 'operations', summary: 'API documentation page (served locally).', open: true, responses: { '200': { description: 'HTML.', contentType: 'text/html' } } },

  { method: 'post', path: '/descriptors', tag: 'descriptors', summary: 'Create a descriptor.', query: ns, body: descriptorSchema, example: exampleDescriptor,
    responses: { '201': { description: 'Created; Location and ETag headers.', schema: storedDescriptor }, ...common, '413': { description: 'Body over 1 MiB.' }, '415': { description: 'Not JSON.' } } },
  { method: 'get', path: '/descriptors', tag: 'descriptors', summary: 'List descriptors, newest lastModified first.', query: nsApp,
    responses: { '200': { description: 'Descriptors (an empty array when none).', schema: Joi.array().items(storedDescriptor) }, ...common } },
  { method: 'delete', path: '/descriptors', tag: 'descriptors', summary: 'Delete an app\'s descriptors, keeping the newest unless keepLatest=false.', query: ns.keys({ appname: Joi.string().required(), keepLatest: Joi.boolean().default(true) }),
    responses: { '204': { description: 'Deleted (all or nothing).' }, '404': { description: 'The app has no descriptors.' }, ...common } },
  { method: 'post', path: '/descriptors/validate', tag: 'descriptors', summary: 'Validate and normalise a descriptor without storing it.', body: descriptorSchema, example: exampleDescriptor,
    responses: { '200': { description: '{"valid": true, "descriptor": …normalised}' }, '400': { description: '{"valid": false, "details": [...]}' } } },
  { method: 'get', path: '/descriptors/{id}', tag: 'descriptors', summary: 'One descriptor (with ETag).', query: ns,
    responses: { '200': { description: 'The descriptor.', schema: storedDescriptor }, '404': { description: 'Not found.' }, ...common } },
  { method: 'put', path: '/descriptors/{id}', tag: 'descriptors', summary: 'Replace a descriptor (validated as on create; appName cannot change). If-Match with the ETag guards against lost updates.', query: ns, body: descriptorSchema, example: { ...exampleDescriptor, replicas: 3 },
    responses: { '204': { description: 'Updated; new ETag.' }, '404': { description: 'Not found.' }, '409': { description: 'Changed concurrently.' }, '412': { description: 'If-Match is stale.' }, ...common } },
  { method: 'delete', path: '/descriptors/{id}', tag: 'descriptors', summary: 'Delete a descriptor (nothing is undeployed).', query: ns,
    responses: { '204': { description: 'Deleted.' }, '404': { description: 'Not found.' }, '412': { description: 'If-Match is stale.' }, ...common } },

  { method: 'post', path: '/deployments', tag: 'deployments', summary: 'Deploy a stored descriptor (runs in the background): to the default cluster, or the cluster or every cluster of the environment the request (or else the descriptor\'s cluster/targetEnvironment) names (docs/clusters.md).',
    query: ns.keys({ descriptorId: Joi.string().guid().required(), cluster: clusterName.description('Deploy to this cluster.'), environment: clusterName.description('Deploy to every cluster of this environment, as one release.') }),
    responses: { '202': { description: 'Started. One cluster: the record (Location of the record). An environment: the release with its records (Location of the release).', schema: deploymentRecordSchema }, '404': { description: 'Unknown descriptor.' }, ...common, '400': { description: 'Bad request, or an unknown cluster or environment.', schema: errorSchema } } },
  { method: 'get', path: '/deployments', tag: 'deployments', summary: 'List deployments of every cluster (or one), newest first; limit applies per app.', query: nsApp.keys({ limit: Joi.number().integer().min(1).max(10000), cluster: clusterName }),
    responses: { '200': { description: 'Records (an empty array when none).', schema: Joi.array().items(deploymentRecordSchema) }, ...common } },
  { method: 'delete', path: '/deployments', tag: 'deployments', summary: 'Delete an app\'s finished records; with undeploy=true also undeploy (and then delete) the live one.', query: ns.keys({ appname: Joi.string().required(), undeploy: Joi.boolean().default(false) }),
    responses: { '202': { description: 'The live deployment is being undeployed (Location).' }, '204': { description: 'Deleted.' }, '404': { description: 'No deployments of the app.' }, ...common } },
  { method: 'get', path: '/deployments/{id}', tag: 'deployments', summary: 'One deployment record.', query: ns,
    responses: { '200': { description: 'The record.', schema: deploymentRecordSchema }, '404': { description: 'Not found.' }, ...common } },
  { method: 'put', path: '/deployments/{id}', tag: 'deployments', summary: 'Redeploy this record\'s descriptor copy as a new deployment (the original rollback; see POST /deployments/{id}/rollback for the instant one).', query: ns,
    responses: { '202': { description: 'Started; Location of the new record.', schema: deploymentRecordSchema }, '404': { description: 'Not found.' }, ...common } },
  { method: 'delete', path: '/deployments/{id}', tag: 'deployments', summary: 'Undeploy (queued) and/or delete the record. A deployment still before its switch is cancelled first (it never goes live).', query: ns.keys({ deleteDeployment: Joi.boolean().default(false) }),
    responses: { '202': { description: '{"status": "queued"|"deleted"|"nothing", "message", "deployment"}' }, '404': { description: 'Not found.' }, '409': { description: 'Still being worked on.' }, ...common } },
  { method: 'post', path: '/deployments/{id}/cancel', tag: 'deployments', summary: 'Cancel a deployment in progress: it stops before its switch, removes what it created and ends FAILURE "cancelled by <caller>"; the running version is not touched.', query: ns,
    responses: { '202': { description: '{"status": "cancelling", "message", "deployment"}; Location of the record.' }, '404': { description: 'Not found.' }, '409': { description: 'Not in progress, or its traffic is already being switched (too late: undeploy or roll back).' }, ...common } },
  { method: 'post', path: '/deployments/{id}/rollback', tag: 'deployments', summary: 'Roll the live (DEPLOYED) deployment back to the one it replaced. While that one is still draining: instant — traffic switches back to its running pods (one write per traffic target, no new pods) and it becomes DEPLOYED again; this one is removed. After the drain: its descriptor copy is redeployed as a new deployment (like PUT on that record).', query: ns,
    responses: { '202': { description: 'Queued; Location of the record to follow (the restored one, or the new one).', schema: rollbackAnswerSchema }, '404': { description: 'Not found.' }, '409': { description: 'Not the live deployment, being rolled back already, or it replaced nothing.' }, ...common } },
  { method: 'get', path: '/deployments/{id}/logs', tag: 'deployments', summary: 'The log: "<RFC3339 time> <message>" per line.', query: ns,
    responses: { '200': { description: 'Text.', contentType: 'text/plain' }, '404': { description: 'Not found.' }, ...common } },
  { method: 'get', path: '/deployments/{id}/events', tag: 'deployments', summary: 'Log lines and status changes as JSON, optionally after a sequence number.', query: ns.keys({ after: Joi.number().integer().min(0) }),
    responses: { '200': { description: 'Events in order.', schema: Joi.array().items(eventSchema) }, '404': { description: 'Not found.' }, ...common } },
  { method: 'get', path: '/deployments/{id}/healthcheckdata', tag: 'deployments', summary: 'Latest health-check answer per pod.', query: ns,
    responses: { '200': { description: 'One entry per pod.', schema: Joi.array().items(healthSchema) }, '404': { description: 'Not found.' }, ...common } },
  { method: 'get', path: '/stream/deployments/{id}/logs', tag: 'deployments', summary: 'Websocket: the log live, closed with the final status (docs/websocket.md).', query: ns.keys({ format: Joi.string().valid('text', 'json'), from: Joi.number().integer().min(0) }),
    responses: { '101': { description: 'Switching to the websocket protocol.' }, '404': { description: 'Not found.' }, ...common } },

  { method: 'get', path: '/releases', tag: 'clusters', summary: 'Releases of a namespace, newest first: one version of an app on one or more clusters, with the status of each cluster\'s deployment and the aggregate.',
    query: nsApp.keys({ environment: clusterName, limit: Joi.number().integer().min(1).max(10000) }),
    responses: { '200': { description: 'Releases.', schema: Joi.array().items(releaseSchema) }, ...common } },
  { method: 'get', path: '/releases/{id}', tag: 'clusters', summary: 'One release: its deployments per cluster and the aggregate status (DEPLOYED only when every cluster is).', query: ns,
    responses: { '200': { description: 'The release.', schema: releaseSchema }, '404': { description: 'Not found.' }, ...common } },
  { method: 'post', path: '/releases/{id}/promote', tag: 'clusters', summary: 'Deploy what a DEPLOYED release runs (same descriptor copy, same version, images pinned to the digests its pods ran) to every cluster of another environment that does not run it yet.',
    // No example: a promotion needs a DEPLOYED release and a second environment (test/integration/clusters.test.ts sends real ones).
    query: ns, body: Joi.object({ environment: clusterName.required().description('The environment to deploy to, e.g. "production".') }),
    responses: { '202': { description: 'The new release (Location).', schema: releaseSchema }, '404': { description: 'Not found.' }, '409': { description: 'Not DEPLOYED on every cluster of its environment, or nothing to promote.' }, ...common, '400': { description: 'Bad request, or an unknown environment.', schema: errorSchema } } },
  { method: 'get', path: '/clusters', tag: 'clusters', summary: 'The clusters cutover deploys to: environment, default, reachability and version (each asked with a 3-s limit).',
    responses: { '200': { description: '[{name, environment, default, healthCheckMode, routing, ingressClassName?, gateway?, reachable, version?, error?, latencyMs}]' }, ...common } },
  { method: 'post', path: '/clusters/{name}/sync', tag: 'clusters', summary: 'Rebuild a cluster from the records: queue a same-version rebuild of every live app (of a namespace, or of all namespaces: administrators) whose workload or stable Service is missing there; idempotent; dryRun lists.',
    query: Joi.object({ namespace: namespaceSchema, dryRun: Joi.boolean().default(false) }),
    responses: { '200': { description: 'Dry run, or nothing to rebuild: {cluster, dryRun, namespaces, items: [{namespace, appName, version, deploymentId, action, missing?, reason?}]}' }, '202': { description: 'Rebuilds queued (items[].rebuildId).' }, ...common, '400': { description: 'Bad request, or an unknown cluster.', schema: errorSchema } } },

  { method: 'get', path: '/environment', tag: 'administration', summary: 'Values injected into every deployed container (administrators).',
    query: Joi.object({ values: Joi.boolean().default(true).description('false: names only, without values (the web UI)'), cluster: clusterName.description('What this cluster\'s deployments get: the values for all clusters overridden by its own (entries with "cluster").') }),
    responses: { '200': { description: '[{key, name, value}] ([{key, name}] with values=false)' }, ...common } },
  { method: 'put', path: '/environment/{key}', tag: 'administration', summary: 'Set an injected value (administrators; audited); with cluster, for that cluster only.', query: Joi.object({ cluster: clusterName }), body: environmentValueSchema, example: { value: 'postgres://db.shop.svc:5432/shop' },
    responses: { '204': { description: 'Set.' }, ...common } },
  { method: 'delete', path: '/environment/{key}', tag: 'administration', summary: 'Remove an injected value (administrators; audited); with cluster, that cluster\'s own value.', query: Joi.object({ cluster: clusterName }),
    responses: { '204': { description: 'Removed.' }, '404': { description: 'No such value.' }, ...common } },
  { method: 'get', path: '/overview', tag: 'overview', summary: 'Every app the caller may see, grouped by namespace: live version, newest deployment (status, when, by whom), URLs; and the caller.',
    responses: { '200': { description: '{caller: {identity, auth, namespaces}, namespaces: [{namespace, apps: [...]}], revision}' }, ...common } },
  { method: 'get', path: '/overview/stream', tag: 'overview', summary: 'Server-sent events: "snapshot" (as GET /overview), then "app" with an app\'s new summary on every change; "end" when the client must reconnect (docs/ui.md).',
    responses: { '200': { description: 'text/event-stream', contentType: 'text/event-stream' }, ...common } },
  { method: 'get', path: '/audit', tag: 'administration', summary: 'Audit trail of a namespace (or _cluster for administrators), newest first.', query: Joi.object({ namespace: Joi.string().required(), limit: Joi.number().integer().min(1), app: Joi.string() }),
    responses: { '200': { description: 'Entries: who, what, where, when, outcome.' }, ...common } },
  { method: 'get', path: '/admin/keys', tag: 'administration', summary: 'List API keys (never their secrets).', query: Joi.object({ team: Joi.string() }),
    responses: { '200': { description: 'Keys.' }, ...common } },
  { method: 'post', path: '/admin/keys', tag: 'administration', summary: 'Create an API key; the secret is in this answer only.',
    body: Joi.object({ team: Joi.string().required(), namespaces: Joi.alternatives(Joi.array().items(Joi.string()), Joi.string()).required(), expires: Joi.string().description('e.g. 90d or an ISO date'), description: Joi.string() }),
    example: { team: 'shop', namespaces: ['shop'], expires: '90d', description: 'shop pipeline' },
    responses: { '201': { description: 'The key and its secret.' }, ...common } },
  { method: 'delete', path: '/admin/keys/{id}', tag: 'administration', summary: 'Revoke an API key.',
    responses: { '200': { description: 'Revoked.' }, '404': { description: 'Unknown key.' }, ...common } },
  { method: 'get', path: '/webhooks', tag: 'webhooks', summary: 'Webhook subscriptions of a namespace (never their secrets).', query: ns,
    responses: { '200': { description: '[{id, namespace, url, apps?, events?, description?, created, createdBy}]' }, ...common } },
  { method: 'post', path: '/webhooks', tag: 'webhooks', summary: 'Subscribe a URL to the namespace\'s deployment events (CloudEvents, signed; docs/webhooks.md). The signing secret is in this answer only; audited.',
    query: ns,
    body: Joi.object({
      url: Joi.string().uri({ scheme: ['http', 'https'] }).max(2048).required().description('Receiver; http or https, no user:password, no fragment; a host CUTOVER_WEBHOOK_ALLOWED_HOSTS allows.'),
      apps: Joi.alternatives(Joi.array().items(Joi.string()), Joi.string()).description('Only these apps (default: all).'),
      events: Joi.alternatives(Joi.array().items(Joi.string().valid('requested', 'started', 'step', 'switched', 'succeeded', 'failed', 'undeployed')), Joi.string()).description('Only these kinds (default: all).'),
      description: Joi.string().max(200),
    }),
    example: { url: 'https://hooks.example.com/cutover', apps: ['shop'], events: ['succeeded', 'failed'], description: 'pipeline status' },
    responses: { '201': { description: '{webhook, secret, note}' }, '409': { description: 'No key-encryption key configured: secrets cannot be stored.', schema: errorSchema }, ...common } },
  { method: 'get', path: '/webhooks/{id}', tag: 'webhooks', summary: 'One subscription (never its secret).', query: ns,
    responses: { '200': { description: 'The subscription.' }, '404': { description: 'No such webhook in this namespace.' }, ...common } },
  { method: 'delete', path: '/webhooks/{id}', tag: 'webhooks', summary: 'Remove a subscription, its pending deliveries and its delivery log (audited).', query: ns,
    responses: { '204': { description: 'Removed.' }, '404': { description: 'No such webhook in this namespace.' }, ...common } },
  { method: 'get', path: '/webhooks/{id}/deliveries', tag: 'webhooks', summary: 'Delivery log: pending deliveries first, then finished ones, newest first (status, attempts, last error).',
    query: ns.keys({ limit: Joi.number().integer().min(1).max(1000).default(100) }),
    responses: { '200': { description: '[{eventId, type, deploymentId, app, sequence, status: pending|delivered|failed, attempts, enqueued, firstAttempt?, lastAttempt?, nextAttempt?, lastError?, lastStatus?, latencyMs?}]' }, '404': { description: 'No such webhook in this namespace.' }, ...common } },
];

function toJsonSchema(schema: Joi.Schema | Record<string, unknown>): Record<string, unknown> {
  return Joi.isSchema(schema) ? parseJoi(schema as Joi.Schema, 'open-api-3.1') : schema;
}

function pathParameters(path: string): Array<Record<string, unknown>> {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
}

function queryParameters(query: Joi.ObjectSchema | undefined): Array<Record<string, unknown>> {
  if (!query) return [];
  const described = query.describe() as { keys?: Record<string, { flags?: { presence?: string; description?: string } }> };
  return Object.entries(described.keys ?? {}).map(([name, d]) => {
    const sub = query.extract(name);
    return {
      name, in: 'query', required: d.flags?.presence === 'required',
      ...(d.flags?.description ? { description: d.flags.description } : {}),
      schema: toJsonSchema(sub),
    };
  });
}

let cached: Record<string, unknown> | undefined;

export function openApiDocument(version: string): Record<string, unknown> {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(op.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema ? { content: { [r.contentType ?? 'application/json']: { schema: toJsonSchema(r.schema) } } } : {}),
      };
    }
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      tags: [op.tag],
      operationId: `${op.method}${op.path.replace(/[{}]/g, '').split('/').map((s) => s.charAt(0).toUpperCase() + s.slice(1)).join('').replace(/[^A-Za-z0-9]/g, '')}`,
      parameters: [...pathParameters(op.path), ...queryParameters(op.query)],
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(op.body), ...(op.example ? { example: op.example } : {}) } } } } : {}),
      responses,
      ...(op.open ? { security: [] } : {}),
    };
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'cutover',
      version,
      description: 'Descriptor-based blue-green deployments on Kubernetes. Paths work with and without a trailing slash. Errors are JSON: {"error", "message", "details"}.',
    },
    tags: [{ name: 'descriptors' }, { name: 'deployments' }, { name: 'overview' }, { name: 'clusters' }, { name: 'webhooks' }, { name: 'administration' }, { name: 'operations' }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-Cutover-Key-Id', description: 'With X-Cutover-Timestamp, X-Cutover-Nonce and X-Cutover-Signature (HMAC-SHA256; docs/security.md).' },
      },
    },
    security: [{ bearer: [] }, { apiKey: [] }],
    paths,
  };
  return cached;
}

/** Koa's ":id" → OpenAPI's "{id}". */
export function toOpenApiPath(koaPath: string): string {
  return koaPath.replace(/:(\w+)/g, '{$1}');
}
