import Router from '@koa/router';
import { ApiKeyAdmin, KeyInputError } from '../../auth/api-keys.js';
import { CLUSTER_AUDIT_NAMESPACE } from '../../auth/caller.js';
import { requireAdministrator } from '../../auth/middleware.js';
import { noteAudit } from '../audit-trail.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { objectBody, queryParam } from '../params.js';

const KEY_FIELDS = new Set(['team', 'namespaces', 'expires', 'description']);

/**
 * Key management for administrators (namespaces "*"), audited under `_cluster`:
 * `GET /admin/keys[?team=T]`, `POST /admin/keys` (answers the secret, once),
 * `DELETE /admin/keys/{id}` (revoke). `keys` is undefined when API keys are off.
 */
export function adminKeyRoutes(deps: { keys: ApiKeyAdmin | undefined }): Router<AppState> {
  const router = new Router<AppState>();

  const admin = (ctx: AppContext): { keys: ApiKeyAdmin; identity: string } => {
    const caller = requireAdministrator(ctx);
    noteAudit(ctx, { namespace: CLUSTER_AUDIT_NAMESPACE });
    if (!deps.keys) throw new ApiError(404, 'api_keys_disabled', 'API keys are off (CUTOVER_API_KEYS=off, or no key-encryption key is configured)');
    return { keys: deps.keys, identity: caller.identity };
  };

  router.get('/admin/keys', async (ctx) => {
    const { keys } = admin(ctx);
    const team = queryParam(ctx, 'team');
    ctx.body = await keys.list(team === '' ? undefined : team);
  });

  router.post('/admin/keys', async (ctx) => {
    const { keys, identity } = admin(ctx);
    const body = objectBody(ctx);
    const unknown = Object.keys(body).filter((k) => !KEY_FIELDS.has(k));
    if (unknown.length > 0) throw badRequest(`unknown fields: ${unknown.join(', ')} (allowed: ${[...KEY_FIELDS].join(', ')})`);
    try {
      const created = await keys.create({
        team: body['team'] as string,
        namespaces: body['namespaces'],
        ...(body['expires'] !== undefined ? { expires: body['expires'] as string } : {}),
        ...(body['description'] !== undefined ? { description: body['description'] as string } : {}),
      }, identity);
      noteAudit(ctx, { keyId: created.key.id });
      ctx.status = 201;
      ctx.set('Location', `/admin/keys/${created.key.id}`);
      ctx.body = { ...created, note: 'the secret is shown only now; store it in your pipeline\'s secret store' };
    } catch (err) {
      if (err instanceof KeyInputError) throw badRequest(err.message);
      throw err;
    }
  });

  router.delete('/admin/keys/:id', async (ctx) => {
    const { keys, identity } = admin(ctx);
    const id = (ctx.params as Record<string, string>)['id'] ?? '';
    noteAudit(ctx, { keyId: id.slice(0, 64) });
    const revoked = await keys.revoke(id, identity);
    if (!revoked) throw notFound(`API key ${JSON.stringify(id.slice(0, 64))} not found`);
    ctx.body = revoked;
  });

  return router;
}
