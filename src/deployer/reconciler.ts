import type { DeploymentRecord } from '../domain/deployment.js';
import { FINAL_STATUSES } from '../domain/deployment.js';
import type { Versioned } from '../domain/types.js';
import type { Logger } from '../log.js';
import { Deadline } from '../lib/deadline.js';
import { isNotFound, type Cluster, type Kind, type KubeObject } from './cluster.js';
import { resourceOf } from '../kube/resources.js';
import { managedKinds } from './permissions.js';
import type { EngineDeps } from './context.js';
import { WorkInterrupted } from './errors.js';
import { Journal } from './journal.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, deploymentIdOf, isManagedByCutover } from './labels.js';
import { writeFailure } from './outcome.js';
import { FencedCluster, type AppOwnership } from './ownership.js';
import type { TrafficPointer } from './traffic/index.js';
import { restoreTraffic } from './rollback.js';

export interface ReconcileReport {
  removed: string[];
  /** cutover-labelled objects no record speaks for: reported, never deleted (no evidence). */
  unaccounted: string[];
  /** Records that were in progress with no work pending, now FAILURE. */
  failedRecords: string[];
  /** Keys of unreadable records: while there are any, nothing of the app is deleted. */
  unreadable: string[];
  /** Failed deployments whose traffic was put back. */
  trafficRestored: string[];
  /** Something could not be done now (the request stays, with a backoff). */
  incomplete: boolean;
}

/** What the decision needs to know about one object. */
export interface ObservedObject {
  kind: Kind;
  name: string;
  version: string | undefined;
  deploymentId: string | undefined;
}

export interface AppEvidence {
  records: DeploymentRecord[];
  /** Where each traffic target points now. */
  pointers: TrafficPointer[];
  /** Version of the live deployment (live pointer), if any. */
  liveVersion: string | undefined;
}

/**
 * Why an object of an app may be deleted, or undefined when it must stay. Evidence only:
 * - never an object of a version any traffic target points at, or of the live version (I4);
 * - only objects carrying the id of a record that says it is finished (FAILURE or UNDEPLOYED);
 *   an object whose id no record has is *unaccounted* — reported, never deleted;
 * - traffic objects (no version) only when the app has no live or in-progress record at all.
 */
export function deletionReason(o: ObservedObject, e: AppEvidence): { delete: true; why: string } | { delete: false; unaccounted?: string } {
  const pointed = new Set(e.pointers.map((p) => p.version).filter((v): v is string => v !== undefined));
  if (o.version !== undefined && (pointed.has(o.version) || e.liveVersion === o.version)) return { delete: false };
  if (!o.deploymentId) return { delete: false, unaccounted: `${o.kind} ${o.name} carries no deployment id` };
  const record = e.records.find((r) => r.id === o.deploymentId);
  if (!record) return { delete: false, unaccounted: `${o.kind} ${o.name} belongs to deployment ${o.deploymentId}, of which there is no record` };
  if (record.status !== 'FAILURE' && record.status !== 'UNDEPLOYED') return { delete: false };
  if (o.version === undefined) {
    const active = e.liveVersion !== undefined || e.records.some((r) => !FINAL_STATUSES.has(r.status) || r.status === 'DEPLOYED');
    if (active) return { delete: false };
    return { delete: true, why: `traffic object of deployment ${record.id} (${record.status}) of an app with nothing live` };
  }
  return { delete: true, why: `its deployment ${record.id} is ${record.status}` };
}

export interface ReconcileScope {
  deps: EngineDeps;
  ownership: AppOwnership;
  log: Logger;
}

/**
 * Reconciles one app, run by its owner when a reconcile request is due (a cleanup could not
 * finish, or data from an older layout needs a look): records in progress without pending work
 * end FAILURE, and the app's cutover-labelled objects that a finished record accounts for — and
 * that no traffic points at — are removed. Reads only this app's records and objects.
 */
