import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { restoreObject, upsert, mergeService } from '../../src/deployer/traffic/objects.js';
import { DEPLOYMENT_ID_ANNOTATION, isManagedByCutover } from '../../src/deployer/labels.js';
import type { KubeObject } from '../../src/deployer/cluster.js';
import { MemoryCluster } from '../support/memory-cluster.js';

const service = (version: string, deploymentId: string, extraLabels: Record<string, string> = {}): KubeObject => ({
  metadata: { name: 'shop', namespace: 'ns', labels: { app: 'shop', 'app.kubernetes.io/managed-by': 'cutover', ...extraLabels }, annotations: { [DEPLOYMENT_ID_ANNOTATION]: deploymentId } },
  spec: { selector: { app: 'shop', version }, ports: [{ port: 80 }] },
});

/**
 * The switch writes a traffic target from a capture taken earlier (while the new version's pods
 * started); should the object change or go in between, the write meets a conflict (or finds it
 * gone) and reads it again. A rollback must then put back what the write replaced, not the older
 * capture.
 */
describe('traffic objects: upsert over a capture that changed since', () => {
  it('a conflict replaces the capture with the fresh read, so a restore keeps the change made in between', async () => {
    const cluster = new MemoryCluster();
    await cluster.create('Service', service('1', 'd1'));
    const known = { object: await cluster.get('Service', 'ns', 'shop') };
    assert.ok(known.object && isManagedByCutover(known.object.metadata), 'the fixture is a Service cutover manages');
    // Someone else changes the Service after the capture.
    const now = await cluster.get('Service', 'ns', 'shop');
    await cluster.replace('Service', { ...now, metadata: { ...now!.metadata, labels: { ...now!.metadata!.labels, team: 'checkout' } } });

    await upsert(cluster, 'Service', service('2', 'd2'), AbortSignal.timeout(5000), () => true, mergeService, known);
    assert.equal((await cluster.get('Service', 'ns', 'shop'))?.spec.selector.version, '2');
    assert.equal(known.object?.metadata?.labels?.['team'], 'checkout', 'the capture is now what the write replaced');

    assert.equal(await restoreObject(cluster, 'Service', 'ns', 'shop', known.object, 'd2', AbortSignal.timeout(5000)), true);
    const restored = await cluster.get('Service', 'ns', 'shop');
    assert.equal(restored?.spec.selector.version, '1');
    assert.equal(restored?.metadata?.labels?.['team'], 'checkout', 'the change made between capture and switch is kept');
  });

  it('one deleted since the capture is created, and the capture becomes "absent", so a restore removes ours', async () => {
    const cluster = new MemoryCluster();
    await cluster.create('Service', service('1', 'd1'));
    const known = { object: await cluster.get('Service', 'ns', 'shop') };
    await cluster.delete('Service', 'ns', 'shop');

    await upsert(cluster, 'Service', service('2', 'd2'), AbortSignal.timeout(5000), () => true, mergeService, known);
    assert.equal((await cluster.get('Service', 'ns', 'shop'))?.spec.selector.version, '2');
    assert.equal(known.object, undefined, 'the capture is now what the write replaced: nothing');

    assert.equal(await restoreObject(cluster, 'Service', 'ns', 'shop', known.object, 'd2', AbortSignal.timeout(5000)), true);
    assert.equal(await cluster.get('Service', 'ns', 'shop'), undefined);
  });

  it('an unchanged capture is written over without a read', async () => {
    const cluster = new MemoryCluster();
    await cluster.create('Service', service('1', 'd1'));
    const known = { object: await cluster.get('Service', 'ns', 'shop') };
    const captured = known.object;
    let reads = 0;
    const counting = Object.assign(Object.create(cluster) as MemoryCluster, { get: async (...args: Parameters<MemoryCluster['get']>) => { reads++; return cluster.get(...args); } });
    await upsert(counting, 'Service', service('2', 'd2'), AbortSignal.timeout(5000), () => true, mergeService, known);
    assert.equal(reads, 0);
    assert.equal(known.object, captured);
  });
});
