import { rollbackWorkId, type QueueItem } from '../domain/deployment.js';
import { keys } from '../store/keys.js';
import { PresentKeyError } from '../store/deployments.js';
import { StoreDataError, StoreUnavailableError, whileUnavailable } from '../store/kv.js';
import { Deadline, linkSignals, sleep } from '../lib/deadline.js';
import type { RunContext } from './context.js';
import { WorkInterrupted } from './errors.js';
import { askGates } from './gates.js';
import { Journal } from './journal.js';
import { writeFailure } from './outcome.js';
import { continueRollback, requestOfItem, switchBack } from './switch-back.js';
import { removeVersion } from './workload.js';

/**
 * After a switch: the replaced version keeps running for the drain delay (counted from
 * convergence: when requests reached the new version), then its workload and versioned Service are removed and its record becomes
 * UNDEPLOYED — in the same transaction that removes the work item, so the next deployment of the
 * app starts only after the drain and at most two versions ever run. The removal is guarded: a
 * version that any traffic target points at is never removed.
 *
 * The drain window is also when the new version can still be undone instantly: the post-switch
 * checks are asked (the drain lasts until they answered), and a rollback request (a queue item
 * with a fixed key, rollbackWorkId) ends the wait at once. Either leads to switchBack, run right
 * here by the same owner. The decision to remove the replaced version is a write to its record
 * (step `removing`) guarded by the absence of that item, and the API writes the item only while
 * the replaced record is unchanged: exactly one of "removed" and "switched back" can happen.
 */
export async function drainReplaced(ctx: RunContext, replaced?: Journal): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  if (record.rolledBack) {
    await continueRollback(ctx);
    return;
  }
  // `replaced`: the replaced record's journal as the switch's commit just wrote it (no re-read).
  const handed = replaced && replaced.record.id === record.replaces ? replaced : undefined;
  const old = handed ? { value: handed.record, revision: handed.revision }
    : record.replaces ? await loadReplaced(ctx, record.namespace, record.replaces) : undefined;
  if (!old || old.value.replacedBy !== record.id || old.value.status !== 'UNDEPLOYING') {
    if (!record.replaces && record.descriptor.postSwitchChecks?.length) {
      await journal.line('Post-switch checks not asked: no earlier version runs that traffic could go back to');
    }
    await deps.store.dequeue(record.namespace, record.appName, ctx.workId, ctx.ownership.fence);
    return;
  }
  const oldJournal = handed ?? new Journal(old, deps.store, deps.bus, ctx.log, { signal: ctx.ownership.signal, fence: ctx.ownership.fence }, deps.now);
  const drainS = record.descriptor.drainSeconds ?? deps.config.defaultDrainSeconds;
  // The drain counts from when traffic had moved (convergence), not from the write that moved it.
  const startedAt = Date.parse(record.times.converged ?? '') || Date.parse(old.value.times.drainStarted ?? '') || Date.now();
  const endsAt = startedAt + drainS * 1000;
  let checksAsked = false;
  for (;;) {
    if (oldJournal.record.step === 'draining') {
      const remaining = Math.max(0, endsAt - Date.now());
      if (remaining > 0) await oldJournal.line(`Draining for ${Math.round(remaining / 1000)} s before removing version ${oldJournal.record.version}`);
      const end = await drainWindow(ctx, endsAt, checksAsked);
      checksAsked = true;
      if (end.kind !== 'drained') {
        const request = end.kind === 'rollback' ? requestOfItem(end.item)
          : { by: 'post-switch check', reason: end.reason, automatic: true, requested: deps.now().toISOString() };
        if (await switchBack(ctx, oldJournal, request) === 'rolled-back') return;
        continue; // could not switch back: the new version stays live and the old one drains on
      }
    }
    try {
      await removeDrained(ctx, oldJournal);
      return;
    } catch (err) {
      // A rollback was requested between the end of the wait and the decision to remove: the
      // next window sees the request at once and honours it.
      if (!(err instanceof PresentKeyError)) throw err;
    }
  }
}

