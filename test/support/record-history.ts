import type { WatchEvent } from '../../src/store/kv.js';

/**
 * Replays an etcd history (MemoryKv.history) of deployment records and returns the largest number
 * of DEPLOYED records of any one app at any one revision: invariant I4 holds when it is ≤ 1.
 */
export function maxDeployedPerRevision(history: ReadonlyArray<WatchEvent & { revision: number }>, namespace: string): number {
  const prefix = `deployments/${namespace}/`;
  const status = new Map<string, { app: string; status: string }>();
  let max = 0;
  const byRevision = new Map<number, Array<WatchEvent & { revision: number }>>();
  for (const e of history) if (e.key.startsWith(prefix)) byRevision.set(e.revision, [...(byRevision.get(e.revision) ?? []), e]);
  for (const revision of [...byRevision.keys()].sort((a, b) => a - b)) {
    for (const e of byRevision.get(revision)!) {
      if (e.type === 'delete') status.delete(e.key);
      else {
        const r = JSON.parse(e.value) as { appName: string; status: string };
        status.set(e.key, { app: r.appName, status: r.status });
      }
    }
    const perApp = new Map<string, number>();
    for (const s of status.values()) if (s.status === 'DEPLOYED') perApp.set(s.app, (perApp.get(s.app) ?? 0) + 1);
    max = Math.max(max, ...perApp.values(), 0);
  }
  return max;
}
