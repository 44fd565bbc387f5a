import { StoreUnavailableError, type KvStore, type Lease, type WatchHandle } from '../store/kv.js';
import { LeaseUser, SharedLease, type LeaseHold, type LeaseSource } from '../store/shared-lease.js';
import { keys } from '../store/keys.js';
import { listAndWatch } from '../store/list-watch.js';
import type { DeploymentStore } from '../store/deployments.js';
import type { EngineEvents } from './events.js';
import type { Logger } from '../log.js';
import { sleep } from '../lib/deadline.js';
import type { DeploymentEngine } from './engine.js';
import { WorkInterrupted } from './errors.js';
import { Journal } from './journal.js';
import { writeFailure } from './outcome.js';
import { LeaseOwnership } from './ownership.js';

export interface SchedulerOptions {
  kv: KvStore;
  store: DeploymentStore;
  engine: DeploymentEngine;
  bus: EngineEvents;
  log: Logger;
  replicaId: string;
  /** TTL of this replica's lease: how long its ownerships outlive it after a crash. */
  leaseTtlSeconds: number;
  /** The replica's shared lease (else the scheduler grants and revokes one of its own). */
  leases?: LeaseSource;
  /** Attempts of an item that fails with an unexpected error before it is abandoned (ended). */
  maxAttempts?: number;
}

interface AppRun {
  abort: AbortController;
  done: Promise<void>;
}

const WATCHED = [keys.allQueues(), keys.allOwners(), keys.allReconcileRequests()];

/**
 * Runs the per-app work queues. Work (deploys, undeploys) is stored in etcd under
 * `queue/{ns}/{app}/` in arrival order; the replica that owns an app — an `owners/{ns}/{app}` key
 * held with its lease — runs the app's items one at a time, oldest first, every write fenced by
 * that ownership. Any replica may accept requests; ownership moves when the owner finishes,
 * shuts down, or dies (its lease expires and the owner key disappears, which every replica sees).
 *
 * Event-driven only: watches of the queues, the owner keys and the reconcile requests (re-listed
 * and re-watched after any watch failure), strong timers for deadlines of queued work and for
 * postponed reconcile requests — no periodic scans, so an idle replica does nothing.
 */
export class Scheduler {
  /** The replica's shared lease, or one of the scheduler's own (revoked by stop()), held per run. */
  private readonly leases: LeaseUser;
  private readonly ownLeases: SharedLease | undefined;
  private readonly runs = new Map<string, AppRun>();
  private readonly watches = new Map<string, WatchHandle>();
  private readonly laterTimers = new Map<string, NodeJS.Timeout>();
  /** Apps that got an event while this replica was running them: looked at again once the run ends. */
  private readonly dirty = new Set<string>();
  private stopping = false;
  private readonly maxAttempts: number;

  constructor(private readonly options: SchedulerOptions) {
    this.ownLeases = options.leases ? undefined : new SharedLease(options.kv, options.leaseTtlSeconds);
    this.leases = new LeaseUser(options.leases ?? this.ownLeases!, (err) => this.leaseLost(err));
    this.maxAttempts = options.maxAttempts ?? 3;
  }

  async start(): Promise<void> {
    await Promise.all(WATCHED.map((prefix) => this.watch(prefix)));
  }

  /**
   * Stops taking work; running jobs get `graceMs` to finish, then they are interrupted at their
   * next step boundary and their apps released for another replica to resume.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const t of this.laterTimers.values()) clearTimeout(t);
    this.laterTimers.clear();
    await Promise.all([...this.watches.values()].map((w) => w.close()));
    this.watches.clear();
    const all = [...this.runs.values()];
    const timer = setTimeout(() => {
      for (const run of all) run.abort.abort(new WorkInterrupted('cutover is shutting down; another replica resumes this work'));
    }, graceMs);
    await Promise.allSettled(all.map((r) => r.done));
    clearTimeout(timer);
    // A shared lease is revoked by its owner, once every user stopped.
    await this.ownLeases?.revoke().catch(() => undefined);
  }

  /** Lists `prefix`, schedules every app in it, then watches it from there (src/store/list-watch.ts). */
  private async watch(prefix: string): Promise<void> {
    const owners = prefix === keys.allOwners();
    const handle = await listAndWatch({
      kv: this.options.kv, prefix, what: 'work queues', log: this.options.log,
      onList: (entries) => {
        if (!owners) for (const e of entries) this.scheduleKey(e.key);
      },
      onEvents: (events) => {
        for (const e of events) {
          // Owner keys: a released or expired owner lets others claim. Queues and requests: new work.
          if (owners ? e.type === 'delete' : e.type === 'put') this.scheduleKey(e.key);
        }
      },
    });
    this.watches.set(prefix, handle);
  }

