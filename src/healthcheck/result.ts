import { performance } from 'node:perf_hooks';
import { excerpt } from './evaluate.js';
import type { HealthResult } from './types.js';

/** Builds a result for a check that started at `startedAt` (a `performance.now()` value). */
export function finishResult(
  podName: string,
  startedAt: number,
  fields: { healthy: boolean; reason: string; statusCode?: number | undefined; body?: string },
): HealthResult {
  const result: HealthResult = {
    podName,
    healthy: fields.healthy,
    body: excerpt(fields.body ?? ''),
    reason: fields.reason,
    latencyMs: Math.round(performance.now() - startedAt),
    checkedAt: new Date().toISOString(),
  };
  // Only set when an answer arrived, so "no HTTP answer" is visible as an absent property.
  if (fields.statusCode !== undefined) result.statusCode = fields.statusCode;
  return result;
}
