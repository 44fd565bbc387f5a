import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineEvent } from '../deployer/events.js';
import type { DeploymentRecord } from '../domain/deployment.js';

/**
 * cutover's Prometheus metrics (docs/metrics.md lists every one). The engine's state changes
 * arrive as events from the bus, so nothing in the engine knows about metrics. Labels are bounded:
 * namespace, app, outcome, step, route templates, status codes — never a deployment id.
 */

export type Outcome = 'succeeded' | 'failed' | 'rolled_back' | 'replaced' | 'undeployed';

const DURATION_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200];
/**
 * prom-client's event-loop delay histogram samples on a timer that never stops, so an idle replica
 * would wake for it; its resolution is set past any uptime (2^31 - 1 ms, 24.8 days) and its gauges
 * are not exported. The delay under work is cutover_work_event_loop_delay_* below.
 */
const PROM_CLIENT_LOOP_SAMPLE_MS = 2 ** 31 - 1;
const PROM_CLIENT_LOOP_HISTOGRAM = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((stat) => `cutover_nodejs_eventloop_lag_${stat}_seconds`);
/** Resolution of cutover's own event-loop delay measurement while work is in flight. */
const WORK_LOOP_RESOLUTION_MS = 10;
const FAST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface GaugeSources {
  websocketWatchers?: () => number;
  logFeeds?: () => number;
  queuedWork?: () => Promise<number>;
  /** Webhook deliveries waiting in the outbox (all replicas; read from etcd). */
  pendingWebhooks?: () => Promise<number>;
}

