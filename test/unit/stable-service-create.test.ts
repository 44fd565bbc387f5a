import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EngineHarness } from '../support/engine-harness.js';

/**
 * The stable Service `{app}` is read once before the switch, by prepare; creating the new version
 * trusts that read (created at once with the versioned objects when absent, left alone when ours).
 * At 200 apps started at once the read-then-create put each placeholder at the back of the
 * creates' queue, seconds after its pods were ready.
 */
describe('the stable Service at creation of a version', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  const record = (ops: string[]) => {
    h.cluster.fault = (operation, kind, name) => ops.push(`${operation} ${kind} ${name}`);
  };

  it('first deployment: created without a read after prepare\'s', async () => {
    h = await new EngineHarness().start();
    const ops: string[] = [];
    record(ops);
    const v1 = await h.settled((await h.deploy()).id);
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    const from = ops.indexOf('create Deployment shop-1');
    const created = ops.indexOf('create Service shop');
    assert.ok(from >= 0 && created > from, ops.join('; '));
    assert.deepEqual(ops.slice(from, created).filter((op) => op === 'get Service shop'), [], ops.join('; '));
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
  });

  it('an update: not read between the new version\'s creation and the switch but by the switch\'s capture', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    const ops: string[] = [];
    record(ops);
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    const from = ops.indexOf('create Deployment shop-2');
    const to = ops.indexOf('replace Service shop');
    assert.ok(from >= 0 && to > from, ops.join('; '));
    assert.equal(ops.slice(from, to).filter((op) => op === 'get Service shop').length, 1, ops.join('; '));
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
  });

  it('one created by someone else after prepare read it absent is met, read and refused; it stays as it is', async () => {
    h = await new EngineHarness().start();
    const foreign = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'ns', labels: { team: 'other' } }, spec: { selector: { team: 'other' }, ports: [{ port: 80 }] } };
    let planted = false;
    h.cluster.fault = (operation, kind, name) => {
      if (planted || operation !== 'create' || kind !== 'Service' || name !== 'shop') return;
      planted = true;
      void h.cluster.create('Service', foreign); // lands before the create that called this
    };
    const v1 = await h.settled((await h.deploy()).id);
    assert.equal(v1.status, 'FAILURE');
    assert.match(v1.failureReason ?? '', /Service ns\/shop/);
    await h.idle();
    assert.deepEqual(h.cluster.object('Service', 'ns', 'shop')?.spec?.selector, { team: 'other' });
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), []);
  });
});
