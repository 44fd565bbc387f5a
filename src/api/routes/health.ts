import Router from '@koa/router';
import type { AppState } from '../middleware.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

export interface HealthRoutesDeps {
  checks: ReadinessCheck[];
  /** True once shutdown started: readiness fails so load balancers stop sending traffic. */
  isShuttingDown: () => boolean;
}

/** `/healthz`: the process is alive. `/readyz`: it can do its job (its dependencies answer). */
export function healthRoutes(deps: HealthRoutesDeps): Router<AppState> {
  const router = new Router<AppState>();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const results: Record<string, string> = {};
    let ready = !deps.isShuttingDown();
    if (!ready) results['shutdown'] = 'shutting down';
    await Promise.all(deps.checks.map(async (c) => {
      try {
        await c.check();
        results[c.name] = 'ok';
      } catch (err) {
        ready = false;
        results[c.name] = (err as Error).message;
      }
    }));
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not_ready', checks: results };
  });

  return router;
}
