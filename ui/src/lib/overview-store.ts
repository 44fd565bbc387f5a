import { useEffect, useState } from 'preact/hooks';
import { ApiProblem, authHeaders, toProblem } from './api';
import { backoffMs } from './log-buffer';
import { SseParser } from './sse';
import type { AppSummary, Caller, Overview } from './types';

/**
 * The overview, kept live for the whole session over `GET /overview/stream` (server-sent events
 * read with fetch, so the bearer token goes in a header). Every (re)connect starts with a full
 * snapshot, so nothing is missed while disconnected; summaries that arrive out of order lose to
 * the one with the higher etcd revision. A silent stream (no keep-alive for 40 s) counts as lost.
 */

export type Connection = 'connecting' | 'live' | 'reconnecting';

export interface OverviewState {
  caller?: Caller;
  /** `namespace/app` → summary. */
  apps: Map<string, AppSummary>;
  /** Namespaces granted to the caller, shown even without apps. */
  namespaces: string[];
  connection: Connection;
  /** Why the last connection failed (shown while reconnecting). */
  problem?: ApiProblem;
  /** Bumped on every change, for rendering. */
  version: number;
}

const SILENCE_MS = 40_000;
type AppListener = (summary: AppSummary) => void;

class OverviewStore {
  state: OverviewState = { apps: new Map(), namespaces: [], connection: 'connecting', version: 0 };
  private readonly listeners = new Set<() => void>();
  private readonly appListeners = new Set<AppListener>();
  private abort: AbortController | undefined;
  private running = false;
  private attempt = 0;
  private retryTimer: number | undefined;

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Called with every app summary that changed (the app page reloads its details then). */
  onAppChange(listener: AppListener): () => void {
    this.appListeners.add(listener);
    return () => void this.appListeners.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.connect();
  }

  /** Stops and forgets everything (sign-out, or a new token). */
  reset(): void {
    this.running = false;
    this.abort?.abort();
    window.clearTimeout(this.retryTimer);
    this.attempt = 0;
    this.state = { apps: new Map(), namespaces: [], connection: 'connecting', version: this.state.version + 1 };
    this.emit();
  }

  /** Reconnect now (e.g. after signing in, or the user pressed "retry"). */
  restart(): void {
    this.reset();
    this.start();
  }

  private emit(): void {
    this.listeners.forEach((l) => l());
  }

  private update(patch: Partial<OverviewState>): void {
    this.state = { ...this.state, ...patch, version: this.state.version + 1 };
    this.emit();
  }

  private async connect(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    let silenceTimer: number | undefined;
    const armSilence = () => {
      window.clearTimeout(silenceTimer);
      silenceTimer = window.setTimeout(() => abort.abort(), SILENCE_MS);
    };
    let problem: ApiProblem | undefined;
    try {
      armSilence();
      const res = await fetch('/overview/stream', { headers: { Accept: 'text/event-stream', ...authHeaders() }, signal: abort.signal, cache: 'no-store' });
      if (!res.ok) throw await toProblem(res);
      if (!res.body) throw new ApiProblem(0, 'unreachable', 'no response body');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        armSilence();
        for (const event of parser.push(value)) this.handle(event.event, event.data);
      }
    } catch (err) {
      if (err instanceof ApiProblem) problem = err;
      else if (!this.running) return;
      else problem = new ApiProblem(0, 'unreachable', (err as Error).message);
    } finally {
      window.clearTimeout(silenceTimer);
    }
    if (!this.running || this.abort !== abort) return;
    // Signed out or not allowed: retrying will not help until the user acts.
    if (problem && (problem.status === 401 || problem.status === 403)) {
      this.running = false;
      this.update({ connection: 'reconnecting', problem });
      return;
    }
    this.update({ connection: 'reconnecting', ...(problem ? { problem } : {}) });
    this.retryTimer = window.setTimeout(() => void this.connect(), backoffMs(this.attempt++));
  }

  private handle(event: string, data: string): void {
    if (event === 'snapshot') {
      const overview = JSON.parse(data) as Overview;
      const apps = new Map<string, AppSummary>();
      for (const group of overview.namespaces) for (const app of group.apps) apps.set(`${app.namespace}/${app.appName}`, app);
      this.attempt = 0;
      const { problem: _gone, ...rest } = this.state;
      this.state = { ...rest, caller: overview.caller, apps, namespaces: overview.namespaces.map((g) => g.namespace), connection: 'live', version: this.state.version + 1 };
      this.emit();
      for (const app of apps.values()) this.appListeners.forEach((l) => l(app));
    } else if (event === 'app') {
      const summary = JSON.parse(data) as AppSummary;
      const key = `${summary.namespace}/${summary.appName}`;
      const known = this.state.apps.get(key);
      if (known && BigInt(known.revision) > BigInt(summary.revision)) return;
      const apps = new Map(this.state.apps);
      if (summary.removed) apps.delete(key);
      else apps.set(key, summary);
      this.update({ apps });
      this.appListeners.forEach((l) => l(summary));
    }
    // "end": the server asks us to start over; the stream closes right after and we reconnect.
  }
}

export const overviewStore = new OverviewStore();

export function useOverview(): OverviewState {
  const [state, setState] = useState(overviewStore.state);
  useEffect(() => {
    setState(overviewStore.state);
    return overviewStore.subscribe(() => setState(overviewStore.state));
  }, []);
  return state;
}
