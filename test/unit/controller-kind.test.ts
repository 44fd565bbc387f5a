import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EngineHarness } from '../support/engine-harness.js';

/** CUTOVER_DEFAULT_CONTROLLER_KIND (issue #15): the server's default, recorded per deployment. */
describe('default controller kind', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  it('a descriptor without controllerKind gets the server default, recorded in the deployment\'s copy; one that names a kind keeps it', async () => {
    h = await new EngineHarness({ defaultControllerKind: 'ReplicationController' }).start();
    const v1 = await h.settled((await h.deploy()).id);
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    assert.equal(v1.descriptor.controllerKind, 'ReplicationController');
    assert.deepEqual(h.cluster.names('ReplicationController', 'ns'), ['shop-1']);
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), []);
    await h.idle();
    const v2 = await h.settled((await h.deploy({ controllerKind: 'Deployment' })).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-2']);
    assert.deepEqual(h.cluster.names('ReplicationController', 'ns'), [], 'the replaced RC version was drained and removed');
  });
});
