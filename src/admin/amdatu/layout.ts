import type { V2Node } from './etcd-v2.js';

/**
 * The Amdatu deployer's etcd v2 layout (reference §7.1), read from the trees the v2 API returns:
 *
 *   /deployer/descriptors/{ns}/{appName}/{descriptorId}   descriptor JSON
 *   /deployer/deployments/{ns}/{appName}/{deploymentId}   deployment JSON
 *   /deployer/logs/{ns}/{deploymentId}                     the whole log, plain text
 *   /deployer/healthcheckdata/{ns}/{deploymentId}/{pod}    latest health answer of a pod
 *   /deployer/environment/{NAME}                           injected environment values
 *
 * Pure: no I/O. Anything not in that shape is returned as a problem with its key, never dropped.
 */

export const ORIGINAL_DIRS = {
  descriptors: '/deployer/descriptors',
  deployments: '/deployer/deployments',
  logs: '/deployer/logs',
  health: '/deployer/healthcheckdata',
  environment: '/deployer/environment',
} as const;

export type OriginalTrees = { -readonly [K in keyof typeof ORIGINAL_DIRS]?: V2Node | undefined };

export interface SourceEntry {
  /** The v2 key, e.g. /deployer/deployments/shop/web/7f…. */
  key: string;
  value: string;
}

/** A descriptor or deployment: its namespace, app and id as the key names them. */
export interface SourceItem extends SourceEntry {
  namespace: string;
  appName: string;
  id: string;
}

export interface SourceProblem {
  key: string;
  reason: string;
}

export interface OriginalData {
  descriptors: SourceItem[];
  deployments: SourceItem[];
  /** By `{ns}/{deploymentId}`. */
  logs: Map<string, SourceEntry>;
  /** By `{ns}/{deploymentId}`: one entry per pod. */
  health: Map<string, Array<SourceEntry & { podName: string }>>;
  /** Direct children of /deployer/environment with a value; `name` is the key's last segment. */
  environment: Array<SourceEntry & { name: string }>;
  /** Directories under /deployer/environment: the original read only direct values (a directory became an empty variable). */
  environmentDirectories: string[];
  /** Keys that are not in the original's shape (a value where a directory belongs, or the reverse). */
  problems: SourceProblem[];
}

/** The lookup key of a deployment's log and health data. */
export const recordRef = (namespace: string, id: string): string => `${namespace}/${id}`;

/**
 * The values exactly `depth` levels below `root`, with their path segments. Deeper or shallower
 * values, and directories at the value level, are problems; empty directories (left behind by the
 * original's deletes) are not.
 */
export function valuesAtDepth(root: V2Node | undefined, depth: number, problems: SourceProblem[]): Array<SourceEntry & { segments: string[] }> {
  const out: Array<SourceEntry & { segments: string[] }> = [];
  if (!root) return out;
  if (!root.dir) {
    problems.push({ key: root.key, reason: 'a value where the original kept a directory' });
    return out;
  }
  const walk = (node: V2Node, level: number): void => {
    for (const child of node.nodes ?? []) {
      if (level === depth) {
        if (child.dir) problems.push({ key: child.key, reason: 'a directory where the original kept a value' });
        else out.push({ key: child.key, value: child.value ?? '', segments: segmentsBelow(root.key, child.key) });
      } else if (child.dir) {
        walk(child, level + 1);
      } else {
        problems.push({ key: child.key, reason: `a value ${level} level(s) below ${root.key}, where the original kept directories ${depth} levels deep` });
      }
    }
  };
  walk(root, 1);
  return out;
}

function segmentsBelow(rootKey: string, key: string): string[] {
  return key.slice(rootKey.length).split('/').filter((s) => s.length > 0);
}

/** Sorts the trees' contents into the original's kinds of data. */
export function readOriginalLayout(trees: OriginalTrees): OriginalData {
  const problems: SourceProblem[] = [];
  const items = (root: V2Node | undefined): SourceItem[] => valuesAtDepth(root, 3, problems).map((e) => {
    const [namespace, appName, id] = e.segments as [string, string, string];
    return { key: e.key, value: e.value, namespace, appName, id };
  });
  const descriptors = items(trees.descriptors);
  const deployments = items(trees.deployments);

  const logs = new Map<string, SourceEntry>();
  for (const e of valuesAtDepth(trees.logs, 2, problems)) {
    const [namespace, id] = e.segments as [string, string];
    logs.set(recordRef(namespace, id), { key: e.key, value: e.value });
  }

  const health = new Map<string, Array<SourceEntry & { podName: string }>>();
  for (const e of valuesAtDepth(trees.health, 3, problems)) {
    const [namespace, id, podName] = e.segments as [string, string, string];
    const ref = recordRef(namespace, id);
    health.set(ref, [...(health.get(ref) ?? []), { key: e.key, value: e.value, podName }]);
  }

  const environment: OriginalData['environment'] = [];
  const environmentDirectories: string[] = [];
  const envRoot = trees.environment;
  if (envRoot && !envRoot.dir) problems.push({ key: envRoot.key, reason: 'a value where the original kept a directory' });
  for (const child of envRoot?.dir ? envRoot.nodes ?? [] : []) {
    const name = child.key.slice(child.key.lastIndexOf('/') + 1);
    if (child.dir) environmentDirectories.push(child.key);
    else environment.push({ key: child.key, value: child.value ?? '', name });
  }

  return { descriptors, deployments, logs, health, environment, environmentDirectories, problems };
}
