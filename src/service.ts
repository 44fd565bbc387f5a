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
import { attachLogStream, type LogStream } from './api/websocket/log-stream.js';
import { assertNamespaceAllowed } from './auth/caller.js';
import { KubernetesCluster, connectCluster } from './deployer/kubernetes.js';
import type { Cluster } from './deployer/cluster.js';
import { DeploymentEngine } from './deployer/engine.js';
import { EngineEvents } from './deployer/events.js';
import { HttpGateCaller } from './gates/http.js';
import { storyOf } from './deployer/story.js';
import { ingressProfiles } from './deployer/ingress-profiles.js';
import { DeploymentRequests } from './deployer/requests.js';
import { Scheduler } from './deployer/scheduler.js';
import { CutoverMetrics } from './metrics/metrics.js';
import { metricsRoutes } from './api/routes/metrics.js';
import { docsRoutes } from './api/routes/docs.js';
import { CUTOVER_VERSION } from './version.js';
import { environmentRoutes } from './api/routes/environment.js';
import { keys } from './store/keys.js';
import { parseFailpoints } from './deployer/failpoints.js';
import { withDeadline } from './lib/deadline.js';
import { highestVersionInCluster } from './deployer/adoption.js';
import { HttpRouteTarget, IngressTarget, StableServiceTarget } from './deployer/traffic/index.js';
import { ApiServerProxyHealthChecker, DirectHealthChecker, type HealthChecker } from './healthcheck/index.js';
import { resolveAuthSetup } from './auth/settings.js';
import { createSecurity } from './auth/security.js';
import { auditRoutes } from './api/routes/audit.js';
import { adminKeyRoutes } from './api/routes/admin-keys.js';
import { overviewRoutes } from './api/routes/overview.js';
import { OverviewFeed } from './api/overview-feed.js';
import { uiRoutes } from './api/routes/ui.js';
import { webhookRoutes } from './api/routes/webhooks.js';
import { WebhookStore } from './store/webhooks.js';
import { SubscriptionCache, WebhookOutbox } from './webhooks/outbox.js';
import { WebhookDispatcher } from './webhooks/dispatcher.js';
import { HttpWebhookSender } from './webhooks/sender.js';
import { WebhookAdmin, webhookSecret } from './webhooks/subscriptions.js';
import { AllowedHosts, validateWebhookUrl } from './webhooks/url.js';

/**
 * The composition root: the only place that knows which implementation backs which interface.
 * main.ts runs it as a process; integration tests run it in-process.
 */
export interface Cutover {
  readonly url: string;
  readonly kv: KvStore;
  readonly events: EngineEvents;
  readonly replicaId: string;
  /** The log websocket on the API server (watcher and feed counts for metrics and tests). */
  readonly logStream: LogStream;
  readonly metrics: CutoverMetrics;
  /** Every REST route (method and Koa path), for the OpenAPI coverage test. */
  routes(): Array<{ method: string; path: string }>;
  /** Asks the app's owner to reconcile its objects and records (tests, operators); it happens asynchronously. */
  requestReconcile(namespace: string, appName: string): Promise<void>;
  /** Graceful stop: readiness fails, work reaches a safe point or is handed over, the server drains. */
  stop(): Promise<void>;
}

export interface CutoverOverrides {
  /** Use this cluster instead of one built from the kubeconfig (tests of failure modes). */
  cluster?: Cluster;
}

