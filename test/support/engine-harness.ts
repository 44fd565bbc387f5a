import { randomUUID } from 'node:crypto';
import type { ControllerKind, Descriptor, HealthResult, Routing } from '../../src/domain/types.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import { validateDescriptor } from '../../src/domain/descriptor-schema.js';
import { DeploymentEngine } from '../../src/deployer/engine.js';
import { highestVersionInCluster } from '../../src/deployer/adoption.js';
import { EngineEvents } from '../../src/deployer/events.js';
import { noFailpoints, type Failpoints } from '../../src/deployer/failpoints.js';
import { genericProfile } from '../../src/deployer/ingress-profiles.js';
import { DeploymentRequests, type RollbackOutcome } from '../../src/deployer/requests.js';
import { Scheduler } from '../../src/deployer/scheduler.js';
import { HttpRouteTarget, IngressTarget, StableServiceTarget } from '../../src/deployer/traffic/index.js';
import type { HealthChecker, HealthTarget } from '../../src/healthcheck/index.js';
import type { Gate, GateAttempt, GateRequest } from '../../src/gates/types.js';
import { createMemoryLogger } from '../../src/log.js';
import { DeploymentStore, type ChangeOpsHook } from '../../src/store/deployments.js';
import { EtcdDescriptorStore } from '../../src/store/descriptors.js';
import { EnvironmentStore } from '../../src/store/environment.js';
import { MemoryCluster } from './memory-cluster.js';
import { MemoryKv } from './memory-kv.js';
import { waitFor } from './wait.js';

export const FINAL = new Set(['DEPLOYED', 'FAILURE', 'UNDEPLOYED']);

/**
 * The engine and scheduler on an in-memory etcd and cluster, for fast unit tests of the paths
 * that are hard to reach on the real test bed (a write that lands and then fails, a restore that
 * fails, ownership lost between two writes). The same behaviours also have test-bed tests.
 */
export class EngineHarness {
  readonly kv: MemoryKv;
  readonly cluster = new MemoryCluster();
  readonly store: DeploymentStore;
  readonly bus = new EngineEvents();
  readonly log = createMemoryLogger('debug');
  readonly unreadable: string[] = [];
  /** What a gate answers (default: pass); every call is recorded in gateCalls. */
  gate: (gate: Gate, request: GateRequest, signal: AbortSignal) => GateAttempt | Promise<GateAttempt> = () => ({ outcome: 'pass', reason: 'ok', latencyMs: 1 });
  readonly gateCalls: Array<{ gate: Gate; request: GateRequest }> = [];
  /** Health of a pod by version: true (default) or a reason. */
  health: (target: HealthTarget) => true | string = () => true;
  failpoints: Failpoints = noFailpoints;
  readonly engine: DeploymentEngine;
  readonly scheduler: Scheduler;
  private readonly descriptors: EtcdDescriptorStore;
  private readonly requests: DeploymentRequests;

