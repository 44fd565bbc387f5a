import { RESOURCES, type Kind, type Permission, type Verb } from '../kube/resources.js';
import type { TrafficTarget } from './traffic/index.js';
import { WORKLOAD_KINDS } from './workload.js';

const MANAGE: Verb[] = ['get', 'list', 'create', 'update', 'delete'];

/**
 * Everything cutover does in a cluster, as RBAC rules: the versioned objects it manages, the pods it
 * watches, what it reads, and the kinds its traffic targets declare. k8s/rbac.yaml must grant
 * exactly this (test/unit/k8s-rbac.test.ts), so a new target cannot ship without its permissions.
 */
export function requiredPermissions(targets: readonly TrafficTarget[], options: { podProxy: boolean }): Permission[] {
  const rules = new Map<string, Permission>();
  const grant = (kind: Kind | { group: string; resource: string }, verbs: Verb[]) => {
    const { group, resource } = typeof kind === 'string' ? { group: RESOURCES[kind].group, resource: RESOURCES[kind].plural } : kind;
    const key = `${group}/${resource}`;
    const rule = rules.get(key) ?? { group, resource, verbs: [] };
    for (const v of verbs) if (!rule.verbs.includes(v)) rule.verbs.push(v);
    rules.set(key, rule);
  };
  for (const kind of [...WORKLOAD_KINDS, 'Service' as const]) grant(kind, MANAGE);
  grant('Pod', ['list', 'watch']);
  // create: the probe check POSTs (the original's method) through the proxy.
  if (options.podProxy) grant({ group: '', resource: 'pods/proxy' }, ['get', 'create']);
  grant('Secret', ['get']);
  grant('EndpointSlice', ['list']);
  for (const target of targets) for (const kind of target.kinds) grant(kind, MANAGE);
  return [...rules.values()];
}

/** The kinds of object the reconciler looks at for an app: versioned objects and every target's. */
export function managedKinds(targets: readonly TrafficTarget[]): Kind[] {
  return [...new Set<Kind>([...WORKLOAD_KINDS, 'Service', ...targets.flatMap((t) => t.kinds)])];
}
