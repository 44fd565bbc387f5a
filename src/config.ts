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
} satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof settings;

export interface Config {
  port: number;
  host: string;
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdTimeoutMs: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  shutdownGraceSeconds: number;
  kubeconfig?: string;
  kubeRequestTimeoutMs: number;
  healthCheckMode: 'direct' | 'proxy';
  healthCheckRequestTimeoutMs: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutSeconds: number;
  drainSeconds: number;
  deadlineSeconds: number;
  ingressClassName?: string;
  ingressProfile: 'generic' | 'traefik';
  replicaId?: string;
  leaseTtlSeconds: number;
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
      problems.push(`${spec.env}=${JSON.stringify(raw)}: ${error.details.map((d) => d.message).join('; ')}`);
    } else if (value !== undefined && value !== '') {
      result[name] = value;
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result as unknown as Config;
}
