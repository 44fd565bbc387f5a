import { isUrgent } from '../lib/urgency.js';
import { Client, Pool, type Dispatcher, type PoolOptions } from '../lib/undici.js';

/**
 * The wire protocol of etcd v3's HTTP/JSON gateway (grpc-gateway, served on the client port next
 * to gRPC): one member, POST /v3/<service>/<method> with the request message as JSON, keys and
 * values base64, int64s as decimal strings, fields at their default value (0, false, empty)
 * left out of answers. Streams (watch) answer with one JSON object per line, `{"result": …}` or
 * `{"error": …}`. Policy (prefix, deadlines per call, breaker, failover) is EtcdStore's.
 */

/** A key-value as the gateway sends it (mvccpb.KeyValue). */
export interface WireKeyValue {
  key: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export interface WireHeader {
  revision?: string;
}

export interface WireRangeResponse {
  header?: WireHeader;
  kvs?: WireKeyValue[];
  more?: boolean;
  count?: string;
}

export interface WireTxnResponse {
  header?: WireHeader;
  succeeded?: boolean;
  responses?: Array<{ response_range?: WireRangeResponse }>;
}

export interface WireLeaseGrantResponse {
  header?: WireHeader;
  ID?: string;
  TTL?: string;
  error?: string;
}

export interface WireLeaseKeepAliveResponse {
  result?: { header?: WireHeader; ID?: string; TTL?: string };
  error?: WireStreamError;
}

export interface WireWatchResponse {
  header?: WireHeader;
  watch_id?: string;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: Array<{ type?: 'PUT' | 'DELETE'; kv: WireKeyValue }>;
}

export interface WireStreamError {
  grpc_code?: number;
  http_code?: number;
  message?: string;
}

/** etcd answered with an error status (gRPC code and etcd's message, e.g. "etcdserver: leader changed"). */
export class EtcdResponseError extends Error {
  constructor(readonly grpcCode: number, readonly httpStatus: number, message: string) {
    super(message);
    this.name = 'EtcdResponseError';
  }

  /** The member cannot serve now (no leader, leader changed, timed out): another try may work. */
  get unavailable(): boolean {
    // gRPC Cancelled (1), DeadlineExceeded (4), Unavailable (14); 5xx from the gateway itself.
    return this.grpcCode === 1 || this.grpcCode === 4 || this.grpcCode === 14 || (this.grpcCode === 0 && this.httpStatus >= 500);
  }
}

/** The member could not be reached, the connection broke, or the call's deadline passed. */
export class EtcdTransportError extends Error {
  /** True when the request certainly never reached etcd (connection refused): safe to send elsewhere. */
  readonly notSent: boolean;

  constructor(message: string, notSent: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtcdTransportError';
    this.notSent = notSent;
  }
}

const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  // Connecting to a name with several addresses fails with an AggregateError of the attempts.
  const first = (err as { errors?: unknown[] }).errors?.[0];
  return first instanceof Error ? errorCode(first) : undefined;
}

const JSON_HEADERS = { 'content-type': 'application/json' };

function parseError(status: number, text: string): EtcdResponseError {
  let code = 0;
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { code?: number; message?: string; error?: string };
    code = body.code ?? 0;
    message = body.message ?? body.error ?? message;
  } catch {
    // not JSON: keep the text
  }
  return new EtcdResponseError(code, status, message || `HTTP ${status}`);
}

/**
 * Collects one answer through undici's dispatch API: what `request()` + `body.text()` gave, without
 * the per-call async resource, parsed response headers and body stream they cost (most of a status
 * GET's etcd read). abort() works as their AbortSignal did: at once on a connected request, else
 * when the request gets its connection.
 */
class AnswerCollector implements Dispatcher.DispatchHandler {
  readonly done: Promise<{ statusCode: number; text: string }>;
  aborted = false;
  private resolve!: (answer: { statusCode: number; text: string }) => void;
  private reject!: (err: Error) => void;
  private abortRequest: ((err: Error) => void) | undefined;
  private statusCode = 0;
  private readonly chunks: Buffer[] = [];

  constructor() {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortRequest?.(abortError());
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortRequest = abort;
    if (this.aborted) abort(abortError());
  }

  onHeaders(statusCode: number): boolean {
    if (statusCode >= 200) this.statusCode = statusCode; // 1xx: informational, the answer follows
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    // As undici's body.text(): UTF-8, a byte order mark skipped.
    const start = body.length > 2 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
    this.resolve({ statusCode: this.statusCode, text: body.toString('utf8', start) });
  }

  onError(err: Error): void {
    this.reject(err);
  }
}

/** What an aborted AbortSignal's request failed with (the cause of a deadline's EtcdTransportError). */
const abortError = () => new DOMException('This operation was aborted', 'AbortError');

/** Connections of the pool for urgent calls: a switch makes one or two etcd calls at a time. */
const URGENT_CONNECTIONS = 4;

