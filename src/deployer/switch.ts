import type { Descriptor } from '../domain/types.js';
import { versionedName } from '../domain/names.js';
import { Deadline, linkSignals, sleep } from '../lib/deadline.js';
import { trafficContext, type RunContext } from './context.js';
import type { Freshness, Watch } from './cluster.js';
import { DeploymentFailure } from './errors.js';
import { podPorts } from './manifests.js';
import { isPodReady, type ReadyPod } from './readiness.js';
import type { PodsReady } from './workload.js';
import type { TrafficContext, TrafficSnapshot, TrafficTarget } from './traffic/index.js';
import { settledInOrder } from '../lib/settled.js';

/**
 * Invariant I1, guarded where it could break: traffic only ever moves to a version whose pods
 * are all Ready and healthy, with at least one ready endpoint. Right before the switch the pods
 * are read again, and the versioned Service's EndpointSlices — which routers such as Traefik send
 * traffic to — must list every one of them as ready. Pods that appeared since the health check are
 * checked first (`checkAgain`). The endpoint controller normally publishes within milliseconds, but
 * after an API-server restart its informers can lag for tens of seconds: the wait is bounded by
 * `readyBy` (the health-check timeout), and a wait longer than one health-check interval makes the
 * health results that old, so every pod is checked again and pods and endpoints are read afresh.
 *
 * The first read of the pods is the API server's cache no older than the watch event that showed
 * them ready (`healthy.resourceVersion`): it holds every change the cache has had since, without
 * the consistent read's wait for etcd (15–77 ms measured); later rounds read consistently.
 */
export async function assertSwitchable(
  ctx: RunContext, d: Descriptor, version: string, healthy: PodsReady, readyBy: Deadline, timeoutS: number,
  checkAgain: (pods: ReadyPod[]) => Promise<void>,
): Promise<void> {
  const routed = podPorts(d.podspec).length > 0;
  // A first subscriber makes the namespace's EndpointSlice watch list: done while the pods are read.
  const warm = routed ? ctx.cluster.watchReadyEndpoints(d.namespace, versionedName(d.appName, version), () => undefined) : undefined;
  try {
    await guardRounds(ctx, d, version, healthy, readyBy, timeoutS, checkAgain, routed);
  } finally {
    warm?.then((w) => w.stop(), () => undefined);
  }
}

/** The guard's rounds: pods read again (new ones checked first), then their endpoints awaited. */
async function guardRounds(
  ctx: RunContext, d: Descriptor, version: string, healthy: PodsReady, readyBy: Deadline, timeoutS: number,
  checkAgain: (pods: ReadyPod[]) => Promise<void>, routed: boolean,
): Promise<void> {
  const selector = `app=${d.appName},version=${version}`;
  const checked = new Set(healthy.pods.map((p) => p.name));
  for (let round = 0; ; round++) {
    const freshness: Freshness = round === 0 && healthy.resourceVersion ? { notOlderThan: healthy.resourceVersion } : 'latest';
    const pods = (await ctx.cluster.listPods(d.namespace, selector, readyBy.signal, freshness)).filter((p) => !p.metadata?.deletionTimestamp);
    if (pods.length === 0) throw new DeploymentFailure(`no pods of version ${version} are left to switch to`);
    const notReady = pods.filter((p) => !isPodReady(p) || !p.status?.podIP);
    if (notReady.length > 0) throw new DeploymentFailure(`pod ${notReady[0]!.metadata?.name} of version ${version} is no longer ready; traffic was not switched`);
    const ready = pods.map((p) => ({ name: p.metadata?.name ?? '', ip: p.status!.podIP! }));
    const fresh = ready.filter((p) => !checked.has(p.name));
    if (fresh.length > 0 && round < 3) {
      await ctx.journal.line(`Pods ${fresh.map((p) => p.name).join(', ')} appeared since the health check; checking them first`);
      await checkAgain(fresh);
      for (const p of fresh) checked.add(p.name);
      continue;
    }
    if (!routed) return; // no Service: nothing routes to the pods
    const waitedMs = await waitForReadyEndpoints(ctx, d, version, ready.map((p) => p.ip), readyBy, timeoutS);
    if (waitedMs <= ctx.deps.config.healthCheckIntervalMs) return;
    await ctx.journal.line(`The EndpointSlices listed every pod after ${(waitedMs / 1000).toFixed(1)} s; checking the pods' health again before the switch`);
    await checkAgain(ready);
  }
}

/** How often the EndpointSlices are listed while waiting for them, besides the watch. */
const ENDPOINTS_RELIST_MS = 1000;

