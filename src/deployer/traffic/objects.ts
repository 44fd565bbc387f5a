import type { Cluster, Kind, KubeObject } from '../cluster.js';
import { isAlreadyExists, isConflict, isNotFound } from '../cluster.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { carriesDeployment, DEPLOYMENT_ID_ANNOTATION, isManagedByCutover } from '../labels.js';
import { settledInOrder } from '../../lib/settled.js';
import { ForeignObjectError, type TrafficContext, type TrafficSnapshot } from './target.js';

/**
 * Creates or replaces `desired`, keeping fields the API server owns; retries on 409 with a fresh
 * read. `known` is the object as captured before (saves a round trip on the first attempt); when
 * it has changed since, the fresh read takes its place in `known`, so a rollback puts back what
 * this write replaced, not the older capture (someone else's change in between is kept).
 */
export async function upsert(cluster: Cluster, kind: Kind, desired: KubeObject, signal: AbortSignal, mayManage: (o: KubeObject) => boolean,
  merge: (existing: KubeObject, desired: KubeObject) => KubeObject = mergeDefault, known?: { object: KubeObject | undefined }): Promise<void> {
  const ns = desired.metadata!.namespace!;
  const name = desired.metadata!.name!;
  for (let attempt = 0; ; attempt++) {
    const existing = attempt === 0 && known ? known.object : await cluster.get(kind, ns, name, signal);
    if (known && attempt > 0) known.object = existing;
    if (existing && !mayManage(existing)) throw new ForeignObjectError(kind, ns, name);
    try {
      if (!existing) await cluster.create(kind, desired, signal);
      else await cluster.replace(kind, merge(existing, desired), signal);
      return;
    } catch (err) {
      // Changed, created or deleted since it was read (the capture is read while the pods start):
      // read it again and write over what is there now.
      if ((isConflict(err) || isAlreadyExists(err) || isNotFound(err)) && attempt < 5) continue;
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
      // Changed, created or deleted since the read above: read it again.
      if ((isConflict(err) || isAlreadyExists(err) || isNotFound(err)) && attempt < 5) continue;
      throw err;
    }
  }
}

export async function deleteIfCarries(cluster: Cluster, kind: Kind, namespace: string, name: string, deploymentId: string, signal: AbortSignal): Promise<boolean> {
  const now = await cluster.get(kind, namespace, name, signal);
  if (!now || !carriesDeployment(now.metadata, deploymentId)) return false;
  return cluster.delete(kind, namespace, name, signal);
}


/** The profile's extra objects (Middlewares, …) of a route, marked with the deployment that wrote them. */
export async function upsertExtras(ctx: TrafficContext, extras: KubernetesObject[]): Promise<void> {
  const ours = { [DEPLOYMENT_ID_ANNOTATION]: ctx.deploymentId };
  for (const extra of extras) {
    const marked = { ...extra, metadata: { ...extra.metadata, annotations: { ...(extra.metadata?.annotations ?? {}), ...ours } } } as KubeObject;
    await upsert(ctx.cluster, extra.kind as Kind, marked, ctx.signal, (o) => isManagedByCutover(o.metadata));
  }
}

/** Puts a target's objects back as captured before the switch (only those still carrying this deployment's id). */
export async function restoreSnapshot(ctx: TrafficContext, snapshot: TrafficSnapshot, what: string): Promise<boolean> {
  let changed = false;
  for (const o of snapshot.objects) changed = (await restoreObject(ctx.cluster, o.kind, ctx.descriptor.namespace, o.name, o.object, ctx.deploymentId, ctx.signal)) || changed;
  if (changed) await ctx.log(`${what} of ${ctx.descriptor.appName} put back as it was before this deployment`);
  return changed;
}

/** Reads a target's objects at once (a capture is on the switch's path); a failure is the first in `names`' order, as one after another. */
export async function readAll(names: Array<{ kind: Kind; name: string }>, read: (n: { kind: Kind; name: string }) => Promise<KubeObject | undefined>): Promise<TrafficSnapshot['objects']> {
  const objects = await settledInOrder(names.map(read));
  return names.map(({ kind, name }, i) => ({ kind, name, object: objects[i] }));
}

/**
 * A capture taken at prepare that still holds for a target the switch will not write: it found
 * none of the target's objects (see TrafficTarget.capture).
 */
export function stillAbsent(earlier: TrafficSnapshot | undefined, written: boolean): TrafficSnapshot | undefined {
  return earlier && !written && earlier.objects.every((o) => o.object === undefined) ? earlier : undefined;
}
