import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type Koa from 'koa';
import type { Logger } from '../log.js';
import { ApiError } from '../api/errors.js';
import type { AppContext, AppState } from '../api/middleware.js';
import { ApiKeyVerifier, isSignedRequest, SIGNATURE_CHALLENGE } from './api-keys.js';
import {
  ALL_NAMESPACES, assertAdministrator, assertNamespaceAllowed, AuthenticationError, AuthorizationError,
  TooManyAuthFailuresError, type Caller,
} from './caller.js';
import { BEARER_CHALLENGE, type JwtVerifier } from './jwt.js';
import type { FailedAuthLimiter } from './rate-limit.js';

/** Every caller when CUTOVER_AUTH=off. */
export const ANONYMOUS_ADMINISTRATOR: Caller = Object.freeze({ identity: 'anonymous', method: 'none', namespaces: ALL_NAMESPACES });

/** What authentication needs of one request, whether it came through Koa or a websocket upgrade. */
export interface RequestParts {
  method: string;
  /** Request-target exactly as on the request line. */
  target: string;
  headers: IncomingHttpHeaders;
  remoteAddress: string | undefined;
  /** Reads the raw body; called only for signed requests, after their headers passed. */
  readBody: () => Promise<Buffer>;
}

export interface AuthenticatorOptions {
  /** false only with an explicit CUTOVER_AUTH=off: every request is an administrator. */
  enabled: boolean;
  jwt?: JwtVerifier;
  apiKeys?: ApiKeyVerifier;
  limiter: FailedAuthLimiter;
  log: Logger;
  /** Called for each failed authentication (metrics). */
  onFailure?: (method: 'jwt' | 'api-key' | 'none', limited: boolean) => void;
}

/**
 * Decides who a request comes from: a bearer JWT or an HMAC-signed request (never both). Failures
 * are 401 with WWW-Authenticate, or 429 once the client address has used up its failure budget.
 */
export class Authenticator {
  constructor(private readonly o: AuthenticatorOptions) {}

  get enabled(): boolean {
    return this.o.enabled;
  }

  /** The WWW-Authenticate challenges for the configured methods. */
  get challenges(): string[] {
    return [...(this.o.jwt ? [BEARER_CHALLENGE] : []), ...(this.o.apiKeys ? [SIGNATURE_CHALLENGE] : [])];
  }

  /**
   * For the websocket upgrade handler (and anything else outside Koa): authenticates the raw
   * request. `rawBody` is the body if one was read (upgrades have none). Throws an ApiError:
   * 401 (AuthenticationError, with WWW-Authenticate), 429 (TooManyAuthFailuresError, with
   * Retry-After) or 503 (JWKS unreachable); use its status, code, message and headers as is.
   */
  authenticateRequest(req: IncomingMessage, rawBody: Buffer | undefined): Promise<Caller> {
    return this.authenticate({
      method: req.method ?? 'GET',
      target: req.url ?? '/',
      headers: withSubprotocolBearer(req.headers),
      remoteAddress: req.socket?.remoteAddress,
      readBody: async () => rawBody ?? Buffer.alloc(0),
    });
  }

  async authenticate(parts: RequestParts): Promise<Caller> {
    if (!this.o.enabled) return ANONYMOUS_ADMINISTRATOR;
    let method: 'jwt' | 'api-key' | 'none' = 'none';
    try {
      const authorization = parts.headers.authorization;
      const signed = isSignedRequest(parts.headers);
      if (authorization !== undefined && signed) throw this.refuse('send either a bearer token or a signed request, not both');
      if (authorization !== undefined) {
        method = 'jwt';
        const m = /^Bearer +([^ ]+) *$/i.exec(authorization);
        if (!m) throw this.refuse('the Authorization header must be "Bearer <token>"');
        if (!this.o.jwt) throw this.refuse('bearer tokens are not accepted here (no JWT verification is configured)');
        return await this.o.jwt.verify(m[1]!);
      }
      if (signed) {
        method = 'api-key';
        if (!this.o.apiKeys) throw this.refuse('signed requests are not accepted here (API keys are off)');
        return await this.o.apiKeys.verify(parts);
      }
      throw this.refuse('authentication required: send a bearer token or a signed request (docs/security.md)');
    } catch (err) {
      if (!(err instanceof AuthenticationError)) throw err;
      const retryAfter = this.o.limiter.recordFailure(parts.remoteAddress);
      this.o.onFailure?.(method, retryAfter !== undefined);
      // Under a flood, one debug line per failure is enough; the credential itself is never logged.
      const fields = { remote: parts.remoteAddress, authMethod: method, reason: err.reason, request: `${parts.method} ${parts.target.split('?')[0]!.slice(0, 200)}` };
      if (retryAfter !== undefined) {
        this.o.log.debug(fields, 'authentication failed; client over its failure budget');
        throw new TooManyAuthFailuresError(retryAfter);
      }
      this.o.log.info(fields, 'authentication failed');
      throw err;
    }
  }

  private refuse(message: string): AuthenticationError {
    return new AuthenticationError(message, this.challenges);
  }
}

/**
 * Browsers cannot set headers on a WebSocket, so a UI may offer its token as a subprotocol
 * `cutover.bearer.<jwt>` (as Kubernetes does) next to the real one. Used when there is no
 * Authorization header. The upgrade handler must never select (echo) this entry.
 */
