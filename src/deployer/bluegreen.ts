import { deployedImages } from './images.js';
import type { Descriptor } from '../domain/types.js';
import { laterStep, type DeploymentRecord } from '../domain/deployment.js';
import { validateDescriptor } from '../domain/descriptor-schema.js';
import { Deadline, linkSignals } from '../lib/deadline.js';
import { StoreDataError, StoreUnavailableError, whileUnavailable } from '../store/kv.js';
import { urgent } from '../lib/urgency.js';
import { KubeError } from './cluster.js';
import { trafficContext, type RunContext } from './context.js';
import { DeploymentFailure, WorkInterrupted } from './errors.js';
import { checkHealth } from './health.js';
import { askGates } from './gates.js';
import { Journal } from './journal.js';
import { injectedEnvironmentNames, type DeploymentFacts, type EnvValue } from './manifests.js';
import { adoptOriginalVersion } from './adoption.js';
import { drainReplaced } from './drain.js';
import { awaitConvergence, type ConvergenceResult } from './convergence.js';
import { rollback } from './rollback.js';
import { assertSwitchable, captureTraffic, switchTraffic, type CapturedTraffic } from './switch.js';
import { ForeignObjectError, type TrafficSnapshot } from './traffic/index.js';
import { assertNamesFree, createVersion, waitForPods, type StableAtPrepare } from './workload.js';
import { settledInOrder } from '../lib/settled.js';

/**
 * The blue-green strategy for one DEPLOYING record — the whole algorithm:
 *
 *   prepare → create the new version → wait for its pods → health-check them
 *     → switch traffic (guarded: I1) → wait until traffic has arrived (convergence)
 *     → DEPLOYED + replaced record draining + live pointer (one write: I4)
 *     → drain and remove the replaced version.
 *
 * DEPLOYED means requests reach the new version, not that a write was accepted: a pipeline that
 * smoke-tests right after DEPLOYED meets the new version.
 *
 * Until the switch, nothing of the running version is touched; any failure, and the deadline,
 * lead to rollback(), which touches only what carries this deployment's id (I2) and ends in
 * FAILURE. Every step looks at what exists and does only what is missing, so an owner that takes
 * over after a crash simply runs this function again (a record caught rolling back resumes its
 * rollback). Steps are recorded before they start, for clients and for the invariant observer.
 */
