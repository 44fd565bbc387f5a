import Router from '@koa/router';
import { normaliseAppName } from '../../domain/names.js';
import type { AuditStore } from '../../store/audit.js';
import { CLUSTER_AUDIT_NAMESPACE } from '../../auth/caller.js';
import { requireAdministrator } from '../../auth/middleware.js';
import type { AppState } from '../middleware.js';
import { positiveIntParam, queryParam, requireNamespace } from '../params.js';

export const MAX_AUDIT_LIMIT = 1000;
const DEFAULT_AUDIT_LIMIT = 100;

/**
 * `GET /audit?namespace=NS[&app=APP][&limit=N]`: the audit trail of a namespace the caller may use,
 * newest first. `namespace=_cluster` (key management) is for administrators. Reads are not audited.
 */
export function auditRoutes(deps: { audit: AuditStore }): Router<AppState> {
  const router = new Router<AppState>();

  router.get('/audit', async (ctx) => {
    let namespace: string;
    if (queryParam(ctx, 'namespace') === CLUSTER_AUDIT_NAMESPACE) {
      requireAdministrator(ctx);
      namespace = CLUSTER_AUDIT_NAMESPACE;
    } else {
      namespace = requireNamespace(ctx);
    }
    const limit = positiveIntParam(ctx, 'limit', MAX_AUDIT_LIMIT) ?? DEFAULT_AUDIT_LIMIT;
    const app = queryParam(ctx, 'app') ?? queryParam(ctx, 'appname');
    ctx.body = await deps.audit.list(namespace, { limit, ...(app ? { app: normaliseAppName(app) } : {}) });
  });

  return router;
}
