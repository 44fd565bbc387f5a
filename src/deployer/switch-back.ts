import { rollbackWorkId, type DeploymentRecord, type QueueItem, type RollbackNote } from '../domain/deployment.js';
import { Deadline } from '../lib/deadline.js';
import { StoreDataError, StoreUnavailableError, whileUnavailable } from '../store/kv.js';
import type { RunContext } from './context.js';
import { awaitConvergence } from './convergence.js';
import { WorkInterrupted } from './errors.js';
import { Journal } from './journal.js';
import { writeFailure } from './outcome.js';
import { switchTraffic } from './switch.js';
import { removeVersion } from './workload.js';

/** Why traffic goes back: a person's request, or a failed post-switch check. */
export interface SwitchBackRequest {
  by: string;
  reason: string;
  automatic: boolean;
  /** When it was asked for (ISO). */
  requested: string;
}

export function requestOfItem(item: QueueItem): SwitchBackRequest {
  const by = item.by ?? 'anonymous';
  return { by, reason: `rollback requested by ${by}`, automatic: false, requested: item.enqueued };
}

/**
 * Instant rollback, inside the drain window: the live deployment (ctx.journal, "new") goes back to
 * the one it replaced ("old"), whose pods still run because it is draining. No pod is created;
 * each traffic target gets one write. Always run by the app's owner, from the work item that
 * drains "old" (or from the rollback item itself), never beside it: the drain's removal of "old"
 * and a switch back to it are two outcomes of one sequential run (docs/deployments.md).
 *
 *   1. one transaction: new → step rolling-back (with `rolledBack`), old → step switching-traffic
 *      (the steps during which traffic may move; the invariant observer relies on them);
 *   2. every traffic target points at old again (switchTraffic: captured first; a target that
 *      fails puts back what this switch wrote, and the rollback is abandoned with new still live);
 *   3. wait until traffic has moved (convergence, bounded);
 *   4. one transaction: old DEPLOYED (`restoredFrom`), new UNDEPLOYING, live pointer → old (I4);
 *   5. new's version is removed, unless a traffic target points at it; new ends UNDEPLOYED (asked
 *      for) or FAILURE with the check's reason (automatic), with its work items dequeued.
 *
 * Every step is idempotent and recorded first, so a new owner resumes it (continueRollback).
 */
export async function switchBack(ctx: RunContext, oldJournal: Journal, request: SwitchBackRequest): Promise<SwitchBackOutcome> {
  const { journal } = ctx;
  const old = oldJournal.record;
  const fresh = journal.record;
  if (fresh.step !== 'rolling-back') {
    const note: RollbackNote = { to: old.id, toVersion: old.version, by: request.by, automatic: request.automatic, reason: request.reason, requested: request.requested };
    await journal.update((x) => ({ ...x, step: 'rolling-back', rolledBack: note }), [
      `${request.automatic ? 'Automatic rollback' : 'Rollback'}: ${request.reason}; switching traffic back to version ${old.version} (still running, draining)`,
    ], {
      with: {
        journal: oldJournal,
        change: (x) => ({ ...x, step: 'switching-traffic' }),
        lines: [`Deployment ${fresh.id} (version ${fresh.version}) is rolled back (${request.reason}): traffic comes back to this version`],
      },
    });
  }
  return moveTrafficBack(ctx, oldJournal);
}

/** 'abandoned': traffic could not be moved back; the new deployment stays live and the old one drains on. */
export type SwitchBackOutcome = 'rolled-back' | 'abandoned';

/** Resumes an instant rollback a previous owner began (the record says `rolledBack`). */
export async function continueRollback(ctx: RunContext): Promise<SwitchBackOutcome> {
  const record = ctx.journal.record;
  if (record.status === 'UNDEPLOYING') {
    await removeRolledBack(ctx);
    return 'rolled-back';
  }
  if (record.status !== 'DEPLOYED' || record.step !== 'rolling-back') {
    await ctx.deps.store.dequeue(record.namespace, record.appName, ctx.workId, ctx.ownership.fence);
    return 'rolled-back';
  }
  const old = await loadRecord(ctx, record.rolledBack!.to);
  if (!old) {
    // Nothing to go back to any more: the rollback ends, the deployment stays live.
    await abandonSwitchBack(ctx, undefined, `the record of deployment ${record.rolledBack!.to} cannot be read`);
    return 'abandoned';
  }
  return moveTrafficBack(ctx, journalOf(ctx, old));
}

