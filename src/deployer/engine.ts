import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import type { Descriptor } from '../domain/types.js';
import type { DeploymentRecord, PodHealth, QueueItem } from '../domain/deployment.js';
import { versionedName } from '../domain/names.js';
import type { DeploymentStore } from '../store/deployments.js';
import type { EnvironmentStore } from '../store/environment.js';
import type { Logger } from '../log.js';
import { validateDescriptor } from '../api/validation/descriptor.js';
import {
  selectHealthCheckPort, summarise, waitUntilAllHealthy, type HealthChecker, type HealthResult, type HealthTarget,
} from '../healthcheck/index.js';
import type { Cluster, Kind, KubeObject } from './cluster.js';
import type { EngineEvents } from './events.js';
import { Journal } from './journal.js';
import { DEPLOYMENT_ID_ANNOTATION, mayManageStableService, mayManageVersioned } from './labels.js';
import {
  injectedEnvironmentNames, isPlaceholderStableService, placeholderStableService, versionedService, versionedWorkload,
  type DeploymentFacts, type EnvValue,
} from './manifests.js';
import { evaluatePods, type ReadyPod } from './readiness.js';
import type { IngressProfile } from './ingress-profiles.js';
import { DeploymentFailure, WorkInterrupted } from './errors.js';
import { noFailpoints, type Failpoints } from './failpoints.js';
import { ForeignObjectError, type TrafficContext, type TrafficSnapshot, type TrafficTarget } from './traffic.js';

export interface EngineConfig {
  defaultDrainSeconds: number;
  defaultHealthCheckTimeoutSeconds: number;
  defaultDeadlineSeconds: number;
  healthCheckIntervalMs: number;
  /** Upper bound of removing a failed deployment's objects after its deadline passed. */
  cleanupTimeoutSeconds: number;
}

export interface EngineDeps {
  store: DeploymentStore;
  environment: EnvironmentStore;
  cluster: Cluster;
  traffic: TrafficTarget[];
  profile: IngressProfile;
  healthChecker: HealthChecker;
  bus: EngineEvents;
  log: Logger;
  now: () => Date;
  config: EngineConfig;
  replicaId: string;
  failpoints?: Failpoints;
}

export { DeploymentFailure, WorkInterrupted } from './errors.js';

const WORKLOAD_KINDS: Kind[] = ['Deployment', 'ReplicationController'];

/**
 * The blue-green engine. A deployment is a sequence of named steps — preparing, creating
 * resources, waiting for pods, health checking, switching traffic, then draining the replaced
 * version — each recorded in the deployment record before it starts, so a later run (another
 * replica after a crash) knows where to resume. Until traffic is switched the running version
 * is never touched; a failure removes only what this deployment created.
 */
export class DeploymentEngine {
  private readonly failpoints: Failpoints;

  constructor(private readonly deps: EngineDeps) {
    this.failpoints = deps.failpoints ?? noFailpoints;
  }

  /**
   * Runs one queue item to its end. Deployment failures end as FAILURE records; the promise
   * rejects only with WorkInterrupted (signal aborted: shutdown or lost ownership) or when the
   * store stays unreachable.
   */
  async run(item: QueueItem, namespace: string, appName: string, signal: AbortSignal): Promise<void> {
    const { store } = this.deps;
    const found = await store.get(namespace, item.deploymentId);
    if (!found) {
      await store.dequeue(namespace, appName, item.workId);
      return;
    }
    const queuedMs = Math.max(0, this.deps.now().getTime() - Date.parse(item.enqueued));
    this.deps.bus.publish({ type: 'work-started', namespace, appName, deploymentId: item.deploymentId, kind: item.kind, queuedMs, at: this.deps.now() });
    try {
      if (item.kind === 'deploy') await this.runDeploy(found, item, signal);
      else await this.runUndeploy(found, item, signal);
    } finally {
      this.deps.bus.publish({ type: 'work-finished', namespace, appName, deploymentId: item.deploymentId, kind: item.kind, at: this.deps.now() });
    }
  }

