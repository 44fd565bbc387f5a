import { getDomain } from 'tldts';
import type { Descriptor } from '../domain/types.js';
import { isAlreadyExists, isConflict, isNotFound, type Cluster, type Kind, type KubeObject } from './cluster.js';
import {
  DEPLOYMENT_ID_ANNOTATION, carriesDeployment, deploymentIdOf, isManagedByCutover, mayManageIngress, mayManageStableService, VERSION_ANNOTATION,
} from './labels.js';
import { mainIngress, stableService, wwwRedirectIngress } from './manifests.js';
import type { IngressProfile, TrafficDecorations } from './ingress-profiles.js';

/**
 * Where traffic for an app comes in, behind one interface: the stable Service (in-cluster
 * clients) and the Ingress (external clients) today; Gateway API routes can be added as another
 * target without touching the engine. Every object a target writes carries the id of the
 * deployment that wrote it (DEPLOYMENT_ID_ANNOTATION), so a failing deployment can tell — after a
 * crash too — which targets it switched and put back exactly those (invariant I2).
 */
export interface TrafficContext {
  /** The cluster as the app's owner sees it: fenced by its ownership (I5). Targets hold no cluster of their own. */
  cluster: Cluster;
  descriptor: Descriptor;
  /** The version traffic should go to. */
  version: string;
  /** The deployment on whose behalf the target is written (recorded on its objects). */
  deploymentId: string;
  signal: AbortSignal;
  log: (line: string) => Promise<void>;
}

export interface TrafficSnapshot {
  target: string;
  objects: Array<{ kind: Kind; name: string; object: KubeObject | undefined }>;
}

/** Where a target points now: the version (absent for a stable Service that selects none yet) and who pointed it there. */
export interface TrafficPointer {
  version: string | undefined;
  deploymentId: string | undefined;
}

export interface TrafficTarget {
  readonly name: string;
  /** Where this target sends traffic now; undefined when it does not exist. */
  pointer(descriptor: Descriptor, cluster: Cluster, signal: AbortSignal): Promise<TrafficPointer | undefined>;
  capture(ctx: TrafficContext): Promise<TrafficSnapshot>;
  /** Points the target at ctx.version, creating it when absent. Idempotent. `snapshot` is what capture() just read. */
  switchTo(ctx: TrafficContext, snapshot?: TrafficSnapshot): Promise<void>;
  /**
   * Puts back the captured state of every object that still carries ctx.deploymentId (what this
   * deployment wrote); objects someone else changed meanwhile are left alone. Returns whether
   * anything was put back.
   */
  restore(ctx: TrafficContext, snapshot: TrafficSnapshot): Promise<boolean>;
  /** Removes the target's objects that carry ctx.deploymentId (a failed first deployment's). */
  removeOwn(ctx: TrafficContext): Promise<void>;
  /** Removes the target's objects (undeploy; the caller checked they point at ctx.version). */
  remove(ctx: TrafficContext): Promise<void>;
}

/** An object with one of our names exists but was not made by cutover (or Amdatu): we never touch it. */
export class ForeignObjectError extends Error {
  constructor(kind: string, namespace: string, name: string) {
    super(`${kind} ${namespace}/${name} exists but was not created by cutover; it is left alone — rename the app or remove that object`);
    this.name = 'ForeignObjectError';
  }
}

/**
 * Creates or replaces `desired`, keeping fields the API server owns; retries on 409 with a fresh
 * read. `known` is the object as just read (saves a round trip on the first attempt).
 */
