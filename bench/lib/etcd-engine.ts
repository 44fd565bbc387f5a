/**
 * The real engine and scheduler on a real etcd (through EtcdStore) and an in-memory cluster, for
 * benchmarks of what the engine stores. Modelled on test/support/engine-harness.ts, which does
 * the same on an in-memory KvStore: drain 0 s, health checks that answer healthy at once, and a
 * configurable retention (`retainRecords`).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Descriptor, HealthResult } from '../../src/domain/types.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import { validateDescriptor } from '../../src/domain/descriptor-schema.js';
import { DeploymentEngine } from '../../src/deployer/engine.js';
import { EngineEvents } from '../../src/deployer/events.js';
import { noFailpoints } from '../../src/deployer/failpoints.js';
import { genericProfile } from '../../src/deployer/ingress-profiles.js';
import { DeploymentRequests } from '../../src/deployer/requests.js';
import { Scheduler } from '../../src/deployer/scheduler.js';
import { HttpRouteTarget, IngressTarget, StableServiceTarget } from '../../src/deployer/traffic/index.js';
import type { HealthChecker, HealthTarget } from '../../src/healthcheck/index.js';
import { createLogger } from '../../src/log.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { EtcdDescriptorStore } from '../../src/store/descriptors.js';
import { EnvironmentStore } from '../../src/store/environment.js';
import { EtcdStore } from '../../src/store/etcd.js';
import type { Guard } from '../../src/store/kv.js';
import { keys } from '../../src/store/keys.js';
import { MemoryCluster } from '../../test/support/memory-cluster.js';
import { waitFor } from '../../test/support/wait.js';

/** One prune call: how long it took and how many records it deleted. */
export interface PruneCall {
  ms: number;
  deleted: number;
}

/** The real DeploymentStore, timing every prune call (the engine's housekeeping ones included). */
export class TimedDeploymentStore extends DeploymentStore {
  readonly pruneCalls: PruneCall[] = [];

  override async prune(namespace: string, appName: string, keep: number, fence?: Guard): Promise<number> {
    const t0 = performance.now();
    const deleted = await super.prune(namespace, appName, keep, fence);
    this.pruneCalls.push({ ms: performance.now() - t0, deleted });
    return deleted;
  }
}

export interface EtcdEngineOptions {
  endpoint: string;
  /** Key prefix (CUTOVER_ETCD_PREFIX), e.g. "/deployer/". */
  prefix: string;
  namespace: string;
  retainRecords: number;
}

export class EtcdEngine {
  readonly kv: EtcdStore;
  readonly cluster = new MemoryCluster();
  readonly store: TimedDeploymentStore;
  readonly bus = new EngineEvents();
  readonly engine: DeploymentEngine;
  readonly scheduler: Scheduler;
  /** Records that exist but could not be read (must stay empty). */
  readonly unreadable: string[] = [];
  private readonly descriptors: EtcdDescriptorStore;
  private readonly requests: DeploymentRequests;
  private readonly finished = new Set<string>();
  private readonly finishWaiters = new Map<string, () => void>();
  private started = false;

  constructor(readonly options: EtcdEngineOptions) {
    this.kv = new EtcdStore({ endpoints: [options.endpoint], prefix: options.prefix, timeoutMs: 5000 });
    this.store = new TimedDeploymentStore(this.kv);
    this.descriptors = new EtcdDescriptorStore(this.kv);
    // Warnings and errors of the engine go to stderr; a clean run prints none.
    const log = createLogger({ level: 'warn', name: 'bench-engine', stream: process.stderr });
    const checker: HealthChecker = {
      check: async (t: HealthTarget): Promise<HealthResult> => ({
        podName: t.podName, healthy: true, body: '', reason: 'healthy', latencyMs: 1, checkedAt: new Date().toISOString(),
      }),
    };
    this.engine = new DeploymentEngine({
      store: this.store, environment: new EnvironmentStore(this.kv), cluster: this.cluster, profile: genericProfile, healthChecker: checker,
      gates: { call: async () => ({ outcome: 'pass', reason: 'bench', latencyMs: 0 }) },
      bus: this.bus, log, now: () => new Date(), replicaId: 'bench',
      traffic: [new StableServiceTarget(genericProfile), new IngressTarget(genericProfile, {}), new HttpRouteTarget(genericProfile)],
      failpoints: noFailpoints,
      onUnreadable: (key) => this.unreadable.push(key),
      config: {
        defaultDrainSeconds: 0, defaultHealthCheckTimeoutSeconds: 30, defaultDeadlineSeconds: 120, healthCheckIntervalMs: 20,
        cleanupTimeoutSeconds: 5, retainRecords: options.retainRecords, routing: { defaultRouting: 'ingress' }, convergenceTimeoutSeconds: 5,
      },
    });
    this.scheduler = new Scheduler({ kv: this.kv, store: this.store, engine: this.engine, bus: this.bus, log, replicaId: 'bench', leaseTtlSeconds: 10 });
    this.requests = new DeploymentRequests({ descriptors: this.descriptors, deployments: this.store, now: () => new Date(), defaultDeadlineSeconds: 120, defaultControllerKind: 'Deployment' });
    this.bus.subscribe((e) => {
      if (e.type !== 'work-finished') return;
      this.finished.add(e.deploymentId);
      this.finishWaiters.get(e.deploymentId)?.();
    });
  }

