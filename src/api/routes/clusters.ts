import Router from '@koa/router';
import type { Fleet } from '../../clusters/fleet.js';
import { CLUSTER_NAME } from '../../domain/names.js';
import { syncCluster } from '../../clusters/sync.js';
import { assertMayChangeIn } from '../../auth/caller.js';
import { requireAdministrator } from '../../auth/middleware.js';
import { withDeadline } from '../../lib/deadline.js';
import { noteAudit } from '../audit-trail.js';
import { CLUSTER_AUDIT_NAMESPACE } from '../../auth/caller.js';
import { badRequest } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { booleanParam, queryParam } from '../params.js';


/** GET /clusters: each cluster's environment, reachability and version; POST /clusters/{name}/sync: rebuild it from the records. */
export function clusterRoutes(deps: { fleet: Fleet }): Router<AppState> {
  const router = new Router<AppState>();

  router.get('/clusters', async (ctx) => {
    const { fleet } = deps;
    ctx.body = await Promise.all(fleet.all().map(async (m) => {
      const started = performance.now();
      const answer = await withDeadline(3_000, undefined, async (signal) => ({ version: await (m.cluster.version?.(signal) ?? m.cluster.ping(signal).then(() => 'unknown')) }))
        .catch((err: Error) => ({ error: err.message }));
      return {
        name: m.spec.name,
        environment: m.spec.environment,
        default: m.spec.name === fleet.registry.defaultCluster,
        healthCheckMode: m.spec.healthCheckMode,
        routing: m.spec.routing,
        ...(m.spec.ingressClassName ? { ingressClassName: m.spec.ingressClassName } : {}),
        ...(m.spec.gateway ? { gateway: m.spec.gateway } : {}),
        reachable: 'version' in answer,
        ...answer,
        latencyMs: Math.round(performance.now() - started),
      };
    }));
  });

  // ?namespace=NS: that namespace (the caller may change it in the cluster's environment); without: every
  // namespace cutover manages there (administrators). ?dryRun=true lists what it would do.
  router.post('/clusters/:name/sync', async (ctx: AppContext) => {
    const name = (ctx.params as Record<string, string>)['name'] ?? '';
    if (!CLUSTER_NAME.test(name)) throw badRequest('the cluster name must be a DNS label');
    const member = deps.fleet.member(name);
    const namespace = queryParam(ctx, 'namespace');
    if (namespace !== undefined && !CLUSTER_NAME.test(namespace)) throw badRequest('query parameter "namespace" must be a namespace name');
    if (namespace) assertMayChangeIn(ctx.state.caller, namespace, member.spec.environment);
    else requireAdministrator(ctx);
    noteAudit(ctx, { namespace: namespace ?? CLUSTER_AUDIT_NAMESPACE });
    const dryRun = booleanParam(ctx, 'dryRun', false);
    const report = await syncCluster(member, { ...(namespace ? { namespace } : {}), dryRun, by: ctx.state.caller?.identity ?? 'anonymous' });
    ctx.status = dryRun || !report.items.some((i) => i.rebuildId) ? 200 : 202;
    ctx.body = report;
  });

  return router;
}
