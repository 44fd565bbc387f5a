import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StateConflictError } from '../../src/domain/errors.js';
import { EngineHarness } from '../support/engine-harness.js';
import { waitFor } from '../support/wait.js';

/** Cancelling a deployment in progress (issue #15), in memory; deployments.test.ts runs it on the test bed. */
describe('cancel', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  const log = async (id: string) => (await h.store.events('ns', id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
  const atStep = (id: string, step: string) => waitFor(`deployment ${id} at step ${step}`, async () => {
    const r = await h.record(id);
    return r.step === step ? r : undefined;
  }, { timeoutMs: 10_000, intervalMs: 5 });

  it('while health-checking: stops, removes what it created, leaves the running version untouched, ends FAILURE "cancelled by <who>"', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const before = { svc: h.cluster.object('Service', 'ns', 'shop'), ing: h.cluster.object('Ingress', 'ns', 'shop'), wl: h.cluster.object('Deployment', 'ns', 'shop-1') };
    h.health = (t) => (t.podName.startsWith('shop-2') ? 'HTTP 503' : true);
    const v2 = await h.deploy({ healthCheckTimeout: 60 });
    await atStep(v2.id, 'health-checking');
    assert.ok(h.cluster.object('Deployment', 'ns', 'shop-2'), 'the new version exists while it is checked');
    await h.cancel(v2.id, 'alice');
    const done = await h.settled(v2.id);
    assert.equal(done.status, 'FAILURE');
    assert.equal(done.failureReason, 'cancelled by alice');
    await h.idle();
    assert.equal(h.cluster.object('Deployment', 'ns', 'shop-2'), undefined, 'the new workload is removed');
    assert.equal(h.cluster.object('Service', 'ns', 'shop-2'), undefined, 'the new Service is removed');
    assert.deepEqual(h.cluster.object('Service', 'ns', 'shop'), before.svc, 'stable Service untouched');
    assert.deepEqual(h.cluster.object('Ingress', 'ns', 'shop'), before.ing, 'Ingress untouched');
    assert.deepEqual(h.cluster.object('Deployment', 'ns', 'shop-1'), before.wl, 'running workload untouched');
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
    const lines = await log(v2.id);
    assert.ok(lines.includes('Cancel requested by alice'), lines.join('\n'));
    assert.ok(lines.some((l) => l.startsWith('Deployment failed: cancelled by alice; rolling back')), lines.join('\n'));
  });

  it('a cancel requested while the cancel watch is still being set up stops the deployment before its switch', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    const before = h.cluster.object('Service', 'ns', 'shop');
    // The watch is set up while the deployment goes on; here it takes until the switch is next.
    const watchCancel = h.store.watchCancel.bind(h.store);
    let letWatchStart!: () => void;
    const watchMayStart = new Promise<void>((resolve) => { letWatchStart = resolve; });
    h.store.watchCancel = async (...args) => {
      await watchMayStart;
      return watchCancel(...args);
    };
    let healthy = false;
    h.health = (t) => (t.podName.startsWith('shop-2') && !healthy ? 'HTTP 503' : true);
    const v2 = await h.deploy({ healthCheckTimeout: 60 });
    await atStep(v2.id, 'health-checking');
    await h.cancel(v2.id, 'carol');
    healthy = true;
    await atStep(v2.id, 'switching-traffic');
    letWatchStart();
    const done = await h.settled(v2.id);
    assert.equal(done.status, 'FAILURE');
    assert.equal(done.failureReason, 'cancelled by carol');
    assert.equal(done.times.switched, undefined, 'traffic was never switched');
    await h.idle();
    assert.deepEqual(h.cluster.object('Service', 'ns', 'shop'), before, 'stable Service untouched');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
  });

  it('a queued deployment is cancelled before it starts: nothing is created', async () => {
    h = await new EngineHarness().start();
    h.health = (t) => (t.podName.startsWith('shop-1') ? 'HTTP 503' : true);
    const first = await h.deploy({ healthCheckTimeout: 60 });
    await atStep(first.id, 'health-checking');
    const queued = await h.deploy();
    assert.equal((await h.record(queued.id)).step, 'queued');
    await h.cancel(queued.id);
    await h.cancel(first.id);
    const q = await h.settled(queued.id);
    assert.equal(q.status, 'FAILURE');
    assert.equal(q.failureReason, 'cancelled by tester');
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), [], 'neither version was left (the second was never created)');
    assert.ok(!(await log(queued.id)).some((l) => l.startsWith('Created ')), (await log(queued.id)).join('\n'));
  });

  it('is refused with the reason once the deployment has ended, and for a record being switched', async () => {
    h = await new EngineHarness({ routing: 'httproute', convergenceTimeoutSeconds: 30 }).start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    await assert.rejects(h.cancel(v1.id), (err: Error) => err instanceof StateConflictError && /it is DEPLOYED; only a deployment in progress/.test(err.message));
    // Held in switching-traffic: the Gateway's controller has not confirmed the route yet.
    h.cluster.gatewayController = false;
    const v2 = await h.deploy();
    await waitFor('the switch to be written', async () => (await h.record(v2.id)).times.switched, { timeoutMs: 10_000, intervalMs: 5 });
    await assert.rejects(h.cancel(v2.id), (err: Error) => err instanceof StateConflictError && /already being switched/.test(err.message));
    h.cluster.gatewayCatchesUp();
    assert.equal((await h.settled(v2.id)).status, 'DEPLOYED');
  });

  it('a cancel that arrives after the switch began changes nothing, and the log says it came too late', async () => {
    h = await new EngineHarness({ routing: 'httproute', convergenceTimeoutSeconds: 30 }).start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    h.cluster.gatewayController = false;
    const v2 = await h.deploy();
    const switched = await waitFor('the switch to be written', async () => {
      const found = await h.store.get('ns', v2.id);
      return found?.value.times.switched ? found : undefined;
    }, { timeoutMs: 10_000, intervalMs: 5 });
    // As if the API had checked just before the step began (the race the engine must win).
    assert.equal(await h.store.requestCancel('ns', v2.id, 'bob', switched.revision), true);
    await waitFor('the too-late line', async () => (await log(v2.id)).some((l) => /Cancel requested by bob after the switch had begun: too late/.test(l)), { timeoutMs: 5_000, intervalMs: 5 });
    h.cluster.gatewayCatchesUp();
    const done = await h.settled(v2.id);
    assert.equal(done.status, 'DEPLOYED');
  });

  it('DELETE of a deployment before its switch cancels it; with deleteDeployment the record is gone afterwards', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    h.health = (t) => (t.podName.startsWith('shop-2') ? 'HTTP 503' : true);
    const v2 = await h.deploy({ healthCheckTimeout: 60 });
    await atStep(v2.id, 'health-checking');
    await h.undeploy(v2.id, true);
    await waitFor('the record to be deleted', async () => !(await h.store.get('ns', v2.id)), { timeoutMs: 10_000, intervalMs: 10 });
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
    assert.equal(await h.store.cancelRequestOf('ns', v2.id), undefined, 'the cancel request went with the record');
  });
});
