import type { V1EndpointSlice, V1Pod } from '@kubernetes/client-node';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { KubeClient } from '../kube/client.js';
import { KubeError } from '../kube/errors.js';
import { loadClusterAccess } from '../kube/kubeconfig.js';
import { Limiter } from '../kube/limiter.js';
import { apiVersionOf, resourcePath, type Kind } from '../kube/resources.js';
import { Deadline, linkSignals, sleep } from '../lib/deadline.js';
import { isUrgent } from '../lib/urgency.js';
import type { Cluster, Freshness, KubeObject, PodProxyRequest, Watch } from './cluster.js';
import { DEPLOYMENT_ID_ANNOTATION } from './labels.js';
import { WatchHub, type Watched, type WatchHubOptions } from './watch-hub.js';

export interface KubernetesClusterOptions {
  client: KubeClient;
  /** Timeout of one API call. */
  requestTimeoutMs: number;
  /** How long retryable failures (no answer, 429, 5xx) are retried when the caller gives no signal. */
  retryBudgetMs: number;
  log: Logger;
  /** Called for every failed call (metrics). */
  onError?: (operation: string, err: KubeError) => void;
  /**
   * Most replaces and deletes in flight at once (default 16); more wait their turn here, and a
   * call's timeout starts when it is sent, not while it waits.
   */
  maxWritesInFlight?: number;
  /**
   * Most creates in flight at once (default 4). An API server busy with creates answers every
   * other call late, the switch's reads and write among them: at 200 apps deployed at once on the
   * test bed, 16 creates in flight gave a switch overhead (healthy → switched) p99 of 450 ms, 4
   * gave 220 ms, with the same time to the last switch (the API server's create rate bounds it).
   */
  maxCreatesInFlight?: number;
  /**
   * Most reads (get, list) in flight at once (default 32); reads made inside urgent() — the
   * switch of a deployment that is ready — do not wait. At 200 apps started at once, every
   * prepare's reads reached the API server together, and the first switches were answered behind
   * them.
   */
  maxReadsInFlight?: number;
  /** Longest timeout of one attempt, grown from requestTimeoutMs after attempts that got no answer (default 60 s). */
  maxRequestTimeoutMs?: number;
  /** Limits of the shared pod watches, and of the EndpointSlice watches (defaults in src/deployer/watch-hub.ts). */
  podWatches?: Pick<WatchHubOptions<V1Pod>, 'maxWatches' | 'lingerMs' | 'pollMs'>;
}

/** The client for the cluster at `kubeconfig` (or in-cluster); refuses a silent default. */
export function connectCluster(kubeconfig: string | undefined): KubeClient {
  return new KubeClient(loadClusterAccess(kubeconfig));
}

const OWNS_PODS: ReadonlySet<Kind> = new Set<Kind>(['Deployment', 'ReplicationController']);

interface List<T> {
  metadata?: { resourceVersion?: string };
  items?: T[];
}

/**
 * The engine's Cluster on our REST client: every call has a timeout and is retried while the
 * failure is transient (no answer, 429, 5xx) within the caller's signal; a permanent one (4xx) is
 * thrown at once. Works for every resource in src/kube/resources.ts, with no per-kind code.
 */
export class KubernetesCluster implements Cluster {
  private readonly client: KubeClient;
  /** Aborted by close(): calls without a caller's signal still end at shutdown. */
  private readonly lifetime = new AbortController();
  /** Pod watches shared per namespace: what `watchPods` is built on. */
  readonly podWatches: WatchHub<V1Pod>;
  /** EndpointSlice watches shared per namespace: what `watchReadyEndpoints` is built on. */
  readonly endpointSliceWatches: WatchHub<V1EndpointSlice>;
  /**
   * Bound the calls in flight (see KubernetesClusterOptions): creates apart from replaces and
   * deletes, so the switch of a deployment that is ready (a replace) never waits behind the
   * creates of deployments that are only starting (measured at 200 apps: healthy → switched p50
   * 15 s while one limit was shared); reads apart again, and urgent ones not at all.
   */
  readonly writes: Limiter;
  readonly creates: Limiter;
  readonly reads: Limiter;

