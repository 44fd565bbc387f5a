import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord, PodHealth } from '../../src/domain/deployment.js';
import type { Descriptor } from '../../src/domain/types.js';
import { DeploymentStore, type TimedEvent } from '../../src/store/deployments.js';
import { EtcdDescriptorStore } from '../../src/store/descriptors.js';
import { EnvironmentStore } from '../../src/store/environment.js';
import { readImportMarks } from '../../src/store/imports.js';
import { keys } from '../../src/store/keys.js';
import type { Guard, KvOp, TxnResult } from '../../src/store/kv.js';
import { importOriginalData, type ImportReport } from '../../src/admin/amdatu/import.js';
import type { OriginalData } from '../../src/admin/amdatu/layout.js';
import { MemoryKv } from '../support/memory-kv.js';

/** The store functions the import writes through, and the import's decisions, on an in-memory etcd. */

/** etcd refuses transactions with more than 128 operations (--max-txn-ops); so does this store. */
class LimitedKv extends MemoryKv {
  largest = 0;
  override async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    this.largest = Math.max(this.largest, ops.length, guards.length);
    if (ops.length > 128 || guards.length > 128) throw new Error(`too many operations in txn request (${ops.length})`);
    return super.transact(guards, ops);
  }
}

const descriptor: Descriptor = {
  id: 'd-1', namespace: 'shop', appName: 'web', newVersion: '#', created: '2017-01-01T00:00:00.000Z', lastModified: '2017-01-01T00:00:00.000Z',
  deploymentType: 'blue-green', replicas: 1, controllerKind: 'Deployment', podspec: { containers: [{ name: 'web', image: 'x' }] },
  redirectWww: false, useCompression: false, useStickySessions: false, additionHttpHeaders: [],
  useHealthCheck: false, ignoreHealthCheck: false, healthCheckType: 'probe', healthCheckPath: 'health',
};

function record(id: string, overrides: Partial<DeploymentRecord> = {}): DeploymentRecord {
  return {
    id, created: '2017-01-01T00:00:00.000Z', lastModified: '2017-01-01T00:01:00.000Z', namespace: 'shop', appName: 'web',
    version: '3', status: 'DEPLOYED', step: 'deployed', descriptor, OldVersion: '', times: {}, importedFrom: 'amdatu', ...overrides,
  };
}

const health: PodHealth = { podName: 'web-3-a', healthy: true, body: '{}', reason: 'healthy', latencyMs: 0, checkedAt: '2017-01-01T00:01:00.000Z', value: '{}' };
const logLines = (n: number): TimedEvent[] => Array.from({ length: n }, (_, i) => ({ type: 'log' as const, time: `2017-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z`, message: `line ${i + 1}` }));
const mark = { from: '/deployer/deployments/shop/web/r-1', at: '2026-01-01T00:00:00.000Z' };

