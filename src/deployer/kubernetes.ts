import {
  ApiException, AppsV1Api, CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig, NetworkingV1Api, Observable, Watch,
  type ConfigurationOptions, type ObservableMiddleware, type V1Pod,
} from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { KubeError, type Cluster, type Kind, type KubeObject, type PodProxyRequest, type PodWatch } from './cluster.js';
import type { Logger } from '../log.js';
import { Deadline, linkSignals, sleep } from '../lib/deadline.js';

export interface KubernetesClusterOptions {
  kubeConfig: KubeConfig;
  /** Timeout of one API call. */
  requestTimeoutMs: number;
  /** How long retryable failures (no answer, 429, 5xx) are retried when the caller gives no signal. */
  retryBudgetMs: number;
  log: Logger;
  /** Called for every failed call (metrics). */
  onError?: (operation: string, err: KubeError) => void;
}

/** Loads a kubeconfig from a file, or the in-cluster service account; refuses a silent localhost:8080. */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  const defaultFile = join(homedir(), '.kube', 'config');
  if (path) kc.loadFromFile(path);
  else if (process.env['KUBERNETES_SERVICE_HOST']) kc.loadFromCluster();
  else if (process.env['KUBECONFIG'] || existsSync(defaultFile)) kc.loadFromDefault();
  else throw new Error('no Kubernetes cluster configured: set CUTOVER_KUBECONFIG (or KUBECONFIG), or run cutover inside a cluster');
  if (!kc.getCurrentCluster()) throw new Error(`the kubeconfig ${path ?? process.env['KUBECONFIG'] ?? defaultFile} has no current cluster`);
  return withPooledConnections(kc);
}

/**
 * client-node 1.x builds a new https.Agent for every request, so every API call pays a fresh TLS
 * handshake; under load (20 parallel deployments) that alone cost seconds per switch. Reuse one
 * keep-alive agent per distinct set of TLS options instead.
 */
export function withPooledConnections(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as { createAgent: (cluster: unknown, options: Record<string, unknown>) => unknown };
  const original = target.createAgent.bind(kc);
  const agents = new Map<string, unknown>();
  target.createAgent = (cluster, options) => {
    const c = cluster as { server?: string; proxyUrl?: string } | undefined;
    if (c?.proxyUrl) return original(cluster, options);
    const key = createHash('sha256').update(JSON.stringify([c?.server, options['ca'], options['cert'], options['key'], options['pfx'], options['rejectUnauthorized'], options['servername']].map((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v ?? null)))).digest('hex');
    let agent = agents.get(key);
    if (!agent) {
      agent = original(cluster, { ...options, keepAlive: true, maxSockets: 32, maxFreeSockets: 8 });
      agents.set(key, agent);
    }
    return agent;
  };
  return kc;
}

const TRAEFIK = { group: 'traefik.io', version: 'v1alpha1', plural: 'middlewares' };

/** Cluster on @kubernetes/client-node 1.x, with per-call timeouts and retries of transient failures. */
export class KubernetesCluster implements Cluster {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly networking: NetworkingV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly discovery: DiscoveryV1Api;
  /** Aborted by close(): calls without a caller's signal still end at shutdown. */
  private readonly lifetime = new AbortController();

  constructor(private readonly options: KubernetesClusterOptions) {
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.apps = options.kubeConfig.makeApiClient(AppsV1Api);
    this.networking = options.kubeConfig.makeApiClient(NetworkingV1Api);
    this.custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.discovery = options.kubeConfig.makeApiClient(DiscoveryV1Api);
  }

