import type { Descriptor } from '../../domain/types.js';
import type { Cluster, Kind, KubeObject } from '../cluster.js';
import type { ParentRef } from '../manifests.js';

/** Which routes carry the frontend's traffic, resolved from the descriptor and the configuration. */
export interface RoutingPlan {
  ingress: boolean;
  httproute: boolean;
  /** The Gateway HTTPRoutes attach to (required when `httproute`). */
  parent?: ParentRef;
  /** Responses carry the answering version in this header (CUTOVER_VERSION_HEADER). */
  versionHeader?: string;
}

/** Whether traffic has moved to the version a target was pointed at. */
export type Convergence = { state: 'converged' } | { state: 'pending'; detail: string } | { state: 'unverifiable' };

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
  routing: RoutingPlan;
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
  /** The kinds of object this target owns: cluster access, RBAC and the reconciler learn of them from here. */
  readonly kinds: readonly Kind[];
  /** Where this target sends traffic now; undefined when it does not exist. */
  pointer(descriptor: Descriptor, cluster: Cluster, signal: AbortSignal): Promise<TrafficPointer | undefined>;
  /**
   * Reads the target's objects (for a rollback, and as what the switch writes over). `earlier` is
   * this target's capture at prepare: a target the switch will not write, whose objects were all
   * absent then, may answer with it — an object that appeared since is not one the switch or a
   * rollback would touch.
   */
  capture(ctx: TrafficContext, earlier?: TrafficSnapshot): Promise<TrafficSnapshot>;
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
  /**
   * After a switch: has the controller applied it — does traffic now reach ctx.version through
   * this target (Argo Rollouts' VerifyWeight)? 'unverifiable' when the target cannot tell.
   */
  converged(ctx: TrafficContext): Promise<Convergence>;
}

/** An object with one of our names exists but was not made by cutover (or Amdatu): we never touch it. */
export class ForeignObjectError extends Error {
  constructor(kind: string, namespace: string, name: string) {
    super(`${kind} ${namespace}/${name} exists but was not created by cutover; it is left alone — rename the app or remove that object`);
    this.name = 'ForeignObjectError';
  }
}