type DrainWindowEnd = { kind: 'drained' } | { kind: 'rollback'; item: QueueItem } | { kind: 'check-failed'; reason: string };

/**
 * Waits until the drain delay has passed and the post-switch checks have passed — or until a
 * rollback request arrives or a check fails, whichever comes first.
 */
async function drainWindow(ctx: RunContext, endsAt: number, checksAsked: boolean): Promise<DrainWindowEnd> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const checks = record.descriptor.postSwitchChecks ?? [];
  const asking = checks.length > 0 && !record.times.checked && !checksAsked;
  // First pass with nothing to wait for (drain over, no checks): no window to watch. The removal's
  // write is guarded by the absence of a rollback request all the same (I6); should one exist,
  // the next pass (checksAsked) watches and finds it.
  if (!checksAsked && !asking && endsAt <= Date.now()) return { kind: 'drained' };
  let request: QueueItem | undefined;
  const requested = new AbortController();
  const watch = await whileUnavailable(() => deps.store.watchRollbackRequest(record.namespace, record.appName, record.id, (item) => {
    request = item;
    requested.abort();
  }), ctx.ownership.signal);
  const window = linkSignals(ctx.ownership.signal, requested.signal);
  try {
    if (asking) {
      await journal.line(`Asking ${checks.length} post-switch check(s); version ${record.OldVersion} keeps running until they passed and the drain delay is over`);
      const verdict = await askGates(ctx, 'post-switch', checks, {
        namespace: record.namespace, appName: record.appName, deploymentId: record.id, version: record.version, previousVersion: record.OldVersion,
        ...(record.descriptor.frontend ? { frontend: record.descriptor.frontend } : {}),
      }, window.signal);
      if (!verdict.pass) return { kind: 'check-failed', reason: `post-switch check "${verdict.gate}" failed: ${verdict.reason}` };
      await journal.update((x) => ({ ...x, times: { ...x.times, checked: deps.now().toISOString() } }), ['All post-switch checks passed']);
    }
    await sleep(Math.max(0, endsAt - Date.now()), window.signal);
    return { kind: 'drained' };
  } catch (err) {
    if (request) return { kind: 'rollback', item: request };
    if (ctx.ownership.signal.aborted) throw new WorkInterrupted('stopped while draining');
    throw err;
  } finally {
    window.dispose();
    await watch.close().catch(() => undefined);
  }
}

/** Removes the drained version — unless a traffic target points at it again — and ends its record with the work item. */
async function removeDrained(ctx: RunContext, oldJournal: Journal): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const old = oldJournal.record;
  const deadline = Deadline.at(Date.parse(old.deadline ?? '') || Date.now() + deps.config.defaultDeadlineSeconds * 1000, ctx.ownership.signal);
  try {
    // Read every target at once (reads only); each is judged in order.
    const pointers = await Promise.all(deps.traffic.map((target) => target.pointer(record.descriptor, ctx.cluster, deadline.signal)));
    for (const [i, target] of deps.traffic.entries()) {
      const pointer = pointers[i];
      if (pointer?.version === old.version) {
        await writeFailure(oldJournal, `not removed: ${target.name} points at version ${old.version} again (changed outside cutover)`, [
          `${target.name} points at version ${old.version}; it keeps running and needs a look`,
        ], { dequeue: ctx.workId, cleanupIncomplete: true, now: deps.now });
        return;
      }
    }
    await deps.failpoints.hit('before-drain-removal', deadline.signal);
    if (old.step !== 'removing') {
      // The point of no return for an instant rollback, written only while none is requested.
      await oldJournal.update((x) => ({ ...x, step: 'removing', owner: deps.replicaId }), [], {
        absent: [keys.queueItem(record.namespace, record.appName, rollbackWorkId(record.id))],
      });
    }
    const removed = await removeVersion(deps, ctx.cluster, old, deadline.signal);
    await oldJournal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: deps.now().toISOString() } }), [
      removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing left to remove', `Version ${old.version} undeployed (replaced by ${record.id})`,
    ], { final: true, dequeue: ctx.workId });
  } catch (err) {
    if (err instanceof PresentKeyError) throw err;
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
