import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KubeError } from '../../src/deployer/cluster.js';
import { StoreUnavailableError } from '../../src/store/kv.js';
import { EngineHarness } from '../support/engine-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * The engine's safety rules on an in-memory etcd and cluster: the paths that are hard to reach on
 * the real test bed. test/integration/safety.test.ts covers the same rules on the test bed.
 */
describe('engine safety rules (in memory)', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  it('blue-green: v2 goes live in one transaction with v1 draining (never two DEPLOYED records), then v1 is removed', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    assert.equal(v1.status, 'DEPLOYED');
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    await h.idle();
    assert.equal((await h.record(v1.id)).status, 'UNDEPLOYED');
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
    assert.equal(h.ingressBackend(), 'shop-2');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-2']);
    assert.deepEqual(JSON.parse((await h.kv.get('live/ns/shop'))!.value), { deploymentId: v2.id, version: '2' });
    // Problem 6: the switch's outcome is one etcd revision: v2 DEPLOYED and v1 UNDEPLOYING together.
    const v1Draining = h.kv.history.find((e) => e.key === `deployments/ns/${v1.id}` && JSON.parse(e.value || '{}').status === 'UNDEPLOYING');
    const v2Deployed = h.kv.history.find((e) => e.key === `deployments/ns/${v2.id}` && JSON.parse(e.value || '{}').status === 'DEPLOYED');
    assert.ok(v1Draining && v2Deployed);
    assert.equal(v1Draining.revision, v2Deployed.revision, 'DEPLOYED and the replaced record\'s UNDEPLOYING are one transaction');
  });

  it('problem 2: redeploying the running version fails without touching it, and the live record can still be undeployed', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy({ newVersion: '3' })).id);
    await h.idle();
    const before = { svc: h.cluster.object('Service', 'ns', 'shop'), ing: h.cluster.object('Ingress', 'ns', 'shop'), wl: h.cluster.object('Deployment', 'ns', 'shop-3') };
    const writesBefore = h.cluster.writes.length;
    const again = await h.settled((await h.deploy({ newVersion: '3' })).id);
    assert.equal(again.status, 'FAILURE');
    assert.match(again.failureReason ?? '', /version 3 of shop is already running/);
    await h.idle();
    assert.deepEqual(h.cluster.writes.slice(writesBefore), [], 'no Kubernetes write at all');
    assert.deepEqual(h.cluster.object('Service', 'ns', 'shop'), before.svc);
    assert.deepEqual(h.cluster.object('Ingress', 'ns', 'shop'), before.ing);
    assert.deepEqual(h.cluster.object('Deployment', 'ns', 'shop-3'), before.wl);
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
    await h.undeploy(v1.id);
    assert.equal((await h.settled(v1.id, new Set(['UNDEPLOYED', 'FAILURE']))).status, 'UNDEPLOYED');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), []);
    assert.deepEqual(h.cluster.names('Ingress', 'ns'), []);
    assert.equal(await h.kv.get('live/ns/shop'), undefined);
  });

  it('problem 3: a stored descriptor with replicas 0 fails before anything is created', async () => {
    h = await new EngineHarness().start();
    const r = await h.settled((await h.deploy({ replicas: 0 }, true)).id);
    assert.equal(r.status, 'FAILURE');
    assert.match(r.failureReason ?? '', /replicas.*greater than or equal to 1/);
    assert.deepEqual(h.cluster.writes, []);
  });

  it('a permanent error of the Kubernetes API ends the deployment at once with the API\'s reason (problem 7)', async () => {
    h = await new EngineHarness().start();
    h.cluster.fault = (op, kind) => {
      if (op === 'create' && kind === 'Deployment') throw new KubeError('create Deployment: 422 Invalid: spec.template.spec.containers[0].resources.limits: Invalid value: "lots"', 422, 'Invalid');
    };
    const started = Date.now();
    const r = await h.settled((await h.deploy()).id);
    assert.equal(r.status, 'FAILURE');
    assert.match(r.failureReason ?? '', /the Kubernetes API refused: .*422 Invalid.*"lots"/);
    assert.ok(Date.now() - started < 2000);
  });

  it('a target that fails mid-switch: every target the switch touched goes back — the failing one too, whose write landed (problem 5)', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const svcBefore = h.cluster.object('Service', 'ns', 'shop');
    const ingBefore = h.cluster.object('Ingress', 'ns', 'shop');
    let failed = false;
    h.cluster.afterWrite = (op, kind, name) => {
      // The Ingress write reaches the API server, but its answer is lost.
      if (!failed && op === 'replace' && kind === 'Ingress' && name === 'shop') {
        failed = true;
        throw new KubeError('replace Ingress: no answer within 10000 ms', 0, 'Unavailable');
      }
    };
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'FAILURE');
    assert.match(v2.failureReason ?? '', /switching traffic failed/);
    await h.idle();
    assert.deepEqual(h.stableSelector(), svcBefore?.spec?.selector);
    assert.equal(h.ingressBackend(), 'shop-1', 'the Ingress whose switch "failed" was put back');
    assert.equal(h.cluster.object('Ingress', 'ns', 'shop')?.metadata?.annotations?.['cutover.io/deployment-id'], ingBefore?.metadata?.annotations?.['cutover.io/deployment-id']);
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
  });

  it('when traffic cannot be put back, the new version stays (traffic may point at it) and the reconciler finishes the job (problem 5)', async () => {
    h = await new EngineHarness({ cleanupTimeoutSeconds: 1 }).start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    let apiDown = false;
    h.cluster.fault = (op, kind) => {
      if (apiDown && (op !== 'get' || kind === 'Service')) throw new KubeError(`${op} ${kind}: 503`, 503, 'ServiceUnavailable');
    };
    h.cluster.afterWrite = (op, kind, name) => {
      if (op === 'replace' && kind === 'Service' && name === 'shop') apiDown = true; // the API goes away right after the first switch
    };
    const v2 = await h.settled((await h.deploy({ deadlineSeconds: 10 })).id, new Set(['FAILURE', 'DEPLOYED']), 30_000);
    assert.equal(v2.status, 'FAILURE');
    assert.equal(v2.cleanupIncomplete, true);
    assert.match(v2.failureReason ?? '', /cleanup incomplete/);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' }, 'still on v2: the API was away');
    assert.ok(h.cluster.names('Deployment', 'ns').includes('shop-2'), 'v2 was not deleted while traffic points at it');
    assert.ok(await h.kv.get('reconcile/ns/shop'), 'a reconcile request was left');
    h.cluster.fault = () => {};
    h.cluster.afterWrite = () => {};
    await waitFor('the reconciler to put traffic back and remove v2', async () => !(await h.kv.get('reconcile/ns/shop')), { timeoutMs: 20_000, intervalMs: 50 });
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
    assert.equal(h.cluster.object('Service', 'ns', 'shop')?.metadata?.annotations?.['cutover.io/deployment-id'], v1.id);
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
  });

  it('I5: once its lease is lost, a replica makes no further write for the app (problem 5)', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    let lose: (() => void) | undefined;
    h.failpoints = {
      hit: async (name) => {
        if (name === 'after-first-traffic-target') lose?.();
      },
    };
    let writesAtLoss = -1;
    lose = () => {
      lose = undefined;
      h.kv.refuseLeases = true; // this replica cannot get a new lease either, for now
      h.kv.leases[0]!.lose();
      writesAtLoss = h.cluster.writes.length;
    };
    const v2 = await h.deploy();
    await waitFor('ownership to be lost mid-switch', async () => writesAtLoss >= 0, { timeoutMs: 10_000, intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(h.cluster.writes.slice(writesAtLoss), [], 'no write after the lease was lost');
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
    assert.equal(h.ingressBackend(), 'shop-1', 'the Ingress was not switched by the old owner');
    assert.equal((await h.record(v2.id)).status, 'DEPLOYING', 'left for the next owner');
    h.kv.refuseLeases = false;
    const done = await h.settled(v2.id);
    assert.equal(done.status, 'DEPLOYED', 'the next owner (a new lease) resumed and completed the switch');
    assert.equal(h.ingressBackend(), 'shop-2');
  });

  it('problem 4: etcd failing right after the switch does not strand the deployment; it ends DEPLOYED and nothing live is deleted', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    let failures = 0;
    const realGet = h.kv.get.bind(h.kv);
    h.kv.get = async (key: string) => {
      // One etcd read fails right after the switch (the live pointer read of the commit).
      if (key === 'live/ns/shop' && h.stableSelector()?.['version'] === '2' && failures === 0) {
        failures++;
        throw new StoreUnavailableError('etcd unavailable: test');
      }
      return realGet(key);
    };
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(failures, 1);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-2']);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
  });

  it('problem 7: a queued item whose record is unreadable is dropped and reported; the app\'s next deployment runs', async () => {
    h = new EngineHarness();
    await h.kv.transact([], [
      { type: 'put', key: 'deployments/ns/bad', value: '{not json' },
      { type: 'put', key: 'queue/ns/shop/bad', value: JSON.stringify({ workId: 'bad', kind: 'deploy', deploymentId: 'bad', enqueued: new Date().toISOString() }) },
    ]);
    await h.start();
    const r = await h.settled((await h.deploy()).id);
    assert.equal(r.status, 'DEPLOYED');
    assert.ok(h.unreadable.includes('deployments/ns/bad'));
    assert.equal((await h.kv.get('deployments/ns/bad'))?.value, '{not json', 'the unreadable record is kept as it is');
  });

  it('an item that keeps failing unexpectedly is ended after its attempts, and the queue moves on (problem 7)', async () => {
    h = await new EngineHarness().start();
    const real = h.engine.run.bind(h.engine);
    let calls = 0;
    const first = await h.deploy();
    h.engine.run = async (item, ownership) => {
      if (item.deploymentId === first.id) {
        calls++;
        throw new TypeError('a bug');
      }
      return real(item, ownership);
    };
    const second = await h.deploy();
    const failed = await h.settled(first.id);
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason ?? '', /internal error: a bug/);
    assert.equal(calls, 3);
    assert.equal((await h.settled(second.id)).status, 'DEPLOYED');
  });

  it('problem 7: after a watch error the scheduler watches again (no polling): new work is picked up at once', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    h.kv.breakWatches(new Error('mvcc: required revision has been compacted'));
    await new Promise((r) => setTimeout(r, 400)); // re-list and re-watch after the backoff
    const listsBefore = h.kv.lists.length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(h.kv.lists.length, listsBefore, 'nothing is listed while idle (no periodic scans)');
    const started = Date.now();
    const r = await h.settled((await h.deploy()).id);
    assert.equal(r.status, 'DEPLOYED');
    assert.ok(Date.now() - started < 2000, 'picked up from the new watch, not by a periodic resync');
  });

  it('retention: keeps the newest N records per app with their logs (the live one always); older finished ones go', async () => {
    h = await new EngineHarness({ retainRecords: 2 }).start();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await h.settled((await h.deploy()).id)).id);
      await h.idle();
    }
    const left = (await h.store.listApp('ns', 'shop')).records.map((r) => `${r.value.version}:${r.value.status}`);
    assert.deepEqual(left, ['5:DEPLOYED', '4:UNDEPLOYED']);
    for (const gone of ids.slice(0, 3)) {
      assert.equal(await h.kv.get(`deployments/ns/${gone}`), undefined);
      assert.deepEqual((await h.kv.list(`events/ns/${gone}/`)).entries, [], 'its log went with it');
      assert.deepEqual((await h.kv.list(`app-records/ns/shop/${gone}`)).entries, []);
    }
  });
});
