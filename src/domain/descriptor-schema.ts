import Joi from 'joi';
import type { DescriptorInput } from './types.js';
import {
  CLUSTER_NAME, DNS1035_LABEL, DNS1123_LABEL, MAX_LABEL_LENGTH, isValidVersion, normaliseAppName, normaliseVersion,
  versionForNameCheck, versionedName,
} from './names.js';

/**
 * The descriptor schema: one source of truth for validation, defaults and (later) the OpenAPI
 * document. Every problem is reported at once, each with the path of its field.
 */

export interface ValidationProblem {
  path: string;
  message: string;
}

const dnsLabel = Joi.string().max(MAX_LABEL_LENGTH).pattern(DNS1123_LABEL, 'DNS-1123 label').messages({
  'string.pattern.name': '{{#label}} must be a DNS-1123 label (lower-case letters, digits and "-", starting and ending with a letter or digit)',
});
const noNewlines = /^[^\r\n\0]*$/;
/** A Gateway reference: namespace/name[/sectionName] (DNS labels / subdomain names). */
export const GATEWAY_REF = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/;
/** RFC 7230 token characters, i.e. what a header name may contain. */
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A hostname (RFC 1123), optionally a wildcard "*.example.com"; no scheme, port or path. */
const hostname = /^(\*\.)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

export const namespaceSchema = dnsLabel.required();

const containerPortSchema = Joi.object({
  containerPort: Joi.number().integer().min(1).max(65535).required(),
  name: Joi.string().max(15).pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'IANA service name'),
  protocol: Joi.string().valid('TCP', 'UDP', 'SCTP'),
}).unknown(true);

const envVarSchema = Joi.object({
  name: Joi.string().min(1).max(256).required(),
  value: Joi.string().allow(''),
}).unknown(true);

const containerSchema = Joi.object({
  name: dnsLabel.required(),
  image: Joi.string().trim().min(1).max(1024).required(),
  ports: Joi.array().items(containerPortSchema),
  env: Joi.array().items(envVarSchema),
}).unknown(true);

const podSpecSchema = Joi.object({
  containers: Joi.array().items(containerSchema).min(1).required()
    .unique((a: { name?: unknown }, b: { name?: unknown }) => a.name === b.name)
    .messages({ 'array.unique': '{{#label}} must have unique container names' }),
  imagePullSecrets: Joi.array().items(Joi.object({ name: dnsLabel.required() }).unknown(true)),
}).unknown(true);

const headerSchema = Joi.object({
  Header: Joi.string().max(256).pattern(headerName, 'HTTP header name').required()
    .messages({ 'string.pattern.name': '{{#label}} must be an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)' }),
  // The original deployer escaped spaces as "\ " for HAProxy; unescape so old descriptors keep working.
  Value: Joi.string().allow('').max(4096).pattern(noNewlines, 'no CR, LF or NUL')
    .custom((v: string) => v.replace(/\\ /g, ' ')).required()
    .messages({ 'string.pattern.name': '{{#label}} must not contain CR, LF or NUL characters' }),
});

/**
 * A pre-switch gate or post-switch check: an http(s) URL without credentials (descriptors are
 * returned by the API and shown in logs; a secret belongs in the receiver's own configuration),
 * a per-attempt timeout and a bounded number of retries.
 */
export const gateSchema = Joi.object({
  name: Joi.string().trim().min(1).max(63).pattern(noNewlines, 'no CR, LF or NUL')
    .messages({ 'string.pattern.name': '{{#label}} must not contain CR, LF or NUL characters' }),
  url: Joi.string().trim().max(2048).uri({ scheme: ['http', 'https'] })
    .custom((v: string, helpers) => {
      const u = new URL(v);
      return u.username || u.password ? helpers.error('gate.credentials') : v;
    })
    .required()
    .messages({
      'string.uriCustomScheme': '{{#label}} must be an http:// or https:// URL',
      'string.uri': '{{#label}} must be an http:// or https:// URL',
      'gate.credentials': '{{#label}} must not contain a user name or password',
    }),
  timeoutSeconds: Joi.number().integer().min(1).max(300).default(10),
  retries: Joi.number().integer().min(0).max(10).default(2),
});

/** Fields of the original deployer that are accepted for compatibility. */
const legacyFields = {
  cluster: Joi.string().trim().lowercase().pattern(CLUSTER_NAME, 'cluster name').description('Deploy to this cluster when the request names none (docs/clusters.md).'),
  // Not "environment": the original's descriptors carry an internal field of that name (stripped below).
  targetEnvironment: Joi.string().trim().lowercase().pattern(CLUSTER_NAME, 'environment name').description('Deploy to every cluster of this environment when the request names neither cluster nor environment.'),
  webhooks: Joi.array().items(Joi.object({ key: Joi.string().min(1).max(256).required(), description: Joi.string().allow('').max(1024) })),
  deployedVersion: Joi.string().allow('').max(256),
  deploymentTs: Joi.string().allow('').max(64),
  useExternalHealthCheck: Joi.boolean(),
  externalHealthCheckPath: Joi.string().allow('').max(1024),
  readinessPort: Joi.number().integer().min(0).max(65535),
  // Never stored or returned (the original kept them in plain text).
  email: Joi.any().strip(),
  password: Joi.any().strip(),
  // Internal to the original deployer (filled from etcd at deploy time); ignored.
  environment: Joi.any().strip(),
  // Documented at top level by the original README but silently dropped there; merged into podspec here.
  imagePullSecrets: Joi.array().items(Joi.object({ name: dnsLabel.required() }).unknown(true)),
};