  async get(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
    try {
      return await this.call(`get ${kind}`, signal, (o) => {
        switch (kind) {
          case 'Deployment': return this.apps.readNamespacedDeployment({ name, namespace }, o);
          case 'ReplicationController': return this.core.readNamespacedReplicationController({ name, namespace }, o);
          case 'Service': return this.core.readNamespacedService({ name, namespace }, o);
          case 'Ingress': return this.networking.readNamespacedIngress({ name, namespace }, o);
          case 'Middleware': return this.custom.getNamespacedCustomObject({ ...TRAEFIK, namespace, name }, o);
        }
      });
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }

  async create(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    const namespace = object.metadata?.namespace ?? '';
    const body = object as any;
    return this.call(`create ${kind}`, signal, (o) => {
      switch (kind) {
        case 'Deployment': return this.apps.createNamespacedDeployment({ namespace, body }, o);
        case 'ReplicationController': return this.core.createNamespacedReplicationController({ namespace, body }, o);
        case 'Service': return this.core.createNamespacedService({ namespace, body }, o);
        case 'Ingress': return this.networking.createNamespacedIngress({ namespace, body }, o);
        case 'Middleware': return this.custom.createNamespacedCustomObject({ ...TRAEFIK, namespace, body }, o);
      }
    });
  }

  async replace(kind: Kind, object: KubeObject, signal?: AbortSignal): Promise<KubeObject> {
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const body = object as any;
    return this.call(`replace ${kind}`, signal, (o) => {
      switch (kind) {
        case 'Deployment': return this.apps.replaceNamespacedDeployment({ name, namespace, body }, o);
        case 'ReplicationController': return this.core.replaceNamespacedReplicationController({ name, namespace, body }, o);
        case 'Service': return this.core.replaceNamespacedService({ name, namespace, body }, o);
        case 'Ingress': return this.networking.replaceNamespacedIngress({ name, namespace, body }, o);
        case 'Middleware': return this.custom.replaceNamespacedCustomObject({ ...TRAEFIK, namespace, name, body }, o);
      }
    });
  }

  async delete(kind: Kind, namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    // Foreground: the workload disappears only after its pods, so "removed" means removed.
    const propagationPolicy = 'Foreground';
    try {
      await this.call(`delete ${kind}`, signal, (o) => {
        switch (kind) {
          case 'Deployment': return this.apps.deleteNamespacedDeployment({ name, namespace, propagationPolicy }, o);
          case 'ReplicationController': return this.core.deleteNamespacedReplicationController({ name, namespace, propagationPolicy }, o);
          case 'Service': return this.core.deleteNamespacedService({ name, namespace }, o);
          case 'Ingress': return this.networking.deleteNamespacedIngress({ name, namespace }, o);
          case 'Middleware': return this.custom.deleteNamespacedCustomObject({ ...TRAEFIK, namespace, name }, o);
        }
      });
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }
  }

  async list(kind: Kind, namespace: string, labelSelector: string, signal?: AbortSignal): Promise<KubeObject[]> {
    const res = await this.call(`list ${kind}`, signal, (o) => {
      switch (kind) {
        case 'Deployment': return this.apps.listNamespacedDeployment({ namespace, labelSelector }, o);
        case 'ReplicationController': return this.core.listNamespacedReplicationController({ namespace, labelSelector }, o);
        case 'Service': return this.core.listNamespacedService({ namespace, labelSelector }, o);
        case 'Ingress': return this.networking.listNamespacedIngress({ namespace, labelSelector }, o);
        case 'Middleware': return this.custom.listNamespacedCustomObject({ ...TRAEFIK, namespace, labelSelector }, o);
      }
    }) as { items?: KubeObject[] };
    return res.items ?? [];
  }

  async listPods(namespace: string, labelSelector: string, signal?: AbortSignal): Promise<V1Pod[]> {
    const res = await this.call('list Pod', signal, (o) => this.core.listNamespacedPod({ namespace, labelSelector }, o));
    return res.items;
  }

  async readyEndpoints(namespace: string, serviceName: string, signal?: AbortSignal): Promise<string[]> {
    const res = await this.call('list EndpointSlice', signal, (o) => this.discovery.listNamespacedEndpointSlice({ namespace, labelSelector: `kubernetes.io/service-name=${serviceName}` }, o));
    const ready = new Set<string>();
    for (const slice of res.items) {
      for (const e of slice.endpoints ?? []) if (e.conditions?.ready === true && !e.conditions.terminating) for (const a of e.addresses) ready.add(a);
    }
    return [...ready].sort();
  }

  async secretExists(namespace: string, name: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.call('get Secret', signal, (o) => this.core.readNamespacedSecret({ name, namespace }, o));
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return false;
      throw err;
    }
  }

