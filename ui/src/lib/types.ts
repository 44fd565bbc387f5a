/** What the UI reads from the API (the fields it uses; see src/domain and src/api/overview.ts). */

// The server's own types where the UI reads them as the API serves them: one definition, no drift.
import type { DeploymentStatus, PodHealth, StepTimes } from '../../../src/domain/deployment.js';
export type { DeploymentStatus, PodHealth, StepTimes };

export interface DeploymentSummary {
  id: string;
  version: string;
  status: DeploymentStatus;
  step: string;
  created: string;
  finished?: string;
  failureReason?: string;
  requestedBy?: string;
}

export interface AppSummary {
  namespace: string;
  appName: string;
  live?: { deploymentId: string; version: string };
  latest?: DeploymentSummary;
  urls: string[];
  descriptorCount: number;
  revision: string;
  removed?: boolean;
  /** Several clusters: what runs in each. */
  clusters?: Array<{ cluster: string; live?: { deploymentId: string; version: string }; latest?: DeploymentSummary }>;
}

export interface Caller {
  identity: string;
  auth: string;
  namespaces: '*' | string[];
}

export interface Overview {
  caller: Caller;
  namespaces: Array<{ namespace: string; apps: AppSummary[] }>;
  revision: string;
}

export interface Descriptor {
  id: string;
  namespace: string;
  appName: string;
  newVersion: string;
  created: string;
  lastModified: string;
  frontend?: string;
  tlsSecretName?: string;
  [field: string]: unknown;
}

export interface DeploymentRecord {
  id: string;
  created: string;
  lastModified: string;
  namespace: string;
  appName: string;
  version: string;
  status: DeploymentStatus;
  step: string;
  descriptor: Descriptor;
  OldVersion: string;
  failureReason?: string;
  injectedEnvironment?: string[];
  times: StepTimes;
  replacedBy?: string;
  replaces?: string;
  redeployOf?: string;
  /** The cluster it runs in, with a cluster registry (docs/clusters.md). */
  cluster?: string;
  release?: string;
}

export interface AuditEntry {
  id: string;
  time: string;
  namespace: string;
  app?: string;
  action: string;
  method: string;
  path: string;
  actor: { identity: string; auth: string; team?: string; keyId?: string };
  target?: { descriptorId?: string; deploymentId?: string };
  status: number;
  outcome: 'success' | 'failure';
  error?: string;
}

export type StreamFrame =
  | { type: 'status'; current: true; time: string; status: DeploymentStatus; step: string }
  | { type: 'status'; seq: number; time: string; status: DeploymentStatus; step: string }
  | { type: 'log'; seq: number; time: string; message: string };