export class CutoverMetrics {
  readonly registry = new Registry();
  private readonly deployments: Counter<'namespace' | 'app' | 'outcome' | 'cluster'>;
  private readonly deploymentDuration: Histogram<'outcome' | 'cluster'>;
  private readonly stepDuration: Histogram<'step'>;
  private readonly switchOverhead: Histogram;
  private readonly switchConvergence: Histogram<'complete'>;
  private readonly inFlight: Gauge<'kind'>;
  /** Event-loop delay, measured only while work is in flight (no timer when idle). */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: WORK_LOOP_RESOLUTION_MS });
  private working = 0;
  private readonly healthChecks: Counter<'result'>;
  private readonly healthCheckLatency: Histogram;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly etcdErrors: Counter<'operation'>;
  private readonly kubeErrors: Counter<'operation' | 'status' | 'cluster'>;
  private readonly authFailures: Counter<'method' | 'limited'>;
  private readonly auditFailures: Counter;
  private readonly unreadableKeys = new Set<string>();
  private readonly reconcilerRemoved: Counter;
  private readonly reconcilerUnaccounted: Counter;
  private readonly reconcilerFailedRecords: Counter;
  private readonly webhookDeliveries: Counter<'type' | 'outcome'>;
  private readonly webhookAttemptFailures: Counter<'type'>;
  private readonly webhookLatency: Histogram;
  private readonly webhookEnqueuedCounter: Counter<'type'>;
  private readonly webhookEnqueueFailureCounter: Counter<'type'>;

  constructor(sources: GaugeSources = {}) {
    const registers = [this.registry];
    // prom-client's default of a sample every 10 ms woke an idle replica 100 times a second, and
    // once a second still woke it (docs/benchmarks.md, "Footprint"); see PROM_CLIENT_LOOP_SAMPLE_MS.
    collectDefaultMetrics({ register: this.registry, prefix: 'cutover_', eventLoopMonitoringPrecision: PROM_CLIENT_LOOP_SAMPLE_MS });
    for (const name of PROM_CLIENT_LOOP_HISTOGRAM) this.registry.removeSingleMetric(name);
    this.deployments = new Counter({
      name: 'cutover_deployments_total', help: 'Deployments that ended, by outcome (succeeded, failed, rolled_back; replaced and undeployed for versions taken out of service).',
      labelNames: ['namespace', 'app', 'outcome', 'cluster'], registers,
    });
    this.deploymentDuration = new Histogram({
      name: 'cutover_deployment_duration_seconds', help: 'Time from the deployment request to its outcome.',
      labelNames: ['outcome', 'cluster'], buckets: DURATION_BUCKETS, registers,
    });
    this.stepDuration = new Histogram({
      name: 'cutover_deployment_step_duration_seconds', help: 'Time spent in each step of successful deployments (waiting_for_pods, health_checking, switching_traffic) and of drains (draining).',
      labelNames: ['step'], buckets: [0.05, 0.1, 0.25, 0.5, ...DURATION_BUCKETS], registers,
    });
    this.switchOverhead = new Histogram({
      name: 'cutover_switch_overhead_seconds', help: "cutover's own time from the last healthy pod to traffic switched.",
      buckets: FAST_BUCKETS, registers,
    });
    this.switchConvergence = new Histogram({
      name: 'cutover_switch_convergence_seconds', help: 'From traffic switched (writes accepted) to traffic moved (every target that can tell says it was applied); complete="false" when not confirmed in time.',
      labelNames: ['complete'], buckets: FAST_BUCKETS, registers,
    });
    // Samples every 10 ms, but only while deploys or undeploys run: no timer while idle.
    const self = this;
    new Gauge({
      name: 'cutover_work_event_loop_delay_p99_seconds', help: 'Event-loop delay p99 while deploys or undeploys ran, since the previous scrape (0: none ran).', registers,
      collect: function (this: Gauge) {
        this.set(self.loopDelay.count > 0 ? self.loopDelay.percentile(99) / 1e9 : 0);
      },
    });
    new Gauge({
      name: 'cutover_work_event_loop_delay_max_seconds', help: 'Longest event-loop delay while deploys or undeploys ran, since the previous scrape; reading it starts a new window.', registers,
      collect: function (this: Gauge) {
        this.set(self.loopDelay.count > 0 ? self.loopDelay.max / 1e9 : 0);
        self.loopDelay.reset();
      },
    });
    this.inFlight = new Gauge({ name: 'cutover_work_in_flight', help: 'Deploys and undeploys this replica is running now.', labelNames: ['kind'], registers });
    new Gauge({
      name: 'cutover_work_queued', help: 'Deploys and undeploys waiting in the queues of all apps (all replicas; read from etcd).', registers,
      async collect() {
        if (sources.queuedWork) this.set(await sources.queuedWork().catch(() => Number.NaN));
      },
    });
    this.healthChecks = new Counter({ name: 'cutover_healthcheck_requests_total', help: 'App health-check requests to pods, by result (healthy, unhealthy).', labelNames: ['result'], registers });
    this.healthCheckLatency = new Histogram({ name: 'cutover_healthcheck_duration_seconds', help: 'Latency of app health-check requests.', buckets: FAST_BUCKETS, registers });
    this.httpDuration = new Histogram({
      name: 'cutover_http_request_duration_seconds', help: 'REST API requests, by method, route template and status code.',
      labelNames: ['method', 'route', 'status'], buckets: FAST_BUCKETS, registers,
    });
    new Gauge({
      name: 'cutover_websocket_watchers', help: 'Websocket clients following deployment logs on this replica.', registers,
      collect() {
        if (sources.websocketWatchers) this.set(sources.websocketWatchers());
      },
    });
    new Gauge({
      name: 'cutover_log_feeds', help: 'etcd watches this replica holds for log streaming (one per followed deployment).', registers,
      collect() {
        if (sources.logFeeds) this.set(sources.logFeeds());
      },
    });
    this.etcdErrors = new Counter({ name: 'cutover_etcd_errors_total', help: 'etcd calls that failed because etcd was unreachable or too slow.', labelNames: ['operation'], registers });
    this.authFailures = new Counter({ name: 'cutover_auth_failures_total', help: 'Refused authentications, by method (jwt, api-key, none) and whether the caller was rate limited.', labelNames: ['method', 'limited'], registers });
    this.auditFailures = new Counter({ name: 'cutover_audit_write_failures_total', help: 'Audit entries that could not be stored (the operation itself stood; the entry is in the log).', registers });
    const unreadable = this.unreadableKeys;
    new Gauge({
      name: 'cutover_unreadable_records', help: 'Stored records this replica found unreadable (kept as they are, never acted on; their apps\' objects are not deleted). Fix or delete them by hand.', registers,
      collect() {
        this.set(unreadable.size);
      },
    });
    this.reconcilerRemoved = new Counter({ name: 'cutover_reconciler_removed_objects_total', help: 'Objects the reconciler removed because a finished record accounted for them.', registers });
    this.reconcilerUnaccounted = new Counter({ name: 'cutover_reconciler_unaccounted_objects_total', help: 'cutover-labelled objects the reconciler found without a record speaking for them (reported, never deleted).', registers });
    this.reconcilerFailedRecords = new Counter({ name: 'cutover_reconciler_failed_records_total', help: 'Records the reconciler ended as FAILURE because nothing was working on them.', registers });
    this.webhookDeliveries = new Counter({
      name: 'cutover_webhook_deliveries_total', help: 'Webhook deliveries that ended, by event type (requested, started, step, switched, succeeded, failed, undeployed) and outcome (delivered, failed = retries ran out or the URL is no longer allowed).',
      labelNames: ['type', 'outcome'], registers,
    });
    this.webhookAttemptFailures = new Counter({ name: 'cutover_webhook_attempt_failures_total', help: 'Webhook delivery attempts that failed (no answer, or not 2xx) and were retried or given up, by event type.', labelNames: ['type'], registers });
    this.webhookLatency = new Histogram({
      name: 'cutover_webhook_delivery_latency_seconds', help: 'From a deployment event to the receiver\'s 2xx answer, retries included.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600], registers,
    });
    this.webhookEnqueuedCounter = new Counter({ name: 'cutover_webhook_events_enqueued_total', help: 'Webhook deliveries stored in the outbox with their record change (one per event and matching subscription), by event type.', labelNames: ['type'], registers });
    this.webhookEnqueueFailureCounter = new Counter({ name: 'cutover_webhook_enqueue_failures_total', help: 'Webhook deliveries that found no room in their record change\'s etcd transaction (not even for a fan-out entry; never with the engine\'s changes): not delivered; the change is stored.', labelNames: ['type'], registers });
    new Gauge({
      name: 'cutover_webhook_outbox_pending', help: 'Webhook deliveries waiting in the outbox (all replicas; read from etcd).', registers,
      async collect() {
        if (sources.pendingWebhooks) this.set(await sources.pendingWebhooks().catch(() => Number.NaN));
      },
    });
    this.kubeErrors = new Counter({ name: 'cutover_kubernetes_errors_total', help: 'Failed Kubernetes API calls, by operation and HTTP status (0 = no answer).', labelNames: ['operation', 'status', 'cluster'], registers });
  }

  /** Feeds the metrics from the engine's events. */
  observe(event: EngineEvent): void {
    switch (event.type) {
      case 'transition':
        this.observeTransition(event.record, event.previousStatus);
        return;
      case 'health':
        this.healthChecks.inc({ result: event.health.healthy ? 'healthy' : 'unhealthy' });
        this.healthCheckLatency.observe(event.health.latencyMs / 1000);
        return;
      case 'work-started':
        this.inFlight.inc({ kind: event.kind });
        if (this.working++ === 0) this.loopDelay.enable();
        return;
      case 'work-finished':
        this.inFlight.dec({ kind: event.kind });
        if (--this.working === 0) this.loopDelay.disable();
        return;
      case 'switch':
        this.switchOverhead.observe(event.overheadMs / 1000);
        return;
      case 'converged':
        this.switchConvergence.observe({ complete: String(event.complete) }, event.ms / 1000);
        return;
      case 'unreadable':
        if (this.unreadableKeys.size < 10_000) this.unreadableKeys.add(event.key);
        return;
      case 'reconciled':
        this.reconcilerRemoved.inc(event.removed);
        this.reconcilerUnaccounted.inc(event.unaccounted);
        this.reconcilerFailedRecords.inc(event.failedRecords);
        return;
      default:
    }
  }

  private observeTransition(r: DeploymentRecord, previous: DeploymentRecord['status']): void {
    const outcome = outcomeOf(r, previous);
    if (!outcome) return;
    // Bounded: cluster names come from the registry (at most 64).
    const cluster = r.cluster ?? 'default';
    this.deployments.inc({ namespace: r.namespace, app: r.appName, outcome, cluster });
    const seconds = (from?: string, to?: string) => (from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : undefined);
    if (outcome === 'succeeded' || outcome === 'failed' || outcome === 'rolled_back') {
      const total = seconds(r.created, r.times.finished ?? r.lastModified);
      if (total !== undefined) this.deploymentDuration.observe({ outcome, cluster }, total);
    }
    if (outcome === 'succeeded') {
      for (const [step, from, to] of [
        ['waiting_for_pods', r.times.resourcesCreated, r.times.podsReady],
        ['health_checking', r.times.podsReady, r.times.healthy],
        ['switching_traffic', r.times.healthy, r.times.switched],
      ] as const) {
        const s = seconds(from, to);
        if (s !== undefined && s >= 0) this.stepDuration.observe({ step }, s);
      }
    }
    if (r.status === 'UNDEPLOYED' && r.replacedBy) {
      const s = seconds(r.times.drainStarted, r.times.removed);
      if (s !== undefined && s >= 0) this.stepDuration.observe({ step: 'draining' }, s);
    }
  }

  observeHttp(method: string, route: string, status: number, seconds: number): void {
    this.httpDuration.observe({ method, route, status: String(status) }, seconds);
  }

  etcdError(operation: string): void {
    this.etcdErrors.inc({ operation });
  }

  kubernetesError(operation: string, status: number, cluster = 'default'): void {
    this.kubeErrors.inc({ operation, status: String(status), cluster });
  }

  authFailure(method: string, limited: boolean): void {
    this.authFailures.inc({ method, limited: String(limited) });
  }

  auditWriteFailure(): void {
    this.auditFailures.inc();
  }

  webhookDelivered(type: string, latencyMs: number): void {
    this.webhookDeliveries.inc({ type, outcome: 'delivered' });
    this.webhookLatency.observe(latencyMs / 1000);
  }

  webhookGaveUp(type: string): void {
    this.webhookDeliveries.inc({ type, outcome: 'failed' });
  }

  webhookAttemptFailed(type: string): void {
    this.webhookAttemptFailures.inc({ type });
  }

  webhookEnqueued(type: string, count: number): void {
    this.webhookEnqueuedCounter.inc({ type }, count);
  }

  webhookEnqueueFailed(type: string, count: number): void {
    this.webhookEnqueueFailureCounter.inc({ type }, count);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** The outcome a status change means, if it ends something. */
export function outcomeOf(r: DeploymentRecord, previous: DeploymentRecord['status']): Outcome | undefined {
  if (previous === 'DEPLOYING' && r.status === 'DEPLOYED') return 'succeeded';
  if (previous === 'DEPLOYING' && r.status === 'FAILURE') return /rolled back|switching traffic failed/.test(r.failureReason ?? '') ? 'rolled_back' : 'failed';
  if (previous === 'DEPLOYED' && r.status === 'UNDEPLOYING' && r.replacedBy) return 'replaced';
  if (previous === 'UNDEPLOYING' && r.status === 'UNDEPLOYED' && !r.replacedBy) return 'undeployed';
  return undefined;
}
