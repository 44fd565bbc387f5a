import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request } from '../support/http.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { keys } from '../../src/store/keys.js';

/** The injected environment values (`/deployer/environment/*`) through REST, with auth on. */
describe('environment API', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let admin: string;
  let team: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets));
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    team = await hsToken(secrets.jwtSecret, { sub: 'dev', namespaces: ['shop'] });
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('sets, lists and unsets values stored at the original deployer\'s keys', async () => {
    const base = cutover.url;
    const put = await request(`${base}/environment/db-url`, { method: 'PUT', headers: bearer(admin), json: { value: 'postgres://db:5432/shop' } });
    assert.equal(put.status, 204, put.text);
    assert.equal((await cutover.kv.get(keys.environment('db-url')))?.value, 'postgres://db:5432/shop', 'stored at /deployer/environment/db-url');
    const list = await request(`${base}/environment`, { headers: bearer(admin) });
    assert.equal(list.status, 200);
    assert.deepEqual(list.body, [{ key: 'db-url', name: 'DB_URL', value: 'postgres://db:5432/shop' }]);
    assert.equal((await request(`${base}/environment/db-url`, { method: 'DELETE', headers: bearer(admin) })).status, 204);
    assert.equal((await request(`${base}/environment/db-url`, { method: 'DELETE', headers: bearer(admin) })).status, 404);
    assert.deepEqual((await request(`${base}/environment`, { headers: bearer(admin) })).body, []);
  });

  it('is for administrators only, validates keys and values, and is audited', async () => {
    const base = cutover.url;
    assert.equal((await request(`${base}/environment`)).status, 401);
    assert.equal((await request(`${base}/environment`, { headers: bearer(team) })).status, 403);
    assert.equal((await request(`${base}/environment/x`, { method: 'PUT', headers: bearer(team), json: { value: 'v' } })).status, 403);
    assert.equal((await request(`${base}/environment/9bad`, { method: 'PUT', headers: bearer(admin), json: { value: 'v' } })).status, 400);
    assert.equal((await request(`${base}/environment/ok`, { method: 'PUT', headers: bearer(admin), json: { value: 1 } })).status, 400);
    assert.equal((await request(`${base}/environment/ok`, { method: 'PUT', headers: bearer(admin), json: { value: 'v', extra: 1 } })).status, 400);
    assert.equal((await request(`${base}/environment/feature`, { method: 'PUT', headers: bearer(admin), json: { value: 'on' } })).status, 204);
    const trail = await request(`${base}/audit?namespace=_cluster`, { headers: bearer(admin) });
    assert.equal(trail.status, 200, trail.text);
    const actions = (trail.body as Array<{ action: string; actor: { identity: string }; outcome: string }>).map((e) => `${e.action} ${e.actor.identity} ${e.outcome}`);
    assert.ok(actions.includes('environment-set root success'), actions.join('\n'));
    assert.ok(actions.includes('environment-set root failure'), 'refused input is audited too');
  });
});
