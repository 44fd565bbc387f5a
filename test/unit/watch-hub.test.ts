import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { createMemoryLogger } from '../../src/log.js';
import type { WatchEvent } from '../../src/kube/client.js';
import { WatchHub, parseSelector, type ListWatchSource } from '../../src/deployer/watch-hub.js';

function pod(name: string, labels: Record<string, string>, ready = false): V1Pod {
  return {
    metadata: { name, uid: name, labels, managedFields: [{ manager: 'kubelet', operation: 'Update' }] },
    status: { phase: ready ? 'Running' : 'Pending', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  } as V1Pod;
}

/** A cluster's pods behind the PodSource interface: lists, and watches fed by `emit`. */
class FakeSource implements ListWatchSource<V1Pod> {
  readonly pods = new Map<string, Map<string, V1Pod>>();
  lists: string[] = [];
  readonly watches: Array<{ namespace: string; onEvent: (e: WatchEvent<V1Pod>) => void; signal: AbortSignal; fail: (err: Error) => void }> = [];
  private rv = 1;

  async list(namespace: string): Promise<{ items: V1Pod[]; resourceVersion: string }> {
    this.lists.push(namespace);
    return { items: [...(this.pods.get(namespace)?.values() ?? [])].map((p) => structuredClone(p)), resourceVersion: String(this.rv) };
  }

  watch(namespace: string, _rv: string | undefined, onEvent: (e: WatchEvent<V1Pod>) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      this.watches.push({ namespace, onEvent, signal, fail: reject });
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Changes a pod and tells the open watches of its namespace. */
  emit(namespace: string, type: 'ADDED' | 'MODIFIED' | 'DELETED', p: V1Pod): void {
    this.rv++;
    const ns = this.pods.get(namespace) ?? new Map<string, V1Pod>();
    this.pods.set(namespace, ns);
    if (type === 'DELETED') ns.delete(p.metadata!.name!);
    else ns.set(p.metadata!.name!, p);
    const object = structuredClone(p);
    object.metadata = { ...object.metadata, resourceVersion: String(this.rv) };
    for (const w of this.openWatches(namespace)) w.onEvent({ type, object });
  }

  /** A bookmark: the watch has reached `rv` with no change to tell. */
  bookmark(namespace: string): void {
    this.rv++;
    for (const w of this.openWatches(namespace)) w.onEvent({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(this.rv) } } as V1Pod });
  }

  openWatches(namespace?: string) {
    return this.watches.filter((w) => !w.signal.aborted && (namespace === undefined || w.namespace === namespace));
  }
}

/** Resolves once `predicate` holds, checking after every turn of the event loop (for at most 5 s). */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await new Promise((r) => setImmediate(r));
  }
  assert.fail(`never happened: ${what}`);
}

const names = (pods: V1Pod[] | undefined) => (pods ?? []).map((p) => p.metadata!.name).sort();

