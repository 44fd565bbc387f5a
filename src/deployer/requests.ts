import { randomUUID } from 'node:crypto';
import type { ControllerKind, Descriptor, Versioned } from '../domain/types.js';
import type { DeploymentRecord, QueueItem } from '../domain/deployment.js';
import { AUTO_VERSION, isNumericVersion } from '../domain/names.js';
import { NotFoundError, RevisionConflictError, StateConflictError } from '../domain/errors.js';
import type { DescriptorStore } from '../store/descriptors.js';
import type { DeploymentStore, EventInput, PreparedCreate } from '../store/deployments.js';

export interface DeploymentRequestsOptions {
  descriptors: DescriptorStore;
  deployments: DeploymentStore;
  now: () => Date;
  defaultDeadlineSeconds: number;
  /** The workload kind of a deployment whose descriptor names none (CUTOVER_DEFAULT_CONTROLLER_KIND). */
  defaultControllerKind: ControllerKind;
  /**
   * The highest numeric version of the app running in the cluster (e.g. left by the Amdatu
   * deployer), asked only for an app's first "#" deployment, so versions never restart at 1.
   */
  highestVersionInCluster?: (namespace: string, appName: string) => Promise<number>;
  /** The cluster these requests deploy to, stamped on each record (absent: records name none). */
  cluster?: string;
  /** Told about every deployment stored here (published on the bus); must not throw or block. Webhooks' "requested" is written in create()'s transaction instead. */
  onRequested?: (record: DeploymentRecord, revision: string) => void;
}

/** One cluster's part of a release, prepared for the release's single transaction. */
export interface PlannedDeployment {
  record: DeploymentRecord;
  prepared: PreparedCreate;
}

/** What a deployment that is part of a release carries beyond its descriptor. */
export interface ReleaseMembership {
  /** Already resolved (a release resolves "#" once for all its clusters). */
  version: string;
  release: string;
  promotedFrom?: { release: string; environment: string };
  /** Extra first log lines (e.g. which release and clusters). */
  note?: string;
}

export type UndeployOutcome =
  | { kind: 'queued'; record: DeploymentRecord; cancelled?: boolean }
  | { kind: 'deleted'; record: DeploymentRecord }
  | { kind: 'nothing'; record: DeploymentRecord; reason: string };

/**
 * What a rollback request did: 'instant' — queued a switch back to `target` (still draining; it
 * becomes DEPLOYED again); 'redeploy' — `target` had been drained, so `record` redeploys its copy.
 */
export type RollbackOutcome =
  | { kind: 'instant'; live: DeploymentRecord; target: DeploymentRecord; already?: boolean }
  | { kind: 'redeploy'; live: DeploymentRecord; target: DeploymentRecord; record: DeploymentRecord };

/** Why a record cannot be cancelled, or undefined when it can (in progress, before its switch). */
export function cancelRefusal(record: DeploymentRecord): string | undefined {
  if (record.status !== 'DEPLOYING') return `it is ${record.status}; only a deployment in progress can be cancelled`;
  if (record.step === 'switching-traffic') return 'traffic is already being switched to it; undeploy it, or roll back, once it is DEPLOYED';
  if (record.step === 'rolling-back') return 'it has failed and is being rolled back already';
  return undefined;
}

/**
 * What the deployments API asks for, turned into stored records and queued work. Nothing here
 * touches Kubernetes: the scheduler picks the work up (on this or any other replica).
 */
export class DeploymentRequests {
  constructor(private readonly o: DeploymentRequestsOptions) {}

  /** Starts a deployment of a stored descriptor. */
  async deployDescriptor(namespace: string, descriptorId: string): Promise<DeploymentRecord> {
    const found = await this.o.descriptors.get(namespace, descriptorId);
    if (!found) throw new NotFoundError(`descriptor ${descriptorId} not found in namespace ${namespace}`);
    return this.start(found.value, {});
  }

  /** A new deployment from an earlier record's descriptor copy (the rollback path). */
  async redeploy(namespace: string, deploymentId: string): Promise<DeploymentRecord> {
    const found = await this.o.deployments.get(namespace, deploymentId);
    if (!found) throw new NotFoundError(`deployment ${deploymentId} not found in namespace ${namespace}`);
    return this.start(found.value.descriptor, { redeployOf: deploymentId });
  }

