import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SharedLease } from '../../src/store/shared-lease.js';
import { EngineHarness } from '../support/engine-harness.js';
import { MemoryKv } from '../support/memory-kv.js';

/** Issue #18 (CPU per deployment): fewer etcd transactions per deployment, one lease per replica. */
describe('one lease per replica', () => {
  it('concurrent users share one grant; after a loss every user hears of it and the next acquire grants a new lease', async () => {
    const kv = new MemoryKv();
    const shared = new SharedLease(kv, 10);
    const [a, b] = await Promise.all([shared.acquire(), shared.acquire()]);
    assert.equal(a, b);
    assert.equal(kv.leases.length, 1);
    const heard: string[] = [];
    a.onLost(() => heard.push('scheduler'));
    b.onLost(() => heard.push('webhooks'));
    kv.leases[0]!.lose();
    assert.deepEqual(heard, ['scheduler', 'webhooks']);
    const c = await shared.acquire();
    assert.notEqual(c, a);
    assert.equal(kv.leases.length, 2);
    await shared.revoke();
    assert.equal(c.validUntil(), 0);
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
