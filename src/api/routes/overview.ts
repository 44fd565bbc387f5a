import { PassThrough } from 'node:stream';
import Router from '@koa/router';
import { callerOf } from '../../auth/middleware.js';
import type { KvStore } from '../../store/kv.js';
import type { AppState } from '../middleware.js';
import { overviewFor, type OverviewClusters } from '../overview.js';
import type { OverviewFeed } from '../overview-feed.js';

export interface OverviewRoutesDeps {
  kv: KvStore;
  feed: OverviewFeed;
  /** Several clusters: the others' records (docs/clusters.md). */
  clusters?: OverviewClusters;
  /** Comment lines on an idle stream, so proxies keep it open and clients notice a dead one. */
  heartbeatMs?: number;
}

/**
 * `GET /overview`: every app the caller may see, grouped by namespace (administrators: every
 * namespace with data; others: their namespaces, also when empty), with the caller itself.
 * `GET /overview/stream`: the same as server-sent events — `snapshot` first, then `app` with one
 * app's new summary whenever it changes. Read with fetch (it carries the Authorization header,
 * which EventSource cannot).
 */
export function overviewRoutes(deps: OverviewRoutesDeps): Router<AppState> {
  const router = new Router<AppState>();
  const heartbeatMs = deps.heartbeatMs ?? 15_000;

  router.get('/overview', async (ctx) => {
    ctx.body = await overviewFor(deps.kv, callerOf(ctx), deps.clusters);
  });

  router.get('/overview/stream', async (ctx) => {
    const caller = callerOf(ctx);
    const stream = new PassThrough();
    const send = (event: string, data: unknown) => stream.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    let ended = false;
    let unsubscribe: (() => void) | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      unsubscribe?.();
      stream.end();
    };
    // Subscribe before reading the snapshot, so a change made meanwhile is not lost (the client
    // keeps the summary with the higher revision when both arrive).
    unsubscribe = await deps.feed.subscribe({
      caller,
      onSummary: (summary) => send('app', summary),
      onEnd: (reason) => {
        send('end', { reason });
        end();
      },
    });
    try {
      send('snapshot', await overviewFor(deps.kv, caller, deps.clusters));
    } catch (err) {
      end();
      throw err;
    }
    heartbeat = setInterval(() => stream.write(': keep-alive\n\n'), heartbeatMs);
    // The response's close, not the request's: a GET's request closes as soon as it has been read.
    ctx.res.once('close', end);
    if (ctx.res.destroyed || ctx.req.socket.destroyed) end(); // the client left while the snapshot was read
    stream.once('error', end);
    ctx.req.socket.setNoDelay(true);
    ctx.set('Cache-Control', 'no-store');
    // The connection ends with the stream: a kept-alive idle socket would hold a shutting-down server until its grace ends.
    ctx.set('Connection', 'close');
    ctx.set('X-Accel-Buffering', 'no'); // nginx-style proxies: do not buffer the events
    ctx.type = 'text/event-stream; charset=utf-8';
    ctx.body = stream;
  });

  return router;
}