  /** The descriptor as a deployment keeps it: the server's default kind is written in, so a later change of it never changes this version. */
  copyOf(stored: Descriptor): Descriptor {
    return { ...stored, controllerKind: stored.controllerKind ?? this.o.defaultControllerKind };
  }

  /** The highest version of the app running in this cluster that another deployer left (0: none or unknown). */
  highestVersionInCluster(namespace: string, appName: string): Promise<number> {
    return this.o.highestVersionInCluster?.(namespace, appName) ?? Promise.resolve(0);
  }

  /**
   * Creates the record and its queue item in one transaction, resolving "#" to the next number
   * after the highest version ever used for the app (the counter moves in the same transaction,
   * so concurrent requests get distinct versions in arrival order).
   */
  private async start(stored: Descriptor, extra: { redeployOf?: string }): Promise<DeploymentRecord> {
    const { deployments } = this.o;
    const descriptor = this.copyOf(stored);
    for (let attempt = 0; attempt < 20; attempt++) {
      const counter = await deployments.versionCounter(descriptor.namespace, descriptor.appName);
      let version: string;
      let nextCounter: number | undefined;
      if (descriptor.newVersion === AUTO_VERSION) {
        const floor = counter.revision === '0' ? await this.highestVersionInCluster(descriptor.namespace, descriptor.appName) : 0;
        version = String(Math.max(counter.value, floor) + 1);
        nextCounter = Number(version);
      } else {
        version = descriptor.newVersion;
        if (isNumericVersion(version) && Number(version) > counter.value) nextCounter = Number(version);
      }
      const planned = await this.plan(descriptor, version, extra);
      try {
        const created = await deployments.create({
          ...planned,
          ...(nextCounter !== undefined ? { versionCounter: { value: nextCounter, expectedRevision: counter.revision } } : {}),
        });
        this.o.onRequested?.(created.value, created.revision);
        return created.value;
      } catch (err) {
        if (err instanceof RevisionConflictError) continue; // another request took that number; take the next
        throw err;
      }
    }
    throw new StateConflictError(`too many concurrent deployments of ${descriptor.appName}; retry`);
  }

  /** This cluster's deployment of a release, prepared for the release's transaction (the caller moves the version counter). */
  async planMember(descriptor: Descriptor, membership: ReleaseMembership): Promise<PlannedDeployment> {
    const planned = await this.plan(this.copyOf(descriptor), membership.version, membership);
    return { record: planned.record, prepared: this.o.deployments.prepareCreate(planned) };
  }

  /**
   * Re-creates the live version of an app on this cluster, which lost its objects (`cutover sync`):
   * a deployment of the live record's descriptor copy under the same version, which supersedes it.
   */
  async restore(live: DeploymentRecord, by: string): Promise<DeploymentRecord> {
    const planned = await this.plan(live.descriptor, live.version, {
      note: `Rebuild requested by ${by}: re-creates version ${live.version} (deployment ${live.id}), whose objects are missing in the cluster`,
    });
    const record: DeploymentRecord = { ...planned.record, restores: live.id, ...(live.release ? { release: live.release } : {}) };
    const created = await this.o.deployments.create({ ...planned, record });
    this.o.onRequested?.(created.value, created.revision);
    return created.value;
  }

  /** Tells the bus about a record created by a release's transaction. */
  created(record: DeploymentRecord, revision: string): void {
    this.o.onRequested?.(record, revision);
  }

