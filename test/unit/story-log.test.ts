import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { storyOf, type StoryLine } from '../../src/deployer/story.js';
import { createMemoryLogger } from '../../src/log.js';
import { EngineHarness } from '../support/engine-harness.js';
import { waitFor } from '../support/wait.js';

/** The deployment's story in cutover's own log (issue #17): one structured info line per milestone, from the engine's events. */
describe('service log: the story of each deployment', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  it('started, switched, succeeded, undeployed, failed with its reason, rolled back and restored: one info line each with namespace, app, version, id and duration', async () => {
    h = await new EngineHarness().start();
    const { logger, records } = createMemoryLogger('info');
    // Wired as in src/service.ts.
    h.bus.subscribe((e) => {
      const line = storyOf(e);
      if (line) logger.info(line.fields, line.msg);
    });
    const of = (id: string) => records.filter((r) => r.deploymentId === id) as Array<StoryLine['fields'] & { msg: string; level: number }>;
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const v2 = await h.settled((await h.deploy()).id);
    await h.idle();
    h.health = (t) => (t.podName.startsWith('shop-3') ? 'HTTP 503' : true);
    const v3 = await h.settled((await h.deploy({ healthCheckTimeout: 1 })).id);
    assert.equal(v3.status, 'FAILURE');
    await h.idle();
    h.health = () => true;
    const v4 = await h.settled((await h.deploy({ drainSeconds: 60 })).id);
    await waitFor('version 2 draining', async () => (await h.record(v2.id)).step === 'draining', { intervalMs: 5 });
    await h.rollback(v4.id, 'carol');
    await h.settled(v4.id, new Set(['UNDEPLOYED']));
    await h.idle();

    assert.deepEqual(of(v1.id).map((r) => r.event), ['started', 'switched', 'succeeded', 'undeployed']);
    assert.deepEqual(of(v2.id).map((r) => r.event), ['started', 'switched', 'succeeded', 'restored']);
    assert.deepEqual(of(v3.id).map((r) => r.event), ['started', 'failed']);
    assert.deepEqual(of(v4.id).map((r) => r.event), ['started', 'switched', 'succeeded', 'rolled-back', 'undeployed']);
    for (const r of records) {
      assert.equal(r.level, 30, 'info');
      assert.equal(r.namespace, 'ns');
      assert.equal(r.app, 'shop');
      assert.match(String(r.version), /^[1-4]$/);
      assert.equal(typeof r.durationMs, 'number');
    }
    const failed = of(v3.id)[1]!;
    assert.equal(failed.reason, v3.failureReason);
    assert.match(failed.msg, /^deployment failed: shop version 3: new version not healthy within 1 s/);
    const rolled = of(v4.id)[3]!;
    assert.equal(rolled.by, 'carol');
    assert.equal(rolled.toVersion, '2');
    assert.equal(typeof rolled.switchMs, 'number');
    assert.equal(of(v2.id)[3]!.restoredFrom, v4.id);
    assert.equal(of(v2.id)[1]!.fromVersion, '1');
  });
});