  async start(): Promise<this> {
    await this.scheduler.start();
    this.started = true;
    return this;
  }

  /** Stops taking work and revokes the scheduler's lease; the stores stay usable. Safe to call twice. */
  async stopScheduler(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.scheduler.stop(0);
  }

  /** Stops the scheduler and closes the etcd client; safe to call twice. */
  async stop(): Promise<void> {
    await this.stopScheduler();
    await this.kv.close();
  }

  /** Stores a descriptor of `appName` (validated as the API does); returns its id. */
  async createDescriptor(appName: string): Promise<string> {
    const input = {
      namespace: this.options.namespace, appName, newVersion: '#', replicas: 2, useHealthCheck: true, frontend: `${appName}.example.test`,
      podspec: { containers: [{ name: 'app', image: `registry.example.test/${appName}:1.0.0`, ports: [{ containerPort: 8080 }] }] },
    };
    const v = validateDescriptor(input);
    if (!v.ok) throw new Error(JSON.stringify(v.problems));
    const now = new Date().toISOString();
    const descriptor = { ...v.value, id: randomUUID(), created: now, lastModified: now } as Descriptor;
    await this.descriptors.create(descriptor);
    return descriptor.id;
  }

  /**
   * Requests a deployment of the descriptor and waits until it is DEPLOYED (the replaced version
   * drained and removed) and the app is idle: queue empty, owner released (housekeeping — the
   * prune — done). Throws when it ends otherwise.
   */
  async deployAndSettle(descriptorId: string, appName: string, timeoutMs = 60_000): Promise<DeploymentRecord> {
    const record = await this.requests.deployDescriptor(this.options.namespace, descriptorId);
    await this.workFinished(record.id, timeoutMs);
    const ns = this.options.namespace;
    const final = await waitFor(`deployment ${record.id} to settle`, async () => {
      const r = (await this.store.get(ns, record.id))?.value;
      return r && (r.status === 'DEPLOYED' || r.status === 'FAILURE' || r.status === 'UNDEPLOYED') ? r : undefined;
    }, { timeoutMs, intervalMs: 5 });
    if (final.status !== 'DEPLOYED') throw new Error(`deployment ${record.id} of ${appName} ended ${final.status}: ${final.failureReason ?? ''}`);
    await this.idle(appName, timeoutMs);
    return final;
  }

  /** The app's queue is empty and nobody owns it. */
  async idle(appName: string, timeoutMs = 60_000): Promise<void> {
    const ns = this.options.namespace;
    await waitFor(`${appName} to be idle`, async () => (await this.kv.list(keys.queueOf(ns, appName))).entries.length === 0
      && !(await this.kv.get(keys.owner(ns, appName))), { timeoutMs, intervalMs: 5 });
  }

  /** Resolves on the engine's work-finished event of the deployment (no polling while it runs). */
  private workFinished(id: string, timeoutMs: number): Promise<void> {
    if (this.finished.has(id)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.finishWaiters.delete(id);
        reject(new Error(`deployment ${id} did not finish within ${timeoutMs} ms`));
      }, timeoutMs);
      this.finishWaiters.set(id, () => {
        clearTimeout(timer);
        this.finishWaiters.delete(id);
        resolve();
      });
    });
  }
}