  private async plan(descriptor: Descriptor, version: string, extra: { redeployOf?: string } & Partial<ReleaseMembership>) {
    const at = this.o.now();
    const id = randomUUID();
    const deadlineSeconds = descriptor.deadlineSeconds ?? this.o.defaultDeadlineSeconds;
    const where = this.o.cluster ? ` in cluster ${this.o.cluster}` : '';
    const record: DeploymentRecord = {
      id, created: at.toISOString(), lastModified: at.toISOString(),
      namespace: descriptor.namespace, appName: descriptor.appName, version,
      status: 'DEPLOYING', step: 'queued', descriptor, OldVersion: '',
      times: { queued: at.toISOString() },
      deadline: new Date(at.getTime() + deadlineSeconds * 1000).toISOString(),
      ...(this.o.cluster ? { cluster: this.o.cluster } : {}),
      ...(extra.release ? { release: extra.release } : {}),
      ...(extra.promotedFrom ? { promotedFrom: extra.promotedFrom } : {}),
      ...(extra.redeployOf ? { redeployOf: extra.redeployOf } : {}),
    };
    const ahead = await this.o.deployments.queue(descriptor.namespace, descriptor.appName);
    const events: EventInput[] = [
      { type: 'log', message: `Deployment ${id} of ${descriptor.appName} version ${version}${where} requested${extra.redeployOf ? ` (redeploy of ${extra.redeployOf})` : ''}; deadline ${deadlineSeconds} s` },
      ...(extra.note ? [{ type: 'log' as const, message: extra.note }] : []),
      { type: 'status', status: 'DEPLOYING', step: 'queued' },
    ];
    if (ahead.length > 0) {
      events.push({ type: 'log', message: `Queued behind ${ahead.length} earlier operation(s) on ${descriptor.appName}: ${ahead.map((q) => `${q.kind} ${q.deploymentId}`).join(', ')}` });
    }
    const queueItem: QueueItem = { workId: id, kind: 'deploy', deploymentId: id, enqueued: at.toISOString() };
    return { record, queueItem, events };
  }

