import type { Config } from './config.js';
import type { Logger } from './log.js';
import { EtcdStore } from './store/etcd.js';
import { EtcdDescriptorStore } from './store/descriptors.js';
import type { KvStore } from './store/kv.js';
import { createApp } from './api/app.js';
import { startHttpServer, type RunningServer } from './api/server.js';
import { descriptorRoutes } from './api/routes/descriptors.js';
import { healthRoutes } from './api/routes/health.js';

/**
 * The composition root: the only place that knows which implementation backs which interface.
 * main.ts runs it as a process; integration tests run it in-process.
 */
export interface Cutover {
  readonly url: string;
  readonly kv: KvStore;
  /** Graceful stop: readiness fails, the server drains, the store closes. */
  stop(): Promise<void>;
}

export async function startCutover(config: Config, log: Logger): Promise<Cutover> {
  const kv = new EtcdStore({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix, timeoutMs: config.etcdTimeoutMs });
  const now = () => new Date();
  let shuttingDown = false;

  const descriptors = new EtcdDescriptorStore(kv, (key, err) => log.warn({ key, err: err.message }, 'skipping unreadable record'));

  const app = createApp({
    log,
    routers: [
      healthRoutes({ checks: [{ name: 'etcd', check: () => kv.ping() }], isShuttingDown: () => shuttingDown }),
      descriptorRoutes({ descriptors, now }),
    ],
  });

  let server: RunningServer;
  try {
    server = await startHttpServer(app, config.host, config.port);
  } catch (err) {
    await kv.close();
    throw err;
  }
  log.info({ url: server.url, etcd: config.etcdEndpoints, prefix: config.etcdPrefix }, 'cutover listening');

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    kv,
    stop: () => {
      stopping ??= (async () => {
        shuttingDown = true;
        await server.close(config.shutdownGraceSeconds * 1000);
        await kv.close();
        log.info('cutover stopped');
      })();
      return stopping;
    },
  };
}
