import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StateConflictError } from '../../src/domain/errors.js';
import type { FailpointName } from '../../src/deployer/failpoints.js';
import { EngineHarness } from '../support/engine-harness.js';
import { maxDeployedPerRevision } from '../support/record-history.js';
import { waitFor } from '../support/wait.js';

/** Instant rollback inside the drain window (issue #17), in memory; test/integration/gates.test.ts times it through the real API. */
describe('instant rollback', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  const log = async (id: string) => (await h.store.events('ns', id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
  const draining = (id: string) => waitFor(`deployment ${id} draining`, async () => {
    const r = await h.record(id);
    return r.status === 'UNDEPLOYING' && r.step === 'draining' ? r : undefined;
  }, { timeoutMs: 10_000, intervalMs: 5 });
  /** Holds the engine at one failpoint until released; `reached` resolves when it got there. */
  const hold = (name: FailpointName) => {
    let release!: () => void;
    let reached!: () => void;
    const released = new Promise<void>((r) => { release = r; });
    const arrived = new Promise<void>((r) => { reached = r; });
    h.failpoints = { hit: async (n) => { if (n === name) { reached(); await released; } } };
    return { release, arrived };
  };

  async function liveWithDrainingPredecessor() {
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const v2 = await h.settled((await h.deploy({ drainSeconds: 60 })).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    await draining(v1.id);
    return { v1, v2 };
  }

  it('during the drain: traffic goes back to the draining version in one write per target, no pod is created, both records say what happened', async () => {
    h = await new EngineHarness().start();
    const { v1, v2 } = await liveWithDrainingPredecessor();
    const writesBefore = h.cluster.writes.length;
    const t0 = Date.now();
    const outcome = await h.rollback(v2.id, 'alice');
    assert.equal(outcome.kind, 'instant');
    const restored = await h.settled(v1.id, new Set(['DEPLOYED']));
    const ms = Date.now() - t0;
    assert.ok(ms < 1000, `the rollback took ${ms} ms`);
    assert.equal(restored.restoredFrom, v2.id);
    assert.ok(restored.times.restored);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
    assert.equal(h.ingressBackend(), 'shop-1');
    const rolled = await h.settled(v2.id, new Set(['UNDEPLOYED']));
    assert.deepEqual({ ...rolled.rolledBack, requested: undefined, switchMs: undefined }, {
      to: v1.id, toVersion: '1', by: 'alice', automatic: false, reason: 'rollback requested by alice', requested: undefined, switchMs: undefined,
    });
    assert.equal(typeof rolled.rolledBack?.switchMs, 'number');
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1'], 'version 2 removed, version 1 kept');
    const writes = h.cluster.writes.slice(writesBefore);
    assert.ok(!writes.some((w) => w.startsWith('create Deployment') || w.startsWith('create ReplicationController')), `no workload created: ${writes.join(', ')}`);
    const trafficWrites = writes.filter((w) => /^(replace|create) (Service ns\/shop|Ingress ns\/shop)$/.test(w));
    assert.deepEqual(trafficWrites.sort(), ['replace Ingress ns/shop', 'replace Service ns/shop'], 'one write per traffic target');
    assert.deepEqual(JSON.parse((await h.kv.get('live/ns/shop'))!.value), { deploymentId: v1.id, version: '1' });
    assert.equal(maxDeployedPerRevision(h.kv.history, 'ns'), 1, 'I4: never two DEPLOYED records');
    assert.ok((await log(v2.id)).some((l) => l.startsWith('Rolled back in ')), (await log(v2.id)).join('\n'));
    assert.ok((await log(v1.id)).some((l) => l.startsWith('Live again: traffic is on version 1 again')), (await log(v1.id)).join('\n'));
    assert.deepEqual((await h.kv.list('queue/ns/shop/')).entries, [], 'the deploy item and the rollback item are gone');
  });

  it('after the drain it is a normal redeploy of the earlier descriptor copy (a new version)', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const v2 = await h.settled((await h.deploy()).id);
    await h.idle();
    assert.equal((await h.record(v1.id)).status, 'UNDEPLOYED');
    const outcome = await h.rollback(v2.id);
    assert.equal(outcome.kind, 'redeploy');
    assert.ok(outcome.kind === 'redeploy');
    assert.equal(outcome.record.redeployOf, v1.id);
    const v3 = await h.settled(outcome.record.id);
    assert.equal(v3.status, 'DEPLOYED', v3.failureReason);
    assert.equal(v3.version, '3');
    assert.deepEqual(v3.descriptor.podspec, v1.descriptor.podspec);
    assert.ok(!h.kv.history.some((e) => e.key.startsWith('queue/ns/shop/rollback-')), 'no instant rollback was queued');
  });

  it('is refused for a record that is not live, one with nothing to go back to, and one being rolled back; a second request while one is pending is the same request', async () => {
    h = await new EngineHarness().start();
    const first = await h.settled((await h.deploy()).id);
    await h.idle();
    await assert.rejects(h.rollback(first.id), (e: Error) => e instanceof StateConflictError && /nothing to roll back to/.test(e.message));
    const v2 = await h.settled((await h.deploy({ drainSeconds: 60 })).id);
    await draining(first.id);
    const { release, arrived } = hold('after-first-traffic-target'); // the switch back stops between its two targets
    const a = await h.rollback(v2.id);
    const b = await h.rollback(v2.id).catch((e: Error) => e);
    assert.equal(a.kind, 'instant');
    // Either the request is still pending (the same one) or the switch back has begun (refused).
    assert.ok((b instanceof StateConflictError && /being rolled back/.test(b.message)) || (!(b instanceof Error) && b.kind === 'instant' && b.already), String(b));
    await arrived;
    await assert.rejects(h.rollback(v2.id), (e: Error) => e instanceof StateConflictError && /being rolled back already/.test(e.message));
    await assert.rejects(h.rollback(first.id), (e: Error) => e instanceof StateConflictError && /is UNDEPLOYING/.test(e.message));
    release();
    await h.settled(first.id, new Set(['DEPLOYED']));
  });

  it('race, rollback first: a request that arrives after the drain delay ended but before the removal wins, the old version is kept', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const { release, arrived } = hold('before-drain-removal');
    const v2 = await h.settled((await h.deploy({ drainSeconds: 0 })).id);
    await arrived; // the drain delay is over; the drain is about to remove version 1
    assert.equal((await h.rollback(v2.id)).kind, 'instant');
    release();
    const back = await h.settled(v1.id, new Set(['DEPLOYED']));
    assert.equal(back.restoredFrom, v2.id);
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
    assert.equal((await h.record(v2.id)).status, 'UNDEPLOYED');
    assert.ok(!h.kv.history.some((e) => e.key === `deployments/ns/${v1.id}` && JSON.parse(e.value || '{}').step === 'removing'), 'version 1 never reached "removing"');
  });

  it('race, removal first: once the drain decided to remove the old version, a request becomes a redeploy; a stale request cannot be stored', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    // Hold the drain right after its decision: the delete of version 1's workload waits.
    let releaseDelete!: () => void;
    const deleteHeld = new Promise<void>((r) => { releaseDelete = r; });
    const originalDelete = h.cluster.delete.bind(h.cluster);
    h.cluster.delete = async (kind, ns, name) => {
      if (name === 'shop-1') await deleteHeld;
      return originalDelete(kind, ns, name);
    };
    const v2 = await h.deploy({ drainSeconds: 1 });
    const whileDraining = await waitFor('version 1 draining', async () => {
      const found = await h.store.get('ns', v1.id);
      return found && found.value.step === 'draining' ? found : undefined;
    }, { timeoutMs: 10_000, intervalMs: 5 });
    await waitFor('version 1 being removed', async () => (await h.record(v1.id)).step === 'removing', { timeoutMs: 10_000, intervalMs: 5 });
    const live = await h.record(v2.id);
    assert.equal(await h.store.requestRollback(live, v1.id, whileDraining.revision, 'late'), 'moved', 'a request read while draining is refused by etcd');
    const outcome = await h.rollback(v2.id);
    assert.equal(outcome.kind, 'redeploy');
    releaseDelete();
    assert.equal((await h.settled(v1.id)).status, 'UNDEPLOYED');
    const v3 = await h.settled(outcome.kind === 'redeploy' ? outcome.record.id : '');
    assert.equal(v3.status, 'DEPLOYED', v3.failureReason);
    assert.ok(!h.kv.history.some((e) => e.key.startsWith('queue/ns/shop/rollback-')), 'no instant rollback was ever queued');
  });

  it('a rollback request wakes a drain at once (it does not wait for the drain delay) and a later deployment still runs', async () => {
    h = await new EngineHarness().start();
    const { v1, v2 } = await liveWithDrainingPredecessor();
    const next = await h.deploy(); // queued behind the drain
    const t0 = Date.now();
    await h.rollback(v2.id);
    const v3 = await h.settled(next.id);
    assert.equal(v3.status, 'DEPLOYED', v3.failureReason);
    const restoredAt = h.kv.history.find((e) => e.key === `deployments/ns/${v1.id}` && JSON.parse(e.value || '{}').restoredFrom === v2.id);
    assert.ok(restoredAt, 'version 1 became live again');
    assert.ok(Date.parse(JSON.parse(restoredAt.value).times.restored) - t0 < 5000, 'long before the 60-s drain delay');
    assert.equal(v3.OldVersion, '1', 'the queued deployment replaced the restored version');
    assert.equal((await h.record(v2.id)).status, 'UNDEPLOYED');
  });
});
