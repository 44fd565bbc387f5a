import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OriginPolicy, normaliseOrigin } from '../../src/api/websocket/origins.js';
import { loadConfig } from '../../src/config.js';

describe('origin policy (log websocket and CORS)', () => {
  const policy = new OriginPolicy(['https://ui.example.com', 'http://localhost:3000']);

  it('allows clients without Origin and same-origin pages', () => {
    assert.equal(policy.check(undefined, 'cutover:8000').allowed, true);
    assert.equal(policy.check('', 'cutover:8000').allowed, true);
    assert.equal(policy.check('http://cutover:8000', 'cutover:8000').allowed, true);
    assert.equal(policy.check('http://CUTOVER:8000', 'cutover:8000').allowed, true);
    assert.equal(policy.check('https://deploy.example.com', 'deploy.example.com:443').allowed, true, 'default port in Host');
    assert.equal(policy.check('http://cutover:8001', 'cutover:8000').allowed, false, 'other port');
    assert.equal(policy.check('http://evil.example.com', 'cutover:8000').allowed, false);
  });

  it('allows configured origins exactly', () => {
    assert.equal(policy.check('https://ui.example.com', 'cutover:8000').allowed, true);
    assert.equal(policy.check('https://ui.example.com:443', 'cutover:8000').allowed, true);
    assert.equal(policy.check('http://ui.example.com', 'cutover:8000').allowed, false, 'scheme matters');
    assert.equal(policy.check('https://ui.example.com.evil.com', 'cutover:8000').allowed, false);
    assert.equal(policy.check('http://localhost:3000', 'cutover:8000').allowed, true);
  });

  it('refuses "null" and malformed origins unless "*" is configured', () => {
    assert.equal(policy.check('null', 'cutover:8000').allowed, false);
    assert.equal(policy.check('not a url', 'cutover:8000').allowed, false);
    const any = new OriginPolicy(['*']);
    assert.equal(any.check('null', 'cutover:8000').allowed, true);
    assert.equal(any.check('https://anything.example', 'cutover:8000').allowed, true);
  });

  it('normalises origins', () => {
    assert.equal(normaliseOrigin('HTTPS://UI.Example.com:443/'), 'https://ui.example.com');
    assert.equal(normaliseOrigin('https://ui.example.com/app'), undefined);
    assert.equal(normaliseOrigin('ftp://ui.example.com'), undefined);
  });

  it('CUTOVER_ALLOWED_ORIGINS: default none, a list, "*", and errors for paths or non-origins', () => {
    assert.deepEqual(loadConfig({}).allowedOrigins, []);
    assert.deepEqual(loadConfig({ CUTOVER_ALLOWED_ORIGINS: 'https://UI.example.com/, http://localhost:3000' }).allowedOrigins, ['https://ui.example.com', 'http://localhost:3000']);
    assert.deepEqual(loadConfig({ CUTOVER_ALLOWED_ORIGINS: '*' }).allowedOrigins, ['*']);
    assert.throws(() => loadConfig({ CUTOVER_ALLOWED_ORIGINS: 'https://ui.example.com/app' }), /CUTOVER_ALLOWED_ORIGINS/);
    assert.throws(() => loadConfig({ CUTOVER_ALLOWED_ORIGINS: 'ui.example.com' }), /CUTOVER_ALLOWED_ORIGINS/);
    const c = loadConfig({});
    assert.equal(c.wsHeartbeatSeconds, 30);
    assert.equal(c.wsMaxBufferedBytes, 1024 * 1024);
  });
});
