import Router from '@koa/router';
import { WebhookAdmin, WebhookInputError, WebhooksUnavailableError } from '../../webhooks/subscriptions.js';
import { ApiError, badRequest, notFound } from '../errors.js';
import type { AppContext, AppState } from '../middleware.js';
import { objectBody, positiveIntParam, requireNamespace } from '../params.js';

const WEBHOOK_FIELDS = new Set(['url', 'apps', 'events', 'description']);

/**
 * Webhook subscriptions of a namespace (docs/webhooks.md), for callers allowed in it:
 * `GET /webhooks`, `POST /webhooks` (answers the signing secret, once), `GET /webhooks/{id}`,
 * `DELETE /webhooks/{id}`, `GET /webhooks/{id}/deliveries` (the delivery log, pending first).
 */
export function webhookRoutes(deps: { webhooks: WebhookAdmin }): Router<AppState> {
  const router = new Router<AppState>();

  const idOf = (ctx: AppContext): string => (ctx.params as Record<string, string>)['id'] ?? '';
  const missing = (id: string, ns: string) => notFound(`webhook ${JSON.stringify(id.slice(0, 64))} not found in namespace ${ns}`);

  router.get('/webhooks', async (ctx) => {
    const ns = requireNamespace(ctx);
    ctx.body = await deps.webhooks.list(ns);
  });

  router.post('/webhooks', async (ctx) => {
    const ns = requireNamespace(ctx);
    const body = objectBody(ctx);
    const unknown = Object.keys(body).filter((k) => !WEBHOOK_FIELDS.has(k));
    if (unknown.length > 0) throw badRequest(`unknown fields: ${unknown.join(', ')} (allowed: ${[...WEBHOOK_FIELDS].join(', ')})`);
    try {
      const created = await deps.webhooks.create(ns, body as { url: unknown }, ctx.state.caller?.identity ?? 'anonymous');
      ctx.status = 201;
      ctx.set('Location', `/webhooks/${created.webhook.id}?namespace=${encodeURIComponent(ns)}`);
      ctx.body = { ...created, note: 'the secret is shown only now: the receiver needs it to verify the X-Cutover-Signature header (docs/webhooks.md)' };
    } catch (err) {
      if (err instanceof WebhookInputError) throw badRequest(err.message);
      if (err instanceof WebhooksUnavailableError) throw new ApiError(409, 'webhooks_unavailable', err.message);
      throw err;
    }
  });

  router.get('/webhooks/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idOf(ctx);
    const found = await deps.webhooks.get(ns, id);
    if (!found) throw missing(id, ns);
    ctx.body = found;
  });

  router.delete('/webhooks/:id', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idOf(ctx);
    if (!(await deps.webhooks.remove(ns, id))) throw missing(id, ns);
    ctx.status = 204;
  });

  router.get('/webhooks/:id/deliveries', async (ctx) => {
    const ns = requireNamespace(ctx);
    const id = idOf(ctx);
    const limit = positiveIntParam(ctx, 'limit', 1000) ?? 100;
    const log = await deps.webhooks.deliveries(ns, id, limit);
    if (!log) throw missing(id, ns);
    ctx.body = log;
  });

  return router;
}
