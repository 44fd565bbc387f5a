import type Koa from 'koa';
import type { AppState } from './middleware.js';

/**
 * Headers on every API response. The API serves JSON and text only, so the policy forbids
 * everything a browser could do with a response (scripts, frames, sniffing it into HTML), and no
 * cache may keep an answer (they carry namespace data and, once, a new key's secret). Exported for
 * the websocket handler's refusals, which are written outside Koa.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
  'Cache-Control': 'no-store',
});

export interface SecurityHeadersOptions {
  /** > 0: send Strict-Transport-Security (only meaningful when clients reach cutover over HTTPS). */
  hstsMaxAgeSeconds: number;
}

/** Sets the headers before anything else runs, so error responses carry them too. */
export function securityHeaders(options: SecurityHeadersOptions): Koa.Middleware<AppState> {
  const headers: Record<string, string> = { ...SECURITY_HEADERS };
  if (options.hstsMaxAgeSeconds > 0) headers['Strict-Transport-Security'] = `max-age=${options.hstsMaxAgeSeconds}`;
  return async (ctx, next) => {
    ctx.set(headers);
    await next();
  };
}
