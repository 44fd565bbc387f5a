import { createSecureContext } from 'node:tls';
import { Agent, request, type Dispatcher } from '../lib/undici.js';
import type { ClusterAccess } from './kubeconfig.js';
import { KubeError } from './errors.js';

/**
 * A small Kubernetes REST client: JSON requests and watches over one pooled, keep-alive undici
 * connection pool per cluster, with the cluster's TLS material. cutover uses a handful of verbs on
 * a handful of resources (src/kube/resources.ts); the typed objects come from
 * @kubernetes/client-node's type definitions only (no runtime import).
 */
export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Default application/json; PATCH callers say which patch type. */
  contentType?: string;
  /** Sent as is, as application/json (instead of `body`). */
  rawBody?: string;
  signal?: AbortSignal;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export class KubeClient {
  private readonly dispatcher: Agent;
  /**
   * Watches have a pool of their own: each holds a connection for minutes, and calls must never
   * queue behind them for one of the 64 connections (200 namespaces watched at once would take
   * them all). Its size is bounded by whoever starts watches (src/deployer/watch-hub.ts: a pod
   * and an EndpointSlice hub, each at most 256 namespaces).
   */
  private readonly watchDispatcher: Agent;
  private closed = false;
  /** Calls whose answer is still being read (watches included); close() waits for them. */
  private active = 0;
  private onIdle: (() => void) | undefined;

  constructor(readonly access: ClusterAccess) {
    // One TLS context for every connection: given ca/cert/key, each new connection would parse
    // them into a context of its own (measured: 23 s of 140 s CPU in a 200-app run whose timed-out
    // calls kept replacing connections).
    const secureContext = access.server.startsWith('https:') ? createSecureContext({
      ...(access.ca ? { ca: access.ca } : {}),
      ...(access.cert ? { cert: access.cert } : {}),
      ...(access.key ? { key: access.key } : {}),
    }) : undefined;
    const connect = {
      ...(secureContext ? { secureContext } : {}),
      ...(access.tlsServerName ? { servername: access.tlsServerName } : {}),
      rejectUnauthorized: !access.insecureSkipTlsVerify,
    };
    this.dispatcher = new Agent({
      connect,
      keepAliveTimeout: 30_000,
      connections: 64,
      // Watches hold their connection open; other calls must never wait behind them.
      pipelining: 1,
    });
    this.watchDispatcher = new Agent({ connect, keepAliveTimeout: 30_000, pipelining: 1 });
  }

  /** One request; resolves with the parsed JSON answer, rejects with KubeError (status 0: no answer). */
  async json<T>(method: Dispatcher.HttpMethod, path: string, options: RequestOptions = {}): Promise<T> {
    return this.answer<T>(method, path, options, false) as Promise<T>;
  }

  /**
   * Like json(), but 404 Not Found answers undefined: for reads of an object that may well not
   * exist (14 of a deployment's ~30 calls), no error is built, thrown or counted as a failure.
   */
  async jsonOrAbsent<T>(method: Dispatcher.HttpMethod, path: string, options: RequestOptions = {}): Promise<T | undefined> {
    return this.answer<T>(method, path, options, true);
  }

  private async answer<T>(method: Dispatcher.HttpMethod, path: string, options: RequestOptions, absentOn404: boolean): Promise<T | undefined> {
    return this.tracked(async () => {
      const res = await this.send(method, path, options);
      const text = await res.body.text();
      if (res.statusCode >= 200 && res.statusCode < 300) return (text ? JSON.parse(text) : undefined) as T;
      if (res.statusCode === 404 && absentOn404) return undefined;
      throw statusError(`${method} ${path}`, res.statusCode, text);
    });
  }

  /**
   * A raw call whose body is returned as text whatever the status (the pod proxy of health
   * checks); a POST sends an empty body as application/json.
   */
  async text(path: string, signal?: AbortSignal, method: 'GET' | 'POST' = 'GET'): Promise<{ statusCode: number; body: string }> {
    return this.tracked(async () => {
      const res = await this.send(method, path, { ...(signal ? { signal } : {}), ...(method === 'POST' ? { rawBody: '' } : {}) });
      return { statusCode: res.statusCode, body: await res.body.text() };
    });
  }

  /**
   * A watch: calls `onEvent` for every event until the server ends the stream (resolves) or it
   * fails (rejects: KubeError 410 when the resourceVersion is too old, or a connection error).
   */
  async watch<T>(path: string, query: RequestOptions['query'], onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    return this.tracked(() => this.readWatch(path, query, onEvent, signal));
  }

  private async readWatch<T>(path: string, query: RequestOptions['query'], onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const res = await this.send('GET', path, { query: { ...query, watch: true }, signal }, this.watchDispatcher);
    if (res.statusCode < 200 || res.statusCode >= 300) throw statusError(`watch ${path}`, res.statusCode, await res.body.text());
    let buffered = '';
    res.body.setEncoding('utf8');
    for await (const chunk of res.body as AsyncIterable<string>) {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        const event = JSON.parse(line) as WatchEvent<T>;
        if (event.type === 'ERROR') {
          const status = event.object as { code?: number; reason?: string; message?: string };
          throw new KubeError(`watch ${path}: ${status.code ?? 0} ${status.reason ?? ''}: ${status.message ?? ''}`, status.code ?? 0, status.reason ?? '');
        }
        onEvent(event);
      }
    }
  }

  /** No new requests after this; the pool closes once every call has ended. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Only once no call is reading an answer any more (the caller aborts its calls and watches
    // first), so no keep-alive socket outlives the client.
    if (this.active > 0) await new Promise<void>((resolve) => { this.onIdle = resolve; });
    await Promise.all([this.dispatcher.close().catch(() => undefined), this.watchDispatcher.close().catch(() => undefined)]);
  }

  private async tracked<T>(fn: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await fn();
    } finally {
      if (--this.active === 0) this.onIdle?.();
    }
  }

  private async send(method: Dispatcher.HttpMethod, path: string, options: RequestOptions, dispatcher: Agent = this.dispatcher): Promise<Dispatcher.ResponseData> {
    if (this.closed) throw new KubeError(`${method} ${path}: the Kubernetes client is closed`, 0, 'Unavailable');
    const url = new URL(`${this.access.server}${path}`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.access.token?.();
    if (token) headers['authorization'] = `Bearer ${token}`;
    let body: string | undefined;
    if (options.body !== undefined || options.rawBody !== undefined) {
      body = options.rawBody ?? JSON.stringify(options.body);
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    try {
      return await request(url, {
        dispatcher, method, headers, ...(body !== undefined ? { body } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        // The caller's signal bounds each call; a watch stays open as long as the server keeps it.
        headersTimeout: 0, bodyTimeout: 0,
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      const cause = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
      const why = cause.cause?.code ?? cause.code ?? cause.cause?.message ?? cause.message ?? String(err);
      throw new KubeError(`${method} ${path}: ${why}`, 0, 'Unavailable', { cause: err });
    }
  }
}

function statusError(operation: string, code: number, text: string): KubeError {
  let reason = '';
  let message = '';
  try {
    const status = JSON.parse(text) as { reason?: string; message?: string };
    reason = status.reason ?? '';
    message = status.message ?? '';
  } catch {
    message = text.slice(0, 300);
  }
  return new KubeError(`${operation}: ${code} ${reason}${message ? `: ${message}` : ''}`, code, reason);
}
