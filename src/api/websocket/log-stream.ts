import { BEARER_SUBPROTOCOL_PREFIX } from '../../auth/middleware.js';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import { http } from '../../lib/node-http.js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import type { DeploymentStore } from '../../store/deployments.js';
import { StoreUnavailableError, type KvStore } from '../../store/kv.js';
import type { Logger } from '../../log.js';
import { ApiError, type ErrorBody } from '../errors.js';
import { namespaceSchema } from '../../domain/descriptor-schema.js';
import { DeploymentFeeds, type FeedsChange } from './deployment-feed.js';
import { FrameLogs, type StreamFormat } from './frames.js';
import { LogSession, PumpQueue, type SessionEnd } from './log-session.js';
import { OriginPolicy } from './origins.js';

/** Where one cluster's records and their events live. */
export interface LogSource {
  deployments: DeploymentStore;
  kv: KvStore;
}

export interface LogStreamDeps {
  /** One per cluster; a deployment id is looked up in each (ids are UUIDs: at most one has it). */
  sources: readonly LogSource[];
  log: Logger;
  /** CUTOVER_ALLOWED_ORIGINS (same origin and no Origin are always allowed). */
  allowedOrigins: readonly string[];
  heartbeatMs: number;
  maxBufferedBytes: number;
  /**
   * Koa middleware does not run for upgrades: authentication and authorisation go here. Called
   * after the route, origin and parameters were checked and before anything is read from etcd;
   * throw an ApiError (401/403/429/503, with its headers) to refuse. Unset: everyone may watch.
   * E.g. `async (req, ns) => assertNamespaceAllowed(await authenticator.authenticateRequest(req, undefined), ns)`.
   */
  authorize?: (req: IncomingMessage, namespace: string) => Promise<void>;
}

/** What happens on the log stream, for observers (metrics, tests). */
export type LogStreamEvent =
  | { type: 'watcher-opened'; requestId: string; namespace: string; deploymentId: string; format: StreamFormat; from: number }
  /** The server started closing a socket (final status, too slow, shutdown…); `watcher-closed` follows. */
  | { type: 'watcher-closing'; requestId: string; namespace: string; deploymentId: string; code: number; reason: string; lastSeq: number }
  | ({ type: 'watcher-closed'; requestId: string; namespace: string; deploymentId: string } & SessionEnd)
  | { type: 'upgrade-refused'; requestId: string; status: number; error: string; message: string }
  | FeedsChange;

export interface LogStream {
  /** Closes every socket with 1001, waits briefly for the closing handshakes, stops the feeds. */
  close(): Promise<void>;
  /** Open log websockets. */
  watcherCount(): number;
  /** Running feeds, i.e. etcd watches (one per watched deployment). */
  feedCount(): number;
  /** Whether the ping timer runs: only while a socket is open, so an idle replica has no timer waking it. */
  heartbeatRunning(): boolean;
  subscribe(listener: (event: LogStreamEvent) => void): () => void;
}

/** The subprotocol a browser offers beside its `cutover.bearer.<jwt>` entry. */
export const LOG_SUBPROTOCOL = 'cutover.logs.v1';

/** The websocket route; paths are normalised first, as the REST API does. */
const LOG_STREAM_PATH = /^\/stream\/deployments\/([^/]+)\/logs$/;
const DEPLOYMENT_ID = /^[A-Za-z0-9-]{1,128}$/;
const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;
/** Clients never need to send anything; a few KiB leaves room for a stray keep-alive message. */
const MAX_CLIENT_PAYLOAD_BYTES = 4096;
/** How long ws waits for the client's half of a closing handshake before it cuts the connection. */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 5000;
/** On shutdown, how long clients get to answer the 1001 close before they are cut off. */
const SHUTDOWN_GRACE_MS = 2000;

class UpgradeRefusal extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

const badRequest = (message: string) => new UpgradeRefusal(400, 'bad_request', message);

/**
 * `GET /stream/deployments/{id}/logs?namespace=NS[&format=json][&from=SEQ]`: a websocket on the
 * API's HTTP server. Koa does not see upgrades, so this handler validates the request itself and
 * answers refusals with the REST API's JSON error body before any upgrade. Non-websocket upgrade
 * requests (e.g. `Upgrade: h2c`) are served by the REST API as plain requests.
 */
