import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { brotliDecompressSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../support/etcd.js';
import { keys } from '../../src/store/keys.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { startBrowser, type TestBrowser } from '../support/browser.js';

/**
 * The web UI with authentication on, against a real cutover and etcd (no cluster needed: nothing
 * here deploys): how it is served, signing in, namespace refusals, the 500-app overview, the
 * environment page and the API's validation errors at the form's fields.
 */

// Code inside page.evaluate runs in the browser; this project has no DOM types.
declare const document: any, window: any;

/** Every form control has an accessible name (a <label>, aria-label or aria-labelledby). */
async function unlabelledControls(page: Page): Promise<string[]> {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => (el as any).type !== 'hidden')
    .filter((el) => ((el as any).labels?.length ?? 0) === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.outerHTML.slice(0, 120)));
}

/** The bytes as sent (fetch would decode them). */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function signIn(page: Page, token: string, next = '/ui/'): Promise<void> {
  await page.goto(`/ui/sign-in?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Bearer token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/ui/sign-in'));
}

describe('web UI with authentication on', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let browser: TestBrowser;
  let admin: string;
  let alice: string;

  before(async () => {
    [etcd, browser] = await Promise.all([TestEtcd.create(), startBrowser()]);
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets));
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    alice = await hsToken(secrets.jwtSecret, { sub: 'alice', namespaces: ['shop'] });
  });
  after(async () => {
    await browser?.close();
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('serves hashed assets for a year, index.html revalidated, compressed, under a CSP of its own origin, without credentials', async () => {
    const root = await fetch(`${cutover.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');

    const index = await fetch(`${cutover.url}/ui/`, { headers: { 'Accept-Encoding': 'br, gzip' } });
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const csp = index.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const html = await index.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from elsewhere');

    // Every page path answers with the same page (the UI routes in the browser).
    const deep = await fetch(`${cutover.url}/ui/apps/shop/web`);
    assert.equal(deep.status, 200);
    assert.equal(await deep.text(), html);

    const assets = [...html.matchAll(/\/ui\/assets\/[A-Za-z0-9_.-]+/g)].map((m) => m[0]);
    assert.equal(assets.length, 2, 'one script and one stylesheet');
    let compressedTotal = (await rawGet(`${cutover.url}/ui/`, { 'Accept-Encoding': 'br' })).body.byteLength;
    for (const asset of assets) {
      const res = await rawGet(`${cutover.url}${asset}`, { 'Accept-Encoding': 'gzip, deflate, br' });
      assert.equal(res.status, 200, asset);
      assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable');
      assert.equal(res.headers['content-encoding'], 'br');
      assert.match(String(res.headers['vary']), /Accept-Encoding/);
      const plain = await rawGet(`${cutover.url}${asset}`, {});
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.deepEqual(brotliDecompressSync(res.body), plain.body);
      compressedTotal += res.body.byteLength;
      const again = await rawGet(`${cutover.url}${asset}`, { 'If-None-Match': String(res.headers['etag']) });
      assert.equal(again.status, 304, 'revalidation by ETag');
    }
    process.stdout.write(`# UI first load, compressed (br): ${compressedTotal} bytes\n`);
    assert.ok(compressedTotal < 200 * 1024, `first load ${compressedTotal} B must stay under 200 KB compressed`);

    const missing = await request(`${cutover.url}/ui/assets/main-OLDHASH1.js`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'not_found');

    // The API itself still needs credentials.
    assert.equal((await fetch(`${cutover.url}/overview`)).status, 401);
  });

  it('signs in with a token kept in session storage only, shows only the caller\'s namespaces, and says plainly when another is refused', async () => {
    await request(`${cutover.url}/descriptors/?namespace=shop`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'cart' }) });
    await request(`${cutover.url}/descriptors/?namespace=billing`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'invoices' }) });
    const page = await browser.page(cutover.url);
    await page.goto('/ui/');
    // No token yet: the sign-in page, with nothing else to see.
    await page.waitForURL(/\/ui\/sign-in/);
    await page.getByRole('heading', { name: 'Sign in to cutover' }).waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await browser.screenshot(page, 'sign-in');

    // A wrong token is refused with the API's reason.
    await page.getByLabel('Bearer token').fill('not-a-jwt');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'That token was not accepted' }).waitFor();

    await page.getByLabel('Bearer token').fill(alice);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/ui/');
    await page.locator('tr[data-app="cart"]').waitFor();
    assert.equal(await page.locator('section[data-namespace="billing"]').count(), 0, 'another namespace is not listed');
    assert.match(await page.locator('header').innerText(), /alice/);
    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('cutover.token'), local: localStorage.length, cookie: document.cookie }));
    assert.equal(storage.session, alice);
    assert.equal(storage.local, 0);
    assert.equal(storage.cookie, '');

    // Another namespace by address: the API's 403, in plain words, not an empty page.
    await page.goto('/ui/apps/billing/invoices');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /Not allowed: alice may not use namespace billing/);
    await browser.screenshot(page, 'refused-namespace');

    // The environment page is for administrators: the API's refusal is shown as such.
    await page.goto('/ui/environment');
    await page.getByRole('alert').filter({ hasText: 'not an administrator' }).waitFor();

    // Signing out forgets the token.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/ui\/sign-in/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('cutover.token')), null);
  });

  it('renders an overview of 500 apps, readable at 1280 and 390 px (its speed: npm run bench:ui-overview)', async () => {
    const namespaces = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
    // One descriptor through the API, 499 copies of it straight into etcd, 100 per transaction:
    // 500 API calls (each audited) would take most of this file's time to test the rendering.
    const template = await request(`${cutover.url}/descriptors/?namespace=alpha`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'app-000', frontend: 'app-000.alpha.example.test' }) });
    assert.equal(template.status, 201, template.text);
    const copies = Array.from({ length: 499 }, (_, k) => {
      const i = k + 1;
      const ns = namespaces[i % 5]!;
      const app = `app-${String(i).padStart(3, '0')}`;
      const id = randomUUID();
      return { type: 'put' as const, key: keys.descriptor(ns, id), value: JSON.stringify({ ...template.body, id, namespace: ns, appName: app, frontend: `${app}.${ns}.example.test` }) };
    });
    for (let i = 0; i < copies.length; i += 100) await cutover.kv.transact([], copies.slice(i, i + 100));
    const listed = await request(`${cutover.url}/overview`, { headers: bearer(admin) });
    assert.equal(listed.body.namespaces.filter((g: { namespace: string }) => namespaces.includes(g.namespace)).reduce((n: number, g: { apps: unknown[] }) => n + g.apps.length, 0), 500);

    const page = await browser.page(cutover.url);
    await signIn(page, admin, '/ui/environment');
    await page.goto('/ui/?namespace=alpha');
    await page.locator('tr[data-app]').first().waitFor();
    await page.goto('/ui/');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-app]').length >= 500, undefined, { polling: 'raf' });
    assert.ok(await page.locator('tr[data-app]').count() >= 500);
    assert.match(await page.getByTestId('app-count').innerText(), /of 50\d apps/);
    await browser.screenshot(page, 'overview-500');

    // Filters narrow the list without another request.
    await page.getByLabel('Namespace').selectOption('charlie');
    await page.getByLabel('App name').fill('app-0');
    await page.waitForFunction(() => document.querySelectorAll('tr[data-app]').length === 20);
    await page.getByLabel('Status').selectOption('NONE');
    assert.equal(await page.locator('tr[data-app]').count(), 20);
    await page.getByLabel('Status').selectOption('FAILURE');
    await page.getByText('No app matches the filters.').waitFor();
    assert.deepEqual(await unlabelledControls(page), []);

    // 390 px wide: rows become cards, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByLabel('Status').selectOption('');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen`);
    await browser.screenshot(page, 'overview-390px');
  });

  it('sets and unsets environment values by name, never showing a value', async () => {
    await request(`${cutover.url}/environment/db-password`, { method: 'PUT', headers: bearer(admin), json: { value: 'hunter2-secret' } });
    const page = await browser.page(cutover.url);
    await signIn(page, admin, '/ui/environment');
    await page.locator('tr[data-key="db-password"]').waitFor();
    assert.doesNotMatch(await page.content(), /hunter2-secret/);

    await page.getByLabel('Key', { exact: true }).fill('feature-flags');
    await page.getByLabel('Value', { exact: true }).fill('beta=on');
    await page.getByRole('button', { name: 'Set…', exact: true }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /Every deployment started from now on, in every namespace, gets feature-flags/);
    await dialog.getByRole('button', { name: 'Set', exact: true }).click();
    await page.locator('tr[data-key="feature-flags"]').waitFor();
    assert.match(await page.locator('tr[data-key="feature-flags"]').innerText(), /FEATURE_FLAGS/);
    assert.doesNotMatch(await page.content(), /beta=on/);
    const stored = await request(`${cutover.url}/environment`, { headers: bearer(admin) });
    assert.deepEqual(stored.body.map((e: { key: string; value: string }) => [e.key, e.value]), [['db-password', 'hunter2-secret'], ['feature-flags', 'beta=on']]);
    await browser.screenshot(page, 'environment');

    await page.locator('tr[data-key="db-password"]').getByRole('button', { name: 'Unset…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Unset', exact: true }).click();
    await page.locator('tr[data-key="db-password"]').waitFor({ state: 'detached' });
    const after = await request(`${cutover.url}/environment?values=false`, { headers: bearer(admin) });
    assert.deepEqual(after.body, [{ key: 'feature-flags', name: 'FEATURE_FLAGS' }]);
  });

  it('shows the API\'s own validation errors at the fields of the descriptor editor', async () => {
    const created = await request(`${cutover.url}/descriptors/?namespace=shop`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'editor' }) });
    const page = await browser.page(cutover.url);
    await signIn(page, alice, `/ui/descriptors/shop/${created.body.id}/edit`);
    await page.getByLabel('Replicas').waitFor();
    assert.deepEqual(await unlabelledControls(page), []);
    await page.getByLabel('Replicas').fill('0');
    await page.getByLabel('Health check port').fill('eighty');
    await page.getByLabel(/Pod spec/).fill('{"containers": [{"name": "web"}]}');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('[data-field="replicas"] .field-errors').waitFor();
    // The messages are the API's answer, each at its own field.
    const validation = await request(`${cutover.url}/descriptors/validate`, { method: 'POST', headers: bearer(alice), json: sampleDescriptor({ appName: 'editor', replicas: 0, healthCheckPort: 'eighty', podspec: { containers: [{ name: 'web' }] } }) });
    const byPath = new Map<string, string>(validation.body.details.map((d: { path: string; message: string }) => [d.path, d.message]));
    assert.match(await page.locator('[data-field="replicas"] .field-errors').innerText(), new RegExp(byPath.get('replicas')!.replace(/[.*+?^${}()|[\]\\"]/g, '.')));
    assert.match(await page.locator('[data-field="healthCheckPort"] .field-errors').innerText(), /must be a number/);
    assert.match(await page.locator('[data-field="podspec"] .field-errors').innerText(), /podspec\.containers\.0\.image.*is required/s);
    assert.equal(await page.getByLabel('Replicas').getAttribute('aria-invalid'), 'true');
    await page.getByRole('alert').filter({ hasText: 'The descriptor was refused' }).waitFor();
    await browser.screenshot(page, 'edit-descriptor-errors');

    await page.getByLabel('Replicas').fill('3');
    await page.getByLabel('Health check port').fill('8080');
    await page.getByLabel(/Pod spec/).fill('{"containers": [{"name": "web", "image": "example/web:2"}]}');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('Saved.').waitFor();
    const stored = await request(`${cutover.url}/descriptors/${created.body.id}/?namespace=shop`, { headers: bearer(alice) });
    assert.equal(stored.body.replicas, 3);
    assert.equal(stored.body.podspec.containers[0].image, 'example/web:2');
    assert.deepEqual(browser.pageErrors, []);
  });
});
