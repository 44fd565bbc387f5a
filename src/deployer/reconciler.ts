import type { DeploymentRecord } from '../domain/deployment.js';
import type { DeploymentStore } from '../store/deployments.js';
import type { KvStore } from '../store/kv.js';
import { keys } from '../store/keys.js';
import type { Logger } from '../log.js';
import type { Cluster, Kind, KubeObject } from './cluster.js';
import type { IngressProfile } from './ingress-profiles.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, isManagedByCutover } from './labels.js';
import { isPlaceholderStableService } from './manifests.js';

export interface ReconcilerOptions {
  kv: KvStore;
  store: DeploymentStore;
  cluster: Cluster;
  profile: IngressProfile;
  log: Logger;
  now: () => Date;
  /** How often a pass runs. */
  intervalMs: number;
  /** Objects younger than this are left alone (a deployment may be creating them right now). */
  minAgeMs: number;
}

export interface ReconcileReport {
  removed: string[];
  failedRecords: string[];
}

const LIVE: ReadonlySet<string> = new Set(['DEPLOYED', 'UNDEPLOYING']);
const STUCK_RECORD_MIN_AGE_MS = 30_000;

/**
 * Finds what no record accounts for and removes it: Kubernetes objects labelled as cutover's
 * (never anything else) left behind by a crash between creating an object and recording it, or by
 * a cleanup that could not finish; and records stuck in DEPLOYING/UNDEPLOYING without pending work.
 * Apps that have an owner or queued work are skipped: the engine is responsible for them.
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<ReconcileReport> | undefined;

  constructor(private readonly o: ReconcilerOptions) {}

  start(): void {
    const tick = () => {
      void this.runOnce().catch((err: Error) => this.o.log.warn({ err: err.message }, 'reconciliation pass failed; retrying at the next interval'));
    };
    this.timer = setInterval(tick, this.o.intervalMs);
    this.timer.unref();
    setTimeout(tick, Math.min(5000, this.o.intervalMs)).unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** One pass; concurrent calls share the pass in progress. */
  runOnce(): Promise<ReconcileReport> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<ReconcileReport> {
    const { store, kv, cluster, log } = this.o;
    const report: ReconcileReport = { removed: [], failedRecords: [] };
    const busy = new Set<string>();
    for (const app of await store.appsWithWork()) busy.add(`${app.namespace}/${app.appName}`);
    for (const e of (await kv.list(keys.allOwners())).entries) busy.add(e.key.slice(keys.allOwners().length));

    const records = (await store.listAll()).map((r) => r.value);
    const byApp = new Map<string, DeploymentRecord[]>();
    for (const r of records) {
      const id = `${r.namespace}/${r.appName}`;
      byApp.set(id, [...(byApp.get(id) ?? []), r]);
    }

    // Records in progress with nobody to progress them.
    for (const r of records) {
      if ((r.status === 'DEPLOYING' || r.status === 'UNDEPLOYING') && !busy.has(`${r.namespace}/${r.appName}`)) {
        // Young records are left alone (one may have been created after `busy` was read), and
        // the pending work is checked again right before deciding.
        if (this.o.now().getTime() - Date.parse(r.lastModified) < Math.max(this.o.minAgeMs, STUCK_RECORD_MIN_AGE_MS)) continue;
        if ((await store.queue(r.namespace, r.appName)).length > 0 || (await kv.get(keys.owner(r.namespace, r.appName)))) continue;
        const found = await store.get(r.namespace, r.id);
        if (!found || found.value.status !== r.status || found.value.lastModified !== r.lastModified) continue;
        try {
          await store.update({
            record: { ...found.value, status: 'FAILURE', step: 'failed', failureReason: `no pending work for a ${r.status} record (found by the reconciler)`, lastModified: this.o.now().toISOString() },
            expectedRevision: found.revision,
            events: [{ type: 'log', message: `Reconciler: the record was ${r.status} but nothing was working on it; marked FAILURE` }, { type: 'status', status: 'FAILURE', step: 'failed' }],
          });
          report.failedRecords.push(r.id);
          log.warn({ deploymentId: r.id, namespace: r.namespace, app: r.appName }, 'reconciler: marked a record without pending work FAILURE');
        } catch {
          // changed meanwhile: someone is working on it after all
        }
      }
    }

    const selector = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;
    const kinds: Kind[] = ['Deployment', 'ReplicationController', 'Service', 'Ingress'];
    if (this.o.profile.name === 'traefik') kinds.push('Middleware');
    for (const namespace of new Set(records.map((r) => r.namespace))) {
      for (const kind of kinds) {
        let objects: KubeObject[];
        try {
          objects = await cluster.list(kind, namespace, selector);
        } catch (err) {
          if (kind === 'Middleware') continue; // the CRD may not be installed
          throw err;
        }
        for (const object of objects) {
          const app = object.metadata?.labels?.['app'];
          if (!app || busy.has(`${namespace}/${app}`) || !isManagedByCutover(object.metadata)) continue;
          const age = this.o.now().getTime() - new Date(object.metadata?.creationTimestamp ?? 0).getTime();
          if (age < this.o.minAgeMs || object.metadata?.deletionTimestamp) continue;
          const why = orphanReason(kind, object, byApp.get(`${namespace}/${app}`) ?? []);
          if (!why) continue;
          const name = object.metadata?.name ?? '';
          // Re-check right before deleting: work may have started since the pass began.
          if ((await store.queue(namespace, app)).length > 0 || (await kv.get(keys.owner(namespace, app)))) continue;
          await cluster.delete(kind, namespace, name);
          report.removed.push(`${kind} ${namespace}/${name}`);
          log.warn({ kind, namespace, name, reason: why }, 'reconciler: removed an object no record accounts for');
        }
      }
    }
    return report;
  }
}

/** Why this cutover-labelled object is an orphan, or undefined when a record accounts for it. */
export function orphanReason(kind: Kind, object: KubeObject, records: DeploymentRecord[]): string | undefined {
  const live = records.filter((r) => LIVE.has(r.status));
  const version = object.metadata?.labels?.['version'];
  if (kind === 'Deployment' || kind === 'ReplicationController' || (kind === 'Service' && version !== undefined)) {
    if (version === undefined) return undefined;
    return live.some((r) => r.version === version) ? undefined : `no DEPLOYED or UNDEPLOYING record has version ${version}`;
  }
  if (kind === 'Service') {
    if (isPlaceholderStableService(object)) return 'a first deployment\'s placeholder stable Service without pending work';
    return live.length > 0 ? undefined : 'stable Service of an app with no live version';
  }
  // Ingresses and controller objects belong to an app that is live with a frontend.
  return live.some((r) => r.descriptor.frontend) ? undefined : `${kind} of an app with no live version serving a frontend`;
}
