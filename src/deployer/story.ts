import type { DeploymentRecord } from '../domain/deployment.js';
import type { EngineEvent } from './events.js';

/** One line of cutover's own log about a deployment: a message and its structured fields. */
export interface StoryLine {
  msg: string;
  fields: {
    event: 'started' | 'switched' | 'succeeded' | 'failed' | 'undeployed' | 'rolled-back' | 'restored';
    namespace: string;
    app: string;
    version: string;
    deploymentId: string;
    /** Milliseconds since the deployment was requested. */
    durationMs: number;
    [detail: string]: unknown;
  };
}

/**
 * Turns the engine's events into the deployment's story in the service log — one info line per
 * milestone (started, switched, succeeded, failed with its reason, undeployed, rolled back,
 * restored), so log aggregation and alerting need not poll the API. Pure; the composition root
 * subscribes it to the bus. Records are the stored ones, so every replica tells only what it did.
 */
export function storyOf(event: EngineEvent): StoryLine | undefined {
  if (event.type === 'switch') {
    return {
      msg: `deployment switched traffic: ${event.appName} ${event.fromVersion || '(none)'} → ${event.toVersion}`,
      fields: {
        event: 'switched', namespace: event.namespace, app: event.appName, version: event.toVersion, deploymentId: event.deploymentId,
        durationMs: since(event.requested, event.at), fromVersion: event.fromVersion, overheadMs: event.overheadMs,
      },
    };
  }
  if (event.type !== 'transition') return undefined;
  const r = event.record;
  const base = (name: StoryLine['fields']['event']) => ({
    event: name, namespace: r.namespace, app: r.appName, version: r.version, deploymentId: r.id, durationMs: since(r.created, event.at),
  });
  if (r.status === 'DEPLOYING' && event.previousStep === 'queued' && r.step !== 'queued') {
    return { msg: `deployment started: ${r.appName} version ${r.version}`, fields: { ...base('started'), queuedMs: since(r.created, event.at), replica: r.owner } };
  }
  if (r.status === 'DEPLOYED' && event.previousStatus === 'DEPLOYING') {
    return { msg: `deployment succeeded: ${r.appName} version ${r.version}`, fields: { ...base('succeeded'), replacedVersion: r.OldVersion || undefined } };
  }
  if (r.status === 'DEPLOYED' && event.previousStatus === 'UNDEPLOYING' && r.restoredFrom) {
    return { msg: `deployment live again after a rollback: ${r.appName} version ${r.version}`, fields: { ...base('restored'), restoredFrom: r.restoredFrom } };
  }
  if (r.status === 'UNDEPLOYING' && event.previousStatus === 'DEPLOYED' && r.rolledBack) {
    return { msg: `deployment rolled back: ${r.appName} version ${r.version} → ${r.rolledBack.toVersion}`, fields: { ...base('rolled-back'), ...rollbackFields(r) } };
  }
  if (r.status === 'FAILURE' && event.previousStatus !== 'FAILURE') {
    return { msg: `deployment failed: ${r.appName} version ${r.version}: ${r.failureReason ?? 'no reason recorded'}`, fields: { ...base('failed'), reason: r.failureReason, cleanupIncomplete: r.cleanupIncomplete } };
  }
  if (r.status === 'UNDEPLOYED' && event.previousStatus !== 'UNDEPLOYED') {
    return { msg: `deployment undeployed: ${r.appName} version ${r.version}`, fields: { ...base('undeployed'), replacedBy: r.replacedBy, rolledBack: r.rolledBack ? true : undefined } };
  }
  return undefined;
}

function rollbackFields(r: DeploymentRecord): Record<string, unknown> {
  const n = r.rolledBack!;
  return { toVersion: n.toVersion, toDeploymentId: n.to, by: n.by, automatic: n.automatic, reason: n.reason, switchMs: n.switchMs };
}

function since(iso: string, at: Date): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? Math.max(0, at.getTime() - t) : 0;
}
