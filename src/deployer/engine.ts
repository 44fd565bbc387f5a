import type { DeploymentRecord, QueueItem } from '../domain/deployment.js';
import type { Versioned } from '../domain/types.js';
import { StoreDataError } from '../store/kv.js';
import { runBlueGreen } from './bluegreen.js';
import type { EngineDeps, RunContext } from './context.js';
import { drainReplaced } from './drain.js';
import { Journal } from './journal.js';
import { writeFailure } from './outcome.js';
import { FencedCluster, type AppOwnership } from './ownership.js';
import { rollback } from './rollback.js';
import { runUndeploy } from './undeploy.js';
import { runRollbackItem } from './switch-back.js';
import { reconcileApp } from './reconciler.js';

export type { EngineConfig, EngineDeps } from './context.js';
export { DeploymentFailure, WorkInterrupted } from './errors.js';

/**
 * Runs one work item of an app for the app's owner: a deploy (the blue-green algorithm, or the
 * drain that is left of it), or an undeploy. It resolves when the item is finished — its outcome
 * stored and the item removed with it — and rejects only with WorkInterrupted (ownership ended:
 * the next owner resumes) or with an error the scheduler retries and, if it persists, hands to
 * abandon(). Records that cannot be read are never acted on.
 */
export class DeploymentEngine {
  constructor(private readonly deps: EngineDeps) {}

  async run(item: QueueItem, ownership: AppOwnership): Promise<void> {
    const found = await this.load(item, ownership);
    if (!found) return;
    const record = found.value;
    const queuedMs = Math.max(0, this.deps.now().getTime() - Date.parse(item.enqueued));
    this.deps.bus.publish({ type: 'work-started', namespace: record.namespace, appName: record.appName, deploymentId: record.id, kind: item.kind, queuedMs, at: this.deps.now() });
    const ctx = this.context(found, item, ownership);
    try {
      if (item.kind === 'undeploy') await runUndeploy(ctx, item);
      else if (item.kind === 'rollback') await runRollbackItem(ctx, item);
      else if (record.status === 'DEPLOYING') await runBlueGreen(ctx);
      // DEPLOYED: the drain is left; UNDEPLOYING after an instant rollback: its removal is left.
      else if (record.status === 'DEPLOYED' || (record.status === 'UNDEPLOYING' && record.rolledBack)) await drainReplaced(ctx);
      else await this.deps.store.dequeue(record.namespace, record.appName, item.workId, ownership.fence);
    } finally {
      // Lines noted and not stored yet go now, while this run still owns the app.
      await ctx.journal.flush().catch(() => undefined);
      this.deps.bus.publish({ type: 'work-finished', namespace: record.namespace, appName: record.appName, deploymentId: record.id, kind: item.kind, at: this.deps.now() });
    }
  }

  /**
   * Ends an item that keeps failing with an unexpected error, so it cannot block its app's queue:
   * a deployment is rolled back, a drain or undeploy ends FAILURE with a reconcile request.
   */
  async abandon(item: QueueItem, ownership: AppOwnership, err: Error): Promise<void> {
    const found = await this.load(item, ownership);
    if (!found) return;
    const ctx = this.context(found, item, ownership);
    const reason = `internal error: ${err.message}`;
    this.deps.log.error({ err, deploymentId: found.value.id, workId: item.workId }, 'abandoning work that keeps failing');
    if (item.kind === 'deploy' && found.value.status === 'DEPLOYING') {
      await rollback(ctx, reason);
      return;
    }
    if (item.kind === 'deploy' && found.value.status === 'DEPLOYED' && found.value.replaces) {
      const old = await this.deps.store.get(found.value.namespace, found.value.replaces).catch(() => undefined);
      if (old && old.value.status === 'UNDEPLOYING') {
        const j = new Journal(old, this.deps.store, this.deps.bus, ctx.log, { signal: ownership.signal, fence: ownership.fence }, this.deps.now);
        await writeFailure(j, `removing the replaced version failed: ${reason}`, [], { dequeue: item.workId, cleanupIncomplete: true, now: this.deps.now });
        return;
      }
    }
    if (found.value.status === 'UNDEPLOYING' && item.kind === 'undeploy') {
      await writeFailure(ctx.journal, `undeploy failed: ${reason}`, [], { dequeue: item.workId, cleanupIncomplete: true, now: this.deps.now });
      return;
    }
    await this.deps.store.dequeue(found.value.namespace, found.value.appName, item.workId, ownership.fence);
  }

  /**
   * Upkeep of an app whose queue is empty, by its owner: a due reconcile request is carried out
   * (or postponed with a backoff when it cannot finish), then old finished records are pruned.
   * Returns when a postponed request is due, so the scheduler can come back then.
   */
  async housekeep(ownership: AppOwnership): Promise<{ retryAt?: number }> {
    const { store } = this.deps;
    const { namespace, appName } = ownership;
    const request = await store.reconcileRequest(namespace, appName);
    if (request) {
      const due = request.notBefore ? Date.parse(request.notBefore) : 0;
      if (due > Date.now()) return { retryAt: due };
      const log = this.deps.log.child({ namespace, app: appName });
      const report = await reconcileApp({ deps: this.deps, ownership, log });
      this.deps.bus.publish({ type: 'reconciled', namespace, appName, removed: report.removed.length, unaccounted: report.unaccounted.length, failedRecords: report.failedRecords.length, at: this.deps.now() });
      if (report.incomplete) {
        const attempts = request.attempts + 1;
        const retryAt = Date.now() + Math.min(1000 * 2 ** attempts, 5 * 60_000);
        await store.requestReconcile(namespace, appName, request.reason, { notBefore: new Date(retryAt).toISOString(), attempts, expectedRevision: request.revision, fence: ownership.fence });
        return { retryAt };
      }
      await store.clearReconcileRequest(namespace, appName, request.revision, ownership.fence);
    }
    const pruned = await store.prune(namespace, appName, this.deps.config.retainRecords, ownership.fence);
    if (pruned > 0) this.deps.log.debug({ namespace, app: appName, pruned }, 'pruned old finished records');
    return {};
  }

  /** The item's record; items that are unreadable or whose record is gone or unreadable are removed, never acted on. */
  private async load(item: QueueItem, ownership: AppOwnership): Promise<Versioned<DeploymentRecord> | undefined> {
    const { namespace, appName } = ownership;
    if (item.unreadable) {
      this.deps.onUnreadable(`queue/${namespace}/${appName}/${item.workId}`, 'a queue item (removed without acting on it)');
      await this.deps.store.dequeue(namespace, appName, item.workId, ownership.fence);
      return undefined;
    }
    let found: Versioned<DeploymentRecord> | undefined;
    try {
      found = await this.deps.store.get(namespace, item.deploymentId);
    } catch (err) {
      if (!(err instanceof StoreDataError)) throw err;
      this.deps.onUnreadable(err.key, `the record of queued ${item.kind} ${item.workId} (the work is dropped; the record is kept)`);
    }
    if (!found) {
      await this.deps.store.dequeue(namespace, appName, item.workId, ownership.fence);
      return undefined;
    }
    return found;
  }

  private context(found: Versioned<DeploymentRecord>, item: QueueItem, ownership: AppOwnership): RunContext {
    const log = this.deps.log.child({ deploymentId: found.value.id });
    return {
      deps: this.deps,
      cluster: new FencedCluster(this.deps.cluster, ownership),
      ownership,
      journal: new Journal(found, this.deps.store, this.deps.bus, log, { signal: ownership.signal, fence: ownership.fence }, this.deps.now),
      workId: item.workId,
      log,
    };
  }
}

