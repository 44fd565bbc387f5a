import type { V1ObjectMeta, V1Pod } from '@kubernetes/client-node';
import type { ProxyGetRequest } from '../healthcheck/proxy.js';

/**
 * The engine's view of one Kubernetes cluster: the few operations it needs, on the few kinds it
 * manages. src/deployer/kubernetes.ts implements it over our own REST client (src/kube/);
 * @kubernetes/client-node is used for its types only. "Which cluster" is decided by whoever
 * constructs it, never by the engine.
 */

export type { Kind } from '../kube/resources.js';
import type { Kind } from '../kube/resources.js';

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: any;
  status?: any;
}

/** What the pod-proxy health checker asks the cluster for (its type, so the two cannot drift). */
export type PodProxyRequest = ProxyGetRequest;

/** A subscription to changes (pods, endpoints); stop() ends it. */
export interface Watch {
  stop(): void;
}

/**
 * How current a list must be. 'latest' (the default) is a consistent read: the API server answers
 * only once its cache has caught up with etcd, which on a quiet server waits for etcd's progress
 * notification (measured on the test bed: 15–77 ms instead of 2–5 ms). 'cached' takes the API
 * server's cache as it is (resourceVersion=0): only for a question asked again until the answer
 * is yes, where an older answer can only say "not yet" (the switch's convergence check).
 * `{ notOlderThan }` is the API server's cache once it has reached that resourceVersion (from a
 * watch event or list): at least as new as what the caller has already seen, without the wait.
 */
export type Freshness = 'latest' | 'cached' | { notOlderThan: string };

export interface Cluster {
  /** The object, or undefined when it does not exist. */
  get(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<KubeObject | undefined>;
  create(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject>;
  /** Replaces the object; metadata.resourceVersion, when set, must still be current (else 409). */
  replace(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject>;
  /** Deletes (foreground for workloads, so their pods go with them); false if it did not exist. */
  delete(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<boolean>;
  list(kind: Kind, namespace: string, labelSelector: string, signal?: AbortSignal, freshness?: Freshness): Promise<KubeObject[]>;
  listPods(namespace: string, labelSelector: string, signal?: AbortSignal, freshness?: Freshness): Promise<V1Pod[]>;
  /** Addresses of the ready endpoints of a Service, from its EndpointSlices (what routers send traffic to). */
  readyEndpoints(namespace: string, serviceName: string, signal?: AbortSignal, freshness?: Freshness): Promise<string[]>;
  secretExists(namespace: string, name: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * Calls `onChange` with the full current set of matching pods after every change, and the
   * resourceVersion that set is as of (when known: for a later read `{ notOlderThan }` it).
   */
  watchPods(namespace: string, labelSelector: string, onChange: (pods: V1Pod[], resourceVersion?: string) => void): Promise<Watch>;
  /**
   * Calls `onChange` with the Service's ready endpoint addresses (as readyEndpoints) once known,
   * then after every change to its EndpointSlices: for waiting until the endpoint controller has
   * published pods, as soon as it has.
   */
  watchReadyEndpoints(namespace: string, serviceName: string, onChange: (ready: string[]) => void): Promise<Watch>;
  /** GET through the API server's pod proxy (for health checks when cutover runs outside the cluster). */
  proxyGet(req: PodProxyRequest): Promise<{ statusCode: number; body: string }>;
  /** Resolves when the API server answers. */
  ping(signal?: AbortSignal): Promise<void>;
  /** The API server's version (gitVersion), for GET /clusters. */
  version?(signal?: AbortSignal): Promise<string>;
  /** Ends every call and watch still running (shutdown): nothing retries after this. */
  close(): void;
}

export { KubeError, isAlreadyExists, isConflict, isNotFound } from '../kube/errors.js';
