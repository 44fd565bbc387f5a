import type { Descriptor } from '../../domain/types.js';
import type { Cluster, Kind } from '../cluster.js';
import type { IngressProfile } from '../ingress-profiles.js';
import { DEPLOYMENT_ID_ANNOTATION, deploymentIdOf, mayManageStableService } from '../labels.js';
import { podPorts, stableService } from '../manifests.js';
import { deleteIfCarries, mergeService, restoreObject, upsert } from './objects.js';
import { ForeignObjectError, type Convergence, type TrafficContext, type TrafficPointer, type TrafficSnapshot, type TrafficTarget } from './target.js';

/** The stable Service `{app}`: its selector's `version` is the switch for in-cluster clients. */
export class StableServiceTarget implements TrafficTarget {
  readonly name = 'stable Service';
  readonly kinds: readonly Kind[] = ['Service'];

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

  /** Moved when the Service's ready endpoints are pods of the new version only (the endpoint controller applied the selector). */
  async converged(ctx: TrafficContext): Promise<Convergence> {
    const { namespace, appName } = ctx.descriptor;
    if (!podPorts(ctx.descriptor.podspec).length) return { state: 'unverifiable' };
    // The API server's cache as it is: an answer older than the switch lists old pods ("pending"),
    // and the check is asked again; a consistent read would wait for etcd's progress notification.
    const [endpoints, pods] = await Promise.all([
      ctx.cluster.readyEndpoints(namespace, appName, ctx.signal, 'cached'),
      ctx.cluster.listPods(namespace, `app=${appName},version=${ctx.version}`, ctx.signal, 'cached'),
    ]);
    const fresh = new Set(pods.map((p) => p.status?.podIP).filter((ip): ip is string => !!ip));
    const stale = endpoints.filter((ip) => !fresh.has(ip));
    if (endpoints.length > 0 && stale.length === 0) return { state: 'converged' };
    return { state: 'pending', detail: endpoints.length === 0 ? 'no ready endpoints yet' : `${stale.length} endpoint(s) of the old version still listed` };
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

