import type { KvStore, Lease, WatchHandle } from '../store/kv.js';
import { keys } from '../store/keys.js';
import type { DeploymentStore } from '../store/deployments.js';
import type { Logger } from '../log.js';
import type { DeploymentEngine } from './engine.js';
import { WorkInterrupted } from './errors.js';

export interface SchedulerOptions {
  kv: KvStore;
  store: DeploymentStore;
  engine: DeploymentEngine;
  log: Logger;
  replicaId: string;
  /** TTL of this replica's lease: how long its ownerships outlive it after a crash. */
  leaseTtlSeconds: number;
  /** Safety net against missed watch events: how often every queue is looked at. */
  resyncIntervalMs: number;
}

interface AppRun {
  abort: AbortController;
  done: Promise<void>;
}

/**
 * Runs the per-app work queues. Work (deploys, undeploys) is stored in etcd under
 * `queue/{ns}/{app}/` in arrival order; the replica that owns an app — an `owners/{ns}/{app}` key
 * held with its lease — runs the app's items one at a time, oldest first. Any replica may accept
 * requests; ownership moves when the owner finishes, shuts down, or dies (its lease expires and
 * the owner key disappears, which every replica sees in its watch).
 */
export class Scheduler {
  private lease: Lease | undefined;
  private readonly runs = new Map<string, AppRun>();
  private readonly watches: WatchHandle[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly options: SchedulerOptions) {}

  /** How many apps this replica is working on. */
  get activeApps(): number {
    return this.runs.size;
  }

  async start(): Promise<void> {
    await this.ensureLease();
    const { kv } = this.options;
    this.watches.push(await kv.watch(keys.allQueues(), undefined, {
      onEvents: (events) => {
        for (const e of events) if (e.type === 'put') this.scheduleKey(e.key);
      },
      onError: (err) => this.rewatchLater(err),
    }));
    this.watches.push(await kv.watch(keys.allOwners(), undefined, {
      onEvents: (events) => {
        for (const e of events) if (e.type === 'delete') this.scheduleKey(e.key);
      },
      onError: (err) => this.rewatchLater(err),
    }));
    this.resyncTimer = setInterval(() => void this.resync(), this.options.resyncIntervalMs);
    this.resyncTimer.unref();
    void this.resync();
  }

  /**
   * Stops taking work; running jobs get `graceMs` to finish, then they are interrupted at their
   * next step boundary and their apps released for another replica to resume.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await Promise.all(this.watches.splice(0).map((w) => w.close()));
    const all = [...this.runs.values()];
    const timer = setTimeout(() => {
      for (const run of all) run.abort.abort(new WorkInterrupted('cutover is shutting down; another replica resumes this work'));
    }, graceMs);
    await Promise.allSettled(all.map((r) => r.done));
    clearTimeout(timer);
    await this.lease?.revoke().catch(() => undefined);
  }

  /** Looks at every queue and tries to own the apps that have work and no owner. */
  async resync(): Promise<void> {
    if (this.stopping) return;
    try {
      for (const app of await this.options.store.appsWithWork()) this.schedule(app.namespace, app.appName);
      for (const id of this.runs.keys()) {
        const [namespace, appName] = id.split('/') as [string, string];
        await this.expireQueued(namespace, appName);
      }
    } catch (err) {
      this.options.log.debug({ err: (err as Error).message }, 'queue resync failed; retrying at the next interval');
    }
  }

