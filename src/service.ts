import os from 'node:os';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { EtcdStore } from './store/etcd.js';
import { EtcdDescriptorStore } from './store/descriptors.js';
import { DeploymentStore } from './store/deployments.js';
import { EnvironmentStore } from './store/environment.js';
import type { KvStore } from './store/kv.js';
import { createApp } from './api/app.js';
import { startHttpServer, type RunningServer } from './api/server.js';
import { descriptorRoutes } from './api/routes/descriptors.js';
import { deploymentRoutes } from './api/routes/deployments.js';
import { healthRoutes } from './api/routes/health.js';
import { KubernetesCluster, loadKubeConfig } from './deployer/kubernetes.js';
import type { Cluster } from './deployer/cluster.js';
import { DeploymentEngine } from './deployer/engine.js';
import { EngineEvents } from './deployer/events.js';
import { ingressProfiles } from './deployer/ingress-profiles.js';
import { DeploymentRequests } from './deployer/requests.js';
import { Scheduler } from './deployer/scheduler.js';
import { IngressTarget, StableServiceTarget } from './deployer/traffic.js';
import { ApiServerProxyHealthChecker, DirectHealthChecker, type HealthChecker } from './healthcheck/index.js';

/**
 * The composition root: the only place that knows which implementation backs which interface.
 * main.ts runs it as a process; integration tests run it in-process.
 */
export interface Cutover {
  readonly url: string;
  readonly kv: KvStore;
  readonly events: EngineEvents;
  readonly replicaId: string;
  /** Graceful stop: readiness fails, work reaches a safe point or is handed over, the server drains. */
  stop(): Promise<void>;
}

export interface CutoverOverrides {
  /** Use this cluster instead of one built from the kubeconfig (tests of failure modes). */
  cluster?: Cluster;
}

export async function startCutover(config: Config, log: Logger, overrides: CutoverOverrides = {}): Promise<Cutover> {
  const replicaId = config.replicaId || `${os.hostname()}-${process.pid}`;
  const kv = new EtcdStore({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix, timeoutMs: config.etcdTimeoutMs });
  const now = () => new Date();
  let shuttingDown = false;
  const onCorrupt = (key: string, err: Error) => log.warn({ key, err: err.message }, 'skipping unreadable record');

  const descriptors = new EtcdDescriptorStore(kv, onCorrupt);
  const deployments = new DeploymentStore(kv, now);
  const environment = new EnvironmentStore(kv);
  const events = new EngineEvents();

  let cluster: Cluster;
  try {
    cluster = overrides.cluster ?? new KubernetesCluster({
      kubeConfig: loadKubeConfig(config.kubeconfig),
      requestTimeoutMs: config.kubeRequestTimeoutMs,
      retryBudgetMs: 60_000,
      log: log.child({ component: 'kubernetes' }),
    });
  } catch (err) {
    await kv.close();
    throw err;
  }

  const profile = ingressProfiles[config.ingressProfile]!;
  const healthChecker: HealthChecker & { close?: () => Promise<void> } = config.healthCheckMode === 'proxy'
    ? new ApiServerProxyHealthChecker((req) => cluster.proxyGet(req), { timeoutMs: config.healthCheckRequestTimeoutMs })
    : new DirectHealthChecker({ timeoutMs: config.healthCheckRequestTimeoutMs });
  const engine = new DeploymentEngine({
    store: deployments, environment, cluster, profile, healthChecker, bus: events, now, replicaId,
    traffic: [new StableServiceTarget(cluster, profile), new IngressTarget(cluster, profile, { ...(config.ingressClassName ? { defaultIngressClassName: config.ingressClassName } : {}) })],
    log: log.child({ component: 'engine' }),
    config: {
      defaultDrainSeconds: config.drainSeconds,
      defaultHealthCheckTimeoutSeconds: config.healthCheckTimeoutSeconds,
      defaultDeadlineSeconds: config.deadlineSeconds,
      healthCheckIntervalMs: config.healthCheckIntervalMs,
      cleanupTimeoutSeconds: 120,
    },
  });
  const scheduler = new Scheduler({
    kv, store: deployments, engine, replicaId, log: log.child({ component: 'scheduler' }),
    leaseTtlSeconds: config.leaseTtlSeconds, resyncIntervalMs: 5000,
  });
  const requests = new DeploymentRequests({ descriptors, deployments, now, defaultDeadlineSeconds: config.deadlineSeconds });

  const app = createApp({
    log,
    routers: [
      healthRoutes({
        checks: [
          { name: 'etcd', check: () => kv.ping() },
          { name: 'kubernetes', check: () => cluster.ping(AbortSignal.timeout(3000)) },
        ],
        isShuttingDown: () => shuttingDown,
      }),
      descriptorRoutes({ descriptors, now }),
      deploymentRoutes({ deployments, requests }),
    ],
  });

  let server: RunningServer;
  try {
    server = await startHttpServer(app, config.host, config.port);
    await scheduler.start();
  } catch (err) {
    await kv.close();
    throw err;
  }
  log.info({ url: server.url, replicaId, etcd: config.etcdEndpoints, prefix: config.etcdPrefix, healthCheckMode: config.healthCheckMode, ingressProfile: profile.name }, 'cutover listening');

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    kv,
    events,
    replicaId,
    stop: () => {
      stopping ??= (async () => {
        shuttingDown = true;
        const graceMs = config.shutdownGraceSeconds * 1000;
        await Promise.all([server.close(graceMs), scheduler.stop(graceMs)]);
        await healthChecker.close?.();
        await kv.close();
        log.info('cutover stopped');
      })();
      return stopping;
    },
  };
}
