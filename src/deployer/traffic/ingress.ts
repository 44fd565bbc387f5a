import type { Descriptor } from '../../domain/types.js';
import { isNotFound, type Cluster, type Kind } from '../cluster.js';
import type { IngressProfile, TrafficDecorations } from '../ingress-profiles.js';
import { DEPLOYMENT_ID_ANNOTATION, deploymentIdOf, isManagedByCutover, mayManageIngress, VERSION_ANNOTATION } from '../labels.js';
import { mainIngress, wwwRedirectIngress } from '../manifests.js';
import { deleteIfCarries, mergeDefault, readAll, restoreSnapshot, stillAbsent, upsert, upsertExtras } from './objects.js';
import { ForeignObjectError, type Convergence, type TrafficContext, type TrafficPointer, type TrafficSnapshot, type TrafficTarget } from './target.js';

export interface IngressTargetOptions {
  defaultIngressClassName?: string;
}

/** The Ingress `{app}` (and `{app}-www-redirect`): its backend Service is the switch for external clients. */
export class IngressTarget implements TrafficTarget {
  readonly name = 'Ingress';
  readonly kinds: readonly Kind[];

  constructor(private readonly profile: IngressProfile, private readonly options: IngressTargetOptions) {
    this.kinds = ['Ingress', ...profile.kinds];
  }

  /** An Ingress has no status that says a controller applied it; the traffic probe can tell (convergence.ts). */
  async converged(): Promise<Convergence> {
    return { state: 'unverifiable' };
  }

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

  async capture(ctx: TrafficContext, earlier?: TrafficSnapshot): Promise<TrafficSnapshot> {
    const d = ctx.descriptor;
    const unchanged = stillAbsent(earlier, !!d.frontend && ctx.routing.ingress);
    if (unchanged) return unchanged;
    const objects = await readAll(this.names(d), ({ kind, name }) => ctx.cluster.get(kind, d.namespace, name, ctx.signal));
    for (const { kind, name, object } of objects) {
      if (object && !mayManageIngress(object.metadata, d.appName) && !(kind !== 'Ingress' && isManagedByCutover(object.metadata))) {
        throw new ForeignObjectError(kind, d.namespace, name);
      }
    }
    return { target: this.name, objects };
  }

  async switchTo(ctx: TrafficContext, snapshot?: TrafficSnapshot): Promise<void> {
    const d = ctx.descriptor;
    if (!d.frontend || !ctx.routing.ingress) {
      // No frontend, or it routes through an HTTPRoute only (any more): remove ours if an earlier version had one.
      if (snapshot && snapshot.objects.every((o) => o.object === undefined)) return;
      const removed = await this.removeAll(ctx, d, ctx.signal);
      if (removed.length > 0) await ctx.log(`${d.frontend ? 'the app routes through an HTTPRoute only' : 'no frontend configured'}: removed ${removed.join(', ')}`);
      return;
    }
    const decorations: TrafficDecorations = this.profile.decorate(d, { version: ctx.version, ...(ctx.routing.versionHeader ? { versionHeader: ctx.routing.versionHeader } : {}) });
    const ours = { [DEPLOYMENT_ID_ANNOTATION]: ctx.deploymentId };
    for (const note of decorations.notes) await ctx.log(note);
    const ingressClassName = d.ingressClassName ?? this.options.defaultIngressClassName;
    const candidates = await tlsCandidates(d);
    const tlsSecretName = await this.findTlsSecret(ctx, d, candidates, ctx.signal);
    await ctx.log(tlsSecretName ? `TLS for ${d.frontend} with secret ${tlsSecretName}` : `no TLS secret found for ${d.frontend} (looked for ${candidates.join(', ')}); serving plain HTTP`);
    await upsertExtras(ctx, decorations.extraObjects);
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
    return restoreSnapshot(ctx, snapshot, 'Ingress');
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

  private async findTlsSecret(ctx: TrafficContext, d: Descriptor, candidates: string[], signal: AbortSignal): Promise<string | undefined> {
    for (const name of candidates) {
      if (await ctx.cluster.secretExists(d.namespace, name, signal)) return name;
    }
    return undefined;
  }
}

/**
 * The contract's lookup order: tlsSecretName, a secret named like the host, the registrable domain.
 * tldts (the public suffix list, ≈ 1.5 MiB resident) is loaded by the first app with a frontend.
 */
async function tlsCandidates(d: Descriptor): Promise<string[]> {
  const { getDomain } = await import('tldts');
  const host = d.frontend!.replace(/^\*\./, '');
  const domain = getDomain(host) ?? undefined;
  return [...new Set([d.tlsSecretName, host, domain].filter((x): x is string => !!x))];
}
