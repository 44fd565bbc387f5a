import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../support/etcd.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { DeploymentStore } from '../../src/store/deployments.js';

describe('deployment event log in etcd', () => {
  let etcd: TestEtcd;
  let kv: EtcdStore;
  let store: DeploymentStore;

  before(async () => {
    etcd = await TestEtcd.create();
    kv = new EtcdStore({ endpoints: [etcd.endpoint], prefix: `/events-${randomUUID().slice(0, 8)}/`, timeoutMs: 5000 });
    store = new DeploymentStore(kv);
  });
  after(async () => {
    await kv?.close();
    await etcd?.destroy();
  });

  it('get, getMany, list and watch name keys alike: relative to the store\'s prefix', async () => {
    const key = `keys/${randomUUID()}`;
    await kv.transact([], [{ type: 'put', key, value: 'v' }]);
    assert.equal((await kv.get(key))?.key, key);
    assert.equal((await kv.getMany([key]))[0]?.key, key);
    assert.deepEqual((await kv.list(key)).entries.map((e) => e.key), [key]);
  });

  it('keeps every line of concurrent writers, numbered without gaps, and reads long logs in pages', async () => {
    const id = randomUUID();
    // Two writers (as two replicas would be) appending at once.
    const other = new DeploymentStore(kv);
    await Promise.all(Array.from({ length: 1200 }, (_, i) => (i % 2 ? store : other).appendLog('ns', id, `line ${i}`)));
    const { events } = await store.events('ns', id);
    assert.equal(events.length, 1200);
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: 1200 }, (_, i) => i + 1));
    assert.equal(new Set(events.map((e) => (e.type === 'log' ? e.message : ''))).size, 1200, 'no line lost or duplicated');
    const tail = await store.events('ns', id, 1150);
    assert.deepEqual(tail.events.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => 1151 + i));
  });

  it('reads a log larger than gRPC\'s default 4 MiB message limit', async () => {
    const id = randomUUID();
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 60; i++) await store.appendLog('ns', id, `${i} ${big}`);
    const { events } = await store.events('ns', id);
    assert.equal(events.length, 60);
  });
});
