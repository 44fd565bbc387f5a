import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  engines: { node: string };
  cutover: { runtime: string };
};
const pinned = pkg.cutover.runtime;
const major = (v: string) => Number(v.replace(/^v/, '').split('.')[0]);

/** The Node that runs cutover and its tests (scripts/runtime.mjs, package.json "cutover": {"runtime"}). */
describe('runtime', () => {
  it('is the Node major pinned in package.json', (t) => {
    t.diagnostic(`node ${process.version} (${process.execPath}); pinned ${pinned}`);
    assert.equal(major(process.version), major(pinned), `run through npm (scripts/runtime.mjs), not with Node ${process.version}`);
  });

  it('engines.node admits the pinned version', () => {
    const m = /^>=\s*(\d+)\.(\d+)\s+<\s*(\d+)$/.exec(pkg.engines.node);
    assert.ok(m, `engines.node "${pkg.engines.node}" has the form ">=X.Y <Z"`);
    const [pMajor, pMinor] = pinned.split('.').map(Number) as [number, number];
    assert.ok(pMajor > Number(m[1]) || (pMajor === Number(m[1]) && pMinor >= Number(m[2])), 'pinned >= lower bound');
    assert.ok(pMajor < Number(m[3]), 'pinned < upper bound');
  });

  // Node 20 loses AbortSignal.timeout() inside AbortSignal.any() after a GC (nodejs/node#57736):
  // the combined signal then never aborts. The reason for moving to Node 24; this fails on Node 20.
  it('fires a timeout combined with AbortSignal.any() under GC pressure', async (t) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (typeof gc !== 'function') {
      t.skip('needs --expose-gc (npm test and npm run test:unit set it)');
      return;
    }
    const caller = new AbortController();
    const signal = AbortSignal.any([caller.signal, AbortSignal.timeout(300)]);
    const collecting = setInterval(gc, 20);
    const started = performance.now();
    try {
      const aborted = await new Promise<boolean>((resolve) => {
        const fallback = setTimeout(() => resolve(false), 3000); // held strongly, unlike the signal's timer
        signal.addEventListener('abort', () => {
          clearTimeout(fallback);
          resolve(true);
        }, { once: true });
      });
      const ms = Math.round(performance.now() - started);
      assert.ok(aborted, 'the combined signal did not abort within 3 s: its timeout was garbage-collected');
      assert.ok(ms >= 290 && ms < 2000, `aborted after ${ms} ms`);
      assert.equal((signal.reason as Error).name, 'TimeoutError');
    } finally {
      clearInterval(collecting);
    }
  });
});