export async function runBlueGreen(ctx: RunContext): Promise<void> {
  const { journal, deps } = ctx;
  if (journal.record.step === 'rolling-back') return rollback(ctx, journal.record.failureReason ?? 'the deployment failed');
  const deadlineAt = Date.parse(journal.record.deadline ?? '') || Date.parse(journal.record.created) + deps.config.defaultDeadlineSeconds * 1000;
  if (deadlineAt <= Date.now()) return rollback(ctx, expiredBeforeStart(journal.record));

  const deadline = Deadline.at(deadlineAt, ctx.ownership.signal);
  // A cancel request stops the work at the next safe point — any point before the switch begins;
  // from the switch on it is too late, and the log says so.
  const cancel = new AbortController();
  let cancelledBy: string | undefined;
  let switching = false;
  // The watch is set up while prepare runs (it takes a connection and a round trip of its own);
  // it reads pending requests first and watches from there, so none is missed, and the switch
  // does not begin before it is in place.
  const stopWatching = new AbortController();
  const watchingUntil = linkSignals(deadline.signal, stopWatching.signal);
  const cancelWatch = whileUnavailable(() => deps.store.watchCancel(journal.record.namespace, journal.record.id, (request) => {
    cancelledBy = request.by;
    if (!switching) cancel.abort(new DeploymentFailure(`cancelled by ${request.by}`));
    else journal.note(`Cancel requested by ${request.by} after the switch had begun: too late, the deployment goes on (undeploy or roll back to undo it)`);
  }), watchingUntil.signal);
  cancelWatch.catch(() => undefined); // awaited before the switch; a failure before it comes first
  const beforeSwitch = linkSignals(deadline.signal, cancel.signal);
  // Safe points: every step boundary before the switch (and every wait inside those steps).
  const checkpoint = () => beforeSwitch.signal.throwIfAborted();
  let facts: DeploymentFacts;
  let trafficAtPrepare: TrafficSnapshot[];
  let draining: Journal | undefined;
  try {
    checkpoint();
    ({ facts, trafficAtPrepare } = await prepare(ctx, beforeSwitch.signal));
    checkpoint();
    await createVersion(ctx, facts, beforeSwitch.signal, stableAtPrepare(trafficAtPrepare, facts.descriptor.appName));
    checkpoint();
    await journal.update((x) => ({ ...x, step: laterStep(x.step, 'waiting-for-pods'), times: { ...x.times, resourcesCreated: iso(ctx) } }));
    const d = facts.descriptor;
    const healthTimeoutS = d.healthCheckTimeout ?? deps.config.defaultHealthCheckTimeoutSeconds;
    let readyBy = Deadline.after(healthTimeoutS * 1000, beforeSwitch.signal);
    const gates = d.preSwitchGates ?? [];
    let healthyAt: number;
    // The targets' state is read for a rollback while the pods start (reads only; should a target
    // change before the switch writes it, that write meets a conflict and reads it again, and the
    // rollback puts back what it replaced); with gates, after them. Read once the pods were ready,
    // it came after the health check when the API server was loaded (at 200 apps: 43 ms after it
    // on average); read in turn with other deployments' reads, it made some switches wait seconds.
    const readTargets = (): Promise<CapturedTraffic> => {
      const reading = urgent(() => captureTraffic(ctx, d, facts.version, deadline.signal, trafficAtPrepare));
      reading.catch(() => undefined); // awaited at the switch; a failed check or guard comes first
      return reading;
    };
    let captured = gates.length === 0 ? readTargets() : undefined;
    try {
      const ready = await waitForPods(ctx, d, facts.version, readyBy, healthTimeoutS);
      const { pods } = ready;
      checkpoint();
      const checking = d.useHealthCheck && !d.ignoreHealthCheck;
      const images = deployedImages(d, pods);
      // The step is stored while the pods are checked; the journal stores later lines after it.
      const podsReadyStored = journal.update((x) => ({ ...x, step: laterStep(x.step, 'health-checking'), images, times: { ...x.times, podsReady: iso(ctx) } }), [
        `All ${pods.length} pods are ready${checking ? '' : d.useHealthCheck ? '; health check ignored (ignoreHealthCheck)' : '; no health check configured'}`,
      ]);
      const check = (p: typeof pods) => (checking ? checkHealth(ctx, d, p, readyBy, healthTimeoutS) : Promise.resolve());
      await settledInOrder<unknown>([podsReadyStored, (async () => {
        await deps.failpoints.hit('before-health-check', beforeSwitch.signal);
        await check(pods);
      })()]);
      checkpoint();
      if (checking) journal.note(`All ${pods.length} pods of version ${facts.version} are healthy`);
      if (gates.length > 0) {
        // The gates have their own timeouts (bounded by the deadline and a cancel); the I1 guard
        // after them gets a fresh healthCheckTimeout, so a slow gate cannot make it fail.
        readyBy.clear();
        await passPreSwitchGates(ctx, facts, beforeSwitch.signal);
        checkpoint();
        readyBy = Deadline.after(healthTimeoutS * 1000, beforeSwitch.signal);
        captured = readTargets();
      }
      healthyAt = Date.now();
      // The step is stored and the I1 guard reads pods and endpoints at once (reads and one etcd
      // write); no target moves before both are done and the capture is in.
      await settledInOrder<unknown>([
        urgent(() => journal.update((x) => ({ ...x, step: 'switching-traffic', times: { ...x.times, healthy: x.times.healthy ?? iso(ctx) } }))),
        urgent(() => assertSwitchable(ctx, d, facts.version, ready, readyBy, healthTimeoutS, check)),
      ]);
    } finally {
      readyBy.clear();
    }
    await cancelWatch;
    switching = true;
    if (cancel.signal.aborted) throw cancel.signal.reason;
    // The switch's calls, to convergence, go ahead of other deployments' reads and etcd calls.
    const lines = await urgent(async () => switchTraffic(ctx, d, facts.version, deadline.signal, await captured));
    const overheadMs = Date.now() - healthyAt;
    await journal.update((x) => ({ ...x, times: { ...x.times, switched: iso(ctx) } }), [
      ...lines, `Traffic switched to version ${facts.version} (${overheadMs} ms after the ${gates.length > 0 ? 'pre-switch gates' : 'last health check'}); waiting for it to arrive`,
    ]);
    deps.bus.publish({ type: 'switch', namespace: d.namespace, appName: d.appName, deploymentId: journal.record.id, fromVersion: journal.record.OldVersion, toVersion: facts.version, overheadMs, requested: journal.record.created, at: deps.now() });
    const switchedAt = Date.parse(journal.record.times.switched!);
    const convergence = await urgent(() => awaitConvergence(ctx, d, facts.version, switchedAt, deadline.signal));
    draining = await commitDeployed(ctx, convergence, switchedAt);
  } catch (err) {
    if (ctx.ownership.signal.aborted) throw err instanceof WorkInterrupted ? err : new WorkInterrupted('stopped');
    const cancelled = cancel.signal.aborted && !deadline.expired;
    if (err instanceof WorkInterrupted && !cancelled) throw err;
    // etcd did not answer: transient. The scheduler runs the item again and it resumes here
    // (every step is idempotent); past the deadline, that run rolls back.
    if (err instanceof StoreUnavailableError && !deadline.expired && !cancelled) throw err;
    const reason = cancelled ? `cancelled by ${cancelledBy}`
      : deadline.expired ? `deadline of ${Math.round((deadlineAt - Date.parse(journal.record.created)) / 1000)} s exceeded during step "${journal.record.step}"` : failureReason(err);
    if (!cancelled && !(err instanceof DeploymentFailure) && !(err instanceof KubeError)) ctx.log.warn({ err, deploymentId: journal.record.id }, 'deployment failed');
    return rollback(ctx, reason);
  } finally {
    beforeSwitch.dispose();
    deadline.clear();
    stopWatching.abort();
    watchingUntil.dispose();
    await cancelWatch.then((watch) => watch.close(), () => undefined).catch(() => undefined);
  }
  await drainReplaced(ctx, draining);
}

