import type { DeploymentRecord } from '../domain/deployment.js';
import type { Versioned } from '../domain/types.js';
import { InvalidRequestError } from '../domain/errors.js';
import type { Cluster } from '../deployer/cluster.js';
import type { DeploymentRequests } from '../deployer/requests.js';
import type { DeploymentStore } from '../store/deployments.js';
import type { ScopedKv } from '../store/scoped-kv.js';
import type { ClusterRegistry, ClusterSpec } from './registry.js';

/** One cluster as the API sees it: where its records live and how to ask it for work. */
export interface FleetMember {
  spec: ClusterSpec;
  /** The cluster's view of the store (its records, queues and owners). */
  kv: ScopedKv;
  cluster: Cluster;
  deployments: DeploymentStore;
  requests: DeploymentRequests;
}

/** Where a request deploys: a cluster, an environment (all its clusters), or the default cluster. */
export interface Target {
  cluster?: string;
  environment?: string;
}

/** The clusters cutover deploys to; answers "which cluster" for the API so the engine never has to. */
export class Fleet {
  private readonly byName: Map<string, FleetMember>;

  constructor(readonly registry: ClusterRegistry, members: FleetMember[]) {
    this.byName = new Map(members.map((m) => [m.spec.name, m]));
  }

  get default(): FleetMember {
    return this.byName.get(this.registry.defaultCluster)!;
  }

  all(): FleetMember[] {
    return [...this.byName.values()];
  }

  /** Whether more than one cluster is configured (records and logs then name their cluster). */
  get multi(): boolean {
    return this.byName.size > 1;
  }

  member(name: string): FleetMember {
    const m = this.byName.get(name);
    if (!m) throw new InvalidRequestError(`unknown cluster "${name}"; the clusters are: ${[...this.byName.keys()].join(', ')}`);
    return m;
  }

  inEnvironment(environment: string): FleetMember[] {
    const members = this.all().filter((m) => m.spec.environment === environment);
    if (members.length === 0) throw new InvalidRequestError(`unknown environment "${environment}"; the environments are: ${this.registry.environments.join(', ')}`);
    return members;
  }

  /** The clusters a deploy goes to; both named: the cluster must belong to the environment. */
  resolve(target: Target): { members: FleetMember[]; environment?: string } {
    if (target.cluster) {
      const m = this.member(target.cluster);
      if (target.environment && m.spec.environment !== target.environment) {
        throw new InvalidRequestError(`cluster "${target.cluster}" belongs to environment "${m.spec.environment}", not "${target.environment}"`);
      }
      return { members: [m], environment: m.spec.environment };
    }
    if (target.environment) return { members: this.inEnvironment(target.environment), environment: target.environment };
    return { members: [this.default] };
  }

  /** Finds a deployment by id in whichever cluster holds it (ids are UUIDs: at most one does). */
  async locate(namespace: string, id: string, cluster?: string): Promise<{ member: FleetMember; found: Versioned<DeploymentRecord> } | undefined> {
    const candidates = cluster ? [this.member(cluster)] : this.all();
    if (candidates.length === 1) {
      const found = await candidates[0]!.deployments.get(namespace, id);
      return found && { member: candidates[0]!, found };
    }
    const found = await Promise.all(candidates.map((m) => m.deployments.get(namespace, id)));
    const i = found.findIndex((f) => f !== undefined);
    return i < 0 ? undefined : { member: candidates[i]!, found: found[i]! };
  }

  /** Every cluster's records of a namespace (or app), newest first. */
  async list(namespace: string, appName?: string, cluster?: string): Promise<Array<Versioned<DeploymentRecord>>> {
    const members = cluster ? [this.member(cluster)] : this.all();
    const lists = await Promise.all(members.map((m) => m.deployments.list(namespace, appName)));
    if (lists.length === 1) return lists[0]!;
    return lists.flat().sort((a, b) => (a.value.created < b.value.created ? 1 : a.value.created > b.value.created ? -1 : 0));
  }
}
