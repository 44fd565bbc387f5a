import { performance } from 'node:perf_hooks';
import { Agent, request } from '../lib/undici.js';
import { evaluateAnswer, toReason } from './evaluate.js';
import { healthCheckUrlPath } from './port.js';
import { finishResult } from './result.js';
import type { HealthCheckType, HealthChecker, HealthResult, HealthTarget } from './types.js';

export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
/** The "1" is the version of this checker's behaviour, not of cutover; pass `userAgent` to say more. */
export const DEFAULT_USER_AGENT = 'cutover-healthcheck/1';

export interface DirectHealthCheckerOptions {
  /** Total time for one check: connect, headers and body together. Default 2000 ms. */
  timeoutMs?: number;
  /** Bytes of body read at most; the rest is never read. Default 64 KiB. */
  maxBodyBytes?: number;
  userAgent?: string;
}

/** Marks an abort caused by our own per-request deadline, as opposed to the caller's signal. */
class DeadlineExceeded extends Error {}

/**
 * Checks pods by calling `http://{podIP}:{port}/{path}` directly (cutover runs inside the cluster).
 * Redirects are not followed; every connection is used for a single request.
 */
export class DirectHealthChecker implements HealthChecker {
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  readonly userAgent: string;
  readonly #agent: Agent;
  #closed = false;

  constructor(options: DirectHealthCheckerOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${this.timeoutMs}`);
    if (!Number.isInteger(this.maxBodyBytes) || this.maxBodyBytes <= 0) throw new RangeError(`maxBodyBytes must be a positive integer, got ${this.maxBodyBytes}`);
    this.#agent = new Agent({
      // Backstops only: the total deadline in check() normally fires first.
      connect: { timeout: this.timeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      // No keep-alive: a reused socket to a pod that restarted would fail with a misleading reset.
      pipelining: 0,
    });
  }

  async check(target: HealthTarget, type: HealthCheckType, signal?: AbortSignal): Promise<HealthResult> {
    signal?.throwIfAborted();
    if (this.#closed) throw new Error('DirectHealthChecker is closed');

    const startedAt = performance.now();
    const controller = new AbortController();
    const onCallerAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onCallerAbort, { once: true });
    const deadline = setTimeout(() => controller.abort(new DeadlineExceeded()), this.timeoutMs);

    let statusCode: number | undefined;
    const chunks: Buffer[] = [];
    const bodyText = (): string => Buffer.concat(chunks).toString('utf8');
    try {
      const post = target.method === 'POST';
      const response = await request(healthCheckUrl(target), {
        method: post ? 'POST' : 'GET',
        headers: { 'user-agent': this.userAgent, accept: 'application/json', ...(post ? { 'content-type': 'application/json' } : {}) },
        ...(post ? { body: '' } : {}),
        dispatcher: this.#agent,
        signal: controller.signal,
      });
      statusCode = response.statusCode;
      const truncated = await readCapped(response.body, this.maxBodyBytes, chunks);
      const verdict = evaluateAnswer(type, statusCode, bodyText(), truncated ? { truncatedAtBytes: this.maxBodyBytes } : {});
      return finishResult(target.podName, startedAt, { ...verdict, statusCode, body: bodyText() });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const failure = controller.signal.reason instanceof DeadlineExceeded ? `timed out after ${this.timeoutMs} ms` : describeFailure(err, this.timeoutMs);
      const reason = statusCode === undefined ? failure : `status ${statusCode}; ${failure} while reading the body`;
      return finishResult(target.podName, startedAt, { healthy: false, reason, statusCode, body: bodyText() });
    } finally {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** Closes all connections. Call once, when no more checks will be made. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#agent.close();
  }
}

export function healthCheckUrl(target: Pick<HealthTarget, 'podIP' | 'port' | 'path'>): string {
  const host = target.podIP.includes(':') ? `[${target.podIP}]` : target.podIP; // IPv6 pod IPs need brackets
  return `http://${host}:${target.port}${healthCheckUrlPath(target.path)}`;
}

/** Reads at most `maxBytes` into `sink`; returns true when the body was longer and reading stopped. */
async function readCapped(body: NodeJS.ReadableStream & AsyncIterable<Buffer>, maxBytes: number, sink: Buffer[]): Promise<boolean> {
  let total = 0;
  for await (const chunk of body) {
    const room = maxBytes - total;
    if (chunk.length > room) {
      sink.push(chunk.subarray(0, room));
      return true; // leaving the loop destroys the stream, which closes the connection
    }
    sink.push(chunk);
    total += chunk.length;
  }
  return false;
}

const ERROR_CODE_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  EADDRNOTAVAIL: 'address not available',
  UND_ERR_SOCKET: 'connection closed by the pod',
  UND_ERR_HEADERS_OVERFLOW: 'invalid HTTP answer (headers too large)',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'invalid HTTP answer (body length does not match Content-Length)',
};

/** Turns a transport error into a short reason such as "connection refused". */
export function describeFailure(err: unknown, timeoutMs: number): string {
  for (const e of errorChain(err)) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
      return `timed out after ${timeoutMs} ms`;
    }
    const known = ERROR_CODE_REASONS[code];
    if (known) return known;
    if (code.startsWith('HPE_') || e.name === 'HTTPParserError') return toReason(`invalid HTTP answer (${e.message || code})`);
    if (code === 'UND_ERR_INVALID_ARG') return toReason(`invalid request: ${e.message}`);
  }
  const top = errorChain(err)[0];
  return toReason(top ? `${typeof top.code === 'string' ? top.code : top.name}: ${top.message}` : String(err));
}

interface ErrorLike {
  name: string;
  message: string;
  code?: unknown;
}

/** The error, its causes and (for AggregateError) its members, outermost first. */
function errorChain(err: unknown): ErrorLike[] {
  const chain: ErrorLike[] = [];
  const queue: unknown[] = [err];
  while (queue.length > 0 && chain.length < 10) {
    const e = queue.shift();
    if (!(e instanceof Error)) continue;
    chain.push(e as ErrorLike);
    if (e.cause !== undefined) queue.push(e.cause);
    if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
  }
  return chain;
}
