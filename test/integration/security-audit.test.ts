import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { authEnv, authSecrets, bearer, createKey, hsToken, signedRequest } from '../support/security.js';
import { keys } from '../../src/store/keys.js';

describe('security: audit trail', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let base: string;
  let admin: string;
  let alice: string;
  let bob: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets));
    base = cutover.url;
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    alice = await hsToken(secrets.jwtSecret, { sub: 'alice', namespaces: ['audit-a'] });
    bob = await hsToken(secrets.jwtSecret, { sub: 'bob', namespaces: ['audit-b'] });
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  const trail = async (ns: string, token = admin, query = '') => {
    const res = await request(`${base}/audit?namespace=${ns}${query}`, { headers: bearer(token) });
    assert.equal(res.status, 200, res.text);
    return res.body as any[];
  };
  const count = async (ns: string) => (await cutover.kv.list(keys.auditOf(ns))).entries.length;

  it('records every state-changing call with who, what, where and how it ended', async () => {
    const ns = 'audit-a';
    const headers = bearer(alice);
    const d = await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', headers, json: sampleDescriptor({ appName: 'Shop' }) });
    assert.equal(d.status, 201);
    const id = d.body.id;
    assert.equal((await request(`${base}/descriptors/${id}/?namespace=${ns}`, { method: 'PUT', headers, json: sampleDescriptor({ appName: 'shop', replicas: 3 }) })).status, 204);
    const dep = await request(`${base}/deployments/?namespace=${ns}&descriptorId=${id}`, { method: 'POST', headers });
    assert.equal(dep.status, 202);
    const re = await request(`${base}/deployments/${dep.body.id}/?namespace=${ns}`, { method: 'PUT', headers });
    assert.equal(re.status, 202);
    assert.equal((await request(`${base}/deployments/${dep.body.id}/?namespace=${ns}`, { method: 'DELETE', headers })).status, 202);
    assert.equal((await request(`${base}/deployments/?namespace=${ns}&appname=shop`, { method: 'DELETE', headers })).status, 204);
    const d2 = await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', headers, json: sampleDescriptor({ appName: 'shop' }) });
    assert.equal((await request(`${base}/descriptors/${d2.body.id}/?namespace=${ns}`, { method: 'DELETE', headers })).status, 204);
    assert.equal((await request(`${base}/descriptors/?namespace=${ns}&appname=shop&keepLatest=false`, { method: 'DELETE', headers })).status, 204);

    const entries = await trail(ns, alice);
    assert.deepEqual(entries.map((e) => e.action).reverse(), [
      'descriptor.create', 'descriptor.update', 'deployment.deploy', 'deployment.redeploy', 'deployment.undeploy',
      'deployment.delete-app', 'descriptor.create', 'descriptor.delete', 'descriptor.delete-app',
    ], 'newest first, one per call');
    for (const e of entries) {
      assert.equal(e.namespace, ns);
      assert.equal(e.app, 'shop');
      assert.deepEqual(e.actor, { identity: 'alice', auth: 'jwt' });
      assert.equal(e.outcome, 'success');
      assert.ok(e.status >= 200 && e.status < 300);
      assert.ok(!Number.isNaN(Date.parse(e.time)));
      assert.match(e.id, /^\d{13}-[0-9a-f]{8}$/);
      assert.match(e.requestId, /./);
    }
    const deploy = entries.find((e) => e.action === 'deployment.deploy');
    assert.deepEqual(deploy.target, { descriptorId: id, deploymentId: dep.body.id });
    assert.equal(deploy.method, 'POST');
    assert.equal(deploy.path, `/deployments/?namespace=${ns}&descriptorId=${id}`);
    const redeploy = entries.find((e) => e.action === 'deployment.redeploy');
    assert.equal(redeploy.target.deploymentId, re.body.id, 'the new deployment');
  });

  it('records failed attempts too, and API-key callers with their key and team', async () => {
    const ns = 'audit-b';
    const invalid = await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', headers: bearer(bob), json: { appName: 'broken', replicas: -1 } });
    assert.equal(invalid.status, 400);
    const missing = await request(`${base}/deployments/00000000-0000-0000-0000-000000000000/?namespace=${ns}`, { method: 'PUT', headers: bearer(bob) });
    assert.equal(missing.status, 404);
    const key = await createKey(base, admin, 'pipelines', [ns]);
    const signed = await signedRequest(base, key, 'POST', `/descriptors/?namespace=${ns}`, { json: sampleDescriptor({ appName: 'piped' }) });
    assert.equal(signed.status, 201);

    const entries = await trail(ns, bob);
    const [byKey, notFound, badRequest] = entries;
    assert.deepEqual(byKey.actor, { identity: `apikey:${key.id}`, auth: 'api-key', team: 'pipelines', keyId: key.id });
    assert.equal(byKey.app, 'piped');
    assert.equal(notFound.action, 'deployment.redeploy');
    assert.equal(notFound.outcome, 'failure');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.error, 'not_found');
    assert.equal(badRequest.action, 'descriptor.create');
    assert.equal(badRequest.outcome, 'failure');
    assert.equal(badRequest.status, 400);
    assert.equal(badRequest.error, 'validation_failed');
    assert.equal(badRequest.app, 'broken', 'the app of a failed attempt is named too');
  });

  it('does not record reads, validation, unauthenticated or forbidden calls', async () => {
    const ns = 'audit-quiet';
    const writer = await hsToken(secrets.jwtSecret, { sub: 'writer', namespaces: [ns] });
    const made = await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', headers: bearer(writer), json: sampleDescriptor() });
    assert.equal(made.status, 201);
    const before = await count(ns);
    assert.equal(before, 1);
    await request(`${base}/descriptors/?namespace=${ns}`, { headers: bearer(writer) });
    await request(`${base}/descriptors/${made.body.id}/?namespace=${ns}`, { headers: bearer(writer) });
    await request(`${base}/deployments/?namespace=${ns}`, { headers: bearer(writer) });
    await request(`${base}/audit?namespace=${ns}`, { headers: bearer(writer) });
    await request(`${base}/descriptors/validate`, { method: 'POST', headers: bearer(writer), json: sampleDescriptor() });
    await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', json: sampleDescriptor() });
    const forbidden = await request(`${base}/descriptors/${made.body.id}/?namespace=${ns}`, { method: 'DELETE', headers: bearer(bob) });
    assert.equal(forbidden.status, 403);
    assert.equal(await count(ns), before);
    assert.ok(cutover.records.some((r) => r['msg'] === 'forbidden' && r['identity'] === 'bob' && r['namespace'] === ns), 'a refusal is logged instead');
  });

  it('lists a namespace only for callers allowed there; filters by app; limits; key management under _cluster', async () => {
    const ns = 'audit-list';
    const t = await hsToken(secrets.jwtSecret, { sub: 'lister', namespaces: [ns] });
    for (const app of ['one', 'two', 'one', 'three']) {
      assert.equal((await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', headers: bearer(t), json: sampleDescriptor({ appName: app }) })).status, 201);
    }
    assert.equal((await trail(ns, t)).length, 4);
    assert.deepEqual((await trail(ns, t, '&app=one')).map((e) => e.app), ['one', 'one']);
    assert.deepEqual((await trail(ns, t, '&limit=2')).map((e) => e.app), ['three', 'one']);
    assert.equal((await request(`${base}/audit?namespace=${ns}`, { headers: bearer(bob) })).status, 403);
    assert.equal((await request(`${base}/audit?namespace=${ns}`)).status, 401);
    assert.equal((await request(`${base}/audit?namespace=${ns}&limit=0`, { headers: bearer(t) })).status, 400);

    const key = await createKey(base, admin, 'ops', ['*'], { description: 'audit test' });
    assert.equal((await request(`${base}/admin/keys/${key.id}`, { method: 'DELETE', headers: bearer(admin) })).status, 200);
    const cluster = await trail('_cluster', admin);
    const [revoke, create] = cluster;
    assert.equal(revoke.action, 'apikey.revoke');
    assert.deepEqual(revoke.target, { keyId: key.id });
    assert.equal(create.action, 'apikey.create');
    assert.deepEqual(create.target, { keyId: key.id });
    assert.equal(create.actor.identity, 'root');
    assert.equal(JSON.stringify(cluster).includes(key.secret), false, 'the audit never holds a secret');
  });

  it('keeps at most the configured number of entries per namespace', async () => {
    const small = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUDIT_KEEP_PER_NAMESPACE: '10' }));
    try {
      const ns = 'audit-retention';
      const t = await hsToken(secrets.jwtSecret, { sub: 'r', namespaces: [ns] });
      for (let i = 0; i < 15; i++) {
        assert.equal((await request(`${small.url}/descriptors/?namespace=${ns}`, { method: 'POST', headers: bearer(t), json: sampleDescriptor({ appName: `app-${i}` }) })).status, 201);
      }
      const left = await waitFor('old audit entries to be pruned', async () => {
        const { entries } = await small.kv.list(keys.auditOf(ns));
        return entries.length === 10 ? entries : undefined;
      });
      const apps = left.map((e) => JSON.parse(e.value).app).sort();
      assert.deepEqual(apps, Array.from({ length: 10 }, (_, i) => `app-${i + 5}`).sort(), 'the newest are kept');
    } finally {
      await small.stop();
    }
  });
});
