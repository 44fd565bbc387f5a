import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import { EngineEvents } from '../../src/deployer/events.js';
import { Journal } from '../../src/deployer/journal.js';
import { createSilentLogger } from '../../src/log.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import type { Guard, KvOp, TxnResult } from '../../src/store/kv.js';
import { MemoryKv } from '../support/memory-kv.js';

/** MemoryKv whose next transaction waits until release() (the others go through). */
class HeldKv extends MemoryKv {
  private hold: Promise<void> | undefined;
  release!: () => void;

  holdNext(): void {
    this.hold = new Promise((resolve) => { this.release = resolve; });
  }

  override async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    const hold = this.hold;
    this.hold = undefined;
    if (hold) await hold;
    return super.transact(guards, ops);
  }
}

async function journalOn(kv: HeldKv, now: () => Date): Promise<{ journal: Journal; store: DeploymentStore }> {
  const store = new DeploymentStore(kv, () => new Date());
  const t = new Date().toISOString();
  const record: DeploymentRecord = {
    id: 'd1', created: t, lastModified: t, namespace: 'ns', appName: 'shop', version: '2', status: 'DEPLOYING', step: 'waiting-for-pods',
    descriptor: {} as DeploymentRecord['descriptor'], OldVersion: '1', times: {},
  };
  const created = await store.create({ record, queueItem: { workId: 'd1', kind: 'deploy', deploymentId: 'd1', enqueued: t }, events: [{ type: 'log', message: 'requested' }] });
  return { journal: new Journal(created, store, new EngineEvents(), createSilentLogger(), { signal: new AbortController().signal }, now), store };
}

/**
 * The engine goes on while a state change is being stored (the pods' health check runs while
 * "all pods are ready" is written): what it says meanwhile must still be stored after that change,
 * and the change's lines keep the time they were said.
 */
describe('journal: a state change in flight', () => {
  it('a line said while a state change is stored is stored after it', async () => {
    const kv = new HeldKv();
    const { journal, store } = await journalOn(kv, () => new Date());
    kv.holdNext();
    const change = journal.update((r) => ({ ...r, step: 'health-checking' }), ['All 2 pods are ready']);
    const said = journal.line('Pod shop-2-a: healthy');
    await new Promise((resolve) => setImmediate(resolve));
    kv.release();
    await Promise.all([change, said]);
    const lines = (await store.events('ns', 'd1')).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    assert.deepEqual(lines, ['requested', 'All 2 pods are ready', 'Pod shop-2-a: healthy']);
  });

  it('the lines of a state change keep the time they were said, however long the write took', async () => {
    const kv = new HeldKv();
    let clock = Date.parse('2026-12-01T10:00:00.000Z');
    const { journal, store } = await journalOn(kv, () => new Date(clock));
    kv.holdNext();
    const change = journal.update((r) => ({ ...r, step: 'health-checking' }), ['All 2 pods are ready']);
    clock += 5000;
    kv.release();
    await change;
    const line = (await store.events('ns', 'd1')).events.find((e) => e.type === 'log' && e.message === 'All 2 pods are ready');
    assert.equal(line?.time, '2026-12-01T10:00:00.000Z');
  });
});
