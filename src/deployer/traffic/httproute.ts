import type { Descriptor } from '../../domain/types.js';
import { isNotFound, type Cluster, type Kind, type KubeObject } from '../cluster.js';
import type { IngressProfile } from '../ingress-profiles.js';
import { DEPLOYMENT_ID_ANNOTATION, deploymentIdOf, isManagedByCutover, VERSION_ANNOTATION } from '../labels.js';
import { mainRoute, wwwRedirectRoute, type ParentRef, type RouteFilter } from '../manifests.js';
import { deleteIfCarries, mergeDefault, readAll, restoreSnapshot, stillAbsent, upsert, upsertExtras } from './objects.js';
import { ForeignObjectError, type Convergence, type TrafficContext, type TrafficPointer, type TrafficSnapshot, type TrafficTarget } from './target.js';

/** Routes cutover may change: made by cutover for this app (the Amdatu deployer never made any). */
function mayManageRoute(o: KubeObject, app: string): boolean {
  return isManagedByCutover(o.metadata) && o.metadata?.labels?.['app'] === app;
}

/**
 * The Gateway API HTTPRoute `{app}` (and `{app}-www-redirect`): its backendRef is the switch for
 * external clients routed by a Gateway. One write moves the backend, the version tag and the filters
 * together. The controller says when it has applied a route (status.parents[].conditions with the
 * route's generation), which is what `converged` reads.
 */
export class HttpRouteTarget implements TrafficTarget {
  readonly name = 'HTTPRoute';
  readonly kinds: readonly Kind[];

  constructor(private readonly profile: IngressProfile) {
    this.kinds = ['HTTPRoute', ...profile.kinds];
  }

  async pointer(d: Descriptor, cluster: Cluster, signal: AbortSignal): Promise<TrafficPointer | undefined> {
    const route = await this.getRoute(cluster, d.namespace, d.appName, signal);
    if (!route || !mayManageRoute(route, d.appName)) return undefined;
    const backend: string | undefined = route.spec?.rules?.[0]?.backendRefs?.[0]?.name;
    const version = backend?.startsWith(`${d.appName}-`) ? backend.slice(d.appName.length + 1) : route.metadata?.annotations?.[VERSION_ANNOTATION];
    return { version, deploymentId: deploymentIdOf(route.metadata) };
  }

  private names(d: Descriptor): Array<{ kind: Kind; name: string }> {
    return [
      { kind: 'HTTPRoute', name: d.appName },
      { kind: 'HTTPRoute', name: `${d.appName}-www-redirect` },
      ...this.profile.decorateRoute(d).extraObjects.map((o) => ({ kind: o.kind as Kind, name: o.metadata?.name ?? '' })),
    ];
  }

  async capture(ctx: TrafficContext, earlier?: TrafficSnapshot): Promise<TrafficSnapshot> {
    const d = ctx.descriptor;
    const unchanged = stillAbsent(earlier, !!d.frontend && ctx.routing.httproute);
    if (unchanged) return unchanged;
    const objects = await readAll(this.names(d), ({ kind, name }) => this.getOptional(ctx.cluster, kind, d.namespace, name, ctx.signal));
    for (const { kind, name, object } of objects) {
      if (object && !mayManageRoute(object, d.appName)) throw new ForeignObjectError(kind, d.namespace, name);
    }
    return { target: this.name, objects };
  }

  async switchTo(ctx: TrafficContext, snapshot?: TrafficSnapshot): Promise<void> {
    const d = ctx.descriptor;
    if (!d.frontend || !ctx.routing.httproute) {
      if (snapshot && snapshot.objects.every((o) => o.object === undefined)) return;
      const removed = await this.removeAll(ctx);
      if (removed.length > 0) await ctx.log(`${d.frontend ? 'the app routes through an Ingress only' : 'no frontend configured'}: removed ${removed.join(', ')}`);
      return;
    }
    const parent = ctx.routing.parent;
    if (!parent) throw new Error('no Gateway configured for the HTTPRoute (descriptor "gateway" or CUTOVER_GATEWAY)');
    const decorations = this.profile.decorateRoute(d);
    for (const note of decorations.notes) await ctx.log(note);
    const ours = { [DEPLOYMENT_ID_ANNOTATION]: ctx.deploymentId };
    await upsertExtras(ctx, decorations.extraObjects);
    const knownOf = (name: string) => snapshot?.objects.find((o) => o.kind === 'HTTPRoute' && o.name === name);
    const manage = (o: KubeObject) => mayManageRoute(o, d.appName);
    const www = wwwRedirectRoute({ descriptor: d, version: ctx.version, parent, annotations: ours });
    if (www) await upsert(ctx.cluster, 'HTTPRoute', www as KubeObject, ctx.signal, manage, mergeDefault, knownOf(`${d.appName}-www-redirect`));
    else await this.deleteIfOurs(ctx, `${d.appName}-www-redirect`);
    const main = mainRoute({ descriptor: d, version: ctx.version, parent, annotations: ours, filters: this.filters(d, ctx, decorations.filters) });
    if (!main) {
      await ctx.log('the pods have no ports, so no HTTPRoute is created for the frontend');
      return;
    }
    await upsert(ctx.cluster, 'HTTPRoute', main as KubeObject, ctx.signal, manage, mergeDefault, knownOf(d.appName));
    await ctx.log(`HTTPRoute ${d.appName} (Gateway ${describeParent(parent)}) now routes ${d.frontend} to ${d.appName}-${ctx.version}`);
  }