  constructor(private readonly options: KubernetesClusterOptions) {
    this.client = options.client;
    this.writes = new Limiter(options.maxWritesInFlight ?? 16);
    this.creates = new Limiter(options.maxCreatesInFlight ?? 4);
    this.reads = new Limiter(options.maxReadsInFlight ?? 32);
    this.podWatches = this.watchHub<V1Pod>('Pod');
    this.endpointSliceWatches = this.watchHub<V1EndpointSlice>('EndpointSlice');
  }

  private watchHub<T extends Watched>(kind: 'Pod' | 'EndpointSlice'): WatchHub<T> {
    const client = this.client;
    return new WatchHub<T>({
      kind,
      log: this.options.log,
      ...(this.options.podWatches ?? {}),
      source: {
        list: async (namespace, signal) => {
          const list = await client.json<List<T>>('GET', resourcePath(kind, namespace), { signal });
          return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion };
        },
        watch: (namespace, resourceVersion, onEvent, signal) => client.watch<T>(resourcePath(kind, namespace), {
          resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300,
        }, onEvent, signal),
      },
    });
  }

  async get(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
    return this.call(`get ${kind}`, signal, (s) => this.client.jsonOrAbsent<KubeObject>('GET', resourcePath(kind, namespace, name), { signal: s }));
  }

  async create(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    const body = { ...object, apiVersion: apiVersionOf(kind), kind };
    // A create that got no answer (timeout, connection reset, 5xx) may still have been applied:
    // its retry then meets AlreadyExists. That is our own object when it carries exactly the
    // labels and annotations just sent (the deployment id among them); anything else still fails.
    let unanswered = false;
    try {
      return await this.call(`create ${kind}`, signal, async (s) => {
        try {
          return await this.client.json<KubeObject>('POST', resourcePath(kind, object.metadata?.namespace ?? ''), { body, signal: s });
        } catch (err) {
          if (!(err instanceof KubeError) || err.status === 0 || err.status >= 500) unanswered = true;
          throw err;
        }
      });
    } catch (err) {
      if (!unanswered || !(err instanceof KubeError) || err.status !== 409 || err.reason !== 'AlreadyExists') throw err;
      const existing = await this.get(kind, object.metadata?.namespace ?? '', object.metadata?.name ?? '', signal);
      if (existing && isOwnCreate(existing, object)) {
        this.options.log.warn({ operation: `create ${kind}`, name: object.metadata?.name }, 'create retried after no answer: the first attempt had created it');
        return existing;
      }
      throw err;
    }
  }

  async replace(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    const body = { ...object, apiVersion: apiVersionOf(kind), kind };
    return this.call(`replace ${kind}`, signal, (s) => this.client.json<KubeObject>('PUT', resourcePath(kind, object.metadata?.namespace ?? '', object.metadata?.name ?? ''), { body, signal: s }));
  }

  async delete(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    try {
      // Foreground for workloads: one disappears only after its pods, so "removed" means removed.
      // Everything else goes at once (Foreground would keep it, marked for deletion, until the
      // garbage collector has looked at it).
      const propagationPolicy = OWNS_PODS.has(kind) ? 'Foreground' : 'Background';
      await this.call(`delete ${kind}`, signal, (s) => this.client.json('DELETE', resourcePath(kind, namespace, name), { query: { propagationPolicy }, signal: s }));
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }
  }

  async list(kind: Kind, namespace: string, labelSelector: string, signal?: AbortSignal, freshness: Freshness = 'latest'): Promise<KubeObject[]> {
    const query = {
      labelSelector,
      ...(freshness === 'cached' ? { resourceVersion: '0' } : {}),
      ...(typeof freshness === 'object' ? { resourceVersion: freshness.notOlderThan, resourceVersionMatch: 'NotOlderThan' } : {}),
    };
    const res = await this.call(`list ${kind}`, signal, (s) => this.client.json<List<KubeObject>>('GET', resourcePath(kind, namespace), { query, signal: s }));
    return res.items ?? [];
  }

  async listPods(namespace: string, labelSelector: string, signal?: AbortSignal, freshness?: Freshness): Promise<V1Pod[]> {
    return (await this.list('Pod', namespace, labelSelector, signal, freshness)) as V1Pod[];
  }

  async readyEndpoints(namespace: string, serviceName: string, signal?: AbortSignal, freshness?: Freshness): Promise<string[]> {
    return readyAddresses((await this.list('EndpointSlice', namespace, serviceSelector(serviceName), signal, freshness)) as V1EndpointSlice[]);
  }

  async watchReadyEndpoints(namespace: string, serviceName: string, onChange: (ready: string[]) => void): Promise<Watch> {
    const watch = this.endpointSliceWatches.subscribe(namespace, serviceSelector(serviceName), (slices) => onChange(readyAddresses(slices)));
    if (!watch) throw new Error(`cannot watch the EndpointSlices of Service ${serviceName}`); // the selector is equality-based
    return watch;
  }

  async secretExists(namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.get('Secret', namespace, name, signal)) !== undefined;
  }

  async watchPods(namespace: string, labelSelector: string, onChange: (pods: V1Pod[], resourceVersion?: string) => void): Promise<Watch> {
    // One shared watch per namespace (src/deployer/watch-hub.ts); a set-based selector, which
    // the hub does not evaluate, gets a watch of its own.
    return this.podWatches.subscribe(namespace, labelSelector, onChange) ?? this.ownPodWatch(namespace, labelSelector, onChange);
  }

  private ownPodWatch(namespace: string, labelSelector: string, onChange: (pods: V1Pod[], resourceVersion?: string) => void): Watch {
    const pods = new Map<string, V1Pod>();
    const stop = new AbortController();
    const link = linkSignals(stop.signal, this.lifetime.signal);
    let backoffMs = 200;
    let resourceVersion: string | undefined;
    const publish = () => onChange([...pods.values()], resourceVersion);
    // List, then watch from the list's resourceVersion; after any end or error, list again.
    const cycle = async (): Promise<void> => {
      while (!link.signal.aborted) {
        try {
          const list = await this.client.json<List<V1Pod>>('GET', resourcePath('Pod', namespace), { query: { labelSelector }, signal: link.signal });
          pods.clear();
          for (const p of list.items ?? []) pods.set(p.metadata?.uid ?? p.metadata?.name ?? '', p);
          resourceVersion = list.metadata?.resourceVersion;
          publish();
          await this.client.watch<V1Pod>(resourcePath('Pod', namespace), {
            labelSelector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300,
          }, (event) => {
            const key = event.object.metadata?.uid ?? event.object.metadata?.name ?? '';
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === 'ADDED' || event.type === 'MODIFIED') pods.set(key, event.object);
            else if (event.type === 'DELETED') pods.delete(key);
            else return;
            backoffMs = 200;
            publish();
          }, link.signal);
        } catch (err) {
          if (link.signal.aborted) break;
          this.options.log.debug({ err: (err as Error).message, namespace, labelSelector }, 'pod watch failed; listing again');
        }
        if (link.signal.aborted) break;
        await sleep(backoffMs, link.signal).catch(() => undefined);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
      link.dispose();
    };
    void cycle();
    return { stop: () => stop.abort() };
  }

  async proxyGet(req: PodProxyRequest): Promise<{ statusCode: number; body: string }> {
    const deadline = Deadline.after(req.timeoutMs, req.signal);
    try {
      const path = `${resourcePath('Pod', req.namespace, `${req.podName}:${req.port}`)}/proxy/${req.path.replace(/^\/+/, '')}`;
      return await this.client.text(path, deadline.signal, req.method ?? 'GET');
    } catch (err) {
      if (deadline.expired) throw new Error(`no answer within ${req.timeoutMs} ms`);
      throw new Error((err as Error).message);
    } finally {
      deadline.clear();
    }
  }

  close(): void {
    this.podWatches.close();
    this.endpointSliceWatches.close();
    this.lifetime.abort(new Error('the Kubernetes client is closed'));
    void this.client.close();
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.version(signal);
  }

  async version(signal?: AbortSignal): Promise<string> {
    const v = await this.call('get version', signal, (s) => this.client.json<{ gitVersion?: string }>('GET', '/version', { signal: s }), 0);
    return v.gitVersion ?? 'unknown';
  }

  /** Runs one API call with a timeout, retrying transient failures until `signal` or the budget ends. */
  private async call<T>(operation: string, callerSignal: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>, budgetMs = this.options.retryBudgetMs): Promise<T> {
    const started = Date.now();
    const hasDeadline = callerSignal !== undefined;
    const link = linkSignals(callerSignal, this.lifetime.signal);
    const signal = link.signal;
    let delay = 200;
    // Writes and reads take a turn (a starved API server gets a bounded number at once, not
    // hundreds that all time out; urgent reads skip the line); an attempt that got no answer gives
    // the next one twice the time (the server may have been close to done: cutting it off again
    // only wastes its work).
    const limiter = operation.startsWith('create ') ? this.creates : /^(replace|delete) /.test(operation) ? this.writes : isUrgent() ? undefined : this.reads;
    let attemptTimeoutMs = this.options.requestTimeoutMs;
    try {
      for (;;) {
        const release = limiter ? await limiter.acquire(signal) : undefined;
        const timeout = Deadline.after(attemptTimeoutMs, signal);
        const t0 = performance.now();
        try {
          const result = await fn(timeout.signal);
          this.options.log.trace({ operation, ms: Math.round(performance.now() - t0) }, 'Kubernetes API call');
          return result;
        } catch (raw) {
          if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
          const err = raw instanceof KubeError ? withOperation(raw, operation)
            : new KubeError(`${operation}: ${timeout.expired ? `no answer within ${attemptTimeoutMs} ms` : (raw as Error)?.message ?? String(raw)}`, 0, 'Unavailable', { cause: raw });
          this.options.onError?.(operation, err);
          const outOfBudget = !hasDeadline && Date.now() - started + delay > budgetMs;
          if (!err.retryable || outOfBudget) throw err;
          this.options.log.warn({ operation, status: err.status, err: err.message, retryInMs: delay }, 'Kubernetes API call failed; retrying');
          if (timeout.expired) attemptTimeoutMs = Math.min(attemptTimeoutMs * 2, Math.max(this.options.maxRequestTimeoutMs ?? 60_000, this.options.requestTimeoutMs));
          release?.();
          await sleep(delay, signal);
          delay = Math.min(delay * 2, 5000);
        } finally {
          release?.();
          timeout.clear();
        }
      }
    } finally {
      link.dispose();
    }
  }
}

