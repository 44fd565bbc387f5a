/**
 * Types of the health-check module. `HealthCheckType` is the descriptor's own type, re-exported so
 * the two can never drift apart.
 */
export type { HealthCheckType } from '../domain/types.js';
import type { HealthCheckType } from '../domain/types.js';

/** One pod whose health endpoint is checked. */
export interface HealthTarget {
  namespace: string;
  podName: string;
  podIP: string;
  port: number;
  /** Path without a leading "/", optionally with a query: "health", "status/health?x=1". */
  path: string;
}

export interface HealthResult {
  podName: string;
  healthy: boolean;
  /** Absent when no HTTP answer was received. */
  statusCode?: number;
  /** Short excerpt of the answer body (at most 256 characters, control characters replaced); '' if none. */
  body: string;
  /** One-line human explanation: 'healthy', 'status 503', 'body is not JSON', 'connection refused', … */
  reason: string;
  latencyMs: number;
  /** ISO timestamp of when the check finished. */
  checkedAt: string;
}

export interface HealthChecker {
  /** Never rejects for pod problems (they become unhealthy results); rejects only with the signal's reason when aborted. */
  check(target: HealthTarget, type: HealthCheckType, signal?: AbortSignal): Promise<HealthResult>;
}