async function moveTrafficBack(ctx: RunContext, oldJournal: Journal): Promise<SwitchBackOutcome> {
  const { journal, deps } = ctx;
  const old = oldJournal.record;
  const oldCtx: RunContext = { ...ctx, journal: oldJournal };
  const started = Date.now();
  const bound = Deadline.after(deps.config.cleanupTimeoutSeconds * 1000, ctx.ownership.signal);
  let lines: string[];
  try {
    lines = await switchTraffic(oldCtx, old.descriptor, old.version, bound.signal);
  } catch (err) {
    if (ctx.ownership.signal.aborted) throw new WorkInterrupted('stopped while switching traffic back; the next owner resumes the rollback');
    await abandonSwitchBack(ctx, oldJournal, bound.expired ? `switching traffic back took longer than ${deps.config.cleanupTimeoutSeconds} s` : (err as Error).message);
    return 'abandoned';
  } finally {
    bound.clear();
  }
  const switchMs = Date.now() - started;
  await oldJournal.update((x) => x, [...lines, `Traffic switched back to version ${old.version} in ${switchMs} ms; waiting for it to arrive`]);
  const convergence = await awaitConvergence(oldCtx, old.descriptor, old.version, started + switchMs, ctx.ownership.signal);
  const at = deps.now().toISOString();
  const live = await whileUnavailable(() => deps.store.live(old.namespace, old.appName), ctx.ownership.signal);
  const fresh = journal.record;
  const arrived = convergence.complete ? `traffic is on version ${old.version} again${convergence.lines.length ? ` (${convergence.lines.join('; ')})` : ''}` : `traffic to version ${old.version}: ${convergence.lines.join('; ')}`;
  await oldJournal.update((x) => {
    const { replacedBy: _replacedBy, deadline: _deadline, ...rest } = x;
    return { ...rest, status: 'DEPLOYED', step: 'deployed', restoredFrom: fresh.id, times: { ...x.times, restored: at } };
  }, [`Live again: ${arrived}; deployment ${fresh.id} (version ${fresh.version}) was rolled back`], {
    final: true,
    live: { expectedRevision: live?.revision ?? '0', next: { deploymentId: old.id, version: old.version } },
    with: {
      journal,
      change: (x) => ({
        ...x, status: 'UNDEPLOYING', step: 'removing', rolledBack: { ...x.rolledBack!, switchMs }, times: { ...x.times, rolledBack: at },
      }),
      lines: [`Rolled back in ${switchMs} ms: ${arrived}; removing version ${fresh.version}`],
    },
  });
  await removeRolledBack(ctx);
  return 'rolled-back';
}

/**
 * The rolled-back version goes (it no longer serves, step 4 moved the live pointer), unless a
 * traffic target points at it again; then the record ends — UNDEPLOYED, or FAILURE with the
 * post-switch check's reason — removing its deploy item and the rollback item in one transaction.
 */