  // --- deploy --------------------------------------------------------------------------------

  private async runDeploy(found: { value: DeploymentRecord; revision: string }, item: QueueItem, outer: AbortSignal): Promise<void> {
    const record = found.value;
    if (record.status === 'DEPLOYED') {
      // The switch happened in an earlier run; only the drain of the replaced version is left.
      const journal = this.journal(found, outer);
      await this.drainReplaced(journal, outer);
      await this.deps.store.dequeue(record.namespace, record.appName, item.workId);
      return;
    }
    if (record.status !== 'DEPLOYING') {
      await this.deps.store.dequeue(record.namespace, record.appName, item.workId);
      return;
    }

    const deadline = Date.parse(record.deadline ?? '') || this.deps.now().getTime() + this.deps.config.defaultDeadlineSeconds * 1000;
    if (deadline <= this.deps.now().getTime()) {
      await this.expiredBeforeStart(found, item, outer);
      return;
    }
    const deadlineSignal = AbortSignal.timeout(Math.max(1, deadline - this.deps.now().getTime()));
    const signal = AbortSignal.any([outer, deadlineSignal]);
    const journal = this.journal(found, signal);
    let switched = false;

    try {
      const resumed = record.step !== 'queued';
      await journal.update((r) => ({ ...r, step: 'preparing', owner: this.deps.replicaId, times: { ...r.times, started: r.times.started ?? this.iso() } }), [
        resumed
          ? `Resuming deployment ${r(record)} from step "${record.step}" on replica ${this.deps.replicaId}${record.owner && record.owner !== this.deps.replicaId ? ` (replica ${record.owner} stopped working on it)` : ''}`
          : `Deployment ${r(record)} started on replica ${this.deps.replicaId}`,
      ]);
      const descriptor = this.validatedCopy(record);
      const facts = await this.prepare(journal, descriptor, signal);

      await journal.update((x) => ({ ...x, step: 'creating-resources', OldVersion: facts.liveVersion ?? '', injectedEnvironment: injectedEnvironmentNames(facts) }), [
        facts.liveVersion ? `Running version is ${facts.liveVersion}; it stays untouched until the new version is healthy` : 'No version of this app is running yet',
      ]);
      await this.createResources(journal, facts, signal);

      await journal.update((x) => ({ ...x, step: 'waiting-for-pods', times: { ...x.times, resourcesCreated: this.iso() } }));
      const healthTimeoutS = descriptor.healthCheckTimeout ?? this.deps.config.defaultHealthCheckTimeoutSeconds;
      const readyBy = AbortSignal.any([signal, AbortSignal.timeout(healthTimeoutS * 1000)]);
      const pods = await this.waitForPods(journal, descriptor, record.version, readyBy, healthTimeoutS);

      const checkHealth = descriptor.useHealthCheck && !descriptor.ignoreHealthCheck;
      await journal.update((x) => ({ ...x, step: 'health-checking', times: { ...x.times, podsReady: this.iso() } }), [
        `All ${pods.length} pods are ready${checkHealth ? '' : descriptor.useHealthCheck ? '; health check ignored (ignoreHealthCheck)' : '; no health check configured'}`,
      ]);
      await this.failpoints.hit('before-health-check', signal);
      if (checkHealth) await this.checkHealth(journal, descriptor, record.version, pods, readyBy, healthTimeoutS);

      await journal.update((x) => ({ ...x, step: 'switching-traffic', times: { ...x.times, healthy: this.iso() } }));
      const healthyAt = Date.now();
      const switchLines = await this.switchTraffic(journal, descriptor, record.version, signal);
      switched = true;
      const overheadMs = Date.now() - healthyAt;
      const switchedAt = this.iso();

      const previous = await this.deployedRecordsOf(descriptor, record.id);
      await journal.update((x) => ({
        ...x, status: 'DEPLOYED', step: 'deployed', failureReason: undefined,
        replaces: previous[0]?.id, times: { ...x.times, switched: switchedAt, finished: this.iso() },
      }), [...switchLines, `Traffic switched to version ${record.version} (${overheadMs} ms after the last health check); deployment successful`], { final: true });
      this.deps.bus.publish({ type: 'switch', namespace: record.namespace, appName: record.appName, deploymentId: record.id, fromVersion: facts.liveVersion ?? '', toVersion: record.version, overheadMs, at: this.deps.now() });

      for (const old of previous) await this.markReplaced(old, journal.record);
      await this.drainReplaced(journal, outer);
      await this.deps.store.dequeue(record.namespace, record.appName, item.workId);
    } catch (err) {
      if (err instanceof WorkInterrupted) throw err;
      if (outer.aborted) throw new WorkInterrupted(String((outer.reason as Error)?.message ?? outer.reason));
      if (switched) {
        // Traffic is on the new version; only the drain failed. The deployment stands.
        await journal.line(`Removing the replaced version failed: ${(err as Error).message}`);
        await this.deps.store.dequeue(record.namespace, record.appName, item.workId);
        return;
      }
      const reason = deadlineSignal.aborted && !(err instanceof DeploymentFailure)
        ? `deadline of ${Math.round((deadline - Date.parse(record.created)) / 1000)} s exceeded during step "${journal.record.step}"`
        : (err as Error).message;
      if (!(err instanceof DeploymentFailure)) this.deps.log.warn({ err, deploymentId: record.id }, 'deployment failed');
      await this.failDeployment(journal, reason, item.workId, outer);
    }
  }

