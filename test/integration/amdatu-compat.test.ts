import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { fakeAppDescriptor } from '../support/deploy.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';

/**
 * The Amdatu deployer's own integration test (`testing/deployment_test.go`, reference §16),
 * re-expressed against cutover on the test bed, scenario by scenario and in its order (state
 * carries over between them, as there). Run as a migrating team would: the server default
 * CUTOVER_DEFAULT_CONTROLLER_KIND=ReplicationController, the original's fixture (app
 * "integrationtest", 2 replicas, one unnamed port 9999, health path by type and outcome as its demo
 * image served them — the fake pods answer by path the same way), and its black-box protocol: 201
 * and 202 with Location, polling the Location (with its doubled slash) while DEPLOYING. Its stale
 * proxy check (etcd /proxy/frontends) is replaced by the Ingress check the reference suggests; the
 * assertions it omits (log non-empty, health data per pod, the replaced record UNDEPLOYED) are added.
 */
const APP = 'integrationtest';

describe('Amdatu compatibility: testing/deployment_test.go', { concurrency: 1 }, () => {
  let bed: BedFixture;
  let ns: string;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  const frontend = () => `deployer-${ns}.example.test`;

  before(async () => {
    bed = await startBedFixture({ CUTOVER_DEFAULT_CONTROLLER_KIND: 'ReplicationController', CUTOVER_HEALTHCHECK_TIMEOUT_SECONDS: '6' }, { observe: true });
    ns = await bed.namespace('amdatu-compat');
    core = bed.kc.makeApiClient(CoreV1Api);
    apps = bed.kc.makeApiClient(AppsV1Api);
  });
  after(async () => {
    await bed?.close();
  });

  /** createDescriptor (`:507-542`): the original's fixture. */
  function descriptor(type: 'probe' | 'simple', healthy: boolean, extra: Record<string, unknown> = {}): Record<string, unknown> {
    const path = type === 'probe' ? (healthy ? 'healthy' : 'unhealthy') : (healthy ? 'simple' : 'error');
    return {
      appName: APP, newVersion: '#', replicas: 2, frontend: frontend(), namespace: ns,
      podspec: { containers: [{ name: 'deployer-demo', image: 'amdatu/amdatu-kubernetes-deployer-demo:alpha', ports: [{ containerPort: 9999 }] }] },
      useHealthCheck: true, healthCheckPort: 9999, healthCheckType: type, healthCheckPath: path, ...extra,
    };
  }

  /** startDeploy (`:442-505`): the black-box contract, exactly as the original's test drives it. */
  async function startDeploy(body: Record<string, unknown>): Promise<{ id: string; status: string }> {
    const created = await request(`${bed.cutover.url}/descriptors/?namespace=${ns}`, { method: 'POST', json: body });
    assert.equal(created.status, 201, created.text);
    const descriptorId = /\/descriptors\/(.*)\/.*/.exec(created.headers.get('location') ?? '')?.[1];
    assert.ok(descriptorId, `Location ${created.headers.get('location')}`);
    const started = await request(`${bed.cutover.url}/deployments/?namespace=${ns}&descriptorId=${descriptorId}`, { method: 'POST' });
    assert.equal(started.status, 202, started.text);
    const location = started.headers.get('location') ?? '';
    const id = /\/deployments\/(.*)\/.*/.exec(location)?.[1];
    assert.ok(id, `Location ${location}`);
    // The original polls `{deployer}{Location}`: a base ending in "/" and a Location starting with one.
    const record = await waitFor(`deployment ${id} to leave DEPLOYING`, async () => {
      const r = await request(`${bed.cutover.url}/${location}`);
      assert.equal(r.status, 200, r.text);
      return r.body.status === 'DEPLOYING' ? undefined : r.body as { status: string };
    }, { timeoutMs: 120_000, intervalMs: 250 });
    return { id, status: record.status };
  }

  async function replicationControllers(): Promise<Array<{ name: string; version: string }>> {
    const rcs = await core.listNamespacedReplicationController({ namespace: ns, labelSelector: `app=${APP}` });
    return rcs.items.filter((r) => !r.metadata?.deletionTimestamp).map((r) => ({ name: r.metadata!.name!, version: r.metadata!.labels!['version']! }));
  }

  async function runningPods(): Promise<number> {
    const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: `app=${APP}` });
    return pods.items.filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp).length;
  }

  /** checkProxyConfig, as the reference suggests for a modern cluster: one RC, the Ingress routes the frontend to it. */
  async function checkIngress(): Promise<void> {
    const rcs = await replicationControllers();
    assert.equal(rcs.length, 1, `Invalid number of replication controllers, expected 1, got ${rcs.length}`);
    const ing = await bed.cluster.ingress(ns, APP);
    assert.equal(ing?.spec?.rules?.[0]?.host, frontend());
    assert.equal(ing?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, rcs[0]!.name);
  }

  async function waitForPods(n: number): Promise<void> {
    await waitFor(`${n} Running pods of ${APP}`, async () => (await runningPods()) === n, { timeoutMs: 60_000, intervalMs: 250 });
  }

  it('TestProxyAfterFirstFailedDeployment: a first deployment that fails leaves no RC and no Ingress', async () => {
    const r = await startDeploy(descriptor('probe', false));
    assert.notEqual(r.status, 'DEPLOYED');
    // The original waits 5 s for its cleanup; cutover writes FAILURE only after it.
    assert.deepEqual(await replicationControllers(), []);
    assert.deepEqual(await bed.cluster.ingresses(ns), []);
  });

  let firstVersion = 0;
  it('TestConsecutiveDeployments: probe then simple, both DEPLOYED with 2 Running pods; one RC left, version v+1', async () => {
    const first = await startDeploy(descriptor('probe', true));
    assert.equal(first.status, 'DEPLOYED');
    await waitForPods(2);
    await checkIngress();
    firstVersion = Number((await replicationControllers())[0]!.version);
    assert.ok(firstVersion > 0);
    const second = await startDeploy(descriptor('simple', true));
    assert.equal(second.status, 'DEPLOYED');
    await bed.cluster.waitForWorkloads(ns, APP, [`${APP}-${firstVersion + 1}`]);
    await waitForPods(2);
    await checkIngress();
    assert.deepEqual((await replicationControllers()).map((r) => Number(r.version)), [firstVersion + 1]);
    assert.deepEqual((await apps.listNamespacedDeployment({ namespace: ns })).items, [], 'ReplicationControllers only (the server default)');
    // What the original omits: the log, one health entry per pod, the replaced record UNDEPLOYED.
    assert.ok((await bed.api.logs(ns, second.id)).length > 0);
    const health = await request(`${bed.cutover.url}/deployments/${second.id}/healthcheckdata?namespace=${ns}`);
    assert.equal((health.body as unknown[]).length, 2);
    await waitFor('the replaced record to be UNDEPLOYED', async () => (await bed.api.get(ns, first.id)).status === 'UNDEPLOYED', { timeoutMs: 30_000 });
  });

  it('TestFailedProbeHealthCheck: probe + unhealthy with the app deployed is not DEPLOYED; the running version stays', async () => {
    const r = await startDeploy(descriptor('probe', false));
    assert.notEqual(r.status, 'DEPLOYED');
    await checkIngress();
    assert.deepEqual((await replicationControllers()).map((x) => Number(x.version)), [firstVersion + 1]);
  });

  it('TestFailedSimpleHealthCheck: simple + error is not DEPLOYED', async () => {
    const r = await startDeploy(descriptor('simple', false));
    assert.notEqual(r.status, 'DEPLOYED');
    await checkIngress();
  });

  it('TestIgnoreFailedHealthCheck: probe + unhealthy with ignoreHealthCheck is DEPLOYED', async () => {
    const r = await startDeploy(descriptor('probe', false, { ignoreHealthCheck: true }));
    assert.equal(r.status, 'DEPLOYED');
    await bed.cluster.waitForWorkloads(ns, APP, [(await replicationControllers()).map((x) => x.name).sort().at(-1)!]);
    await checkIngress();
  });

  it('TestConcurrentDeploy: 5 parallel deploys of one app, each its own descriptor, all DEPLOYED; 2 Running pods', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => startDeploy(descriptor('probe', true))));
    // The original read a run superseded within one poll as UNDEPLOYED (its flake); a record that went live counts.
    for (const r of results) {
      const record = await bed.api.get(ns, r.id);
      assert.ok(r.status === 'DEPLOYED' || (record.status === 'UNDEPLOYED' && record.times.switched), `${r.id}: ${r.status} ${record.failureReason ?? ''}`);
    }
    await waitFor('one RC left', async () => (await replicationControllers()).length === 1, { timeoutMs: 60_000, intervalMs: 250 });
    await waitForPods(2);
    await checkIngress();
  });

  it('TestDeployWithoutHealthCheck: no health check and no frontend is DEPLOYED with 2 Running pods', async () => {
    const r = await startDeploy(descriptor('probe', true, { useHealthCheck: false, frontend: undefined }));
    assert.equal(r.status, 'DEPLOYED');
    await waitForPods(2);
  });

  it('TestRedeployShouldFail: deploying the running version again fails and changes nothing', async () => {
    await waitFor('one RC', async () => (await replicationControllers()).length === 1, { timeoutMs: 60_000, intervalMs: 250 });
    const [running] = await replicationControllers();
    const r = await startDeploy(descriptor('probe', true, { useHealthCheck: false, frontend: undefined, newVersion: running!.version }));
    assert.notEqual(r.status, 'DEPLOYED');
    assert.deepEqual(await replicationControllers(), [running]);
    await waitForPods(2);
  });
});

