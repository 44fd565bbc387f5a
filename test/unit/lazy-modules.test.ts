import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** The modules resolved while the server's composition root is imported, in a fresh process. */
async function loadedByServer(): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', `${root}test/support/loaded-modules.mjs`, `${root}src/service.ts`], { cwd: root });
  return JSON.parse(stdout) as string[];
}

const packageOf = (url: string) => {
  const path = url.split('/node_modules/').at(-1)!;
  const parts = path.split('/');
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
};

/**
 * A replica loads only what it uses (issue #18): what serves one feature some replicas never use
 * is imported when that feature first runs.
 */
describe('what a replica loads at start', () => {
  it('leaves jose (JWT auth), cloudevents (webhooks), tldts (TLS secret lookup) and the CLI unloaded', async () => {
    const urls = await loadedByServer();
    const packages = new Set(urls.filter((u) => u.includes('/node_modules/')).map(packageOf));
    assert.ok(packages.has('koa'), `the probe sees the server's packages: ${[...packages].join(' ')}`);
    for (const lazy of ['jose', 'cloudevents', 'tldts']) assert.ok(!packages.has(lazy), `${lazy} is loaded at start`);
    assert.deepEqual(urls.filter((u) => u.includes('/src/cli/')), [], 'the CLI is not part of the server');
  });
});
