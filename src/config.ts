import Joi from 'joi';

/**
 * cutover's configuration: every setting is an environment variable, declared once here.
 * The table drives validation at start-up and the documentation (docs/configuration.md is
 * checked against it by a test), so the two cannot drift.
 */
export interface SettingSpec {
  env: string;
  description: string;
  schema: Joi.Schema;
  /** Shown in the docs; the schema's own default is what applies. */
  defaultText: string;
  /** The value is a secret: never echoed in error messages. */
  secret?: boolean;
}

const listOfUrls = Joi.string()
  .trim()
  .custom((value: string, helpers) => {
    const urls = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (urls.length === 0) return helpers.error('any.invalid');
    for (const u of urls) {
      let parsed: URL;
      try {
        parsed = new URL(u);
      } catch {
        return helpers.error('any.invalid');
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return helpers.error('any.invalid');
    }
    return urls;
  })
  .messages({ 'any.invalid': '{{#label}} must be a comma-separated list of http:// or https:// URLs' });

const port = Joi.number().integer().min(0).max(65535);

const onOff = Joi.string().trim().lowercase().valid('on', 'off');

/** Comma-separated non-empty items (JWT audiences, algorithms). */
const listOfStrings = Joi.string().trim().custom((value: string, helpers) => {
  const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return items.length === 0 ? helpers.error('any.invalid') : items;
}).messages({ 'any.invalid': '{{#label}} must be a comma-separated list' });

const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'HS256', 'HS384', 'HS512'];
const listOfJwtAlgorithms = listOfStrings.custom((items: string[], helpers) => {
  return items.every((a) => JWT_ALGORITHMS.includes(a)) ? items : helpers.error('any.invalid');
}).messages({ 'any.invalid': `{{#label}} must be a comma-separated list of ${JWT_ALGORITHMS.join(', ')} ("none" is never accepted)` });

/** A secret given directly: checked for presence only here, its format at start-up (messages never echo it). */
const secretText = Joi.string().trim().allow('');
const filePath = Joi.string().trim().allow('');

