/**
 * Outside watchers for the deployment benches: one pod watch and one Service watch per namespace,
 * on the Kubernetes API, recording when this process *saw* each change (receipt time, ms since
 * the epoch). Whatever drives the update (cutover, the Amdatu deployer, Argo Rollouts), the same
 * watchers measure it:
 *
 *   pods ready  = the moment the last pod of the new version (label `version`, or Argo's
 *                 `rollouts-pod-template-hash`) was first seen Ready;
 *   switched    = the moment the stable/active Service was first seen selecting the new version.
 */
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import { KubeClient } from '../../src/kube/client.js';
import { loadClusterAccess } from '../../src/kube/kubeconfig.js';
import { resourcePath } from '../../src/kube/resources.js';

const now = () => performance.timeOrigin + performance.now();

export interface SelectorSeen {
  at: number;
  selector: Record<string, string>;
}

export class OutsideWatchers {
  private readonly client: KubeClient;
  private readonly stop = new AbortController();
  /** namespace/pod name → first time seen Ready, with its labels. */
  readonly readyAt = new Map<string, { at: number; labels: Record<string, string> }>();
  /** namespace/service name → every selector change seen, in order. */
  readonly selectors = new Map<string, SelectorSeen[]>();
  /** namespace/pod name → labels, of every pod that exists now (deleted ones leave). */
  private readonly live = new Map<string, Record<string, string>>();
  private readonly running: Promise<void>[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(kubeconfig: string) {
    this.client = new KubeClient(loadClusterAccess(kubeconfig));
  }

  /** Starts watching the namespace; resolves once both watches are listed. */
  async watch(namespace: string): Promise<void> {
    const pods = await this.client.json<{ metadata: { resourceVersion: string }; items: V1Pod[] }>('GET', resourcePath('Pod', namespace));
    for (const p of pods.items) this.onPod(namespace, p);
    const services = await this.client.json<{ metadata: { resourceVersion: string }; items: V1Service[] }>('GET', resourcePath('Service', namespace));
    for (const s of services.items) this.onService(namespace, s);
    const loop = async (kind: 'Pod' | 'Service', rv: string) => {
      while (!this.stop.signal.aborted) {
        try {
          await this.client.watch<V1Pod & V1Service>(resourcePath(kind, namespace), { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 600 }, (e) => {
            if (e.object.metadata?.resourceVersion) rv = e.object.metadata.resourceVersion;
            if (e.type === 'BOOKMARK') return;
            if (e.type === 'DELETED') {
              if (kind === 'Pod' && this.live.delete(`${namespace}/${e.object.metadata?.name}`)) this.notify();
              return;
            }
            if (kind === 'Pod') this.onPod(namespace, e.object);
            else this.onService(namespace, e.object);
          }, this.stop.signal);
        } catch (err) {
          if (this.stop.signal.aborted) return;
          throw err;
        }
      }
    };
    this.running.push(loop('Pod', pods.metadata.resourceVersion).catch((err: Error) => {
      process.stderr.write(`pod watch of ${namespace} failed: ${err.message}\n`);
    }));
    this.running.push(loop('Service', services.metadata.resourceVersion).catch((err: Error) => {
      process.stderr.write(`service watch of ${namespace} failed: ${err.message}\n`);
    }));
  }

  /** Resolves once `predicate` holds (checked after every change seen), or rejects after `timeoutMs`. */
  until(predicate: () => boolean, what: string, timeoutMs: number): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`not within ${timeoutMs} ms: ${what}`));
      }, timeoutMs);
      this.listeners.add(check);
    });
  }

  /** When the last pod of `namespace` whose labels include `labels` was first seen Ready; undefined if fewer than `count`. */
  lastReady(namespace: string, labels: Record<string, string>, count: number): number | undefined {
    const times: number[] = [];
    for (const [key, r] of this.readyAt) {
      if (!key.startsWith(`${namespace}/`)) continue;
      if (Object.entries(labels).every(([k, v]) => r.labels[k] === v)) times.push(r.at);
    }
    return times.length >= count ? Math.max(...times) : undefined;
  }

  /** How many pods of `namespace` whose labels include `labels` exist now. */
  podsWith(namespace: string, labels: Record<string, string>): number {
    let n = 0;
    for (const [key, have] of this.live) if (key.startsWith(`${namespace}/`) && Object.entries(labels).every(([k, v]) => have[k] === v)) n++;
    return n;
  }

  /** When Service `namespace/name` was first seen selecting `label=value`. */
  switchedAt(namespace: string, name: string, label: string, value: string): number | undefined {
    return this.selectors.get(`${namespace}/${name}`)?.find((s) => s.selector[label] === value)?.at;
  }

  async close(): Promise<void> {
    this.stop.abort();
    await Promise.all(this.running);
    await this.client.close();
  }

  private onPod(namespace: string, pod: V1Pod): void {
    const key = `${namespace}/${pod.metadata?.name}`;
    this.live.set(key, pod.metadata?.labels ?? {});
    if (this.readyAt.has(key)) return;
    const ready = pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    if (!ready) return;
    this.readyAt.set(key, { at: now(), labels: pod.metadata?.labels ?? {} });
    this.notify();
  }

  private onService(namespace: string, svc: V1Service): void {
    const key = `${namespace}/${svc.metadata?.name}`;
    const selector = svc.spec?.selector ?? {};
    const seen = this.selectors.get(key) ?? [];
    const last = seen.at(-1);
    if (last && JSON.stringify(last.selector) === JSON.stringify(selector)) return;
    seen.push({ at: now(), selector });
    this.selectors.set(key, seen);
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}


/** Event-loop delay of a cutover process while its work ran, from /metrics (10 ms resolution; each scrape starts a new window). */
export async function eventLoopDelay(baseUrl: string): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^cutover_${name} ([0-9.eE+-]+)$`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
  return { p99Ms: value('work_event_loop_delay_p99_seconds'), maxMs: value('work_event_loop_delay_max_seconds') };
}
