import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSilentLogger } from '../../src/log.js';
import { KubeClient } from '../../src/kube/client.js';
import { Limiter } from '../../src/kube/limiter.js';
import { KubernetesCluster } from '../../src/deployer/kubernetes.js';
import { urgent } from '../../src/lib/urgency.js';

describe('Limiter', () => {
  it('grants at most max slots, in order of asking, and passes a slot on when released', async () => {
    const limiter = new Limiter(2);
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const order: string[] = [];
    const c = limiter.acquire().then((r) => { order.push('c'); return r; });
    const d = limiter.acquire().then((r) => { order.push('d'); return r; });
    assert.deepEqual(limiter.load, { active: 2, waiting: 2 });
    a();
    a(); // a second release of the same slot changes nothing
    const releaseC = await c;
    assert.deepEqual(order, ['c']);
    assert.deepEqual(limiter.load, { active: 2, waiting: 1 });
    b();
    (await d)();
    releaseC();
    assert.deepEqual(order, ['c', 'd']);
    assert.deepEqual(limiter.load, { active: 0, waiting: 0 });
  });

  it('a waiter whose signal aborts leaves the queue with the reason', async () => {
    const limiter = new Limiter(1);
    const held = await limiter.acquire();
    const stop = new AbortController();
    const waiting = limiter.acquire(stop.signal);
    stop.abort(new Error('deadline'));
    await assert.rejects(waiting, /deadline/);
    assert.deepEqual(limiter.load, { active: 1, waiting: 0 });
    held();
    assert.deepEqual(limiter.load, { active: 0, waiting: 0 });
  });
});

describe('KubernetesCluster writes', () => {
  it('sends at most maxCreatesInFlight creates at once; reads and replaces are not held back by them', async () => {
    let inFlight = 0;
    let most = 0;
    let reads = 0;
    const pending: Array<() => void> = [];
    const client = Object.create(KubeClient.prototype) as KubeClient;
    Object.assign(client, {
      jsonOrAbsent: async () => {
        reads++;
        return undefined;
      },
      json: async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise<void>((resolve) => pending.push(resolve));
        inFlight--;
        return { metadata: {} };
      },
      close: async () => undefined,
    });
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 10_000, retryBudgetMs: 5000, log: createSilentLogger(), maxCreatesInFlight: 3 });
    try {
      const creates = Array.from({ length: 10 }, (_, i) => cluster.create('Service', { metadata: { name: `c${i}`, namespace: 'ns' } }, AbortSignal.timeout(10_000)));
      // While three writes hang, a read still goes through.
      assert.equal(await cluster.get('Service', 'ns', 'x'), undefined);
      assert.equal(reads, 1);
      assert.equal(cluster.creates.load.active, 3);
      assert.equal(cluster.creates.load.waiting, 7);
      // A replace (a switch) does not wait behind the creates.
      const replaced = cluster.replace('Service', { metadata: { name: 's', namespace: 'ns' } }, AbortSignal.timeout(10_000));
      await new Promise((r) => setImmediate(r));
      assert.equal(cluster.writes.load.active, 1);
      assert.equal(inFlight, 4);
      while (pending.length > 0 || cluster.creates.load.active > 0 || cluster.writes.load.active > 0) {
        pending.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
      assert.equal((await Promise.all(creates)).length, 10);
      await replaced;
      assert.equal(most, 4);
    } finally {
      cluster.close();
    }
  });

  it('sends at most maxReadsInFlight reads at once; a read made inside urgent() goes ahead of them', async () => {
    const pending: Array<() => void> = [];
    const sent: string[] = [];
    const client = Object.create(KubeClient.prototype) as KubeClient;
    Object.assign(client, {
      jsonOrAbsent: async (_method: string, path: string) => {
        sent.push(path.split('/').pop()!);
        await new Promise<void>((resolve) => pending.push(resolve));
        return { metadata: { name: path.split('/').pop() } };
      },
      close: async () => undefined,
    });
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 10_000, retryBudgetMs: 5000, log: createSilentLogger(), maxReadsInFlight: 2 });
    try {
      const reads = Array.from({ length: 5 }, (_, i) => cluster.get('Service', 'ns', `r${i}`, AbortSignal.timeout(10_000)));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(sent, ['r0', 'r1']);
      assert.equal(cluster.reads.load.waiting, 3);
      const switchRead = urgent(() => cluster.get('Service', 'ns', 'stable', AbortSignal.timeout(10_000)));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(sent, ['r0', 'r1', 'stable'], 'the urgent read is sent while three others wait');
      while (pending.length > 0 || cluster.reads.load.active > 0) {
        pending.shift()?.();
        await new Promise((r) => setImmediate(r));
      }
      assert.equal((await switchRead)?.metadata?.name, 'stable');
      assert.equal((await Promise.all(reads)).length, 5);
      assert.deepEqual(sent, ['r0', 'r1', 'stable', 'r2', 'r3', 'r4']);
    } finally {
      cluster.close();
    }
  });

  it('sends 4 creates at once by default, and up to 16 replaces and deletes', () => {
    const client = Object.create(KubeClient.prototype) as KubeClient;
    Object.assign(client, { close: async () => undefined });
    const cluster = new KubernetesCluster({ client, requestTimeoutMs: 10_000, retryBudgetMs: 5000, log: createSilentLogger() });
    try {
      assert.equal(cluster.creates.max, 4);
      assert.equal(cluster.writes.max, 16);
      assert.equal(cluster.reads.max, 32);
    } finally {
      cluster.close();
    }
  });
});
