import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import type { WatchEvent } from '../kube/client.js';
import { linkSignals, sleep } from '../lib/deadline.js';
import type { Watch } from './cluster.js';

/**
 * Shared watches of one kind (pods, EndpointSlices): one list-then-watch per namespace, however
 * many deployments wait there. Each subscriber gives a label selector; it is matched here, against
 * the namespace's objects, and called with the full current set of its objects after every change
 * that concerns it (what `Cluster.watchPods` promises). Before this, every deployment had a watch of
 * its own: 200 apps in parallel held 200 watches, i.e. 200 of the client pool's connections for as
 * long as they waited, and every pod event was decoded once per watch of its namespace.
 *
 * Bounded: at most `maxWatches` namespaces are watched at once. A watch whose last subscriber left
 * lingers `lingerMs` (the next deployment in that namespace starts from its cache, without a list)
 * and is the first to go when the limit is reached. Beyond the limit a namespace is polled (a list
 * every `pollMs`) while it has subscribers, so a deployment never waits for a free watch.
 * Objects are kept without `metadata.managedFields` (the largest part of a pod, read by nobody here).
 */
export interface ListWatchSource<T extends Watched> {
  /** Every object of the namespace (no selector) and the list's resourceVersion. */
  list(namespace: string, signal: AbortSignal): Promise<{ items: T[]; resourceVersion: string | undefined }>;
  /** Watches from `resourceVersion` until the server ends the stream (resolves) or it fails (rejects). */
  watch(namespace: string, resourceVersion: string | undefined, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void>;
}

/** What the hub needs of an object: its identity and labels. */
export interface Watched {
  metadata?: V1ObjectMeta;
}

export interface WatchHubOptions<T extends Watched> {
  source: ListWatchSource<T>;
  /** What is watched, for the log ('Pod', 'EndpointSlice'). */
  kind: string;
  log: Logger;
  /** Most namespaces watched at once (default 256); more are polled. */
  maxWatches?: number;
  /** How long an unused namespace watch is kept (default 30 s). */
  lingerMs?: number;
  /** List interval of a polled namespace (default 1 s). */
  pollMs?: number;
}

/** One requirement of an equality-based label selector. */
type Requirement =
  | { op: 'eq'; key: string; value: string }
  | { op: 'ne'; key: string; value: string }
  | { op: 'exists'; key: string }
  | { op: 'absent'; key: string };

/**
 * Parses an equality-based label selector (`a=b,c==d,e!=f,g,!h`); undefined for set-based ones
 * (`in`, `notin`), which this hub does not evaluate (their subscribers get a watch of their own).
 */
export function parseSelector(selector: string): Requirement[] | undefined {
  const out: Requirement[] = [];
  for (const raw of selector.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    if (/\s(in|notin)\s*\(/.test(part) || part.includes('(')) return undefined;
    let m: RegExpExecArray | null;
    if ((m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(part))) out.push({ op: 'ne', key: m[1]!, value: m[2]! });
    else if ((m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(part))) out.push({ op: 'eq', key: m[1]!, value: m[2]! });
    else if ((m = /^!\s*([^=!\s]+)$/.exec(part))) out.push({ op: 'absent', key: m[1]! });
    else if ((m = /^([^=!\s]+)$/.exec(part))) out.push({ op: 'exists', key: m[1]! });
    else return undefined;
  }
  return out;
}

function matches(requirements: Requirement[], labels: Record<string, string> | undefined): boolean {
  for (const r of requirements) {
    const value = labels?.[r.key];
    switch (r.op) {
      case 'eq': if (value !== r.value) return false; break;
      case 'ne': if (value === r.value) return false; break;
      case 'exists': if (value === undefined) return false; break;
      case 'absent': if (value !== undefined) return false; break;
    }
  }
  return true;
}

const keyOf = (o: Watched) => o.metadata?.uid ?? o.metadata?.name ?? '';

function slim<T extends Watched>(o: T): T {
  if (!o.metadata?.managedFields) return o;
  const { managedFields: _dropped, ...metadata } = o.metadata;
  return { ...o, metadata };
}

interface Subscriber<T extends Watched> {
  requirements: Requirement[];
  onChange: (objects: T[], resourceVersion: string | undefined) => void;
  /** Its matching objects, by uid. */
  objects: Map<string, T>;
}

class NamespaceWatch<T extends Watched> {
  readonly objects = new Map<string, T>();
  readonly subscribers = new Set<Subscriber<T>>();
  synced = false;
  /** What the objects are as of: the list's resourceVersion, then each event's. */
  resourceVersion: string | undefined;
  readonly stop = new AbortController();
  lingerTimer: NodeJS.Timeout | undefined;

  constructor(readonly namespace: string, readonly mode: 'watch' | 'poll') {}

  /** Recomputes one subscriber's set from the namespace's objects and calls it. */
  refresh(sub: Subscriber<T>): void {
    sub.objects.clear();
    for (const [key, o] of this.objects) if (matches(sub.requirements, o.metadata?.labels)) sub.objects.set(key, o);
    call(sub, this.resourceVersion);
  }

  /** One object changed (or went): only the subscribers it concerns are called. */
  apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', o: T): void {
    const key = keyOf(o);
    this.resourceVersion = o.metadata?.resourceVersion ?? this.resourceVersion;
    if (type === 'DELETED') this.objects.delete(key);
    else this.objects.set(key, o);
    for (const sub of this.subscribers) {
      const had = sub.objects.has(key);
      const has = type !== 'DELETED' && matches(sub.requirements, o.metadata?.labels);
      if (!had && !has) continue;
      if (has) sub.objects.set(key, o);
      else sub.objects.delete(key);
      call(sub, this.resourceVersion);
    }
  }
}

function call<T extends Watched>(sub: Subscriber<T>, resourceVersion: string | undefined): void {
  try {
    sub.onChange([...sub.objects.values()], resourceVersion);
  } catch {
    // a subscriber's failure must not keep the others from their objects
  }
}

export class WatchHub<T extends Watched> {
  private readonly namespaces = new Map<string, NamespaceWatch<T>>();
  private readonly lifetime = new AbortController();
  private readonly maxWatches: number;
  private readonly lingerMs: number;
  private readonly pollMs: number;
  /** Lists and watches started (for tests and metrics). */
  listCalls = 0;
  watchCalls = 0;

