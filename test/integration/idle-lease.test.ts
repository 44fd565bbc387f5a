import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from '../support/etcd.js';
import { DeployClient } from '../support/deploy.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { waitFor } from '../support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

/**
 * Issue #18, "no CPU while idle": a replica holds its etcd lease only while it works (and for one
 * TTL after), so an idle replica sends no keepalives. Read from the real etcd's lease list.
 */
describe('the etcd lease of an idle replica', () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let ns: TestNamespace;

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, { CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_DRAIN_SECONDS: '0', CUTOVER_LEASE_TTL_SECONDS: '5' });
    ns = await createTestNamespace(kc, 'idle-lease');
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
    await ns?.delete();
    await testbed?.release();
  });

  async function leases(): Promise<string[]> {
    const res = await fetch(`${etcd.endpoint}/v3/lease/leases`, { method: 'POST', body: '{}' });
    const body = await res.json() as { leases?: Array<{ ID: string }> };
    return (body.leases ?? []).map((l) => l.ID);
  }

  it('none after start-up, one while deploying, none again once the work is over', async () => {
    assert.deepEqual(await leases(), [], 'a replica with nothing to do holds no lease');
    const api = new DeployClient(cutover.url);
    const seen = new Set<string>();
    let finished = false;
    const deployment = api.deploy(ns.name, {}).finally(() => { finished = true; });
    const watching = (async () => {
      while (!finished) {
        for (const id of await leases()) seen.add(id);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const done = await deployment;
    await watching;
    assert.equal(done.status, 'DEPLOYED', done.failureReason);
    assert.equal(seen.size, 1, `one lease held while working (saw ${[...seen].join(', ')})`);
    await waitFor('the lease to be revoked once the replica is idle', async () => (await leases()).length === 0 ? true : undefined, { timeoutMs: 30_000, intervalMs: 100 });
  });
});
