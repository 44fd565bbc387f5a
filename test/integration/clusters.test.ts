// Several clusters behind one cutover, on the test bed's two real control planes (`up --clusters 2`):
// an environment of both clusters deployed as one release, a failure on one cluster that leaves the
// other's running version alone, promotion from one environment to another, and the rebuild of a
// wiped cluster from the records. Invariant observers watch both clusters throughout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { fakeAppDescriptor } from '../support/deploy.js';
import { request } from '../support/http.js';
import { servedVersion, startClustersFixture, type ClustersFixture } from '../support/clusters.js';
import { waitFor } from '../support/wait.js';
import { startBrowser } from '../support/browser.js';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

function cli(args: string[], url: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args, '--url', url], {
    cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** GET /health on every ready endpoint of the app's stable Service in a cluster: real HTTP to its pods. */
async function answersThroughService(f: ClustersFixture, cluster: string, ns: string, app: string): Promise<number[]> {
  const ips = await f.cluster(cluster).view.endpointIps(ns, app);
  assert.ok(ips.length > 0, `${cluster}: the Service ${app} has ready endpoints`);
  return Promise.all(ips.map(async (ip) => (await request(`http://${ip}:8080/health`)).status));
}

describe('an environment of two clusters', { timeout: 10 * 60_000 }, () => {
  let f: ClustersFixture;
  before(async () => {
    f = await startClustersFixture({ one: 'production', two: 'production' });
  }, { timeout: 45 * 60_000 });
  after(async () => {
    await f?.close();
  });

  it('GET /clusters: both clusters, their environment and version', async () => {
    const res = await request(`${f.cutover.url}/clusters`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.map((c: any) => [c.name, c.environment, c.default, c.reachable]), [['one', 'production', true, true], ['two', 'production', false, true]]);
    assert.match(res.body[1].version, /^v1\.\d+/);
  });

  it('deploys to both clusters as one release; a failure on one leaves the other\'s running version untouched', async () => {
    const ns = await f.namespace('envdeploy');
    const descriptorId = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 2 }));

    const first = await f.deploy(ns, descriptorId, { environment: 'production' });
    assert.deepEqual(first.deployments.map((d: any) => d.cluster), ['one', 'two']);
    const r1 = await f.waitForRelease(ns, first.id);
    assert.equal(r1.status, 'DEPLOYED', JSON.stringify(r1.deployments));
    assert.deepEqual(r1.deployments.map((d: any) => d.status), ['DEPLOYED', 'DEPLOYED']);
    for (const c of f.clusters) {
      assert.equal(await servedVersion(c.view, ns, 'web'), r1.version, `${c.name} serves version ${r1.version}`);
      assert.deepEqual(await answersThroughService(f, c.name, ns, 'web'), [200, 200]);
    }
    // The overview (the UI's first page) shows what runs in each cluster, and so does the page in a real browser.
    const overview = await request(`${f.cutover.url}/overview`);
    const web = overview.body.namespaces.find((n: any) => n.namespace === ns).apps.find((a: any) => a.appName === 'web');
    assert.deepEqual(web.clusters.map((c: any) => [c.cluster, c.live?.version]), [['one', r1.version], ['two', r1.version]]);
    const browser = await startBrowser();
    try {
      const page = await browser.page(f.cutover.url);
      await page.goto(`/ui/?namespace=${ns}`);
      const cell = page.locator(`tr[data-app="web"] [data-testid="cluster-versions"]`);
      await cell.waitFor({ timeout: 30_000 });
      assert.deepEqual(await cell.locator('li').allInnerTexts(), [`one ${r1.version}`, `two ${r1.version}`]);
      await browser.screenshot(page, 'clusters-overview');
      assert.deepEqual(browser.pageErrors, []);
    } finally {
      await browser.close();
    }
    // Each record names its cluster; the log says which cluster did what.
    const rec2 = await f.api.get(ns, r1.deployments[1].deploymentId);
    assert.equal(rec2.cluster, 'two');
    assert.match(await f.api.logs(ns, rec2.id), /in cluster two requested/);

    // Cluster two's pods answer unhealthy (a value injected only there), cluster one's healthy.
    const put = await request(`${f.cutover.url}/environment/FAKE_HEALTH?cluster=two`, { method: 'PUT', json: { value: 'unhealthy' } });
    assert.equal(put.status, 204, put.text);
    try {
      const second = await f.deploy(ns, descriptorId, { environment: 'production' });
      const r2 = await f.waitForRelease(ns, second.id);
      assert.equal(r2.status, 'FAILURE');
      assert.deepEqual(r2.deployments.map((d: any) => [d.cluster, d.status]), [['one', 'DEPLOYED'], ['two', 'FAILURE']]);
      assert.match(r2.deployments[1].failureReason, /health|unhealthy|503/i);
      assert.equal(await servedVersion(f.cluster('one').view, ns, 'web'), r2.version);
      // Cluster two still runs and serves the first version; nothing of the failed one is left there.
      assert.equal(await servedVersion(f.cluster('two').view, ns, 'web'), r1.version);
      assert.deepEqual(await answersThroughService(f, 'two', ns, 'web'), [200, 200]);
      await waitFor('the failed version gone from cluster two', async () => {
        const names = await f.cluster('two').view.workloads(ns, 'web');
        return names.length === 1 && names[0] === `web-${r1.version}` ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 200 });
      // Cluster one drained its replaced version as usual.
      await f.cluster('one').view.waitForWorkloads(ns, 'web', [`web-${r2.version}`]);
    } finally {
      await request(`${f.cutover.url}/environment/FAKE_HEALTH?cluster=two`, { method: 'DELETE' });
    }
    // GET /deployments lists both clusters' records.
    const all = await request(`${f.cutover.url}/deployments/?namespace=${ns}&appname=web`);
    assert.deepEqual(new Set(all.body.map((r: any) => r.cluster)), new Set(['one', 'two']));
  });

  it('refuses unknown clusters and environments with 400 and the known names', async () => {
    const ns = await f.namespace('envbad');
    const descriptorId = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web' }));
    for (const q of ['cluster=three', 'environment=qa', 'cluster=Bad_Name']) {
      const res = await request(`${f.cutover.url}/deployments/?namespace=${ns}&descriptorId=${descriptorId}&${q}`, { method: 'POST' });
      assert.equal(res.status, 400, `${q}: ${res.text}`);
      assert.equal(res.body.error, 'bad_request');
    }
  });
});