  constructor(private readonly options: WatchHubOptions<T>) {
    this.maxWatches = options.maxWatches ?? 256;
    this.lingerMs = options.lingerMs ?? 30_000;
    this.pollMs = options.pollMs ?? 1000;
  }

  /** Namespaces watched (or polled) now, lingering ones included. */
  get size(): number {
    return this.namespaces.size;
  }

  watchedNamespaces(): Array<{ namespace: string; mode: 'watch' | 'poll'; subscribers: number; objects: number }> {
    return [...this.namespaces.values()].map((n) => ({ namespace: n.namespace, mode: n.mode, subscribers: n.subscribers.size, objects: n.objects.size }));
  }

  /**
   * `onChange` gets the current matching objects once the namespace is listed (at once when it is
   * already), then after every change to them. Undefined when the selector is set-based.
   */
  subscribe(namespace: string, selector: string, onChange: (objects: T[], resourceVersion: string | undefined) => void): Watch | undefined {
    const requirements = parseSelector(selector);
    if (!requirements) return undefined;
    if (this.lifetime.signal.aborted) return { stop: () => undefined };
    const ns = this.namespaces.get(namespace) ?? this.start(namespace);
    if (ns.lingerTimer) {
      clearTimeout(ns.lingerTimer);
      ns.lingerTimer = undefined;
    }
    const sub: Subscriber<T> = { requirements, onChange, objects: new Map() };
    ns.subscribers.add(sub);
    if (ns.synced) queueMicrotask(() => ns.subscribers.has(sub) && ns.refresh(sub));
    let stopped = false;
    return {
      stop: () => {
        if (stopped) return;
        stopped = true;
        ns.subscribers.delete(sub);
        if (ns.subscribers.size === 0 && this.namespaces.get(namespace) === ns) this.linger(ns);
      },
    };
  }

  close(): void {
    this.lifetime.abort(new Error('the watches are closed'));
    for (const ns of this.namespaces.values()) this.end(ns);
  }

  private linger(ns: NamespaceWatch<T>): void {
    if (ns.mode === 'poll' || this.lingerMs <= 0) {
      this.end(ns);
      return;
    }
    ns.lingerTimer = setTimeout(() => this.end(ns), this.lingerMs);
    ns.lingerTimer.unref();
  }

  private end(ns: NamespaceWatch<T>): void {
    clearTimeout(ns.lingerTimer);
    ns.stop.abort();
    if (this.namespaces.get(ns.namespace) === ns) this.namespaces.delete(ns.namespace);
  }

  private start(namespace: string): NamespaceWatch<T> {
    let watching = [...this.namespaces.values()].filter((n) => n.mode === 'watch');
    if (watching.length >= this.maxWatches) {
      // Make room: the unused watch that was used least recently goes first (Map order: oldest first).
      const idle = watching.find((n) => n.subscribers.size === 0);
      if (idle) this.end(idle);
      watching = [...this.namespaces.values()].filter((n) => n.mode === 'watch');
    }
    const mode = watching.length < this.maxWatches ? 'watch' : 'poll';
    if (mode === 'poll') this.options.log.warn({ namespace, kind: this.options.kind, maxWatches: this.maxWatches }, 'watch limit reached; polling this namespace');
    const ns = new NamespaceWatch<T>(namespace, mode);
    this.namespaces.set(namespace, ns);
    void this.cycle(ns);
    return ns;
  }

  /** List, then watch from the list's resourceVersion (or poll); after any end or error, list again. */
  private async cycle(ns: NamespaceWatch<T>): Promise<void> {
    const link = linkSignals(ns.stop.signal, this.lifetime.signal);
    const signal = link.signal;
    let backoffMs = 200;
    while (!signal.aborted) {
      try {
        this.listCalls++;
        const list = await this.options.source.list(ns.namespace, signal);
        if (signal.aborted) break;
        ns.objects.clear();
        for (const o of list.items) ns.objects.set(keyOf(o), slim(o));
        ns.resourceVersion = list.resourceVersion;
        ns.synced = true;
        for (const sub of [...ns.subscribers]) ns.refresh(sub);
        if (ns.mode === 'poll') {
          backoffMs = this.pollMs;
        } else {
          this.watchCalls++;
          await this.options.source.watch(ns.namespace, list.resourceVersion, (event) => {
            if (event.type === 'BOOKMARK') ns.resourceVersion = event.object.metadata?.resourceVersion ?? ns.resourceVersion;
            if (event.type !== 'ADDED' && event.type !== 'MODIFIED' && event.type !== 'DELETED') return;
            backoffMs = 200;
            ns.apply(event.type, slim(event.object));
          }, signal);
        }
      } catch (err) {
        if (signal.aborted) break;
        this.options.log.debug({ err: (err as Error).message, namespace: ns.namespace, kind: this.options.kind }, 'watch failed; listing again');
      }
      if (signal.aborted) break;
      await sleep(backoffMs, signal).catch(() => undefined);
      if (ns.mode === 'watch') backoffMs = Math.min(backoffMs * 2, 5000);
    }
    link.dispose();
  }
}