/**
 * Re-validates the descriptor copy, finds the live deployment (the one this replaces on success
 * and a rollback returns to), refuses what would touch the running version — its own version
 * again, objects of others under our names, traffic objects someone else owns — and reads the
 * environment. Changes nothing in the cluster.
 */
async function prepare(ctx: RunContext, signal: AbortSignal): Promise<{ facts: DeploymentFacts; trafficAtPrepare: TrafficSnapshot[] }> {
  const { journal, deps } = ctx;
  const record = journal.record;
  const resumed = record.step !== 'queued';
  const d = validatedCopy(record);
  // Recording the start and reading the live pointer are independent: at once.
  const [, stored] = await settledInOrder<unknown>([
    journal.update((r) => ({ ...r, step: laterStep(r.step, 'preparing'), owner: deps.replicaId, times: { ...r.times, started: r.times.started ?? iso(ctx) } }), [
      resumed
        ? `Resuming deployment ${describe(record)} from step "${record.step}" on replica ${deps.replicaId}${record.owner && record.owner !== deps.replicaId ? ` (replica ${record.owner} stopped working on it)` : ''}`
        : `Deployment ${describe(record)} started on replica ${deps.replicaId}`,
    ]),
    whileUnavailable(() => deps.store.live(d.namespace, d.appName), signal),
  ]);
  const live = stored as Awaited<ReturnType<typeof deps.store.live>> ?? await adoptOriginalVersion(ctx, d, signal);
  // A rebuild (`restores`) re-creates the live version itself; assertNamesFree() below still
  // refuses should its objects exist after all.
  if (live && live.version === record.version && live.deploymentId !== record.id && record.restores !== live.deploymentId) {
    throw new DeploymentFailure(`version ${record.version} of ${d.appName} is already running (deployment ${live.deploymentId}); nothing was changed (deploy another version, or "#" for the next number)`);
  }
  const probe = trafficContext(ctx, d, record.version, record.id, signal, async () => {});
  if (probe.routing.httproute && d.frontend && !probe.routing.parent) {
    throw new DeploymentFailure('the app routes through an HTTPRoute, but no Gateway is configured: set the descriptor\'s "gateway" or CUTOVER_GATEWAY; nothing was changed');
  }
  // Reads only, all at once; judged in the order they were made one after the other before.
  const [, trafficAtPrepare, pointers, env] = await settledInOrder<unknown>([
    assertNamesFree(ctx, d, record.version, signal),
    settledInOrder(deps.traffic.map((target) => target.capture(probe))).catch((err: unknown) => {
      if (err instanceof ForeignObjectError) throw new DeploymentFailure(`${err.message}; nothing was changed`);
      throw err;
    }),
    live?.version ? Promise.resolve([]) : settledInOrder(deps.traffic.map((target) => target.pointer(d, ctx.cluster, signal))),
    whileUnavailable(() => deps.environment.read(), signal),
  ]) as [unknown, TrafficSnapshot[], Array<{ version: string } | undefined>, Awaited<ReturnType<typeof deps.environment.read>>];
  let liveVersion = live?.version;
  for (const pointer of pointers) liveVersion ??= pointer?.version;
  if (env.skipped.length > 0) journal.note(`Skipped environment keys that are not valid variable names: ${env.skipped.join(', ')}`);
  const environment: EnvValue[] = env.entries.map((e) => ({ name: e.name, value: e.value }));
  const facts: DeploymentFacts = { descriptor: d, version: record.version, deploymentId: record.id, environment };
  const injected = injectedEnvironmentNames(facts);
  await journal.update((x) => ({
    ...x, step: laterStep(x.step, 'creating-resources'), OldVersion: liveVersion ?? '', injectedEnvironment: injected,
    ...(live && live.deploymentId !== record.id ? { replaces: live.deploymentId } : {}),
  }), [
    ...(injected.length > 0 ? [`Injecting environment variables: ${injected.join(', ')}`] : []),
    liveVersion ? `Running version is ${liveVersion}; it stays untouched until the new version is healthy` : 'No version of this app is running yet',
  ]);
  return { facts, trafficAtPrepare };
}

