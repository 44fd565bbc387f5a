import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from '../support/etcd.js';
import { ClusterView, DeployClient, FINAL, fakeAppDescriptor } from '../support/deploy.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { waitFor } from '../support/wait.js';
import {
  createTestNamespace, loadKubeConfig, startStoppedComponent, stopComponent, useTestbed, type Testbed, type TestNamespace,
} from '../testbed/harness.js';

/**
 * Outages of the shared test bed itself (the API server). `.serial.` files run alone, after the
 * others (scripts/test.ts), because every other test using the bed would fail meanwhile.
 */
describe('Kubernetes API server outage', () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let ns: TestNamespace;

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, {
      CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_INTERVAL_MS: '200', CUTOVER_DRAIN_SECONDS: '1',
      CUTOVER_FAILPOINTS: 'before-health-check=pause:2000',
    });
    ns = await createTestNamespace(kc, 'apiserver-outage');
  });

  after(async () => {
    await startStoppedComponent('kube-apiserver').catch(() => undefined);
    await cutover?.stop();
    await etcd?.destroy();
    await ns?.delete();
    await testbed?.release();
  });

  it('API server down for 10 s mid-deployment: cutover retries, then completes; traffic is never half-switched', async () => {
    const api = new DeployClient(cutover.url);
    const v1 = await api.deploy(ns.name, { frontend: 'shop.example.test' });
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    const descriptorId = await api.createDescriptor(ns.name, fakeAppDescriptor(ns.name, { frontend: 'shop.example.test' }));
    const id = (await api.startDeployment(ns.name, descriptorId)).body.id;
    await waitFor('the health-check step', async () => (await api.get(ns.name, id)).step === 'health-checking', { timeoutMs: 30_000 });
    await stopComponent('kube-apiserver');
    // The outage itself: 10 s without an API server.
    await new Promise((r) => setTimeout(r, 10_000));
    await startStoppedComponent('kube-apiserver');
    const done = await api.waitForStatus(ns.name, id, FINAL, 120_000);
    assert.equal(done.status, 'DEPLOYED', done.failureReason);
    const cluster = new ClusterView(kc);
    assert.deepEqual((await cluster.service(ns.name, 'shop'))?.spec?.selector, { app: 'shop', version: '2' });
    assert.equal((await cluster.ingress(ns.name, 'shop'))?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'shop-2');
    await cluster.waitForWorkloads(ns.name, 'shop', ['shop-2']);
  });
});