/**
 * Waits until the Service's EndpointSlices list every address as ready; returns how long that
 * took. Driven by the namespace's shared EndpointSlice watch, so the switch follows the endpoint
 * controller's publication within milliseconds (polling with backoff added 25–100 ms, and each
 * consistent list waited up to 70 ms for etcd's progress notification). A consistent list every
 * second while waiting covers a watch that has stopped delivering. A wait longer than one
 * health-check interval is said in the log.
 */
async function waitForReadyEndpoints(ctx: RunContext, d: Descriptor, version: string, ips: string[], readyBy: Deadline, timeoutS: number): Promise<number> {
  const service = versionedName(d.appName, version);
  const started = Date.now();
  let missing: string[] = ips;
  const stop = new AbortController();
  const link = linkSignals(readyBy.signal, stop.signal);
  let watch: Watch | undefined;
  let told: Promise<void> | undefined;
  const tell = setTimeout(() => {
    told = ctx.journal.line(`Waiting for the EndpointSlices of Service ${service} to list ${missing.join(', ')} as ready (the endpoint controller has not published them yet)`).catch(() => undefined);
  }, ctx.deps.config.healthCheckIntervalMs);
  try {
    await new Promise<void>((resolve, reject) => {
      const judge = (ready: string[]) => {
        const listed = new Set(ready);
        const notListed = ips.filter((ip) => !listed.has(ip));
        if (notListed.length === 0 && listed.size > 0) resolve();
        else missing = notListed;
      };
      link.signal.addEventListener('abort', () => reject(link.signal.reason), { once: true });
      ctx.cluster.watchReadyEndpoints(d.namespace, service, judge).then((w) => {
        watch = w;
        if (link.signal.aborted) w.stop();
      }, reject);
      void (async () => {
        for (;;) {
          await sleep(ENDPOINTS_RELIST_MS, link.signal);
          judge(await ctx.cluster.readyEndpoints(d.namespace, service, link.signal));
        }
      })().catch(reject);
    });
    return Date.now() - started;
  } catch (err) {
    if (readyBy.expired) {
      throw new DeploymentFailure(`the EndpointSlices of Service ${service} did not list ${missing.join(', ')} as ready within the health-check timeout (${timeoutS} s); traffic was not switched`);
    }
    throw err;
  } finally {
    clearTimeout(tell);
    stop.abort();
    link.dispose();
    watch?.stop();
    await told;
  }
}

/** What a switch puts back should it fail: every target's state, read before any target moves. */
export interface CapturedTraffic {
  traffic: TrafficContext;
  lines: string[];
  captured: Array<{ target: TrafficTarget; snapshot: TrafficSnapshot }>;
}

/**
 * Reads every traffic target's state (reads only, all at once) for switchTraffic. Taken while the
 * new version's pods start, so the switch starts with its writes; nothing moves here. A target that
 * changes after this read is read again by its write (a conflict), which keeps the fresh state.
 */
export async function captureTraffic(ctx: RunContext, d: Descriptor, version: string, signal: AbortSignal, atPrepare?: TrafficSnapshot[]): Promise<CapturedTraffic> {
  const lines: string[] = [];
  const traffic = trafficContext(ctx, d, version, ctx.journal.record.id, signal, async (line) => { lines.push(line); });
  const snapshots = await settledInOrder(ctx.deps.traffic.map((target, i) => target.capture(traffic, atPrepare?.[i])));
  return { traffic, lines, captured: ctx.deps.traffic.map((target, i) => ({ target, snapshot: snapshots[i]! })) };
}

/**
 * Points every traffic target at the new version, in order, or leaves them as they were: when a
 * target fails, every target this switch touched — the failing one too, whose write may have
 * landed — is put back from the state captured just before (only objects still carrying this
 * deployment's id). Returns the log lines; the caller stores them with the status change.
 */
export async function switchTraffic(ctx: RunContext, d: Descriptor, version: string, signal: AbortSignal, before?: CapturedTraffic): Promise<string[]> {
  const { traffic, lines, captured } = before ?? await captureTraffic(ctx, d, version, signal);
  let attempted = 0;
  try {
    for (const c of captured) {
      if (attempted > 0) await ctx.deps.failpoints.hit('after-first-traffic-target', signal);
      attempted++;
      await c.target.switchTo(traffic, c.snapshot);
    }
    return lines;
  } catch (err) {
    const bound = Deadline.after(ctx.deps.config.cleanupTimeoutSeconds * 1000, ctx.ownership.signal);
    try {
      for (const c of captured.slice(0, attempted).reverse()) {
        try {
          await c.target.restore({ ...traffic, signal: bound.signal }, c.snapshot);
        } catch (restoreErr) {
          lines.push(`Putting back ${c.target.name} failed: ${(restoreErr as Error).message}`);
        }
      }
    } finally {
      bound.clear();
    }
    for (const line of lines) ctx.journal.note(line); // stored with the rollback's first write
    throw new DeploymentFailure(`switching traffic failed: ${(err as Error).message}`);
  }
}
