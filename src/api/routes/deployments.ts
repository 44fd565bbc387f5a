import Router from '@koa/router';
import type { DeploymentRecord } from '../../domain/deployment.js';
import { CLUSTER_NAME, normaliseAppName } from '../../domain/names.js';
import type { Fleet } from '../../clusters/fleet.js';
import type { Releases } from '../../clusters/releases.js';
import { badRequest, notFound } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { booleanParam, etagOf, idParam, positiveIntParam, queryParam, requireNamespace, requireQueryParam } from '../params.js';
import { noteAudit } from '../audit-trail.js';
import { assertMayChangeIn } from '../../auth/caller.js';

export interface DeploymentRoutesDeps {
  fleet: Fleet;
  releases: Releases;
}


/** An optional `cluster` or `environment` query parameter (a DNS label). */
function targetParam(ctx: AppContext, name: 'cluster' | 'environment'): string | undefined {
  const v = queryParam(ctx, name);
  if (v === undefined || v === '') return undefined;
  if (!CLUSTER_NAME.test(v)) throw badRequest(`query parameter "${name}" must be a ${name} name (a DNS label)`);
  return v;
}

export const deploymentLocation = (id: string, ns: string) => `/deployments/${id}/?namespace=${encodeURIComponent(ns)}`;

/** `limit` newest per app, then all newest first (the original concatenated groups in random order). */
export function limitPerApp(records: DeploymentRecord[], limit: number): DeploymentRecord[] {
  const perApp = new Map<string, number>();
  return records.filter((r) => {
    const n = (perApp.get(r.appName) ?? 0) + 1;
    perApp.set(r.appName, n);
    return n <= limit;
  });
}

