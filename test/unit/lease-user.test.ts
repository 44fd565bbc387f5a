import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Lease } from '../../src/store/kv.js';
import { LeaseUser, type LeaseHold, type LeaseSource } from '../../src/store/shared-lease.js';

function fakeLease(id: string): Lease & { lose(): void; listeners: number } {
  const listeners: Array<(err: Error) => void> = [];
  return {
    id, ttlSeconds: 5,
    validUntil: () => Number.POSITIVE_INFINITY,
    onLost: (l) => { listeners.push(l); },
    revoke: async () => undefined,
    lose: () => { for (const l of listeners) l(new Error(`lease ${id} lost`)); },
    get listeners() { return listeners.length; },
  };
}

/** The scheduler and the webhook dispatcher share one etcd lease; each must hear of its loss exactly once. */
describe('LeaseUser', () => {
  it('listens once per lease, and again on the new lease after a loss', async () => {
    const a = fakeLease('a');
    const b = fakeLease('b');
    let current = a;
    const source: LeaseSource = { hold: async (): Promise<LeaseHold> => ({ lease: current, release: () => undefined }) };
    const lost: string[] = [];
    const user = new LeaseUser(source, (err) => lost.push(err.message));
    await user.hold();
    await user.hold();
    assert.equal(a.listeners, 1, 'one listener however often the same lease is held');
    a.lose();
    assert.deepEqual(lost, ['lease a lost']);
    current = b;
    await user.hold();
    await user.hold();
    assert.equal(b.listeners, 1);
    b.lose();
    assert.deepEqual(lost, ['lease a lost', 'lease b lost']);
  });
});
