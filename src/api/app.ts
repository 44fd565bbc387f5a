import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from '../log.js';
import { accessLog, BODY_LIMIT_BYTES, jsonBody, jsonErrors, normalisePath, requestId, type AppState, type RequestObserver } from './middleware.js';
import { cors } from './cors.js';
import { OriginPolicy } from './websocket/origins.js';
import { securityHeaders } from './security-headers.js';
import { auditTrail } from './audit-trail.js';
import { authenticate, type Authenticator } from '../auth/middleware.js';
import type { AuditStore } from '../store/audit.js';

export interface AppOptions {
  log: Logger;
  routers: Array<Router<AppState>>;
  /** Served without credentials, before authentication: the web UI's static files (routes/ui.ts). */
  publicRouters?: Array<Router<AppState>>;
  /** Browser origins allowed besides the same origin (CUTOVER_ALLOWED_ORIGINS); the log websocket uses the same rule. */
  allowedOrigins?: readonly string[];
  /** Sees every finished request (metrics). */
  observeRequest?: RequestObserver;
  /** Decides who each request comes from (docs/security.md); routes without a caller fail closed. */
  authenticator: Authenticator;
  /** Paths served without credentials, as normalised: /healthz, /readyz (and /metrics unless protected). */
  openPaths: readonly string[];
  /** Where state-changing calls are recorded. */
  audit: AuditStore;
  /** Called when an audit entry could not be stored (metrics). */
  onAuditWriteFailure?: () => void;
  /** > 0: send Strict-Transport-Security. */
  hstsMaxAgeSeconds?: number;
}

/** The Koa application: cross-cutting middleware in a fixed order, then the routers. */
export function createApp(options: AppOptions): Koa<AppState> {
  const app = new Koa<AppState>({ proxy: false });
  app.silent = true; // errors are logged by our middleware, with the request id
  const root = new Router<AppState>();
  // Only the root's allowedMethods (below) answers 405/501/OPTIONS: it sees every route. One per
  // router would run on every request that matched a route, where it can never change the answer.
  for (const r of options.routers) root.use(r.routes());

  app.use(requestId(options.log));
  app.use(securityHeaders({ hstsMaxAgeSeconds: options.hstsMaxAgeSeconds ?? 0 }));
  app.use(accessLog(options.observeRequest));
  // Outside jsonErrors: records the final status of state-changing calls, failures included.
  app.use(auditTrail({ store: options.audit, ...(options.onAuditWriteFailure ? { onWriteFailure: options.onAuditWriteFailure } : {}) }));
  app.use(jsonErrors());
  app.use(cors(new OriginPolicy(options.allowedOrigins ?? [])));
  app.use(normalisePath());
  for (const r of options.publicRouters ?? []) app.use(r.routes());
  // After CORS (preflights carry no credentials) and path normalising, before any body is read.
  app.use(authenticate(options.authenticator, { openPaths: new Set(options.openPaths), bodyLimitBytes: BODY_LIMIT_BYTES }));
  app.use(jsonBody());
  app.use(root.routes());
  app.use(root.allowedMethods());
  return app;
}