describe('DeploymentStore.importRecord', () => {
  it('writes record, index, events with their own times, health, mark and live pointer at once', async () => {
    const kv = new LimitedKv();
    const store = new DeploymentStore(kv);
    const outcome = await store.importRecord({ record: record('r-1'), events: logLines(3), health: [health], source: 'amdatu', mark, live: true });
    assert.equal(outcome, 'imported');
    assert.equal((await store.get('shop', 'r-1'))?.value.importedFrom, 'amdatu');
    assert.equal((await kv.get(keys.appRecord('shop', 'web', 'r-1')))?.value, '2017-01-01T00:00:00.000Z', 'index holds created (retention reads it)');
    const { events } = await store.events('shop', 'r-1');
    assert.deepEqual(events.map((e) => [e.seq, e.time]), [[1, '2017-01-01T00:00:00.000Z'], [2, '2017-01-01T00:00:01.000Z'], [3, '2017-01-01T00:00:02.000Z']]);
    assert.deepEqual(await store.listHealth('shop', 'r-1'), [health]);
    assert.deepEqual(await store.live('shop', 'web').then((l) => l && { id: l.deploymentId, version: l.version }), { id: 'r-1', version: '3' });
    assert.deepEqual([...(await readImportMarks(kv, 'amdatu')).entries()], [['deployments/shop/r-1', mark]]);
    assert.equal((await store.listApp('shop', 'web')).records.length, 1);
    const revisionBefore = (await kv.get(keys.deployment('shop', 'r-1')))!.modRevision;
    assert.equal(await store.importRecord({ record: record('r-1', { status: 'FAILURE' }), events: [], health: [], source: 'amdatu', mark, live: false }), 'exists');
    assert.equal((await kv.get(keys.deployment('shop', 'r-1')))!.modRevision, revisionBefore, 'an existing record is never overwritten');
  });

  it('writes nothing when the app already has a live record', async () => {
    const kv = new LimitedKv();
    const store = new DeploymentStore(kv);
    await store.importRecord({ record: record('mine'), events: [], health: [], source: 'test', mark, live: true });
    assert.equal(await store.importRecord({ record: record('r-2'), events: logLines(300), health: [health], source: 'amdatu', mark, live: true }), 'live-taken');
    assert.equal(await store.get('shop', 'r-2'), undefined);
    assert.equal((await store.events('shop', 'r-2')).events.length, 0);
    assert.equal((await store.live('shop', 'web'))?.deploymentId, 'mine');
  });

  it('removes the batches of a long log again when the app became live meanwhile', async () => {
    // cutover's engine makes another deployment live between the import's check and its write.
    class RacingKv extends LimitedKv {
      override async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
        if (guards.length === 0 && ops.length > 50 && !(await this.get(keys.live('shop', 'web')))) {
          await super.transact([], [{ type: 'put', key: keys.live('shop', 'web'), value: JSON.stringify({ deploymentId: 'engine', version: '9' }) }]);
        }
        return super.transact(guards, ops);
      }
    }
    const kv = new RacingKv();
    const store = new DeploymentStore(kv);
    assert.equal(await store.importRecord({ record: record('r-4'), events: logLines(300), health: [health], source: 'amdatu', mark, live: true }), 'live-taken');
    assert.equal(await store.get('shop', 'r-4'), undefined);
    assert.equal((await store.events('shop', 'r-4')).events.length, 0, 'no orphan log lines');
    assert.deepEqual(await store.listHealth('shop', 'r-4'), []);
    assert.equal((await store.live('shop', 'web'))?.deploymentId, 'engine');
  });

  it('writes a long log in batches within etcd\'s transaction limit', async () => {
    const kv = new LimitedKv();
    const store = new DeploymentStore(kv);
    assert.equal(await store.importRecord({ record: record('r-3'), events: logLines(500), health: [health], source: 'amdatu', mark, live: false }), 'imported');
    assert.equal((await store.events('shop', 'r-3')).events.length, 500);
    assert.ok(kv.largest <= 128, `largest transaction ${kv.largest}`);
    assert.equal(await store.live('shop', 'web'), undefined, 'live only when asked');
  });

  it('never lowers the version counter', async () => {
    const store = new DeploymentStore(new MemoryKv());
    assert.deepEqual(await store.raiseVersionCounter('shop', 'web', 7), { before: 0, after: 7 });
    assert.deepEqual(await store.raiseVersionCounter('shop', 'web', 4), { before: 7, after: 7 });
    assert.equal((await store.versionCounter('shop', 'web')).value, 7);
  });
});

describe('descriptor and environment imports', () => {
  it('importDescriptor writes once, with its mark; a second time, or over cutover\'s own, it writes nothing', async () => {
    const kv = new MemoryKv();
    const store = new EtcdDescriptorStore(kv);
    assert.equal(await store.importDescriptor(descriptor, 'amdatu', mark), 'imported');
    assert.equal((await store.get('shop', 'd-1'))?.value.appName, 'web');
    assert.ok((await readImportMarks(kv, 'amdatu')).has('descriptors/shop/d-1'));
    assert.equal(await store.importDescriptor({ ...descriptor, appName: 'changed' }, 'amdatu', mark), 'exists');
    await store.create({ ...descriptor, id: 'd-2' });
    assert.equal(await store.importDescriptor({ ...descriptor, id: 'd-2', appName: 'changed' }, 'amdatu', mark), 'exists');
    assert.equal((await store.get('shop', 'd-2'))?.value.appName, 'web');
  });

  it('EnvironmentStore.create sets a value only where there is none', async () => {
    const env = new EnvironmentStore(new MemoryKv());
    assert.equal(await env.create('db-url', 'a'), true);
    assert.equal(await env.create('db-url', 'b'), false);
    assert.equal(await env.get('db-url'), 'a');
    assert.equal(await env.get('nothing'), undefined);
  });

  it('a damaged ledger mark still counts as imported', async () => {
    const kv = new MemoryKv();
    await kv.transact([], [{ type: 'put', key: keys.importMark('amdatu', 'deployments', 'shop', 'x'), value: 'garbage' }]);
    assert.deepEqual((await readImportMarks(kv, 'amdatu')).get('deployments/shop/x'), { from: '?', at: '?' });
  });
});

