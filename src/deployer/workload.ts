import type { V1Pod } from '@kubernetes/client-node';
import type { Descriptor } from '../domain/types.js';
import type { DeploymentRecord } from '../domain/deployment.js';
import { versionedName } from '../domain/names.js';
import { isAlreadyExists, type Cluster, type Kind, type KubeObject } from './cluster.js';
import type { EngineDeps, RunContext } from './context.js';
import type { KubernetesObject } from '@kubernetes/client-node';
import { routingPlan } from './routing.js';
import { DeploymentFailure, WorkInterrupted } from './errors.js';
import { DEPLOYMENT_ID_ANNOTATION, carriesDeployment, deploymentIdOf, isAmdatuVersioned, mayManageStableService, mayManageVersioned } from './labels.js';
import { placeholderStableService, versionedService, versionedWorkload, type DeploymentFacts } from './manifests.js';
import { evaluatePods, type ReadyPod } from './readiness.js';
import type { Deadline } from '../lib/deadline.js';
import { settledInOrder } from '../lib/settled.js';
import { ForeignObjectError } from './traffic/index.js';

/** The versioned workload and Service of a deployment: creating, waiting for and removing them. */

export const WORKLOAD_KINDS: Kind[] = ['Deployment', 'ReplicationController'];
const VERSIONED_KINDS: Kind[] = [...WORKLOAD_KINDS, 'Service'];

/**
 * Refuses to start when an object under one of this deployment's names exists and is not its own
 * (another deployment of the same version, or someone else's): nothing is changed then.
 */
export async function assertNamesFree(ctx: RunContext, d: Descriptor, version: string, signal: AbortSignal): Promise<void> {
  const name = versionedName(d.appName, version);
  // Read at once, judged in a fixed order (the same answer as one after the other).
  const found = await settledInOrder(VERSIONED_KINDS.map((kind) => ctx.cluster.get(kind, d.namespace, name, signal)));
  for (const [i, kind] of VERSIONED_KINDS.entries()) {
    const existing = found[i];
    if (existing && !carriesDeployment(existing.metadata, ctx.journal.record.id)) throw nameTaken(kind, name, existing);
  }
}

/** The refusal when an object under one of this deployment's names is not its own. */
function nameTaken(kind: Kind, name: string, existing: KubeObject): DeploymentFailure {
  const owner = deploymentIdOf(existing.metadata);
  return new DeploymentFailure(`${kind} ${name} already exists (${owner ? `from deployment ${owner}` : 'not created by this deployment'}); nothing was changed`);
}

/**
 * The stable Service as prepare read it, for createVersion: `absent` when it did not exist, `ours`
 * when it existed and cutover may manage it (a foreign one failed prepare), `unknown` when prepare
 * did not read it.
 */
export type StableAtPrepare = 'absent' | 'ours' | 'unknown';

/**
 * Creates what is missing of the new version: the workload `{app}-{version}` and its Service, and
 * on a first deployment the stable Service `{app}` selecting no pods yet (so the switch is a quick
 * selector change rather than a Service creation). Everything carries this deployment's id.
 */
export async function createVersion(ctx: RunContext, facts: DeploymentFacts, signal: AbortSignal, stableAtPrepare: StableAtPrepare = 'unknown'): Promise<void> {
  const d = facts.descriptor;
  const record = ctx.journal.record;
  const service = versionedService(facts, ctx.deps.profile.decorate(d).serviceAnnotations);
  const workloadKind: Kind = d.controllerKind ?? 'Deployment';
  const items: Array<{ kind: Kind; object: KubeObject }> = [{ kind: workloadKind, object: versionedWorkload(facts) as KubeObject }];
  if (service) items.push({ kind: 'Service', object: service as KubeObject });
  for (const extra of versionedExtras(ctx.deps, d, facts.version)) {
    items.push({ kind: extra.kind as Kind, object: { ...extra, metadata: { ...extra.metadata, annotations: { ...(extra.metadata?.annotations ?? {}), [DEPLOYMENT_ID_ANNOTATION]: record.id } } } as KubeObject });
  }
  // The versioned objects and the stable Service are independent: written in parallel. The lines
  // go with the next state change (noted); they are reported in a fixed order.
  const created = settledInOrder(items.map(async ({ kind, object }) => {
    const name = object.metadata!.name!;
    try {
      await ctx.cluster.create(kind, object, signal);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      // Only on resume (or a create that landed although its answer was lost): ours is reused,
      // anything else is refused — assertNamesFree() looked before, this looks again.
      const existing = await ctx.cluster.get(kind, d.namespace, name, signal);
      if (existing && !carriesDeployment(existing.metadata, record.id)) throw nameTaken(kind, name, existing);
      if (!existing) throw err;
      return `${kind} ${name} already exists from this deployment; reusing it`;
    }
    return `Created ${kind} ${name}${kind === workloadKind ? ` with ${d.replicas} replica(s)` : ''}`;
  }));
  const stable = service ? ensureStableService(ctx, d, signal, stableAtPrepare) : Promise.resolve(undefined);
  const [lines, stableLine] = await settledInOrder<string[] | string | undefined>([created, stable]);
  for (const line of lines as string[]) ctx.journal.note(line);
  if (!service) ctx.journal.note('The pods have no ports: no Services are created (a worker app)');
  if (stableLine) ctx.journal.note(stableLine as string);
}