/** What prepare's capture found of the stable Service `{app}`. */
function stableAtPrepare(traffic: TrafficSnapshot[], appName: string): StableAtPrepare {
  for (const snapshot of traffic) {
    const found = snapshot.objects.find((o) => o.kind === 'Service' && o.name === appName);
    if (found) return found.object ? 'ours' : 'absent';
  }
  return 'unknown';
}

/**
 * The descriptor's pre-switch gates, asked once the new version is healthy (step `gating`). A
 * failure is a DeploymentFailure like a failed health check: the caller rolls back, and nothing
 * of the running version was touched.
 */
async function passPreSwitchGates(ctx: RunContext, facts: DeploymentFacts, signal: AbortSignal): Promise<void> {
  const { journal } = ctx;
  const d = facts.descriptor;
  const gates = d.preSwitchGates ?? [];
  await journal.update((x) => ({ ...x, step: laterStep(x.step, 'gating'), times: { ...x.times, healthy: iso(ctx) } }), [`Asking ${gates.length} pre-switch gate(s)`]);
  const verdict = await askGates(ctx, 'pre-switch', gates, {
    namespace: d.namespace, appName: d.appName, deploymentId: journal.record.id, version: facts.version, previousVersion: journal.record.OldVersion,
    ...(d.frontend ? { frontend: d.frontend } : {}),
  }, signal);
  if (!verdict.pass) throw new DeploymentFailure(`pre-switch gate "${verdict.gate}" failed: ${verdict.reason}`);
  await journal.update((x) => ({ ...x, times: { ...x.times, gated: iso(ctx) } }), ['All pre-switch gates passed']);
}

/**
 * One transaction: this record DEPLOYED, the replaced one UNDEPLOYING (draining) and the live
 * pointer moved — so there is never more than one DEPLOYED record (I4), also across a crash. The
 * work item stays until the replaced version is drained; the drain counts from convergence.
 */
