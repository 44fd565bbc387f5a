import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { ClusterView, DeployClient, fakeAppDescriptor } from '../support/deploy.js';
import { TestEtcd } from '../support/etcd.js';
import { Replicas } from '../support/replicas.js';
import { createTestNamespace, deleteNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { InvariantObserver } from '../support/invariants.js';
import { run } from '../testbed/commands.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Regression tests for the safety problems of issue #12 on the real test bed (each failed on the
 * main branch before the fix; see the problem numbers). The same rules are unit-tested
 * in test/unit/engine.test.ts; the fault loop in reliability.test.ts checks them under crashes.
 */
describe('safety regressions (issue #12) on the test bed', { concurrency: 2 }, () => {
  let bed: BedFixture;

  before(async () => {
    bed = await startBedFixture({
      CUTOVER_RETAIN_RECORDS: '2',
      // The periodic reconciler of earlier versions, made eager (ignored by versions without one).
      CUTOVER_RECONCILE_INTERVAL_SECONDS: '5', CUTOVER_RECONCILE_MIN_AGE_SECONDS: '0',
    });
  });

  after(async () => {
    await bed?.close();
  });

  const put = (key: string, value: string) => bed.cutover.kv.transact([], [{ type: 'put', key, value }]);

  it('problem 3: replicas 0 is refused with 400 naming the field; a stored one fails before anything is created', async () => {
    const ns = await bed.namespace('replicas0');
    const res = await request(`${bed.cutover.url}/descriptors/?namespace=${ns}`, { method: 'POST', json: fakeAppDescriptor(ns, { replicas: 0 }) });
    assert.equal(res.status, 400, res.text);
    assert.ok((res.body.details as Array<{ path: string }>).some((d) => d.path === 'replicas'), res.text);
    const live = await bed.api.deploy(ns, {});
    assert.equal(live.status, 'DEPLOYED', live.failureReason);
    // A descriptor stored before the rule (written straight into etcd).
    const id = await bed.api.createDescriptor(ns, fakeAppDescriptor(ns, {}));
    const stored = (await bed.cutover.kv.get(`descriptors/${ns}/${id}`))!;
    await put(`descriptors/${ns}/${id}`, JSON.stringify({ ...JSON.parse(stored.value), replicas: 0 }));
    const started = await bed.api.startDeployment(ns, id);
    const failed = await bed.api.waitForStatus(ns, started.body.id);
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason, /replicas/);
    assert.deepEqual(await bed.cluster.workloads(ns, 'shop'), ['shop-1'], 'nothing was created, v1 untouched');
    assert.deepEqual((await bed.cluster.service(ns, 'shop'))?.spec?.selector, { app: 'shop', version: '1' });
  });

  it('problem 4: an unreadable record is kept, reported (log and /metrics), and nothing of its app is deleted', async () => {
    const ns = await bed.namespace('unreadable');
    const live = await bed.api.deploy(ns, { frontend: 'shop.example.test' });
    assert.equal(live.status, 'DEPLOYED', live.failureReason);
    assert.equal((await bed.api.deploy(ns, { appName: 'other', replicas: 1 })).status, 'DEPLOYED', 'another app in the namespace, readable');
    await put(`deployments/${ns}/${live.id}`, '{"id": "truncated by a bad write');
    await put(`reconcile/${ns}/shop`, JSON.stringify({ reason: 'test' }));
    // Earlier versions deleted everything no readable record accounted for within one pass.
    await waitFor('the reconcile request to be handled', async () => !(await bed.cutover.kv.get(`reconcile/${ns}/shop`)), { timeoutMs: 30_000, intervalMs: 100 })
      .catch(() => new Promise((r) => setTimeout(r, 12_000))); // (earlier versions never clear it; give their reconciler two passes)
    assert.deepEqual(await bed.cluster.workloads(ns, 'shop'), ['shop-1']);
    assert.deepEqual((await bed.cluster.service(ns, 'shop'))?.spec?.selector, { app: 'shop', version: '1' });
    assert.ok(await bed.cluster.ingress(ns, 'shop'), 'the Ingress stays');
    assert.equal((await bed.cutover.kv.get(`deployments/${ns}/${live.id}`))?.value, '{"id": "truncated by a bad write', 'kept as it is');
    const metrics = (await request(`${bed.cutover.url}/metrics`)).text;
    assert.match(metrics, /^cutover_unreadable_records [1-9]/m);
    assert.ok(bed.cutover.records.some((r) => r['msg'] === 'unreadable record: kept as it is and not acted on' && r['key'] === `deployments/${ns}/${live.id}`));
  });

  it('problem 7: a queued item whose record is unreadable does not block the app; the next deployment runs', async () => {
    const ns = await bed.namespace('blocked');
    const badId = '00000000-0000-4000-8000-00000000bad0';
    await put(`deployments/${ns}/${badId}`, '{"not": json');
    await put(`queue/${ns}/shop/${badId}`, JSON.stringify({ workId: badId, kind: 'deploy', deploymentId: badId, enqueued: new Date().toISOString() }));
    const next = await bed.api.deploy(ns, {}, 60_000);
    assert.equal(next.status, 'DEPLOYED', next.failureReason);
  });

  it('problem 7: a permanent Kubernetes error ends the deployment at once with the API server\'s reason', async () => {
    const ns = await bed.namespace('permanent');
    const started = Date.now();
    const descriptor = fakeAppDescriptor(ns, {});
    (descriptor.podspec as { containers: Array<Record<string, unknown>> }).containers[0]!.resources = { limits: { cpu: 'lots' } };
    const id = await bed.api.createDescriptor(ns, descriptor);
    const failed = await bed.api.waitForStatus(ns, (await bed.api.startDeployment(ns, id)).body.id, undefined, 30_000);
    assert.equal(failed.status, 'FAILURE');
    assert.match(failed.failureReason, /Invalid|quantities must match/);
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
    assert.deepEqual(await bed.cluster.workloads(ns, 'shop'), []);
  });

  it('problem 8: records beyond the retention are pruned with their logs; the live one is kept', async () => {
    const ns = await bed.namespace('retention');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const d = await bed.api.deploy(ns, { replicas: 1 });
      assert.equal(d.status, 'DEPLOYED', d.failureReason);
      ids.push(d.id);
    }
    await waitFor('the oldest records to be pruned', async () => {
      const list = (await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=shop`)).body as Array<{ id: string }>;
      return list.length === 2 ? list : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    const list = (await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=shop`)).body as Array<{ id: string; status: string; version: string }>;
    assert.deepEqual(list.map((d) => `${d.version}:${d.status}`), ['5:DEPLOYED', '4:UNDEPLOYED']);
    for (const gone of ids.slice(0, 3)) {
      assert.equal((await request(`${bed.cutover.url}/deployments/${gone}/?namespace=${ns}`)).status, 404);
      assert.equal((await bed.cutover.kv.list(`events/${ns}/${gone}/`)).entries.length, 0, 'its log is gone too');
    }
  });

  it('problem 8: an idle replica sends etcd no reads at all (no periodic scans)', async () => {
    // A fixture of its own: nothing else talks to this etcd.
    const own = await startBedFixture({ CUTOVER_RECONCILE_INTERVAL_SECONDS: '5', CUTOVER_RECONCILE_MIN_AGE_SECONDS: '0' });
    try {
      const ns = await own.namespace('idle');
      assert.equal((await own.api.deploy(ns, { replicas: 1 })).status, 'DEPLOYED');
      await new Promise((r) => setTimeout(r, 2000)); // drains and upkeep finish
      const reads = async () => {
        const text = await (await fetch(`${own.etcd.endpoint}/metrics`)).text();
        let n = 0;
        for (const m of text.matchAll(/^grpc_server_handled_total\{[^}]*grpc_method="(Range|Txn)"[^}]*\} (\d+)/gm)) n += Number(m[2]);
        return n;
      };
      const before = await reads();
      await new Promise((r) => setTimeout(r, 12_000));
      const during = (await reads()) - before;
      assert.equal(during, 0, `${during} etcd reads in 12 s of idling`);
    } finally {
      await own.close();
    }
  });

  it('the fenced owner never deletes what traffic points at: a version that is live again after a manual edit is not drained', async () => {
    const ns = await bed.namespace('liveagain');
    const v1 = await bed.api.deploy(ns, { replicas: 1, drainSeconds: 3 });
    const v2 = await bed.api.deploy(ns, { replicas: 1, drainSeconds: 3 });
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    // Someone points the stable Service back at v1 by hand during the drain.
    const svc = (await bed.cluster.service(ns, 'shop'))!;
    const core = bed.kc.makeApiClient(CoreV1Api);
    await core.replaceNamespacedService({ name: 'shop', namespace: ns, body: { ...svc, spec: { ...svc.spec, selector: { app: 'shop', version: '1' } } } });
    const old = await bed.api.waitForStatus(ns, v1.id, new Set(['UNDEPLOYED', 'FAILURE']), 30_000);
    assert.equal(old.status, 'FAILURE');
    assert.match(old.failureReason, /points at version 1 again/);
    assert.ok((await bed.cluster.workloads(ns, 'shop')).includes('shop-1'), 'v1 keeps running: traffic points at it');
  });
});