export function attachLogStream(server: Server, deps: LogStreamDeps): LogStream {
  const log = deps.log.child({ component: 'log-stream' });
  const policy = new OriginPolicy(deps.allowedOrigins);
  const feedsOf = deps.sources.map((source) => ({ source, feeds: new DeploymentFeeds({ store: source.deployments, kv: source.kv, log }) }));
  const locate = async (namespace: string, id: string) => {
    const found = await Promise.all(feedsOf.map((f) => f.source.deployments.get(namespace, id)));
    const i = found.findIndex((x) => x !== undefined);
    return i < 0 ? undefined : { found: found[i]!, feeds: feedsOf[i]!.feeds };
  };
  const frameLogs = new FrameLogs();
  const pumpQueue = new PumpQueue();
  const sessions = new Set<LogSession>();
  const observers = new EventEmitter();
  observers.setMaxListeners(0);
  const requestIds = new WeakMap<IncomingMessage, string>();
  let closing: Promise<void> | undefined;

  // closeTimeout exists in ws 8.23 but not yet in @types/ws 8.18.
  const wssOptions: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    maxPayload: MAX_CLIENT_PAYLOAD_BYTES,
    perMessageDeflate: false, // per-frame compression would cost CPU per socket; log lines are small
    clientTracking: false, // sessions are tracked here
    closeTimeout: CLOSE_HANDSHAKE_TIMEOUT_MS,
    // Browsers offer a token as `cutover.bearer.<jwt>` beside a real protocol; never echo the token.
    handleProtocols: (offered: Set<string>) => {
      if (offered.has(LOG_SUBPROTOCOL)) return LOG_SUBPROTOCOL;
      return [...offered].find((p) => !p.startsWith(BEARER_SUBPROTOCOL_PREFIX)) ?? false;
    },
  };
  const wss = new WebSocketServer(wssOptions);
  wss.on('headers', (headers: string[], req: IncomingMessage) => {
    const id = requestIds.get(req);
    if (id) headers.push(`X-Request-Id: ${id}`);
  });
  const publish = (event: LogStreamEvent) => {
    for (const listener of observers.listeners('event')) {
      try {
        (listener as (e: LogStreamEvent) => void)(event);
      } catch {
        // an observer must never break the stream
      }
    }
  };
  for (const f of feedsOf) f.feeds.subscribe(publish);

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => log.debug({ err: err.message }, 'upgrade socket error'));
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      serveAsPlainRequest(server, req, socket);
      return;
    }
    void upgrade(req, socket, head);
  };

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && INCOMING_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    const reqLog = log.child({ req_id: requestId });
    const accessLog = (status: number) => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const url = req.url ?? '';
      reqLog.info({
        method: req.method, url: url.length > 2048 ? `${url.slice(0, 2048)}…` : url, status,
        duration_ms: Math.round(durationMs * 100) / 100, remote: req.socket.remoteAddress,
      }, 'request');
    };
    let gone = false;
    let upgraded = false;
    let release: (() => void) | undefined;
    socket.once('close', () => {
      gone = true;
      if (!upgraded) release?.();
    });

    try {
      const target = parseTarget(req, policy);
      if (closing) throw new UpgradeRefusal(503, 'shutting_down', 'cutover is shutting down; connect to another replica or retry', { 'Retry-After': '2' });
      await deps.authorize?.(req, target.namespace);
      const located = await locate(target.namespace, target.deploymentId);
      const found = located?.found;
      if (!located || !found) throw new UpgradeRefusal(404, 'not_found', `deployment ${target.deploymentId} not found in namespace ${target.namespace}`);
      if (gone) return;
      const lease = await located.feeds.acquire(target.namespace, target.deploymentId);
      release = lease.release;
      if (gone || closing) {
        lease.release();
        if (!gone) throw new UpgradeRefusal(503, 'shutting_down', 'cutover is shutting down; connect to another replica or retry', { 'Retry-After': '2' });
        return;
      }
      requestIds.set(req, requestId);
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        upgraded = true;
        accessLog(101);
        const record = found.value;
        const session = new LogSession(ws, lease, frameLogs.of(lease.feed), {
          ...target, requestId,
          recordStatus: { status: record.status, step: record.step, time: record.lastModified },
        }, {
          maxBufferedBytes: deps.maxBufferedBytes, log: reqLog, pumpQueue,
          onClosing: (code, reason, lastSeq) => publish({ type: 'watcher-closing', requestId, namespace: target.namespace, deploymentId: target.deploymentId, code, reason, lastSeq }),
        });
        sessions.add(session);
        startHeartbeat();
        void session.ended.then((end) => {
          sessions.delete(session);
          if (sessions.size === 0) stopHeartbeat();
          reqLog.info({ namespace: target.namespace, deploymentId: target.deploymentId, ...end }, 'log stream closed');
          publish({ type: 'watcher-closed', requestId, namespace: target.namespace, deploymentId: target.deploymentId, ...end });
        });
        publish({ type: 'watcher-opened', requestId, namespace: target.namespace, deploymentId: target.deploymentId, format: target.format, from: target.from });
        try {
          session.start();
        } catch (err) {
          // Past the handshake an HTTP answer is impossible; the client reconnects with from=.
          reqLog.error({ err }, 'log stream session failed to start');
          ws.terminate();
          return;
        }
        // Shutdown began while the handshake was written: this socket was not in the set it closed.
        if (closing) session.goAway();
      });
    } catch (err) {
      const refusal = toRefusal(err);
      if (refusal.status >= 500 && refusal.code === 'internal') reqLog.error({ err }, 'log stream upgrade failed');
      else if (refusal.status === 503) reqLog.warn({ err: (err as Error).message }, 'log stream upgrade refused: unavailable');
      const body: ErrorBody = { error: refusal.code, message: refusal.message };
      if (refusal.status >= 500) body.requestId = requestId;
      if (!gone) writeHttpError(socket, refusal.status, body, { 'X-Request-Id': requestId, ...refusal.headers });
      accessLog(refusal.status);
      publish({ type: 'upgrade-refused', requestId, status: refusal.status, error: refusal.code, message: refusal.message });
    }
  }

  server.on('upgrade', onUpgrade);

  // One timer for every socket: a socket that did not answer the last ping is cut off. It runs
  // only while a socket is open (issue #18: no periodic wake-ups while idle).
  let heartbeat: NodeJS.Timeout | undefined;
  function startHeartbeat(): void {
    heartbeat ??= setInterval(() => {
      for (const session of sessions) {
        if (!session.ping()) {
          log.info({ deploymentId: session.spec.deploymentId, req_id: session.spec.requestId }, 'log stream client did not answer a ping; dropping it');
          session.terminate();
        }
      }
    }, deps.heartbeatMs).unref();
  }
  function stopHeartbeat(): void {
    clearInterval(heartbeat);
    heartbeat = undefined;
  }

  return {
    watcherCount: () => sessions.size,
    feedCount: () => feedsOf.reduce((n, f) => n + f.feeds.count, 0),
    heartbeatRunning: () => heartbeat !== undefined,
    subscribe: (listener) => {
      observers.on('event', listener);
      return () => observers.off('event', listener);
    },
    close: () => {
      closing ??= (async () => {
        stopHeartbeat();
        const open = [...sessions];
        for (const session of open) session.goAway();
        const allEnded = Promise.all(open.map((s) => s.ended));
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          allEnded.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), SHUTDOWN_GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          for (const session of sessions) session.terminate();
          await allEnded;
        }
        await Promise.all(feedsOf.map((f) => f.feeds.close()));
        wss.close();
        // Upgrades that arrive from now on are answered 503 by the handler above.
      })();
      return closing;
    },
  };
}