  private scheduleKey(key: string): void {
    const [, namespace, appName] = key.split('/');
    if (namespace && appName) this.schedule(namespace, appName);
  }

  private schedule(namespace: string, appName: string): void {
    const id = `${namespace}/${appName}`;
    if (this.stopping) return;
    if (this.runs.has(id)) {
      // The run may be past its last look at the queue (or releasing): come back when it ends.
      this.dirty.add(id);
      return;
    }
    const abort = new AbortController();
    const run: AppRun = { abort, done: Promise.resolve() };
    this.runs.set(id, run);
    run.done = this.own(namespace, appName, abort.signal).catch((err: unknown) => {
      this.options.log.error({ err, namespace, app: appName }, 'app run failed');
    }).finally(() => {
      if (this.runs.get(id) === run) this.runs.delete(id);
      if (this.dirty.delete(id)) this.schedule(namespace, appName);
    });
  }

  /** Comes back to an app later (a postponed reconcile, or etcd was unreachable). */
  private scheduleLater(namespace: string, appName: string, atMs: number): void {
    const id = `${namespace}/${appName}`;
    clearTimeout(this.laterTimers.get(id));
    this.laterTimers.set(id, setTimeout(() => {
      this.laterTimers.delete(id);
      this.schedule(namespace, appName); // if our run of it is still ending, it comes back when it has
    }, Math.max(0, atMs - Date.now())));
  }

  private async own(namespace: string, appName: string, signal: AbortSignal): Promise<void> {
    let hold: LeaseHold;
    try {
      hold = await this.leases.hold();
    } catch {
      this.scheduleLater(namespace, appName, Date.now() + 2000); // etcd unreachable: try again
      return;
    }
    try {
      await this.ownWith(hold.lease, namespace, appName, signal);
    } finally {
      hold.release(); // after the owner key's release below: nothing of ours lives with the lease now
    }
  }

  private async ownWith(lease: Lease, namespace: string, appName: string, signal: AbortSignal): Promise<void> {
    const { kv, store, log } = this.options;
    let pending: Awaited<ReturnType<DeploymentStore['queue']>>;
    let request: Awaited<ReturnType<DeploymentStore['reconcileRequest']>>;
    try {
      // Claim only apps that have work now: a claim/release cycle on an idle app would retrigger itself.
      [pending, request] = await Promise.all([store.queue(namespace, appName), store.reconcileRequest(namespace, appName)]);
    } catch {
      this.scheduleLater(namespace, appName, Date.now() + 2000); // etcd unreachable: try again
      return;
    }
    if (pending.length === 0 && !request) return;
    if (pending.length === 0 && request?.notBefore && Date.parse(request.notBefore) > Date.now()) {
      this.scheduleLater(namespace, appName, Date.parse(request.notBefore));
      return;
    }
    const ownerKey = keys.owner(namespace, appName);
    const claim = await kv.transact([{ key: ownerKey, modRevision: '0' }], [{
      type: 'put', key: ownerKey, leaseId: lease.id,
      value: JSON.stringify({ replica: this.options.replicaId, since: new Date().toISOString() }),
    }]).catch(() => undefined);
    if (!claim) {
      this.scheduleLater(namespace, appName, Date.now() + 2000);
      return;
    }
    if (!claim.succeeded) return; // another replica owns it; its release wakes us
    const ownership = new LeaseOwnership(namespace, appName, lease, ownerKey, claim.revision, signal);
    const appLog = log.child({ namespace, app: appName });
    appLog.debug('took ownership of app');
    try {
      await this.work(ownership, appLog);
    } finally {
      ownership.dispose();
      // Release even after a failure, so the app is never stuck behind a dead run of ours.
      await kv.transact([{ key: ownerKey, modRevision: claim.revision }], [{ type: 'delete', key: ownerKey }]).catch(() => undefined);
      appLog.debug('released ownership of app');
    }
  }