  /**
   * Deployments waiting behind a long one must not outlive their deadline in the queue: the
   * owner ends them as FAILURE (record and queue item in one transaction; a concurrent start of
   * the same item loses the compare-and-swap, or wins it and this one does).
   */
  private async expireQueued(namespace: string, appName: string): Promise<void> {
    const { store } = this.options;
    const waiting = (await store.queue(namespace, appName)).slice(1);
    const now = Date.now();
    for (const item of waiting) {
      if (item.kind !== 'deploy') continue;
      const found = await store.get(namespace, item.deploymentId);
      const r = found?.value;
      if (!found || !r || r.status !== 'DEPLOYING' || r.step !== 'queued' || !r.deadline || Date.parse(r.deadline) > now) continue;
      const reason = 'deadline passed while waiting in the queue';
      await store.update({
        record: { ...r, status: 'FAILURE', step: 'failed', failureReason: reason, lastModified: new Date().toISOString(), times: { ...r.times, finished: new Date().toISOString() } },
        expectedRevision: found.revision,
        events: [{ type: 'log', message: `Deployment failed: ${reason}; nothing was created` }, { type: 'status', status: 'FAILURE', step: 'failed' }],
        dequeue: item.workId,
      }).catch(() => undefined);
    }
  }

  private scheduleKey(key: string): void {
    const [, namespace, appName] = key.split('/');
    if (namespace && appName) this.schedule(namespace, appName);
  }

  private schedule(namespace: string, appName: string): void {
    const id = `${namespace}/${appName}`;
    if (this.stopping || this.runs.has(id)) return;
    const abort = new AbortController();
    const run: AppRun = { abort, done: Promise.resolve() };
    this.runs.set(id, run);
    run.done = this.own(namespace, appName, abort.signal).finally(() => {
      if (this.runs.get(id) === run) this.runs.delete(id);
    });
  }

  private async own(namespace: string, appName: string, signal: AbortSignal): Promise<void> {
    const { kv, store, engine, log } = this.options;
    let lease: Lease;
    try {
      lease = await this.ensureLease();
    } catch {
      return; // etcd unreachable; the next resync tries again
    }
    // Claim only apps that have work: a claim/release cycle on an idle app would retrigger itself.
    const pending = await store.queue(namespace, appName).catch(() => undefined);
    if (!pending || pending.length === 0) return;
    const ownerKey = keys.owner(namespace, appName);
    const claim = await kv.transact([{ key: ownerKey, modRevision: '0' }], [{
      type: 'put', key: ownerKey, leaseId: lease.id,
      value: JSON.stringify({ replica: this.options.replicaId, since: new Date().toISOString() }),
    }]).catch(() => ({ succeeded: false, revision: '0' }));
    if (!claim.succeeded) return;
    const appLog = log.child({ namespace, app: appName });
    appLog.debug('took ownership of app');
    let backoff = 500;
    try {
      while (!signal.aborted) {
        let next;
        try {
          next = (await store.queue(namespace, appName))[0];
        } catch (err) {
          appLog.warn({ err: (err as Error).message }, 'reading the work queue failed; retrying');
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
          continue;
        }
        if (!next) break;
        try {
          await engine.run(next, namespace, appName, signal);
          backoff = 500;
        } catch (err) {
          if (err instanceof WorkInterrupted || signal.aborted) break;
          appLog.error({ err, deploymentId: next.deploymentId }, 'work failed unexpectedly; retrying');
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 10_000);
        }
      }
    } finally {
      // Release even after a failure, so the app is never stuck behind a dead run of ours.
      await kv.transact([{ key: ownerKey, modRevision: claim.revision }], [{ type: 'delete', key: ownerKey }]).catch(() => undefined);
      appLog.debug('released ownership of app');
    }
  }

  private async ensureLease(): Promise<Lease> {
    if (this.lease) return this.lease;
    const lease = await this.options.kv.grantLease(this.options.leaseTtlSeconds);
    this.lease = lease;
    lease.onLost((err) => {
      this.options.log.error({ err: err.message }, 'lost the etcd lease: stopping work on owned apps');
      if (this.lease === lease) this.lease = undefined;
      for (const run of this.runs.values()) run.abort.abort(new WorkInterrupted('lost ownership (etcd lease expired)'));
      void this.resync();
    });
    return lease;
  }

  private rewatchLater(err: Error): void {
    this.options.log.warn({ err: err.message }, 'queue watch ended; relying on periodic resync');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
