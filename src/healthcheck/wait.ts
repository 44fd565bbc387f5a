import { performance } from 'node:perf_hooks';
import { sleep } from '../lib/deadline.js';
import { toReason } from './evaluate.js';
import { finishResult } from './result.js';
import type { HealthCheckType, HealthChecker, HealthResult, HealthTarget } from './types.js';

export interface WaitUntilAllHealthyOptions {
  targets: HealthTarget[];
  type: HealthCheckType;
  checker: HealthChecker;
  /** Pause between the end of an unhealthy check and the next check of the same target. */
  intervalMs: number;
  /** Abort (e.g. at the deployment's deadline) to stop waiting; the promise then rejects with its reason. */
  signal: AbortSignal;
  /** Called with every result as it arrives. Errors it throws (or rejects with) are ignored. */
  onResult: (result: HealthResult) => void | Promise<void>;
}

/**
 * Checks every target independently and concurrently until each has answered healthy once.
 * A healthy target is not checked again; an unhealthy one is re-checked `intervalMs` after its
 * previous check ended, so a slow target never delays the others and never gets overlapping checks.
 * Resolves when all targets have been healthy; rejects with `signal.reason` when aborted.
 */
export async function waitUntilAllHealthy(opts: WaitUntilAllHealthyOptions): Promise<void> {
  if (!Number.isFinite(opts.intervalMs) || opts.intervalMs < 0) throw new RangeError(`intervalMs must be >= 0, got ${opts.intervalMs}`);
  const { signal } = opts;
  signal.throwIfAborted();

  let stopListening = (): void => {};
  // Rejecting here, not only inside each loop, means a checker that ignores the signal cannot delay the abort.
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    stopListening = () => signal.removeEventListener('abort', onAbort);
  });
  aborted.catch(() => {});
  try {
    await Promise.race([Promise.all(opts.targets.map((target) => checkUntilHealthy(target, opts))), aborted]);
  } finally {
    stopListening();
  }
}

async function checkUntilHealthy(target: HealthTarget, opts: WaitUntilAllHealthyOptions): Promise<void> {
  const { signal } = opts;
  for (;;) {
    const startedAt = performance.now();
    let result: HealthResult;
    try {
      result = await opts.checker.check(target, opts.type, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      // The checker broke its "never rejects for pod problems" contract: report it and keep trying.
      const message = err instanceof Error ? err.message : String(err);
      result = finishResult(target.podName, startedAt, { healthy: false, reason: toReason(`check failed: ${message}`) });
    }
    if (signal.aborted) throw signal.reason; // the caller has moved on; don't report late results
    try {
      await opts.onResult(result);
    } catch {
      // The caller handles its own errors; a failing report must not stop the checks.
    }
    if (result.healthy) return;
    try {
      await sleep(opts.intervalMs, signal);
    } catch (err) {
      throw signal.aborted ? signal.reason : err;
    }
  }
}

const MAX_NAMED_UNHEALTHY = 5;

/**
 * One line such as `2/3 healthy; web-7-abc: status 503`. Pass `totalTargets` to also count pods
 * without any result yet (they appear as "N not checked yet").
 */
export function summarise(results: Map<string, HealthResult>, totalTargets: number = results.size): string {
  const all = [...results.values()];
  const healthyCount = all.filter((r) => r.healthy).length;
  const total = Math.max(totalTargets, results.size);
  const parts = [`${healthyCount}/${total} healthy`];
  const unhealthy = all.filter((r) => !r.healthy).sort((a, b) => a.podName.localeCompare(b.podName));
  for (const r of unhealthy.slice(0, MAX_NAMED_UNHEALTHY)) parts.push(`${r.podName}: ${r.reason}`);
  if (unhealthy.length > MAX_NAMED_UNHEALTHY) parts.push(`${unhealthy.length - MAX_NAMED_UNHEALTHY} more unhealthy`);
  const unchecked = total - results.size;
  if (unchecked > 0) parts.push(`${unchecked} not checked yet`);
  return parts.join('; ');
}
