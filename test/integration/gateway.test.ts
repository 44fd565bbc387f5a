import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { request as undiciRequest } from 'undici';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { useTestbed } from '../testbed/harness.js';

/**
 * Gateway API routes beside Ingresses, with real traffic through the test bed's Traefik: the
 * HTTPRoute target, routing per descriptor, and "switched" meaning "traffic has moved" (route
 * status, endpoints, the traffic probe through the gateway).
 */
describe('HTTPRoutes and Ingresses through Traefik', { concurrency: 2 }, () => {
  let bed: BedFixture;
  let traefikUrl: string;

  before(async () => {
    const probe = await useTestbed();
    const t = probe.traefik;
    await probe.release();
    traefikUrl = t.url;
    // cutover configured for the bed's gateway: HTTPRoutes by default, the version header and the probe.
    bed = await startBedFixture({
      CUTOVER_ROUTING: 'httproute', CUTOVER_GATEWAY: `${t.gateway.namespace}/${t.gateway.name}/${t.gateway.sectionName}`,
      CUTOVER_INGRESS_CLASS: t.ingressClass, CUTOVER_INGRESS_PROFILE: 'traefik',
      CUTOVER_VERSION_HEADER: 'X-Cutover-Version', CUTOVER_TRAFFIC_PROBE_URL: t.url,
    }, { observe: true });
  });

  after(async () => {
    await bed?.close();
  });

  /** One request through Traefik: status, the version header, and the version the pod says it is. */
  async function through(host: string): Promise<{ status: number; header: string | undefined; version: string | undefined }> {
    // fetch() may not set Host (a forbidden header); undici's request may.
    const res = await undiciRequest(traefikUrl, { headers: { host } });
    const text = await res.body.text();
    let version: string | undefined;
    try {
      version = (JSON.parse(text) as { version?: string }).version ?? undefined;
    } catch {
      version = undefined;
    }
    const header = res.headers['x-cutover-version'];
    return { status: res.statusCode, header: typeof header === 'string' ? header : undefined, version };
  }

  it('an HTTPRoute carries v1, then v2: requests through the Gateway reach the new version once DEPLOYED and converged', async () => {
    const ns = await bed.namespace('route');
    const host = `${ns}.example.test`;
    const v1 = await bed.api.deploy(ns, { replicas: 1, frontend: host });
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    const route = await bed.kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes', name: 'shop' }) as any;
    assert.equal(route.spec.rules[0].backendRefs[0].name, 'shop-1');
    assert.equal(route.metadata.annotations['cutover.io/deployment-id'], v1.id);
    assert.equal(await bed.cluster.ingress(ns, 'shop'), undefined, 'routing httproute: no Ingress');
    await waitFor('v1 to have converged', async () => (await bed.api.get(ns, v1.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
    assert.deepEqual(await through(host), { status: 200, header: '1', version: '1' });

    const v2 = await bed.api.deploy(ns, { replicas: 1, frontend: host });
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    const converged = await waitFor('convergence to be recorded', async () => (await bed.api.get(ns, v2.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
    assert.ok(Date.parse(converged) >= Date.parse(v2.times.switched));
    const logs = await bed.api.logs(ns, v2.id);
    assert.match(logs, /HTTPRoute shop \(Gateway cutover-system\/cutover-gateway\/web\) now routes/);
    assert.match(logs, /Traffic has moved to version 2, \d+ ms after the switch: .*HTTPRoute: applied after \d+ ms.*requests through the gateway reach version 2/);
    for (let i = 0; i < 5; i++) assert.deepEqual(await through(host), { status: 200, header: '2', version: '2' });
  });

  it('routing "ingress" with the traefik profile: the Ingress carries the version tag and the probe confirms the move', async () => {
    const ns = await bed.namespace('ingress');
    const host = `${ns}.example.test`;
    const v1 = await bed.api.deploy(ns, { replicas: 1, frontend: host, routing: 'ingress' });
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    assert.ok(await bed.cluster.ingress(ns, 'shop'));
    await waitFor('v1 to have converged', async () => (await bed.api.get(ns, v1.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
    assert.deepEqual(await through(host), { status: 200, header: '1', version: '1' });
    const v2 = await bed.api.deploy(ns, { replicas: 1, frontend: host, routing: 'ingress' });
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    await waitFor('convergence to be recorded', async () => (await bed.api.get(ns, v2.id)).times.converged, { timeoutMs: 30_000, intervalMs: 50 });
    assert.match(await bed.api.logs(ns, v2.id), /requests through the gateway reach version 2 after \d+ ms/);
    assert.deepEqual(await through(host), { status: 200, header: '2', version: '2' });
    // The version tag belongs to its version: v1's went with v1.
    await bed.cluster.waitForWorkloads(ns, 'shop', ['shop-2']);
    await waitFor('v1\'s tag to be removed', async () => {
      const names = ((await bed.kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'traefik.io', version: 'v1alpha1', namespace: ns, plural: 'middlewares' })) as any).items.map((m: any) => m.metadata.name);
      return JSON.stringify(names) === '["shop-2-version"]';
    }, { timeoutMs: 20_000 });
  });

  it('moving an app from an Ingress to an HTTPRoute removes the Ingress at the switch; an undeploy removes the route', async () => {
    const ns = await bed.namespace('move');
    const host = `${ns}.example.test`;
    assert.equal((await bed.api.deploy(ns, { replicas: 1, frontend: host, routing: 'ingress' })).status, 'DEPLOYED');
    const v2 = await bed.api.deploy(ns, { replicas: 1, frontend: host, routing: 'httproute' });
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    assert.equal(await bed.cluster.ingress(ns, 'shop'), undefined);
    assert.match(await bed.api.logs(ns, v2.id), /the app routes through an HTTPRoute only: removed Ingress shop/);
    await waitFor('traffic through the route', async () => (await through(host)).header === '2', { timeoutMs: 10_000 });
    const res = await request(`${bed.cutover.url}/deployments/${v2.id}/?namespace=${ns}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    assert.equal((await bed.api.waitForStatus(ns, v2.id, new Set(['UNDEPLOYED', 'FAILURE']))).status, 'UNDEPLOYED');
    const routes = await bed.kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes' }) as any;
    assert.deepEqual(routes.items, []);
  });

  it('an HTTPRoute without a Gateway configured fails before anything is created', async () => {
    const ns = await bed.namespace('nogw');
    const { startTestCutover } = await import('../support/cutover.js');
    const lone = await startTestCutover(bed.etcd.endpoint, { CUTOVER_KUBECONFIG: bed.testbed.kubeconfigPath, CUTOVER_ROUTING: 'httproute' });
    await bed.observe(ns, lone.config.etcdPrefix);
    try {
      const api = new (await import('../support/deploy.js')).DeployClient(lone.url);
      const failed = await api.deploy(ns, { replicas: 1, frontend: `${ns}.example.test` });
      assert.equal(failed.status, 'FAILURE');
      assert.match(failed.failureReason, /no Gateway is configured/);
      assert.deepEqual(await bed.cluster.workloads(ns, 'shop'), []);
    } finally {
      await lone.stop();
    }
  });
});
