import Router from '@koa/router';
import { CLUSTER_NAME, normaliseAppName } from '../../domain/names.js';
import type { Releases } from '../../clusters/releases.js';
import { assertMayChangeIn } from '../../auth/caller.js';
import { noteAudit } from '../audit-trail.js';
import { badRequest } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { idParam, objectBody, positiveIntParam, queryParam, requireNamespace } from '../params.js';


export const releaseLocation = (id: string, ns: string) => `/releases/${id}/?namespace=${encodeURIComponent(ns)}`;

function environmentName(value: unknown, what: string): string {
  if (typeof value !== 'string' || !CLUSTER_NAME.test(value)) throw badRequest(`${what} must be an environment name (a DNS label)`);
  return value;
}

/**
 * Releases: one version of an app on every cluster of an environment (or one cluster), with an
 * aggregate status, and their promotion to the next environment (docs/clusters.md).
 */
export function releaseRoutes(deps: { releases: Releases }): Router<AppState> {
  const router = new Router<AppState>();

  router.get('/releases', async (ctx) => {
    const ns = requireNamespace(ctx);
    const app = queryParam(ctx, 'appname');
    const env = queryParam(ctx, 'environment');
    const limit = positiveIntParam(ctx, 'limit', 10_000);
    ctx.body = await deps.releases.list(ns, {
      ...(app ? { appName: normaliseAppName(app) } : {}),
      ...(env ? { environment: environmentName(env, 'query parameter "environment"') } : {}),
      ...(limit ? { limit } : {}),
    });
  });

  router.get('/releases/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'release');
    ctx.body = await deps.releases.get(ns, id);
  });

  // Body {"environment": "production"} (or ?environment=): deploys what the release runs there.
  router.post('/releases/:id/promote', async (ctx: AppContext) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'release');
    const fromQuery = queryParam(ctx, 'environment');
    const body = ctx.request.body === undefined || (typeof ctx.request.body === 'object' && Object.keys(ctx.request.body as object).length === 0) ? {} : objectBody(ctx);
    const to = environmentName(fromQuery ?? (body as Record<string, unknown>)['environment'], 'the target "environment"');
    const release = await deps.releases.promote(ns, id, to, ctx.state.caller?.identity ?? 'anonymous', (env) => assertMayChangeIn(ctx.state.caller, ns, env));
    noteAudit(ctx, { app: release.appName, deploymentId: release.deployments.map((d) => d.deploymentId).join(',') });
    ctx.status = 202;
    ctx.set('Location', releaseLocation(release.id, ns));
    ctx.body = release;
  });

  return router;
}
