import type { DeploymentStore } from '../store/deployments.js';
import type { EnvironmentStore } from '../store/environment.js';
import type { Logger } from '../log.js';
import type { HealthChecker } from '../healthcheck/index.js';
import type { GateCaller } from '../gates/types.js';
import type { Cluster } from './cluster.js';
import type { EngineEvents } from './events.js';
import type { Failpoints } from './failpoints.js';
import type { IngressProfile } from './ingress-profiles.js';
import type { Journal } from './journal.js';
import type { AppOwnership } from './ownership.js';
import type { TrafficContext, TrafficTarget } from './traffic/index.js';
import type { Descriptor } from '../domain/types.js';
import { routingPlan, type RoutingConfig } from './routing.js';

export interface EngineConfig {
  defaultDrainSeconds: number;
  defaultHealthCheckTimeoutSeconds: number;
  defaultDeadlineSeconds: number;
  healthCheckIntervalMs: number;
  /** Upper bound of a failure's cleanup (putting traffic back, removing what the deployment made). */
  cleanupTimeoutSeconds: number;
  /** Records kept per app (the newest), with their logs and health data. */
  retainRecords: number;
  routing: RoutingConfig;
  /** Where the traffic probe sends requests after a switch (CUTOVER_TRAFFIC_PROBE_URL). */
  trafficProbeUrl?: string;
  convergenceTimeoutSeconds: number;
  /** First pause before asking a gate again after an attempt without a verdict (doubles, at most 10 s). Default 1000 ms. */
  gateRetryDelayMs?: number;
}

/** Everything the engine works with; built once by the composition root. */
export interface EngineDeps {
  store: DeploymentStore;
  environment: EnvironmentStore;
  /** The cluster as a whole; each run gets a view fenced by its ownership (RunContext.cluster). */
  cluster: Cluster;
  traffic: TrafficTarget[];
  profile: IngressProfile;
  healthChecker: HealthChecker;
  /** Asks pre-switch gates and post-switch checks (HTTP in production, a fake in unit tests). */
  gates: GateCaller;
  bus: EngineEvents;
  log: Logger;
  now: () => Date;
  config: EngineConfig;
  replicaId: string;
  failpoints: Failpoints;
  /** Told about records that exist but cannot be read (log and metrics); they are never acted on. */
  onUnreadable: (key: string, where: string) => void;
}

/** One run of one work item, by the owner of its app. */
export interface RunContext {
  deps: EngineDeps;
  /** The cluster for this app's owner: calls end with ownership, writes are fenced (I5). */
  cluster: Cluster;
  ownership: AppOwnership;
  journal: Journal;
  /** The queue item being worked on. */
  workId: string;
  log: Logger;
}

export function iso(ctx: RunContext): string {
  return ctx.deps.now().toISOString();
}

/** The context a traffic target is written in: for `deploymentId`, pointing at `version` of `descriptor`. */
export function trafficContext(ctx: { deps: EngineDeps; cluster: RunContext['cluster'] }, descriptor: Descriptor, version: string, deploymentId: string, signal: AbortSignal, log: (line: string) => Promise<void>): TrafficContext {
  return { cluster: ctx.cluster, descriptor, version, deploymentId, signal, log, routing: routingPlan(descriptor, ctx.deps.config.routing) };
}