  /** Standard filters first (response headers: the descriptor's and the version tag), then the profile's. */
  private filters(d: Descriptor, ctx: TrafficContext, fromProfile: RouteFilter[]): RouteFilter[] {
    const set = d.additionHttpHeaders.map((h) => ({ name: h.Header, value: h.Value }));
    if (ctx.routing.versionHeader) set.push({ name: ctx.routing.versionHeader, value: ctx.version });
    return [...(set.length > 0 ? [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set } }] : []), ...fromProfile];
  }

  async restore(ctx: TrafficContext, snapshot: TrafficSnapshot): Promise<boolean> {
    return restoreSnapshot(ctx, snapshot, 'HTTPRoute');
  }

  async removeOwn(ctx: TrafficContext): Promise<void> {
    const d = ctx.descriptor;
    const removed: string[] = [];
    for (const { kind, name } of [{ kind: 'HTTPRoute' as Kind, name: d.appName }, { kind: 'HTTPRoute' as Kind, name: `${d.appName}-www-redirect` }, ...this.profile.possibleRouteObjects(d)]) {
      if (await deleteIfCarries(ctx.cluster, kind, d.namespace, name, ctx.deploymentId, ctx.signal).catch(notServed)) removed.push(`${kind} ${name}`);
    }
    if (removed.length > 0) await ctx.log(`removed ${removed.join(', ')} (this deployment created them)`);
  }

  async remove(ctx: TrafficContext): Promise<void> {
    const removed = await this.removeAll(ctx);
    if (removed.length > 0) await ctx.log(`removed ${removed.join(', ')}`);
  }

  /**
   * Applied when the route points at ctx.version and, for our Gateway, the controller reports it
   * Accepted with its references resolved, at the route's current generation or later.
   */
  async converged(ctx: TrafficContext): Promise<Convergence> {
    const d = ctx.descriptor;
    if (!d.frontend || !ctx.routing.httproute || !ctx.routing.parent) return { state: 'unverifiable' };
    const route = await this.getRoute(ctx.cluster, d.namespace, d.appName, ctx.signal);
    if (!route) return { state: 'unverifiable' };
    const backend = route.spec?.rules?.[0]?.backendRefs?.[0]?.name;
    if (backend !== `${d.appName}-${ctx.version}`) return { state: 'pending', detail: `the route points at ${backend ?? 'nothing'}` };
    const generation = Number(route.metadata?.generation ?? 0);
    const parent = ctx.routing.parent;
    const status = (route.status?.parents ?? []).find((p: { parentRef?: { name?: string; namespace?: string } }) =>
      p.parentRef?.name === parent.name && (p.parentRef?.namespace ?? d.namespace) === parent.namespace);
    if (!status) return { state: 'pending', detail: 'no status from the Gateway\'s controller yet' };
    const condition = (type: string) => (status.conditions ?? []).find((c: { type: string }) => c.type === type) as { status?: string; observedGeneration?: number; reason?: string } | undefined;
    for (const type of ['Accepted', 'ResolvedRefs']) {
      const c = condition(type);
      if (!c || Number(c.observedGeneration ?? 0) < generation) return { state: 'pending', detail: `${type} not yet reported for generation ${generation}` };
      if (c.status !== 'True') return { state: 'pending', detail: `${type} is ${c.status} (${c.reason ?? 'no reason'})` };
    }
    return { state: 'converged' };
  }

  private async removeAll(ctx: TrafficContext): Promise<string[]> {
    const d = ctx.descriptor;
    const removed: string[] = [];
    for (const name of [d.appName, `${d.appName}-www-redirect`]) {
      if (await this.deleteIfOurs(ctx, name)) removed.push(`HTTPRoute ${name}`);
    }
    // After the routes that reference them: objects the profile may have made for the route.
    for (const { kind, name } of this.profile.possibleRouteObjects(d)) {
      const existing = await this.getOptional(ctx.cluster, kind, d.namespace, name, ctx.signal);
      if (existing && isManagedByCutover(existing.metadata)) {
        await ctx.cluster.delete(kind, d.namespace, name, ctx.signal);
        removed.push(`${kind} ${name}`);
      }
    }
    return removed;
  }

  private async deleteIfOurs(ctx: TrafficContext, name: string): Promise<boolean> {
    const d = ctx.descriptor;
    const existing = await this.getOptional(ctx.cluster, 'HTTPRoute', d.namespace, name, ctx.signal);
    if (!existing) return false;
    if (!mayManageRoute(existing, d.appName)) throw new ForeignObjectError('HTTPRoute', d.namespace, name);
    return ctx.cluster.delete('HTTPRoute', d.namespace, name, ctx.signal);
  }

  private getRoute(cluster: Cluster, namespace: string, name: string, signal: AbortSignal): Promise<KubeObject | undefined> {
    return this.getOptional(cluster, 'HTTPRoute', namespace, name, signal);
  }

  /** A get that treats an API the cluster does not serve (Gateway API not installed) as "absent". */
  private async getOptional(cluster: Cluster, kind: Kind, namespace: string, name: string, signal: AbortSignal): Promise<KubeObject | undefined> {
    return cluster.get(kind, namespace, name, signal).catch(notServed);
  }
}

function notServed(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

function describeParent(p: ParentRef): string {
  return `${p.namespace}/${p.name}${p.sectionName ? `/${p.sectionName}` : ''}`;
}
