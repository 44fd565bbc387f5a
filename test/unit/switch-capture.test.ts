import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EngineHarness } from '../support/engine-harness.js';
import { waitFor } from '../support/wait.js';

/**
 * The switch reads every traffic target it may write over, for a rollback. A target the switch
 * will not write (no frontend; a route kind the app does not use) whose objects prepare found
 * absent is not read again: on a loaded API server those reads were the slowest part of the path
 * from healthy to switched.
 */
describe('switch capture: targets the switch will not write', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  /** The reads of `kinds` made between the new version's workload create and the switch's Service write. */
  async function readsBeforeSwitch(fields: Record<string, unknown>, kinds: string[]): Promise<string[]> {
    const ops: string[] = [];
    h.cluster.fault = (operation, kind, name) => ops.push(`${operation} ${kind} ${name}`);
    const v2 = await h.settled((await h.deploy(fields)).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    const from = ops.indexOf('create Deployment shop-2');
    const to = ops.findIndex((op, i) => i > from && /^(replace|create) Service shop$/.test(op));
    assert.ok(from >= 0 && to > from, `the workload create and then the switch were seen: ${ops.join('; ')}`);
    return ops.slice(from, to).filter((op) => kinds.some((k) => op.startsWith(`get ${k} `)));
  }

  it('the targets are read while the new version\'s pods start, not after they are ready', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    const ops: string[] = [];
    h.cluster.fault = (operation, kind, name) => ops.push(`${operation} ${kind} ${name}`);
    h.cluster.afterWrite = (operation, kind, name) => {
      if (operation === 'create' && kind === 'Deployment' && name === 'shop-2') h.cluster.setReady('shop-2', false);
    };
    const v2 = await h.deploy();
    await waitFor('the stable Service and the Ingress to be read after the workload create', async () => {
      const from = ops.indexOf('create Deployment shop-2');
      return from >= 0 && ['get Service shop', 'get Ingress shop'].every((op) => ops.indexOf(op, from) > from);
    }, { timeoutMs: 5_000, intervalMs: 5 });
    assert.equal((await h.record(v2.id)).step, 'waiting-for-pods', 'read while no pod is ready');
    h.cluster.setReady('shop-2', true);
    const done = await h.settled(v2.id);
    assert.equal(done.status, 'DEPLOYED', done.failureReason);
    assert.equal(h.ingressBackend(), 'shop-2');
  });

  it('no frontend: neither Ingress nor HTTPRoute is read again at the switch', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy({ frontend: undefined })).id);
    await h.idle();
    assert.deepEqual(await readsBeforeSwitch({ frontend: undefined }, ['Ingress', 'HTTPRoute']), []);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
    assert.deepEqual(h.cluster.names('Ingress', 'ns'), []);
  });

  it('routed through an Ingress: the Ingress is read at the switch (it is written), the HTTPRoute is not', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    const reads = await readsBeforeSwitch({}, ['Ingress', 'HTTPRoute']);
    assert.ok(reads.includes('get Ingress shop'), reads.join('; '));
    assert.equal(reads.filter((r) => r.startsWith('get HTTPRoute')).length, 0, reads.join('; '));
    assert.equal(h.ingressBackend(), 'shop-2');
  });

  it('an Ingress of an earlier version is read again and removed when the frontend goes', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    assert.deepEqual(h.cluster.names('Ingress', 'ns'), ['shop']);
    const reads = await readsBeforeSwitch({ frontend: undefined }, ['Ingress']);
    assert.ok(reads.includes('get Ingress shop'), reads.join('; '));
    assert.deepEqual(h.cluster.names('Ingress', 'ns'), []);
  });
});