describe('importOriginalData (in memory)', () => {
  const originalRecord = (id: string, status: string, version: string, lastModified: string) => ({
    key: `/deployer/deployments/shop/web/${id}`, namespace: 'shop', appName: 'web', id,
    value: JSON.stringify({
      id, status, version, created: '2017-10-12T10:00:00Z', lastModified, OldVersion: '',
      descriptor: { id: 'desc-1', appName: 'web', namespace: 'shop', newVersion: '#', podspec: { containers: [{ name: 'web', image: 'x' }] } },
    }),
  });
  const data = (): OriginalData => ({
    descriptors: [], logs: new Map(), health: new Map(), environment: [{ key: '/deployer/environment/db-url', name: 'db-url', value: 'v' }],
    environmentDirectories: [], problems: [],
    deployments: [
      originalRecord('old-live', 'DEPLOYED', '4', '2017-10-12T10:00:00Z'),
      originalRecord('new-live', 'DEPLOYED', '5', '2017-10-12T11:00:00Z'),
      originalRecord('failed', 'FAILURE', '6', '2017-10-12T12:00:00Z'),
    ],
  });
  const run = (kv: MemoryKv, dryRun = false): Promise<ImportReport> => importOriginalData(data(), {
    kv, descriptors: new EtcdDescriptorStore(kv), deployments: new DeploymentStore(kv), environment: new EnvironmentStore(kv),
  }, { dryRun, retainRecords: 50, sourceName: 'test' });
  const snapshot = async (kv: MemoryKv) => (await kv.list('')).entries.map((e) => `${e.key}@${e.modRevision}`);

  it('dry run writes nothing; the run makes the newest DEPLOYED record live; a second run imports nothing', async () => {
    const kv = new MemoryKv();
    const dry = await run(kv, true);
    assert.deepEqual(await snapshot(kv), []);
    assert.equal(dry.counts.imported, 4);

    const first = await run(kv);
    assert.deepEqual(first.counts, { imported: 4, 'already-imported': 0, skipped: 0, bad: 0 });
    const store = new DeploymentStore(kv);
    assert.equal((await store.live('shop', 'web'))?.deploymentId, 'new-live');
    assert.equal((await store.get('shop', 'old-live'))?.value.status, 'UNDEPLOYED');
    assert.equal((await store.get('shop', 'old-live'))?.value.originalStatus, 'DEPLOYED');
    assert.equal((await store.versionCounter('shop', 'web')).value, 6);
    assert.deepEqual(first.apps[0]?.versionCounter, { before: 0, after: 6 });
    assert.ok(first.warnings.some((w) => w.includes('2 records DEPLOYED')), first.warnings.join('\n'));

    const before = await snapshot(kv);
    const second = await run(kv);
    assert.deepEqual(second.counts, { imported: 0, 'already-imported': 4, skipped: 0, bad: 0 });
    assert.deepEqual(await snapshot(kv), before, 'the second run writes nothing');
  });

  it('never replaces cutover\'s own live record', async () => {
    const kv = new MemoryKv();
    const store = new DeploymentStore(kv);
    await store.importRecord({ record: record('cutovers-own', { version: '9' }), events: [], health: [], source: 'test', mark, live: true });
    const report = await run(kv);
    assert.equal((await store.live('shop', 'web'))?.deploymentId, 'cutovers-own');
    assert.equal((await store.get('shop', 'new-live'))?.value.status, 'UNDEPLOYED');
    assert.ok(report.warnings.some((w) => w.includes('cutover already has a live deployment cutovers-own')), report.warnings.join('\n'));
    assert.equal((await store.versionCounter('shop', 'web')).value, 6);
  });

  it('does not import again what retention or an operator deleted since', async () => {
    const kv = new MemoryKv();
    await run(kv);
    const store = new DeploymentStore(kv);
    await store.delete('shop', 'web', 'failed');
    const again = await run(kv);
    assert.equal(again.counts.imported, 0);
    assert.equal(await store.get('shop', 'failed'), undefined);
    assert.match(again.items.find((i) => i.key.endsWith('/failed'))?.detail ?? '', /deleted in cutover since/);
  });
});
