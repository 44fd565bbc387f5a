import type { KvStore, Lease } from './kv.js';

/** Where a component gets the etcd lease its ownership keys live with. */
export interface LeaseSource {
  /** The replica's live lease, granted when there is none (after a loss: a new one). */
  acquire(): Promise<Lease>;
}

/**
 * One etcd lease for the whole replica, owned by the composition root (src/service.ts) and handed
 * to the scheduler(s) and the webhook dispatcher: one keepalive round trip per TTL/3 instead of one
 * per component. Each user registers its own onLost on the lease it acquired, so a lost lease
 * still stops every one of them ("lost lease → stop acting"); the next acquire() grants a new one.
 * Users do not revoke it: the owner does, once all of them stopped.
 */
export class SharedLease implements LeaseSource {
  private current: Lease | undefined;
  private granting: Promise<Lease> | undefined;

  constructor(private readonly kv: KvStore, private readonly ttlSeconds: number) {}

  acquire(): Promise<Lease> {
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

  /** Ends the lease (shutdown): the keys held with it go at once, for other replicas to take over. */
  async revoke(): Promise<void> {
    const lease = this.current;
    this.current = undefined;
    await lease?.revoke();
  }
}
