import type { Descriptor } from '../domain/types.js';
import { versionedName } from '../domain/names.js';
import { Deadline, sleep } from '../lib/deadline.js';
import { trafficContext, type RunContext } from './context.js';
import { DeploymentFailure } from './errors.js';
import { podPorts } from './manifests.js';
import { isPodReady, type ReadyPod } from './readiness.js';
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
 */
export async function assertSwitchable(
  ctx: RunContext, d: Descriptor, version: string, healthy: ReadyPod[], readyBy: Deadline, timeoutS: number,
  checkAgain: (pods: ReadyPod[]) => Promise<void>,
): Promise<void> {
  const selector = `app=${d.appName},version=${version}`;
  const checked = new Set(healthy.map((p) => p.name));
  const routed = podPorts(d.podspec).length > 0;
  for (let round = 0; ; round++) {
    // The pods and (first round) the EndpointSlices are read at once: the endpoints must list as
    // ready every pod this read finds ready, whichever of the two reads came first.
    const endpoints = routed && round === 0 ? ctx.cluster.readyEndpoints(d.namespace, versionedName(d.appName, version), readyBy.signal) : undefined;
    endpoints?.catch(() => undefined);
    const pods = (await ctx.cluster.listPods(d.namespace, selector, readyBy.signal)).filter((p) => !p.metadata?.deletionTimestamp);
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
    const waitedMs = await waitForReadyEndpoints(ctx, d, version, ready.map((p) => p.ip), readyBy, timeoutS, endpoints);
    if (waitedMs <= ctx.deps.config.healthCheckIntervalMs) return;
    await ctx.journal.line(`The EndpointSlices listed every pod after ${(waitedMs / 1000).toFixed(1)} s; checking the pods' health again before the switch`);
    await checkAgain(ready);
  }
}

/**
 * Waits until the Service's EndpointSlices list every address as ready; returns how long that
 * took. A wait longer than one health-check interval is said in the log.
 */
async function waitForReadyEndpoints(
  ctx: RunContext, d: Descriptor, version: string, ips: string[], readyBy: Deadline, timeoutS: number, first?: Promise<string[]>,
): Promise<number> {
  const service = versionedName(d.appName, version);
  const started = Date.now();
  let delay = 25;
  let missing: string[] = ips;
  let read = first;
  let told = false;
  try {
    for (;;) {
      const ready = new Set(await (read ?? ctx.cluster.readyEndpoints(d.namespace, service, readyBy.signal)));
      read = undefined;
      missing = ips.filter((ip) => !ready.has(ip));
      if (missing.length === 0 && ready.size > 0) return Date.now() - started;
      if (!told && Date.now() - started > ctx.deps.config.healthCheckIntervalMs) {
        told = true;
        await ctx.journal.line(`Waiting for the EndpointSlices of Service ${service} to list ${missing.join(', ')} as ready (the endpoint controller has not published them yet)`);
      }
      await sleep(delay, readyBy.signal);
      delay = Math.min(delay * 2, 500);
    }
  } catch (err) {
    if (readyBy.expired) {
      throw new DeploymentFailure(`the EndpointSlices of Service ${service} did not list ${missing.join(', ')} as ready within the health-check timeout (${timeoutS} s); traffic was not switched`);
    }
    throw err;
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
 * I1 guard runs, so the switch starts with its writes; nothing moves here.
 */
export async function captureTraffic(ctx: RunContext, d: Descriptor, version: string, signal: AbortSignal): Promise<CapturedTraffic> {
  const lines: string[] = [];
  const traffic = trafficContext(ctx, d, version, ctx.journal.record.id, signal, async (line) => { lines.push(line); });
  const snapshots = await settledInOrder(ctx.deps.traffic.map((target) => target.capture(traffic)));
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
