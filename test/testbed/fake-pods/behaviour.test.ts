// The fake-pods HTTP contract (docs/testbed.md), checked on the pure answer() function.
// Run: node --import tsx --test test/testbed/fake-pods/behaviour.test.ts
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { answer, DEFAULT_SLOW_DELAY_MS, MAX_PAD } from './behaviour.js';
import type { FakePod } from './protocol.js';

const pod = (env: Record<string, string> = {}, labels: Record<string, string> = { version: 'v2' }): FakePod => ({
  ip: '198.18.0.7', uid: 'u1', name: 'web-1', namespace: 'ns', labels, ports: [8080], env,
});
const json = (body: string) => JSON.parse(body) as { healthy: boolean; pod: string; version: string | null };

describe('fake pod answers', () => {
  it('healthy (and unset with an ordinary path): 200, healthy, pod name and version label', () => {
    for (const a of [answer(pod({ FAKE_HEALTH: 'healthy' }), '/health', 1), answer(pod(), '/healthz', 1)]) {
      assert.equal(a.status, 200);
      assert.equal(a.contentType, 'application/json');
      assert.deepEqual({ ...json(a.body) }, { healthy: true, pod: 'web-1', version: 'v2', namespace: 'ns', ip: '198.18.0.7' });
    }
    assert.equal(json(answer(pod({}, {}), '/', 1).body).version, null);
  });

  it('?pad=N lengthens a JSON answer by N bytes (capped at 1 MiB) and changes nothing else', () => {
    const plain = answer(pod(), '/health', 1);
    const padded = answer(pod(), '/health?pad=2000', 1);
    assert.equal(padded.status, 200);
    assert.equal(padded.body.length - plain.body.length, 2000 + ',"pad":""'.length);
    assert.deepEqual({ ...json(padded.body), pad: undefined }, { ...json(plain.body), pad: undefined });
    assert.equal((JSON.parse(answer(pod(), '/?pad=99999999', 1).body) as { pad: string }).pad.length, MAX_PAD);
    assert.equal(answer(pod(), '/unhealthy?pad=10', 1).status, 200, 'the path still decides');
    assert.equal(json(answer(pod(), '/unhealthy?pad=10', 1).body).healthy, false);
    assert.equal(answer(pod(), '/?pad=-3', 1).body, answer(pod(), '/', 1).body);
  });

  it('unhealthy: 503 with healthy false; probe-false: 200 with healthy false', () => {
    const u = answer(pod({ FAKE_HEALTH: 'unhealthy' }), '/', 1);
    assert.equal(u.status, 503);
    assert.equal(json(u.body).healthy, false);
    const p = answer(pod({ FAKE_HEALTH: 'probe-false' }), '/', 1);
    assert.equal(p.status, 200);
    assert.equal(json(p.body).healthy, false);
  });

  it('error: 500 with a body that is not JSON', () => {
    const a = answer(pod({ FAKE_HEALTH: 'error' }), '/', 1);
    assert.equal(a.status, 500);
    assert.throws(() => JSON.parse(a.body));
  });

  it('slow: healthy after FAKE_DELAY_MS, default 10 s', () => {
    assert.equal(answer(pod({ FAKE_HEALTH: 'slow' }), '/', 1).delayMs, DEFAULT_SLOW_DELAY_MS);
    const a = answer(pod({ FAKE_HEALTH: 'slow', FAKE_DELAY_MS: '1500' }), '/', 1);
    assert.equal(a.delayMs, 1500);
    assert.equal(a.status, 200);
    assert.equal(json(a.body).healthy, true);
  });

  it('flap: alternates healthy and unhealthy, starting healthy', () => {
    const statuses = [1, 2, 3, 4].map((n) => answer(pod({ FAKE_HEALTH: 'flap' }), '/', n).status);
    assert.deepEqual(statuses, [200, 503, 200, 503]);
  });

  it('FAKE_HEALTH unset: the last path segment decides', () => {
    const u = answer(pod(), '/api/health/unhealthy', 1);
    assert.deepEqual([u.status, json(u.body).healthy], [200, false]);
    assert.equal(answer(pod(), '/error?x=1', 1).status, 500);
    assert.equal(json(answer(pod(), '/anything/else', 1).body).healthy, true);
  });

  it('an unknown FAKE_HEALTH value is a loud 500, not silently healthy', () => {
    const a = answer(pod({ FAKE_HEALTH: 'helthy' }), '/', 1);
    assert.equal(a.status, 500);
    assert.match(a.body, /unknown FAKE_HEALTH/);
  });
});
