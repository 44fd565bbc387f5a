import { versionedName } from '../domain/names.js';
import type { DeploymentRecord } from '../domain/deployment.js';
import { Deadline } from '../lib/deadline.js';
import { whileUnavailable } from '../store/kv.js';
import type { Cluster, Kind } from './cluster.js';
import { trafficContext, type EngineDeps, type RunContext } from './context.js';
import { WorkInterrupted } from './errors.js';
import { carriesDeployment } from './labels.js';
import { writeFailure } from './outcome.js';
import type { TrafficContext } from './traffic/index.js';
import { WORKLOAD_KINDS, versionedExtraNames, workloadExists } from './workload.js';

/**
 * The failure path of a deployment (invariant I2): everything goes back to how it was, touching
 * only what carries this deployment's id. First traffic: a target this deployment pointed
 * somewhere (possible only after a crash or a failure mid-switch) goes back to the deployment
 * that was live before, or — on a first deployment — is removed. Then, only if all traffic is
 * back, the objects this deployment created are removed: while any target may still point at the
 * new version, its pods stay. FAILURE is written last (by the one writer), with the work item's
 * removal and, when something is left, a reconcile request for the app's owner.
 *
 * The step `rolling-back` and the reason are stored first, so an owner that takes over resumes
 * the rollback rather than the deployment.
 */
export async function rollback(ctx: RunContext, reason: string): Promise<void> {
  const { journal, deps } = ctx;
  if (journal.record.step !== 'rolling-back') {
    await journal.update((r) => ({ ...r, step: 'rolling-back', failureReason: reason, owner: deps.replicaId }), [`Deployment failed: ${reason}; rolling back`]);
  }
  const record = journal.record;
  const bound = Deadline.after(deps.config.cleanupTimeoutSeconds * 1000, ctx.ownership.signal);
  const lines: string[] = [];
  let trafficBack = true;
  let removedAll = true;
  try {
    try {
      lines.push(...await restoreTraffic(ctx.deps, ctx.cluster, record, bound.signal));
    } catch (err) {
      if (err instanceof WorkInterrupted) throw err;
      trafficBack = false;
      lines.push(`Could not put traffic back: ${(err as Error).message}`);
    }
    if (trafficBack) {
      const removed: string[] = [];
      for (const { kind, name } of [...ownObjects(record), ...versionedExtraNames(deps, record.descriptor, record.version)]) {
        try {
          const existing = await ctx.cluster.get(kind, record.namespace, name, bound.signal);
          if (!existing || !carriesDeployment(existing.metadata, record.id)) continue;
          await ctx.cluster.delete(kind, record.namespace, name, bound.signal);
          removed.push(`${kind} ${name}`);
        } catch (err) {
          if (err instanceof WorkInterrupted) throw err;
          removedAll = false;
          lines.push(`Could not remove ${kind} ${name}: ${(err as Error).message}`);
        }
      }
      lines.push(removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing of this deployment to remove');
    } else {
      lines.push(`The new version's objects stay until traffic is back on the version before it`);
    }
  } finally {
    bound.clear();
  }
  if (ctx.ownership.signal.aborted) throw new WorkInterrupted('stopped during the rollback; the next owner resumes it');
  lines.push(record.OldVersion ? `Version ${record.OldVersion} keeps running` : 'No other version was running');
  await writeFailure(journal, reason, lines, { dequeue: ctx.workId, cleanupIncomplete: !(trafficBack && removedAll), now: deps.now });
}

/**
 * Every traffic target that carries this deployment's id goes back to the deployment that was
 * live before (its own descriptor copy, version and id), or is removed when there was none (or
 * its version is gone). Targets pointed elsewhere by anyone else are not touched. Also used by
 * the reconciler for a FAILURE whose rollback could not put traffic back.
 */
export async function restoreTraffic(deps: EngineDeps, cluster: Cluster, record: DeploymentRecord, signal: AbortSignal): Promise<string[]> {
  const lines: string[] = [];
  const log = async (l: string) => { lines.push(l); };
  const own = trafficContext({ deps, cluster }, record.descriptor, record.version, record.id, signal, log);
  let previous: TrafficContext | undefined;
  let previousLoaded = false;
  for (const target of [...deps.traffic].reverse()) {
    const pointer = await target.pointer(record.descriptor, cluster, signal);
    if (!pointer || pointer.deploymentId !== record.id) continue;
    if (!previousLoaded) {
      previous = await previousTraffic(deps, cluster, record, signal, log);
      previousLoaded = true;
    }
    if (previous) {
      await target.switchTo(previous);
      lines.push(`${target.name} switched back to version ${previous.version}`);
    } else {
      await target.removeOwn(own);
    }
  }
  return lines;
}

async function previousTraffic(deps: EngineDeps, cluster: Cluster, record: DeploymentRecord, signal: AbortSignal, log: (l: string) => Promise<void>): Promise<TrafficContext | undefined> {
  if (!record.replaces || !record.OldVersion) return undefined;
  if (!(await workloadExists(cluster, record.namespace, record.appName, record.OldVersion, signal))) return undefined;
  const found = await whileUnavailable(() => deps.store.get(record.namespace, record.replaces!), signal).catch(() => undefined);
  const descriptor = found?.value.descriptor ?? record.descriptor;
  return trafficContext({ deps, cluster }, descriptor, record.OldVersion, record.replaces, signal, log);
}

/** What a deployment may have created (each is removed only if it carries the deployment's id). */
function ownObjects(record: DeploymentRecord): Array<{ kind: Kind; name: string }> {
  const name = versionedName(record.appName, record.version);
  return [
    ...WORKLOAD_KINDS.map((kind) => ({ kind, name })),
    { kind: 'Service' as Kind, name },
    // A first deployment's stable Service (placeholder, or switched by it and not put back).
    { kind: 'Service' as Kind, name: record.appName },
  ];
}
