import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Test support starts cutover processes under the tests' GC pressure (a forced major GC every
 * second, test/support/gc-pressure.mjs). A bench that measured under it reported that cost as
 * cutover's: bench/logstream's 10,000-watcher p99 read ≈ 225 ms with it and 11–25 ms without.
 * Every bench that starts cutover through test support must turn it off.
 */
describe('benches measure cutover without the tests\' GC pressure', () => {
  it('every bench starting cutover as a process sets CUTOVER_TEST_GC_INTERVAL_MS to 0', () => {
    const dir = new URL('../../bench/', import.meta.url);
    const starting = readdirSync(dir).filter((f) => f.endsWith('.ts'))
      .map((f) => ({ f, text: readFileSync(new URL(f, dir), 'utf8') }))
      .filter(({ text }) => /CutoverProcess\.start\(|Replicas\.start\(/.test(text));
    assert.ok(starting.length >= 5, `found ${starting.length} benches starting cutover`);
    const missing = starting.filter(({ text }) => !/CUTOVER_TEST_GC_INTERVAL_MS: '0'/.test(text)).map(({ f }) => f);
    assert.deepEqual(missing, []);
  });
});
