import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../support/etcd.js';
import { waitFor } from '../support/wait.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { StoreUnavailableError } from '../../src/store/kv.js';

/**
 * TestEtcd.pause() / resume() / pauseFor(): a SIGSTOPped etcd keeps its sockets open and answers
 * nothing, so the client sees no connection error — only its deadline. Figures are printed as
 * diagnostics (docs/reliability.md, "Fault injection in tests").
 */
describe('TestEtcd pause (SIGSTOP / SIGCONT)', () => {
  let etcd: TestEtcd;
  let kv: EtcdStore;

  before(async () => {
    etcd = await TestEtcd.create();
    kv = new EtcdStore({ endpoints: [etcd.endpoint], prefix: `/pause-${randomUUID().slice(0, 8)}/`, timeoutMs: 1000 });
  });
  after(async () => {
    await kv?.close();
    await etcd?.destroy();
  });

  it('while paused, a get fails with StoreUnavailableError within ~1.5 s; after resume a get succeeds', async () => {
    await kv.transact([], [{ type: 'put', key: 'k', value: 'v1' }]);
    assert.equal((await kv.get('k'))?.value, 'v1', 'connection established before the pause');

    await etcd.pause();
    assert.equal(etcd.paused, true);
    const t0 = Date.now();
    const err = await kv.get('k').then(() => undefined, (e: unknown) => e);
    const detected = Date.now() - t0;
    assert.ok(err instanceof StoreUnavailableError, `expected StoreUnavailableError, got ${String(err)}`);
    assert.ok(detected < 1500, `the get failed after ${detected} ms`);

    await etcd.resume();
    assert.equal(etcd.paused, false);
    const t1 = Date.now();
    const value = await waitFor('a get after resume', async () => (await kv.get('k'))?.value, { timeoutMs: 5000, intervalMs: 20 });
    const recovered = Date.now() - t1;
    assert.equal(value, 'v1');
    console.log(`# etcd paused: get failed after ${detected} ms (timeout 1000 ms, ${(err as Error).message}); first get after resume ok after ${recovered} ms`);
  });

  it('pauseFor(3000): calls fail meanwhile, succeed again afterwards without anyone resuming', async () => {
    const t0 = Date.now();
    const paused = etcd.pauseFor(3000);
    await waitFor('the pause', () => etcd.paused, { timeoutMs: 2000, intervalMs: 5 });
    await assert.rejects(kv.transact([], [{ type: 'put', key: 'k', value: 'written during the pause' }]), StoreUnavailableError);
    await paused;
    const pausedFor = Date.now() - t0;
    assert.ok(pausedFor >= 3000 && pausedFor < 4500, `pauseFor(3000) took ${pausedFor} ms`);
    // A write that failed with a deadline may still have reached etcd's socket buffer, and be
    // applied once etcd continues: its outcome is unknown to the caller. Report which it was.
    const after = await waitFor('a get after pauseFor', async () => ({ v: (await kv.get('k'))?.value }), { timeoutMs: 5000, intervalMs: 20 });
    console.log(`# write that timed out during the pause: ${after.v === 'written during the pause' ? 'APPLIED after resume' : 'not applied'}`);
    await kv.transact([], [{ type: 'put', key: 'k', value: 'v2' }]);
    assert.equal((await kv.get('k'))?.value, 'v2');
  });

  it('stop() of a paused etcd returns promptly (SIGCONT before SIGTERM), and start() brings the data back', async () => {
    await etcd.pause();
    const t0 = Date.now();
    await etcd.stop();
    const took = Date.now() - t0;
    // Without SIGCONT the SIGTERM stays pending and only the 5 s SIGKILL fallback ends it.
    assert.ok(took < 3000, `stop() of a paused etcd took ${took} ms`);
    await etcd.start();
    const value = await waitFor('a get after the restart', async () => (await kv.get('k'))?.value, { timeoutMs: 10_000, intervalMs: 50 });
    assert.equal(value, 'v2');
    console.log(`# stop() of a paused etcd: ${took} ms`);
  });
});