/**
 * The stable Service `{app}`: created selecting no pods when missing; refused when someone else's.
 * What prepare read is trusted to skip a read (created at once, with the versioned objects, when it
 * was absent; left alone when it was ours): should it have changed since, the create meets it and
 * it is read, and the switch's write checks it again in any case.
 */
async function ensureStableService(ctx: RunContext, d: Descriptor, signal: AbortSignal, atPrepare: StableAtPrepare): Promise<string | undefined> {
  const record = ctx.journal.record;
  if (atPrepare === 'ours') return undefined;
  if (atPrepare === 'absent') {
    try {
      await ctx.cluster.create('Service', placeholderStableService(d, record.id) as KubeObject, signal);
      return `Created stable Service ${d.appName} (selecting no pods until the switch)`;
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }
  const stable = await ctx.cluster.get('Service', d.namespace, d.appName, signal);
  if (!stable) {
    await ctx.cluster.create('Service', placeholderStableService(d, record.id) as KubeObject, signal);
    return `Created stable Service ${d.appName} (selecting no pods until the switch)`;
  }
  if (!carriesDeployment(stable.metadata, record.id) && !mayManageStableService(stable.metadata, d.appName)) {
    throw new ForeignObjectError('Service', d.namespace, d.appName);
  }
  return undefined;
}


/** The new version's pods, all Ready, and the resourceVersion the watch saw them at (when known). */
export interface PodsReady {
  pods: ReadyPod[];
  resourceVersion: string | undefined;
}

/** Watches the new version's pods until all are Ready; fails at once on pods that cannot become ready. */
export async function waitForPods(ctx: RunContext, d: Descriptor, version: string, readyBy: Deadline, timeoutS: number): Promise<PodsReady> {
  const signal = readyBy.signal;
  const selector = `app=${d.appName},version=${version}`;
  let lastDetail = '';
  let lastLogged = 0;
  let settle!: (ready: PodsReady) => void;
  let fail!: (err: Error) => void;
  const done = new Promise<PodsReady>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  const onAbort = () => fail(readyBy.expired
    ? new DeploymentFailure(`new version not ready within ${timeoutS} s: ${lastDetail || 'no pods yet'}`)
    : signal.reason instanceof Error ? signal.reason : new WorkInterrupted('stopped'));
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  const watch = await ctx.cluster.watchPods(d.namespace, selector, (pods: V1Pod[], resourceVersion?: string) => {
    const verdict = evaluatePods(pods, d.replicas);
    if (verdict.state === 'ready') settle({ pods: verdict.pods, resourceVersion });
    else if (verdict.state === 'failed') fail(new DeploymentFailure(verdict.reason));
    else if (verdict.detail !== lastDetail) {
      lastDetail = verdict.detail;
      if (Date.now() - lastLogged > 2000) {
        lastLogged = Date.now();
        ctx.journal.note(`Waiting for pods: ${verdict.detail}`);
      }
    }
  });
  try {
    return await done;
  } finally {
    watch.stop();
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Removes the versioned objects of `record`'s version that this record stands for: those carrying
 * its deployment id, or made by the Amdatu deployer under the same name (no id). Never objects of
 * another deployment, never objects cutover did not make.
 */
export async function removeVersion(deps: EngineDeps, cluster: Cluster, record: DeploymentRecord, signal: AbortSignal): Promise<string[]> {
  const { namespace, appName, version } = record;
  const name = versionedName(appName, version);
  // Independent objects: looked at and removed in parallel; reported in a fixed order.
  const versioned = VERSIONED_KINDS.map(async (kind) => {
    const existing = await cluster.get(kind, namespace, name, signal);
    if (!existing || !mayManageVersioned(existing.metadata, appName)) return undefined;
    const id = deploymentIdOf(existing.metadata);
    if (id ? id !== record.id : !isAmdatuVersioned(existing.metadata, appName)) return undefined;
    return await cluster.delete(kind, namespace, name, signal) ? `${kind} ${name}` : undefined;
  });
  const extras = versionedExtraNames(deps, record.descriptor, version).map(async ({ kind, name: extra }) => {
    const existing = await cluster.get(kind, namespace, extra, signal);
    if (!existing || !carriesDeployment(existing.metadata, record.id)) return undefined;
    return await cluster.delete(kind, namespace, extra, signal) ? `${kind} ${extra}` : undefined;
  });
  return (await settledInOrder([...versioned, ...extras])).filter((r): r is string => r !== undefined);
}

/** Controller objects that belong to one version (the profile's, e.g. a version-tag Middleware for the Ingress). */
export function versionedExtras(deps: EngineDeps, d: Descriptor, version: string): KubernetesObject[] {
  const routing = routingPlan(d, deps.config.routing);
  if (!routing.ingress || !routing.versionHeader) return [];
  return deps.profile.versionedObjects(d, version, { versionHeader: routing.versionHeader });
}

export function versionedExtraNames(deps: EngineDeps, d: Descriptor, version: string): Array<{ kind: Kind; name: string }> {
  return versionedExtras(deps, d, version).map((o) => ({ kind: o.kind as Kind, name: o.metadata?.name ?? '' }));
}

export async function workloadExists(cluster: Cluster, namespace: string, appName: string, version: string, signal: AbortSignal): Promise<boolean> {
  const name = versionedName(appName, version);
  for (const kind of WORKLOAD_KINDS) if (await cluster.get(kind, namespace, name, signal)) return true;
  return false;
}
