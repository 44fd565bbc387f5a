import { EventEmitter } from 'node:events';
import type { DeploymentRecord, DeploymentStatus, DeploymentStep, PodHealth, WorkKind } from '../domain/deployment.js';

/**
 * Every state change of the engine is published here, in-process, after it was stored. The log
 * and the websocket read the stored events (so they work across replicas); metrics and other
 * observers subscribe to this bus.
 */
export type EngineEvent =
  /** `revision`: the etcd revision of the write that stored the change (orders a deployment's events across replicas). */
  | { type: 'transition'; record: DeploymentRecord; previousStatus: DeploymentStatus; previousStep: DeploymentStep; at: Date; revision?: string }
  /** A deployment was requested: its record and queue item were stored (at `revision`) by the replica that served the call. */
  | { type: 'requested'; record: DeploymentRecord; revision: string; at: Date }
  | { type: 'log'; namespace: string; appName: string; deploymentId: string; message: string; at: Date }
  | { type: 'health'; namespace: string; appName: string; deploymentId: string; health: PodHealth; at: Date }
  | { type: 'work-started'; namespace: string; appName: string; deploymentId: string; kind: WorkKind; queuedMs: number; at: Date }
  | { type: 'work-finished'; namespace: string; appName: string; deploymentId: string; kind: WorkKind; at: Date }
  | { type: 'switch'; namespace: string; appName: string; deploymentId: string; fromVersion: string; toVersion: string; overheadMs: number; requested: string; at: Date }
  | { type: 'converged'; namespace: string; appName: string; deploymentId: string; ms: number; complete: boolean; at: Date }
  | { type: 'reconciled'; namespace: string; appName: string; removed: number; unaccounted: number; failedRecords: number; at: Date }
  | { type: 'unreadable'; key: string; where: string; at: Date };

export class EngineEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(100);
  }

  publish(event: EngineEvent): void {
    for (const listener of this.emitter.listeners('event')) {
      try {
        (listener as (e: EngineEvent) => void)(event);
      } catch {
        // an observer must never break the engine
      }
    }
  }

  subscribe(listener: (event: EngineEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }
}
