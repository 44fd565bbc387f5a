import type { HealthCheckMethod, HealthCheckType, HealthChecker, HealthResult, HealthTarget } from './types.js';

/**
 * Answers to a POST that say "this endpoint does not take POST" rather than "unhealthy": 405 is
 * the precise one, but many frameworks answer an unrouted method with 404, and some with 501.
 */
export const POST_NOT_SERVED = new Set([404, 405, 501]);

export interface MethodChoice {
  method: HealthCheckMethod;
  /** Try GET when the POST is not served (only when the descriptor did not pin the method). */
  fallbackToGet: boolean;
}

/**
 * The original deployer's rule, kept: a `probe` check POSTs an empty JSON body, a `simple` check
 * GETs. cutover adds the GET fallback for probes (apps written for cutover's earlier GET-only
 * probe keep working) and `healthCheckMethod` to pin either method.
 */
export function healthCheckMethod(type: HealthCheckType, pinned?: HealthCheckMethod): MethodChoice {
  if (pinned) return { method: pinned, fallbackToGet: false };
  return type === 'probe' ? { method: 'POST', fallbackToGet: true } : { method: 'GET', fallbackToGet: false };
}

/**
 * POSTs first; a pod whose POST is not served (POST_NOT_SERVED) is checked with GET at once and,
 * from then on, only with GET. One instance per deployment's health check.
 */
export class MethodFallbackChecker implements HealthChecker {
  private readonly getOnly = new Set<string>();

  constructor(private readonly inner: HealthChecker, private readonly onFallback: (target: HealthTarget, statusCode: number) => void = () => {}) {}

  async check(target: HealthTarget, type: HealthCheckType, signal?: AbortSignal): Promise<HealthResult> {
    const key = `${target.namespace}/${target.podName}`;
    if (target.method !== 'POST' || this.getOnly.has(key)) return this.inner.check({ ...target, method: 'GET' }, type, signal);
    const posted = await this.inner.check(target, type, signal);
    if (posted.statusCode === undefined || !POST_NOT_SERVED.has(posted.statusCode)) return posted;
    this.getOnly.add(key);
    this.onFallback(target, posted.statusCode);
    return this.inner.check({ ...target, method: 'GET' }, type, signal);
  }
}
