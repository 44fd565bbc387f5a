import { StoreDataError, StoreUnavailableError, whileUnavailable } from '../store/kv.js';
import { Deadline, sleep } from '../lib/deadline.js';
import type { RunContext } from './context.js';
import { WorkInterrupted } from './errors.js';
import { Journal } from './journal.js';
import { writeFailure } from './outcome.js';
import { removeVersion } from './workload.js';

/**
 * After a switch: the replaced version keeps running for the drain delay (counted from
 * convergence: when requests reached the new version), then its workload and versioned Service are removed and its record becomes
 * UNDEPLOYED — in the same transaction that removes the work item, so the next deployment of the
 * app starts only after the drain and at most two versions ever run. The removal is guarded: a
 * version that any traffic target points at is never removed.
 */
export async function drainReplaced(ctx: RunContext): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const old = record.replaces ? await loadReplaced(ctx, record.namespace, record.replaces) : undefined;
  if (!old || old.value.replacedBy !== record.id || old.value.status !== 'UNDEPLOYING') {
    await deps.store.dequeue(record.namespace, record.appName, ctx.workId, ctx.ownership.fence);
    return;
  }
  const oldJournal = new Journal(old, deps.store, deps.bus, ctx.log, { signal: ctx.ownership.signal, fence: ctx.ownership.fence }, deps.now);
  const drainS = record.descriptor.drainSeconds ?? deps.config.defaultDrainSeconds;
  // The drain counts from when traffic had moved (convergence), not from the write that moved it.
  const startedAt = Date.parse(record.times.converged ?? '') || Date.parse(old.value.times.drainStarted ?? '') || Date.now();
  const remaining = Math.max(0, startedAt + drainS * 1000 - Date.now());
  if (remaining > 0 && old.value.step === 'draining') await oldJournal.line(`Draining for ${Math.round(remaining / 1000)} s before removing version ${old.value.version}`);
  await sleep(remaining, ctx.ownership.signal).catch(() => {
    throw new WorkInterrupted('stopped while draining');
  });
  const deadline = Deadline.at(Date.parse(old.value.deadline ?? '') || Date.now() + deps.config.defaultDeadlineSeconds * 1000, ctx.ownership.signal);
  try {
    for (const target of deps.traffic) {
      const pointer = await target.pointer(record.descriptor, ctx.cluster, deadline.signal);
      if (pointer?.version === old.value.version) {
        await writeFailure(oldJournal, `not removed: ${target.name} points at version ${old.value.version} again (changed outside cutover)`, [
          `${target.name} points at version ${old.value.version}; it keeps running and needs a look`,
        ], { dequeue: ctx.workId, cleanupIncomplete: true, now: deps.now });
        return;
      }
    }
    await deps.failpoints.hit('before-drain-removal', deadline.signal);
    if (old.value.step !== 'removing') await oldJournal.update((x) => ({ ...x, step: 'removing', owner: deps.replicaId }));
    const removed = await removeVersion(deps, ctx.cluster, old.value, deadline.signal);
    await oldJournal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: deps.now().toISOString() } }), [
      removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing left to remove', `Version ${old.value.version} undeployed (replaced by ${record.id})`,
    ], { final: true, dequeue: ctx.workId });
  } catch (err) {
    if (err instanceof WorkInterrupted || ctx.ownership.signal.aborted) throw err instanceof WorkInterrupted ? err : new WorkInterrupted('stopped while draining');
    if (err instanceof StoreUnavailableError && !deadline.expired) throw err; // transient: run again, resume
    const why = deadline.expired ? `the drain's deadline passed` : (err as Error).message;
    await writeFailure(oldJournal, `removing the replaced version failed: ${why}`, [], { dequeue: ctx.workId, cleanupIncomplete: true, now: deps.now });
  } finally {
    deadline.clear();
  }
}

async function loadReplaced(ctx: RunContext, namespace: string, id: string) {
  try {
    return await whileUnavailable(() => ctx.deps.store.get(namespace, id), ctx.ownership.signal);
  } catch (err) {
    if (!(err instanceof StoreDataError)) throw err;
    ctx.deps.onUnreadable(err.key, 'the replaced deployment of a drain');
    return undefined;
  }
}
