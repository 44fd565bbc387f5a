import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateAnswer, excerpt } from '../../src/healthcheck/evaluate.js';

describe('evaluateAnswer: probe', () => {
  const cases: Array<{ name: string; status: number; body: string; healthy: boolean; reason: string }> = [
    { name: 'healthy true', status: 200, body: '{"healthy": true, "db": "ok"}', healthy: true, reason: 'healthy' },
    { name: 'healthy false', status: 200, body: '{"healthy": false}', healthy: false, reason: 'body has "healthy": false' },
    { name: 'healthy as a string', status: 200, body: '{"healthy": "true"}', healthy: false, reason: 'body has "healthy": "true"' },
    { name: 'healthy as 1', status: 200, body: '{"healthy": 1}', healthy: false, reason: 'body has "healthy": 1' },
    { name: 'not JSON', status: 200, body: 'OK', healthy: false, reason: 'body is not JSON' },
    { name: 'empty', status: 200, body: '  ', healthy: false, reason: 'body is empty' },
    { name: 'JSON array', status: 200, body: '[{"healthy": true}]', healthy: false, reason: 'body is a JSON array, not an object' },
    { name: 'JSON null', status: 200, body: 'null', healthy: false, reason: 'body is JSON null, not an object' },
    { name: 'JSON true', status: 200, body: 'true', healthy: false, reason: 'body is JSON boolean, not an object' },
    { name: 'missing field', status: 200, body: '{"status": "UP"}', healthy: false, reason: 'body has no "healthy" property' },
    { name: 'inherited-looking field', status: 200, body: '{"__proto__": {"healthy": true}}', healthy: false, reason: 'body has no "healthy" property' },
    // The status is ignored for probe (the original deployer's behaviour), but still named.
    { name: 'healthy body with 503', status: 503, body: '{"healthy": true}', healthy: true, reason: 'healthy (body says so; status 503 ignored)' },
    { name: 'unhealthy body with 500', status: 500, body: 'oops', healthy: false, reason: 'status 500; body is not JSON' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(evaluateAnswer('probe', c.status, c.body), { healthy: c.healthy, reason: c.reason });
    });
  }

  it('does not trust a truncated body', () => {
    assert.deepEqual(evaluateAnswer('probe', 200, '{"healthy": true}', { truncatedAtBytes: 17 }), {
      healthy: false,
      reason: 'body exceeds 17 bytes',
    });
  });
});

describe('evaluateAnswer: simple', () => {
  const cases: Array<[number, boolean, string]> = [
    [200, true, 'healthy'],
    [204, true, 'healthy'],
    [299, true, 'healthy'],
    [199, false, 'status 199'],
    [301, false, 'status 301 (redirects are not followed)'],
    [404, false, 'status 404'],
    [500, false, 'status 500'],
  ];
  for (const [status, healthy, reason] of cases) {
    it(`status ${status} is ${healthy ? 'healthy' : 'unhealthy'}`, () => {
      assert.deepEqual(evaluateAnswer('simple', status, 'whatever'), { healthy, reason });
    });
  }

  it('ignores the body and truncation', () => {
    assert.equal(evaluateAnswer('simple', 200, '{"healthy": false}', { truncatedAtBytes: 10 }).healthy, true);
  });
});

describe('excerpt', () => {
  it('keeps short text as it is', () => {
    assert.equal(excerpt('{"healthy": true}'), '{"healthy": true}');
    assert.equal(excerpt(''), '');
  });

  it('puts the text on one line and replaces control characters', () => {
    assert.equal(excerpt(' a\r\nb\tc\u0007d\u001b[31me\u2028f\u202eg\u0000 '), 'a b c\uFFFDd\uFFFD[31me\uFFFDf\uFFFDg\uFFFD');
  });

  it('caps at 256 characters, ending with an ellipsis', () => {
    const out = excerpt('x'.repeat(100_000));
    assert.equal(Array.from(out).length, 256);
    assert.ok(out.endsWith('…'));
    assert.equal(excerpt('y'.repeat(256)), 'y'.repeat(256));
    assert.equal(excerpt('y'.repeat(257)), 'y'.repeat(255) + '…');
  });

  it('never splits a surrogate pair', () => {
    const out = excerpt('😀'.repeat(1000));
    assert.equal(out, '😀'.repeat(255) + '…');
    assert.doesNotMatch(out, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
