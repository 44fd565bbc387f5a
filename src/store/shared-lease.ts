import type { KvStore, Lease } from './kv.js';

/** A lease held for one piece of work; release() once the keys held with it are released. */
export interface LeaseHold {
  readonly lease: Lease;
  release(): void;
}

/** Where a component gets the etcd lease its ownership keys live with. */
export interface LeaseSource {
  /** The replica's live lease, granted when there is none (after a loss: a new one), held until release(). */
  hold(): Promise<LeaseHold>;
}

/**
 * One component's use of a LeaseSource: holds the lease per piece of work, and hears once per
 * lease — a new lease after a loss gets its own listener — when it is lost, so that it stops
 * acting on what it owned ("lost lease → stop acting").
 */
export class LeaseUser {
  private lease: Lease | undefined;

  constructor(private readonly source: LeaseSource, private readonly onLost: (err: Error) => void) {}

  async hold(): Promise<LeaseHold> {
    const hold = await this.source.hold();
    if (this.lease !== hold.lease) {
      const lease = hold.lease;
      this.lease = lease;
      lease.onLost((err) => {
        if (this.lease === lease) this.lease = undefined;
        this.onLost(err);
      });
    }
    return hold;
  }
}

/**
 * One etcd lease for the whole replica, owned by the composition root (src/service.ts) and handed
 * to the scheduler(s) and the webhook dispatcher: one keepalive round trip per TTL/3 instead of one
 * per component. Each user registers its own onLost on the lease it got, so a lost lease still
 * stops every one of them ("lost lease → stop acting"); the next hold() grants a new one.
 *
 * The lease exists only while someone holds it, and for `lingerMs` after the last release (so
 * back-to-back work shares one grant): an idle replica keeps no lease alive and so sends no
 * keepalives (issue #18: no CPU while idle). Nothing outlives a release — owner keys and stream
 * claims are deleted before it — so revoking then takes nobody's key away.
 */
export class SharedLease implements LeaseSource {
  private current: Lease | undefined;
  private granting: Promise<Lease> | undefined;
  private holders = 0;
  private linger: NodeJS.Timeout | undefined;
  private readonly lingerMs: number;

  constructor(private readonly kv: KvStore, private readonly ttlSeconds: number, options: { lingerMs?: number } = {}) {
    this.lingerMs = options.lingerMs ?? ttlSeconds * 1000;
  }

  async hold(): Promise<LeaseHold> {
    this.holders++;
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    let lease: Lease;
    try {
      lease = await this.acquire();
    } catch (err) {
      this.released();
      throw err;
    }
    let held = true;
    return {
      lease,
      release: () => {
        if (!held) return;
        held = false;
        this.released();
      },
    };
  }

  /** Holders now (tests, diagnostics). */
  holderCount(): number {
    return this.holders;
  }

  /** Whether a lease is alive now (tests, diagnostics): false while nobody held one for `lingerMs`. */
  hasLease(): boolean {
    return this.current !== undefined;
  }

  /** Ends the lease (shutdown): the keys held with it go at once, for other replicas to take over. */
  async revoke(): Promise<void> {
    if (this.linger) clearTimeout(this.linger);
    this.linger = undefined;
    const lease = this.current;
    this.current = undefined;
    await lease?.revoke();
  }

  private acquire(): Promise<Lease> {
    if (this.current && this.current.validUntil() > 0) return Promise.resolve(this.current);
    // Concurrent callers share one grant.
    this.granting ??= this.kv.grantLease(this.ttlSeconds).then((lease) => {
      this.current = lease;
      lease.onLost(() => {
        if (this.current === lease) this.current = undefined;
      });
      return lease;
    }).finally(() => {
      this.granting = undefined;
    });
    return this.granting;
  }

  private released(): void {
    this.holders--;
    if (this.holders > 0 || this.linger) return;
    this.linger = setTimeout(() => {
      this.linger = undefined;
      // A grant still in flight belongs to a hold() that is about to count itself; leave it be.
      if (this.holders > 0 || this.granting) return;
      void this.revoke().catch(() => undefined);
    }, this.lingerMs);
    this.linger.unref(); // an unrevoked lease only costs keepalives; it must not keep a process alive
  }
}
