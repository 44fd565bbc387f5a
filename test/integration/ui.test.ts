import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { fakeAppDescriptor } from '../support/deploy.js';
import { request } from '../support/http.js';
import { startBrowser, type TestBrowser } from '../support/browser.js';
import { keys } from '../../src/store/keys.js';

// Code inside page.evaluate runs in the browser; this project has no DOM types.
declare const document: any, window: any, requestAnimationFrame: any;

/**
 * The web UI driving real deployments: cutover and etcd, deploying to the test bed, in Debian's
 * chromium. One app goes through deploy (log watched live), a live overview update, a rollback,
 * a failure (with a dropped log connection that resumes) and an undeploy.
 */
describe('web UI on the test bed', () => {
  let bed: BedFixture;
  let browser: TestBrowser;
  let ns: string;

  before(async () => {
    [bed, browser] = await Promise.all([startBedFixture(), startBrowser()]);
    ns = await bed.namespace('ui');
  });
  after(async () => {
    await browser?.close();
    await bed?.close();
  });

  const apiLogLines = async (id: string) => (await bed.api.logs(ns, id)).split('\n').filter((l) => l.length > 0).length;
  const statusOf = (page: Page) => page.getByTestId('deployment-status').getAttribute('data-status');
  const waitForStatus = (page: Page, status: string, timeout = 90_000) =>
    page.locator(`[data-testid="deployment-status"][data-status="${status}"]`).waitFor({ timeout });

  let firstId: string;

  it('deploys a descriptor through the UI and shows its log arriving live', async () => {
    const page = await browser.page(bed.cutover.url);
    // Notes, at every frame, the deployment's status and the log's connection when the first log line shows.
    // A string, not a function: the test runner's transform would add helpers the page does not have.
    await page.addInitScript(`(() => {
      const check = () => {
        const lines = Number(document.querySelector('[data-testid="log-stats"]')?.getAttribute('data-lines') ?? 0);
        if (lines > 0 && !window.__firstLineSeenWhile) {
          const status = document.querySelector('[data-testid="deployment-status"]')?.getAttribute('data-status');
          window.__firstLineSeenWhile = status + ' ' + document.querySelector('[data-testid="log-connection"]')?.getAttribute('data-state');
        }
        requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    })()`);
    await page.goto(`/ui/new?namespace=${ns}`);
    await page.getByText('Load a whole descriptor (JSON)').click();
    const { namespace: _ns, ...descriptor } = fakeAppDescriptor(ns, { appName: 'web', frontend: 'web.ui.example.test' });
    await page.getByLabel('Descriptor JSON').fill(JSON.stringify(descriptor));
    await page.getByRole('button', { name: 'Fill the form from it' }).click();
    assert.equal(await page.getByLabel('App name').inputValue(), 'web');
    await page.getByRole('button', { name: 'Create and deploy…' }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), new RegExp(`stores the descriptor for ${ns}/web and deploys it as version the next number`));
    await dialog.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.waitForURL(/\/ui\/deployments\//);
    firstId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);

    // Lines appear while the deployment is still running: the websocket, not a reload.
    const firstLine = await page.waitForFunction(() => window.__firstLineSeenWhile, undefined, { timeout: 30_000 });
    assert.equal(await firstLine.jsonValue(), 'DEPLOYING live');
    await waitForStatus(page, 'DEPLOYED');
    await page.locator('[data-testid="log-connection"][data-state="ended"]').waitFor();
    const stats = page.getByTestId('log-stats');
    assert.equal(Number(await stats.getAttribute('data-lines')), await apiLogLines(firstId), 'every line of the log, once');
    assert.equal(await stats.getAttribute('data-gaps'), '0');
    assert.ok((await page.locator('.timeline li[data-step="switching-traffic"]').count()) === 1, 'the step timeline');
    await page.locator('table.health tr[data-healthy="true"]').first().waitFor();
    await browser.screenshot(page, 'deployment');
  });

  it('updates the overview live when a deployment is started through the API', async () => {
    const page = await browser.page(bed.cutover.url);
    await page.goto(`/ui/?namespace=${ns}`);
    const row = page.locator('tr[data-app="web"]');
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'DEPLOYED');
    assert.match(await row.innerText(), /web\.ui\.example\.test/);
    await page.evaluate(() => { window.__sameDocument = true; });

    const descriptorId = await bed.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', frontend: 'web.ui.example.test' }));
    const started = await bed.api.startDeployment(ns, descriptorId);
    await page.locator('tr[data-app="web"][data-status="DEPLOYING"]').waitFor({ timeout: 15_000 });
    await bed.api.waitForStatus(ns, started.body.id);
    await page.locator('tr[data-app="web"][data-status="DEPLOYED"]').waitFor({ timeout: 15_000 });
    assert.equal((await row.locator('td[data-label="Live version"]').innerText()).trim(), '2');
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
    assert.equal(await page.getByTestId('connection').getAttribute('data-state'), 'live');
    await browser.screenshot(page, 'overview');
  });

  it('rolls back to an earlier version from the app page', async () => {
    const page = await browser.page(bed.cutover.url);
    await page.goto(`/ui/apps/${ns}/web`);
    await page.getByTestId('live-version').filter({ hasText: '2' }).waitFor();
    // The two versions' descriptors differ in nothing but their copy: the diff says so.
    await page.getByRole('heading', { name: 'Compare descriptors' }).waitFor();
    await page.locator('tr[data-version="1"]').getByRole('button', { name: 'Roll back to 1…' }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /Roll back to version 1\?/);
    await dialog.getByRole('button', { name: 'Roll back', exact: true }).click();
    await page.waitForURL(/\/ui\/deployments\//);
    const rollbackId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
    await waitForStatus(page, 'DEPLOYED');
    const record = await bed.api.get(ns, rollbackId);
    assert.equal(record.redeployOf, firstId, 'the new deployment redeploys version 1\'s descriptor copy');
    assert.equal(record.OldVersion, '2');

    await page.goto(`/ui/apps/${ns}/web`);
    await page.getByTestId('live-version').filter({ hasText: record.version }).waitFor();
    assert.ok(await page.locator('table.audit').getByText('deployment.redeploy').count() >= 1, 'the audit entry');
    await browser.screenshot(page, 'app');
  });

  it('shows why a deployment failed, and a dropped log connection resumes without losing or repeating a line', async () => {
    const page = await browser.page(bed.cutover.url);
    // Cut the first log connection after a few frames, as a network would.
    let dropped = false;
    let connections = 0;
    await page.routeWebSocket(/\/stream\/deployments\//, (ws) => {
      connections++;
      const server = ws.connectToServer();
      let frames = 0;
      server.onMessage((message) => {
        if (dropped) return ws.send(message);
        ws.send(message);
        if (++frames === 4) {
          dropped = true;
          void ws.close({ code: 4000, reason: 'dropped by the test' });
          void server.close();
        }
      });
    });
    const descriptorId = await bed.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', health: 'unhealthy', healthCheckTimeout: 4, frontend: 'web.ui.example.test' }));
    const started = await bed.api.startDeployment(ns, descriptorId);
    await page.goto(`/ui/deployments/${ns}/${started.body.id}`);
    await waitForStatus(page, 'FAILURE');
    await page.locator('[data-testid="log-connection"][data-state="ended"]').waitFor();
    const record = await bed.api.get(ns, started.body.id);
    assert.ok(record.failureReason, 'the API has a reason');
    assert.match(await page.getByTestId('failure-reason').innerText(), new RegExp(record.failureReason.slice(0, 40).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.ok(dropped && connections >= 2, `the connection was dropped and opened again (${connections})`);
    assert.ok(Number(await page.getByTestId('log-connection').getAttribute('data-reconnects')) >= 1);
    const stats = page.getByTestId('log-stats');
    assert.equal(Number(await stats.getAttribute('data-lines')), await apiLogLines(started.body.id), 'every line once, across the reconnect');
    assert.equal(await stats.getAttribute('data-gaps'), '0');
    await browser.screenshot(page, 'deployment-failed');

    // The overview shows the failure with its reason; the version that was live still is.
    await page.goto(`/ui/?namespace=${ns}`);
    const row = page.locator('tr[data-app="web"][data-status="FAILURE"]');
    await row.waitFor();
    assert.match(await row.innerText(), /Failed/);
    assert.ok((await row.locator('.reason').innerText()).length > 0);
  });

  it('a 10,000-line log: only the rows in view are in the page, and Home jumps to the first line (timings printed)', async () => {
    // Appended straight to etcd after the failed deployment ended: the websocket sends it as backlog.
    const list = await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=web`);
    const failed = list.body.find((r: { status: string }) => r.status === 'FAILURE');
    const events = await request(`${bed.cutover.url}/deployments/${failed.id}/events?namespace=${ns}`);
    let seq = events.body.at(-1).seq as number;
    const before = await apiLogLines(failed.id);
    for (let batch = 0; batch < 100; batch++) {
      const ops = Array.from({ length: 100 }, () => {
        seq++;
        return { type: 'put' as const, key: keys.event(ns, failed.id, seq), value: JSON.stringify({ seq, time: new Date().toISOString(), type: 'log', message: `synthetic line ${seq} ${'x'.repeat(60)}` }) };
      });
      await bed.cutover.kv.transact([], ops);
    }
    const page = await browser.page(bed.cutover.url);
    const started = Date.now();
    await page.goto(`/ui/deployments/${ns}/${failed.id}`);
    await page.locator(`[data-testid="log-stats"][data-lines="${before + 10_000}"]`).waitFor({ timeout: 30_000 });
    const loadedMs = Date.now() - started;
    // Only the rows in view are in the page, and the page still answers at once.
    const rows = await page.locator('.log-line').count();
    assert.ok(rows > 10 && rows < 200, `${rows} rows in the DOM`);
    const log = page.getByRole('log');
    await log.focus();
    const t0 = Date.now();
    await page.keyboard.press('Home');
    await page.locator('.log-line', { hasText: 'Deployment ' }).first().waitFor();
    const scrollMs = Date.now() - t0;
    const frameMs = await page.evaluate(() => new Promise<number>((resolve) => {
      const t = performance.now();
      requestAnimationFrame(() => resolve(performance.now() - t));
    }));
    process.stdout.write(`# 10,000-line log: loaded and rendered in ${loadedMs} ms, ${rows} rows in the DOM, jump to the top ${scrollMs} ms, next frame ${Math.round(frameMs)} ms\n`);
  });

  it('cancels a deployment before its switch, and rolls back instantly while the replaced version drains', async () => {
    const page = await browser.page(bed.cutover.url);
    const v1 = await bed.api.deploy(ns, { appName: 'shop' });
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    // Cancel: a version whose pods never pass their health check waits in health-checking.
    const stuck = await bed.api.createDescriptor(ns, { ...fakeAppDescriptor(ns, { appName: 'shop', health: 'unhealthy' }), healthCheckTimeout: 120 });
    const started = (await bed.api.startDeployment(ns, stuck)).body as { id: string; version: string };
    await page.goto(`/ui/apps/${ns}/shop`);
    await page.locator(`tr[data-version="${started.version}"]`).getByRole('button', { name: `Cancel ${started.version}…` }).click({ timeout: 60_000 });
    let dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), new RegExp(`Version ${v1.version} keeps serving, untouched`));
    await dialog.getByRole('button', { name: 'Cancel the deployment', exact: true }).click();
    const cancelled = await bed.api.waitForStatus(ns, started.id);
    assert.equal(cancelled.status, 'FAILURE');
    assert.equal(cancelled.failureReason, 'cancelled by anonymous');
    assert.equal((await bed.api.get(ns, v1.id)).status, 'DEPLOYED', 'the running version is untouched');

    // Instant rollback: version 1 drains for 2 minutes after the next switch; going back needs no new pods.
    const v3 = await bed.api.deploy(ns, { appName: 'shop', drainSeconds: 120 });
    assert.equal(v3.status, 'DEPLOYED', v3.failureReason);
    await page.goto(`/ui/apps/${ns}/shop`);
    await page.locator(`tr[data-version="${v1.version}"]`).getByRole('button', { name: `Roll back to ${v1.version} now…` }).click({ timeout: 30_000 });
    dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /no new pods/);
    const clicked = Date.now();
    await dialog.getByRole('button', { name: 'Roll back now', exact: true }).click();
    await page.waitForURL(new RegExp(`/ui/deployments/${ns}/${v1.id}`));
    await waitForStatus(page, 'DEPLOYED', 30_000);
    const restored = await bed.api.get(ns, v1.id);
    process.stdout.write(`# instant rollback from the UI: version ${v1.version} DEPLOYED again ${Date.now() - clicked} ms after the click\n`);
    assert.equal(restored.status, 'DEPLOYED');
    assert.equal(restored.restoredFrom, v3.id);
    const workloads = await bed.cluster.workloads(ns, 'shop');
    assert.ok(workloads.includes(`shop-${v1.version}`) && workloads.every((w) => w === `shop-${v1.version}` || w === `shop-${v3.version}`), `no new workload, traffic went back to the running one: ${workloads.join(', ')}`);
    assert.deepEqual(browser.pageErrors, []);
  });

  it('undeploys with a confirmation naming what stops', async () => {
    const page = await browser.page(bed.cutover.url);
    await page.goto(`/ui/apps/${ns}/web`);
    await page.getByRole('button', { name: 'Undeploy…' }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /The app stops receiving traffic/);
    await dialog.getByRole('button', { name: 'Undeploy', exact: true }).click();
    await page.getByText(/Undeploy of version \S+: undeploy of .* queued/).waitFor();
    await page.getByTestId('live-version').filter({ hasText: 'none' }).waitFor({ timeout: 60_000 });
    const records = (await request(`${bed.cutover.url}/deployments/?namespace=${ns}&appname=web`)).body as Array<{ status: string }>;
    assert.equal(records.filter((r) => r.status === 'DEPLOYED').length, 0);
    assert.ok(records.some((r) => r.status === 'UNDEPLOYED'));
    await bed.cluster.waitForWorkloads(ns, 'web', []);
    assert.deepEqual(browser.pageErrors, []);
  });
});
