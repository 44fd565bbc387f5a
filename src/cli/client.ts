import { signRequest } from '../auth/signing.js';
import {
  CliError, errorFromNetwork, errorFromResponse, isTransientStatus, transienceOfNetworkError, type RequestContext,
} from './errors.js';
import { ExitCode } from './exit-codes.js';
import { withDeadline } from '../lib/deadline.js';

/**
 * The CLI's HTTP client for cutover's REST API: authentication (HMAC-signed requests or a bearer
 * token), retries of transient failures with backoff within the command's deadline, and the
 * mapping of error answers to CliErrors. No server-side imports: signing is the shared pure module.
 */

export type Credentials =
  | { kind: 'api-key'; keyId: string; secret: string }
  | { kind: 'bearer'; token: string };

export interface RetryNotice {
  action: string;
  /** Why the attempt failed, e.g. "ECONNREFUSED" or "HTTP 503 store_unavailable". */
  reason: string;
  attempt: number;
  delayMs: number;
}

export interface ClientOptions {
  /** e.g. "http://127.0.0.1:8000"; a path prefix is kept ("https://host/cutover"). */
  baseUrl: string;
  credentials?: Credentials | undefined;
  /** false: fail at the first transient error (--no-retry). */
  retry: boolean;
  /** Epoch ms after which no attempt starts and no backoff waits (the command's --timeout). */
  deadline: number;
  onRetry?: (notice: RetryNotice) => void;
  /** Per-attempt limit; default 30 s. */
  attemptTimeoutMs?: number;
  fetchImpl?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  userAgent?: string;
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions<T> {
  /** JSON body; serialised once, and the signature covers exactly those bytes. */
  json?: unknown;
  headers?: Record<string, string>;
  context: RequestContext;
  /**
   * Whether repeating the request is harmless. Default: every method but POST. A non-idempotent
   * request is retried after a failure that proves it never arrived (connection refused); after an
   * ambiguous one (reset, 502/503/504) only when `recover` says it did not take effect.
   */
  idempotent?: boolean;
  /** Looks for the effect of an ambiguous attempt; returns the result if it happened. */
  recover?: () => Promise<ApiResponse<T> | undefined>;
  /** Statuses returned instead of thrown (e.g. 404 where "absent" is an answer). */
  accept?: number[];
  /** Override the client's retry setting for this request (e.g. best-effort polls). */
  retry?: boolean;
  attemptTimeoutMs?: number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Backoff before retry n (1-based): 250 ms doubling to 5 s, ±20 % jitter so clients spread out. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(5000, 250 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Retry-After in seconds (the only form cutover sends), capped so a bad value cannot stall a pipeline. */
function retryAfterMs(headers: Headers): number | undefined {
  const raw = headers.get('retry-after');
  if (!raw || !/^\d{1,6}$/.test(raw.trim())) return undefined;
  return Math.min(30_000, Number(raw.trim()) * 1000);
}

function describeFailure(err: unknown): string {
  const code = (err as { cause?: { code?: unknown }; code?: unknown })?.cause?.code ?? (err as { code?: unknown })?.code;
  if (typeof code === 'string') return code;
  if ((err as { name?: unknown })?.name === 'TimeoutError') return 'no answer in time';
  return err instanceof Error ? err.message : String(err);
}

export class CutoverClient {
  readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(private readonly o: ClientOptions) {
    this.baseUrl = o.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = o.fetchImpl ?? fetch;
    this.sleep = o.sleep ?? defaultSleep;
    this.now = o.now ?? Date.now;
  }

  get deadline(): number {
    return this.o.deadline;
  }

  /** The absolute URL of an API path ("/deployments/…?namespace=…"). */
  url(pathWithQuery: string): URL {
    return new URL(this.baseUrl + pathWithQuery);
  }

  /** The websocket URL of an API path (ws:// or wss://). */
  websocketUrl(pathWithQuery: string): URL {
    const url = this.url(pathWithQuery);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url;
  }

  /**
   * Authentication headers for one request; a signature covers the request-target exactly as
   * sent (path and query of the final URL) and the body bytes, and is accepted once.
   */
  authHeaders(method: string, url: URL, body?: string): Record<string, string> {
    const c = this.o.credentials;
    if (!c) return {};
    if (c.kind === 'bearer') return { Authorization: `Bearer ${c.token}` };
    return signRequest({ keyId: c.keyId, secret: c.secret, method, pathWithQuery: url.pathname + url.search, ...(body !== undefined ? { body } : {}) });
  }

  async request<T = unknown>(method: string, pathWithQuery: string, options: RequestOptions<T>): Promise<ApiResponse<T>> {
    const url = this.url(pathWithQuery);
    const body = options.json === undefined ? undefined : JSON.stringify(options.json);
    const idempotent = options.idempotent ?? method !== 'POST';
    const retry = options.retry ?? this.o.retry;
    const started = this.now();
    for (let attempt = 1; ; attempt++) {
      let failure: { reason: string; ambiguous: boolean; delayMs?: number; error: () => CliError };
      try {
        const res = await this.attempt(method, url, body, options);
        if (res.status >= 300 && res.status < 400) {
          throw new CliError(ExitCode.unavailable, `${options.context.action}: cutover answered with a redirect (HTTP ${res.status} to ${res.headers.get('location') ?? '?'})`, {
            hint: 'check --url (CUTOVER_URL): it should be the API\'s own address (http:// or https:// as cutover serves it)',
          });
        }
        if (res.status < 400 || options.accept?.includes(res.status)) return res as ApiResponse<T>;
        const error = () => errorFromResponse(res.status, res.body, options.context, res.headers);
        if (!isTransientStatus(res.status)) throw error();
        const code = (res.body as { error?: unknown } | undefined)?.error;
        const delay = retryAfterMs(res.headers);
        failure = { reason: `HTTP ${res.status}${typeof code === 'string' ? ` ${code}` : ''}`, ambiguous: true, error, ...(delay !== undefined ? { delayMs: delay } : {}) };
      } catch (err) {
        if (err instanceof CliError) throw err;
        const transience = transienceOfNetworkError(err);
        const error = () => errorFromNetwork(err, this.baseUrl, options.context, this.now() - started);
        if (transience === 'permanent') throw error();
        failure = { reason: describeFailure(err), ambiguous: transience === 'ambiguous', error };
      }
      if (failure.ambiguous && !idempotent) {
        // The request may have taken effect: repeat it only if it demonstrably did not.
        const recovered = options.recover ? await options.recover() : undefined;
        if (recovered) return recovered;
        if (!options.recover) {
          const e = failure.error();
          throw new CliError(e.exitCode, `${e.message}; it may or may not have been carried out`, { hint: 'check the current state (cutover status NAMESPACE/APP) before running the command again' });
        }
      }
      const delayMs = failure.delayMs ?? backoffMs(attempt);
      if (!retry || this.now() + delayMs >= this.o.deadline) throw failure.error();
      this.o.onRetry?.({ action: options.context.action, reason: failure.reason, attempt, delayMs });
      await this.sleep(delayMs);
    }
  }

  private async attempt(method: string, url: URL, body: string | undefined, options: RequestOptions<unknown>): Promise<ApiResponse> {
    const remaining = Math.max(1000, this.o.deadline - this.now());
    const timeoutMs = Math.min(options.attemptTimeoutMs ?? this.o.attemptTimeoutMs ?? 30_000, remaining);
    const headers: Record<string, string> = {
      Accept: 'application/json, text/plain;q=0.9',
      'User-Agent': this.o.userAgent ?? 'cutover-cli',
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...options.headers,
      ...this.authHeaders(method, url, body),
    };
    const { res, text } = await withDeadline(timeoutMs, undefined, async (signal) => {
      const res = await this.fetchImpl(url, { method, headers, ...(body !== undefined ? { body } : {}), signal, redirect: 'manual' });
      return { res, text: await res.text() };
    });
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new CliError(ExitCode.internal, `${options.context.action}: cutover answered HTTP ${res.status} with malformed JSON`);
      }
    }
    return { status: res.status, headers: res.headers, body: parsed, text };
  }

  // ---- the API, one method per call the CLI makes ----

  get<T>(pathWithQuery: string, context: RequestContext, extra: Partial<RequestOptions<T>> = {}): Promise<ApiResponse<T>> {
    return this.request<T>('GET', pathWithQuery, { context, ...extra });
  }
}

/** `?a=1&b=2` from defined values, each encoded. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const parts = Object.entries(params)
    .filter((e): e is [string, string | number | boolean] => e[1] !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}