/** Comma-separated browser origins (scheme://host[:port]) or "*"; stored in canonical form (URL.origin). */
const listOfOrigins = Joi.string()
  .trim()
  .allow('')
  .custom((value: string, helpers) => {
    const origins: string[] = [];
    for (const item of value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
      if (item === '*') {
        origins.push('*');
        continue;
      }
      let url: URL;
      try {
        url = new URL(item);
      } catch {
        return helpers.error('any.invalid');
      }
      const isOrigin = (url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
      if (!isOrigin) return helpers.error('any.invalid');
      origins.push(url.origin);
    }
    return origins;
  })
  .messages({ 'any.invalid': '{{#label}} must be a comma-separated list of origins like https://ui.example.com (scheme, host, optional port; no path), or *' });

export const settings = {
  port: {
    env: 'CUTOVER_PORT',
    description: 'TCP port of the REST API and websocket server (0 picks a free port).',
    schema: port.default(8000),
    defaultText: '8000',
  },
  host: {
    env: 'CUTOVER_HOST',
    description: 'Address to listen on. Use 0.0.0.0 inside a container.',
    schema: Joi.string().trim().hostname().default('127.0.0.1'),
    defaultText: '127.0.0.1',
  },
  allowedOrigins: {
    env: 'CUTOVER_ALLOWED_ORIGINS',
    description: 'Browser origins, besides the same origin, that may use the REST API (CORS) and the log websocket: comma-separated, e.g. https://ui.example.com, or * for any. Clients that send no Origin (CLIs) are always allowed.',
    schema: listOfOrigins.default([]),
    defaultText: '(same origin only)',
  },
  wsHeartbeatSeconds: {
    env: 'CUTOVER_WS_HEARTBEAT_SECONDS',
    description: 'Interval of websocket pings; a connection that has not answered the previous ping by the next one is dropped.',
    schema: Joi.number().integer().min(1).max(3600).default(30),
    defaultText: '30',
  },
  wsMaxBufferedBytes: {
    env: 'CUTOVER_WS_MAX_BUFFERED_BYTES',
    description: 'Per log websocket: the most data buffered for the client, and how far (bytes) it may fall behind the live log before it is closed with 1013 (it resumes with from=).',
    schema: Joi.number().integer().min(1024).max(256 * 1024 * 1024).default(1024 * 1024),
    defaultText: '1048576',
  },
  etcdEndpoints: {
    env: 'CUTOVER_ETCD_ENDPOINTS',
    description: 'Comma-separated etcd v3 endpoints.',
    schema: listOfUrls.default(['http://127.0.0.1:2379']),
    defaultText: 'http://127.0.0.1:2379',
  },
  etcdPrefix: {
    env: 'CUTOVER_ETCD_PREFIX',
    description: 'Key prefix of all cutover data in etcd; must start and end with "/".',
    schema: Joi.string().pattern(/^\/([A-Za-z0-9._-]+\/)*$/).default('/deployer/')
      .messages({ 'string.pattern.base': '{{#label}} must start and end with "/" and contain only letters, digits, ".", "_", "-"' }),
    defaultText: '/deployer/',
  },
  etcdTimeoutMs: {
    env: 'CUTOVER_ETCD_TIMEOUT_MS',
    description: 'Deadline of every etcd call; when etcd does not answer in time the API answers 503.',
    schema: Joi.number().integer().min(100).max(60000).default(2000),
    defaultText: '2000',
  },
  logLevel: {
    env: 'CUTOVER_LOG_LEVEL',
    description: 'Minimum level of the JSON log on stdout.',
    schema: Joi.string().valid('trace', 'debug', 'info', 'warn', 'error', 'fatal').default('info'),
    defaultText: 'info',
  },
  shutdownGraceSeconds: {
    env: 'CUTOVER_SHUTDOWN_GRACE_SECONDS',
    description: 'On SIGTERM, how long in-flight work may take before the process exits anyway.',
    schema: Joi.number().integer().min(0).max(3600).default(25),
    defaultText: '25',
  },
  kubeconfig: {
    env: 'CUTOVER_KUBECONFIG',
    description: 'Path of the kubeconfig of the cluster to deploy to. Unset: the in-cluster service account, else $KUBECONFIG or ~/.kube/config.',
    schema: Joi.string().trim().allow(''),
    defaultText: '(in-cluster / $KUBECONFIG)',
  },
  clustersFile: {
    env: 'CUTOVER_CLUSTERS_FILE',
    description: 'Path of the cluster registry (YAML or JSON): the clusters cutover deploys to, each with its environment, kubeconfig (or inCluster) and per-cluster health-check mode, ingress class, routing, gateway and traffic probe (docs/clusters.md). Unset: one cluster, "default", from CUTOVER_KUBECONFIG and the settings here.',
    schema: Joi.string().trim().allow(''),
    defaultText: '(one cluster)',
  },
  kubeRequestTimeoutMs: {
    env: 'CUTOVER_KUBE_REQUEST_TIMEOUT_MS',
    description: 'Timeout of one Kubernetes API call; failed calls (no answer, 429, 5xx) are retried within the deployment deadline.',
    schema: Joi.number().integer().min(500).max(120000).default(10000),
    defaultText: '10000',
  },
  healthCheckMode: {
    env: 'CUTOVER_HEALTHCHECK_MODE',
    description: 'How pods are reached for health checks: "direct" (pod IP; cutover runs in the cluster) or "proxy" (through the API server\'s pod proxy; cutover runs outside).',
    schema: Joi.string().valid('direct', 'proxy').default('direct'),
    defaultText: 'direct',
  },
  healthCheckRequestTimeoutMs: {
    env: 'CUTOVER_HEALTHCHECK_REQUEST_TIMEOUT_MS',
    description: 'Timeout of one health-check request to one pod.',
    schema: Joi.number().integer().min(100).max(60000).default(2000),
    defaultText: '2000',
  },
  healthCheckIntervalMs: {
    env: 'CUTOVER_HEALTHCHECK_INTERVAL_MS',
    description: 'Pause before re-checking a pod that was not healthy yet.',
    schema: Joi.number().integer().min(50).max(60000).default(1000),
    defaultText: '1000',
  },
  healthCheckTimeoutSeconds: {
    env: 'CUTOVER_HEALTHCHECK_TIMEOUT_SECONDS',
    description: 'Default time a new version has to become ready and healthy (descriptor field healthCheckTimeout overrides).',
    schema: Joi.number().integer().min(1).max(3600).default(300),
    defaultText: '300',
  },
  drainSeconds: {
    env: 'CUTOVER_DRAIN_SECONDS',
    description: 'Default time the replaced version keeps running after the switch (descriptor field drainSeconds overrides).',
    schema: Joi.number().integer().min(0).max(3600).default(30),
    defaultText: '30',
  },
  deadlineSeconds: {
    env: 'CUTOVER_DEADLINE_SECONDS',
    description: 'Default overall deadline of a deployment or undeploy, counted from the request (descriptor field deadlineSeconds overrides).',
    schema: Joi.number().integer().min(10).max(86400).default(600),
    defaultText: '600',
  },
  ingressClassName: {
    env: 'CUTOVER_INGRESS_CLASS',
    description: 'IngressClass of the Ingresses cutover creates (descriptor field ingressClassName overrides). Unset: the cluster\'s default class.',
    schema: Joi.string().trim().allow('').pattern(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/),
    defaultText: '(cluster default)',
  },
  ingressProfile: {
    env: 'CUTOVER_INGRESS_PROFILE',
    description: 'How sticky sessions, compression, response headers and the www redirect are expressed: "traefik" (Traefik v3 annotations and Middlewares) or "generic" (standard Ingress only; those features are reported as not applied).',
    schema: Joi.string().valid('generic', 'traefik').default('generic'),
    defaultText: 'generic',
  },
  defaultControllerKind: {
    env: 'CUTOVER_DEFAULT_CONTROLLER_KIND',
    description: 'The workload kind of a deployment whose descriptor does not say (`controllerKind`): "Deployment" (apps/v1) or "ReplicationController" (what the Amdatu deployer created; for teams migrating whose tooling looks for RCs). Recorded on each deployment, so changing it never changes a running version.',
    schema: Joi.string().trim().valid('Deployment', 'ReplicationController').default('Deployment'),
    defaultText: 'Deployment',
  },
  routing: {
    env: 'CUTOVER_ROUTING',
    description: 'Which routes carry a frontend\'s traffic when the descriptor does not say (`routing`): "ingress" (an Ingress), "httproute" (a Gateway API HTTPRoute) or "both".',
    schema: Joi.string().trim().lowercase().valid('ingress', 'httproute', 'both').default('ingress'),
    defaultText: 'ingress',
  },
  gateway: {
    env: 'CUTOVER_GATEWAY',
    description: 'The Gateway HTTPRoutes attach to when the descriptor does not say (`gateway`): "namespace/name" or "namespace/name/sectionName". Required for HTTPRoutes.',
    schema: Joi.string().trim().allow('').pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/, 'namespace/name[/sectionName]'),
    defaultText: '',
  },
  versionHeader: {
    env: 'CUTOVER_VERSION_HEADER',
    description: 'When set (e.g. "X-Cutover-Version"), responses through an app\'s routes carry this header with the version that answered (HTTPRoute filter; Traefik Middleware for Ingresses with the traefik profile), so the traffic probe can see when traffic has moved.',
    schema: Joi.string().trim().allow('').pattern(/^[A-Za-z0-9-]{1,64}$/, 'HTTP header name'),
    defaultText: '',
  },
  trafficProbeUrl: {
    env: 'CUTOVER_TRAFFIC_PROBE_URL',
    description: 'The gateway\'s address as cutover can reach it (e.g. http://traefik.traefik.svc): after a switch, cutover sends requests there with the app\'s Host until the new version answers (needs CUTOVER_VERSION_HEADER); the drain delay counts from then.',
    schema: Joi.string().trim().allow('').uri({ scheme: ['http', 'https'] }),
    defaultText: '',
  },
  convergenceTimeoutSeconds: {
    env: 'CUTOVER_CONVERGENCE_TIMEOUT_SECONDS',
    description: 'How long cutover waits after a switch for traffic to have moved (route status, endpoints, the traffic probe) before it drains the old version anyway (with a warning).',
    schema: Joi.number().integer().min(1).max(600).default(30),
    defaultText: '30',
  },
  replicaId: {
    env: 'CUTOVER_REPLICA_ID',
    description: 'Name of this cutover replica in logs and ownership records.',
    schema: Joi.string().trim().max(128).allow(''),
    defaultText: '(hostname-pid)',
  },
  leaseTtlSeconds: {
    env: 'CUTOVER_LEASE_TTL_SECONDS',
    description: 'TTL of the etcd lease behind this replica\'s app ownerships: how soon another replica takes over after a crash.',
    schema: Joi.number().integer().min(2).max(300).default(10),
    defaultText: '10',
  },
  retainRecords: {
    env: 'CUTOVER_RETAIN_RECORDS',
    description: 'Deployment records kept per app, with their logs and health data: the newest this many; older finished ones (FAILURE, UNDEPLOYED) are deleted when the app\'s work is done. The live record and records in progress are always kept.',
    schema: Joi.number().integer().min(1).max(100000).default(50),
    defaultText: '50',
  },
  failpoints: {
    env: 'CUTOVER_FAILPOINTS',
    description: 'For tests only: pause the engine at named points, e.g. "after-first-traffic-target=pause:8000" (see src/deployer/failpoints.ts).',
    schema: Joi.string().trim().allow('').pattern(/^([a-z-]+=pause:\d{1,7})(,[a-z-]+=pause:\d{1,7})*$/),
    defaultText: '',
  },
  auth: {
    env: 'CUTOVER_AUTH',
    description: 'Authentication of API callers (docs/security.md). "off" lets every caller in as an administrator and logs a warning at start-up: for local experiments only.',
    schema: onOff.default('on'),
    defaultText: 'on',
  },
  apiKeys: {
    env: 'CUTOVER_API_KEYS',
    description: 'Accept HMAC-signed requests made with API keys (pipelines). Needs a key-encryption key; cutover refuses to start when it is on without one.',
    schema: onOff.default('on'),
    defaultText: 'on',
  },
  keyEncryptionKey: {
    env: 'CUTOVER_KEY_ENCRYPTION_KEY',
    description: 'Key-encryption key of the API key secrets stored in etcd: 32 bytes as base64 or 64 hex digits (openssl rand -base64 32). Several, comma-separated: the first encrypts, all decrypt (rotation). Prefer the _FILE variant.',
    schema: secretText,
    defaultText: '',
    secret: true,
  },
  keyEncryptionKeyFile: {
    env: 'CUTOVER_KEY_ENCRYPTION_KEY_FILE',
    description: 'File holding the key-encryption key(s), one per line (e.g. a mounted Kubernetes Secret). Use this or CUTOVER_KEY_ENCRYPTION_KEY.',
    schema: filePath,
    defaultText: '',
  },
  jwtJwksUrl: {
    env: 'CUTOVER_JWT_JWKS_URL',
    description: 'Accept bearer JWTs signed by a key from this JWKS URL (e.g. https://idp.example.com/.well-known/jwks.json). One of the three JWT key sources.',
    schema: Joi.string().trim().allow('').uri({ scheme: ['http', 'https'] }),
    defaultText: '',
  },
  jwtPublicKeyFile: {
    env: 'CUTOVER_JWT_PUBLIC_KEY_FILE',
    description: 'Accept bearer JWTs signed with the private half of this PEM public key (RSA, EC or Ed25519). One of the three JWT key sources.',
    schema: filePath,
    defaultText: '',
  },
  jwtSecret: {
    env: 'CUTOVER_JWT_SECRET',
    description: 'Accept bearer JWTs with an HMAC (HS256) signature made with this shared secret, at least 32 bytes. One of the three JWT key sources; prefer the _FILE variant.',
    schema: secretText,
    defaultText: '',
    secret: true,
  },
  jwtSecretFile: {
    env: 'CUTOVER_JWT_SECRET_FILE',
    description: 'File holding the shared JWT secret (see CUTOVER_JWT_SECRET).',
    schema: filePath,
    defaultText: '',
  },
  jwtIssuer: {
    env: 'CUTOVER_JWT_ISSUER',
    description: 'Required "iss" of bearer JWTs (required when a JWT key source is set).',
    schema: Joi.string().trim().allow('').max(1024),
    defaultText: '',
  },
  jwtAudience: {
    env: 'CUTOVER_JWT_AUDIENCE',
    description: 'Accepted "aud" values of bearer JWTs, comma-separated (required when a JWT key source is set).',
    schema: listOfStrings,
    defaultText: '',
  },
  jwtAlgorithms: {
    env: 'CUTOVER_JWT_ALGORITHMS',
    description: 'Accepted JWT "alg" values, comma-separated; "none" is never accepted. They must fit the key source (HS* for a secret, the others for keys).',
    schema: listOfJwtAlgorithms,
    defaultText: '(RS256,PS256,ES256,EdDSA; HS256 with a secret)',
  },
  jwtNamespacesClaim: {
    env: 'CUTOVER_JWT_NAMESPACES_CLAIM',
    description: 'JWT claim with the namespaces the caller may use: an array, or a string separated by spaces or commas; "*" makes an administrator.',
    schema: Joi.string().trim().max(256).default('namespaces'),
    defaultText: 'namespaces',
  },
  jwtIdentityClaim: {
    env: 'CUTOVER_JWT_IDENTITY_CLAIM',
    description: 'JWT claim naming the caller in the audit trail and logs (e.g. sub, email, preferred_username).',
    schema: Joi.string().trim().max(256).default('sub'),
    defaultText: 'sub',
  },
  jwtClockToleranceSeconds: {
    env: 'CUTOVER_JWT_CLOCK_TOLERANCE_SECONDS',
    description: 'Clock skew allowed when checking the "exp" and "nbf" of bearer JWTs.',
    schema: Joi.number().integer().min(0).max(300).default(5),
    defaultText: '5',
  },
  authFailuresPerMinute: {
    env: 'CUTOVER_AUTH_FAILURES_PER_MINUTE',
    description: 'Failed authentications allowed per client address and minute (token bucket, also the burst); beyond, failures are answered 429 with Retry-After. Requests that authenticate are never limited.',
    schema: Joi.number().integer().min(1).max(100000).default(30),
    defaultText: '30',
  },
  metricsAuth: {
    env: 'CUTOVER_METRICS_AUTH',
    description: '"on": /metrics needs credentials like the API (any authenticated caller). "off": it is open, like /healthz and /readyz.',
    schema: onOff.default('off'),
    defaultText: 'off',
  },
  hstsMaxAgeSeconds: {
    env: 'CUTOVER_HSTS_MAX_AGE_SECONDS',
    description: 'When above 0, responses carry Strict-Transport-Security with this max-age (only when clients reach cutover over HTTPS).',
    schema: Joi.number().integer().min(0).max(63072000).default(0),
    defaultText: '0',
  },
  auditKeepPerNamespace: {
    env: 'CUTOVER_AUDIT_KEEP_PER_NAMESPACE',
    description: 'Audit entries kept per namespace (and for _cluster); older ones are removed within a second of new ones arriving.',
    schema: Joi.number().integer().min(10).max(1000000).default(1000),
    defaultText: '1000',
  },
  webhookAllowedHosts: {
    env: 'CUTOVER_WEBHOOK_ALLOWED_HOSTS',
    description: 'Hosts webhook URLs may point at: comma-separated host names or IP addresses, "*.example.com" for any subdomain. Empty: any host — then anyone who may manage a namespace\'s webhooks can make cutover send requests to internal addresses (docs/security.md, "Webhooks"). Checked when a webhook is created and before every delivery.',
    schema: Joi.string().trim().allow('').custom((value: string) => value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)).default([]),
    defaultText: '(any host)',
  },
  webhookRetrySeconds: {
    env: 'CUTOVER_WEBHOOK_RETRY_SECONDS',
    description: 'How long a webhook delivery is retried after its first attempt (exponential backoff) before it is logged as failed and the deployment\'s next event is sent.',
    schema: Joi.number().integer().min(1).max(7 * 86400).default(3600),
    defaultText: '3600',
  },
  webhookFirstRetryMs: {
    env: 'CUTOVER_WEBHOOK_FIRST_RETRY_MS',
    description: 'Wait before the first retry of a failed webhook delivery; doubled after each further failure (±20 % jitter), up to CUTOVER_WEBHOOK_MAX_RETRY_INTERVAL_SECONDS.',
    schema: Joi.number().integer().min(10).max(600_000).default(1000),
    defaultText: '1000',
  },
  webhookMaxRetryIntervalSeconds: {
    env: 'CUTOVER_WEBHOOK_MAX_RETRY_INTERVAL_SECONDS',
    description: 'Longest wait between two attempts of a webhook delivery.',
    schema: Joi.number().integer().min(1).max(86400).default(300),
    defaultText: '300',
  },
  webhookTimeoutSeconds: {
    env: 'CUTOVER_WEBHOOK_TIMEOUT_SECONDS',
    description: 'Time a webhook receiver has to answer one delivery attempt (connect, status and body); no answer counts as a failed attempt.',
    schema: Joi.number().integer().min(1).max(300).default(10),
    defaultText: '10',
  },
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof settings;