describe('promotion and rebuild across environments', { timeout: 10 * 60_000 }, () => {
  let f: ClustersFixture;
  before(async () => {
    f = await startClustersFixture({ one: 'staging', two: 'production' });
  }, { timeout: 45 * 60_000 });
  after(async () => {
    await f?.close();
  });

  it('promotes the release DEPLOYED in staging to production (CLI --wait); refuses what is not DEPLOYED there', async () => {
    const ns = await f.namespace('promote');
    const descriptorId = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 1 }));

    const never = await cli(['promote', `${ns}/web`, '--from', 'staging', '--to', 'production'], f.cutover.url);
    assert.equal(never.code, 8, never.stdout + never.stderr);
    assert.match(never.stderr, /no release DEPLOYED in staging/);

    const staged = await f.deploy(ns, descriptorId, { environment: 'staging' });
    const source = await f.waitForRelease(ns, staged.id);
    assert.equal(source.status, 'DEPLOYED');

    // A FAILURE release in staging is refused with 409 and the reason.
    const bad = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 1, health: 'unhealthy', healthCheckTimeout: 5 }));
    const failed = await f.waitForRelease(ns, (await f.deploy(ns, bad, { environment: 'staging' })).id);
    assert.equal(failed.status, 'FAILURE');
    const refused = await request(`${f.cutover.url}/releases/${failed.id}/promote?namespace=${ns}`, { method: 'POST', json: { environment: 'production' } });
    assert.equal(refused.status, 409);
    assert.match(refused.body.message, /is FAILURE in staging/);

    const run = await cli(['promote', `${ns}/web`, '--from', 'staging', '--to', 'production', '--wait'], f.cutover.url);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const promoted = (await request(`${f.cutover.url}/releases/?namespace=${ns}&environment=production`)).body[0];
    assert.equal(promoted.status, 'DEPLOYED');
    assert.equal(promoted.version, source.version, 'the same version');
    assert.deepEqual(promoted.promotedFrom, { release: source.id, environment: 'staging' });
    const copy = await f.api.get(ns, promoted.deployments[0].deploymentId);
    const original = await f.api.get(ns, source.deployments[0].deploymentId);
    assert.equal(copy.cluster, 'two');
    assert.deepEqual(copy.descriptor.podspec, original.descriptor.podspec, 'the same descriptor copy (images as deployed)');
    assert.equal(await servedVersion(f.cluster('two').view, ns, 'web'), source.version);
    // Staging kept its version.
    assert.equal(await servedVersion(f.cluster('one').view, ns, 'web'), source.version);
  });

  it('rebuilds a wiped namespace of a cluster from the records (cutover sync), idempotently', async () => {
    const ns = await f.namespace('rebuild');
    const descriptorId = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 2 }));
    const api2 = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'api', replicas: 1 }));
    // One cluster named: the answer is the record (as the original API's), naming its release.
    const live = await Promise.all([descriptorId, api2].map(async (id) => {
      const record = await f.deploy(ns, id, { cluster: 'two' });
      assert.equal(record.cluster, 'two');
      return f.waitForRelease(ns, record.release);
    }));
    assert.deepEqual(live.map((r) => r.status), ['DEPLOYED', 'DEPLOYED']);

    // Wipe: every workload and Service of the namespace on cluster two.
    const kc2 = f.cluster('two').kc;
    const apps = kc2.makeApiClient(AppsV1Api);
    const core = kc2.makeApiClient(CoreV1Api);
    await apps.deleteCollectionNamespacedDeployment({ namespace: ns, propagationPolicy: 'Foreground' });
    for (const s of (await core.listNamespacedService({ namespace: ns })).items) await core.deleteNamespacedService({ namespace: ns, name: s.metadata!.name! });
    await waitFor('cluster two wiped', async () => ((await f.cluster('two').view.workloads(ns, 'web')).length === 0 && (await f.cluster('two').view.services(ns)).length === 0 ? true : undefined), { timeoutMs: 60_000, intervalMs: 200 });

    const dry = await cli(['sync', '--cluster', 'two', '-n', ns, '--dry-run', '--json'], f.cutover.url);
    assert.equal(dry.code, 0, dry.stderr);
    const report = JSON.parse(dry.stdout).report;
    assert.deepEqual(report.items.map((i: any) => [i.appName, i.action]).sort(), [['api', 'rebuild'], ['web', 'rebuild']]);
    assert.equal((await f.cluster('two').view.workloads(ns, 'web')).length, 0, 'a dry run changes nothing');

    const run = await cli(['sync', '--cluster', 'two', '-n', ns, '--wait'], f.cutover.url);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    for (const [app, r] of [['web', live[0]], ['api', live[1]]] as const) {
      assert.equal(await servedVersion(f.cluster('two').view, ns, app), r.version, `${app} serves its live version again`);
      assert.ok((await answersThroughService(f, 'two', ns, app)).every((s) => s === 200));
    }
    // The releases still read DEPLOYED (the rebuilds stand for the records they superseded).
    for (const r of live) assert.equal((await f.release(ns, r.id)).status, 'DEPLOYED');
    // Idempotent: everything is in sync now; nothing is queued.
    const again = await request(`${f.cutover.url}/clusters/two/sync?namespace=${ns}`, { method: 'POST' });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body.items.map((i: any) => i.action), ['in-sync', 'in-sync']);
    // Cluster one was never touched: nothing of these apps there.
    assert.deepEqual(await f.cluster('one').view.workloads(ns, 'web'), []);
  });
});