async function removeRolledBack(ctx: RunContext): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const note = record.rolledBack!;
  const workIds = [...new Set([ctx.workId, record.id, rollbackWorkId(record.id)])];
  const deadline = Deadline.after(deps.config.defaultDeadlineSeconds * 1000, ctx.ownership.signal);
  try {
    for (const target of deps.traffic) {
      const pointer = await target.pointer(record.descriptor, ctx.cluster, deadline.signal);
      if (pointer?.version === record.version) {
        await writeFailure(journal, `rolled back, but not removed: ${target.name} points at version ${record.version} again (changed outside cutover)`, [], {
          dequeue: workIds, cleanupIncomplete: true, now: deps.now,
        });
        return;
      }
    }
    const removed = await removeVersion(deps, ctx.cluster, record, deadline.signal);
    const lines = [removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing left to remove'];
    if (note.automatic) {
      await writeFailure(journal, `${note.reason}; rolled back to version ${note.toVersion}`, lines, { dequeue: workIds, now: deps.now });
    } else {
      await journal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: deps.now().toISOString() } }), [
        ...lines, `Version ${record.version} undeployed (rolled back to version ${note.toVersion}, deployment ${note.to})`,
      ], { final: true, dequeue: workIds });
    }
  } catch (err) {
    if (err instanceof WorkInterrupted || ctx.ownership.signal.aborted) throw err instanceof WorkInterrupted ? err : new WorkInterrupted('stopped while removing a rolled-back version');
    if (err instanceof StoreUnavailableError && !deadline.expired) throw err; // transient: run again, resume
    const why = deadline.expired ? 'its deadline passed' : (err as Error).message;
    await writeFailure(journal, `${note.automatic ? `${note.reason}; rolled back to version ${note.toVersion}, but ` : 'rolled back, but '}removing version ${record.version} failed: ${why}`, [], {
      dequeue: workIds, cleanupIncomplete: true, now: deps.now,
    });
  } finally {
    deadline.clear();
  }
}

/**
 * Traffic could not be moved back (every target this switch touched was put back on the live
 * version): the live deployment stays live and the replaced one drains on; both logs say why.
 * The rollback item is removed — asking again is a new request.
 */
async function abandonSwitchBack(ctx: RunContext, oldJournal: Journal | undefined, why: string): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const note = record.rolledBack;
  ctx.log.warn({ deploymentId: record.id, why }, 'instant rollback failed; the deployment stays live');
  const line = `Rollback failed: ${why}; version ${record.version} stays live${note?.automatic ? ` although ${note.reason}` : ''}`;
  const dequeue = ctx.workId === record.id ? rollbackWorkId(record.id) : ctx.workId;
  await journal.update((x) => {
    const { rolledBack: _rolledBack, ...rest } = x;
    return { ...rest, step: 'deployed' };
  }, [line], {
    dequeue,
    ...(oldJournal && oldJournal.record.status === 'UNDEPLOYING' ? {
      with: { journal: oldJournal, change: (x: DeploymentRecord) => ({ ...x, step: 'draining' as const }), lines: [`${line}; this version drains on`] },
    } : {}),
  });
}

export async function loadRecord(ctx: RunContext, id: string) {
  try {
    return await whileUnavailable(() => ctx.deps.store.get(ctx.journal.record.namespace, id), ctx.ownership.signal);
  } catch (err) {
    if (!(err instanceof StoreDataError)) throw err;
    ctx.deps.onUnreadable(err.key, 'a deployment an instant rollback involves');
    return undefined;
  }
}

export function journalOf(ctx: RunContext, found: NonNullable<Awaited<ReturnType<typeof loadRecord>>>): Journal {
  const { deps } = ctx;
  return new Journal(found, deps.store, deps.bus, ctx.log, { signal: ctx.ownership.signal, fence: ctx.ownership.fence }, deps.now);
}

/**
 * A rollback item that reached the head of the queue: the deploy item that drained the replaced
 * version is gone, and with it the version (the drain never removes it while this item exists, so
 * this happens only when the drain ended otherwise, e.g. FAILURE). A switch back a previous owner
 * began is resumed; otherwise there is nothing to go back to, and the log says so.
 */
export async function runRollbackItem(ctx: RunContext, item: QueueItem): Promise<void> {
  const { journal, deps } = ctx;
  const record = journal.record;
  if (record.rolledBack) {
    await continueRollback(ctx);
    return;
  }
  const old = record.replaces ? await loadRecord(ctx, record.replaces) : undefined;
  const why = record.status !== 'DEPLOYED' ? `deployment ${record.id} is ${record.status}`
    : old ? `version ${old.value.version} is no longer running (${old.value.status})` : 'it replaced no version that still runs';
  await journal.update((x) => x, [`Rollback requested by ${item.by ?? 'anonymous'} not carried out: ${why}; nothing was changed (redeploy an earlier version instead)`], {
    dequeue: item.workId, final: true,
  });
}
