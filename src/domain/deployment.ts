import type { Descriptor, HealthResult } from './types.js';

export type DeploymentStatus = 'DEPLOYING' | 'DEPLOYED' | 'UNDEPLOYING' | 'UNDEPLOYED' | 'FAILURE';

/** Statuses after which nothing more happens to a record on its own. */
export const FINAL_STATUSES: ReadonlySet<DeploymentStatus> = new Set(['DEPLOYED', 'FAILURE', 'UNDEPLOYED']);

/**
 * Steps a deployment goes through, in order; `step` in the record names the current one.
 * `switching-traffic` and `rolling-back` are the only steps during which traffic may move (the
 * invariant observer relies on that); undeploys and drains use `removing`. Named so logs, the
 * websocket and metrics speak one language.
 */
export type DeploymentStep =
  | 'queued'
  | 'preparing'
  | 'creating-resources'
  | 'waiting-for-pods'
  | 'health-checking'
  | 'gating'
  | 'switching-traffic'
  | 'deployed'
  | 'rolling-back'
  | 'failed'
  | 'draining'
  | 'removing'
  | 'undeployed';

/** The forward steps of a deployment, in order: a resumed run never records an earlier one than it reached. */
export const FORWARD_STEPS: readonly DeploymentStep[] = ['queued', 'preparing', 'creating-resources', 'waiting-for-pods', 'health-checking', 'gating', 'switching-traffic'];

/**
 * The step to record when a run reaches `next`: the later of it and the step already recorded.
 * A deployment resumed after it began switching replays its (idempotent) earlier steps, but its
 * record keeps saying `switching-traffic`: traffic may already point at it (invariant I4).
 */
export function laterStep(current: DeploymentStep, next: DeploymentStep): DeploymentStep {
  const a = FORWARD_STEPS.indexOf(current);
  const b = FORWARD_STEPS.indexOf(next);
  return a >= 0 && b >= 0 && a > b ? current : next;
}

/**
 * `rollback`: switch traffic back to the version the item's (live) deployment replaced, while that
 * version is still draining. Its work id is rollbackWorkId(deploymentId): one per deployment.
 */
export type WorkKind = 'deploy' | 'undeploy' | 'rollback';

/** The one queue item that asks for an instant rollback of a live deployment (a fixed key, so the drain can guard on it). */
export function rollbackWorkId(deploymentId: string): string {
  return `rollback-${deploymentId}`;
}

/** When each main step was reached (ISO timestamps). */
export interface StepTimes {
  queued?: string;
  started?: string;
  resourcesCreated?: string;
  podsReady?: string;
  healthy?: string;
  switched?: string;
  finished?: string;
  drainStarted?: string;
  /** Traffic had moved to this version (every target that can tell said so); the replaced version's drain counts from here. */
  converged?: string;
  removed?: string;
  /** The pre-switch gates passed. */
  gated?: string;
  /** The post-switch checks passed. */
  checked?: string;
  /** Traffic was switched back from this deployment to the one it replaced (instant rollback). */
  rolledBack?: string;
  /** This deployment became live again after an instant rollback of the one that replaced it. */
  restored?: string;
}

/** What an instant rollback did, on the deployment that was rolled back. */
export interface RollbackNote {
  /** The deployment (and version) traffic went back to. */
  to: string;
  toVersion: string;
  /** Who asked (the caller's identity), or "post-switch check" for an automatic rollback. */
  by: string;
  automatic: boolean;
  reason: string;
  requested: string;
  /** Milliseconds from the start of the switch back until every traffic target was written. */
  switchMs?: number;
}

