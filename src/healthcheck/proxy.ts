import { performance } from 'node:perf_hooks';
import { evaluateAnswer, toReason } from './evaluate.js';
import { healthCheckUrlPath } from './port.js';
import { finishResult } from './result.js';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT_MS } from './direct.js';
import type { HealthCheckType, HealthChecker, HealthResult, HealthTarget } from './types.js';

export interface ProxyGetRequest {
  namespace: string;
  podName: string;
  port: number;
  /** Without a leading "/", possibly with a query: "health", "status/health?x=1". */
  path: string;
  /** Default GET; POST sends an empty body with Content-Type application/json. */
  method?: 'GET' | 'POST';
  timeoutMs: number;
  /** Aborted at the caller's abort or at the check's deadline; the implementation should stop its request. */
  signal?: AbortSignal;
}

export interface ProxyGetAnswer {
  statusCode: number;
  body: string;
}

/**
 * GETs `/api/v1/namespaces/{namespace}/pods/{podName}:{port}/proxy/{path}` through the API server.
 * Should resolve for any HTTP answer, whatever its status (the checker judges it), and reject with
 * an Error whose message explains any other failure. To match the direct checker it should not follow
 * redirects and should stop reading a body beyond a limit.
 */
export type ProxyGet = (req: ProxyGetRequest) => Promise<ProxyGetAnswer>;

export interface ApiServerProxyHealthCheckerOptions {
  /** Total time for one check; also passed on to proxyGet. Default 2000 ms. */
  timeoutMs?: number;
  /** Only this many bytes (UTF-8) of the answer body are evaluated. Default 64 KiB. */
  maxBodyBytes?: number;
}

class DeadlineExceeded extends Error {}

/** Checks pods through the API server's pod proxy, for when cutover runs outside the cluster. */
export class ApiServerProxyHealthChecker implements HealthChecker {
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly #proxyGet: ProxyGet;

  constructor(proxyGet: ProxyGet, options: ApiServerProxyHealthCheckerOptions = {}) {
    this.#proxyGet = proxyGet;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${this.timeoutMs}`);
  }

  async check(target: HealthTarget, type: HealthCheckType, signal?: AbortSignal): Promise<HealthResult> {
    signal?.throwIfAborted();
    const startedAt = performance.now();
    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onCallerAbort, { once: true });
    let deadlineTimer: NodeJS.Timeout | undefined;
    // Raced against proxyGet, so a proxyGet that ignores its signal still cannot hold a check past the deadline.
    const stopped = new Promise<never>((_, reject) => {
      deadlineTimer = setTimeout(() => controller.abort(new DeadlineExceeded(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    stopped.catch(() => {}); // it only ever loses the race or rejects; never unhandled

    try {
      const answer = await Promise.race([
        this.#proxyGet({
          namespace: target.namespace,
          podName: target.podName,
          port: target.port,
          path: healthCheckUrlPath(target.path).slice(1),
          ...(target.method ? { method: target.method } : {}),
          timeoutMs: this.timeoutMs,
          signal: controller.signal,
        }),
        stopped,
      ]);
      const bytes = Buffer.from(answer.body, 'utf8');
      const truncated = bytes.length > this.maxBodyBytes;
      const body = truncated ? bytes.subarray(0, this.maxBodyBytes).toString('utf8') : answer.body;
      const verdict = evaluateAnswer(type, answer.statusCode, body, truncated ? { truncatedAtBytes: this.maxBodyBytes } : {});
      return finishResult(target.podName, startedAt, { ...verdict, statusCode: answer.statusCode, body });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      // Our deadline wins over whatever error proxyGet made of the abort.
      const cause = controller.signal.reason instanceof DeadlineExceeded ? controller.signal.reason : err;
      const message = cause instanceof Error ? cause.message : String(cause);
      return finishResult(target.podName, startedAt, { healthy: false, reason: toReason(`proxy: ${message}`) });
    } finally {
      clearTimeout(deadlineTimer);
      signal?.removeEventListener('abort', onCallerAbort);
    }
  }
}
