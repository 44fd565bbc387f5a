import type { Cluster, Kind, KubeObject } from '../cluster.js';
import { isAlreadyExists, isConflict } from '../cluster.js';
import { carriesDeployment } from '../labels.js';
import { ForeignObjectError } from './target.js';

/**
 * Creates or replaces `desired`, keeping fields the API server owns; retries on 409 with a fresh
 * read. `known` is the object as just read (saves a round trip on the first attempt).
 */
export async function upsert(cluster: Cluster, kind: Kind, desired: KubeObject, signal: AbortSignal, mayManage: (o: KubeObject) => boolean,
  merge: (existing: KubeObject, desired: KubeObject) => KubeObject = mergeDefault, known?: { object: KubeObject | undefined }): Promise<void> {
  const ns = desired.metadata!.namespace!;
  const name = desired.metadata!.name!;
  for (let attempt = 0; ; attempt++) {
    const existing = attempt === 0 && known ? known.object : await cluster.get(kind, ns, name, signal);
    if (existing && !mayManage(existing)) throw new ForeignObjectError(kind, ns, name);
    try {
      if (!existing) await cluster.create(kind, desired, signal);
      else await cluster.replace(kind, merge(existing, desired), signal);
      return;
    } catch (err) {
      if ((isConflict(err) || isAlreadyExists(err)) && attempt < 5) continue;
      throw err;
    }
  }
}

export function mergeDefault(existing: KubeObject, desired: KubeObject): KubeObject {
  return {
    ...desired,
    metadata: {
      ...existing.metadata,
      labels: { ...(existing.metadata?.labels ?? {}), ...(desired.metadata?.labels ?? {}) },
      annotations: { ...(existing.metadata?.annotations ?? {}), ...(desired.metadata?.annotations ?? {}) },
    },
  };
}

/** Services keep their cluster IP (immutable) and other allocated fields. */
export function mergeService(existing: KubeObject, desired: KubeObject): KubeObject {
  const merged = mergeDefault(existing, desired);
  merged.spec = { ...existing.spec, selector: desired.spec.selector, ports: desired.spec.ports, type: desired.spec.type };
  return merged;
}

/**
 * Puts one object back as captured moments ago, if it still carries `deploymentId` (this
 * deployment wrote it): an object that did not exist before is deleted, one that this switch
 * removed (no frontend any more) is created again. Returns whether it changed anything.
 */
export async function restoreObject(cluster: Cluster, kind: Kind, namespace: string, name: string, previous: KubeObject | undefined, deploymentId: string, signal: AbortSignal): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    const now = await cluster.get(kind, namespace, name, signal);
    try {
      if (!now) {
        if (!previous) return false;
        const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, managedFields: _mf, ...meta } = previous.metadata ?? {};
        await cluster.create(kind, { ...previous, metadata: meta, status: undefined }, signal);
        return true;
      }
      if (!carriesDeployment(now.metadata, deploymentId)) return false;
      if (!previous) await cluster.delete(kind, namespace, name, signal);
      else await cluster.replace(kind, { ...previous, metadata: { ...previous.metadata, resourceVersion: now.metadata?.resourceVersion } }, signal);
      return true;
    } catch (err) {
      if ((isConflict(err) || isAlreadyExists(err)) && attempt < 5) continue;
      throw err;
    }
  }
}

export async function deleteIfCarries(cluster: Cluster, kind: Kind, namespace: string, name: string, deploymentId: string, signal: AbortSignal): Promise<boolean> {
  const now = await cluster.get(kind, namespace, name, signal);
  if (!now || !carriesDeployment(now.metadata, deploymentId)) return false;
  return cluster.delete(kind, namespace, name, signal);
}