  constructor(options: { cleanupTimeoutSeconds?: number; retainRecords?: number; routing?: Routing; convergenceTimeoutSeconds?: number; defaultControllerKind?: ControllerKind; changeOps?: ChangeOpsHook; kv?: MemoryKv } = {}) {
    this.kv = options.kv ?? new MemoryKv();
    this.descriptors = new EtcdDescriptorStore(this.kv);
    // As src/service.ts wires it: the webhook outbox writes go into the record changes' transactions.
    this.store = new DeploymentStore(this.kv, () => new Date(), options.changeOps ? { changeOps: options.changeOps } : {});
    const checker: HealthChecker = {
      check: async (t: HealthTarget): Promise<HealthResult> => {
        const verdict = this.health(t);
        return { podName: t.podName, healthy: verdict === true, body: '', reason: verdict === true ? 'healthy' : verdict, latencyMs: 1, checkedAt: new Date().toISOString() };
      },
    };
    this.engine = new DeploymentEngine({
      store: this.store, environment: new EnvironmentStore(this.kv), cluster: this.cluster, profile: genericProfile, healthChecker: checker,
      gates: {
        call: async (gate, request, signal) => {
          this.gateCalls.push({ gate, request });
          return this.gate(gate, request, signal);
        },
      },
      bus: this.bus, log: this.log.logger, now: () => new Date(), replicaId: 'unit',
      traffic: [new StableServiceTarget(genericProfile), new IngressTarget(genericProfile, {}), new HttpRouteTarget(genericProfile)],
      failpoints: { hit: (name, signal) => this.failpoints.hit(name, signal) },
      onUnreadable: (key) => this.unreadable.push(key),
      config: {
        defaultDrainSeconds: 0, defaultHealthCheckTimeoutSeconds: 2, defaultDeadlineSeconds: 60, healthCheckIntervalMs: 20,
        cleanupTimeoutSeconds: options.cleanupTimeoutSeconds ?? 2, gateRetryDelayMs: 20, retainRecords: options.retainRecords ?? 50, routing: { defaultRouting: options.routing ?? 'ingress', gateway: 'gateways/shared/web' }, convergenceTimeoutSeconds: options.convergenceTimeoutSeconds ?? 5,
      },
    });
    this.scheduler = new Scheduler({ kv: this.kv, store: this.store, engine: this.engine, bus: this.bus, log: this.log.logger, replicaId: 'unit', leaseTtlSeconds: 10 });
    this.requests = new DeploymentRequests({ descriptors: this.descriptors, deployments: this.store, now: () => new Date(), defaultDeadlineSeconds: 60, defaultControllerKind: options.defaultControllerKind ?? 'Deployment',
      highestVersionInCluster: (ns, app) => highestVersionInCluster(this.cluster, ns, app, new AbortController().signal),
      onRequested: (record, revision) => this.bus.publish({ type: 'requested', record, revision, at: new Date() }),
    });
  }

  async start(): Promise<this> {
    await this.scheduler.start();
    return this;
  }

  async stop(): Promise<void> {
    await this.scheduler.stop(0);
  }

  /** Stores a descriptor (validated like the API does; `raw` skips validation) and requests its deployment. */
  async deploy(fields: Partial<Descriptor> & Record<string, unknown> = {}, raw = false): Promise<DeploymentRecord> {
    const input = {
      namespace: 'ns', appName: 'shop', newVersion: '#', replicas: 2, useHealthCheck: true, frontend: 'shop.example.test',
      podspec: { containers: [{ name: 'app', image: 'example.invalid/app:1', ports: [{ containerPort: 8080 }] }] }, ...fields,
    };
    const validated = raw ? input : (() => {
      const v = validateDescriptor(input);
      if (!v.ok) throw new Error(JSON.stringify(v.problems));
      return v.value;
    })();
    const now = new Date().toISOString();
    const descriptor = { ...validated, id: randomUUID(), created: now, lastModified: now } as Descriptor;
    await this.descriptors.create(descriptor);
    return this.requests.deployDescriptor(descriptor.namespace, descriptor.id);
  }

  async undeploy(id: string, deleteRecord = false): Promise<void> {
    await this.requests.undeploy('ns', id, deleteRecord, 'tester');
  }

  async cancel(id: string, by = 'tester'): Promise<DeploymentRecord> {
    return this.requests.cancel('ns', id, by);
  }

  async rollback(id: string, by = 'tester'): Promise<RollbackOutcome> {
    return this.requests.rollback('ns', id, by);
  }

  async record(id: string): Promise<DeploymentRecord> {
    return (await this.store.get('ns', id))!.value;
  }

  async settled(id: string, statuses = FINAL, timeoutMs = 10_000): Promise<DeploymentRecord> {
    return waitFor(`deployment ${id} to settle`, async () => {
      const r = await this.record(id);
      return statuses.has(r.status) ? r : undefined;
    }, { timeoutMs, intervalMs: 10 });
  }

  /** Waits until the app's queue is empty and nobody owns it (drains, upkeep done). */
  async idle(app = 'shop'): Promise<void> {
    await waitFor('the app to be idle', async () => (await this.kv.list(`queue/ns/${app}/`)).entries.length === 0 && !(await this.kv.get(`owners/ns/${app}`)), { timeoutMs: 10_000, intervalMs: 10 });
  }

  stableSelector(): Record<string, string> | undefined {
    return this.cluster.object('Service', 'ns', 'shop')?.spec?.selector;
  }

  ingressBackend(): string | undefined {
    return this.cluster.object('Ingress', 'ns', 'shop')?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name;
  }
}
