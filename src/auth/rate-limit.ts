import net from 'node:net';

export interface FailedAuthLimiterOptions {
  /** Failed authentications allowed per minute and client (also the burst size). */
  failuresPerMinute: number;
  /** Clients tracked at most; beyond that the least recently failing ones are forgotten. */
  maxClients?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/**
 * A token bucket per client address, spent only by failed authentications: each failure takes a
 * token, tokens refill at `failuresPerMinute` per minute, and a failure with no token left is
 * answered 429 with Retry-After instead of 401. Requests that authenticate are never limited, so a
 * pipeline behind the same NAT as a misconfigured neighbour keeps working (credentials are 256-bit
 * secrets or asymmetric signatures, so the limit is about cost and noise, not guessing).
 */
export class FailedAuthLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly capacity: number;
  private readonly refillPerMs: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: FailedAuthLimiterOptions) {
    this.capacity = options.failuresPerMinute;
    this.refillPerMs = options.failuresPerMinute / 60_000;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Records one failure; returns the seconds to wait when the client is over its budget, else undefined. */
  recordFailure(address: string | undefined): number | undefined {
    const key = clientKey(address);
    const now = this.now();
    const bucket = this.refill(this.buckets.get(key) ?? { tokens: this.capacity, updatedMs: now }, now);
    // Re-insert so Map order is least-recently-failing first (for eviction).
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    this.evict();
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.refillPerMs / 1000));
  }

  /** Clients currently tracked (tests, metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private refill(bucket: Bucket, now: number): Bucket {
    const elapsed = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(this.capacity, bucket.tokens + elapsed * this.refillPerMs);
    bucket.updatedMs = now;
    return bucket;
  }

  private evict(): void {
    while (this.buckets.size > this.maxClients) {
      const oldest = this.buckets.keys().next().value;
      if (oldest === undefined) return;
      this.buckets.delete(oldest);
    }
  }
}

/**
 * The unit a budget belongs to: an IPv4 address (IPv4-mapped IPv6 unwrapped), or an IPv6 /64,
 * since one IPv6 client typically controls a whole /64.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (net.isIPv6(address)) return `${expandIPv6(address).slice(0, 4).join(':')}::/64`;
  return address;
}

function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.split('%')[0]!.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - left.length - right.length;
  return [...left, ...Array<string>(Math.max(0, missing)).fill('0'), ...right].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
