import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EngineHarness } from '../support/engine-harness.js';
import type { MemoryCluster } from '../support/memory-cluster.js';

/**
 * A namespace the Amdatu deployer deployed (issue #15): its objects as the original made them
 * (reference §8.1, §10.1), then cutover's first deployment of the app. In memory;
 * test/integration/amdatu-compat.test.ts does the same on the test bed.
 */
export async function seedOriginal(cluster: MemoryCluster, version: string, options: { frontend?: string } = {}): Promise<void> {
  const labels = { name: `shop-${version}`, version, app: 'shop' };
  await cluster.create('ReplicationController', {
    apiVersion: 'v1', kind: 'ReplicationController',
    metadata: { name: `shop-${version}`, namespace: 'ns', labels, annotations: { deploymentTs: '2026-01-02T03:04:05Z', deploymentId: 'amdatu-id', appName: 'shop', version, useHealthCheck: 'true', healthCheckPath: 'health', healthCheckType: 'probe', frontend: options.frontend ?? '' } },
    spec: { replicas: 2, selector: labels, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'example.invalid/app:0', ports: [{ containerPort: 8080 }] }] } } },
  });
  await cluster.create('Service', { apiVersion: 'v1', kind: 'Service', metadata: { name: `shop-${version}`, namespace: 'ns', labels }, spec: { selector: labels, ports: [{ port: 8080, targetPort: 8080 }] } });
  await cluster.create('Service', {
    apiVersion: 'v1', kind: 'Service', metadata: { name: 'shop', namespace: 'ns', labels: { app: 'shop', name: 'shop', persistent: 'true' } },
    spec: { selector: { app: 'shop', version }, ports: [{ port: 8080, targetPort: 8080 }] },
  });
  if (options.frontend) {
    await cluster.create('Ingress', {
      apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'shop', namespace: 'ns', annotations: { 'kubernetes.io/ingress.class': 'nginx' } },
      spec: { rules: [{ host: options.frontend, http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: `shop-${version}`, port: { number: 8080 } } } }] } }] },
    });
  }
}

describe('adopting what the Amdatu deployer left running', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  it('continues "#" after its version, records it as the live deployment, and drains and removes it after the switch', async () => {
    h = await new EngineHarness({ defaultControllerKind: 'ReplicationController' }).start();
    await seedOriginal(h.cluster, '7', { frontend: 'shop.example.test' });
    // Not the original's: shares the app label only.
    await h.cluster.create('Deployment', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'shop-cache', namespace: 'ns', labels: { app: 'shop' } }, spec: { replicas: 1, template: { metadata: { labels: { app: 'shop' } }, spec: { containers: [] } } } });

    const started = await h.deploy();
    assert.equal(started.version, '8', '"#" continues after the version running in the cluster (the original\'s bug 12: versions restarting at 1)');
    const v8 = await h.settled(started.id);
    assert.equal(v8.status, 'DEPLOYED', v8.failureReason);
    assert.equal(v8.OldVersion, '7');
    await h.idle();

    const records = await h.store.list('ns', 'shop');
    const adopted = records.map((r) => r.value).find((r) => r.adopted);
    assert.ok(adopted, 'an adopted record');
    assert.equal(adopted.version, '7');
    assert.equal(adopted.adopted!.from, 'amdatu');
    assert.deepEqual(adopted.adopted!.objects, ['ReplicationController shop-7', 'Service shop-7', 'Service shop']);
    assert.equal(adopted.status, 'UNDEPLOYED', 'drained and removed like one of cutover\'s own');
    assert.equal(adopted.replacedBy, v8.id);
    assert.equal(adopted.descriptor.controllerKind, 'ReplicationController');
    assert.equal(adopted.descriptor.replicas, 2);
    assert.equal(adopted.descriptor.podspec.containers[0]!.image, 'example.invalid/app:0');
    assert.equal(adopted.created, '2026-01-02T03:04:05.000Z', 'when the original deployed it');

    assert.deepEqual(h.cluster.names('ReplicationController', 'ns'), ['shop-8']);
    assert.equal(h.cluster.object('Service', 'ns', 'shop-7'), undefined);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '8' });
    assert.equal(h.ingressBackend(), 'shop-8');
    assert.ok(h.cluster.object('Deployment', 'ns', 'shop-cache'), 'what merely shares the app label is untouched');
    const log = (await h.store.events('ns', v8.id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    assert.ok(log.some((l) => /^Adopted version 7, deployed by the Amdatu deployer/.test(l)), log.join('\n'));

    // The next deployment is an ordinary one.
    const v9 = await h.settled((await h.deploy()).id);
    assert.equal(v9.version, '9');
    assert.equal(v9.OldVersion, '8');
  });

  it('a failed first deployment leaves the original\'s version running and live', async () => {
    h = await new EngineHarness().start();
    await seedOriginal(h.cluster, '3');
    h.health = (t) => (t.podName.startsWith('shop-4') ? 'HTTP 503' : true);
    const failed = await h.settled((await h.deploy({ healthCheckTimeout: 1 })).id);
    assert.equal(failed.status, 'FAILURE');
    await h.idle();
    assert.deepEqual(h.cluster.names('ReplicationController', 'ns'), ['shop-3']);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '3' });
    const live = await h.store.live('ns', 'shop');
    const adopted = (await h.store.get('ns', live!.deploymentId))!.value;
    assert.equal(adopted.version, '3');
    assert.equal(adopted.status, 'DEPLOYED', 'the adopted record stays the live one');
  });
});