  /**
   * Asks the deployment in progress to stop at its next safe point (before its switch): it then
   * removes what it created and ends FAILURE "cancelled by <by>"; the running version is never
   * touched. Refused (StateConflictError) once traffic is being switched to it, or when it is not
   * in progress. Returns the record as it was when the request was stored.
   */
  async cancel(namespace: string, deploymentId: string, by: string): Promise<DeploymentRecord> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const found = await this.o.deployments.get(namespace, deploymentId);
      if (!found) throw new NotFoundError(`deployment ${deploymentId} not found in namespace ${namespace}`);
      const refusal = cancelRefusal(found.value);
      if (refusal) throw new StateConflictError(`deployment ${deploymentId} cannot be cancelled: ${refusal}`);
      if (await this.o.deployments.requestCancel(namespace, deploymentId, by, found.revision)) return found.value;
      // The record moved on (a step began): look again.
    }
    throw new StateConflictError(`deployment ${deploymentId} changes too fast to cancel; retry`);
  }

  /**
   * POST /deployments/{id}/rollback: rolls the live deployment back to the one it replaced.
   * While that one is still draining (its pods run), an instant rollback is queued for the app's
   * owner: traffic goes back in one write per target, no pod is created ('instant'; the record to
   * follow is the replaced one, which becomes DEPLOYED again). After the drain, the replaced
   * record's descriptor copy is redeployed as a new deployment, like PUT /deployments/{id}
   * ('redeploy'). Refused (StateConflictError) for a record that is not the live one, one already
   * being rolled back, or one that replaced nothing.
   */
  async rollback(namespace: string, deploymentId: string, by: string): Promise<RollbackOutcome> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const found = await this.o.deployments.get(namespace, deploymentId);
      if (!found) throw new NotFoundError(`deployment ${deploymentId} not found in namespace ${namespace}`);
      const live = found.value;
      if (live.status !== 'DEPLOYED') throw new StateConflictError(`deployment ${deploymentId} is ${live.status}; only the live (DEPLOYED) deployment can be rolled back`);
      if (live.step === 'rolling-back') throw new StateConflictError(`deployment ${deploymentId} is being rolled back already`);
      if (!live.replaces) throw new StateConflictError(`deployment ${deploymentId} replaced no earlier deployment; there is nothing to roll back to (redeploy an earlier record with PUT /deployments/{id})`);
      const previous = await this.o.deployments.get(namespace, live.replaces);
      if (!previous) throw new StateConflictError(`the deployment ${deploymentId} replaced (${live.replaces}) no longer exists; redeploy an earlier record with PUT /deployments/{id}`);
      const old = previous.value;
      if (old.status === 'UNDEPLOYING' && old.step === 'draining' && old.replacedBy === live.id) {
        const outcome = await this.o.deployments.requestRollback(live, old.id, previous.revision, by);
        if (outcome === 'moved') continue; // the drain moved on meanwhile: decide again
        if (outcome === 'queued') {
          const line = `Instant rollback to version ${old.version} requested by ${by}: traffic switches back to it (it is still draining)`;
          await Promise.all([this.o.deployments.appendLog(namespace, live.id, line), this.o.deployments.appendLog(namespace, old.id, line)]);
        }
        return { kind: 'instant', live, target: old, ...(outcome === 'already' ? { already: true } : {}) };
      }
      return { kind: 'redeploy', live, target: old, record: await this.start(old.descriptor, { redeployOf: old.id }) };
    }
    throw new StateConflictError(`deployment ${deploymentId} changes too fast to roll back; retry`);
  }

  /**
   * DELETE /deployments/{id}: queues an undeploy of a DEPLOYED (or still deploying) record, or
   * deletes a finished record when asked to.
   */
  async undeploy(namespace: string, deploymentId: string, deleteRecord: boolean, by = 'anonymous'): Promise<UndeployOutcome> {
    const found = await this.o.deployments.get(namespace, deploymentId);
    if (!found) throw new NotFoundError(`deployment ${deploymentId} not found in namespace ${namespace}`);
    const record = found.value;
    if (record.status === 'DEPLOYING' && !cancelRefusal(record)) {
      // Not wanted any more: stop it before it goes live. The queued undeploy (and delete) runs after
      // it ends, and removes it should the cancel come too late.
      const cancelled = await this.o.deployments.requestCancel(namespace, deploymentId, by, found.revision);
      await this.queueUndeploy(record, deleteRecord);
      return { kind: 'queued', record, ...(cancelled ? { cancelled: true } : {}) };
    }
    if (record.status === 'DEPLOYED' || record.status === 'DEPLOYING') {
      await this.queueUndeploy(record, deleteRecord);
      return { kind: 'queued', record };
    }
    if (record.status === 'UNDEPLOYING') {
      if (deleteRecord) throw new StateConflictError(`deployment ${deploymentId} is being undeployed; delete it once it is UNDEPLOYED`);
      return { kind: 'nothing', record, reason: 'the deployment is already being undeployed' };
    }
    if (deleteRecord) {
      await this.deleteFinished(found);
      return { kind: 'deleted', record };
    }
    return { kind: 'nothing', record, reason: `the deployment is ${record.status}; nothing to undeploy` };
  }

  private async queueUndeploy(record: DeploymentRecord, deleteRecord: boolean): Promise<void> {
    const workId = randomUUID();
    const ahead = await this.o.deployments.queue(record.namespace, record.appName);
    await this.o.deployments.enqueue(record.namespace, record.appName, {
      workId, kind: 'undeploy', deploymentId: record.id, enqueued: this.o.now().toISOString(), ...(deleteRecord ? { deleteRecord } : {}),
    });
    const behind = ahead.length > 0 ? ` behind ${ahead.length} earlier operation(s)` : '';
    await this.o.deployments.appendLog(record.namespace, record.id, `Undeploy requested${deleteRecord ? ' (the record is deleted afterwards)' : ''}; queued${behind}`);
  }

  private async deleteFinished(found: Versioned<DeploymentRecord>): Promise<void> {
    const r = found.value;
    const pending = await this.o.deployments.pendingWorkOf(r.namespace, r.appName, r.id);
    if (pending.length > 0) throw new StateConflictError(`deployment ${r.id} still has pending work; retry when it is done`);
    await this.o.deployments.delete(r.namespace, r.appName, r.id);
  }

  /**
   * DELETE /deployments/?appname=APP: deletes the app's finished records (FAILURE, UNDEPLOYED);
   * with `undeploy`, also queues an undeploy of the DEPLOYED one, which deletes it when done.
   */
  async deleteApp(namespace: string, appName: string, undeploy: boolean): Promise<{ deleted: number; undeploying?: DeploymentRecord }> {
    const all = await this.o.deployments.list(namespace, appName);
    if (all.length === 0) throw new NotFoundError(`no deployments of app "${appName}" in namespace ${namespace}`);
    let deleted = 0;
    let undeploying: DeploymentRecord | undefined;
    for (const found of all) {
      const r = found.value;
      if (r.status === 'FAILURE' || r.status === 'UNDEPLOYED') {
        const pending = await this.o.deployments.pendingWorkOf(namespace, appName, r.id);
        if (pending.length === 0) {
          await this.o.deployments.delete(namespace, appName, r.id);
          deleted++;
        }
      } else if (r.status === 'DEPLOYED' && undeploy && !undeploying) {
        await this.queueUndeploy(r, true);
        undeploying = r;
      }
    }
    return { deleted, ...(undeploying ? { undeploying } : {}) };
  }
}
