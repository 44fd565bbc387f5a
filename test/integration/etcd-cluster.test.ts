import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { TestEtcdCluster, onLastEndpoint } from '../support/etcd-cluster.js';
import { waitFor } from '../support/wait.js';
import { EtcdStore } from '../../src/store/etcd.js';
import type { Lease, WatchEvent, WatchHandle } from '../../src/store/kv.js';

/**
 * TestEtcdCluster: three real etcd members, and our EtcdStore (all three endpoints listed) across
 * the loss of the leader. Figures are printed as diagnostics (docs/reliability.md, "Fault
 * injection in tests").
 */
describe('TestEtcdCluster (3 members)', { concurrency: 1 }, () => {
  let cluster: TestEtcdCluster;
  let kv: EtcdStore;
  const prefix = `/cluster-${randomUUID().slice(0, 8)}/`;
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    const t0 = Date.now();
    cluster = await TestEtcdCluster.create();
    console.log(`# 3-member cluster up in ${Date.now() - t0} ms`);
    kv = new EtcdStore({ endpoints: cluster.endpoints, prefix, timeoutMs: 1000 });
  });
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await kv?.close();
    await cluster?.destroy();
  });

  it('starts three members on distinct ports that agree on one leader', async () => {
    assert.equal(cluster.endpoints.length, 3);
    assert.equal(new Set(cluster.endpoints).size, 3);
    const leader = await cluster.waitForLeader();
    const statuses = await Promise.all([0, 1, 2].map((i) => cluster.status(i)));
    assert.equal(new Set(statuses.map((s) => s.memberId)).size, 3, 'three distinct member ids');
    for (const s of statuses) assert.equal(s.leaderId, statuses[leader]!.memberId);
    await kv.transact([], [{ type: 'put', key: 'hello', value: 'world' }]);
    assert.equal((await kv.get('hello'))?.value, 'world');
  });

  it('killLeader(): writes resume within a few seconds, leases survive or are reported lost, watches keep delivering', async () => {
    const leader = await cluster.waitForLeader();
    // A second store whose lease grants and a watch go to the leader: the store would otherwise
    // pick a random member, and the kill might not touch them at all.
    const others = cluster.endpoints.filter((_, i) => i !== leader);
    const pinned = new EtcdStore({ endpoints: [...others, cluster.member(leader).endpoint], prefix, timeoutMs: 1000 });
    closers.push(() => pinned.close());

    // Before the kill: two leases on the leader (the fault loop's TTL and the default), each with a key.
    const leases: Array<{ ttl: number; lease: Lease; lost?: { at: number; err: Error } }> = [];
    for (const ttl of [3, 10]) {
      const lease = await onLastEndpoint(() => pinned.grantLease(ttl));
      const entry: (typeof leases)[number] = { ttl, lease };
      lease.onLost((err) => { entry.lost ??= { at: Date.now(), err }; });
      await kv.transact([], [{ type: 'put', key: `owners/ttl-${ttl}`, value: 'me', leaseId: lease.id }]);
      leases.push(entry);
      closers.push(() => lease.revoke());
    }
    // Two watches: one on the leader, one wherever the store put it.
    const watches: Array<{ name: string; seen: Map<string, number>; errors: Error[] }> = [];
    for (const [name, store, open] of [
      ['on the leader', pinned, onLastEndpoint], ['on a random member', kv, (fn: () => Promise<WatchHandle>) => fn()],
    ] as const) {
      const w = { name, seen: new Map<string, number>(), errors: [] as Error[] };
      const handle = await open(() => store.watch('w/', undefined, {
        onEvents: (events: WatchEvent[]) => { for (const e of events) if (!w.seen.has(e.key)) w.seen.set(e.key, Date.now()); },
        onError: (err) => w.errors.push(err),
      }));
      closers.push(() => handle.close());
      watches.push(w);
    }

    // A writer: one put after another (each with the store's 1 s deadline), every outcome recorded.
    const outcomes: Array<{ n: number; started: number; at: number; ok: boolean; error?: string }> = [];
    let stop = false;
    const writer = (async () => {
      for (let n = 0; !stop; n++) {
        const started = Date.now();
        const error = await kv.transact([], [{ type: 'put', key: `w/${n}`, value: String(n) }]).then(() => undefined, (e: Error) => e.message);
        outcomes.push({ n, started, at: Date.now(), ok: error === undefined, ...(error ? { error } : {}) });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await waitFor('some writes before the kill', () => outcomes.filter((o) => o.ok).length >= 10, { timeoutMs: 10_000 });

    const killed = await cluster.killLeader();
    const killedAt = Date.now(); // the process is gone
    // Counted from the first write *sent* after the kill (one in flight may still succeed).
    const firstOk = await waitFor('a write sent after the kill that succeeds', () => outcomes.find((o) => o.ok && o.started >= killedAt), { timeoutMs: 30_000, intervalMs: 10 });
    const writeRecovery = firstOk.at - killedAt;
    const newLeader = await cluster.waitForLeader();
    const electedAfter = Date.now() - killedAt;
    assert.notEqual(newLeader, killed);

    // Keep writing a while with one endpoint dead: the store picks a random endpoint per call; a
    // call refused by the dead member goes to another, and its breaker soon skips it.
    await new Promise((r) => setTimeout(r, 5000));
    stop = true;
    await writer;
    const afterKill = outcomes.filter((o) => o.started >= killedAt);
    const steady = afterKill.filter((o) => o.at > firstOk.at);
    const steadyFailures = steady.filter((o) => !o.ok);
    const failureKinds = [...new Set(afterKill.filter((o) => !o.ok).map((o) => (o.error ?? '').replace(/remote_addr=\S+|127\.0\.0\.1:\d+/g, '…').split('.')[0]))];

    // Both watches deliver every write made after the kill (and, as a check, every one before it).
    const okKeys = outcomes.filter((o) => o.ok);
    const watchReport: string[] = [];
    for (const w of watches) {
      const complete = await waitFor(`the watch ${w.name} to deliver every successful write`, () => okKeys.every((o) => w.seen.has(`w/${o.n}`)), { timeoutMs: 15_000, intervalMs: 50 })
        .then(() => true, () => false);
      const lags = okKeys.filter((o) => o.at > killedAt && w.seen.has(`w/${o.n}`)).map((o) => Math.max(0, w.seen.get(`w/${o.n}`)! - o.at));
      const missing = okKeys.filter((o) => !w.seen.has(`w/${o.n}`)).length;
      watchReport.push(`watch ${w.name}: ${complete ? 'delivered every write' : `MISSED ${missing} writes`}; after the kill max lag ${Math.max(0, ...lags)} ms; errors ${w.errors.length}`);
      assert.ok(complete, `the watch ${w.name} missed ${missing} writes`);
      assert.deepEqual(w.errors, [], `the watch ${w.name} reported errors`);
    }

    // Writes reported failed that etcd applied anyway (a deadline hit while the proposal was in
    // flight): their outcome is unknown to the caller. The watch on a random member saw them.
    const appliedAnyway = outcomes.filter((o) => !o.ok && watches.some((w) => w.seen.has(`w/${o.n}`)));
    const byKind = (list: typeof outcomes) => [...new Set(list.map((o) => (o.error ?? '').split(':').slice(0, 2).join(':')))].join(' | ');

    // The leases: alive (key still there) or reported lost — never gone silently. Wait past the
    // shorter TTL first, so an expired lease would show.
    await new Promise((r) => setTimeout(r, 3000));
    const leaseReport: string[] = [];
    for (const l of leases) {
      const key = await waitFor(`owners/ttl-${l.ttl}`, async () => ({ v: await kv.get(`owners/ttl-${l.ttl}`) }), { timeoutMs: 10_000 });
      const present = key.v !== undefined;
      leaseReport.push(`lease TTL ${l.ttl} s (granted on the killed leader): ${l.lost ? `reported lost after ${l.lost.at - killedAt} ms (${l.lost.err.message.split('\n')[0]})` : 'alive'}, key ${present ? 'present' : 'gone'}`);
      assert.ok(present || l.lost, `lease TTL ${l.ttl}: its key is gone but the lease was not reported lost`);
      if (!l.lost) assert.ok(present, `lease TTL ${l.ttl} says alive, its key must be there`);
    }

    console.log([
      `leader m${leader} (streams pinned on it), killed m${killed}: first successful write after ${writeRecovery} ms; new leader m${newLeader} agreed after ${electedAfter} ms`,
      `writes after the kill: ${afterKill.length}, ${afterKill.filter((o) => !o.ok).length} failed (${failureKinds.join(' | ')})`,
      `after recovery, with one endpoint dead: ${steady.length} writes, ${steadyFailures.length} failed (${Math.round((100 * steadyFailures.length) / Math.max(1, steady.length))} %)`,
      `writes reported failed but applied: ${appliedAnyway.length}${appliedAnyway.length ? ` (${byKind(appliedAnyway)})` : ''}`,
      ...watchReport, ...leaseReport,
    ].map((l) => `# ${l}`).join('\n'));

    assert.ok(writeRecovery < 10_000, `writes resumed ${writeRecovery} ms after the kill`);
  });

  it('restartMember(): the killed member rejoins with its data and the cluster has three members again', async () => {
    const dead = cluster.members.findIndex((m) => !m.running);
    assert.notEqual(dead, -1, 'the previous test left one member killed');
    const t0 = Date.now();
    await cluster.restartMember(dead);
    const leader = await cluster.waitForLeader();
    console.log(`# member m${dead} restarted and healthy after ${Date.now() - t0} ms; leader m${leader}`);
    await kv.transact([], [{ type: 'put', key: 'after-rejoin', value: 'yes' }]);
    // Read through the rejoined member alone: it has caught up (a linearizable read there).
    const only = new EtcdStore({ endpoints: [cluster.member(dead).endpoint], prefix, timeoutMs: 2000 });
    try {
      const value = await waitFor('the rejoined member to serve the new key', async () => (await only.get('after-rejoin'))?.value, { timeoutMs: 10_000 });
      assert.equal(value, 'yes');
      assert.equal((await only.get('hello'))?.value, 'world', 'data from before the kill');
    } finally {
      await only.close();
    }
    const statuses = await Promise.all([0, 1, 2].map((i) => cluster.status(i)));
    assert.equal(new Set(statuses.map((s) => s.leaderId)).size, 1, 'all three agree on the leader');
  });

  it('a paused follower: calls that land on it wait for their deadline; the cluster keeps its leader', async () => {
    const leader = await cluster.waitForLeader();
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const paused = cluster.member(follower).pauseFor(3000);
    await waitFor('the pause', () => cluster.member(follower).paused, { timeoutMs: 2000, intervalMs: 5 });
    const results: Array<{ ok: boolean; ms: number }> = [];
    const t0 = Date.now();
    while (Date.now() - t0 < 2500) {
      const t = Date.now();
      const ok = await kv.get('hello').then(() => true, () => false);
      results.push({ ok, ms: Date.now() - t });
    }
    await paused;
    assert.equal(await cluster.waitForLeader(), leader, 'a paused follower does not cost the leader its leadership');
    const failed = results.filter((r) => !r.ok);
    console.log(`# follower m${follower} paused 3 s: ${results.length} gets, ${failed.length} failed after ${failed.map((r) => r.ms).join(', ')} ms`);
    assert.ok(failed.every((r) => r.ms >= 900), 'a call on the paused member fails at its deadline, not before');
    await waitFor('a get through every member after the pause', async () => (await kv.get('hello'))?.value === 'world', { timeoutMs: 5000 });
  });
});
