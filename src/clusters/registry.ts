import { readFileSync } from 'node:fs';
import Joi from 'joi';
import { parse } from 'yaml';
import { ConfigError, type Config } from '../config.js';
import { CLUSTER_NAME } from '../domain/names.js';

/**
 * The clusters cutover deploys to, and the environment each belongs to: from CUTOVER_CLUSTERS_FILE
 * (YAML or JSON, typically a mounted Secret), else one cluster named "default" built from the
 * single-cluster settings (CUTOVER_KUBECONFIG, CUTOVER_HEALTHCHECK_MODE, …) — today's set-up.
 * Per-cluster fields override the server-wide defaults for deployments to that cluster.
 */
export interface ClusterSpec {
  name: string;
  environment: string;
  /** Path of the cluster's kubeconfig; absent with inCluster. */
  kubeconfig?: string;
  /** The service account of the pod cutover runs in (its own cluster). */
  inCluster: boolean;
  healthCheckMode: Config['healthCheckMode'];
  ingressClassName?: string;
  routing: Config['routing'];
  gateway?: string;
  trafficProbeUrl?: string;
}

export interface ClusterRegistry {
  clusters: ClusterSpec[];
  /** Where the Amdatu-compatible API (no cluster named) deploys; its records keep the root key layout. */
  defaultCluster: string;
  /** Environments in the file's order of first appearance (the usual promotion order). */
  environments: string[];
  /** Whether a registry file was given (else: the single cluster "default"). */
  fromFile: boolean;
}

export const SINGLE_CLUSTER_NAME = 'default';

const label = Joi.string().trim().lowercase().pattern(CLUSTER_NAME, 'DNS label');
const gateway = Joi.string().trim().pattern(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(\/[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/, 'namespace/name[/sectionName]');

const clusterSchema = Joi.object({
  name: label.required(),
  environment: label.required(),
  kubeconfig: Joi.string().trim().min(1),
  inCluster: Joi.boolean(),
  healthCheckMode: Joi.string().valid('direct', 'proxy'),
  ingressClassName: Joi.string().trim().pattern(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/),
  routing: Joi.string().trim().lowercase().valid('ingress', 'httproute', 'both'),
  gateway,
  trafficProbeUrl: Joi.string().trim().uri({ scheme: ['http', 'https'] }),
}).custom((c: { kubeconfig?: string; inCluster?: boolean }, helpers) => (Boolean(c.kubeconfig) === Boolean(c.inCluster) ? helpers.error('cluster.access') : c))
  .messages({ 'cluster.access': '{{#label}} needs exactly one of "kubeconfig" (a path) and "inCluster: true"' })
  .unknown(false);

const fileSchema = Joi.object({
  defaultCluster: label,
  clusters: Joi.array().items(clusterSchema).min(1).max(64).required()
    .unique('name').messages({ 'array.unique': 'cluster names must be unique ({{#value.name}} appears twice)' }),
}).unknown(false);

/** Reads the registry named by the configuration; throws ConfigError naming every problem. */
export function loadClusterRegistry(config: Config, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): ClusterRegistry {
  if (!config.clustersFile) return singleCluster(config);
  const path = config.clustersFile;
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    throw new ConfigError([`CUTOVER_CLUSTERS_FILE=${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new ConfigError([`CUTOVER_CLUSTERS_FILE=${path}: not YAML or JSON (${(err as Error).message.split('\n')[0]})`]);
  }
  return registryFrom(raw, config, `CUTOVER_CLUSTERS_FILE=${path}`);
}

/** Validates a parsed registry; `where` prefixes every problem. */
export function registryFrom(raw: unknown, config: Config, where: string): ClusterRegistry {
  const { value, error } = fileSchema.validate(raw, { abortEarly: false, convert: true });
  if (error) throw new ConfigError(error.details.map((d) => `${where}: ${d.message}`));
  const file = value as { defaultCluster?: string; clusters: Array<Partial<ClusterSpec> & { name: string; environment: string }> };
  const clusters: ClusterSpec[] = file.clusters.map((c) => ({
    name: c.name,
    environment: c.environment,
    ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}),
    inCluster: c.inCluster === true,
    healthCheckMode: c.healthCheckMode ?? config.healthCheckMode,
    routing: c.routing ?? config.routing,
    ...withDefault('ingressClassName', c.ingressClassName, config.ingressClassName),
    ...withDefault('gateway', c.gateway, config.gateway),
    ...withDefault('trafficProbeUrl', c.trafficProbeUrl, config.trafficProbeUrl),
  }));
  const inCluster = clusters.filter((c) => c.inCluster);
  if (inCluster.length > 1) throw new ConfigError([`${where}: only one cluster can be "inCluster" (${inCluster.map((c) => c.name).join(', ')})`]);
  const defaultCluster = file.defaultCluster ?? clusters[0]!.name;
  if (!clusters.some((c) => c.name === defaultCluster)) {
    throw new ConfigError([`${where}: defaultCluster "${defaultCluster}" is not one of the clusters (${clusters.map((c) => c.name).join(', ')})`]);
  }
  const environments = [...new Set(clusters.map((c) => c.environment))];
  return { clusters, defaultCluster, environments, fromFile: true };
}

function withDefault<K extends string>(key: K, own: string | undefined, fallback: string | undefined): Partial<Record<K, string>> {
  const v = own ?? fallback;
  return v ? ({ [key]: v } as Record<K, string>) : {};
}

function singleCluster(config: Config): ClusterRegistry {
  const spec: ClusterSpec = {
    name: SINGLE_CLUSTER_NAME,
    environment: SINGLE_CLUSTER_NAME,
    ...(config.kubeconfig ? { kubeconfig: config.kubeconfig } : {}),
    inCluster: !config.kubeconfig,
    healthCheckMode: config.healthCheckMode,
    routing: config.routing,
    ...withDefault('ingressClassName', undefined, config.ingressClassName),
    ...withDefault('gateway', undefined, config.gateway),
    ...withDefault('trafficProbeUrl', undefined, config.trafficProbeUrl),
  };
  return { clusters: [spec], defaultCluster: spec.name, environments: [spec.environment], fromFile: false };
}

/** The key scope of a cluster's records: "" for the default cluster (the original layout). */
export function clusterScope(registry: ClusterRegistry, name: string): string {
  return name === registry.defaultCluster ? '' : `clusters/${name}/`;
}