  async watchPods(namespace: string, labelSelector: string, onChange: (pods: V1Pod[]) => void): Promise<PodWatch> {
    const watch = new Watch(this.options.kubeConfig);
    const pods = new Map<string, V1Pod>();
    let stopped = false;
    let current: AbortController | undefined;
    let backoffMs = 200;
    const publish = () => onChange([...pods.values()]);

    // List, then watch from the list's resourceVersion; on any end or error, list again.
    const cycle = async (): Promise<void> => {
      while (!stopped && !this.lifetime.signal.aborted) {
        try {
          const list = await this.call('list Pod', undefined, (o) => this.core.listNamespacedPod({ namespace, labelSelector }, o));
          pods.clear();
          for (const p of list.items) pods.set(p.metadata?.uid ?? p.metadata?.name ?? '', p);
          publish();
          const resourceVersion = list.metadata?.resourceVersion;
          await new Promise<void>((resolve) => {
            void watch.watch(`/api/v1/namespaces/${namespace}/pods`, { labelSelector, resourceVersion, allowWatchBookmarks: true },
              (type: string, obj: V1Pod) => {
                const key = obj.metadata?.uid ?? obj.metadata?.name ?? '';
                if (type === 'ADDED' || type === 'MODIFIED') pods.set(key, obj);
                else if (type === 'DELETED') pods.delete(key);
                else return;
                backoffMs = 200;
                publish();
              },
              () => resolve(),
            ).then((controller) => {
              current = controller;
              if (stopped) controller.abort();
            }, () => resolve());
          });
        } catch (err) {
          this.options.log.debug({ err: (err as Error).message, namespace, labelSelector }, 'pod watch failed; retrying');
        }
        if (stopped || this.lifetime.signal.aborted) return;
        await sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, 5000);
      }
    };
    void cycle();
    return {
      stop: () => {
        stopped = true;
        current?.abort();
      },
    };
  }

  async proxyGet(req: PodProxyRequest): Promise<{ statusCode: number; body: string }> {
    const deadline = Deadline.after(req.timeoutMs, req.signal);
    const signal = deadline.signal;
    try {
      const res = await this.core.connectGetNamespacedPodProxyWithPathWithHttpInfo(
        { name: `${req.podName}:${req.port}`, namespace: req.namespace, path: req.path.replace(/^\/+/, '') },
        withSignal(signal),
      );
      return { statusCode: res.httpStatusCode, body: typeof res.data === 'string' ? res.data : JSON.stringify(res.data) };
    } catch (err) {
      if (err instanceof ApiException) {
        return { statusCode: err.code, body: typeof err.body === 'string' ? err.body : JSON.stringify(err.body) };
      }
      if (signal.aborted) throw new Error(`no answer within ${req.timeoutMs} ms`);
      throw new Error((err as Error).message);
    } finally {
      deadline.clear();
    }
  }

  close(): void {
    this.lifetime.abort(new Error('the Kubernetes client is closed'));
  }

  async ping(signal?: AbortSignal): Promise<void> {
    await this.call('get version', signal, (o) => this.core.getAPIResources(o), 0);
  }

  /** Runs one API call with a timeout, retrying transient failures until `signal` or the budget ends. */
  private async call<T>(operation: string, callerSignal: AbortSignal | undefined, fn: (o: ConfigurationOptions<ObservableMiddleware>) => Promise<T>, budgetMs = this.options.retryBudgetMs): Promise<T> {
    const started = Date.now();
    const hasDeadline = callerSignal !== undefined;
    const link = linkSignals(callerSignal, this.lifetime.signal);
    const signal = link.signal;
    let delay = 200;
    try {
      for (;;) {
        const timeout = Deadline.after(this.options.requestTimeoutMs, signal);
        const t0 = performance.now();
        try {
          const result = await fn(withSignal(timeout.signal));
          this.options.log.trace({ operation, ms: Math.round(performance.now() - t0) }, 'Kubernetes API call');
          return result;
        } catch (raw) {
          if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
          const err = toKubeError(operation, raw, timeout.expired ? this.options.requestTimeoutMs : undefined);
          this.options.onError?.(operation, err);
          const outOfBudget = !hasDeadline && Date.now() - started + delay > budgetMs;
          if (!err.retryable || outOfBudget) throw err;
          this.options.log.warn({ operation, status: err.status, err: err.message, retryInMs: delay }, 'Kubernetes API call failed; retrying');
          await sleep(delay, signal);
          delay = Math.min(delay * 2, 5000);
        } finally {
          timeout.clear();
        }
      }
    } finally {
      link.dispose();
    }
  }
}

function withSignal(signal: AbortSignal): ConfigurationOptions<ObservableMiddleware> {
  return {
    middleware: [{
      pre: (ctx) => {
        ctx.setSignal(signal);
        return new Observable(Promise.resolve(ctx));
      },
      post: (res) => new Observable(Promise.resolve(res)),
    }],
    middlewareMergeStrategy: 'append',
  };
}

function toKubeError(operation: string, err: unknown, timedOutAfterMs: number | undefined): KubeError {
  if (err instanceof ApiException) {
    let reason = '';
    let message = '';
    try {
      const status = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as { reason?: string; message?: string };
      reason = status.reason ?? '';
      message = status.message ?? '';
    } catch {
      message = typeof err.body === 'string' ? err.body.slice(0, 300) : '';
    }
    return new KubeError(`${operation}: ${err.code} ${reason}${message ? `: ${message}` : ''}`, err.code, reason, { cause: err });
  }
  const text = timedOutAfterMs !== undefined ? `no answer within ${timedOutAfterMs} ms` : (err as Error)?.message ?? String(err);
  return new KubeError(`${operation}: ${text}`, 0, 'Unavailable', { cause: err });
}
