import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('configuration', () => {
  it('has defaults for a local run', () => {
    const c = loadConfig({});
    assert.equal(c.port, 8000);
    assert.equal(c.host, '127.0.0.1');
    assert.deepEqual(c.etcdEndpoints, ['http://127.0.0.1:2379']);
    assert.equal(c.etcdPrefix, '/deployer/');
  });

  it('parses comma-separated etcd endpoints', () => {
    const c = loadConfig({ CUTOVER_ETCD_ENDPOINTS: 'http://a:2379, https://b:2379 ,' });
    assert.deepEqual(c.etcdEndpoints, ['http://a:2379', 'https://b:2379']);
  });

  it('names every invalid variable', () => {
    assert.throws(() => loadConfig({ CUTOVER_PORT: 'eighty', CUTOVER_ETCD_PREFIX: 'deployer', CUTOVER_ETCD_ENDPOINTS: 'etcd:2379' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /CUTOVER_PORT/);
      assert.match(text, /CUTOVER_ETCD_PREFIX/);
      assert.match(text, /CUTOVER_ETCD_ENDPOINTS/);
      return true;
    });
    assert.throws(() => loadConfig({ CUTOVER_PORT: '70000' }), /CUTOVER_PORT/);
  });

  it('stops the process at once with exit code 2 and a message naming the variable', () => {
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, CUTOVER_PORT: 'not-a-port' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(res.status, 2, res.stderr);
    assert.match(res.stderr, /CUTOVER_PORT/);
  });
});