export const descriptorSchema = Joi.object({
  // Server-managed; accepted in bodies (a client may send back what it read), checked by the handlers.
  id: Joi.string().max(128),
  created: Joi.any().strip(),
  lastModified: Joi.any().strip(),

  namespace: dnsLabel,
  appName: Joi.string().trim().min(1).max(MAX_LABEL_LENGTH).required()
    .custom((v: string) => normaliseAppName(v))
    .pattern(DNS1035_LABEL, 'DNS-1035 label')
    .messages({ 'string.pattern.name': '{{#label}} must become a DNS-1035 label after normalisation (start with a letter; letters, digits, "-", ".", "_")' }),
  newVersion: Joi.string().trim().min(1).max(MAX_LABEL_LENGTH).default('#')
    .custom((v: string, helpers) => {
      const n = normaliseVersion(v);
      return isValidVersion(n) ? n : helpers.error('version.invalid');
    })
    .messages({ 'version.invalid': '{{#label}} must be "#" or letters, digits, ".", "_" and "-", starting and ending with a letter or digit' }),
  deploymentType: Joi.string().valid('blue-green').default('blue-green'),
  // At least one: zero pods would count as "all ready" and traffic would switch to nothing (invariant I1).
  replicas: Joi.number().integer().min(1).max(1000).default(1),
  // No default here: an absent kind is resolved per deployment from CUTOVER_DEFAULT_CONTROLLER_KIND.
  controllerKind: Joi.string().valid('Deployment', 'ReplicationController'),
  podspec: podSpecSchema.required(),

  frontend: Joi.string().trim().lowercase().max(253).pattern(hostname, 'hostname')
    .messages({ 'string.pattern.name': '{{#label}} must be a host name such as "app.example.com" (no scheme, port or path)' }),
  redirectWww: Joi.boolean().default(false),
  useCompression: Joi.boolean().default(false),
  useStickySessions: Joi.boolean().default(false),
  tlsSecretName: Joi.string().max(253).pattern(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'DNS-1123 subdomain'),
  ingressClassName: Joi.string().max(253).pattern(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'DNS-1123 subdomain'),
  routing: Joi.string().lowercase().valid('ingress', 'httproute', 'both'),
  gateway: Joi.string().max(512).pattern(GATEWAY_REF, 'namespace/name[/sectionName]')
    .messages({ 'string.pattern.name': '{{#label}} must name a Gateway as "namespace/name" or "namespace/name/sectionName"' }),
  additionHttpHeaders: Joi.array().items(headerSchema).max(100).default([]),

  useHealthCheck: Joi.boolean().default(false),
  ignoreHealthCheck: Joi.boolean().default(false),
  healthCheckType: Joi.string().lowercase().valid('probe', 'simple').default('probe'),
  healthCheckPath: Joi.string().trim().allow('').max(1024).pattern(/^[^\s?#]*(\?[^\s#]*)?$/, 'URL path')
    .custom((v: string) => v.replace(/^\/+/, '') || 'health').default('health'),
  healthCheckMethod: Joi.string().trim().uppercase().valid('GET', 'POST'),
  healthCheckPort: Joi.number().integer().min(1).max(65535),
  healthCheckTimeout: Joi.number().integer().min(1).max(3600),
  drainSeconds: Joi.number().integer().min(0).max(3600),
  deadlineSeconds: Joi.number().integer().min(10).max(86400),
  preSwitchGates: Joi.array().items(gateSchema).max(10)
    .description('Asked after the health checks passed, before the switch (POST, JSON answer {"pass": true|false, "reason": "…"}): a failure fails the deployment; the running version is not touched.'),
  postSwitchChecks: Joi.array().items(gateSchema).max(10)
    .description('Asked after the switch, during the drain window: a failure switches traffic back to the replaced version (still running) and removes the new one.'),

  ...legacyFields,
})
  .custom((d: DescriptorInput & { imagePullSecrets?: Array<{ name: string }> }, helpers) => {
    const name = versionedName(d.appName, versionForNameCheck(d.newVersion));
    if (name.length > MAX_LABEL_LENGTH || !DNS1035_LABEL.test(name)) {
      return helpers.error('descriptor.name', { name });
    }
    if (d.imagePullSecrets) {
      const merged = [...(d.podspec.imagePullSecrets ?? [])];
      for (const s of d.imagePullSecrets) if (!merged.some((m) => m.name === s.name)) merged.push(s);
      d.podspec.imagePullSecrets = merged;
      delete d.imagePullSecrets;
    }
    return d;
  })
  .messages({
    'descriptor.name': 'the versioned name appName-version ("{{#name}}") must be a valid Kubernetes Service name: a DNS-1035 label of at most 63 characters (with "#", 6 digits are reserved for the version)',
  });

export type ValidationResult =
  | { ok: true; value: DescriptorInput }
  | { ok: false; problems: ValidationProblem[] };

/** Applies defaults and normalisation, and collects every problem with its field path. */
export function validateDescriptor(input: unknown): ValidationResult {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ path: '', message: 'the descriptor must be a JSON object' }] };
  }
  const { value, error } = descriptorSchema.validate(input, {
    abortEarly: false,
    convert: true,
    errors: { wrap: { label: '"' } },
  });
  if (error) {
    return {
      ok: false,
      problems: error.details.map((d) => ({
        path: d.type === 'descriptor.name' ? 'appName' : d.path.join('.'),
        message: d.message,
      })),
    };
  }
  return { ok: true, value: value as DescriptorInput };
}
