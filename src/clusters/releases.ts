import { randomUUID } from 'node:crypto';
import type { DeploymentRecord } from '../domain/deployment.js';
import type { Descriptor } from '../domain/types.js';
import { releaseStatus, type Release, type ReleaseView } from '../domain/release.js';

export type { ReleaseView };
import { AUTO_VERSION, isNumericVersion } from '../domain/names.js';
import { NotFoundError, StateConflictError } from '../domain/errors.js';
import type { DescriptorStore } from '../store/descriptors.js';
import { MAX_TXN_OPS } from '../store/deployments.js';
import type { Guard, KvOp, KvStore } from '../store/kv.js';
import { keys } from '../store/keys.js';
import type { ReleaseStore } from '../store/releases.js';
import { pinnedDescriptor } from '../deployer/images.js';
import type { Fleet, FleetMember, Target } from './fleet.js';

export interface DeployResult {
  /** Absent for a deploy without a cluster registry (one cluster: today's behaviour). */
  release?: ReleaseView;
  records: DeploymentRecord[];
}

export interface ReleasesOptions {
  fleet: Fleet;
  /** The whole store (a release's deployments in several clusters are written in one transaction). */
  kv: KvStore;
  store: ReleaseStore;
  descriptors: DescriptorStore;
  now: () => Date;
}

/**
 * Deploys to clusters and environments, and promotes releases between environments. A release's
 * deployments — one per cluster, each run by its cluster's own engine, order and lock — and the
 * release itself are created in one etcd transaction: all of them are queued, or none.
 */
export class Releases {
  constructor(private readonly o: ReleasesOptions) {}

  /**
   * POST /deployments: a stored descriptor to the clusters the request (or else the descriptor)
   * names. Without a cluster registry this is exactly the single-cluster deploy of old.
   */
  async deployDescriptor(namespace: string, descriptorId: string, target: Target, by: string, mayChange: (environment: string) => void = () => {}): Promise<DeployResult> {
    const { fleet } = this.o;
    const found = await this.o.descriptors.get(namespace, descriptorId);
    if (!found) throw new NotFoundError(`descriptor ${descriptorId} not found in namespace ${namespace}`);
    const d = found.value;
    // The request's target wins over the descriptor's; naming either of them replaces both.
    const named = target.cluster || target.environment ? target : { cluster: d.cluster, environment: d.targetEnvironment };
    const resolved = fleet.resolve({
      ...(named.cluster ? { cluster: named.cluster } : {}),
      ...(named.environment ? { environment: named.environment } : {}),
    });
    for (const m of resolved.members) mayChange(m.spec.environment);
    if (!fleet.registry.fromFile) return { records: [await fleet.default.requests.deployDescriptor(namespace, descriptorId)] };
    return this.create(resolved.members, d, { by, descriptorId, ...(resolved.environment ? { environment: resolved.environment } : {}) });
  }

  async get(namespace: string, id: string): Promise<ReleaseView> {
    const found = await this.o.store.get(namespace, id);
    if (!found) throw new NotFoundError(`release ${id} not found in namespace ${namespace}`);
    return this.view(found.value);
  }

  async list(namespace: string, filter: { appName?: string; environment?: string; limit?: number }): Promise<ReleaseView[]> {
    const releases = await this.o.store.list(namespace, filter);
    return Promise.all(releases.slice(0, filter.limit ?? releases.length).map((r) => this.view(r)));
  }

  /**
   * Deploys what release `id` runs — the same descriptor copy, its images pinned to the digests
   * its pods ran, the same version — to every cluster of `environment` that does not run that
   * version already. Refused (409) unless the release is DEPLOYED on every one of its clusters.
   */
  async promote(namespace: string, id: string, environment: string, by: string, mayChange: (environment: string) => void = () => {}): Promise<ReleaseView> {
    const source = await this.get(namespace, id);
    const members = this.o.fleet.inEnvironment(environment);
    mayChange(environment);
    const from = source.environment ?? 'its clusters';
    if (source.status !== 'DEPLOYED') {
      const why = source.deployments.filter((d) => d.status !== 'DEPLOYED')
        .map((d) => `${d.cluster}: ${d.missing ? 'record gone' : `${d.status}${d.failureReason ? ` (${d.failureReason})` : ''}`}`).join('; ');
      throw new StateConflictError(`release ${id} (${source.appName} version ${source.version}) is ${source.status} in ${from}, not DEPLOYED on every cluster (${why}); only a DEPLOYED release can be promoted`);
    }
    if (source.environment === environment) throw new StateConflictError(`release ${id} is already in environment ${environment}`);
    const first = source.deployments[0]!;
    const record = (await this.o.fleet.member(first.cluster).deployments.get(namespace, first.deploymentId))?.value;
    if (!record) throw new StateConflictError(`the deployment record of release ${id} in cluster ${first.cluster} is gone; it cannot be promoted`);
    const lives = await Promise.all(members.map((m) => m.deployments.live(namespace, source.appName)));
    const running = members.filter((_, i) => lives[i]?.version === source.version);
    const lacking = members.filter((_, i) => lives[i]?.version !== source.version);
    if (lacking.length === 0) throw new StateConflictError(`version ${source.version} of ${source.appName} runs on every cluster of ${environment} already (${running.map((m) => m.spec.name).join(', ')}); nothing to promote`);
    const copy: Descriptor = { ...pinnedDescriptor(record.descriptor, record.images), newVersion: source.version };
    const created = await this.create(lacking, copy, {
      by, environment, version: source.version,
      promotedFrom: { release: id, environment: source.environment ?? first.cluster },
      alreadyRunning: running.map((m) => ({ cluster: m.spec.name, deploymentId: lives[members.indexOf(m)]!.deploymentId })),
    });
    return created.release!;
  }