export function deploymentRoutes(deps: DeploymentRoutesDeps): Router<AppState> {
  const router = new Router<AppState>();

  const load = async (ctx: AppContext) => {
    const ns = requireNamespace(ctx);
    const id = idParam(ctx, 'deployment');
    noteAudit(ctx, { deploymentId: id });
    const located = await deps.fleet.locate(ns, id, targetParam(ctx, 'cluster'));
    if (!located) throw notFound(`deployment ${id} not found in namespace ${ns}`);
    const { found, member } = located;
    noteAudit(ctx, { app: found.value.appName });
    return { ns, id, found, deployments: member.deployments, requests: member.requests, environment: member.spec.environment };
  };
  /** The record, for a change: the caller must be allowed to change its namespace in its cluster's environment. */
  const loadForChange = async (ctx: AppContext) => {
    const loaded = await load(ctx);
    assertMayChangeIn(ctx.state.caller, loaded.ns, loaded.environment);
    return loaded;
  };

  router.post('/deployments', async (ctx) => {
    const ns = requireNamespace(ctx);
    const descriptorId = requireQueryParam(ctx, 'descriptorId');
    if (!/^[A-Za-z0-9-]{1,128}$/.test(descriptorId)) throw notFound(`descriptor ${JSON.stringify(descriptorId)} not found`);
    const cluster = targetParam(ctx, 'cluster');
    const environment = targetParam(ctx, 'environment');
    noteAudit(ctx, { descriptorId });
    const by = ctx.state.caller?.identity ?? 'anonymous';
    const { release, records } = await deps.releases.deployDescriptor(ns, descriptorId, { ...(cluster ? { cluster } : {}), ...(environment ? { environment } : {}) }, by,
      (env) => assertMayChangeIn(ctx.state.caller, ns, env));
    const first = records[0]!;
    noteAudit(ctx, { deploymentId: records.map((r) => r.id).join(','), app: first.appName });
    ctx.status = 202;
    // One cluster: the record, as the Amdatu deployer answered. An environment: the release.
    if (release && (environment || records.length > 1)) {
      ctx.set('Location', `/releases/${release.id}/?namespace=${encodeURIComponent(ns)}`);
      ctx.body = { ...release, records };
      return;
    }
    ctx.set('Location', deploymentLocation(first.id, ns));
    ctx.body = first;
  });

  router.get('/deployments', async (ctx) => {
    const ns = requireNamespace(ctx);
    const app = queryParam(ctx, 'appname');
    const limit = positiveIntParam(ctx, 'limit', 10_000);
    const records = (await deps.fleet.list(ns, app ? normaliseAppName(app) : undefined, targetParam(ctx, 'cluster'))).map((d) => d.value);
    ctx.body = limit === undefined ? records : app ? records.slice(0, limit) : limitPerApp(records, limit);
  });

  router.get('/deployments/:id', async (ctx) => {
    const { found } = await load(ctx);
    ctx.set('ETag', etagOf(found.revision));
    ctx.body = found.value;
  });

  router.get('/deployments/:id/logs', async (ctx) => {
    const { ns, id, deployments } = await load(ctx);
    const { events } = await deployments.events(ns, id);
    ctx.type = 'text/plain; charset=utf-8';
    ctx.body = events.filter((e) => e.type === 'log').map((e) => `${e.time} ${e.type === 'log' ? e.message : ''}\n`).join('');
  });

  router.get('/deployments/:id/events', async (ctx) => {
    const { ns, id, deployments } = await load(ctx);
    const after = queryParam(ctx, 'after');
    if (after !== undefined && !/^[0-9]{1,12}$/.test(after)) throw badRequest('query parameter "after" must be a sequence number');
    ctx.body = (await deployments.events(ns, id, after ? Number(after) : 0)).events;
  });

  router.get('/deployments/:id/healthcheckdata', async (ctx) => {
    const { ns, id, deployments } = await load(ctx);
    ctx.body = await deployments.listHealth(ns, id);
  });

  router.put('/deployments/:id', async (ctx) => {
    const { ns, id, requests } = await loadForChange(ctx);
    const record = await requests.redeploy(ns, id);
    noteAudit(ctx, { deploymentId: record.id, app: record.appName, descriptorId: record.descriptor.id });
    ctx.status = 202;
    ctx.set('Location', deploymentLocation(record.id, ns));
    ctx.body = record;
  });

  router.post('/deployments/:id/cancel', async (ctx) => {
    const { ns, id, requests } = await loadForChange(ctx);
    const record = await requests.cancel(ns, id, ctx.state.caller?.identity ?? 'anonymous');
    ctx.status = 202;
    ctx.set('Location', deploymentLocation(id, ns));
    ctx.body = {
      status: 'cancelling',
      message: `cancel of ${id} requested: it stops before its switch, removes what it created and ends FAILURE; the running version is not touched`,
      deployment: record,
    };
  });

  // Rolls the live deployment back to the one it replaced: instantly while that one drains, else
  // as a redeploy of its descriptor copy. PUT /deployments/{id} keeps its original meaning.
  router.post('/deployments/:id/rollback', async (ctx) => {
    const { ns, id, requests } = await loadForChange(ctx);
    const outcome = await requests.rollback(ns, id, ctx.state.caller?.identity ?? 'anonymous');
    const follow = outcome.kind === 'instant' ? outcome.target : outcome.record;
    noteAudit(ctx, { deploymentId: follow.id });
    ctx.status = 202;
    ctx.set('Location', deploymentLocation(follow.id, ns));
    ctx.body = {
      status: outcome.kind === 'instant' ? 'rolling-back' : 'redeploying',
      mode: outcome.kind,
      message: outcome.kind === 'instant'
        ? `${outcome.already ? 'a rollback of' : 'instant rollback of'} ${id} ${outcome.already ? 'is already queued' : 'queued'}: traffic switches back to version ${outcome.target.version} (deployment ${outcome.target.id}, still draining), which becomes DEPLOYED again; version ${outcome.live.version} is then removed`
        : `version ${outcome.target.version} (deployment ${outcome.target.id}) is no longer running: its descriptor copy is redeployed as deployment ${outcome.record.id} (version ${outcome.record.version})`,
      rollbackTo: { deploymentId: outcome.target.id, version: outcome.target.version },
      deployment: follow,
    };
  });

  router.delete('/deployments/:id', async (ctx) => {
    const { ns, id, requests } = await loadForChange(ctx);
    const raw = queryParam(ctx, 'deleteDeployment');
    const deleteRecord = raw === undefined ? false : booleanParam(ctx, 'deleteDeployment', false);
    if (deleteRecord) noteAudit(ctx, { action: 'deployment.undeploy-and-delete' });
    const outcome = await requests.undeploy(ns, id, deleteRecord, ctx.state.caller?.identity ?? 'anonymous');
    ctx.status = 202;
    if (outcome.kind !== 'deleted') ctx.set('Location', deploymentLocation(id, ns));
    ctx.body = {
      status: outcome.kind,
      message: outcome.kind === 'queued' ? `${outcome.cancelled ? `deployment ${id} is cancelled (it stops before its switch); ` : ''}undeploy of ${id} queued${deleteRecord ? '; the record is deleted afterwards' : ''}`
        : outcome.kind === 'deleted' ? `deployment ${id} deleted` : outcome.reason,
      deployment: outcome.record,
    };
  });

  router.delete('/deployments', async (ctx) => {
    const ns = requireNamespace(ctx);
    const app = normaliseAppName(requireQueryParam(ctx, 'appname'));
    noteAudit(ctx, { app });
    const undeploy = booleanParam(ctx, 'undeploy', false);
    const member = deps.fleet.member(targetParam(ctx, 'cluster') ?? deps.fleet.registry.defaultCluster);
    assertMayChangeIn(ctx.state.caller, ns, member.spec.environment);
    const result = await member.requests.deleteApp(ns, app, undeploy);
    if (result.undeploying) {
      ctx.status = 202;
      ctx.set('Location', deploymentLocation(result.undeploying.id, ns));
      ctx.body = { deleted: result.deleted, undeploying: result.undeploying.id };
      return;
    }
    ctx.status = 204;
  });

  return router;
}
