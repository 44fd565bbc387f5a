// Smoke test of the test bed's second cluster (docs/testbed.md §Second cluster): both API servers
// answer, each is its own cluster (own nodes, own Service range), and a Deployment + Service on each gets
// a running, ready pod whose IP is in that cluster's pod range and answers real HTTP from the host, as
// that pod (the one fake-pods server serves both clusters' pods; their IPs never collide).
// Run: node --import tsx --test test/integration/testbed-clusters.test.ts   (adds cluster 2 if needed)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import {
  createTestNamespace, deleteNamespace, loadKubeConfig, useTestbed, waitFor, waitForFakePods, waitForReadyPods, type TestNamespace, type Testbed,
} from '../testbed/harness.js';
import { cidrContains } from '../testbed/fake-pods/pod-table.js';

const BED_TIMEOUT_MS = 45 * 60_000; // a cold run builds Kubernetes first

interface Side {
  name: string;
  kc: KubeConfig;
  ns: TestNamespace;
  podCidr: string;
  serviceCidr: string;
  pod?: V1Pod;
}

describe('test bed with two clusters', { timeout: BED_TIMEOUT_MS + 5 * 60_000 }, () => {
  let bed: Testbed;
  const sides: Side[] = [];
  const http = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });

  before(async () => {
    bed = await useTestbed({ clusters: 2 });
    assert.ok(bed.cluster2, 'useTestbed({ clusters: 2 }) gives the second cluster');
    assert.equal(bed.cluster2KubeconfigPath, bed.cluster2.kubeconfigPath);
    const kc1 = loadKubeConfig(bed.kubeconfigPath);
    const kc2 = loadKubeConfig(bed.cluster2.kubeconfigPath);
    sides.push(
      { name: 'cluster 1', kc: kc1, ns: await createTestNamespace(kc1, 'clusters'), podCidr: bed.podCidr, serviceCidr: '198.19.0.0/20' },
      { name: 'cluster 2', kc: kc2, ns: await createTestNamespace(kc2, 'clusters'), podCidr: bed.cluster2.podCidr, serviceCidr: bed.cluster2.serviceCidr },
    );
  }, { timeout: BED_TIMEOUT_MS });

  after(async () => {
    // Generous: on the shared bed cluster 1's controller manager may be busy with other tests' objects.
    await Promise.all(sides.map((s) => deleteNamespace(s.kc, s.ns.name, 180_000)));
    await http.close();
    await bed?.release();
  });

  it('has two API servers, each with its own nodes', async () => {
    assert.notEqual(bed.cluster2!.apiserverUrl, bed.apiserverUrl);
    assert.equal(loadKubeConfig(bed.cluster2!.kubeconfigPath).getCurrentCluster()?.server, bed.cluster2!.apiserverUrl);
    const nodes = await Promise.all(sides.map(async (s) =>
      (await s.kc.makeApiClient(CoreV1Api).listNode()).items.map((n) => n.metadata?.name ?? '').sort()));
    assert.ok(nodes[0]!.length > 0 && nodes[0]!.every((n) => /^kwok-node-\d+$/.test(n)), `cluster 1 nodes ${nodes[0]}`);
    assert.deepEqual(nodes[1], [...bed.cluster2!.nodeNames].sort());
    assert.ok(nodes[1]!.every((n) => /^kwok-c2-node-\d+$/.test(n)), `cluster 2 nodes ${nodes[1]}`);
    // Separate data: cluster 2's namespace does not exist on cluster 1 and vice versa.
    const ns1 = (await sides[0]!.kc.makeApiClient(CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name);
    const ns2 = (await sides[1]!.kc.makeApiClient(CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name);
    assert.ok(ns1.includes(sides[0]!.ns.name) && !ns1.includes(sides[1]!.ns.name));
    assert.ok(ns2.includes(sides[1]!.ns.name) && !ns2.includes(sides[0]!.ns.name));
    assert.ok(!cidrContains(bed.podCidr, bed.cluster2!.podCidr.split('/')[0]!), 'pod ranges are disjoint');
  });

  it('runs a 1-replica Deployment + Service on each cluster: ready pod in that cluster\'s pod range, endpoints, HTTP from the host', async (t) => {
    await Promise.all(sides.map(async (s) => {
      const started = Date.now();
      await s.kc.makeApiClient(AppsV1Api).createNamespacedDeployment({
        namespace: s.ns.name,
        body: {
          metadata: { name: 'web' },
          spec: {
            replicas: 1,
            selector: { matchLabels: { app: 'web' } },
            template: {
              metadata: { labels: { app: 'web', version: 'v1' } },
              spec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ containerPort: 8080 }], env: [{ name: 'FAKE_HEALTH', value: 'healthy' }] }] },
            },
          },
        },
      });
      await s.kc.makeApiClient(CoreV1Api).createNamespacedService({
        namespace: s.ns.name,
        body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } },
      });
      const [pod] = await waitForReadyPods(s.kc, s.ns.name, 'app=web', 1);
      s.pod = pod;
      t.diagnostic(`${s.name}: deployment create -> pod Ready ${Date.now() - started} ms, pod ${pod?.metadata?.name} ${pod?.status?.podIP} on ${pod?.spec?.nodeName}`);
    }));

    for (const s of sides) {
      const ip = s.pod?.status?.podIP ?? '';
      assert.ok(cidrContains(s.podCidr, ip), `${s.name}: pod IP ${ip} in ${s.podCidr}`);
      assert.match(s.pod?.spec?.nodeName ?? '', s.name === 'cluster 2' ? /^kwok-c2-node-/ : /^kwok-node-/);
      const svc = await s.kc.makeApiClient(CoreV1Api).readNamespacedService({ name: 'web', namespace: s.ns.name });
      assert.ok(cidrContains(s.serviceCidr, svc.spec?.clusterIP ?? ''), `${s.name}: ClusterIP ${svc.spec?.clusterIP} in ${s.serviceCidr}`);
      await waitFor(`${s.name}: EndpointSlice of web to list ${ip} ready`, async () => {
        const slices = await s.kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
          namespace: s.ns.name, labelSelector: 'kubernetes.io/service-name=web',
        });
        const ips = slices.items.flatMap((x) => x.endpoints.filter((e) => e.conditions?.ready).flatMap((e) => e.addresses));
        return ips.length === 1 && ips[0] === ip ? { done: true as const, value: ips } : { done: false as const, reason: `ready ${ips.join(',') || '(none)'}` };
      }, { timeoutMs: 30_000 });
    }
    const ips = sides.map((s) => s.pod?.status?.podIP ?? '');
    assert.notEqual(ips[0], ips[1], 'pod IPs of the two clusters do not collide');

    await waitForFakePods(bed.fakePodsSocket, ips);
    for (const s of sides) {
      const ip = s.pod?.status?.podIP ?? '';
      const res = await request(`http://${ip}:8080/healthz`, { dispatcher: http });
      const body = JSON.parse(await res.body.text()) as Record<string, unknown>;
      assert.equal(res.statusCode, 200, s.name);
      assert.equal(res.headers['x-fake-pod'], `${s.ns.name}/${s.pod?.metadata?.name}`);
      assert.deepEqual(body, { healthy: true, pod: s.pod?.metadata?.name, version: 'v1', namespace: s.ns.name, ip });
    }
  });
});