export interface Config {
  port: number;
  host: string;
  allowedOrigins: string[];
  wsHeartbeatSeconds: number;
  wsMaxBufferedBytes: number;
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdTimeoutMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  shutdownGraceSeconds: number;
  kubeconfig?: string;
  clustersFile?: string;
  kubeRequestTimeoutMs: number;
  healthCheckMode: 'direct' | 'proxy';
  healthCheckRequestTimeoutMs: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutSeconds: number;
  drainSeconds: number;
  deadlineSeconds: number;
  ingressClassName?: string;
  ingressProfile: 'generic' | 'traefik';
  defaultControllerKind: 'Deployment' | 'ReplicationController';
  routing: 'ingress' | 'httproute' | 'both';
  gateway?: string;
  versionHeader?: string;
  trafficProbeUrl?: string;
  convergenceTimeoutSeconds: number;
  replicaId?: string;
  leaseTtlSeconds: number;
  retainRecords: number;
  failpoints?: string;
  auth: 'on' | 'off';
  apiKeys: 'on' | 'off';
  keyEncryptionKey?: string;
  keyEncryptionKeyFile?: string;
  jwtJwksUrl?: string;
  jwtPublicKeyFile?: string;
  jwtSecret?: string;
  jwtSecretFile?: string;
  jwtIssuer?: string;
  jwtAudience?: string[];
  jwtAlgorithms?: string[];
  jwtNamespacesClaim: string;
  jwtIdentityClaim: string;
  jwtClockToleranceSeconds: number;
  authFailuresPerMinute: number;
  metricsAuth: 'on' | 'off';
  hstsMaxAgeSeconds: number;
  auditKeepPerNamespace: number;
  webhookAllowedHosts: string[];
  webhookRetrySeconds: number;
  webhookFirstRetryMs: number;
  webhookMaxRetryIntervalSeconds: number;
  webhookTimeoutSeconds: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const result: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(settings) as [SettingName, SettingSpec][]) {
    const raw = env[spec.env];
    const input = raw === undefined || raw === '' ? undefined : raw;
    const { value, error } = spec.schema.label(spec.env).validate(input, { convert: true });
    if (error) {
      problems.push(`${spec.env}=${spec.secret ? '(secret, not shown)' : JSON.stringify(raw)}: ${error.details.map((d) => d.message).join('; ')}`);
    } else if (value !== undefined && value !== '') {
      result[name] = value;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as unknown as Config;
}
