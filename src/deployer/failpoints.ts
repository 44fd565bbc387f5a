import { sleep } from '../lib/deadline.js';

/**
 * Failpoints: named places in the engine where a test can make cutover pause, so that a crash or
 * an outage can be placed exactly there (between switching the stable Service and the Ingress,
 * say). Configured with CUTOVER_FAILPOINTS="name=pause:ms,…"; empty in production, where every
 * failpoint is a no-op. The idea is etcd's gofail, reduced to what our tests need.
 */

export type FailpointName =
  | 'before-health-check'
  | 'after-first-traffic-target'
  | 'before-drain-removal'
  | 'before-undeploy-removal';

const NAMES: ReadonlySet<string> = new Set<FailpointName>(['before-health-check', 'after-first-traffic-target', 'before-drain-removal', 'before-undeploy-removal']);

export interface Failpoints {
  /** Resolves when the failpoint has passed (at once unless configured). */
  hit(name: FailpointName, signal?: AbortSignal): Promise<void>;
}

export const noFailpoints: Failpoints = { hit: async () => {} };

/** Parses "before-health-check=pause:5000,after-first-traffic-target=pause:8000". */
export function parseFailpoints(spec: string | undefined): Failpoints {
  if (!spec) return noFailpoints;
  const pauses = new Map<string, number>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z-]+)=pause:(\d{1,7})$/.exec(part);
    if (!m || !NAMES.has(m[1]!)) throw new Error(`invalid failpoint "${part}"; expected NAME=pause:MS with NAME one of ${[...NAMES].join(', ')}`);
    pauses.set(m[1]!, Number(m[2]));
  }
  return {
    hit: (name, signal) => {
      const ms = pauses.get(name);
      if (ms === undefined) return Promise.resolve();
      return sleep(ms, signal);
    },
  };
}
