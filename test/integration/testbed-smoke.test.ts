// Smoke test of the local Kubernetes test bed (docs/testbed.md): controllers, scheduling, kwok stages,
// Services/EndpointSlices, Ingress storage, and real HTTP to the fake pods in the pod network namespace.
// Run: node --import tsx --test test/integration/testbed-smoke.test.ts   (brings the bed up if needed)
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AppsV1Api, CoreV1Api, DiscoveryV1Api, NetworkingV1Api, type KubeConfig, type V1Container, type V1Pod,
} from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import {
  createTestNamespace, isPodReady, listFakePods, loadKubeConfig, useTestbed, waitFor, waitForFakePods, waitForPod,
  waitForReadyPods, type TestNamespace, type Testbed,
} from '../testbed/harness.js';

const POD_IP = /^198\.18\.\d{1,3}\.\d{1,3}$/;
const BED_TIMEOUT_MS = 45 * 60_000; // a cold run builds Kubernetes first

function container(env: Record<string, string> = {}): V1Container {
  return {
    name: 'app',
    image: 'example.invalid/fake:1',
    ports: [{ containerPort: 8080 }],
    env: Object.entries(env).map(([name, value]) => ({ name, value })),
  };
}

describe('test bed smoke', { timeout: BED_TIMEOUT_MS + 5 * 60_000 }, () => {
  let bed: Testbed;
  let kc: KubeConfig;
  let ns: TestNamespace;
  let core: CoreV1Api;
  // Own connection pool, closed at the end, so no keep-alive socket holds the test process open.
  const http = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });

  const get = async (ip: string, path = '/healthz') => {
    const res = await request(`http://${ip}:8080${path}`, { dispatcher: http });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  };

  const createPod = (name: string, env: Record<string, string>, labels: Record<string, string> = {}) =>
    core.createNamespacedPod({
      namespace: ns.name,
      body: { metadata: { name, labels: { version: 'v9', ...labels } }, spec: { containers: [container(env)] } },
    });

  before(async () => {
    bed = await useTestbed();
    kc = loadKubeConfig(bed.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    ns = await createTestNamespace(kc, 'smoke');
  }, { timeout: BED_TIMEOUT_MS });

  after(async () => {
    await ns?.delete();
    await http.close();
    await bed?.release();
  });

  let webPods: V1Pod[] = [];
  let rcPods: V1Pod[] = [];

  it('runs a 2-replica Deployment: Running, Ready, pod IPs in 198.18.0.0/16', async (t) => {
    const apps = kc.makeApiClient(AppsV1Api);
    const labels = { app: 'web', version: 'v1' };
    const started = Date.now();
    await apps.createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels }, spec: { containers: [container({ FAKE_HEALTH: 'healthy' })] } },
        },
      },
    });
    webPods = await waitForReadyPods(kc, ns.name, 'app=web', 2);
    t.diagnostic(`deployment create -> 2 pods Ready: ${Date.now() - started} ms`);
    for (const p of webPods) assert.match(p.status?.podIP ?? '', POD_IP, `pod ${p.metadata?.name}`);
    await waitFor('deployment status to report 2 available replicas', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'web', namespace: ns.name });
      return d.status?.availableReplicas === 2
        ? { done: true as const, value: d }
        : { done: false as const, reason: `available ${d.status?.availableReplicas ?? 0}` };
    }, { timeoutMs: 30_000 });
  });

  it('runs a 2-replica ReplicationController', async () => {
    await core.createNamespacedReplicationController({
      namespace: ns.name,
      body: {
        metadata: { name: 'legacy' },
        spec: {
          replicas: 2,
          selector: { app: 'legacy' },
          template: { metadata: { labels: { app: 'legacy', version: 'v0' } }, spec: { containers: [container()] } },
        },
      },
    });
    rcPods = await waitForReadyPods(kc, ns.name, 'app=legacy', 2);
    for (const p of rcPods) assert.match(p.status?.podIP ?? '', POD_IP, `pod ${p.metadata?.name}`);
  });

  it('gives a Service an EndpointSlice with both pod IPs', async () => {
    await core.createNamespacedService({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080, protocol: 'TCP' }] },
      },
    });
    const svc = await core.readNamespacedService({ name: 'web', namespace: ns.name });
    assert.match(svc.spec?.clusterIP ?? '', /^198\.19\./, 'ClusterIP from 198.19.0.0/20');
    const want = webPods.map((p) => p.status?.podIP ?? '').sort();
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    await waitFor('EndpointSlice of service web to list both pod IPs', async () => {
      const slices = await discovery.listNamespacedEndpointSlice({
        namespace: ns.name, labelSelector: 'kubernetes.io/service-name=web',
      });
      const ips = slices.items.flatMap((s) => s.endpoints.filter((e) => e.conditions?.ready).flatMap((e) => e.addresses)).sort();
      return JSON.stringify(ips) === JSON.stringify(want)
        ? { done: true as const, value: ips }
        : { done: false as const, reason: `ready endpoints ${ips.join(',') || '(none)'}` };
    }, { timeoutMs: 30_000 });
  });

  it('stores a networking.k8s.io/v1 Ingress', async () => {
    const net = kc.makeApiClient(NetworkingV1Api);
    await net.createNamespacedIngress({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: {
          rules: [{
            host: 'web.example.invalid',
            http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'web', port: { number: 80 } } } }] },
          }],
        },
      },
    });
    const back = await net.readNamespacedIngress({ name: 'web', namespace: ns.name });
    assert.equal(back.spec?.rules?.[0]?.host, 'web.example.invalid');
    assert.equal(back.spec?.rules?.[0]?.http?.paths[0]?.backend.service?.name, 'web');
  });

  it('answers HTTP from the host on every pod IP, as that pod', async () => {
    const pods = [...webPods, ...rcPods];
    await waitForFakePods(bed.fakePodsSocket, pods.map((p) => p.status?.podIP ?? ''));
    for (const p of pods) {
      const r = await get(p.status?.podIP ?? '');
      assert.equal(r.status, 200);
      const body = JSON.parse(r.text) as { healthy: boolean; pod: string; version: string | null };
      assert.deepEqual(
        { healthy: body.healthy, pod: body.pod, version: body.version },
        { healthy: true, pod: p.metadata?.name, version: p.metadata?.labels?.version },
      );
    }
    // FAKE_HEALTH unset (the RC's pods): the last path segment decides.
    const rcIp = rcPods[0]?.status?.podIP ?? '';
    assert.deepEqual(JSON.parse((await get(rcIp, '/status/unhealthy')).text).healthy, false);
    assert.equal((await get(rcIp, '/error')).status, 500);
  });

  it('answers as unhealthy for FAKE_HEALTH=unhealthy, and stops answering once the pod is gone', async () => {
    await createPod('sick', { FAKE_HEALTH: 'unhealthy' });
    const pod = await waitForPod(kc, ns.name, 'sick', 'Ready', (p) => isPodReady(p) || `phase ${p.status?.phase}`);
    const ip = pod.status?.podIP ?? '';
    await waitForFakePods(bed.fakePodsSocket, [ip]);
    const r = await get(ip);
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.text), { healthy: false, pod: 'sick', version: 'v9', namespace: ns.name, ip });
    assert.equal((await listFakePods(bed.fakePodsSocket)).find((p) => p.ip === ip)?.requests, 1);

    await core.deleteNamespacedPod({ name: 'sick', namespace: ns.name, gracePeriodSeconds: 0 });
    await waitForFakePods(bed.fakePodsSocket, [ip], { serving: false });
    await assert.rejects(get(ip), 'a request to a removed pod must fail, not be answered');
  });

  it('holds a connection to an IP with no pod (yet) for a moment, as a real pod answers once Ready; then fails it', async () => {
    // An address in the pod range that kwok has not handed out: the server has no pod there.
    const unused = '198.18.255.254';
    assert.equal((await listFakePods(bed.fakePodsSocket)).some((p) => p.ip === unused), false);
    const sent = performance.now();
    await assert.rejects(get(unused), 'a request to an IP with no pod must fail, not be answered');
    const heldMs = performance.now() - sent;
    assert.ok(heldMs >= 450, `held ${heldMs.toFixed(0)} ms before it failed (500 ms grace)`);

    // Requests sent the moment the API server says Ready are answered.
    for (const name of ['eager-1', 'eager-2', 'eager-3']) await createPod(name, {});
    for (const name of ['eager-1', 'eager-2', 'eager-3']) {
      const pod = await waitFor(`pod ${name} Ready`, async () => {
        const p = await core.readNamespacedPod({ name, namespace: ns.name });
        return isPodReady(p) ? { done: true as const, value: p } : { done: false as const, reason: `phase ${p.status?.phase}` };
      }, { timeoutMs: 30_000, intervalMs: 5 });
      assert.equal((await get(pod.status?.podIP ?? '')).status, 200, `${name} answered right after Ready`);
    }
  });

  it('simulates FAKE_POD=never-ready: Running, container running, never Ready', async () => {
    await createPod('never-ready', { FAKE_POD: 'never-ready' });
    const pod = await waitForPod(kc, ns.name, 'never-ready', 'Running', (p) =>
      p.status?.phase === 'Running' || `phase ${p.status?.phase}`);
    assert.equal(isPodReady(pod), false);
    assert.equal(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    assert.ok(pod.status?.containerStatuses?.[0]?.state?.running, 'container running');
    assert.equal(pod.status?.containerStatuses?.[0]?.ready, false);
    assert.match(pod.status?.podIP ?? '', POD_IP);
  });

  it('simulates FAKE_POD=crashloop: CrashLoopBackOff with restarts, not Ready', async () => {
    await createPod('crashloop', { FAKE_POD: 'crashloop' });
    const pod = await waitForPod(kc, ns.name, 'crashloop', 'in CrashLoopBackOff', (p) =>
      p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff' ||
      `phase ${p.status?.phase}, waiting ${p.status?.containerStatuses?.[0]?.state?.waiting?.reason}`);
    const cs = pod.status?.containerStatuses?.[0];
    assert.ok((cs?.restartCount ?? 0) > 0, 'restartCount > 0');
    assert.equal(cs?.ready, false);
    assert.equal(isPodReady(pod), false);
  });

  it('simulates FAKE_POD=imagepull: ImagePullBackOff, Pending', async () => {
    await createPod('imagepull', { FAKE_POD: 'imagepull' });
    const pod = await waitForPod(kc, ns.name, 'imagepull', 'in ImagePullBackOff', (p) => {
      const reason = p.status?.containerStatuses?.[0]?.state?.waiting?.reason;
      return reason === 'ImagePullBackOff' || reason === 'ErrImagePull' || `phase ${p.status?.phase}, waiting ${reason}`;
    });
    assert.equal(pod.status?.phase, 'Pending');
    assert.equal(isPodReady(pod), false);
  });
});
