import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import { bodyParser } from '@koa/bodyparser';
import { logsAt, type Logger } from '../log.js';
import { ApiError, toApiError, type ErrorBody } from './errors.js';
import type { Caller } from '../auth/caller.js';
import type { AuditNote } from './audit-trail.js';

export interface AppState {
  requestId: string;
  log: Logger;
  /** Set by the authenticate middleware on every route but the open ones (health). */
  caller?: Caller;
  /** What the handlers learnt for the audit entry of a state-changing call. */
  audit?: AuditNote;
}

export type AppContext = Koa.ParameterizedContext<AppState>;

const INCOMING_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Honours a well-formed incoming X-Request-Id, else generates one; echoes it on the response. */
export function requestId(baseLog: Logger): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    const incoming = ctx.get('X-Request-Id');
    const id = INCOMING_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    ctx.state.log = baseLog.child({ req_id: id }, true);
    ctx.set('X-Request-Id', id);
    await next();
  };
}

/** One log line per request, written after the response is decided (errors included). */
/** Called once per request with its route template (never the raw path: bounded metric labels). */
export type RequestObserver = (method: string, route: string, status: number, seconds: number) => void;

export function accessLog(observe?: RequestObserver): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      // A JSON body is serialised once, here: Koa's response.length (for the log line) would
      // stringify the object a first time and its respond() a second.
      const body: unknown = ctx.body;
      if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && typeof (body as { pipe?: unknown }).pipe !== 'function') {
        ctx.body = JSON.stringify(body);
      }
      const log = ctx.state.log;
      // Fields only for a line that is written (CUTOVER_LOG_LEVEL above info drops request lines).
      if (logsAt(log, ctx.status >= 500 ? 'error' : 'info')) {
        const fields = {
          method: ctx.method,
          url: ctx.originalUrl.length > 2048 ? `${ctx.originalUrl.slice(0, 2048)}…` : ctx.originalUrl,
          status: ctx.status,
          duration_ms: Math.round(durationMs * 100) / 100,
          remote: ctx.request.ip,
          length: ctx.response.length,
        };
        if (ctx.status >= 500) log.error(fields, 'request');
        else log.info(fields, 'request');
      }
      const route = (ctx as unknown as { _matchedRoute?: unknown })._matchedRoute;
      observe?.(ctx.method, typeof route === 'string' ? route : 'unmatched', ctx.status, durationMs / 1000);
    }
  };
}

/**
 * Turns every failure into a JSON error body with the right status. Responses the router left
 * empty (404 unknown route, 405 wrong method with Allow) get a JSON body too. Internal errors
 * are logged with their stack and answered without one.
 */
export function jsonErrors(): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body === undefined || ctx.body === null) {
        if (ctx.status === 404) throw new ApiError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
        if (ctx.status === 405) throw new ApiError(405, 'method_not_allowed', `${ctx.method} is not allowed here; allowed: ${ctx.response.get('Allow')}`);
        if (ctx.status === 501) throw new ApiError(501, 'not_implemented', `${ctx.method} is not implemented`);
      }
    } catch (err) {
      const apiError = toApiError(err);
      if (apiError.status >= 500 && apiError.code === 'internal') {
        ctx.state.log.error({ err }, 'unhandled error');
      } else if (apiError.status === 503) {
        ctx.state.log.warn({ err: { message: (err as Error).message } }, 'dependency unavailable');
      }
      const body: ErrorBody = { error: apiError.code, message: apiError.message };
      if (apiError.details) body.details = apiError.details;
      if (apiError.status >= 500) body.requestId = ctx.state.requestId;
      ctx.status = apiError.status;
      for (const [name, value] of Object.entries(apiError.headers)) ctx.set(name, value);
      ctx.body = body;
    }
  };
}

/**
 * Serves paths with doubled slashes and with or without a trailing slash: clients join a base
 * URL ending in "/" with a Location starting with "/" (the original redirected those).
 */
export function normalisePath(): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    let path = ctx.path.replace(/\/{2,}/g, '/');
    if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
    if (path !== ctx.path) ctx.path = path;
    await next();
  };
}

export const BODY_LIMIT_BYTES = 1024 * 1024;

/** Parses JSON bodies (strict, at most 1 MiB); a body of another type is refused with 415. */
export function jsonBody(): Koa.Middleware<AppState> {
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: BODY_LIMIT_BYTES,
    jsonStrict: true,
    encoding: 'utf-8',
    onError: (err: Error) => {
      // A corrupt gzip/deflate/br body is the client's fault (was an internal error, found by the fuzz test).
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (/^Z_|^ERR__/.test(code)) throw new ApiError(400, 'bad_request', 'the request body could not be decompressed (Content-Encoding)');
      throw err;
    },
  });
  return async (ctx, next) => {
    if (['POST', 'PUT', 'PATCH'].includes(ctx.method) && hasBody(ctx) && !ctx.is('application/json', '+json')) {
      throw new ApiError(415, 'unsupported_media_type', 'request body must be JSON (Content-Type: application/json)');
    }
    const declared = Number(ctx.get('Content-Length') || '0');
    if (declared > BODY_LIMIT_BYTES) {
      throw new ApiError(413, 'payload_too_large', 'request body is larger than the limit of 1 MiB');
    }
    await (parse as unknown as Koa.Middleware<AppState>)(ctx, next);
  };
}

function hasBody(ctx: AppContext): boolean {
  const length = ctx.get('Content-Length');
  if (length !== '') return Number(length) > 0;
  return ctx.get('Transfer-Encoding') !== '';
}
