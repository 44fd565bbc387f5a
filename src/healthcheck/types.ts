/**
 * Types of the health-check module. `HealthCheckType` is the descriptor's own type, re-exported so
 * the two can never drift apart.
 */
export type { HealthCheckType } from '../domain/types.js';
import type { HealthCheckMethod, HealthCheckType } from '../domain/types.js';
export type { HealthCheckMethod };

/** One pod whose health endpoint is checked. */
export interface HealthTarget {
  namespace: string;
  podName: string;
  podIP: string;
  port: number;
  /** Path without a leading "/", optionally with a query: "health", "status/health?x=1". */
  path: string;
  /** Default GET. POST sends an empty body with Content-Type application/json (the original's probe). */
  method?: HealthCheckMethod;
}

import type { HealthResult } from '../domain/types.js';

export type { HealthResult };

export interface HealthChecker {
  /** Never rejects for pod problems (they become unhealthy results); rejects only with the signal's reason when aborted. */
  check(target: HealthTarget, type: HealthCheckType, signal?: AbortSignal): Promise<HealthResult>;
}