const serviceSelector = (serviceName: string) => `kubernetes.io/service-name=${serviceName}`;

/** The addresses the slices list as ready (and not terminating), sorted. */
function readyAddresses(slices: V1EndpointSlice[]): string[] {
  const ready = new Set<string>();
  for (const slice of slices) {
    for (const e of slice.endpoints ?? []) if (e.conditions?.ready === true && !e.conditions.terminating) for (const a of e.addresses) ready.add(a);
  }
  return [...ready].sort();
}

/**
 * Whether `existing` is what our own earlier, unanswered create of `sent` made: `sent` carries a
 * deployment id (invariant I2: every object cutover writes does) and every label and annotation
 * sent is there with the same value, so an object of someone else is never taken for ours.
 */
export function isOwnCreate(existing: KubeObject, sent: KubeObject): boolean {
  if (!sent.metadata?.annotations?.[DEPLOYMENT_ID_ANNOTATION]) return false;
  const pairs = [
    ...Object.entries(sent.metadata?.labels ?? {}).map(([k, v]) => [existing.metadata?.labels?.[k], v] as const),
    ...Object.entries(sent.metadata?.annotations ?? {}).map(([k, v]) => [existing.metadata?.annotations?.[k], v] as const),
  ];
  return pairs.length > 0 && pairs.every(([have, want]) => have === want) && !existing.metadata?.deletionTimestamp;
}

/** "create Deployment: 422 Invalid: …" rather than the REST path. */
function withOperation(err: KubeError, operation: string): KubeError {
  const detail = err.message.replace(/^\S+ \S+: /, '');
  return new KubeError(`${operation}: ${detail}`, err.status, err.reason, { cause: err });
}