/**
 * One etcd member's gateway: short calls on a bounded pool of keep-alive connections, each stream
 * on a connection of its own. Calls made inside urgent() — a deployment's switch — have a small
 * pool of their own: when hundreds of deployments start at once their calls queue for the main
 * pool (measured at 200 apps: 120–210 ms on average for a second), and a switch must not wait there.
 *
 * A connection that broke or whose call hit its deadline is not reused, and neither is its pool:
 * undici reconnects a pool's client whose socket was destroyed while requests were queued, and
 * such a connection, open but never sent a request, makes etcd's graceful shutdown wait 5 s for it
 * (Go's http.Server treats a new connection as busy for its first 5 s). The pool is replaced and
 * the old one closed once its calls are done.
 */
export class EtcdEndpoint {
  private calls: Pool;
  private urgentCalls: Pool;
  private readonly origin: string;
  private readonly poolOptions: PoolOptions;
  private readonly urgentPoolOptions: PoolOptions;
  private readonly streams = new Set<Client>();
  private closed = false;

  constructor(readonly url: string, options: { connectTimeoutMs: number; connections?: number }) {
    this.origin = new URL(url).origin;
    // Bounded: a burst of calls queues here instead of opening a connection each (HTTP/1.1 has no multiplexing).
    this.poolOptions = {
      connect: { timeout: options.connectTimeoutMs }, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 30_000, pipelining: 1,
      connections: options.connections ?? 16,
    };
    this.urgentPoolOptions = { ...this.poolOptions, connections: URGENT_CONNECTIONS };
    this.calls = new Pool(this.origin, this.poolOptions);
    this.urgentCalls = new Pool(this.origin, this.urgentPoolOptions);
  }

  /** One unary call; rejects with EtcdResponseError or EtcdTransportError (also when `timeoutMs` passes). */
  async call<T>(path: string, body: unknown, timeoutMs: number): Promise<T> {
    const urgent = isUrgent();
    const pool = urgent ? this.urgentCalls : this.calls;
    const answer = new AnswerCollector();
    const timer = setTimeout(() => answer.abort(), timeoutMs);
    try {
      pool.dispatch({ path, method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body) }, answer);
      const { statusCode, text } = await answer.done;
      if (statusCode !== 200) throw parseError(statusCode, text);
      return JSON.parse(text) as T;
    } catch (err) {
      const wrapped = this.wrapped(err, answer.aborted ? `deadline of ${Math.round(timeoutMs)} ms exceeded` : undefined);
      if (wrapped instanceof EtcdTransportError) this.replacePool(pool, urgent);
      throw wrapped;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * A server stream: `onMessage` gets every JSON object of the answer, in order. Resolves when
   * the server ends the stream, rejects when it fails or `signal` aborts it.
   */
  async stream(path: string, body: unknown, signal: AbortSignal, onMessage: (message: unknown) => void): Promise<void> {
    if (this.closed) throw new EtcdTransportError(`${this.url}: closed`, true);
    // Unbounded: every watch holds a connection for as long as it runs.
    const client = new Client(this.origin, { connect: this.poolOptions.connect!, headersTimeout: 0, bodyTimeout: 0, pipelining: 1 });
    this.streams.add(client);
    try {
      const res = await client.request({ path, method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body), signal });
      if (res.statusCode !== 200) throw parseError(res.statusCode, await res.body.text());
      res.body.setEncoding('utf8');
      let pending = '';
      for await (const chunk of res.body as AsyncIterable<string>) {
        pending += chunk;
        for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line.trim() !== '') onMessage(JSON.parse(line));
        }
      }
      if (pending.trim() !== '') onMessage(JSON.parse(pending));
    } catch (err) {
      throw this.wrapped(err, signal.aborted ? 'stream aborted' : undefined);
    } finally {
      this.streams.delete(client);
      client.destroy().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([this.calls.destroy(), this.urgentCalls.destroy(), ...[...this.streams].map((c) => c.destroy())]);
  }

  private replacePool(pool: Pool, urgent: boolean): void {
    if ((urgent ? this.urgentCalls : this.calls) !== pool || this.closed) return;
    if (urgent) this.urgentCalls = new Pool(this.origin, this.urgentPoolOptions);
    else this.calls = new Pool(this.origin, this.poolOptions);
    pool.close().catch(() => undefined);
  }

  private wrapped(err: unknown, abortReason: string | undefined): Error {
    if (err instanceof EtcdResponseError || err instanceof EtcdTransportError) return err;
    if (abortReason !== undefined) return new EtcdTransportError(`${this.url}: ${abortReason}`, false, { cause: err });
    if (err instanceof SyntaxError) return new Error(`${this.url}: unreadable answer from etcd: ${err.message}`, { cause: err });
    const code = errorCode(err);
    const message = err instanceof Error ? err.message || err.name : String(err);
    return new EtcdTransportError(`${this.url}: ${code && !message.includes(code) ? `${code} ` : ''}${message}`, code !== undefined && NOT_SENT_CODES.has(code), { cause: err });
  }
}

export const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
export const unb64 = (s: string | undefined): string => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** etcd's range end of a prefix: the smallest key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // empty or all 0xff: to the end of the key space
}