export const BEARER_SUBPROTOCOL_PREFIX = 'cutover.bearer.';

function withSubprotocolBearer(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const offered = headers['sec-websocket-protocol'];
  if (headers.authorization !== undefined || typeof offered !== 'string') return headers;
  const entry = offered.split(',').map((p) => p.trim()).find((p) => p.startsWith(BEARER_SUBPROTOCOL_PREFIX));
  return entry ? { ...headers, authorization: `Bearer ${entry.slice(BEARER_SUBPROTOCOL_PREFIX.length)}` } : headers;
}

export interface AuthenticateOptions {
  /** Normalised paths served without authentication (/healthz, /readyz, /metrics unless protected). */
  openPaths: ReadonlySet<string>;
  bodyLimitBytes: number;
}

/**
 * Koa middleware, after normalisePath and before jsonBody: sets `ctx.state.caller` or answers
 * 401/429. For a signed request it reads the raw body itself (the signature covers its exact
 * bytes) and hands the parsed JSON on, so jsonBody does not read the stream again.
 */
export function authenticate(authenticator: Authenticator, options: AuthenticateOptions): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    if (options.openPaths.has(ctx.path) && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      await next();
      return;
    }
    let body: Buffer | undefined;
    ctx.state.caller = await authenticator.authenticate({
      method: ctx.method,
      target: ctx.originalUrl,
      headers: ctx.req.headers,
      remoteAddress: ctx.request.ip,
      readBody: async () => {
        body ??= await readRawBody(ctx, options.bodyLimitBytes);
        return body;
      },
    });
    if (body !== undefined) handBodyOn(ctx, body);
    await next();
  };
}

/** The caller set by `authenticate`; 401 if there is none (a route mounted without it fails closed). */
export function callerOf(ctx: AppContext): Caller {
  const caller = ctx.state.caller;
  if (!caller) throw new AuthenticationError('authentication required', []);
  return caller;
}

/** 403 unless the caller may use `namespace`; the one authorisation rule of the REST API. */
export function authorizeNamespace(ctx: AppContext, namespace: string): Caller {
  const caller = callerOf(ctx);
  try {
    assertNamespaceAllowed(caller, namespace);
  } catch (err) {
    if (err instanceof AuthorizationError) logForbidden(ctx, caller, namespace);
    throw err;
  }
  return caller;
}

/** 403 unless the caller is an administrator (namespaces "*"). */
export function requireAdministrator(ctx: AppContext): Caller {
  const caller = callerOf(ctx);
  try {
    assertAdministrator(caller);
  } catch (err) {
    if (err instanceof AuthorizationError) logForbidden(ctx, caller, ALL_NAMESPACES);
    throw err;
  }
  return caller;
}

/** Refusals are logged, not audited: a caller must not be able to push another namespace's entries out. */
function logForbidden(ctx: AppContext, caller: Caller, namespace: string): void {
  ctx.state.log.warn({ identity: caller.identity, authMethod: caller.method, keyId: caller.keyId, namespace, method: ctx.method, path: ctx.path }, 'forbidden');
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH']);
const STRICT_JSON_START = /^[\x20\x09\x0a\x0d]*[[{]/;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** What jsonBody's parser would have made of the body, from the bytes already read. */
function handBodyOn(ctx: AppContext, raw: Buffer): void {
  if (!MUTATING.has(ctx.method)) return;
  // Set even when empty or not JSON: the request stream is consumed, the parser must not wait on it.
  if (!JSON_TYPE.test(ctx.get('Content-Type')) || raw.length === 0) {
    ctx.request.body = {};
    return;
  }
  const text = new TextDecoder('utf-8').decode(raw);
  if (text.length === 0) {
    ctx.request.body = {};
    return;
  }
  try {
    if (!STRICT_JSON_START.test(text)) throw new SyntaxError('invalid JSON, only supports object and array');
    ctx.request.body = JSON.parse(text, (key, value: unknown) => {
      // As the body parser does (bourne): prototype-poisoning keys are refused.
      if (key === '__proto__' || (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value)) {
        throw new SyntaxError('Object contains forbidden prototype property');
      }
      return value;
    }) as unknown;
    ctx.request.rawBody = text;
  } catch (err) {
    throw new ApiError(400, 'invalid_json', `malformed request body: ${(err as Error).message}`);
  }
}

/** The raw body bytes, at most `limit`; signed requests must not be compressed (the signature is over what is sent). */
function readRawBody(ctx: AppContext, limit: number): Promise<Buffer> {
  const encoding = ctx.get('Content-Encoding').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    return Promise.reject(new ApiError(415, 'unsupported_media_type', 'signed requests must be sent without Content-Encoding'));
  }
  const declared = ctx.get('Content-Length');
  if (declared !== '' && Number(declared) > limit) {
    return Promise.reject(new ApiError(413, 'payload_too_large', 'request body is larger than the limit of 1 MiB'));
  }
  const req = ctx.req;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.resume(); // discard the rest; the response goes out and the connection closes
        reject(new ApiError(413, 'payload_too_large', 'request body is larger than the limit of 1 MiB'));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new ApiError(400, 'bad_request', `the request body could not be read: ${err.message}`));
    };
    const onAborted = () => onError(new Error('request aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
