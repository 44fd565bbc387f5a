import type Koa from 'koa';
import { ApiError } from './errors.js';
import type { AppState } from './middleware.js';
import type { OriginPolicy } from './websocket/origins.js';

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, DELETE';
const ALLOWED_HEADERS = 'Content-Type, If-Match, X-Request-Id';
const EXPOSED_HEADERS = 'Location, ETag, X-Request-Id, WWW-Authenticate, Retry-After';
const PREFLIGHT_MAX_AGE_SECONDS = '600';

/**
 * CORS for the REST API, with the same origin rule as the log websocket. An allowed Origin is
 * echoed (never "*", so the answer stays right if credentials are ever added) with `Vary: Origin`.
 * A request from a refused origin is still served, just without CORS headers, so the browser
 * withholds the answer; a refused preflight is answered 403 so the reason is visible.
 */
export function cors(policy: OriginPolicy): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    ctx.vary('Origin');
    const origin = ctx.get('Origin');
    if (origin === '') {
      await next();
      return;
    }
    const decision = policy.check(origin, ctx.get('Host'));
    const isPreflight = ctx.method === 'OPTIONS' && ctx.get('Access-Control-Request-Method') !== '';
    if (isPreflight) {
      if (!decision.allowed) throw new ApiError(403, 'forbidden_origin', `origin ${origin} is not allowed (CUTOVER_ALLOWED_ORIGINS)`);
      ctx.vary('Access-Control-Request-Method');
      ctx.vary('Access-Control-Request-Headers');
      ctx.set('Access-Control-Allow-Origin', origin);
      ctx.set('Access-Control-Allow-Methods', ALLOWED_METHODS);
      ctx.set('Access-Control-Allow-Headers', ctx.get('Access-Control-Request-Headers') || ALLOWED_HEADERS);
      ctx.set('Access-Control-Max-Age', PREFLIGHT_MAX_AGE_SECONDS);
      ctx.status = 204;
      return;
    }
    if (decision.allowed) {
      ctx.set('Access-Control-Allow-Origin', origin);
      ctx.set('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    }
    await next();
  };
}
