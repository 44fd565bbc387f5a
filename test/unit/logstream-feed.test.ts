import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DeploymentFeeds, type FeedChange } from '../../src/api/websocket/deployment-feed.js';
import { FrameLog } from '../../src/api/websocket/frames.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { keys } from '../../src/store/keys.js';
import { MemoryKv } from '../support/memory-kv.js';
import { StoreUnavailableError } from '../../src/store/kv.js';
import { createSilentLogger } from '../../src/log.js';
import { waitFor } from '../support/wait.js';


const ns = 'unit';
const id = 'd1';

function setup(kv = new MemoryKv()) {
  const store = new DeploymentStore(kv);
  const feeds = new DeploymentFeeds({ store, kv, log: createSilentLogger(), retryDelayMs: 5 });
  return { kv, store, feeds };
}

const seqs = (events: ReadonlyArray<{ seq: number }>) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('deployment feed', () => {
  it('reads the backlog, then follows the watch; one watch shared by every lease, gone after the last release', async () => {
    const { kv, store, feeds } = setup();
    for (let i = 1; i <= 3; i++) await store.appendLog(ns, id, `line ${i}`);
    const first = await feeds.acquire(ns, id);
    const second = await feeds.acquire(ns, id);
    assert.equal(first.feed, second.feed);
    assert.equal(kv.activeWatches, 1);
    assert.equal(feeds.count, 1);
    assert.deepEqual(seqs(first.feed.events), [1, 2, 3]);

    const changes: FeedChange[] = [];
    first.feed.subscribe((c) => changes.push(c));
    await store.appendLog(ns, id, 'line 4');
    await waitFor('line 4', () => first.feed.lastSeq === 4);
    assert.deepEqual(changes.map((c) => c.type === 'appended' && c.fromIndex), [3]);

    first.release();
    first.release(); // idempotent
    assert.equal(kv.activeWatches, 1);
    second.release();
    await waitFor('the watch to be cancelled', () => kv.activeWatches === 0 && feeds.count === 0);
    assert.equal(changes.at(-1)?.type, 'stopped');
  });

  it('after the watch fails (compaction), re-reads and watches again: nothing lost, nothing twice', async () => {
    const { kv, store, feeds } = setup();
    for (let i = 1; i <= 3; i++) await store.appendLog(ns, id, `line ${i}`);
    const { feed, release } = await feeds.acquire(ns, id);
    const changes: string[] = [];
    feed.subscribe((c) => changes.push(c.type));

    kv.refuseWatches = 2; // the first two re-watches meet an outage: retried with backoff
    kv.breakWatches(new Error('etcdserver: mvcc: required revision has been compacted'));
    for (let i = 4; i <= 8; i++) await store.appendLog(ns, id, `line ${i}`); // while no watch runs
    await waitFor('the feed to resync', () => changes.includes('resynced'));
    for (let i = 9; i <= 10; i++) await store.appendLog(ns, id, `line ${i}`);
    await waitFor('line 10', () => feed.lastSeq === 10);
    assert.deepEqual(seqs(feed.events), range(1, 10));
    assert.equal(kv.activeWatches, 1);
    assert.equal(changes[0], 'resyncing');
    release();
  });

  it('drops events it already has when a watch replays them', async () => {
    const kv = new MemoryKv();
    const { store, feeds } = setup(kv);
    for (let i = 1; i <= 5; i++) await store.appendLog(ns, id, `line ${i}`);
    kv.understateListRevisionBy = 3; // the watch starts 3 revisions early and replays lines 3–5
    const { feed, release } = await feeds.acquire(ns, id);
    await store.appendLog(ns, id, 'line 6');
    await waitFor('line 6', () => feed.lastSeq === 6);
    assert.deepEqual(seqs(feed.events), range(1, 6));
    release();
  });

  it('tracks the latest status and reports the deletion of the events', async () => {
    const { kv, store, feeds } = setup();
    const now = new Date().toISOString();
    const record = { id, namespace: ns, appName: 'a', status: 'DEPLOYING', step: 'queued', created: now, lastModified: now } as never;
    await kv.transact([], [{ type: 'put', key: keys.deployment(ns, id), value: JSON.stringify(record) }]);
    const stored = (await store.get(ns, id))!;
    await store.update({ record: { ...stored.value, status: 'DEPLOYED', step: 'deployed' }, expectedRevision: stored.revision, events: [{ type: 'log', message: 'done' }, { type: 'status', status: 'DEPLOYED', step: 'deployed' }] });
    const { feed, release } = await feeds.acquire(ns, id);
    assert.equal(feed.status?.status, 'DEPLOYED');
    assert.equal(feed.status?.seq, 2);
    const changes: string[] = [];
    feed.subscribe((c) => changes.push(c.type));
    await store.delete(ns, 'a', id);
    await waitFor('the deletion', () => feed.deleted);
    assert.deepEqual(changes, ['deleted']);
    release();
  });

  it('a failed start is not cached: the next acquire tries again', async () => {
    const { kv, store, feeds } = setup();
    await store.appendLog(ns, id, 'x');
    kv.refuseWatches = 1;
    await assert.rejects(feeds.acquire(ns, id), StoreUnavailableError);
    assert.equal(feeds.count, 0);
    const { feed, release } = await feeds.acquire(ns, id);
    assert.equal(feed.lastSeq, 1);
    release();
  });

  it('frames are encoded once per event, with running byte totals per format', async () => {
    const { store, feeds } = setup();
    await store.appendLog(ns, id, 'hello');
    const { feed, release } = await feeds.acquire(ns, id);
    const frames = new FrameLog(feed);
    frames.sync();
    const text = frames.frame(0, 'text')!.toString();
    assert.match(text, /^\d{4}-\d\d-\d\dT[^ ]+Z hello$/);
    assert.deepEqual(JSON.parse(frames.frame(0, 'json')!.toString()), { type: 'log', seq: 1, time: feed.events[0]!.time, message: 'hello' });
    assert.equal(frames.bytesBetween(0, 1, 'text'), Buffer.byteLength(text));
    assert.equal(frames.bytesBetween(1, 1, 'text'), 0);
    release();
  });
});
