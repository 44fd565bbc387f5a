/**
 * The Kubernetes resources cutover works with, as data: where each lives in the API. Cluster
 * access, RBAC and the reconciler are written against this table, so a new traffic target adds
 * its kinds here and nothing switches over kinds anywhere else.
 */
export interface Resource {
  kind: string;
  /** API group; '' for the core group. */
  group: string;
  version: string;
  plural: string;
  /** Served only when a CRD or an optional API is installed (a 404 on the collection means "not here"). */
  optional?: boolean;
}

export const RESOURCES = {
  Deployment: { kind: 'Deployment', group: 'apps', version: 'v1', plural: 'deployments' },
  ReplicationController: { kind: 'ReplicationController', group: '', version: 'v1', plural: 'replicationcontrollers' },
  Service: { kind: 'Service', group: '', version: 'v1', plural: 'services' },
  Pod: { kind: 'Pod', group: '', version: 'v1', plural: 'pods' },
  Secret: { kind: 'Secret', group: '', version: 'v1', plural: 'secrets' },
  EndpointSlice: { kind: 'EndpointSlice', group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices' },
  Ingress: { kind: 'Ingress', group: 'networking.k8s.io', version: 'v1', plural: 'ingresses' },
  HTTPRoute: { kind: 'HTTPRoute', group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', optional: true },
  Middleware: { kind: 'Middleware', group: 'traefik.io', version: 'v1alpha1', plural: 'middlewares', optional: true },
} as const satisfies Record<string, Resource>;

export type Kind = keyof typeof RESOURCES;

export function resourceOf(kind: Kind): Resource {
  return RESOURCES[kind];
}

export function apiVersionOf(kind: Kind): string {
  const r = RESOURCES[kind];
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** The REST path of a namespaced collection, or of one object in it. */
export function resourcePath(kind: Kind, namespace: string, name?: string): string {
  const r = RESOURCES[kind];
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  return `${base}/namespaces/${encodeURIComponent(namespace)}/${r.plural}${name !== undefined ? `/${encodeURIComponent(name)}` : ''}`;
}

/** What cutover may do with a resource; the RBAC manifests must grant exactly these (test/unit/k8s-rbac.test.ts). */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete';

export interface Permission {
  group: string;
  resource: string;
  verbs: Verb[];
}