describe('shared pod watches', () => {
  it('serves every selector of a namespace from one list and one watch, each with only its pods', async () => {
    const source = new FakeSource();
    source.emit('ns', 'ADDED', pod('a-1', { app: 'a', version: '1' }));
    source.emit('ns', 'ADDED', pod('b-1', { app: 'b', version: '1' }));
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger });
    const seenA: V1Pod[][] = [];
    const seenB: V1Pod[][] = [];
    const wa = hub.subscribe('ns', 'app=a,version=1', (p) => seenA.push(p))!;
    const wb = hub.subscribe('ns', 'app=b,version=1', (p) => seenB.push(p))!;
    await until(() => seenA.length > 0 && seenB.length > 0 && source.openWatches().length === 1, 'both subscribers listed');
    assert.deepEqual(names(seenA.at(-1)), ['a-1']);
    assert.deepEqual(names(seenB.at(-1)), ['b-1']);
    assert.equal(source.lists.length, 1);
    assert.equal(hub.watchCalls, 1);
    // managedFields are not kept
    assert.equal(seenA.at(-1)![0]!.metadata!.managedFields, undefined);

    // A change of b's pod calls b only; a new pod of a calls a with both of its pods.
    const callsA = seenA.length;
    source.emit('ns', 'MODIFIED', pod('b-1', { app: 'b', version: '1' }, true));
    assert.equal(seenA.length, callsA);
    assert.equal(seenB.at(-1)![0]!.status!.phase, 'Running');
    source.emit('ns', 'ADDED', pod('a-2', { app: 'a', version: '1' }));
    assert.deepEqual(names(seenA.at(-1)), ['a-1', 'a-2']);
    // A label change moves a pod out of a selection; a deletion removes it.
    source.emit('ns', 'MODIFIED', pod('a-2', { app: 'a', version: '2' }));
    assert.deepEqual(names(seenA.at(-1)), ['a-1']);
    source.emit('ns', 'DELETED', pod('a-1', { app: 'a', version: '1' }));
    assert.deepEqual(names(seenA.at(-1)), []);
    wa.stop();
    wb.stop();
    hub.close();
  });

  it('tells each subscriber the resourceVersion its pods are as of: the list\'s, then each event\'s or bookmark\'s', async () => {
    const source = new FakeSource();
    source.emit('ns', 'ADDED', pod('a-1', { app: 'a' })); // rv 2
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger });
    const seen: Array<string | undefined> = [];
    const w = hub.subscribe('ns', 'app=a', (_pods, rv) => seen.push(rv))!;
    await until(() => source.openWatches().length === 1 && seen.length === 1, 'listed and watching');
    assert.deepEqual(seen, ['2'], 'as of the list');
    source.emit('ns', 'MODIFIED', pod('a-1', { app: 'a' }, true)); // rv 3
    assert.deepEqual(seen, ['2', '3'], 'as of the event');
    source.bookmark('ns'); // rv 4: no call, but later answers are as of it
    source.emit('ns', 'ADDED', pod('b-1', { app: 'b' })); // rv 5: not a's
    let late: string | undefined;
    const second = hub.subscribe('ns', 'app=a', (_pods, rv) => { late = rv; })!;
    await until(() => late !== undefined, 'late subscriber called');
    assert.equal(late, '5');
    assert.deepEqual(seen, ['2', '3']);
    w.stop();
    second.stop();
    hub.close();
  });

  it('gives a late subscriber the current pods from the cache, without listing again', async () => {
    const source = new FakeSource();
    source.emit('ns', 'ADDED', pod('a-1', { app: 'a' }));
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger });
    const first = hub.subscribe('ns', 'app=a', () => undefined)!;
    await until(() => source.openWatches().length === 1, 'watch open');
    source.emit('ns', 'ADDED', pod('a-2', { app: 'a' }));
    let late: V1Pod[] | undefined;
    const second = hub.subscribe('ns', 'app=a', (p) => {
      late = p;
    })!;
    await until(() => late !== undefined, 'late subscriber called');
    assert.deepEqual(names(late), ['a-1', 'a-2']);
    assert.equal(source.lists.length, 1);
    first.stop();
    second.stop();
    hub.close();
  });

  it('keeps an unused watch for lingerMs and then ends it; a new subscriber meanwhile reuses it', async () => {
    const source = new FakeSource();
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger, lingerMs: 60_000 });
    hub.subscribe('ns', 'app=a', () => undefined)!.stop();
    await until(() => source.openWatches().length === 1, 'watch open');
    const again = hub.subscribe('ns', 'app=b', () => undefined)!;
    again.stop();
    again.stop(); // twice is harmless
    assert.equal(source.lists.length, 1);
    assert.equal(source.openWatches().length, 1);
    hub.close();
    assert.equal(source.openWatches().length, 0);

    const eager = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger, lingerMs: 0 });
    const w = eager.subscribe('other', 'app=a', () => undefined)!;
    await until(() => source.openWatches('other').length === 1, 'watch open');
    w.stop();
    assert.equal(source.openWatches('other').length, 0);
    assert.equal(eager.size, 0);
  });

  it('watches at most maxWatches namespaces, evicting unused ones first, and polls beyond', async () => {
    const source = new FakeSource();
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger, maxWatches: 1, pollMs: 5 });
    const idle = hub.subscribe('one', 'app=a', () => undefined)!;
    await until(() => source.openWatches('one').length === 1, 'watch of one open');
    idle.stop(); // lingers
    const two = hub.subscribe('two', 'app=a', () => undefined)!;
    await until(() => source.openWatches('two').length === 1, 'watch of two open');
    assert.equal(source.openWatches('one').length, 0, 'the unused watch made room');
    let polled: V1Pod[] | undefined;
    const three = hub.subscribe('three', 'app=a', (p) => {
      polled = p;
    })!;
    source.emit('three', 'ADDED', pod('a-1', { app: 'a' }));
    await until(() => names(polled).length === 1, 'polled namespace sees the new pod');
    assert.equal(source.openWatches('three').length, 0);
    assert.deepEqual(hub.watchedNamespaces().map((n) => `${n.namespace}:${n.mode}`).sort(), ['three:poll', 'two:watch']);
    three.stop();
    assert.equal(hub.watchedNamespaces().length, 1, 'a polled namespace ends with its last subscriber');
    two.stop();
    hub.close();
  });

  it('lists again after a failed watch and tells every subscriber', async () => {
    const source = new FakeSource();
    const hub = new WatchHub<V1Pod>({ source, kind: 'Pod', log: createMemoryLogger().logger });
    let seen: V1Pod[] | undefined;
    const w = hub.subscribe('ns', 'app=a', (p) => {
      seen = p;
    })!;
    await until(() => source.openWatches().length === 1, 'watch open');
    // A pod appears while the watch is broken: only the new list can tell.
    const broken = source.openWatches()[0]!;
    source.pods.set('ns', new Map([['a-1', pod('a-1', { app: 'a' }, true)]]));
    broken.fail(new Error('410 Gone'));
    await until(() => names(seen).length === 1, 'relisted');
    assert.equal(source.lists.length, 2);
    w.stop();
    hub.close();
  });

  it('evaluates equality-based selectors and refuses set-based ones (those get a watch of their own)', () => {
    assert.deepEqual(parseSelector('app=a, version==2,tier!=db,canary,!legacy'), [
      { op: 'eq', key: 'app', value: 'a' }, { op: 'eq', key: 'version', value: '2' }, { op: 'ne', key: 'tier', value: 'db' },
      { op: 'exists', key: 'canary' }, { op: 'absent', key: 'legacy' },
    ]);
    assert.equal(parseSelector('app in (a,b)'), undefined);
    const hub = new WatchHub<V1Pod>({ source: new FakeSource(), kind: 'Pod', log: createMemoryLogger().logger });
    assert.equal(hub.subscribe('ns', 'env notin (prod)', () => undefined), undefined);
    hub.close();
  });
});