export async function startCutover(config: Config, log: Logger, overrides: CutoverOverrides = {}): Promise<Cutover> {
  const replicaId = config.replicaId || `${os.hostname()}-${process.pid}`;
  // First: a bad security set-up (e.g. auth on with nothing to authenticate with) stops here, with a ConfigError.
  const authSetup = resolveAuthSetup(config);
  let logStream: LogStream | undefined;
  let kv: EtcdStore;
  const metrics = new CutoverMetrics({
    websocketWatchers: () => logStream?.watcherCount() ?? 0,
    logFeeds: () => logStream?.feedCount() ?? 0,
    queuedWork: () => kv.count(keys.allQueues()),
    pendingWebhooks: () => kv.count(keys.allWebhookOutbox()),
  });
  kv = new EtcdStore({
    endpoints: config.etcdEndpoints, prefix: config.etcdPrefix, timeoutMs: config.etcdTimeoutMs,
    onUnavailable: (operation) => metrics.etcdError(operation),
  });
  const now = () => new Date();
  let shuttingDown = false;
  const events = new EngineEvents();
  // Unreadable records are kept, never acted on, and reported: in the log and in /metrics.
  const onUnreadable = (key: string, where: string) => {
    log.warn({ key, where }, 'unreadable record: kept as it is and not acted on');
    events.publish({ type: 'unreadable', key, where, at: now() });
  };
  const onCorrupt = (key: string, err: Error) => onUnreadable(key, `a listing (${err.message})`);

  const descriptors = new EtcdDescriptorStore(kv, onCorrupt);
  // Webhooks: a record change's outbox items are written in the change's own etcd transaction
  // (computed from the subscriptions a watch keeps in memory); any replica's dispatcher delivers them.
  const webhookLog = log.child({ component: 'webhooks' });
  const webhookSubscriptions = new SubscriptionCache(kv, webhookLog);
  const webhookOutbox = new WebhookOutbox({
    subscriptions: webhookSubscriptions, log: webhookLog,
    onEnqueued: (kind, n) => metrics.webhookEnqueued(kind, n),
    onEnqueueFailed: (kind, n) => metrics.webhookEnqueueFailed(kind, n),
  });
  const deployments = new DeploymentStore(kv, now, { changeOps: webhookOutbox.changeOps });
  const environment = new EnvironmentStore(kv);
  events.subscribe((e) => metrics.observe(e));
  // Each deployment's story in cutover's own log (one info line per milestone), for log aggregation and alerting.
  const storyLog = log.child({ component: 'deployments' });
  events.subscribe((e) => {
    const line = storyOf(e);
    if (line) storyLog.info(line.fields, line.msg);
  });
  const webhookStore = new WebhookStore(kv, onCorrupt);
  const webhookHosts = new AllowedHosts(config.webhookAllowedHosts);
  const security = createSecurity(authSetup, config, { kv, log, now, onCorrupt, onAuthFailure: (method, limited) => metrics.authFailure(method, limited) });

  let cluster: Cluster;
  try {
    cluster = overrides.cluster ?? new KubernetesCluster({
      client: connectCluster(config.kubeconfig),
      requestTimeoutMs: config.kubeRequestTimeoutMs,
      retryBudgetMs: 60_000,
      log: log.child({ component: 'kubernetes' }),
      onError: (operation, err) => metrics.kubernetesError(operation, err.status),
    });
  } catch (err) {
    await kv.close();
    throw err;
  }

  const profile = ingressProfiles[config.ingressProfile]!;
  const healthChecker: HealthChecker & { close?: () => Promise<void> } = config.healthCheckMode === 'proxy'
    ? new ApiServerProxyHealthChecker((req) => cluster.proxyGet(req), { timeoutMs: config.healthCheckRequestTimeoutMs })
    : new DirectHealthChecker({ timeoutMs: config.healthCheckRequestTimeoutMs });
  const gates = new HttpGateCaller();
  const engine = new DeploymentEngine({
    store: deployments, environment, cluster, profile, healthChecker, gates, bus: events, now, replicaId, onUnreadable,
    traffic: [
      new StableServiceTarget(profile),
      new IngressTarget(profile, { ...(config.ingressClassName ? { defaultIngressClassName: config.ingressClassName } : {}) }),
      new HttpRouteTarget(profile),
    ],
    log: log.child({ component: 'engine' }),
    failpoints: parseFailpoints(config.failpoints),
    config: {
      defaultDrainSeconds: config.drainSeconds,
      defaultHealthCheckTimeoutSeconds: config.healthCheckTimeoutSeconds,
      defaultDeadlineSeconds: config.deadlineSeconds,
      healthCheckIntervalMs: config.healthCheckIntervalMs,
      // Keeps "FAILURE within deadline + 1 min" (I3) even when the cleanup after a deadline is slow.
      cleanupTimeoutSeconds: 40,
      retainRecords: config.retainRecords,
      routing: {
        defaultRouting: config.routing,
        ...(config.gateway ? { gateway: config.gateway } : {}),
        ...(config.versionHeader ? { versionHeader: config.versionHeader } : {}),
      },
      ...(config.trafficProbeUrl ? { trafficProbeUrl: config.trafficProbeUrl } : {}),
      convergenceTimeoutSeconds: config.convergenceTimeoutSeconds,
    },
  });
  const scheduler = new Scheduler({
    kv, store: deployments, engine, bus: events, replicaId, log: log.child({ component: 'scheduler' }),
    leaseTtlSeconds: config.leaseTtlSeconds,
  });
  const requests = new DeploymentRequests({
    descriptors, deployments, now, defaultDeadlineSeconds: config.deadlineSeconds, defaultControllerKind: config.defaultControllerKind,
    // Asked on the request path, so briefly; unknown (the API server did not answer in 2 s) counts
    // as none: the deployment still adopts what runs, under a lower number.
    highestVersionInCluster: (ns, app) => withDeadline(2_000, undefined, (signal) => highestVersionInCluster(cluster, ns, app, signal)).catch(() => 0),
    onRequested: (record, revision) => events.publish({ type: 'requested', record, revision, at: now() }), // for bus observers; webhooks do not use it
  });
  const webhookSender = new HttpWebhookSender(config.webhookTimeoutSeconds * 1000);
  const webhookDispatcher = new WebhookDispatcher({
    kv, store: webhookStore, sender: webhookSender, replicaId, leaseTtlSeconds: config.leaseTtlSeconds,
    log: log.child({ component: 'webhooks' }),
    secretOf: (subscription) => webhookSecret(authSetup.keks, subscription),
    urlRefusal: (url) => {
      try {
        validateWebhookUrl(url, webhookHosts);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
    policy: {
      retryWindowMs: config.webhookRetrySeconds * 1000,
      firstBackoffMs: config.webhookFirstRetryMs,
      maxBackoffMs: config.webhookMaxRetryIntervalSeconds * 1000,
      attemptTimeoutMs: config.webhookTimeoutSeconds * 1000,
    },
    userAgent: `cutover/${CUTOVER_VERSION}`,
    metrics: {
      delivered: (kind, latencyMs) => metrics.webhookDelivered(kind, latencyMs),
      attemptFailed: (kind) => metrics.webhookAttemptFailed(kind),
      gaveUp: (kind) => metrics.webhookGaveUp(kind),
    },
  });
  if (!webhookHosts.restricted) log.info('webhook URLs may point at any host (CUTOVER_WEBHOOK_ALLOWED_HOSTS is empty); see docs/security.md on internal addresses');

  const overviewFeed = new OverviewFeed({ kv, log: log.child({ component: 'overview-feed' }) });
  const routers = [
    metricsRoutes(metrics),
    docsRoutes(CUTOVER_VERSION),
    healthRoutes({
      checks: [
        { name: 'etcd', check: () => kv.ping() },
        { name: 'kubernetes', check: () => withDeadline(3000, undefined, (signal) => cluster.ping(signal)) },
      ],
      isShuttingDown: () => shuttingDown,
    }),
    descriptorRoutes({ descriptors, now }),
    environmentRoutes({ environment }),
    deploymentRoutes({ deployments, requests }),
    auditRoutes({ audit: security.audit }),
    adminKeyRoutes({ keys: security.keyAdmin }),
    overviewRoutes({ kv, feed: overviewFeed }),
    webhookRoutes({ webhooks: new WebhookAdmin(webhookStore, authSetup.keks, webhookHosts, now) }),
  ];
  const app = createApp({
    log,
    allowedOrigins: config.allowedOrigins,
    observeRequest: (method, route, status, seconds) => metrics.observeHttp(method, route, status, seconds),
    authenticator: security.authenticator,
    openPaths: security.openPaths,
    audit: security.audit,
    onAuditWriteFailure: () => metrics.auditWriteFailure(),
    hstsMaxAgeSeconds: config.hstsMaxAgeSeconds,
    routers,
    publicRouters: [uiRoutes()],
  });

  let server: RunningServer;
  try {
    // Before anything can change a record: its webhook events are computed from these.
    await webhookSubscriptions.start();
    const migration = await deployments.migrateLayout();
    if (migration.migrated) log.info({ records: migration.records, unreadable: migration.unreadable.length, multipleLive: migration.multipleLive }, 'migrated deployment records to the current key layout');
    for (const key of migration.unreadable) onUnreadable(key, 'the layout migration');
    server = await startHttpServer(app, config.host, config.port);
    // At once: a websocket upgrade that arrives before this is answered by Koa as a plain request
    // (404), and clients resuming after a restart connect as soon as the port opens.
    logStream = attachLogStream(server.server, {
      deployments, kv, log, allowedOrigins: config.allowedOrigins,
      heartbeatMs: config.wsHeartbeatSeconds * 1000, maxBufferedBytes: config.wsMaxBufferedBytes,
      // Koa's authenticate middleware does not see upgrades: the same check, for the websocket.
      authorize: async (req, namespace) => assertNamespaceAllowed(await security.authenticator.authenticateRequest(req, undefined), namespace),
    });
    await scheduler.start();
    await webhookDispatcher.start();
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
    logStream,
    metrics,
    routes: () => routers.flatMap((r) => r.stack.flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((method) => ({ method, path: String(layer.path) })))),
    requestReconcile: (namespace, appName) => deployments.requestReconcile(namespace, appName, 'requested'),
    stop: () => {
      stopping ??= (async () => {
        shuttingDown = true;
        const graceMs = config.shutdownGraceSeconds * 1000;
        // Websockets and event streams first (1001, resume hint): server.close() would otherwise wait for them.
        await Promise.all([logStream.close(), overviewFeed.close()]);
        await Promise.all([server.close(graceMs), scheduler.stop(graceMs)]);
        // Stop delivering; other replicas, or the next start, go on from the outbox.
        await webhookDispatcher.stop();
        await webhookSubscriptions.close();
        await webhookSender.close();
        cluster.close();
        await healthChecker.close?.();
        await gates.close();
        await security.close();
        await kv.close();
        log.info('cutover stopped');
      })();
      return stopping;
    },
  };
}
