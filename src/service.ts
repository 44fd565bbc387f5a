import os from 'node:os';
import { ConfigError, type Config } from './config.js';
import { clusterScope, loadClusterRegistry, type ClusterRegistry, type ClusterSpec } from './clusters/registry.js';
import { Fleet } from './clusters/fleet.js';
import { Releases } from './clusters/releases.js';
import { ReleaseStore } from './store/releases.js';
import { SharedLease } from './store/shared-lease.js';
import { ScopedKv } from './store/scoped-kv.js';
import { releaseRoutes } from './api/routes/releases.js';
import { clusterRoutes } from './api/routes/clusters.js';
import { KubeconfigError } from './kube/kubeconfig.js';
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
import { keys, SHARED_KEY_FAMILIES } from './store/keys.js';
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
  // One etcd lease for the replica: the schedulers and the webhook dispatcher hold their keys with it.
  const leases = new SharedLease(kv, config.leaseTtlSeconds);
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

  let registry: ClusterRegistry;
  try {
    registry = loadClusterRegistry(config);
  } catch (err) {
    await kv.close();
    throw err;
  }
  const profile = ingressProfiles[config.ingressProfile]!;
  const gates = new HttpGateCaller();

  /** One cluster's engine, scheduler and records: the engine never learns which cluster it runs. */
  const stackOf = (spec: ClusterSpec, cluster: Cluster) => {
    const scoped = new ScopedKv(kv, clusterScope(registry, spec.name), SHARED_KEY_FAMILIES);
    const deployments = new DeploymentStore(scoped, now, { changeOps: webhookOutbox.changeOps });
    const healthChecker: HealthChecker & { close?: () => Promise<void> } = spec.healthCheckMode === 'proxy'
      ? new ApiServerProxyHealthChecker((req) => cluster.proxyGet(req), { timeoutMs: config.healthCheckRequestTimeoutMs })
      : new DirectHealthChecker({ timeoutMs: config.healthCheckRequestTimeoutMs });
    const engine = new DeploymentEngine({
      store: deployments, environment: registry.fromFile ? new EnvironmentStore(kv, spec.name) : environment, cluster, profile, healthChecker, gates, bus: events, now, replicaId, onUnreadable,
      traffic: [
        new StableServiceTarget(profile),
        new IngressTarget(profile, { ...(spec.ingressClassName ? { defaultIngressClassName: spec.ingressClassName } : {}) }),
        new HttpRouteTarget(profile),
      ],
      log: log.child({ component: 'engine', ...(registry.fromFile ? { cluster: spec.name } : {}) }),
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
          defaultRouting: spec.routing,
          ...(spec.gateway ? { gateway: spec.gateway } : {}),
          ...(config.versionHeader ? { versionHeader: config.versionHeader } : {}),
        },
        ...(spec.trafficProbeUrl ? { trafficProbeUrl: spec.trafficProbeUrl } : {}),
        convergenceTimeoutSeconds: config.convergenceTimeoutSeconds,
      },
    });
    const scheduler = new Scheduler({
      kv: scoped, store: deployments, engine, bus: events, replicaId,
      log: log.child({ component: 'scheduler', ...(registry.fromFile ? { cluster: spec.name } : {}) }),
      leaseTtlSeconds: config.leaseTtlSeconds, leases,
    });
    const requests = new DeploymentRequests({
      descriptors, deployments, now, defaultDeadlineSeconds: config.deadlineSeconds, defaultControllerKind: config.defaultControllerKind,
      ...(registry.fromFile ? { cluster: spec.name } : {}),
      // Asked on the request path, so briefly; unknown (the API server did not answer in 2 s) counts
      // as none: the deployment still adopts what runs, under a lower number.
      highestVersionInCluster: (ns, app) => withDeadline(2_000, undefined, (signal) => highestVersionInCluster(cluster, ns, app, signal)).catch(() => 0),
      onRequested: (record, revision) => events.publish({ type: 'requested', record, revision, at: now() }), // for bus observers; webhooks do not use it
    });
    return { spec, kv: scoped, cluster, deployments, requests, scheduler, healthChecker };
  };

  let stacks: Array<ReturnType<typeof stackOf>>;
  try {
    stacks = registry.clusters.map((spec) => stackOf(spec, spec.name === registry.defaultCluster && overrides.cluster ? overrides.cluster : new KubernetesCluster({
      client: connectCluster(spec.inCluster ? undefined : spec.kubeconfig),
      requestTimeoutMs: config.kubeRequestTimeoutMs,
      retryBudgetMs: 60_000,
      log: log.child({ component: 'kubernetes', ...(registry.fromFile ? { cluster: spec.name } : {}) }),
      onError: (operation, err) => metrics.kubernetesError(operation, err.status, spec.name),
    })));
  } catch (err) {
    await kv.close();
    throw err instanceof KubeconfigError && registry.fromFile ? new ConfigError([`CUTOVER_CLUSTERS_FILE=${config.clustersFile}: ${err.message}`]) : err;
  }
  const fleet = new Fleet(registry, stacks);
  const defaultStack = stacks.find((s) => s.spec.name === registry.defaultCluster)!;
  const { deployments, cluster } = defaultStack;
  const releases = new Releases({ fleet, kv, store: new ReleaseStore(kv, onCorrupt), descriptors, now });
  const webhookSender = new HttpWebhookSender(config.webhookTimeoutSeconds * 1000);
  const webhookDispatcher = new WebhookDispatcher({
    kv, store: webhookStore, sender: webhookSender, replicaId, leaseTtlSeconds: config.leaseTtlSeconds, leases,
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

  const overviewClusters = {
    defaultCluster: registry.defaultCluster,
    others: stacks.filter((stack) => stack !== defaultStack).map((stack) => ({ cluster: stack.spec.name, kv: stack.kv })),
  };
  const overviewFeed = new OverviewFeed({ kv, log: log.child({ component: 'overview-feed' }), clusters: overviewClusters });
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
    environmentRoutes({ environment, forCluster: (name) => new EnvironmentStore(kv, fleet.member(name).spec.name) }),
    deploymentRoutes({ fleet, releases }),
    releaseRoutes({ releases }),
    clusterRoutes({ fleet }),
    auditRoutes({ audit: security.audit }),
    adminKeyRoutes({ keys: security.keyAdmin }),
    overviewRoutes({ kv, feed: overviewFeed, clusters: overviewClusters }),
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
    if (registry.fromFile) await checkDefaultCluster(kv, registry, config.clustersFile!);
    const migration = await deployments.migrateLayout();
    if (migration.migrated) log.info({ records: migration.records, unreadable: migration.unreadable.length, multipleLive: migration.multipleLive }, 'migrated deployment records to the current key layout');
    for (const key of migration.unreadable) onUnreadable(key, 'the layout migration');
    server = await startHttpServer(app, config.host, config.port);
    // At once: a websocket upgrade that arrives before this is answered by Koa as a plain request
    // (404), and clients resuming after a restart connect as soon as the port opens.
    logStream = attachLogStream(server.server, {
      sources: stacks.map((stack) => ({ deployments: stack.deployments, kv: stack.kv })), log, allowedOrigins: config.allowedOrigins,
      heartbeatMs: config.wsHeartbeatSeconds * 1000, maxBufferedBytes: config.wsMaxBufferedBytes,
      // Koa's authenticate middleware does not see upgrades: the same check, for the websocket.
      authorize: async (req, namespace) => assertNamespaceAllowed(await security.authenticator.authenticateRequest(req, undefined), namespace),
    });
    for (const stack of stacks) await stack.scheduler.start();
    await webhookDispatcher.start();
  } catch (err) {
    await leases.revoke().catch(() => undefined);
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
        await Promise.all([server.close(graceMs), ...stacks.map((stack) => stack.scheduler.stop(graceMs))]);
        // Stop delivering; other replicas, or the next start, go on from the outbox.
        await webhookDispatcher.stop();
        await leases.revoke().catch(() => undefined); // theirs, shared: revoked once both stopped
        await webhookSubscriptions.close();
        await webhookSender.close();
        for (const stack of stacks) {
          stack.cluster.close();
          await stack.healthChecker.close?.();
        }
        await gates.close();
        await security.close();
        await kv.close();
        log.info('cutover stopped');
      })();
      return stopping;
    },
  };
}

/**
 * The default cluster's records use the root layout, so which cluster that is must never change
 * silently: the first start with a registry writes it down, later starts insist on it.
 */
async function checkDefaultCluster(kv: KvStore, registry: ClusterRegistry, file: string): Promise<void> {
  const key = keys.defaultCluster();
  let stored = await kv.get(key);
  if (stored === undefined) {
    const written = await kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: registry.defaultCluster }]);
    if (written.succeeded) return;
    stored = await kv.get(key); // another replica wrote it first: it must agree
  }
  if (stored && stored.value !== registry.defaultCluster) {
    throw new ConfigError([`CUTOVER_CLUSTERS_FILE=${file}: defaultCluster is "${registry.defaultCluster}", but the records of the default cluster belong to "${stored.value}" (set defaultCluster: ${stored.value}; see docs/clusters.md)`]);
  }
}