async function upsert(cluster: Cluster, kind: Kind, desired: KubeObject, signal: AbortSignal, mayManage: (o: KubeObject) => boolean,
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

function mergeDefault(existing: KubeObject, desired: KubeObject): KubeObject {
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
function mergeService(existing: KubeObject, desired: KubeObject): KubeObject {
  const merged = mergeDefault(existing, desired);
  merged.spec = { ...existing.spec, selector: desired.spec.selector, ports: desired.spec.ports, type: desired.spec.type };
  return merged;
}

/**
 * Puts one object back as captured moments ago, if it still carries `deploymentId` (this
 * deployment wrote it): an object that did not exist before is deleted, one that this switch
 * removed (no frontend any more) is created again. Returns whether it changed anything.
 */
async function restoreObject(cluster: Cluster, kind: Kind, namespace: string, name: string, previous: KubeObject | undefined, deploymentId: string, signal: AbortSignal): Promise<boolean> {
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

async function deleteIfCarries(cluster: Cluster, kind: Kind, namespace: string, name: string, deploymentId: string, signal: AbortSignal): Promise<boolean> {
  const now = await cluster.get(kind, namespace, name, signal);
  if (!now || !carriesDeployment(now.metadata, deploymentId)) return false;
  return cluster.delete(kind, namespace, name, signal);
}

/** The stable Service `{app}`: its selector's `version` is the switch for in-cluster clients. */
export class StableServiceTarget implements TrafficTarget {
  readonly name = 'stable Service';

  constructor(private readonly profile: IngressProfile) {}

  async pointer(d: Descriptor, cluster: Cluster, signal: AbortSignal): Promise<TrafficPointer | undefined> {
    const svc = await cluster.get('Service', d.namespace, d.appName, signal);
    if (!svc || !mayManageStableService(svc.metadata, d.appName)) return undefined;
    return { version: svc.spec?.selector?.version, deploymentId: deploymentIdOf(svc.metadata) };
  }

  async capture(ctx: TrafficContext): Promise<TrafficSnapshot> {
    const { namespace, appName } = ctx.descriptor;
    const svc = await ctx.cluster.get('Service', namespace, appName, ctx.signal);
    if (svc && !mayManageStableService(svc.metadata, appName)) throw new ForeignObjectError('Service', namespace, appName);
    return { target: this.name, objects: [{ kind: 'Service', name: appName, object: svc }] };
  }

  async switchTo(ctx: TrafficContext, snapshot?: TrafficSnapshot): Promise<void> {
    const d = ctx.descriptor;
    const desired = stableService(d, ctx.version, { ...this.profile.decorate(d).serviceAnnotations, [DEPLOYMENT_ID_ANNOTATION]: ctx.deploymentId });
    if (!desired) {
      await ctx.log('the pods have no ports, so there is no stable Service to switch');
      return;
    }
    const known = snapshot?.objects.find((o) => o.kind === 'Service' && o.name === d.appName);
    await upsert(ctx.cluster, 'Service', desired, ctx.signal, (o) => mayManageStableService(o.metadata, d.appName), mergeService, known);
    await ctx.log(`stable Service ${d.appName} now selects version ${ctx.version}`);
  }

  async restore(ctx: TrafficContext, snapshot: TrafficSnapshot): Promise<boolean> {
    let changed = false;
    for (const o of snapshot.objects) changed = (await restoreObject(ctx.cluster, o.kind, ctx.descriptor.namespace, o.name, o.object, ctx.deploymentId, ctx.signal)) || changed;
    if (!changed) return false;
    const previous = snapshot.objects[0]?.object?.spec?.selector?.version;
    await ctx.log(previous ? `stable Service ${ctx.descriptor.appName} restored to version ${previous}` : `stable Service ${ctx.descriptor.appName} put back as it was before this deployment`);
    return true;
  }

  async removeOwn(ctx: TrafficContext): Promise<void> {
    if (await deleteIfCarries(ctx.cluster, 'Service', ctx.descriptor.namespace, ctx.descriptor.appName, ctx.deploymentId, ctx.signal)) {
      await ctx.log(`stable Service ${ctx.descriptor.appName} removed (this deployment created it)`);
    }
  }

  async remove(ctx: TrafficContext): Promise<void> {
    const { namespace, appName } = ctx.descriptor;
    const svc = await ctx.cluster.get('Service', namespace, appName, ctx.signal);
    if (!svc) return;
    if (!mayManageStableService(svc.metadata, appName)) throw new ForeignObjectError('Service', namespace, appName);
    await ctx.cluster.delete('Service', namespace, appName, ctx.signal);
    await ctx.log(`stable Service ${appName} removed`);
  }
}

export interface IngressTargetOptions {
  defaultIngressClassName?: string;
}

/** The Ingress `{app}` (and `{app}-www-redirect`): its backend Service is the switch for external clients. */
export class IngressTarget implements TrafficTarget {
  readonly name = 'Ingress';

  constructor(private readonly profile: IngressProfile, private readonly options: IngressTargetOptions) {}

  async pointer(d: Descriptor, cluster: Cluster, signal: AbortSignal): Promise<TrafficPointer | undefined> {
    const ing = await cluster.get('Ingress', d.namespace, d.appName, signal);
    if (!ing || !mayManageIngress(ing.metadata, d.appName)) return undefined;
    const backend: string | undefined = ing.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name;
    const version = backend?.startsWith(`${d.appName}-`) ? backend.slice(d.appName.length + 1) : ing.metadata?.annotations?.[VERSION_ANNOTATION];
    return { version, deploymentId: deploymentIdOf(ing.metadata) };
  }

  private names(d: Descriptor): Array<{ kind: Kind; name: string }> {
    const decorations = this.profile.decorate(d);
    return [
      { kind: 'Ingress', name: d.appName },
      { kind: 'Ingress', name: `${d.appName}-www-redirect` },
      ...decorations.extraObjects.map((o) => ({ kind: o.kind as Kind, name: o.metadata?.name ?? '' })),
    ];
  }

  async capture(ctx: TrafficContext): Promise<TrafficSnapshot> {
    const d = ctx.descriptor;
    const objects: TrafficSnapshot['objects'] = [];
    for (const { kind, name } of this.names(d)) {
      const object = await ctx.cluster.get(kind, d.namespace, name, ctx.signal);
      if (object && !mayManageIngress(object.metadata, d.appName) && !(kind !== 'Ingress' && isManagedByCutover(object.metadata))) {
        throw new ForeignObjectError(kind, d.namespace, name);
      }
      objects.push({ kind, name, object });
    }
    return { target: this.name, objects };
  }

  async switchTo(ctx: TrafficContext, snapshot?: TrafficSnapshot): Promise<void> {
    const d = ctx.descriptor;
    if (!d.frontend) {
      // No frontend (any more): no Ingress; remove ours if an earlier version had one.
      if (snapshot && snapshot.objects.every((o) => o.object === undefined)) return;
      const removed = await this.removeAll(ctx, d, ctx.signal);
      if (removed.length > 0) await ctx.log(`no frontend configured: removed ${removed.join(', ')}`);
      return;
    }
    const decorations: TrafficDecorations = this.profile.decorate(d);
    const ours = { [DEPLOYMENT_ID_ANNOTATION]: ctx.deploymentId };
    for (const note of decorations.notes) await ctx.log(note);
    const ingressClassName = d.ingressClassName ?? this.options.defaultIngressClassName;
    const tlsSecretName = await this.findTlsSecret(ctx, d, ctx.signal);
    await ctx.log(tlsSecretName ? `TLS for ${d.frontend} with secret ${tlsSecretName}` : `no TLS secret found for ${d.frontend} (looked for ${this.tlsCandidates(d).join(', ')}); serving plain HTTP`);
    for (const extra of decorations.extraObjects) {
      const marked = { ...extra, metadata: { ...extra.metadata, annotations: { ...(extra.metadata?.annotations ?? {}), ...ours } } };
      await upsert(ctx.cluster, extra.kind as Kind, marked, ctx.signal, (o) => isManagedByCutover(o.metadata));
    }
    const www = wwwRedirectIngress({ descriptor: d, version: ctx.version, ingressClassName, tlsSecretName, annotations: { ...decorations.wwwIngressAnnotations, ...ours } });
    const knownOf = (name: string) => snapshot?.objects.find((o) => o.kind === 'Ingress' && o.name === name);
    if (www) await upsert(ctx.cluster, 'Ingress', www, ctx.signal, (o) => mayManageIngress(o.metadata, d.appName), mergeDefault, knownOf(www.metadata!.name!));
    else await this.deleteIfOurs(ctx, 'Ingress', d, `${d.appName}-www-redirect`, ctx.signal);
    const main = mainIngress({ descriptor: d, version: ctx.version, ingressClassName, tlsSecretName, annotations: { ...decorations.ingressAnnotations, ...ours } });
    if (!main) {
      await ctx.log('the pods have no ports, so no Ingress is created for the frontend');
      return;
    }
    await upsert(ctx.cluster, 'Ingress', main, ctx.signal, (o) => mayManageIngress(o.metadata, d.appName), mergeDefault, knownOf(d.appName));
    await ctx.log(`Ingress ${d.appName} now routes ${d.frontend} to ${d.appName}-${ctx.version}`);
  }

  async restore(ctx: TrafficContext, snapshot: TrafficSnapshot): Promise<boolean> {
    let changed = false;
    for (const o of snapshot.objects) changed = (await restoreObject(ctx.cluster, o.kind, ctx.descriptor.namespace, o.name, o.object, ctx.deploymentId, ctx.signal)) || changed;
    if (changed) await ctx.log(`Ingress of ${ctx.descriptor.appName} put back as it was before this deployment`);
    return changed;
  }

  async removeOwn(ctx: TrafficContext): Promise<void> {
    const d = ctx.descriptor;
    const removed: string[] = [];
    const candidates = [
      { kind: 'Ingress' as Kind, name: d.appName }, { kind: 'Ingress' as Kind, name: `${d.appName}-www-redirect` },
      ...this.profile.possibleExtraObjects(d).map((o) => ({ kind: o.kind as Kind, name: o.name })),
    ];
    for (const { kind, name } of candidates) {
      if (await deleteIfCarries(ctx.cluster, kind, d.namespace, name, ctx.deploymentId, ctx.signal).catch((err: unknown) => {
        if (kind !== 'Ingress' && isNotFound(err)) return false; // the CRD may not be installed
        throw err;
      })) removed.push(`${kind} ${name}`);
    }
    if (removed.length > 0) await ctx.log(`removed ${removed.join(', ')} (this deployment created them)`);
  }

  async remove(ctx: TrafficContext): Promise<void> {
    const removed = await this.removeAll(ctx, ctx.descriptor, ctx.signal);
    if (removed.length > 0) await ctx.log(`removed ${removed.join(', ')}`);
  }

  private async removeAll(ctx: TrafficContext, d: Descriptor, signal: AbortSignal): Promise<string[]> {
    const removed: string[] = [];
    for (const name of [d.appName, `${d.appName}-www-redirect`]) {
      if (await this.deleteIfOurs(ctx, 'Ingress', d, name, signal)) removed.push(`Ingress ${name}`);
    }
    // Objects the profile may have made for any feature, whether or not the current descriptor uses it.
    for (const { kind, name } of this.profile.possibleExtraObjects(d)) {
      const existing = await ctx.cluster.get(kind as Kind, d.namespace, name, signal).catch(() => undefined);
      if (existing && isManagedByCutover(existing.metadata)) {
        await ctx.cluster.delete(kind as Kind, d.namespace, name, signal);
        removed.push(`${kind} ${name}`);
      }
    }
    return removed;
  }

  private async deleteIfOurs(ctx: TrafficContext, kind: Kind, d: Descriptor, name: string, signal: AbortSignal): Promise<boolean> {
    const existing = await ctx.cluster.get(kind, d.namespace, name, signal);
    if (!existing) return false;
    if (!mayManageIngress(existing.metadata, d.appName)) throw new ForeignObjectError(kind, d.namespace, name);
    return ctx.cluster.delete(kind, d.namespace, name, signal);
  }

  /** The contract's lookup order: tlsSecretName, a secret named like the host, the registrable domain. */
  private tlsCandidates(d: Descriptor): string[] {
    const host = d.frontend!.replace(/^\*\./, '');
    const domain = getDomain(host) ?? undefined;
    return [...new Set([d.tlsSecretName, host, domain].filter((x): x is string => !!x))];
  }

  private async findTlsSecret(ctx: TrafficContext, d: Descriptor, signal: AbortSignal): Promise<string | undefined> {
    for (const name of this.tlsCandidates(d)) {
      if (await ctx.cluster.secretExists(d.namespace, name, signal)) return name;
    }
    return undefined;
  }
}