export async function reconcileApp(scope: ReconcileScope): Promise<ReconcileReport> {
  const { deps, ownership } = scope;
  const { namespace, appName } = ownership;
  const report: ReconcileReport = { removed: [], unaccounted: [], failedRecords: [], unreadable: [], trafficRestored: [], incomplete: false };
  const { records, unreadable } = await deps.store.listApp(namespace, appName);
  if (unreadable.length > 0) {
    for (const key of unreadable) deps.onUnreadable(key, `a record of ${namespace}/${appName} (nothing of the app is deleted while it is unreadable)`);
    report.unreadable = unreadable;
    return report;
  }
  const pendingIds = new Set((await deps.store.queue(namespace, appName)).map((q) => q.deploymentId));
  for (const found of records) {
    const r = found.value;
    if (FINAL_STATUSES.has(r.status)) continue;
    const pending = pendingIds.has(r.id) || (r.replacedBy !== undefined && pendingIds.has(r.replacedBy));
    if (pending) continue;
    await endStuck(scope, found);
    report.failedRecords.push(r.id);
  }
  const fresh = report.failedRecords.length > 0 ? (await deps.store.listApp(namespace, appName)).records : records;
  const cluster = new FencedCluster(deps.cluster, ownership);
  const bound = Deadline.after(deps.config.cleanupTimeoutSeconds * 1000, ownership.signal);
  try {
    const descriptor = fresh[0]?.value.descriptor;
    // Traffic still on a failed deployment (its rollback could not put it back) goes back first.
    if (descriptor) {
      for (const failed of fresh.filter((f) => f.value.status === 'FAILURE')) {
        for (const t of deps.traffic) {
          if ((await t.pointer(descriptor, cluster, bound.signal))?.deploymentId !== failed.value.id) continue;
          const lines = await restoreTraffic(deps, cluster, failed.value, bound.signal);
          scope.log.warn({ deploymentId: failed.value.id, lines }, 'reconciler: put traffic back from a failed deployment');
          report.trafficRestored.push(failed.value.id);
          break;
        }
      }
    }
    const pointers: TrafficPointer[] = [];
    if (descriptor) for (const t of deps.traffic) { const p = await t.pointer(descriptor, cluster, bound.signal); if (p) pointers.push(p); }
    const live = await deps.store.live(namespace, appName);
    const evidence: AppEvidence = { records: fresh.map((f) => f.value), pointers, liveVersion: live?.version };
    for (const { kind, object } of await managedObjects(cluster, deps, namespace, appName, bound.signal)) {
      if (object.metadata?.deletionTimestamp) continue;
      const observed: ObservedObject = { kind, name: object.metadata?.name ?? '', version: object.metadata?.labels?.['version'], deploymentId: deploymentIdOf(object.metadata) };
      const verdict = deletionReason(observed, evidence);
      if (!verdict.delete) {
        if (verdict.unaccounted) report.unaccounted.push(verdict.unaccounted);
        continue;
      }
      try {
        await cluster.delete(kind, namespace, observed.name, bound.signal);
        report.removed.push(`${kind} ${namespace}/${observed.name}`);
        scope.log.warn({ kind, namespace, name: observed.name, reason: verdict.why }, 'reconciler: removed an object left behind');
      } catch (err) {
        if (err instanceof WorkInterrupted) throw err;
        report.incomplete = true;
        scope.log.warn({ kind, namespace, name: observed.name, err: (err as Error).message }, 'reconciler: could not remove an object; trying again later');
      }
    }
  } catch (err) {
    if (err instanceof WorkInterrupted || ownership.signal.aborted) throw err instanceof WorkInterrupted ? err : new WorkInterrupted('stopped');
    report.incomplete = true;
    scope.log.warn({ namespace, app: appName, err: (err as Error).message }, 'reconciler: pass could not finish; trying again later');
  } finally {
    bound.clear();
  }
  for (const u of report.unaccounted) scope.log.warn({ namespace, app: appName }, `reconciler: ${u}; left alone`);
  return report;
}

async function endStuck(scope: ReconcileScope, found: Versioned<DeploymentRecord>): Promise<void> {
  const { deps, ownership } = scope;
  const r = found.value;
  const journal = new Journal(found, deps.store, deps.bus, scope.log, { signal: ownership.signal, fence: ownership.fence }, deps.now);
  await writeFailure(journal, `the record was ${r.status} with no work pending (found by the reconciler)`, [
    `Reconciler: the record was ${r.status} (step "${r.step}") but nothing was working on it; marked FAILURE`,
  ], { cleanupIncomplete: r.status === 'UNDEPLOYING' || r.step !== 'queued', now: deps.now });
  scope.log.warn({ deploymentId: r.id, namespace: r.namespace, app: r.appName }, 'reconciler: marked a record without pending work FAILURE');
}

async function managedObjects(cluster: Cluster, deps: EngineDeps, namespace: string, appName: string, signal: AbortSignal): Promise<Array<{ kind: Kind; object: KubeObject }>> {
  const selector = `app=${appName},${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
  const out: Array<{ kind: Kind; object: KubeObject }> = [];
  for (const kind of managedKinds(deps.traffic)) {
    let objects: KubeObject[];
    try {
      objects = await cluster.list(kind, namespace, selector, signal);
    } catch (err) {
      if (resourceOf(kind).optional && isNotFound(err)) continue; // the CRD is not installed
      throw err;
    }
    for (const object of objects) if (isManagedByCutover(object.metadata)) out.push({ kind, object });
  }
  return out;
}
