import type { DeploymentRecord, DeploymentStatus } from './deployment.js';

/**
 * One version of an app deployed to one or more clusters at once — every cluster of an
 * environment, or the one cluster a deploy named — as one deployment record per cluster. The
 * release stores who belongs to it; its status is derived from its deployments' records.
 */
export interface Release {
  id: string;
  namespace: string;
  appName: string;
  version: string;
  /** The environment deployed to; absent when the deploy named a cluster of no single environment. */
  environment?: string;
  members: ReleaseMember[];
  created: string;
  /** Who asked (the caller's identity). */
  by: string;
  /** The descriptor the deployments copied (absent for promotions and redeploys, which copy a record). */
  descriptorId?: string;
  promotedFrom?: { release: string; environment: string };
}

export interface ReleaseMember {
  cluster: string;
  deploymentId: string;
}

/**
 * DEPLOYING while any cluster is; then FAILURE if any cluster failed (or its record is gone);
 * DEPLOYED only when every cluster is; UNDEPLOYING/UNDEPLOYED once replaced or removed.
 */
export type ReleaseStatus = DeploymentStatus;

export function releaseStatus(members: Array<DeploymentRecord | undefined>): ReleaseStatus {
  const statuses = members.map((m) => m?.status);
  if (statuses.includes('DEPLOYING')) return 'DEPLOYING';
  if (statuses.some((s) => s === 'FAILURE' || s === undefined)) return 'FAILURE';
  if (statuses.every((s) => s === 'DEPLOYED')) return 'DEPLOYED';
  if (statuses.includes('UNDEPLOYING')) return 'UNDEPLOYING';
  return 'UNDEPLOYED';
}

/** A release with what its deployments say now. */
export interface ReleaseView extends Release {
  status: ReleaseStatus;
  deployments: Array<{
    cluster: string;
    deploymentId: string;
    status?: DeploymentRecord['status'];
    step?: DeploymentRecord['step'];
    failureReason?: string;
    /** The record is gone (deleted or retained away). */
    missing?: boolean;
  }>;
}


/** What a sync found for one app, and what it did (or, in a dry run, would do). */
export interface SyncItem {
  namespace: string;
  appName: string;
  version: string;
  deploymentId: string;
  /** in-sync: its objects are there; rebuild: re-created (queued); busy: work is queued for the app; skipped: see reason. */
  action: 'in-sync' | 'rebuild' | 'busy' | 'skipped';
  /** The objects found missing. */
  missing?: string[];
  reason?: string;
  /** The deployment that re-creates it (not in a dry run). */
  rebuildId?: string;
}

export interface SyncReport {
  cluster: string;
  dryRun: boolean;
  namespaces: string[];
  items: SyncItem[];
}

