/**
 * bench/ui-overview: how long the web UI's overview takes, in Debian's chromium, from navigation
 * start until every app's row is in the page (fetch, stream, parse, render) — for 500 apps (the
 * goal: under a second) and more. Each size is loaded several times in one browser context after
 * a first, warming load.
 *
 *   npm run bench:ui-overview [-- --apps 500,2000,5000 --loads 7]
 *
 * Runs cutover in-process (authentication off) against its own etcd; descriptors are written
 * straight into etcd, 100 per transaction, as the UI test does.
 */
import { parseArgs } from 'node:util';
import { randomUUID } from 'node:crypto';
import { TestEtcd } from '../test/support/etcd.js';
import { startTestCutover } from '../test/support/cutover.js';
import { request, sampleDescriptor } from '../test/support/http.js';
import { startBrowser } from '../test/support/browser.js';
import { keys } from '../src/store/keys.js';
import { percentile, table } from './lib/measure.js';

// Code inside page.evaluate runs in the browser; this project has no DOM types.
declare const document: any;

const { values } = parseArgs({ options: { apps: { type: 'string', default: '500,2000,5000' }, loads: { type: 'string', default: '7' } } });
const sizes = values.apps.split(',').map(Number).sort((a, b) => a - b);
const LOADS = Number(values.loads);
const NAMESPACES = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];

const etcd = await TestEtcd.create();
const cutover = await startTestCutover(etcd.endpoint);
const browser = await startBrowser();
const rows: string[][] = [];
try {
  const template = await request(`${cutover.url}/descriptors/?namespace=alpha`, { method: 'POST', json: sampleDescriptor({ appName: 'app-00000' }) });
  if (template.status !== 201) throw new Error(`POST /descriptors answered ${template.status}: ${template.text}`);
  let stored = 1;
  const page = await browser.page(cutover.url);
  for (const size of sizes) {
    const copies = [];
    for (; stored < size; stored++) {
      const ns = NAMESPACES[stored % NAMESPACES.length]!;
      const app = `app-${String(stored).padStart(5, '0')}`;
      const id = randomUUID();
      copies.push({ type: 'put' as const, key: keys.descriptor(ns, id), value: JSON.stringify({ ...template.body, id, namespace: ns, appName: app, frontend: `${app}.${ns}.example.test` }) });
    }
    for (let i = 0; i < copies.length; i += 100) await cutover.kv.transact([], copies.slice(i, i + 100));
    const times: number[] = [];
    for (let load = 0; load <= LOADS; load++) {
      await page.goto('/ui/');
      await page.waitForFunction((n: number) => document.querySelectorAll('tr[data-app]').length >= n, size, { polling: 'raf', timeout: 60_000 });
      const ms = await page.evaluate(() => performance.now());
      if (load > 0) times.push(ms); // the first load warms the browser's cache of the UI's files
    }
    times.sort((a, b) => a - b);
    rows.push([String(size), String(times.length), percentile(times, 50).toFixed(0), times[times.length - 1]!.toFixed(0)]);
  }
} finally {
  await browser.close();
  await cutover.stop();
  await etcd.destroy();
}
table('Overview rendered (navigation start → every row in the page), chromium, 1280×900', ['apps', 'loads', 'p50 ms', 'max ms'], rows);
if (browser.pageErrors.length > 0) console.log(`page errors: ${browser.pageErrors.join('; ')}`);
