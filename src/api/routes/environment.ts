import Router from '@koa/router';
import { CLUSTER_NAME } from '../../domain/names.js';
import { CLUSTER_AUDIT_NAMESPACE } from '../../auth/caller.js';
import { requireAdministrator } from '../../auth/middleware.js';
import { ENV_NAME, envNameOfKey, type EnvironmentStore } from '../../store/environment.js';
import { noteAudit } from '../audit-trail.js';
import { badRequest, notFound } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { booleanParam, objectBody } from '../params.js';
import { environmentValueSchema } from '../validation/environment.js';

/** A key as the original deployer stored it: the variable name in lower or upper case, "-" for "_". */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,252}$/;

function keyParam(ctx: AppContext): string {
  const key = (ctx.params as Record<string, string>)['key'] ?? '';
  if (!ENV_KEY.test(key) || !ENV_NAME.test(envNameOfKey(key))) {
    throw badRequest(`"${key.slice(0, 64)}" is not a valid key: letters, digits, "_" and "-", starting with a letter or "_" (it becomes the variable ${envNameOfKey(key.slice(0, 64))})`);
  }
  return key;
}

/**
 * The values injected into every deployed container (`/deployer/environment/NAME` in etcd), for
 * administrators (namespaces "*"); changes are audited under `_cluster`. They apply to deployments
 * started afterwards.
 */
export function environmentRoutes(deps: { environment: EnvironmentStore; forCluster?: (name: string) => EnvironmentStore }): Router<AppState> {
  const router = new Router<AppState>();
  /** ?cluster=NAME: that cluster's own values (reads show what its deployments get). */
  const storeOf = (ctx: AppContext): EnvironmentStore => {
    const cluster = ctx.query['cluster'];
    if (cluster === undefined || cluster === '') return deps.environment;
    if (typeof cluster !== 'string' || !CLUSTER_NAME.test(cluster)) throw badRequest('query parameter "cluster" must be a cluster name');
    if (!deps.forCluster) throw badRequest('there is no cluster registry; values apply to the one cluster');
    return deps.forCluster(cluster);
  };

  router.get('/environment', async (ctx) => {
    requireAdministrator(ctx);
    const entries = (await storeOf(ctx).read()).entries;
    // values=false: names only (the web UI never shows or holds values).
    ctx.body = booleanParam(ctx, 'values', true) ? entries : entries.map(({ key, name }) => ({ key, name }));
  });

  router.put('/environment/:key', async (ctx) => {
    requireAdministrator(ctx);
    noteAudit(ctx, { namespace: CLUSTER_AUDIT_NAMESPACE, action: 'environment-set' });
    const key = keyParam(ctx);
    const { value, error } = environmentValueSchema.validate(objectBody(ctx), { abortEarly: false });
    if (error) throw badRequest(`invalid body: ${error.details.map((d) => d.message).join('; ')} (the body is {"value": "..."})`);
    await storeOf(ctx).set(key, (value as { value: string }).value);
    ctx.status = 204;
  });

  router.delete('/environment/:key', async (ctx) => {
    requireAdministrator(ctx);
    noteAudit(ctx, { namespace: CLUSTER_AUDIT_NAMESPACE, action: 'environment-unset' });
    const key = keyParam(ctx);
    if (!(await storeOf(ctx).unset(key))) throw notFound(`no environment value "${key}"`);
    ctx.status = 204;
  });

  return router;
}