export interface DeploymentRecord {
  id: string;
  created: string;
  lastModified: string;
  namespace: string;
  appName: string;
  /** The version this deployment brings up (already resolved when the record is created). */
  version: string;
  status: DeploymentStatus;
  step: DeploymentStep;
  /** The copy of the descriptor this deployment uses (redeploys start from it). */
  descriptor: Descriptor;
  /** The version this deployment replaced (Amdatu's capitalised field); "" when none. */
  OldVersion: string;
  failureReason?: string;
  /** Names of environment variables injected from /deployer/environment (values are never returned). */
  injectedEnvironment?: string[];
  times: StepTimes;
  /** Absolute deadline of the current work (deploy or undeploy). */
  deadline?: string;
  /** Id of the deployment that replaced this one. */
  replacedBy?: string;
  /**
   * Id of the deployment that was live when this one prepared: the one it replaces if it succeeds
   * (its old version is drained after the switch), and the one a rollback switches traffic back to.
   */
  replaces?: string;
  /** Id of the deployment this one redeploys. */
  redeployOf?: string;
  /** Traffic went back from this deployment to the one it replaced while that one drained. */
  rolledBack?: RollbackNote;
  /** Id of the deployment whose instant rollback made this one live again. */
  restoredFrom?: string;
  /** The cutover replica that last worked on this record (diagnostics, and takeover detection). */
  owner?: string;
  /** Delete the record once its undeploy finished (DELETE …?deleteDeployment=true). */
  deleteWhenUndeployed?: boolean;
  /** A failure's cleanup could not remove everything; the app's owner reconciles the rest. */
  cleanupIncomplete?: boolean;
  /**
   * This record stands for a version another deployer left running, found and adopted on the
   * app's first deployment by cutover (it is drained and removed like one of cutover's own).
   */
  adopted?: { from: 'amdatu'; objects: string[]; at: string };
  /** Imported from another deployer's data (`cutover-admin import-amdatu`), not deployed by cutover. */
  importedFrom?: 'amdatu';
  /** The status the record had there, when it was imported with another one (docs/migrating-from-amdatu.md). */
  originalStatus?: DeploymentStatus;
  /** The cluster this deployment runs in (docs/clusters.md); absent on records written before clusters existed (the default cluster). */
  cluster?: string;
  /** The release this deployment belongs to: an environment's deployments of one version, one per cluster. */
  release?: string;
  /** The live deployment whose version this one re-creates on a cluster that lost it (`cutover sync`); same version. */
  restores?: string;
  /** The images the pods ran, with the digest the kubelet resolved each tag to (what a promotion deploys). */
  images?: DeployedImage[];
  /** What a deploy of `release` to an environment was promoted from. */
  promotedFrom?: { release: string; environment: string };
}

/** One container's image as deployed: the reference in the pod spec and the digest its pods ran. */
export interface DeployedImage {
  container: string;
  image: string;
  /** "sha256:…", when the cluster reported one. */
  digest?: string;
}

/** The app's one DEPLOYED record, kept under `live/{ns}/{app}` and changed only with record statuses. */
export interface LivePointer {
  deploymentId: string;
  version: string;
}

/** A unit of pending work for one app; the app's owner runs them one at a time in arrival order. */
export interface QueueItem {
  /** Key of the item; a deploy uses its deployment id, an undeploy a fresh id. */
  workId: string;
  kind: WorkKind;
  deploymentId: string;
  enqueued: string;
  /** For undeploys: delete the record when done (DELETE …?deleteDeployment=true). */
  deleteRecord?: boolean;
  /** For rollbacks: who asked. */
  by?: string;
  /** The stored item could not be parsed: it is removed without acting on it. */
  unreadable?: boolean;
}

/** One line of a deployment's log, or one change of its status/step. */
export type DeploymentEvent =
  | { seq: number; time: string; type: 'log'; message: string }
  | { seq: number; time: string; type: 'status'; status: DeploymentStatus; step: DeploymentStep };

/** The latest health-check answer of one pod, as stored and returned by /healthcheckdata. */
export interface PodHealth extends HealthResult {
  /** Amdatu-compatible summary string (its clients read `value`). */
  value: string;
}