describe('problem 5 on the test bed: when traffic cannot be put back, the new version is not deleted', () => {
  let bed: BedFixture;
  before(async () => {
    // Each switch pauses between the stable Service and the Ingress: time to make the API refuse.
    bed = await startBedFixture({ CUTOVER_FAILPOINTS: 'after-first-traffic-target=pause:8000' });
  });
  after(async () => {
    await bed?.close();
  });

  it('a switch that fails and cannot be undone keeps v2 running while the stable Service points at it; the reconciler puts traffic back once it can', async () => {
    const ns = await bed.namespace('unrestorable');
    const observer = await InvariantObserver.start({ kubeConfig: bed.kc, namespace: ns, etcdEndpoint: bed.etcd.endpoint, etcdPrefix: bed.cutover.config.etcdPrefix });
    const dir = await mkdtemp(join(tmpdir(), 'cutover-freeze-'));
    const kubectl = (...args: string[]) => run(bed.testbed.kubectl, ['--kubeconfig', bed.testbed.kubeconfigPath, ...args]);
    try {
      const v1 = await bed.api.deploy(ns, { replicas: 1, frontend: 'shop.example.test' }, 60_000);
      assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
      const descriptorId = await bed.api.createDescriptor(ns, fakeAppDescriptor(ns, { replicas: 1, frontend: 'shop.example.test' }));
      const v2 = (await bed.api.startDeployment(ns, descriptorId)).body;
      await waitFor('the stable Service to select v2 (the failpoint holds the Ingress switch)', async () => (await bed.cluster.service(ns, 'shop'))?.spec?.selector?.['version'] === '2', { timeoutMs: 30_000, intervalMs: 50 });
      // A real admission policy freezes the app's Service and Ingress: the Ingress switch and every way back are refused.
      const policy = `freeze-${ns}`;
      await writeFile(join(dir, 'freeze.yaml'), [
        'apiVersion: admissionregistration.k8s.io/v1', 'kind: ValidatingAdmissionPolicy', `metadata: {name: ${policy}}`,
        'spec:', '  failurePolicy: Fail', '  matchConstraints:', '    resourceRules:',
        '    - {apiGroups: ["", "networking.k8s.io"], apiVersions: ["v1"], operations: ["UPDATE", "DELETE"], resources: ["services", "ingresses"]}',
        '  validations:', '  - {expression: "oldObject.metadata.name != \'shop\'", message: "frozen by the test"}',
        '---', 'apiVersion: admissionregistration.k8s.io/v1', 'kind: ValidatingAdmissionPolicyBinding', `metadata: {name: ${policy}}`,
        `spec: {policyName: ${policy}, validationActions: [Deny], matchResources: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ${ns}}}}}`, '',
      ].join('\n'));
      await kubectl('apply', '-f', join(dir, 'freeze.yaml'));
      try {
        await waitFor('the freeze to take effect', async () => {
          const out = await run(bed.testbed.kubectl, ['--kubeconfig', bed.testbed.kubeconfigPath, '-n', ns, 'annotate', 'ingress', 'shop', 'probe=1', '--overwrite', '--dry-run=server'], { allowFailure: (e) => /frozen by the test/.test(e) });
          return out === null;
        }, { timeoutMs: 5000, intervalMs: 100 });
        const failed = await bed.api.waitForStatus(ns, v2.id, undefined, 120_000);
        assert.equal(failed.status, 'FAILURE');
        assert.equal(failed.cleanupIncomplete, true);
        assert.match(failed.failureReason, /switching traffic failed[\s\S]*cleanup incomplete/);
        assert.deepEqual((await bed.cluster.service(ns, 'shop'))?.spec?.selector, { app: 'shop', version: '2' }, 'the API refused every way back');
        assert.deepEqual(await bed.cluster.workloads(ns, 'shop'), ['shop-1', 'shop-2'], 'v2 is not deleted while the stable Service points at it');
        assert.equal((await bed.cluster.pods(ns, 'app=shop,version=2')).length, 1);
      } finally {
        await kubectl('delete', '-f', join(dir, 'freeze.yaml'), '--ignore-not-found');
      }
      // The owner's reconcile request, retried with a backoff, finishes the job once the API lets it.
      await waitFor('traffic back on v1 and v2 removed', async () => (await bed.cluster.service(ns, 'shop'))?.spec?.selector?.['version'] === '1'
        && JSON.stringify(await bed.cluster.workloads(ns, 'shop')) === '["shop-1"]', { timeoutMs: 60_000, intervalMs: 200 });
      assert.equal((await bed.cluster.ingress(ns, 'shop'))?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'shop-1');
      assert.equal((await bed.api.get(ns, v1.id)).status, 'DEPLOYED');
      await observer.stop();
      // I4 cannot hold while the API refuses to move traffic back; I1 must: v2 kept its pods all along.
      assert.deepEqual(observer.violations().filter((v) => v.invariant === 'I1'), [], observer.report());
    } finally {
      await observer.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('problem 1 on the test bed: deadlines fire under garbage collection (cutover processes run with forced GCs)', () => {
  let etcd: TestEtcd;
  let testbed: Testbed;
  let kc: KubeConfig;
  const namespaces: TestNamespace[] = [];
  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    etcd = await TestEtcd.create();
  });
  after(async () => {
    await etcd?.destroy();
    await Promise.all(namespaces.map((n) => n.delete()));
    await testbed?.release();
  });
  // A major GC every 100 ms in these cutover processes (test/support/gc-pressure.mjs): on Node 20 the
  // health-check timeout below was lost and the deployment failed only at its 600-s deadline.
  const env = () => ({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
    CUTOVER_LEASE_TTL_SECONDS: '3', CUTOVER_DRAIN_SECONDS: '1', CUTOVER_TEST_GC_INTERVAL_MS: '100',
  });

  it('a first deployment whose pods answer 503 fails at its health-check timeout, not at the deadline', async () => {
    const ns = (await createTestNamespace(kc, 'gc-timeout')).name;
    namespaces.push({ name: ns, delete: () => deleteNamespace(kc, ns) } as TestNamespace);
    const replicas = await Replicas.start(1, env());
    try {
      const api = replicas.client(0);
      const started = Date.now();
      const failed = await api.deploy(ns, { health: 'error', healthCheckTimeout: 6 }, 90_000);
      const tookS = (Date.now() - started) / 1000;
      assert.equal(failed.status, 'FAILURE');
      assert.match(failed.failureReason, /not healthy within 6 s/);
      assert.ok(tookS < 6 + 20, `FAILURE after ${tookS} s (timeout 6 s)`);
    } finally {
      await replicas.stopAll();
    }
  });

  it('with two replicas, pods slower than the request timeout and the owner killed mid-check: FAILURE at the timeout after the takeover; v1 untouched', async () => {
    const ns = (await createTestNamespace(kc, 'gc-takeover')).name;
    namespaces.push({ name: ns, delete: () => deleteNamespace(kc, ns) } as TestNamespace);
    const replicas = await Replicas.start(2, env());
    try {
      const api = replicas.client(0);
      const v1 = await api.deploy(ns, { replicas: 1 });
      assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { replicas: 1, health: 'slow', healthCheckTimeout: 8 }));
      const id = (await api.startDeployment(ns, descriptorId)).body.id;
      const checking = await waitFor('the health check of v2', async () => {
        const r = await api.get(ns, id);
        return r.step === 'health-checking' ? r : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      const owner = replicas.all[Number(String(checking.owner).replace('replica-', ''))]!;
      const killedAt = Date.now();
      await owner.kill();
      const other = replicas.all.find((p) => p !== owner)!;
      const done = await new DeployClient(other.url).waitForStatus(ns, id, undefined, 90_000);
      assert.equal(done.status, 'FAILURE');
      assert.match(done.failureReason, /not healthy within 8 s/);
      const afterKillS = (Date.now() - killedAt) / 1000;
      assert.ok(afterKillS < 3 + 8 + 20, `FAILURE ${afterKillS} s after the kill (TTL 3 s, timeout 8 s)`);
      assert.deepEqual(await new ClusterView(kc).workloads(ns, 'shop'), ['shop-1']);
      assert.equal((await new DeployClient(other.url).get(ns, v1.id)).status, 'DEPLOYED');
    } finally {
      await replicas.stopAll();
    }
  });
});