  private async create(members: FleetMember[], descriptor: Descriptor, o: {
    by: string; environment?: string; descriptorId?: string; version?: string;
    promotedFrom?: Release['promotedFrom']; alreadyRunning?: Release['members'];
  }): Promise<DeployResult> {
    const { namespace, appName } = descriptor;
    const counterOf = members[0]!.deployments;
    for (let attempt = 0; attempt < 20; attempt++) {
      const counter = await counterOf.versionCounter(namespace, appName);
      let version: string;
      let next: number | undefined;
      if (o.version === undefined && descriptor.newVersion === AUTO_VERSION) {
        const floors = counter.revision === '0' ? await Promise.all(members.map((m) => m.requests.highestVersionInCluster(namespace, appName))) : [0];
        version = String(Math.max(counter.value, ...floors) + 1);
        next = Number(version);
      } else {
        version = o.version ?? descriptor.newVersion;
        if (isNumericVersion(version) && Number(version) > counter.value) next = Number(version);
      }
      const id = randomUUID();
      const clusters = members.map((m) => m.spec.name);
      const note = `Part of release ${id}${o.environment ? ` to environment ${o.environment}` : ''} (${clusters.length === 1 ? `cluster ${clusters[0]}` : `clusters ${clusters.join(', ')}`})` +
        (o.promotedFrom ? `, promoted from release ${o.promotedFrom.release} in ${o.promotedFrom.environment}` : '');
      const planned = await Promise.all(members.map(async (m) => ({
        member: m,
        plan: await m.requests.planMember(descriptor, { version, release: id, note, ...(o.promotedFrom ? { promotedFrom: o.promotedFrom } : {}) }),
      })));
      const release: Release = {
        id, namespace, appName, version,
        ...(o.environment ? { environment: o.environment } : {}),
        members: [...planned.map((p) => ({ cluster: p.member.spec.name, deploymentId: p.plan.record.id })), ...(o.alreadyRunning ?? [])],
        created: this.o.now().toISOString(),
        by: o.by,
        ...(o.descriptorId ? { descriptorId: o.descriptorId } : {}),
        ...(o.promotedFrom ? { promotedFrom: o.promotedFrom } : {}),
      };
      const guards: Guard[] = planned.flatMap((p) => p.member.kv.rootGuards(p.plan.prepared.guards));
      const ops: KvOp[] = [...planned.flatMap((p) => p.member.kv.rootOps(p.plan.prepared.ops)), this.o.store.putOp(release)];
      if (next !== undefined) {
        const key = keys.versionCounter(namespace, appName);
        guards.push({ key, modRevision: counter.revision });
        ops.push({ type: 'put', key, value: String(next) });
      }
      if (ops.length > MAX_TXN_OPS || guards.length > MAX_TXN_OPS) {
        throw new StateConflictError(`a release to ${clusters.length} clusters needs ${ops.length} writes in one transaction, more than etcd's ${MAX_TXN_OPS}; deploy to fewer clusters at once (or lower the number of webhook subscriptions of ${namespace})`);
      }
      const res = await this.o.kv.transact(guards, ops);
      if (!res.succeeded) continue; // another deploy took that version number: take the next
      for (const p of planned) {
        p.plan.prepared.committed();
        p.member.requests.created(p.plan.record, res.revision);
      }
      const records = planned.map((p) => p.plan.record);
      return { release: await this.view(release, records), records };
    }
    throw new StateConflictError(`too many concurrent deployments of ${appName}; retry`);
  }

  private async view(release: Release, known: DeploymentRecord[] = []): Promise<ReleaseView> {
    const records = await Promise.all(release.members.map(async (m) => {
      const k = known.find((r) => r.id === m.deploymentId);
      if (k) return k;
      let member: FleetMember;
      try {
        member = this.o.fleet.member(m.cluster);
      } catch {
        return undefined; // a cluster no longer in the registry
      }
      const record = (await member.deployments.get(release.namespace, m.deploymentId))?.value;
      // Rebuilt by `cutover sync`: the rebuild stands for it.
      if (record?.status === 'UNDEPLOYED' && record.replacedBy) {
        const by = (await member.deployments.get(release.namespace, record.replacedBy))?.value;
        if (by?.restores === record.id) return by;
      }
      return record;
    }));
    return {
      ...release,
      status: releaseStatus(records),
      deployments: release.members.map((m, i) => {
        const r = records[i];
        return r
          ? { cluster: m.cluster, deploymentId: m.deploymentId, status: r.status, step: r.step, ...(r.failureReason ? { failureReason: r.failureReason } : {}) }
          : { cluster: m.cluster, deploymentId: m.deploymentId, missing: true };
      }),
    };
  }
}