interface Target {
  namespace: string;
  deploymentId: string;
  format: StreamFormat;
  from: number;
}

/** Route, method, origin and query of an upgrade request, or the refusal the REST API would give. */
function parseTarget(req: IncomingMessage, policy: OriginPolicy): Target {
  // Not `new URL(req.url, base)`: a path starting with "//" would be read as a host name.
  const raw = req.url ?? '/';
  const queryAt = raw.indexOf('?');
  const query = new URLSearchParams(queryAt < 0 ? '' : raw.slice(queryAt + 1));
  let path = (queryAt < 0 ? raw : raw.slice(0, queryAt)).replace(/\/{2,}/g, '/');
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  const match = LOG_STREAM_PATH.exec(path);
  if (!match) throw new UpgradeRefusal(404, 'not_found', `no route for ${req.method} ${path}`);
  if (req.method !== 'GET') throw new UpgradeRefusal(405, 'method_not_allowed', `${req.method} is not allowed here; allowed: GET`, { Allow: 'GET' });

  const origin = req.headers.origin;
  if (!policy.check(origin, req.headers.host).allowed) {
    throw new UpgradeRefusal(403, 'forbidden_origin', `origin ${origin} is not allowed (CUTOVER_ALLOWED_ORIGINS)`);
  }
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key.trim())) throw badRequest('missing or invalid Sec-WebSocket-Key header');
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    throw new UpgradeRefusal(400, 'bad_request', 'unsupported Sec-WebSocket-Version (supported: 13, 8)', { 'Sec-WebSocket-Version': '13, 8' });
  }

  const single = (name: string): string | undefined => {
    const values = query.getAll(name);
    if (values.length > 1) throw badRequest(`query parameter "${name}" must be given once`);
    return values[0];
  };
  const namespace = single('namespace');
  if (namespace === undefined || namespace === '') throw badRequest('query parameter "namespace" is required');
  const { error } = namespaceSchema.label('namespace').validate(namespace);
  if (error) throw badRequest(`query parameter ${error.message}`);

  let deploymentId: string;
  try {
    deploymentId = decodeURIComponent(match[1]!);
  } catch {
    deploymentId = match[1]!;
  }
  if (!DEPLOYMENT_ID.test(deploymentId)) throw new UpgradeRefusal(404, 'not_found', `deployment ${JSON.stringify(deploymentId)} not found`);

  const format = single('format') ?? 'text';
  if (format !== 'text' && format !== 'json') throw badRequest('query parameter "format" must be "text" or "json"');
  const fromText = single('from');
  if (fromText !== undefined && !/^[0-9]{1,12}$/.test(fromText)) throw badRequest('query parameter "from" must be a sequence number (0 or more)');
  return { namespace, deploymentId, format, from: fromText === undefined ? 0 : Number(fromText) };
}

