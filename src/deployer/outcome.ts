import type { DeploymentRecord } from '../domain/deployment.js';
import type { Journal } from './journal.js';

/**
 * The only writer of FAILURE. Every path that ends a record unsuccessfully — a failed or expired
 * deployment after its rollback, a drain or undeploy that could not remove what it should, a
 * queued deployment past its deadline, a record found without pending work — ends here, so the
 * rules hold everywhere: the outcome is stored with its log lines in one transaction, together
 * with the removal of the work item (so no record stays in progress without work, and no work
 * outlives its record's outcome), and an incomplete cleanup leaves a reconcile request behind.
 */
export async function writeFailure(journal: Journal, reason: string, lines: string[], options: {
  /** The queue item(s) this outcome finishes. */
  dequeue?: string | string[];
  /** Something this record stands for may still exist in the cluster: ask the owner to reconcile. */
  cleanupIncomplete?: boolean;
  now: () => Date;
}): Promise<DeploymentRecord> {
  const failureReason = options.cleanupIncomplete ? `${reason} (cleanup incomplete; the reconciler removes the rest)` : reason;
  return journal.update((r) => ({
    ...r, status: 'FAILURE', step: 'failed', failureReason,
    ...(options.cleanupIncomplete ? { cleanupIncomplete: true } : {}),
    times: { ...r.times, finished: options.now().toISOString() },
  }), lines, {
    final: true,
    ...(options.dequeue ? { dequeue: options.dequeue } : {}),
    ...(options.cleanupIncomplete ? { requestReconcile: `${journal.record.id}: ${reason}` } : {}),
  });
}
