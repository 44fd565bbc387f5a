import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { ClusterView, DeployClient, FINAL, fakeAppDescriptor } from '../support/deploy.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import type { Testbed } from '../testbed/harness.js';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { ApiextensionsV1Api, type KubeConfig } from '@kubernetes/client-node';

/**
 * The blue-green engine against the real test bed: a real API server, controllers and kwok
 * pods whose IPs answer real HTTP. Each test works in its own namespace.
 */
describe('blue-green deployments on the test bed', { concurrency: 3 }, () => {
  let bed: BedFixture;
  let testbed: Testbed;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let api: DeployClient;
  let cluster: ClusterView;
  const namespace = (prefix: string) => bed.namespace(prefix);

  before(async () => {
    // Every namespace is watched by the invariant observer: I1 and I4 must hold at every instant.
    bed = await startBedFixture({ CUTOVER_INGRESS_CLASS: 'cutover-test' }, { observe: true });
    ({ testbed, kc, etcd, cutover, api, cluster } = bed);
  });

  after(async () => {
    await bed?.close();
  });

  it('deploys v1 then v2: one workload left, stable Service and Ingress on v2, traffic reaches v2 pods', async () => {
    const ns = await namespace('consecutive');
    const first = await api.deploy(ns, { frontend: 'shop.example.test' });
    assert.equal(first.status, 'DEPLOYED', first.failureReason);
    assert.equal(first.version, '1');
    assert.equal(first.OldVersion, '');

    const second = await api.deploy(ns, { frontend: 'shop.example.test' });
    assert.equal(second.status, 'DEPLOYED', second.failureReason);
    assert.equal(second.version, '2');
    assert.equal(second.OldVersion, '1');
    assert.equal(second.replaces, first.id);

    // The replaced record is drained and becomes UNDEPLOYED; exactly one workload remains.
    const old = await api.waitForStatus(ns, first.id, new Set(['UNDEPLOYED']), 30_000);
    assert.equal(old.replacedBy, second.id);
    await cluster.waitForWorkloads(ns, 'shop', ['shop-2']);
    assert.deepEqual(await cluster.services(ns), ['shop', 'shop-2']);

    const stable = await cluster.service(ns, 'shop');
    assert.deepEqual(stable?.spec?.selector, { app: 'shop', version: '2' });
    assert.equal(stable?.metadata?.labels?.['persistent'], 'true');
    const ingress = await cluster.ingress(ns, 'shop');
    assert.equal(ingress?.spec?.rules?.[0]?.host, 'shop.example.test');
    assert.equal(ingress?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'shop-2');
    assert.equal(ingress?.spec?.ingressClassName, 'cutover-test');

    // Real HTTP to the stable Service's endpoints reaches v2 pods only.
    const pods = await cluster.pods(ns, 'app=shop,version=2');
    const ips = await waitFor('the stable Service endpoints to be the v2 pods', async () => {
      const now = await cluster.endpointIps(ns, 'shop');
      return now.length === 2 && now.every((ip) => pods.some((p) => p.status?.podIP === ip)) ? now : undefined;
    }, { timeoutMs: 20_000, intervalMs: 200 });
    for (const ip of ips) {
      const res = await request(`http://${ip}:8080/`);
      assert.equal(res.status, 200);
      assert.equal(res.body.version, '2');
      assert.equal(res.body.healthy, true);
    }

    // Every step left a log line; health data has one entry per pod.
    const logs = await api.logs(ns, second.id);
    for (const expected of [/started/, /Created Deployment shop-2/, /All 2 pods are ready/, /healthy/, /stable Service shop now selects version 2/, /Ingress shop now routes/, /deployment successful/]) {
      assert.match(logs, expected);
    }
    assert.match(logs.split('\n')[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z /, 'each line is "<RFC3339 time> <message>"');
    const health = await request(`${cutover.url}/deployments/${second.id}/healthcheckdata?namespace=${ns}`);
    assert.equal(health.body.length, 2);
    for (const h of health.body) {
      assert.equal(h.healthy, true);
      assert.equal(h.statusCode, 200);
      assert.match(h.podName, /^shop-2-/);
      assert.ok(typeof h.latencyMs === 'number');
    }
  });

  it('fails a probe check that answers {"healthy": false}, removes the new version and leaves the running one alone', async () => {
    const ns = await namespace('probefail');
    const running = await api.deploy(ns, { frontend: 'shop.example.test' });
    assert.equal(running.status, 'DEPLOYED');
    const stableBefore = await cluster.service(ns, 'shop');
    const ingressBefore = await cluster.ingress(ns, 'shop');

    const failed = await api.deploy(ns, { health: 'probe-false', frontend: 'shop.example.test', healthCheckTimeout: 8 });
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason, /not healthy within 8 s/);
    assert.match(failed.failureReason, /healthy": false|"healthy": false|healthy.*false/);
    await cluster.waitForWorkloads(ns, 'shop', ['shop-1']);
    assert.deepEqual(await cluster.services(ns), ['shop', 'shop-1'], 'the stable Service survives a failed redeploy (the original deleted it)');
    const stableAfter = await cluster.service(ns, 'shop');
    assert.deepEqual(stableAfter?.spec?.selector, stableBefore?.spec?.selector);
    assert.equal(stableAfter?.metadata?.resourceVersion, stableBefore?.metadata?.resourceVersion, 'the stable Service was not modified at all');
    assert.equal((await cluster.ingress(ns, 'shop'))?.metadata?.resourceVersion, ingressBefore?.metadata?.resourceVersion, 'nor the Ingress');
    assert.equal((await api.get(ns, running.id)).status, 'DEPLOYED', 'the running record stays DEPLOYED');
  });

  it('fails a simple check on a 500, and a first deployment that fails leaves nothing behind', async () => {
    const ns = await namespace('firstfail');
    const failed = await api.deploy(ns, { health: 'error', healthCheckType: 'simple', frontend: 'shop.example.test', healthCheckTimeout: 8 });
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason, /status 500/);
    // FAILURE is written only after the cleanup: nothing of the app exists at that moment.
    assert.deepEqual(await cluster.workloads(ns, 'shop'), []);
    assert.deepEqual(await cluster.services(ns), []);
    assert.deepEqual(await cluster.ingresses(ns), []);
    const failedLog = await api.logs(ns, failed.id);
    assert.match(failedLog, /stable Service shop removed \(this deployment created it\)[\s\S]*Removed Deployment shop-1, Service shop-1/);
    assert.match(failedLog, /No other version was running/);
  });

  it('deploys an unhealthy version with ignoreHealthCheck, and without health check at all', async () => {
    const ns = await namespace('ignore');
    const ignored = await api.deploy(ns, { health: 'unhealthy', ignoreHealthCheck: true });
    assert.equal(ignored.status, 'DEPLOYED', ignored.failureReason);
    assert.match(await api.logs(ns, ignored.id), /health check ignored/);
    const unchecked = await api.deploy(ns, { health: 'unhealthy', useHealthCheck: false });
    assert.equal(unchecked.status, 'DEPLOYED', unchecked.failureReason);
    assert.match(await api.logs(ns, unchecked.id), /no health check configured/);
    assert.equal((await cluster.pods(ns, 'app=shop,version=2')).length, 2, 'it still waited for both pods to be ready');
  });

  it('refuses to deploy the running version again and touches nothing; the live record can still be undeployed (issue #12, problem 2)', async () => {
    const ns = await namespace('sameversion');
    const running = await api.deploy(ns, { newVersion: '3.1', frontend: 'shop.example.test' });
    assert.equal(running.status, 'DEPLOYED', running.failureReason);
    assert.equal(running.version, '3-1');
    // Everything of the running version, down to each object's resourceVersion.
    const snapshot = async () => ({
      stable: (await cluster.service(ns, 'shop'))?.metadata?.resourceVersion,
      versioned: (await cluster.service(ns, 'shop-3-1'))?.metadata?.resourceVersion,
      ingress: (await cluster.ingress(ns, 'shop'))?.metadata?.resourceVersion,
      workloads: await cluster.workloads(ns, 'shop'),
      pods: (await cluster.pods(ns, 'app=shop')).map((p) => p.metadata?.uid).sort(),
    });
    const before = await snapshot();
    assert.ok(before.stable && before.versioned && before.ingress, 'the running version has its stable Service, Service and Ingress');
    const again = await api.deploy(ns, { newVersion: '3.1', frontend: 'shop.example.test' });
    assert.equal(again.status, 'FAILURE');
    assert.match(again.failureReason, /version 3-1 of shop is already running/);
    assert.deepEqual(await snapshot(), before, 'the stable Service, the Service, the Ingress, the workload and its pods are untouched');
    assert.equal((await api.get(ns, running.id)).status, 'DEPLOYED');
    // The live record can still be undeployed afterwards (it stayed DEPLOYED with its objects before).
    const res = await request(`${cutover.url}/deployments/${running.id}/?namespace=${ns}`, { method: 'DELETE' });
    assert.equal(res.status, 202, res.text);
    assert.equal((await api.waitForStatus(ns, running.id, new Set(['UNDEPLOYED', 'FAILURE']), 30_000)).status, 'UNDEPLOYED');
    assert.deepEqual(await cluster.workloads(ns, 'shop'), []);
    assert.deepEqual(await cluster.services(ns), []);
    assert.deepEqual(await cluster.ingresses(ns), []);
  });

  it('fails fast on CrashLoopBackOff with its reason', async () => {
    const ns = await namespace('crashloop');
    const started = Date.now();
    const failed = await api.deploy(ns, { podBehaviour: 'crashloop', healthCheckTimeout: 120 });
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason, /CrashLoopBackOff/);
    assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms; must not wait for the 120 s timeout`);
    assert.deepEqual(await cluster.workloads(ns, 'shop'), []);
  });

  it('injects APP_* and /deployer/environment values into every container and records their names', async () => {
    const ns = await namespace('envinject');
    await cutover.kv.transact([], [{ type: 'put', key: 'environment/feature-flags', value: 'a,b' }]);
    try {
      const d = await api.deploy(ns, { useHealthCheck: false });
      assert.equal(d.status, 'DEPLOYED', d.failureReason);
      assert.deepEqual(d.injectedEnvironment, ['FEATURE_FLAGS']);
      assert.equal(JSON.stringify(d).includes('a,b'), false, 'values are never returned');
      const pod = (await cluster.pods(ns, 'app=shop'))[0]!;
      const env = Object.fromEntries((pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
      assert.equal(env['APP_NAME'], 'shop');
      assert.equal(env['APP_VERSION'], '1');
      assert.equal(env['POD_NAMESPACE'], ns);
      assert.equal(env['POD_NAME'], 'metadata.name');
      assert.equal(env['FEATURE_FLAGS'], 'a,b');
    } finally {
      await cutover.kv.transact([], [{ type: 'delete', key: 'environment/feature-flags' }]);
    }
  });

  it('deploys with a ReplicationController as well as a Deployment', async () => {
    const ns = await namespace('rckind');
    const rc = await api.deploy(ns, { controllerKind: 'ReplicationController' });
    assert.equal(rc.status, 'DEPLOYED', rc.failureReason);
    assert.deepEqual(await cluster.workloadKinds(ns, 'shop'), ['ReplicationController/shop-1']);
    const dep = await api.deploy(ns, {});
    assert.equal(dep.status, 'DEPLOYED', dep.failureReason);
    await waitFor('the RC to be drained', async () => JSON.stringify(await cluster.workloadKinds(ns, 'shop')) === JSON.stringify(['Deployment/shop-2']), { timeoutMs: 30_000, intervalMs: 200 });
  });

  it('undeploys: removes workload, Services and Ingress, then UNDEPLOYED', async () => {
    const ns = await namespace('undeploy');
    const d = await api.deploy(ns, { frontend: 'shop.example.test', useHealthCheck: false });
    assert.equal(d.status, 'DEPLOYED', d.failureReason);
    const res = await request(`${cutover.url}/deployments/${d.id}/?namespace=${ns}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    const done = await api.waitForStatus(ns, d.id, new Set(['UNDEPLOYED', 'FAILURE']));
    assert.equal(done.status, 'UNDEPLOYED', done.failureReason);
    await cluster.waitForWorkloads(ns, 'shop', []);
    assert.deepEqual(await cluster.services(ns), []);
    assert.deepEqual(await cluster.ingresses(ns), []);
  });

  it('an undeploy queued behind a newer deploy removes nothing new', async () => {
    const ns = await namespace('undeployrace');
    const v1 = await api.deploy(ns, { useHealthCheck: false });
    assert.equal(v1.status, 'DEPLOYED');
    // v2 is requested first, then an undeploy of v1: by the time it runs, v1 has been replaced.
    const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { useHealthCheck: false }));
    const v2 = (await api.startDeployment(ns, descriptorId)).body;
    const undeploy = await request(`${cutover.url}/deployments/${v1.id}/?namespace=${ns}`, { method: 'DELETE' });
    assert.equal(undeploy.status, 202);
    assert.equal((await api.waitForStatus(ns, v2.id)).status, 'DEPLOYED');
    await waitFor('the undeploy to run', async () => /nothing to do/.test(await api.logs(ns, v1.id)), { timeoutMs: 30_000, intervalMs: 200 });
    await cluster.waitForWorkloads(ns, 'shop', ['shop-2']);
    assert.deepEqual((await cluster.service(ns, 'shop'))?.spec?.selector, { app: 'shop', version: '2' });
    assert.equal((await api.get(ns, v2.id)).status, 'DEPLOYED');
  });

  it('runs five concurrent deploys of one app one after another; all end DEPLOYED and one version remains', async () => {
    const ns = await namespace('concurrent');
    const ids = await Promise.all(Array.from({ length: 5 }, async () => {
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { replicas: 1 }));
      return (await api.startDeployment(ns, descriptorId)).body.id as string;
    }));
    // Each is DEPLOYED at some point (later ones replace earlier ones), in request order.
    const outcomes = [];
    for (const id of ids) outcomes.push(await api.waitForStatus(ns, id, new Set(['DEPLOYED', 'FAILURE', 'UNDEPLOYING', 'UNDEPLOYED']), 180_000));
    for (const o of outcomes) assert.notEqual(o.status, 'FAILURE', o.failureReason);
    const versions = outcomes.map((o) => Number(o.version)).sort((a, b) => a - b);
    assert.deepEqual(versions, [1, 2, 3, 4, 5], 'distinct versions');
    const finals = await Promise.all(ids.map((id) => api.waitForStatus(ns, id, new Set(['DEPLOYED', 'UNDEPLOYED']), 60_000)));
    assert.equal(finals.filter((f) => f.status === 'DEPLOYED').length, 1);
    const live = finals.find((f) => f.status === 'DEPLOYED');
    assert.equal(live.version, '5');
    await cluster.waitForWorkloads(ns, 'shop', ['shop-5']);
    // They ran one at a time: each switch happened after the previous one's drain finished.
    const switched = finals.map((f) => ({ v: Number(f.version), at: Date.parse(f.times.switched), removed: Date.parse(f.times.removed ?? '') }));
    switched.sort((a, b) => a.v - b.v);
    for (let i = 1; i < switched.length; i++) assert.ok(switched[i]!.at > switched[i - 1]!.at);
  });

  it('checks health through the API server pod proxy when configured to', async () => {
    const ns = await bed.namespace('proxyhc', { observe: false });
    const proxied = await startTestCutover(etcd.endpoint, {
      CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_MODE: 'proxy', CUTOVER_DRAIN_SECONDS: '1', CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
    });
    await bed.observe(ns, proxied.config.etcdPrefix);
    try {
      const client = new DeployClient(proxied.url);
      const ok = await client.deploy(ns, {});
      assert.equal(ok.status, 'DEPLOYED', ok.failureReason);
      const bad = await client.deploy(ns, { health: 'probe-false', healthCheckTimeout: 8 });
      assert.equal(bad.status, 'FAILURE');
      assert.match(bad.failureReason, /healthy/);
    } finally {
      await proxied.stop();
    }
  });

  it('uses a TLS secret found by the contract\'s lookup order, and plain HTTP without one', async () => {
    const ns = await namespace('tls');
    const core = kc.makeApiClient((await import('@kubernetes/client-node')).CoreV1Api);
    // No secret named like the host, but one named like the registrable domain.
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'example.co.uk' }, type: 'Opaque', stringData: { 'tls.crt': 'x', 'tls.key': 'y' } } });
    const d = await api.deploy(ns, { frontend: 'shop.example.co.uk', useHealthCheck: false });
    assert.equal(d.status, 'DEPLOYED', d.failureReason);
    assert.deepEqual(JSON.parse(JSON.stringify((await cluster.ingress(ns, 'shop'))?.spec?.tls)), [{ hosts: ['shop.example.co.uk'], secretName: 'example.co.uk' }]);
    const plain = await api.deploy(ns, { appName: 'plain', frontend: 'plain.example.test', useHealthCheck: false });
    assert.equal(plain.status, 'DEPLOYED', plain.failureReason);
    assert.equal((await cluster.ingress(ns, 'plain'))?.spec?.tls, undefined);
    assert.match(await api.logs(ns, plain.id), /no TLS secret found for plain\.example\.test .*serving plain HTTP/);
  });

  it('with the traefik profile creates Middlewares and annotations for compression, headers, stickiness and the www redirect', async () => {
    const ns = await bed.namespace('traefik', { observe: false });
    await assertTraefikMiddlewareCrd(kc);
    const traefik = await startTestCutover(etcd.endpoint, {
      CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_INGRESS_PROFILE: 'traefik', CUTOVER_DRAIN_SECONDS: '1', CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
    });
    await bed.observe(ns, traefik.config.etcdPrefix);
    try {
      const client = new DeployClient(traefik.url);
      const d = await client.deploy(ns, {
        useHealthCheck: false, frontend: 'shop.example.test', redirectWww: true, useCompression: true, useStickySessions: true,
        additionHttpHeaders: [{ Header: 'X-Frame-Options', Value: 'DENY' }],
      });
      assert.equal(d.status, 'DEPLOYED', d.failureReason);
      const custom = kc.makeApiClient((await import('@kubernetes/client-node')).CustomObjectsApi);
      const list = await custom.listNamespacedCustomObject({ group: 'traefik.io', version: 'v1alpha1', namespace: ns, plural: 'middlewares' }) as { items: Array<{ metadata: { name: string }; spec: unknown }> };
      assert.deepEqual(list.items.map((m) => m.metadata.name).sort(), ['shop-compress', 'shop-headers', 'shop-www-redirect']);
      const ingress = await cluster.ingress(ns, 'shop');
      assert.equal(ingress?.metadata?.annotations?.['traefik.ingress.kubernetes.io/router.middlewares'], `${ns}-shop-compress@kubernetescrd,${ns}-shop-headers@kubernetescrd`);
      const www = await cluster.ingress(ns, 'shop-www-redirect');
      assert.equal(www?.spec?.rules?.[0]?.host, 'www.shop.example.test');
      assert.equal(www?.metadata?.annotations?.['traefik.ingress.kubernetes.io/router.middlewares'], `${ns}-shop-www-redirect@kubernetescrd`);
      assert.equal((await cluster.service(ns, 'shop-1'))?.metadata?.annotations?.['traefik.ingress.kubernetes.io/service.sticky.cookie'], 'true');
      // Undeploy removes the Middlewares too.
      await request(`${traefik.url}/deployments/${d.id}/?namespace=${ns}`, { method: 'DELETE' });
      assert.equal((await client.waitForStatus(ns, d.id, new Set(['UNDEPLOYED', 'FAILURE']))).status, 'UNDEPLOYED');
      const after = await custom.listNamespacedCustomObject({ group: 'traefik.io', version: 'v1alpha1', namespace: ns, plural: 'middlewares' }) as { items: unknown[] };
      assert.equal(after.items.length, 0);
      assert.deepEqual(await cluster.ingresses(ns), []);
    } finally {
      await traefik.stop();
    }
  });

  it('bulk-deletes an app\'s finished records and, with undeploy=true, undeploys and deletes the live one', async () => {
    const ns = await namespace('bulkdelete');
    const v1 = await api.deploy(ns, { useHealthCheck: false });
    const failed = await api.deploy(ns, { podBehaviour: 'crashloop' });
    assert.equal(failed.status, 'FAILURE');
    const v2 = await api.deploy(ns, { useHealthCheck: false });
    assert.equal(v2.status, 'DEPLOYED');
    await api.waitForStatus(ns, v1.id, new Set(['UNDEPLOYED']), 30_000);
    const keep = await request(`${cutover.url}/deployments/?namespace=${ns}&appname=shop`, { method: 'DELETE' });
    assert.equal(keep.status, 204);
    assert.deepEqual((await request(`${cutover.url}/deployments/?namespace=${ns}`)).body.map((d: { id: string }) => d.id), [v2.id]);
    const all = await request(`${cutover.url}/deployments/?namespace=${ns}&appname=shop&undeploy=true`, { method: 'DELETE' });
    assert.equal(all.status, 202);
    assert.equal(all.headers.get('location'), `/deployments/${v2.id}/?namespace=${ns}`);
    await waitFor('the live record to be undeployed and deleted', async () => (await request(`${cutover.url}/deployments/${v2.id}/?namespace=${ns}`)).status === 404, { timeoutMs: 30_000, intervalMs: 200 });
    await cluster.waitForWorkloads(ns, 'shop', []);
    assert.equal((await request(`${cutover.url}/deployments/?namespace=${ns}&appname=shop`, { method: 'DELETE' })).status, 404);
  });

  it('exposes Prometheus metrics about deployments, health checks and API requests, never with ids as labels', async () => {
    const ns = await namespace('metrics');
    const ok = await api.deploy(ns, {});
    assert.equal(ok.status, 'DEPLOYED', ok.failureReason);
    const failed = await api.deploy(ns, { health: 'probe-false', healthCheckTimeout: 8 });
    assert.equal(failed.status, 'FAILURE');
    const res = await request(`${cutover.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = res.text;
    assert.match(text, new RegExp(`cutover_deployments_total\\{namespace="${ns}",app="shop",outcome="succeeded",cluster="default"\\} 1\\b`));
    assert.match(text, new RegExp(`cutover_deployments_total\\{namespace="${ns}",app="shop",outcome="failed",cluster="default"\\} 1\\b`));
    assert.match(text, /cutover_switch_overhead_seconds_count [1-9]/);
    assert.match(text, /cutover_deployment_step_duration_seconds_count\{step="waiting_for_pods"\} [1-9]/);
    assert.match(text, /cutover_healthcheck_requests_total\{result="unhealthy"\} [1-9]/);
    assert.match(text, /cutover_http_request_duration_seconds_count\{method="GET",route="\/deployments\/:id",status="200"\} [1-9]/);
    assert.match(text, /cutover_work_in_flight\{kind="deploy"\} \d/);
    assert.match(text, /cutover_process_resident_memory_bytes \d/);
    assert.equal(text.includes(ok.id), false, 'no deployment id in any label');
  });

  it('keeps the original API contract: 404 for unknown descriptors, [] for empty lists, limit and redeploy', async () => {
    const ns = await namespace('contract');
    const none = await request(`${cutover.url}/deployments/?namespace=${ns}&descriptorId=00000000-0000-4000-8000-000000000000`, { method: 'POST' });
    assert.equal(none.status, 404);
    assert.deepEqual((await request(`${cutover.url}/deployments/?namespace=${ns}`)).body, []);
    assert.equal((await request(`${cutover.url}/deployments/?namespace=${ns}&limit=0`)).status, 400);
    assert.equal((await request(`${cutover.url}/deployments/?namespace=${ns}&limit=x`)).status, 400);
    assert.equal((await request(`${cutover.url}/deployments/?namespace=${ns}&limit=-1`)).status, 400);

    const first = await api.deploy(ns, { useHealthCheck: false });
    const again = await request(`${cutover.url}/deployments/${first.id}/?namespace=${ns}`, { method: 'PUT' });
    assert.equal(again.status, 202);
    assert.match(again.headers.get('location') ?? '', new RegExp(`^/deployments/${again.body.id}/\\?namespace=${ns}$`));
    assert.equal(again.body.redeployOf, first.id);
    const redeployed = await api.waitForStatus(ns, again.body.id);
    assert.equal(redeployed.status, 'DEPLOYED', redeployed.failureReason);
    assert.equal(redeployed.version, '2', '"#" auto-increments again on redeploy');
    const limited = await request(`${cutover.url}/deployments/?namespace=${ns}&appname=shop&limit=1`);
    assert.deepEqual(limited.body.map((d: { id: string }) => d.id), [again.body.id]);
    assert.ok(FINAL.has(redeployed.status));
  });
});

/**
 * The Traefik Middleware CRD is Traefik's own, installed by the test bed's `up` from Traefik's Go module
 * (docs/testbed.md §Traefik), so cutover's Middlewares are checked against Traefik's real schema.
 */
async function assertTraefikMiddlewareCrd(kc: KubeConfig): Promise<void> {
  const crd = await kc.makeApiClient(ApiextensionsV1Api).readCustomResourceDefinition({ name: 'middlewares.traefik.io' });
  assert.ok(crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'), 'Middleware CRD established');
  const spec = crd.spec.versions.find((v) => v.name === 'v1alpha1')?.schema?.openAPIV3Schema?.properties?.spec;
  assert.ok(spec?.properties?.compress && spec.properties.headers && spec.properties.redirectRegex,
    'the bed\'s Middleware CRD is Traefik\'s (full schema), not a stand-in');
}