function toRefusal(err: unknown): UpgradeRefusal {
  if (err instanceof UpgradeRefusal) return err;
  if (err instanceof ApiError) return new UpgradeRefusal(err.status, err.code, err.message, err.headers);
  if (err instanceof StoreUnavailableError) {
    return new UpgradeRefusal(503, 'store_unavailable', 'the data store (etcd) is unavailable; retry later', { 'Retry-After': '2' });
  }
  if (err instanceof Error && err.name === 'FeedsClosedError') {
    return new UpgradeRefusal(503, 'shutting_down', 'cutover is shutting down; connect to another replica or retry', { 'Retry-After': '2' });
  }
  return new UpgradeRefusal(500, 'internal', 'internal error');
}

/** An HTTP error response on a socket that was not upgraded, then the connection is closed. */
function writeHttpError(socket: Duplex, status: number, body: ErrorBody, headers: Record<string, string>): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const json = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(json)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`);
}

/**
 * A request with an Upgrade header other than websocket (curl --http2 sends `Upgrade: h2c`): it
 * reaches the 'upgrade' event only because this module listens to it, so it is handed to the
 * REST API as the plain HTTP/1.1 request it also is. A body cannot be re-read here, so such a
 * request with a body is refused.
 */
function serveAsPlainRequest(server: Server, req: IncomingMessage, socket: Duplex): void {
  const declaresBody = (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding'] !== undefined;
  if (declaresBody) {
    writeHttpError(socket, 400, { error: 'bad_request', message: `Upgrade: ${req.headers.upgrade} is not supported; send the request without it` }, {});
    return;
  }
  const res = new http.ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  server.emit('request', req, res);
}