async function commitDeployed(ctx: RunContext, convergence: ConvergenceResult, switchedAt: number): Promise<Journal | undefined> {
  const { journal, deps } = ctx;
  const record = journal.record;
  // The live pointer and the record it named at prepare are read at once (normally the same one).
  const expected = record.replaces ? readReplaced(ctx, record.replaces) : undefined;
  expected?.catch(() => undefined);
  const live = await whileUnavailable(() => deps.store.live(record.namespace, record.appName), ctx.ownership.signal);
  const replaced = live && live.deploymentId !== record.id
    ? (live.deploymentId === record.replaces ? await expected : await readReplaced(ctx, live.deploymentId)) : undefined;
  const draining = replaced && replaced.value.status === 'DEPLOYED' ? new Journal(replaced, deps.store, deps.bus, ctx.log, { signal: ctx.ownership.signal, fence: ctx.ownership.fence }, deps.now) : undefined;
  const at = iso(ctx);
  const convergedAt = new Date(convergence.convergedAt).toISOString();
  const ms = Math.max(0, convergence.convergedAt - switchedAt);
  const drainS = record.descriptor.drainSeconds ?? deps.config.defaultDrainSeconds;
  const details = convergence.lines.length > 0 ? `: ${convergence.lines.join('; ')}` : '';
  await journal.update((x) => ({
    ...x, status: 'DEPLOYED', step: 'deployed', failureReason: undefined, ...(replaced ? { replaces: replaced.value.id } : {}),
    times: { ...x.times, switched: x.times.switched ?? at, converged: convergedAt, finished: at },
  }), [
    convergence.complete
      ? `Traffic has moved to version ${record.version}, ${ms} ms after the switch${details}; deployment successful`
      : `Traffic to version ${record.version}${details}; deployment successful`,
  ], {
    final: true,
    live: { expectedRevision: live?.revision ?? '0', next: { deploymentId: record.id, version: record.version } },
    ...(draining && draining.record.version === record.version ? {
      // A rebuild: the same version under the same names — nothing to drain or remove.
      with: {
        journal: draining,
        change: (x: DeploymentRecord) => ({ ...x, status: 'UNDEPLOYED' as const, step: 'undeployed' as const, replacedBy: record.id, times: { ...x.times, removed: at } }),
        lines: [`Superseded by deployment ${record.id}, which re-created version ${record.version} in this cluster`],
      },
    } : draining ? {
      with: {
        journal: draining,
        change: (x: DeploymentRecord) => ({
          ...x, status: 'UNDEPLOYING' as const, step: 'draining' as const, replacedBy: record.id,
          deadline: new Date(Date.now() + (drainS + deps.config.defaultDeadlineSeconds) * 1000).toISOString(), times: { ...x.times, drainStarted: convergedAt },
        }),
        lines: [`Replaced by deployment ${record.id} (version ${record.version}); version ${draining.record.version} keeps running for the drain delay, then is removed`],
      },
    } : {}),
  });
  deps.bus.publish({ type: 'converged', namespace: record.namespace, appName: record.appName, deploymentId: record.id, ms, complete: convergence.complete, at: deps.now() });
  return draining && draining.record.status === 'UNDEPLOYING' ? draining : undefined;
}

async function readReplaced(ctx: RunContext, id: string) {
  try {
    return await whileUnavailable(() => ctx.deps.store.get(ctx.journal.record.namespace, id), ctx.ownership.signal);
  } catch (err) {
    if (!(err instanceof StoreDataError)) throw err;
    ctx.deps.onUnreadable(err.key, 'the live deployment a switch replaces (its version is not drained)');
    return undefined;
  }
}

function validatedCopy(record: DeploymentRecord): Descriptor {
  const result = validateDescriptor({ ...record.descriptor });
  if (!result.ok) {
    throw new DeploymentFailure(`the descriptor copy is invalid: ${result.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  }
  return { ...record.descriptor, ...result.value } as Descriptor;
}

/** The deadline passed before this run could start: while queued, or while no replica worked on it. */
function expiredBeforeStart(record: DeploymentRecord): string {
  return record.step === 'queued'
    ? 'deadline passed while waiting in the queue; nothing was created'
    : `deadline passed during step "${record.step}" while no replica was working on it${record.owner ? ` (replica ${record.owner} stopped)` : ''}`;
}

/** A permanent Kubernetes error ends the deployment at once with the API server's own reason. */
function failureReason(err: unknown): string {
  if (err instanceof KubeError) return `the Kubernetes API refused: ${err.message}`;
  return (err as Error)?.message ?? String(err);
}

function describe(record: DeploymentRecord): string {
  return `${record.id} of ${record.appName} version ${record.version}`;
}

function iso(ctx: RunContext): string {
  return ctx.deps.now().toISOString();
}