  /**
   * The deadline passed before this run could start: while the deployment was queued, or while
   * no replica worked on it (its owner died). Nothing new may be started; whatever an earlier run
   * created is rolled back, so the running version serves as before.
   */
  private async expiredBeforeStart(found: { value: DeploymentRecord; revision: string }, item: QueueItem, outer: AbortSignal): Promise<void> {
    const record = found.value;
    const journal = this.journal(found, outer);
    const where = record.step === 'queued' ? 'while waiting in the queue' : `during step "${record.step}" while no replica was working on it${record.owner ? ` (replica ${record.owner} stopped)` : ''}`;
    await journal.update((x) => ({ ...x, owner: this.deps.replicaId }), [`Deadline passed ${where}; rolling back on replica ${this.deps.replicaId}`]);
    await this.failDeployment(journal, `deadline passed ${where}; rolled back`, item.workId, outer);
  }

  private journal(found: { value: DeploymentRecord; revision: string }, signal: AbortSignal): Journal {
    return new Journal(found, this.deps.store, this.deps.bus, this.deps.log.child({ deploymentId: found.value.id }), signal, this.deps.now);
  }

  private iso(): string {
    return this.deps.now().toISOString();
  }

  private validatedCopy(record: DeploymentRecord): Descriptor {
    const result = validateDescriptor({ ...record.descriptor });
    if (!result.ok) {
      throw new DeploymentFailure(`the descriptor copy is invalid: ${result.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    }
    return { ...record.descriptor, ...result.value } as Descriptor;
  }

  private async prepare(journal: Journal, d: Descriptor, signal: AbortSignal): Promise<DeploymentFacts & { liveVersion?: string }> {
    const record = journal.record;
    const version = record.version;
    const name = versionedName(d.appName, version);
    let liveVersion = await this.liveVersion(d, signal);
    if (liveVersion === version) {
      const ours = await this.deps.cluster.get(d.controllerKind, d.namespace, name, signal);
      if (ours?.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] !== record.id) {
        throw new DeploymentFailure(`version ${version} of ${d.appName} is already running; nothing was changed (deploy another version, or "#" for the next number)`);
      }
      // An earlier run of this deployment already switched (part of) the traffic: resume it.
      liveVersion = record.OldVersion || undefined;
    }
    for (const kind of [...WORKLOAD_KINDS, 'Service' as const]) {
      const existing = await this.deps.cluster.get(kind, d.namespace, name, signal);
      if (existing && existing.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] !== record.id) {
        throw new DeploymentFailure(`${kind} ${name} already exists (${existing.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] ? `from deployment ${existing.metadata.annotations[DEPLOYMENT_ID_ANNOTATION]}` : 'not created by this deployment'}); nothing was changed`);
      }
    }
    const env = await this.deps.environment.read();
    if (env.skipped.length > 0) await journal.line(`Skipped environment keys that are not valid variable names: ${env.skipped.join(', ')}`);
    const environment: EnvValue[] = env.entries.map((e) => ({ name: e.name, value: e.value }));
    const facts = { descriptor: d, version, deploymentId: record.id, environment };
    const injected = injectedEnvironmentNames(facts);
    if (injected.length > 0) await journal.line(`Injecting environment variables: ${injected.join(', ')}`);
    return { ...facts, ...(liveVersion ? { liveVersion } : {}) };
  }

  /** The version that receives traffic now: from the traffic targets, else the DEPLOYED record. */
  private async liveVersion(d: Descriptor, signal: AbortSignal): Promise<string | undefined> {
    for (const target of this.deps.traffic) {
      const v = await target.currentVersion(d, signal);
      if (v) return v;
    }
    const deployed = await this.deployedRecordsOf(d);
    return deployed[0]?.version;
  }

  private async deployedRecordsOf(d: Descriptor, exceptId?: string): Promise<DeploymentRecord[]> {
    const all = await this.deps.store.list(d.namespace, d.appName);
    return all.map((x) => x.value).filter((x) => x.status === 'DEPLOYED' && x.id !== exceptId);
  }

  private async createResources(journal: Journal, facts: DeploymentFacts, signal: AbortSignal): Promise<void> {
    const d = facts.descriptor;
    const record = journal.record;
    const ownedByThis = (o: KubeObject) => o.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] === record.id;
    const workload = versionedWorkload(facts);
    const service = versionedService(facts, this.deps.profile.decorate(d).serviceAnnotations);
    const items: Array<{ kind: Kind; object: KubeObject }> = [{ kind: d.controllerKind, object: workload as KubeObject }];
    if (service) items.push({ kind: 'Service', object: service as KubeObject });
    await Promise.all(items.map(async ({ kind, object }) => {
      const name = object.metadata!.name!;
      const existing = await this.deps.cluster.get(kind, d.namespace, name, signal);
      if (existing) {
        // Only reachable on resume: prepare() refused objects of other deployments.
        await journal.line(`${kind} ${name} already exists from this deployment; reusing it`);
        return;
      }
      await this.deps.cluster.create(kind, object, signal);
      await journal.line(`Created ${kind} ${name}${kind === d.controllerKind ? ` with ${d.replicas} replica(s)` : ''}`);
    }));
    if (!service) {
      await journal.line('The pods have no ports: no Services are created (a worker app)');
      return;
    }
    // First deployment: create the stable Service now, selecting no pods yet, so the switch is a
    // quick selector change (a Service create allocates a cluster IP and can take a second).
    const placeholder = placeholderStableService(d, record.id);
    const existingStable = await this.deps.cluster.get('Service', d.namespace, d.appName, signal);
    if (placeholder && !existingStable) {
      await this.deps.cluster.create('Service', placeholder as KubeObject, signal);
      await journal.line(`Created stable Service ${d.appName} (selecting no pods until the switch)`);
    } else if (existingStable && !ownedByThis(existingStable) && !mayManageStableService(existingStable.metadata, d.appName)) {
      throw new ForeignObjectError('Service', d.namespace, d.appName);
    }
  }

  private async waitForPods(journal: Journal, d: Descriptor, version: string, signal: AbortSignal, timeoutS: number): Promise<ReadyPod[]> {
    const selector = `app=${d.appName},version=${version}`;
    let lastDetail = '';
    let lastLogged = 0;
    let settle!: (pods: ReadyPod[]) => void;
    let fail!: (err: Error) => void;
    const done = new Promise<ReadyPod[]>((resolve, reject) => {
      settle = resolve;
      fail = reject;
    });
    const onAbort = () => fail(signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError'
      ? new DeploymentFailure(`new version not ready within ${timeoutS} s: ${lastDetail || 'no pods yet'}`)
      : new WorkInterrupted('stopped'));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    const watch = await this.deps.cluster.watchPods(d.namespace, selector, (pods: V1Pod[]) => {
      const verdict = evaluatePods(pods, d.replicas);
      if (verdict.state === 'ready') settle(verdict.pods);
      else if (verdict.state === 'failed') fail(new DeploymentFailure(verdict.reason));
      else if (verdict.detail !== lastDetail) {
        lastDetail = verdict.detail;
        if (Date.now() - lastLogged > 2000) {
          lastLogged = Date.now();
          void journal.line(`Waiting for pods: ${verdict.detail}`).catch(() => undefined);
        }
      }
    });
    try {
      return await done;
    } finally {
      watch.stop();
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async checkHealth(journal: Journal, d: Descriptor, version: string, pods: ReadyPod[], signal: AbortSignal, timeoutS: number): Promise<void> {
    const port = selectHealthCheckPort(d);
    const path = d.healthCheckPath.replace(/^\/+/, '');
    await journal.line(`Health check (${d.healthCheckType}) on port ${port}, path /${path}, of ${pods.length} pods`);
    const targets: HealthTarget[] = pods.map((p) => ({ namespace: d.namespace, podName: p.name, podIP: p.ip, port, path }));
    const latest = new Map<string, HealthResult>();
    const lastState = new Map<string, string>();
    try {
      await waitUntilAllHealthy({
        targets, type: d.healthCheckType, checker: this.deps.healthChecker, intervalMs: this.deps.config.healthCheckIntervalMs, signal,
        onResult: async (result) => {
          latest.set(result.podName, result);
          await journal.health(toPodHealth(result)).catch(() => undefined);
          const state = result.healthy ? 'healthy' : result.reason;
          if (lastState.get(result.podName) !== state) {
            lastState.set(result.podName, state);
            await journal.line(`Pod ${result.podName}: ${result.healthy ? 'healthy' : `not healthy yet (${result.reason})`}`).catch(() => undefined);
          }
        },
      });
    } catch (err) {
      if (signal.reason instanceof DOMException && signal.reason.name === 'TimeoutError') {
        throw new DeploymentFailure(`new version not healthy within ${timeoutS} s: ${summarise(latest, targets.length)}`);
      }
      throw err;
    }
    await journal.line(`All ${pods.length} pods of version ${version} are healthy`);
  }

  /**
   * Switches every traffic target, or none: on a failure the targets already switched are put
   * back, newest first. Returns the log lines of the switch; the caller stores them with the
   * status change, so the switch itself waits for no etcd write.
   */
  private async switchTraffic(journal: Journal, d: Descriptor, version: string, signal: AbortSignal): Promise<string[]> {
    const lines: string[] = [];
    const ctx: TrafficContext = { descriptor: d, version, signal, log: async (line) => { lines.push(line); } };
    const snapshots: Array<{ target: TrafficTarget; snapshot: TrafficSnapshot }> = [];
    for (const target of this.deps.traffic) snapshots.push({ target, snapshot: await target.capture(ctx) });
    const done: typeof snapshots = [];
    try {
      for (const s of snapshots) {
        if (done.length > 0) await this.failpoints.hit('after-first-traffic-target', signal);
        await s.target.switchTo(ctx, s.snapshot);
        done.push(s);
      }
      return lines;
    } catch (err) {
      const restoreSignal = AbortSignal.timeout(this.deps.config.cleanupTimeoutSeconds * 1000);
      for (const s of done.reverse()) {
        try {
          await s.target.restore({ ...ctx, signal: restoreSignal }, s.snapshot);
        } catch (restoreErr) {
          lines.push(`Restoring ${s.target.name} failed: ${(restoreErr as Error).message}`);
        }
      }
      for (const line of lines) await journal.line(line).catch(() => undefined);
      throw new DeploymentFailure(`switching traffic failed: ${(err as Error).message}`);
    }
  }

  private async markReplaced(old: DeploymentRecord, by: DeploymentRecord): Promise<void> {
    const found = await this.deps.store.get(old.namespace, old.id);
    if (!found || found.value.status !== 'DEPLOYED') return;
    const j = this.journal(found, AbortSignal.timeout(60_000));
    const drainS = by.descriptor.drainSeconds ?? this.deps.config.defaultDrainSeconds;
    const deadline = new Date(Date.now() + (drainS + this.deps.config.defaultDeadlineSeconds) * 1000).toISOString();
    await j.update((x) => ({ ...x, status: 'UNDEPLOYING', step: 'draining', replacedBy: by.id, deadline, times: { ...x.times, drainStarted: this.iso() } }), [
      `Replaced by deployment ${by.id} (version ${by.version}); version ${old.version} keeps running for the drain delay, then is removed`,
    ], { final: true });
  }

  /** Waits out the drain delay of the version this deployment replaced, then removes it. */
  private async drainReplaced(journal: Journal, signal: AbortSignal): Promise<void> {
    const record = journal.record;
    if (!record.replaces) return;
    const found = await this.deps.store.get(record.namespace, record.replaces);
    if (!found || found.value.status !== 'UNDEPLOYING' || (found.value.step !== 'draining' && found.value.step !== 'removing')) return;
    const old = found.value;
    const oldJournal = this.journal(found, signal);
    const drainS = record.descriptor.drainSeconds ?? this.deps.config.defaultDrainSeconds;
    const startedAt = Date.parse(old.times.drainStarted ?? '') || Date.now();
    const remaining = Math.max(0, startedAt + drainS * 1000 - Date.now());
    if (remaining > 0) await oldJournal.line(`Draining for ${Math.round(remaining / 1000)} s before removing version ${old.version}`);
    await abortableSleep(remaining, signal);
    const live = await this.liveVersion(record.descriptor, signal);
    if (live === old.version) {
      await oldJournal.update((x) => ({ ...x, status: 'DEPLOYED', step: 'deployed' }), ['Version is live again; not removing it'], { final: true });
      return;
    }
    await this.failpoints.hit('before-drain-removal', signal);
    await oldJournal.update((x) => ({ ...x, step: 'removing', owner: this.deps.replicaId }));
    const removed = await this.removeVersion(old.descriptor, old.version, signal);
    await oldJournal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: this.iso() } }), [
      removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing left to remove', `Version ${old.version} undeployed (replaced by ${record.id})`,
    ], { final: true });
  }

  /** Removes the versioned workload and Service of `version`, if cutover (or Amdatu) made them. */
  private async removeVersion(d: Descriptor, version: string, signal: AbortSignal): Promise<string[]> {
    const name = versionedName(d.appName, version);
    const removed: string[] = [];
    for (const kind of [...WORKLOAD_KINDS, 'Service' as const]) {
      const existing = await this.deps.cluster.get(kind, d.namespace, name, signal);
      if (!existing) continue;
      if (!mayManageVersioned(existing.metadata, d.appName)) continue;
      if (await this.deps.cluster.delete(kind, d.namespace, name, signal)) removed.push(`${kind} ${name}`);
    }
    return removed;
  }

  /**
   * Ends a deployment as FAILURE after putting things back: traffic that points at this version
   * (only possible after a crash mid-switch) goes back to the version that ran before, and every
   * object carrying this deployment's id is removed. FAILURE is written only once that is done,
   * or — if the cleanup cannot finish within its bound — with a reason saying what is left to
   * the reconciler, so no record stays DEPLOYING past its deadline.
   */
  private async failDeployment(journal: Journal, reason: string, workId: string, outer: AbortSignal): Promise<void> {
    const record = journal.record;
    const cleanupSignal = AbortSignal.any([outer, AbortSignal.timeout(this.deps.config.cleanupTimeoutSeconds * 1000)]);
    const lines = [`Deployment failed: ${reason}`];
    let incomplete = false;
    try {
      lines.push(...await this.restoreTrafficFrom(record, cleanupSignal));
    } catch (err) {
      incomplete = true;
      lines.push(`Could not restore traffic: ${(err as Error).message}`);
    }
    const removed: string[] = [];
    for (const { kind, name, isOurs } of this.objectsOf(record)) {
      try {
        const existing = await this.deps.cluster.get(kind, record.namespace, name, cleanupSignal);
        if (!existing || !isOurs(existing)) continue;
        await this.deps.cluster.delete(kind, record.namespace, name, cleanupSignal);
        removed.push(`${kind} ${name}`);
      } catch (err) {
        incomplete = true;
        lines.push(`Could not remove ${kind} ${name}: ${(err as Error).message} (the reconciler will)`);
      }
    }
    if (outer.aborted) throw new WorkInterrupted('stopped during cleanup');
    lines.push(removed.length > 0 ? `Removed ${removed.join(', ')}` : 'Nothing of this deployment to remove');
    lines.push(record.OldVersion ? `Version ${record.OldVersion} keeps running` : 'No other version was running');
    await journal.update((x) => ({
      ...x, status: 'FAILURE', step: 'failed', failureReason: incomplete ? `${reason} (cleanup incomplete; the reconciler removes the rest)` : reason,
      times: { ...x.times, finished: this.iso() },
    }), lines, { dequeue: workId, final: true });
  }

  /** The versioned objects (and a first deployment's placeholder Service) a deployment creates. */
  private objectsOf(record: DeploymentRecord): Array<{ kind: Kind; name: string; isOurs: (o: KubeObject) => boolean }> {
    const name = versionedName(record.appName, record.version);
    const ours = (o: KubeObject) => o.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION] === record.id;
    return [
      { kind: 'Service', name: record.appName, isOurs: (o) => ours(o) && isPlaceholderStableService(o) },
      { kind: 'Service', name, isOurs: ours },
      ...WORKLOAD_KINDS.map((kind) => ({ kind, name, isOurs: ours })),
    ];
  }

  /**
   * Traffic targets that point at this deployment's version are switched back to the version
   * that ran before (when its workload still exists), or removed when there was none.
   */
  private async restoreTrafficFrom(record: DeploymentRecord, signal: AbortSignal): Promise<string[]> {
    const lines: string[] = [];
    const previous = record.OldVersion || undefined;
    const previousRecord = previous ? (await this.deps.store.list(record.namespace, record.appName)).map((x) => x.value)
      .find((x) => x.version === previous && x.status === 'DEPLOYED') : undefined;
    const previousRunning = previous ? await this.workloadExists(record.descriptor, previous, signal) : false;
    for (const target of [...this.deps.traffic].reverse()) {
      const current = await target.currentVersion(record.descriptor, signal);
      if (current !== record.version) continue;
      if (previous && previousRunning) {
        const ctx: TrafficContext = { descriptor: previousRecord?.descriptor ?? record.descriptor, version: previous, signal, log: async (l) => { lines.push(l); } };
        await target.switchTo(ctx);
        lines.push(`${target.name} switched back to version ${previous}`);
      } else {
        await target.remove({ descriptor: record.descriptor, version: record.version, signal, log: async (l) => { lines.push(l); } });
      }
    }
    return lines;
  }

  private async workloadExists(d: Descriptor, version: string, signal: AbortSignal): Promise<boolean> {
    const name = versionedName(d.appName, version);
    for (const kind of WORKLOAD_KINDS) if (await this.deps.cluster.get(kind, d.namespace, name, signal)) return true;
    return false;
  }

  // --- undeploy ------------------------------------------------------------------------------

  private async runUndeploy(found: { value: DeploymentRecord; revision: string }, item: QueueItem, outer: AbortSignal): Promise<void> {
    const record = found.value;
    const deadlineMs = this.deps.config.defaultDeadlineSeconds * 1000;
    const signal = AbortSignal.any([outer, AbortSignal.timeout(deadlineMs)]);
    const journal = this.journal(found, signal);
    if (record.status !== 'DEPLOYED' && !(record.status === 'UNDEPLOYING' && record.step === 'removing' && !record.replacedBy)) {
      const why = record.replacedBy ? `it was replaced by deployment ${record.replacedBy}` : `its status is ${record.status}`;
      await journal.update((x) => x, [`Undeploy requested, but nothing to do: ${why}. Nothing in the cluster was changed.`], { dequeue: item.workId, final: true });
      if ((item.deleteRecord || record.deleteWhenUndeployed) && record.status !== 'DEPLOYING' && record.status !== 'UNDEPLOYING') {
        await this.deps.store.delete(record.namespace, record.appName, record.id);
      }
      return;
    }
    try {
      const resumed = record.status === 'UNDEPLOYING';
      await journal.update((x) => ({
        ...x, status: 'UNDEPLOYING', step: 'removing', owner: this.deps.replicaId,
        deadline: resumed && x.deadline ? x.deadline : new Date(Date.now() + deadlineMs).toISOString(),
      }), [resumed ? `Resuming the undeploy of version ${record.version} on replica ${this.deps.replicaId}` : `Undeploying version ${record.version} of ${record.appName}`]);
      await this.failpoints.hit('before-undeploy-removal', signal);
      const d = record.descriptor;
      const ctx: TrafficContext = { descriptor: d, version: record.version, signal, log: (line) => journal.line(line) };
      // Traffic objects go only if they still point at this version (never remove a newer one).
      for (const target of [...this.deps.traffic].reverse()) {
        const current = await target.currentVersion(d, signal);
        if (current === undefined || current === record.version) await target.remove(ctx);
        else await journal.line(`${target.name} points at version ${current}; left alone`);
      }
      const removed = await this.removeVersion(d, record.version, signal);
      if (removed.length > 0) await journal.line(`Removed ${removed.join(', ')}`);
      await journal.update((x) => ({ ...x, status: 'UNDEPLOYED', step: 'undeployed', times: { ...x.times, removed: this.iso() } }), [
        `Deployment ${record.id} undeployed`,
      ], { dequeue: item.workId, final: true });
      if (item.deleteRecord || record.deleteWhenUndeployed) await this.deps.store.delete(record.namespace, record.appName, record.id);
    } catch (err) {
      if (err instanceof WorkInterrupted) throw err;
      if (outer.aborted) throw new WorkInterrupted('stopped');
      await journal.update((x) => ({ ...x, status: 'FAILURE', step: 'failed', failureReason: `undeploy failed: ${(err as Error).message}` }), [
        `Undeploy failed: ${(err as Error).message}`,
      ], { dequeue: item.workId, final: true });
    }
  }
}

function r(record: DeploymentRecord): string {
  return `${record.id} of ${record.appName} version ${record.version}`;
}

export function toPodHealth(result: HealthResult): PodHealth {
  return {
    podName: result.podName,
    healthy: result.healthy,
    ...(result.statusCode !== undefined ? { statusCode: result.statusCode } : {}),
    body: result.body,
    reason: result.reason,
    latencyMs: result.latencyMs,
    checkedAt: result.checkedAt,
    value: result.body || result.reason,
  };
}

async function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await sleep(ms, undefined, { signal }).catch(() => {
    throw new WorkInterrupted('stopped');
  });
}
