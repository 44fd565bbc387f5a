import { performance } from 'node:perf_hooks';
import type { Guard, Lease } from '../store/kv.js';
import type { Cluster, Freshness, Kind, KubeObject } from './cluster.js';
import { WorkInterrupted } from './errors.js';
import { linkSignals } from '../lib/deadline.js';

/**
 * Invariant I5: a replica that lost an app's ownership makes no further write for it.
 *
 * A replica owns an app while it holds `owners/{ns}/{app}` with its etcd lease. The ownership
 * fences every write made for the app: etcd writes carry the owner key's revision as a
 * transaction guard (they fail once the key is gone or re-created by another replica), and
 * Kubernetes writes go through `FencedCluster`, which refuses to write once the lease is no
 * longer *known* to be alive. That knowledge is conservative — the lease counts as alive only
 * until TTL after the sending of the last acknowledged keepalive — so the old owner stops before
 * the server can expire the lease and hand the app to another replica. A write already on its
 * way when the lease runs out cannot be recalled; replaces carry the resourceVersion they read,
 * so such a write still fails if the new owner changed the object first.
 */
export interface AppOwnership {
  readonly namespace: string;
  readonly appName: string;
  /** Aborted when ownership ends: lease lost or run out, shutdown, or released. */
  readonly signal: AbortSignal;
  /** The etcd guard every write of the owner carries. */
  readonly fence: Guard;
  /** Throws WorkInterrupted unless ownership is known to hold for at least `marginMs` more. */
  assertHeld(): void;
}

/** Writes stop this long before the lease's conservative expiry (time for the write to arrive). */
export const FENCE_MARGIN_MS = 1000;

export class LeaseOwnership implements AppOwnership {
  readonly fence: Guard;
  private readonly link: { signal: AbortSignal; dispose(): void };

  constructor(
    readonly namespace: string,
    readonly appName: string,
    private readonly lease: Lease,
    ownerKey: string,
    claimRevision: string,
    parent: AbortSignal,
  ) {
    this.fence = { key: ownerKey, modRevision: claimRevision };
    this.link = linkSignals(parent);
  }

  get signal(): AbortSignal {
    return this.link.signal;
  }

  assertHeld(): void {
    if (this.link.signal.aborted) throw new WorkInterrupted(`no longer the owner of ${this.namespace}/${this.appName}: ${reasonText(this.link.signal.reason)}`);
    if (performance.now() + FENCE_MARGIN_MS > this.lease.validUntil()) {
      throw new WorkInterrupted(`no longer the owner of ${this.namespace}/${this.appName}: the etcd lease is not known to be alive`);
    }
  }

  /** Ends the link to the parent signal (the run is over). */
  dispose(): void {
    this.link.dispose();
  }
}

/** The cluster as seen by the owner of one app: every call ends with ownership, every write is fenced. */
export class FencedCluster implements Cluster {
  constructor(private readonly inner: Cluster, private readonly ownership: AppOwnership) {}

  get(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
    return this.withOwnership(signal, (s) => this.inner.get(kind, namespace, name, s));
  }

  list(kind: Kind, namespace: string, labelSelector: string, signal?: AbortSignal, freshness?: Freshness): Promise<KubeObject[]> {
    return this.withOwnership(signal, (s) => this.inner.list(kind, namespace, labelSelector, s, freshness));
  }

  listPods(namespace: string, labelSelector: string, signal?: AbortSignal, freshness?: Freshness) {
    return this.withOwnership(signal, (s) => this.inner.listPods(namespace, labelSelector, s, freshness));
  }

  readyEndpoints(namespace: string, serviceName: string, signal?: AbortSignal, freshness?: Freshness) {
    return this.withOwnership(signal, (s) => this.inner.readyEndpoints(namespace, serviceName, s, freshness));
  }

  secretExists(namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    return this.withOwnership(signal, (s) => this.inner.secretExists(namespace, name, s));
  }

  watchPods(...args: Parameters<Cluster['watchPods']>) {
    return this.inner.watchPods(...args);
  }

  watchReadyEndpoints(...args: Parameters<Cluster['watchReadyEndpoints']>) {
    return this.inner.watchReadyEndpoints(...args);
  }

  proxyGet(...args: Parameters<Cluster['proxyGet']>) {
    return this.inner.proxyGet(...args);
  }

  ping(signal?: AbortSignal): Promise<void> {
    return this.inner.ping(signal);
  }

  close(): void {
    // The shared cluster outlives one app's ownership.
  }

  create(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    return this.write(signal, (s) => this.inner.create(kind, object, s));
  }

  replace(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    return this.write(signal, (s) => this.inner.replace(kind, object, s));
  }

  delete(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    return this.write(signal, (s) => this.inner.delete(kind, namespace, name, s));
  }

  private async write<T>(signal: AbortSignal | undefined, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    this.ownership.assertHeld();
    return this.withOwnership(signal, fn);
  }

  private async withOwnership<T>(signal: AbortSignal | undefined, fn: (s: AbortSignal) => Promise<T>): Promise<T> {
    const link = linkSignals(signal, this.ownership.signal);
    try {
      return await fn(link.signal);
    } catch (err) {
      if (this.ownership.signal.aborted) throw new WorkInterrupted(`no longer the owner of ${this.ownership.namespace}/${this.ownership.appName}`);
      throw err;
    } finally {
      link.dispose();
    }
  }
}

function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason);
}
