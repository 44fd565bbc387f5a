import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from '../support/etcd.js';
import { ClusterView, DeployClient, FINAL, fakeAppDescriptor } from '../support/deploy.js';
import { Replicas, takeoverTime } from '../support/replicas.js';
import { startTestCutover } from '../support/cutover.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

/**
 * Several replicas, crashes, deadlines and an etcd outage, against real etcd and the test bed.
 * Takeover times are printed as diagnostics (docs/reliability.md quotes them).
 */
describe('reliability', { concurrency: 1 }, () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  let cluster: ClusterView;
  const namespaces: TestNamespace[] = [];
  const takeovers: number[] = [];

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    etcd = await TestEtcd.create();
    cluster = new ClusterView(kc);
  });

  after(async () => {
    if (takeovers.length > 0) {
      const sorted = [...takeovers].sort((a, b) => a - b);
      console.log(`# takeover after kill -9: n=${sorted.length} p50=${sorted[Math.floor(sorted.length / 2)]} ms max=${sorted[sorted.length - 1]} ms`);
    }
    await etcd?.destroy();
    await Promise.all(namespaces.map((n) => n.delete()));
    await testbed?.release();
  });

  async function namespace(prefix: string): Promise<string> {
    const ns = await createTestNamespace(kc, prefix);
    namespaces.push(ns);
    return ns.name;
  }

  const baseEnv = () => ({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint,
    CUTOVER_KUBECONFIG: testbed.kubeconfigPath,
    CUTOVER_DRAIN_SECONDS: '1',
    CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
    CUTOVER_SHUTDOWN_GRACE_SECONDS: '5',
  });

  /** The app serves exactly one version: one workload, its pods ready, the stable Service on it. */
  async function assertOneReadyVersion(ns: string, app: string, version: string): Promise<void> {
    await cluster.waitForWorkloads(ns, app, [`${app}-${version}`], 60_000);
    const svc = await cluster.service(ns, app);
    assert.deepEqual(svc?.spec?.selector, { app, version });
    // A removed workload's pods go after it, by the garbage collector (foreground deletion): wait for them.
    const pods = await waitFor(`only version ${version}'s pods of ${app}`, async () => {
      const now = await cluster.pods(ns, `app=${app}`);
      return now.length > 0 && now.every((p) => p.metadata?.labels?.['version'] === version) ? now : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    for (const p of pods) {
      assert.equal(p.metadata?.labels?.['version'], version);
      assert.ok(p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'), `pod ${p.metadata?.name} ready`);
    }
    assert.deepEqual((await cluster.services(ns)).filter((s) => s.startsWith(app)), [app, `${app}-${version}`].sort(), 'no orphaned Services');
  }

  it('two replicas, five deploys of one app sent alternately: one at a time, all DEPLOYED, one version left', async () => {
    const ns = await namespace('two-replicas');
    const replicas = await Replicas.start(2, baseEnv());
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const api = replicas.client(i % 2);
        const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { replicas: 1 }));
        ids.push((await api.startDeployment(ns, descriptorId)).body.id);
      }
      const api = replicas.client(0);
      const finals = [];
      for (const id of ids) finals.push(await api.waitForStatus(ns, id, new Set(['DEPLOYED', 'UNDEPLOYED', 'FAILURE']), 120_000));
      const settled = await Promise.all(ids.map((id) => api.waitForStatus(ns, id, new Set(['DEPLOYED', 'UNDEPLOYED', 'FAILURE']), 60_000)));
      for (const d of settled) assert.notEqual(d.status, 'FAILURE', d.failureReason);
      assert.deepEqual(settled.map((d) => d.version), ['1', '2', '3', '4', '5']);
      const last = await api.waitForStatus(ns, ids[4]!, new Set(['DEPLOYED']));
      assert.equal(last.status, 'DEPLOYED');
      for (const id of ids.slice(0, 4)) assert.equal((await api.waitForStatus(ns, id, new Set(['UNDEPLOYED']), 30_000)).status, 'UNDEPLOYED');
      // One at a time: each deployment started only after the previous one had switched.
      const all = await Promise.all(ids.map((id) => api.get(ns, id)));
      for (let i = 1; i < all.length; i++) assert.ok(Date.parse(all[i].times.started) >= Date.parse(all[i - 1].times.switched), `deployment ${i + 1} started before ${i} switched`);
      for (const d of all) assert.ok(['replica-0', 'replica-1'].includes(d.owner), `owner ${d.owner} is one of the two replicas`);
      await assertOneReadyVersion(ns, 'shop', '5');
    } finally {
      await replicas.stopAll();
    }
  });

  it('kill -9 during the health wait: another replica resumes and finishes within 30 s', async () => {
    const ns = await namespace('kill-health');
    const replicas = await Replicas.start(1, baseEnv(), () => ({ CUTOVER_FAILPOINTS: 'before-health-check=pause:60000' }));
    try {
      const a = replicas.all[0]!;
      const api = replicas.client(0);
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, {}));
      const id = (await api.startDeployment(ns, descriptorId)).body.id;
      await waitFor('the deployment to reach the health check on replica-0', async () => (await api.get(ns, id)).step === 'health-checking', { timeoutMs: 30_000 });
      const b = await replicas.add();
      const killedAt = Date.now();
      await a.kill();
      const bApi = new DeployClient(b.url);
      const took = await takeoverTime(b.url, ns, id, 'replica-0', killedAt);
      takeovers.push(took);
      assert.ok(took < 30_000, `takeover took ${took} ms`);
      const done = await bApi.waitForStatus(ns, id, FINAL, 60_000);
      assert.equal(done.status, 'DEPLOYED', done.failureReason);
      assert.equal(done.owner, 'replica-1');
      assert.match(await bApi.logs(ns, id), /Resuming deployment .* from step "health-checking" on replica replica-1 \(replica replica-0 stopped working on it\)/);
      await assertOneReadyVersion(ns, 'shop', '1');
    } finally {
      await replicas.stopAll();
    }
  });

  it('kill -9 between switching the stable Service and the Ingress: the other replica completes the switch', async () => {
    const ns = await namespace('kill-switch');
    const replicas = await Replicas.start(1, baseEnv());
    try {
      const api = replicas.client(0);
      const v1 = await api.deploy(ns, { frontend: 'shop.example.test' });
      assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
      await replicas.all[0]!.stop();
      const a = await replicas.add({ CUTOVER_FAILPOINTS: 'after-first-traffic-target=pause:60000' });
      const aApi = new DeployClient(a.url);
      const descriptorId = await aApi.createDescriptor(ns, fakeAppDescriptor(ns, { frontend: 'shop.example.test' }));
      const id = (await aApi.startDeployment(ns, descriptorId)).body.id;
      // Half-switched: the stable Service is on v2, the Ingress still on v1.
      await waitFor('the stable Service to select v2', async () => (await cluster.service(ns, 'shop'))?.spec?.selector?.['version'] === '2', { timeoutMs: 30_000, intervalMs: 100 });
      assert.equal((await cluster.ingress(ns, 'shop'))?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'shop-1');
      const b = await replicas.add();
      const killedAt = Date.now();
      await a.kill();
      const took = await takeoverTime(b.url, ns, id, 'replica-1', killedAt);
      takeovers.push(took);
      assert.ok(took < 30_000, `takeover took ${took} ms`);
      const bApi = new DeployClient(b.url);
      const done = await bApi.waitForStatus(ns, id, FINAL, 60_000);
      assert.equal(done.status, 'DEPLOYED', done.failureReason);
      assert.equal(done.OldVersion, '1');
      assert.equal((await cluster.ingress(ns, 'shop'))?.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, 'shop-2');
      assert.equal((await bApi.waitForStatus(ns, v1.id, new Set(['UNDEPLOYED']), 30_000)).status, 'UNDEPLOYED');
      await assertOneReadyVersion(ns, 'shop', '2');
    } finally {
      await replicas.stopAll();
    }
  });

  it('kill -9 during the drain: the other replica removes the old version', async () => {
    const ns = await namespace('kill-drain');
    const replicas = await Replicas.start(1, { ...baseEnv(), CUTOVER_DRAIN_SECONDS: '15' });
    try {
      const a = replicas.all[0]!;
      const api = replicas.client(0);
      const v1 = await api.deploy(ns, {});
      const v2 = await api.deploy(ns, {});
      assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
      assert.equal((await api.get(ns, v1.id)).step, 'draining');
      const b = await replicas.add();
      const killedAt = Date.now();
      await a.kill();
      const bApi = new DeployClient(b.url);
      const old = await bApi.waitForStatus(ns, v1.id, new Set(['UNDEPLOYED', 'FAILURE']), 60_000);
      assert.equal(old.status, 'UNDEPLOYED', old.failureReason);
      const took = Date.parse(old.times.removed) - killedAt;
      assert.ok(took < 30_000, `the drain finished ${took} ms after the kill`);
      await assertOneReadyVersion(ns, 'shop', '2');
    } finally {
      await replicas.stopAll();
    }
  });

  it('SIGTERM hands work over: the replica stops within its grace period and another resumes at once', async () => {
    const ns = await namespace('handover');
    const replicas = await Replicas.start(1, { ...baseEnv(), CUTOVER_SHUTDOWN_GRACE_SECONDS: '2' }, () => ({ CUTOVER_FAILPOINTS: 'before-health-check=pause:60000' }));
    try {
      const a = replicas.all[0]!;
      const api = replicas.client(0);
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, {}));
      const id = (await api.startDeployment(ns, descriptorId)).body.id;
      await waitFor('the deployment to reach the health check', async () => (await api.get(ns, id)).step === 'health-checking', { timeoutMs: 30_000 });
      const b = await replicas.add();
      const stoppedAt = Date.now();
      a.signal('SIGTERM');
      assert.equal(await a.exited(), 0);
      assert.ok(Date.now() - stoppedAt < 2_000 + 5_000, 'exits within the grace period (plus a margin)');
      const took = await takeoverTime(b.url, ns, id, 'replica-0', stoppedAt);
      assert.ok(took < 5_000, `released ownership is taken over at once, not after the lease TTL (took ${took} ms)`);
      const done = await new DeployClient(b.url).waitForStatus(ns, id, FINAL, 60_000);
      assert.equal(done.status, 'DEPLOYED', done.failureReason);
      await assertOneReadyVersion(ns, 'shop', '1');
    } finally {
      await replicas.stopAll();
    }
  });

  it('a deployment whose pods never get ready ends FAILURE at its deadline, not later', async () => {
    const ns = await namespace('deadline');
    const cutover = await startTestCutover(etcd.endpoint, { CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_INTERVAL_MS: '200' });
    try {
      const api = new DeployClient(cutover.url);
      const d = await api.deploy(ns, { podBehaviour: 'never-ready', deadlineSeconds: 12, healthCheckTimeout: 600 }, 60_000);
      assert.equal(d.status, 'FAILURE');
      assert.match(d.failureReason, /deadline|not ready within/);
      const lateness = Date.parse(d.times.finished) - Date.parse(d.deadline);
      assert.ok(lateness < 60_000, `FAILURE ${lateness} ms after the deadline`);
      assert.ok(Date.parse(d.times.finished) - Date.parse(d.created) < 12_000 + 45_000);
      assert.deepEqual(await cluster.workloads(ns, 'shop'), [], 'cleaned up');
    } finally {
      await cutover.stop();
    }
  });

  it('etcd down for 10 s mid-deployment: the deployment pauses and completes after etcd returns; nothing is lost', async () => {
    const ns = await namespace('etcd-outage');
    const cutover = await startTestCutover(etcd.endpoint, {
      CUTOVER_KUBECONFIG: testbed.kubeconfigPath, CUTOVER_HEALTHCHECK_INTERVAL_MS: '200', CUTOVER_FAILPOINTS: 'before-health-check=pause:2000',
    });
    try {
      const api = new DeployClient(cutover.url);
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, {}));
      const id = (await api.startDeployment(ns, descriptorId)).body.id;
      await waitFor('the health-check step', async () => (await api.get(ns, id)).step === 'health-checking', { timeoutMs: 30_000 });
      await etcd.stop();
      const during = await request(`${cutover.url}/deployments/${id}/?namespace=${ns}`);
      assert.equal(during.status, 503, 'the API answers 503 while etcd is down');
      // The outage itself: 10 s of no etcd.
      await new Promise((r) => setTimeout(r, 10_000));
      await etcd.start();
      const done = await api.waitForStatus(ns, id, FINAL, 60_000);
      assert.equal(done.status, 'DEPLOYED', done.failureReason);
      const logs = await api.logs(ns, id);
      for (const step of [/started/, /All 2 pods are ready/, /All 2 pods of version 1 are healthy/, /deployment successful/]) assert.match(logs, step);
      await assertOneReadyVersion(ns, 'shop', '1');
    } finally {
      await cutover.stop();
    }
  });

  it('the reconciler acts on evidence only: removes what a finished record accounts for, reports the rest, ends stuck records', async () => {
    const ns = await namespace('reconcile');
    const cutover = await startTestCutover(etcd.endpoint, { CUTOVER_KUBECONFIG: testbed.kubeconfigPath });
    try {
      const api = new DeployClient(cutover.url);
      const live = await api.deploy(ns, { useHealthCheck: false });
      assert.equal(live.status, 'DEPLOYED', live.failureReason);
      const apps = kc.makeApiClient((await import('@kubernetes/client-node')).AppsV1Api);
      const workload = (name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) => ({
        metadata: { name, namespace: ns, labels, annotations },
        spec: { replicas: 1, selector: { matchLabels: { run: name } }, template: { metadata: { labels: { run: name } }, spec: { containers: [{ name: 'c', image: 'example.invalid/x:1' }] } } },
      });
      const put = (key: string, value: unknown) => cutover.kv.transact([], [{ type: 'put', key, value: typeof value === 'string' ? value : JSON.stringify(value) }]);
      const cutoverLabels = (version: string) => ({ app: 'shop', version, name: `shop-${version}`, 'app.kubernetes.io/managed-by': 'cutover' });
      // Left over by a FAILURE whose cleanup could not finish: its record says it is finished.
      const failed = { ...live, id: '11111111-2222-4333-8444-000000000008', status: 'FAILURE', step: 'failed', version: '8' };
      await put(`deployments/${ns}/${failed.id}`, failed);
      await put(`app-records/${ns}/shop/${failed.id}`, failed.created);
      await apps.createNamespacedDeployment({ namespace: ns, body: workload('shop-8', cutoverLabels('8'), { 'cutover.io/deployment-id': failed.id }) });
      // Labelled as cutover's, but no record speaks for it: reported, never deleted.
      await apps.createNamespacedDeployment({ namespace: ns, body: workload('shop-7', cutoverLabels('7')) });
      // Someone else's object that merely shares the app label.
      await apps.createNamespacedDeployment({ namespace: ns, body: workload('shop-cache', { app: 'shop', version: '9' }) });
      // A record stuck in DEPLOYING with no pending work (as if its queue item were lost).
      const stuck = { ...live, id: '11111111-2222-4333-8444-555555555555', status: 'DEPLOYING', step: 'waiting-for-pods', version: '9' };
      await put(`deployments/${ns}/${stuck.id}`, stuck);
      await put(`app-records/${ns}/shop/${stuck.id}`, stuck.created);

      await cutover.requestReconcile(ns, 'shop');
      await waitFor('the reconcile request to be carried out', async () => !(await cutover.kv.get(`reconcile/${ns}/shop`)), { timeoutMs: 30_000, intervalMs: 100 });
      assert.equal((await api.get(ns, stuck.id)).status, 'FAILURE');
      await waitFor('shop-8 to be gone', async () => !(await cluster.workloads(ns, 'shop')).includes('shop-8'), { timeoutMs: 30_000, intervalMs: 200 });
      assert.deepEqual(await cluster.workloads(ns, 'shop'), ['shop-1', 'shop-7', 'shop-cache'], 'the live version, the unaccounted and the foreign object stay');
      assert.ok(cutover.records.some((r) => String(r['msg']).includes('shop-7') && String(r['msg']).includes('no deployment id')), 'the unaccounted object is reported');
      assert.equal((await api.get(ns, live.id)).status, 'DEPLOYED');
    } finally {
      await cutover.stop();
    }
  });
});
