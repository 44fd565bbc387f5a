import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedLease } from '../../src/store/shared-lease.js';
import { EngineHarness } from '../support/engine-harness.js';
import { MemoryKv } from '../support/memory-kv.js';
import { waitFor } from '../support/wait.js';

/** Issue #18 (CPU per deployment): fewer etcd transactions per deployment, one lease per replica. */
describe('one lease per replica', () => {
  it('concurrent users share one grant; after a loss every user hears of it and the next hold grants a new lease', async () => {
    const kv = new MemoryKv();
    const shared = new SharedLease(kv, 10);
    const [a, b] = await Promise.all([shared.hold(), shared.hold()]);
    assert.equal(a.lease, b.lease);
    assert.equal(kv.leases.length, 1);
    const heard: string[] = [];
    a.lease.onLost(() => heard.push('scheduler'));
    b.lease.onLost(() => heard.push('webhooks'));
    kv.leases[0]!.lose();
    assert.deepEqual(heard, ['scheduler', 'webhooks']);
    const c = await shared.hold();
    assert.notEqual(c.lease, a.lease);
    assert.equal(kv.leases.length, 2);
    await shared.revoke();
    assert.equal(c.lease.validUntil(), 0);
  });

  it('no lease while idle: revoked once the last holder released it and lingerMs passed; work that comes back within lingerMs shares it', async () => {
    const kv = new MemoryKv();
    const shared = new SharedLease(kv, 10, { lingerMs: 50 });
    assert.equal(shared.hasLease(), false, 'nothing granted before any work');
    const first = await shared.hold();
    const second = await shared.hold();
    first.release();
    first.release(); // twice: counted once
    assert.equal(shared.holderCount(), 1);
    second.release();
    const again = await shared.hold(); // within lingerMs: the same lease
    assert.equal(again.lease, first.lease);
    assert.equal(kv.leases.length, 1);
    again.release();
    await waitFor('the idle lease to be revoked', () => !shared.hasLease(), { timeoutMs: 2000, intervalMs: 5 });
    assert.equal(first.lease.validUntil(), 0, 'revoked in etcd');
    const later = await shared.hold();
    assert.notEqual(later.lease, first.lease, 'work after the linger gets a new lease');
    assert.equal(kv.leases.length, 2);
    later.release();
    await shared.revoke();
  });

  it('a grant that fails is not counted as a holder', async () => {
    const kv = new MemoryKv();
    const shared = new SharedLease(kv, 10, { lingerMs: 10 });
    kv.refuseLeases = true;
    await assert.rejects(shared.hold());
    assert.equal(shared.holderCount(), 0);
    kv.refuseLeases = false;
    const hold = await shared.hold();
    assert.equal(shared.holderCount(), 1);
    hold.release();
    await shared.revoke();
  });
});

describe('journal: lines go with the next state change', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  it('the lines of creating the version are stored in the transaction of step waiting-for-pods, in order and with the time they were said', async () => {
    h = await new EngineHarness().start();
    const d = await h.settled((await h.deploy()).id);
    assert.equal(d.status, 'DEPLOYED');
    const recordKey = `deployments/ns/${d.id}`;
    const waiting = h.kv.history.find((e) => e.key === recordKey && JSON.parse(e.value || '{}').step === 'waiting-for-pods');
    assert.ok(waiting, 'step waiting-for-pods was written');
    const created = h.kv.history.filter((e) => e.key.startsWith(`events/ns/${d.id}/`) && /"Created /.test(e.value ?? ''));
    assert.ok(created.length >= 1, 'the "Created" lines were written');
    for (const e of created) assert.equal(e.revision, waiting.revision, `${e.value} is in the transaction of waiting-for-pods`);
    const events = (await h.store.events('ns', d.id)).events;
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    const statusAt = events.findIndex((e) => e.type === 'status' && e.step === 'waiting-for-pods');
    for (const e of events.filter((x) => x.type === 'log' && x.message.startsWith('Created '))) {
      assert.ok(events.indexOf(e) < statusAt, 'a "Created" line comes before the status it was stored with');
      assert.ok(e.time <= events[statusAt]!.time, 'a noted line keeps the time it was said');
    }
    // Every transaction that writes only log lines is one the engine could not fold into a state change.
    const byRevision = new Map<number, string[]>();
    for (const e of h.kv.history) byRevision.set(e.revision, [...(byRevision.get(e.revision) ?? []), e.key]);
    const lineOnly = [...byRevision.values()].filter((ks) => ks.every((k) => k.startsWith(`events/ns/${d.id}/`)));
    assert.ok(lineOnly.length <= 3, `at most 3 transactions of lines alone (the health check's own lines), got ${lineOnly.length}`);
  });
});
