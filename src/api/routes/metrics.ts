import Router from '@koa/router';
import type { AppState } from '../middleware.js';
import type { CutoverMetrics } from '../../metrics/metrics.js';

/** `GET /metrics` in the Prometheus text format. */
export function metricsRoutes(metrics: CutoverMetrics): Router<AppState> {
  const router = new Router<AppState>();
  router.get('/metrics', async (ctx) => {
    const { contentType, body } = await metrics.render();
    ctx.type = contentType;
    ctx.body = body;
  });
  return router;
}
