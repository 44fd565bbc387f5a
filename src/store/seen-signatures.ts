import type { KvStore } from './kv.js';
import { keys } from './keys.js';

export interface SeenSignaturesOptions {
  /** Width of a time bucket (by the request's signed timestamp). */
  bucketSeconds?: number;
  /**
   * How long after its timestamp a signature is remembered: the +30 s side of the window plus a
   * margin for clock differences between replicas. Later it is refused by the window check anyway.
   */
  retainSeconds?: number;
  /** Least time between two sweeps of this replica (a sweep follows a signed request, never a timer). */
  sweepIntervalMs?: number;
  now?: () => number;
  onError?: (err: Error) => void;
}

/**
 * The replay cache of signed requests, in etcd so that a signature accepted by one replica is
 * refused by every other, and kept across restarts and crashes: one create-only put per signed
 * request, `auth/seen-signatures/{bucket}/{sha256}`, where the bucket is the signed timestamp's
 * 30-second slot (so the same signature always lands on the same key). Every replica sweeps
 * buckets older than the window plus a margin; bucket numbers are zero-padded, so the oldest come
 * first and a sweep reads only what it deletes plus one page. Size: the signed requests of about
 * two minutes.
 */
export class EtcdSeenSignatures {
  private readonly bucketSeconds: number;
  private readonly retainSeconds: number;
  private readonly now: () => number;
  private readonly sweepIntervalMs: number;
  private lastSweep = Number.NEGATIVE_INFINITY;
  private sweeping: Promise<void> | undefined;

  constructor(private readonly kv: KvStore, private readonly options: SeenSignaturesOptions = {}) {
    this.bucketSeconds = options.bucketSeconds ?? 30;
    this.retainSeconds = options.retainSeconds ?? 90;
    this.now = options.now ?? Date.now;
    this.sweepIntervalMs = options.sweepIntervalMs ?? this.bucketSeconds * 1000;
  }

  /** True the first time a signature is seen (it is then remembered), false for a replay. */
  async firstUse(fingerprint: string, timestampSeconds: number): Promise<boolean> {
    const key = keys.seenSignature(bucketName(Math.floor(timestampSeconds / this.bucketSeconds)), fingerprint);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: String(timestampSeconds) }]);
    // Swept after signed requests, at most once an interval: an idle replica does no work (no timer),
    // and what is left when requests stop is one window's worth, swept with the next request.
    if (this.now() - this.lastSweep >= this.sweepIntervalMs) {
      this.lastSweep = this.now();
      void this.sweep();
    }
    return res.succeeded;
  }

  /** Removes the buckets every signature of which is outside the window by now. */
  sweep(): Promise<void> {
    this.sweeping ??= (async () => {
      try {
        const cutoff = bucketName(Math.floor((this.now() / 1000 - this.retainSeconds) / this.bucketSeconds));
        const prefix = keys.allSeenSignatures();
        for (;;) {
          const { entries } = await this.kv.list(prefix, { limit: 500 });
          const stale = entries.filter((e) => e.key.slice(prefix.length).split('/')[0]! < cutoff);
          if (stale.length > 0) await this.kv.transact([], stale.map((e) => ({ type: 'delete' as const, key: e.key })));
          if (stale.length < entries.length || entries.length < 500) return;
        }
      } catch (err) {
        this.options.onError?.(err as Error);
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  async close(): Promise<void> {
    await this.sweeping;
  }
}

function bucketName(bucket: number): string {
  return String(Math.max(0, bucket)).padStart(12, '0');
}
