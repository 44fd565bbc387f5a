import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from '../log.js';
import { accessLog, jsonBody, jsonErrors, normalisePath, requestId, type AppState } from './middleware.js';

export interface AppOptions {
  log: Logger;
  routers: Array<Router<AppState>>;
}

/** The Koa application: cross-cutting middleware in a fixed order, then the routers. */
export function createApp(options: AppOptions): Koa<AppState> {
  const app = new Koa<AppState>({ proxy: false });
  app.silent = true; // errors are logged by our middleware, with the request id
  const root = new Router<AppState>();
  for (const r of options.routers) root.use(r.routes(), r.allowedMethods());

  app.use(requestId(options.log));
  app.use(accessLog());
  app.use(jsonErrors());
  app.use(normalisePath());
  app.use(jsonBody());
  app.use(root.routes());
  app.use(root.allowedMethods());
  return app;
}
