import type Koa from 'koa';
import { normaliseAppName } from '../domain/names.js';
import type { AuditStore, NewAuditEntry } from '../store/audit.js';
import type { AppContext, AppState } from './middleware.js';

/** What handlers learn about a call while serving it; the audit middleware writes it out. */
export interface AuditNote {
  namespace?: string;
  app?: string;
  descriptorId?: string;
  deploymentId?: string;
  keyId?: string;
  /** Overrides the action derived from the route (e.g. undeploy vs. undeploy-and-delete). */
  action?: string;
}

/** Adds what is known now; later notes win. Called by requireNamespace and the handlers. */
export function noteAudit(ctx: AppContext, note: AuditNote): void {
  const current = ctx.state.audit ?? {};
  for (const [k, v] of Object.entries(note) as Array<[keyof AuditNote, string | undefined]>) {
    if (v !== undefined) current[k] = v;
  }
  ctx.state.audit = current;
}

/** A body's appName as the audit records it (normalised, bounded), even before validation: failed attempts name the app too. */
export function appNameForAudit(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const name = normaliseAppName(value);
  return /^[a-z0-9-]{1,63}$/.test(name) ? name : undefined;
}

/** Actions by method and route template. Mutating routes not listed are audited as "METHOD /template". */
const ACTIONS: Record<string, string> = {
  'POST /descriptors': 'descriptor.create',
  'PUT /descriptors/:id': 'descriptor.update',
  'DELETE /descriptors/:id': 'descriptor.delete',
  'DELETE /descriptors': 'descriptor.delete-app',
  'POST /deployments': 'deployment.deploy',
  'PUT /deployments/:id': 'deployment.redeploy',
  'DELETE /deployments/:id': 'deployment.undeploy',
  'POST /deployments/:id/cancel': 'deployment.cancel',
  'POST /deployments/:id/rollback': 'deployment.rollback',
  'DELETE /deployments': 'deployment.delete-app',
  'POST /releases/:id/promote': 'release.promote',
  'POST /clusters/:name/sync': 'cluster.sync',
  'POST /admin/keys': 'apikey.create',
  'DELETE /admin/keys/:id': 'apikey.revoke',
  'POST /webhooks': 'webhook.create',
  'DELETE /webhooks/:id': 'webhook.delete',
};

/** POST routes that change nothing. */
const READ_ONLY = new Set(['POST /descriptors/validate']);
const MUTATING_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export interface AuditTrailOptions {
  store: AuditStore;
  /** Called when an entry could not be stored (metrics); the entry is then in the error log. */
  onWriteFailure?: () => void;
}

/**
 * Writes one audit entry per state-changing call that reached a route with an authenticated caller
 * and a namespace the caller may use, whatever its outcome (a 400 is recorded as a failure). Sits
 * outside jsonErrors so it sees the final status. Not recorded: 401/429 (no caller: logged and rate
 * limited instead) and 403 (logged: a caller must not fill another namespace's trail).
 *
 * The entry is written before the response goes out. If etcd refuses it, the call's effect stands
 * (failing an operation that already happened would invite a retry that deploys twice): the whole
 * entry is logged at error level instead and `onWriteFailure` counts it.
 */
export function auditTrail(options: AuditTrailOptions): Koa.Middleware<AppState> {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      await record(ctx, options);
    }
  };
}

async function record(ctx: AppContext, options: AuditTrailOptions): Promise<void> {
  if (!MUTATING_METHODS.has(ctx.method)) return;
  const route = routeTemplate(ctx);
  const caller = ctx.state.caller;
  const note = ctx.state.audit;
  if (route === undefined || caller === undefined || note?.namespace === undefined) return;
  const routeKey = `${ctx.method} ${route}`;
  if (READ_ONLY.has(routeKey)) return;
  const failed = ctx.status >= 400;
  const errorCode = failed && ctx.body !== null && typeof ctx.body === 'object' ? (ctx.body as { error?: unknown }).error : undefined;
  const target = {
    ...(note.descriptorId ? { descriptorId: note.descriptorId } : {}),
    ...(note.deploymentId ? { deploymentId: note.deploymentId } : {}),
    ...(note.keyId ? { keyId: note.keyId } : {}),
  };
  const entry: NewAuditEntry = {
    namespace: note.namespace,
    ...(note.app ? { app: note.app } : {}),
    action: note.action ?? ACTIONS[routeKey] ?? routeKey,
    method: ctx.method,
    path: ctx.originalUrl.length > 1024 ? `${ctx.originalUrl.slice(0, 1024)}…` : ctx.originalUrl,
    actor: {
      identity: caller.identity,
      auth: caller.method,
      ...(caller.team ? { team: caller.team } : {}),
      ...(caller.keyId ? { keyId: caller.keyId } : {}),
    },
    ...(Object.keys(target).length > 0 ? { target } : {}),
    status: ctx.status,
    outcome: failed ? 'failure' : 'success',
    ...(typeof errorCode === 'string' ? { error: errorCode } : {}),
    requestId: ctx.state.requestId,
  };
  // etcd just failed this very call: do not make the client wait for a second timeout.
  if (errorCode === 'store_unavailable') {
    options.onWriteFailure?.();
    ctx.state.log.error({ audit: entry, err: 'etcd unavailable' }, 'audit entry could not be stored; it is logged here instead');
    return;
  }
  try {
    await options.store.append(entry);
  } catch (err) {
    options.onWriteFailure?.();
    ctx.state.log.error({ audit: entry, err: (err as Error).message }, 'audit entry could not be stored; it is logged here instead');
  }
}

/** The matched route template (e.g. "/descriptors/:id"), never the raw path; undefined when no route matched. */
function routeTemplate(ctx: AppContext): string | undefined {
  const c = ctx as unknown as { routerPath?: unknown; _matchedRoute?: unknown };
  const route = c.routerPath ?? c._matchedRoute;
  return typeof route === 'string' ? route : undefined;
}
