import type { Descriptor } from '../domain/types.js';
import type { PodHealth } from '../domain/deployment.js';
import {
  healthCheckMethod, MethodFallbackChecker, selectHealthCheckPort, summarise, waitUntilAllHealthy, type HealthResult, type HealthTarget,
} from '../healthcheck/index.js';
import type { Deadline } from '../lib/deadline.js';
import type { RunContext } from './context.js';
import { DeploymentFailure } from './errors.js';
import type { ReadyPod } from './readiness.js';

/**
 * The app's own health check of every new pod, until each has answered healthy once, within
 * `readyBy` (the descriptor's healthCheckTimeout). Every answer goes to the health data as it
 * comes; state changes per pod go to the log.
 */
export async function checkHealth(ctx: RunContext, d: Descriptor, pods: ReadyPod[], readyBy: Deadline, timeoutS: number): Promise<void> {
  const port = selectHealthCheckPort(d);
  const path = d.healthCheckPath.replace(/^\/+/, '');
  const { method, fallbackToGet } = healthCheckMethod(d.healthCheckType, d.healthCheckMethod);
  // Lines here are noted, not stored one by one: they go with the next write (the switch's step, at
  // the latest 250 ms later), so a check is never held up by a log write.
  ctx.journal.note(`Health check (${d.healthCheckType}, ${method}${fallbackToGet ? ', GET where POST is not served' : ''}) on port ${port}, path /${path}, of ${pods.length} pods`);
  const targets: HealthTarget[] = pods.map((p) => ({ namespace: d.namespace, podName: p.name, podIP: p.ip, port, path, method }));
  const checker = fallbackToGet
    ? new MethodFallbackChecker(ctx.deps.healthChecker, (t, status) => {
      ctx.journal.note(`Pod ${t.podName}: POST answered ${status}; checking it with GET`);
    })
    : ctx.deps.healthChecker;
  const latest = new Map<string, HealthResult>();
  const lastState = new Map<string, string>();
  try {
    await waitUntilAllHealthy({
      targets, type: d.healthCheckType, checker, intervalMs: ctx.deps.config.healthCheckIntervalMs, signal: readyBy.signal,
      onResult: async (result) => {
        latest.set(result.podName, result);
        await ctx.journal.health(toPodHealth(result)).catch(() => undefined);
        const state = result.healthy ? 'healthy' : result.reason;
        if (lastState.get(result.podName) !== state) {
          lastState.set(result.podName, state);
          ctx.journal.note(`Pod ${result.podName}: ${result.healthy ? 'healthy' : `not healthy yet (${result.reason})`}`);
        }
      },
    });
  } catch (err) {
    if (readyBy.expired) throw new DeploymentFailure(`new version not healthy within ${timeoutS} s: ${summarise(latest, targets.length)}`);
    throw err;
  }
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
