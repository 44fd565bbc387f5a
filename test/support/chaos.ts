/**
 * Small helpers for fault loops: a seeded random source (a failing run can be replayed with the
 * seed it printed) and a log of the faults injected, with times relative to the start, to print
 * next to a failure.
 */

/** A deterministic random source (mulberry32). */
export interface Random {
  readonly seed: number;
  /** In [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  /** true with probability p. */
  chance(p: number): boolean;
}

/**
 * `seededRandom()` takes its seed from `CUTOVER_CHAOS_SEED` when set, else from the clock; either
 * way `seed` says which, so a test can print it and a failure can be replayed.
 */
export function seededRandom(seed: number = Number(process.env['CUTOVER_CHAOS_SEED'] ?? Date.now() % 2 ** 31)): Random {
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    chance: (p) => next() < p,
  };
}

export interface FaultRecord {
  /** ms since the log was created. */
  at: number;
  action: string;
  detail: string;
  /** How long the action took (set by run()). */
  durationMs?: number;
  error?: string;
}

/** What was done to the system under test, and when. */
export class FaultLog {
  readonly records: FaultRecord[] = [];
  private readonly t0 = Date.now();

  /** ms since the log was created. */
  now(): number {
    return Date.now() - this.t0;
  }

  note(action: string, detail = ''): FaultRecord {
    const r: FaultRecord = { at: this.now(), action, detail };
    this.records.push(r);
    return r;
  }

  /** Runs one fault, recording its start, duration and any error (which is rethrown). */
  async run<T>(action: string, detail: string, fn: () => Promise<T>): Promise<T> {
    const r = this.note(action, detail);
    try {
      return await fn();
    } catch (err) {
      r.error = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
      throw err;
    } finally {
      r.durationMs = this.now() - r.at;
    }
  }

  /** Number of records per action, e.g. `{ "kill replica": 10, "pause etcd": 4 }`. */
  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const r of this.records) c[r.action] = (c[r.action] ?? 0) + 1;
    return c;
  }

  /** One line per record: `+12.345s kill replica replica-1 (87 ms)`. */
  lines(): string[] {
    return this.records.map((r) => [
      `+${(r.at / 1000).toFixed(3)}s ${r.action}`,
      r.detail,
      r.durationMs !== undefined ? `(${r.durationMs} ms)` : '',
      r.error ? `FAILED: ${r.error}` : '',
    ].filter(Boolean).join(' '));
  }

  toString(): string {
    return this.lines().join('\n');
  }
}
