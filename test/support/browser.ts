import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ensureUiBuilt } from '../../scripts/build-ui.js';

/**
 * Debian's chromium driven by playwright-core (which downloads no browser), for the UI tests.
 * Screenshots go to test-artifacts/ui/ (git-ignored).
 */
export const CHROMIUM = process.env['CUTOVER_TEST_CHROMIUM'] ?? '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url));

export interface TestBrowser {
  browser: Browser;
  /** A fresh context (own session storage) with the UI's base URL; closed by close(). */
  page(baseURL: string, options?: { width?: number; height?: number }): Promise<Page>;
  /** Saves a full-page screenshot as test-artifacts/ui/<name>.png, and its first screen as <name>.top.png (docs/ui/ uses those). */
  screenshot(page: Page, name: string): Promise<string>;
  /** Errors the pages logged or threw (a test asserts there are none). */
  pageErrors: string[];
  close(): Promise<void>;
}

export async function startBrowser(): Promise<TestBrowser> {
  // The tests serve dist/ui: build it when a file is run on its own (npm test builds it first).
  await ensureUiBuilt();
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];
  return {
    browser,
    pageErrors,
    async page(baseURL, options = {}) {
      const context = await browser.newContext({ baseURL, viewport: { width: options.width ?? 1280, height: options.height ?? 900 } });
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
      page.on('console', (msg) => {
        // A refused CSP or a failed script shows up here; failed API calls are the UI's business.
        if (msg.type() === 'error' && !/Failed to load resource|WebSocket connection/.test(msg.text())) pageErrors.push(`${page.url()}: console: ${msg.text()}`);
      });
      return page;
    },
    async screenshot(page, name) {
      const path = join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      const size = page.viewportSize() ?? { width: 1280, height: 900 };
      await page.screenshot({ path: join(ARTIFACTS, `${name}.top.png`), clip: { x: 0, y: 0, width: size.width, height: Math.min(size.height, 760) } });
      return path;
    },
    async close() {
      await Promise.all(contexts.map((c) => c.close().catch(() => undefined)));
      await browser.close();
    },
  };
}
