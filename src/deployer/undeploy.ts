import { StoreUnavailableError, whileUnavailable } from '../store/kv.js';
import type { QueueItem } from '../domain/deployment.js';
import { Deadline } from '../lib/deadline.js';
import { trafficContext, type RunContext } from './context.js';
import { WorkInterrupted } from './errors.js';
import { writeFailure } from './outcome.js';
import type { TrafficContext } from './traffic/index.js';
import { removeVersion } from './workload.js';

/**
 * Takes a live deployment out of service: it stops being the app's live deployment (record and
 * live pointer in one transaction), the traffic targets that still point at its version are
 * removed (never ones pointing at a newer version), then its versioned objects, and the record
 * becomes UNDEPLOYED. An undeploy of anything but a live (or half-undeployed) record changes
 * nothing in the cluster and says so.
 */
export async function runUndeploy(ctx: RunContext, item: QueueItem): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const resumed = record.status === 'UNDEPLOYING' && record.step === 'removing' && !record.replacedBy;
  if (record.status !== 'DEPLOYED' && !resumed) {
    const why = record.replacedBy ? `it was replaced by deployment ${record.replacedBy}` : `its status is ${record.status}`;
    await journal.update((x) => x, [`Undeploy requested, but nothing to do: ${why}. Nothing in the cluster was changed.`], { dequeue: item.workId, final: true });
    if ((item.deleteRecord || record.deleteWhenUndeployed) && (record.status === 'FAILURE' || record.status === 'UNDEPLOYED')) {
      await deps.store.delete(record.namespace, record.appName, record.id);
    }
    return;
  }
  const deadlineMs = deps.config.defaultDeadlineSeconds * 1000;
  if (!resumed) {
    const live = await whileUnavailable(() => deps.store.live(record.namespace, record.appName), ctx.ownership.signal);
    await journal.update((x) => ({
      ...x, status: 'UNDEPLOYING', step: 'removing', owner: deps.replicaId, deadline: new Date(Date.now() + deadlineMs).toISOString(),
    }), [`Undeploying version ${record.version} of ${record.appName}`], live?.deploymentId === record.id ? { live: { expectedRevision: live.revision, next: null } } : {});
  } else {
    await journal.update((x) => ({ ...x, owner: deps.replicaId }), [`Resuming the undeploy of version ${record.version} on replica ${deps.replicaId}`]);
  }
  const deadline = Deadline.at(Date.parse(journal.record.deadline ?? '') || Date.now() + deadlineMs, ctx.ownership.signal);
  try {
    await deps.failpoints.hit('before-undeploy-removal', deadline.signal);
    const d = record.descriptor;
    const traffic = trafficContext(ctx, d, record.version, record.id, deadline.signal, (line) => journal.line(line));
    for (const target of [...deps.traffic].reverse()) {
      const pointer = await target.pointer(d, ctx.cluster, deadline.signal);
      if (!pointer) continue;
      if (pointer.version === record.version || pointer.version === undefined) await target.remove(traffic);
      else await journal.line(`${target.name} points at version ${pointer.version}; left alone`);
    }
    const removed = await removeVersion(deps, ctx.cluster, record, deadline.signal);
    if (removed.length > 0) await journal.line(`Removed ${removed.join(', ')}`);
    await journal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: deps.now().toISOString() } }), [
      `Deployment ${record.id} undeployed`,
    ], { dequeue: item.workId, final: true });
    if (item.deleteRecord || record.deleteWhenUndeployed) await deps.store.delete(record.namespace, record.appName, record.id);
  } catch (err) {
    if (err instanceof WorkInterrupted || ctx.ownership.signal.aborted) throw err instanceof WorkInterrupted ? err : new WorkInterrupted('stopped during an undeploy');
    if (err instanceof StoreUnavailableError && !deadline.expired) throw err; // transient: run again, resume
    const why = deadline.expired ? 'its deadline passed' : (err as Error).message;
    await writeFailure(journal, `undeploy failed: ${why}`, [`Undeploy failed: ${why}`], { dequeue: item.workId, cleanupIncomplete: true, now: deps.now });
  } finally {
    deadline.clear();
  }
}