  /** Runs the app's queue until it is empty, then its upkeep. */
  private async work(ownership: LeaseOwnership, appLog: Logger): Promise<void> {
    const { store, engine } = this.options;
    const { namespace, appName } = ownership;
    let backoff = 500;
    let attempts = 0;
    while (!ownership.signal.aborted) {
      let queue;
      try {
        queue = await store.queue(namespace, appName);
      } catch (err) {
        appLog.warn({ err: (err as Error).message }, 'reading the work queue failed; retrying');
        await sleep(backoff, ownership.signal).catch(() => undefined);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      const next = queue[0];
      if (!next) {
        try {
          const { retryAt } = await engine.housekeep(ownership);
          if (retryAt !== undefined) this.scheduleLater(namespace, appName, retryAt);
        } catch (err) {
          if (!(err instanceof WorkInterrupted)) appLog.warn({ err: (err as Error).message }, 'app upkeep failed; trying again later');
          this.scheduleLater(namespace, appName, Date.now() + 5000);
        }
        return;
      }
      const expiry = this.expireWaitingAt(queue.slice(1), ownership, appLog);
      try {
        await engine.run(next, ownership);
        backoff = 500;
        attempts = 0;
      } catch (err) {
        if (err instanceof WorkInterrupted || ownership.signal.aborted) return;
        if (err instanceof StoreUnavailableError) {
          // etcd is away: not the item's fault. Try again (it resumes where it was); deadlines still apply.
          appLog.warn({ err: err.message, deploymentId: next.deploymentId }, 'etcd unavailable; the work resumes when it is back');
          await sleep(backoff, ownership.signal).catch(() => undefined);
          backoff = Math.min(backoff * 2, 5000);
          continue;
        }
        attempts++;
        appLog.error({ err, deploymentId: next.deploymentId, attempt: attempts }, 'work failed unexpectedly');
        if (attempts >= this.maxAttempts) {
          attempts = 0;
          await engine.abandon(next, ownership, err as Error).catch((abandonErr: unknown) => {
            appLog.error({ err: abandonErr, workId: next.workId }, 'could not end the failing work; removing it from the queue');
            return store.dequeue(namespace, appName, next.workId, ownership.fence).catch(() => undefined);
          });
        } else {
          await sleep(backoff, ownership.signal).catch(() => undefined);
          backoff = Math.min(backoff * 2, 10_000);
        }
      } finally {
        expiry.cancel();
      }
    }
  }

  /**
   * Deployments waiting behind a long one must not outlive their deadline in the queue: a timer at
   * the earliest deadline among them ends those whose deadline passed (FAILURE with the item's
   * removal in one transaction; if their turn comes at the same moment, one of the two writes wins).
   */
  private expireWaitingAt(waiting: Awaited<ReturnType<DeploymentStore['queue']>>, ownership: LeaseOwnership, appLog: Logger): { cancel(): void } {
    const { store } = this.options;
    let timer: NodeJS.Timeout | undefined;
    let cancelled = false;
    const deploys = waiting.filter((q) => q.kind === 'deploy' && !q.unreadable);
    const arm = async (): Promise<void> => {
      const found = await Promise.all(deploys.map((q) => store.get(ownership.namespace, q.deploymentId).catch(() => undefined)));
      const queued = found.map((f, i) => ({ f, q: deploys[i]! })).filter(({ f }) => f && f.value.status === 'DEPLOYING' && f.value.step === 'queued' && f.value.deadline);
      const earliest = Math.min(...queued.map(({ f }) => Date.parse(f!.value.deadline!)));
      if (cancelled || !Number.isFinite(earliest)) return;
      timer = setTimeout(() => {
        void (async () => {
          for (const { f, q } of queued) {
            if (Date.parse(f!.value.deadline!) > Date.now()) continue;
            const journal = new Journal(f!, store, this.options.bus, appLog, { signal: ownership.signal, fence: ownership.fence }, () => new Date());
            await writeFailure(journal, 'deadline passed while waiting in the queue', ['Deployment failed: deadline passed while waiting in the queue; nothing was created'], {
              dequeue: q.workId, now: () => new Date(),
            }).catch(() => undefined);
          }
          if (!cancelled) await arm();
        })();
      }, Math.max(0, earliest - Date.now()));
    };
    if (deploys.length > 0) void arm().catch(() => undefined);
    return {
      cancel: () => {
        cancelled = true;
        if (timer) clearTimeout(timer);
      },
    };
  }

  /** Every run stops: its owner key died with the lease; the apps are looked at again with a new one. */
  private leaseLost(err: Error): void {
    this.options.log.error({ err: err.message }, 'lost the etcd lease: stopping work on owned apps');
    const apps = [...this.runs.keys()];
    for (const run of this.runs.values()) run.abort.abort(new WorkInterrupted('lost ownership (etcd lease expired)'));
    // Come back to these apps with a new lease; the owner keys died with the old one.
    for (const id of apps) {
      const [namespace, appName] = id.split('/') as [string, string];
      this.scheduleLater(namespace, appName, Date.now() + 500);
    }
  }
}