/**
 * A team switching from the original (issue #15): a namespace the original deployed is adopted on
 * cutover's first deployment, and a deployment in progress can be cancelled.
 */
describe('Amdatu migration on the test bed: adoption and cancel', () => {
  let bed: BedFixture;

  before(async () => {
    bed = await startBedFixture({ CUTOVER_DEFAULT_CONTROLLER_KIND: 'ReplicationController' }, { observe: true });
  });
  after(async () => {
    await bed?.close();
  });

  /** What the original created for version `version` of `shop` (reference §8.1), pods answering as the fake pods do. */
  async function seedOriginal(ns: string, version: string): Promise<void> {
    const core = bed.kc.makeApiClient(CoreV1Api);
    const labels = { name: `shop-${version}`, version, app: 'shop' };
    await core.createNamespacedReplicationController({ namespace: ns, body: {
      metadata: { name: `shop-${version}`, labels, annotations: { deploymentTs: '2026-01-02T03:04:05Z', appName: 'shop', version, useHealthCheck: 'true', healthCheckType: 'probe', healthCheckPath: 'health' } },
      spec: { replicas: 2, selector: labels, template: { metadata: { labels }, spec: { containers: [{ name: 'app', image: 'example.invalid/fake:0', ports: [{ containerPort: 8080, name: 'http' }] }] } } },
    } });
    await core.createNamespacedService({ namespace: ns, body: { metadata: { name: `shop-${version}`, labels }, spec: { selector: labels, ports: [{ name: 'http', port: 8080, targetPort: 8080 }] } } });
    await core.createNamespacedService({ namespace: ns, body: {
      metadata: { name: 'shop', labels: { app: 'shop', name: 'shop', persistent: 'true' } },
      spec: { selector: { app: 'shop', version }, ports: [{ name: 'http', port: 8080, targetPort: 'http' }] },
    } });
    await waitFor('the original\'s pods to be ready', async () => (await bed.cluster.endpointIps(ns, 'shop')).length === 2, { timeoutMs: 60_000, intervalMs: 200 });
  }

  it('adopts the version the original left running: "#" continues after it, it is drained and removed after the switch; nothing else is touched', async () => {
    // Observed from cutover's first action on: the seeding itself creates the original's objects in its own order.
    const ns = await bed.namespace('adopt', { observe: false });
    await seedOriginal(ns, '12');
    await bed.observe(ns, bed.cutover.config.etcdPrefix);
    const core = bed.kc.makeApiClient(CoreV1Api);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'shop-settings', labels: { app: 'shop' } }, data: { a: '1' } } });

    const d = await bed.api.deploy(ns, { appName: 'shop', replicas: 2 });
    assert.equal(d.status, 'DEPLOYED', d.failureReason);
    assert.equal(d.version, '13');
    assert.equal(d.OldVersion, '12');
    await bed.cluster.waitForWorkloads(ns, 'shop', ['shop-13']);
    assert.deepEqual(await bed.cluster.workloadKinds(ns, 'shop'), ['ReplicationController/shop-13']);
    assert.deepEqual((await bed.cluster.service(ns, 'shop'))?.spec?.selector, { app: 'shop', version: '13' });
    const records = (await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=shop`)).body as Array<{ version: string; status: string; adopted?: { from: string } }>;
    const adopted = records.find((r) => r.adopted);
    assert.equal(adopted?.version, '12');
    assert.equal(adopted?.adopted?.from, 'amdatu');
    await waitFor('the adopted record to be UNDEPLOYED', async () => {
      const list = (await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=shop`)).body as Array<{ status: string; adopted?: unknown }>;
      return list.find((r) => r.adopted)?.status === 'UNDEPLOYED';
    }, { timeoutMs: 30_000 });
    assert.equal(await bed.cluster.service(ns, 'shop-12'), undefined);
    assert.ok((await core.readNamespacedConfigMap({ namespace: ns, name: 'shop-settings' })).data, 'what merely shares the app label is untouched');
  });

  it('cancels a deployment in progress: it stops before its switch, removes what it created, the running version is untouched', async () => {
    const ns = await bed.namespace('cancel');
    const v1 = await bed.api.deploy(ns, { appName: 'shop', replicas: 2 });
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    const before = (await bed.cluster.service(ns, 'shop'))?.spec?.selector;
    const descriptorId = await bed.api.createDescriptor(ns, { ...fakeAppDescriptor(ns, { appName: 'shop', replicas: 2, health: 'unhealthy' }), healthCheckTimeout: 120 });
    const started = await bed.api.startDeployment(ns, descriptorId);
    const id = started.body.id as string;
    await waitFor('health-checking', async () => (await bed.api.get(ns, id)).step === 'health-checking', { timeoutMs: 60_000, intervalMs: 100 });
    const t0 = Date.now();
    const cancel = await request(`${bed.cutover.url}/deployments/${id}/cancel?namespace=${ns}`, { method: 'POST' });
    assert.equal(cancel.status, 202, cancel.text);
    const done = await bed.api.waitForStatus(ns, id);
    const tookMs = Date.now() - t0;
    console.log(`# cancel → FAILURE with cleanup: ${tookMs} ms`);
    assert.equal(done.status, 'FAILURE');
    assert.equal(done.failureReason, 'cancelled by anonymous');
    await bed.cluster.waitForWorkloads(ns, 'shop', [`shop-${v1.version}`]);
    assert.deepEqual((await bed.cluster.service(ns, 'shop'))?.spec?.selector, before);
    assert.equal((await bed.api.get(ns, v1.id)).status, 'DEPLOYED');
    // A finished deployment cannot be cancelled: 409 with the reason.
    const again = await request(`${bed.cutover.url}/deployments/${id}/cancel?namespace=${ns}`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.match(again.text, /only a deployment in progress can be cancelled/);
  });
});
