import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { waitFor } from '../support/wait.js';

describe('descriptor API against a real etcd', () => {
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let base: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint);
    base = cutover.url;
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  async function create(ns: string, overrides: Record<string, unknown> = {}) {
    const res = await request(`${base}/descriptors/?namespace=${ns}`, { method: 'POST', json: sampleDescriptor(overrides) });
    assert.equal(res.status, 201, res.text);
    return res;
  }

  describe('create', () => {
    it('answers 201 with Location, ETag and the stored, normalised descriptor', async () => {
      const res = await create('create-ns', { appName: 'My.Shop_App', newVersion: '1.2.0', email: 'a@b.c', password: 'hunter2' });
      const body = res.body;
      assert.match(body.id, /^[0-9a-f-]{36}$/);
      assert.equal(res.headers.get('location'), `/descriptors/${body.id}/?namespace=create-ns`);
      assert.match(res.headers.get('etag') ?? '', /^"\d+"$/);
      assert.equal(body.namespace, 'create-ns');
      assert.equal(body.appName, 'my-shop-app');
      assert.equal(body.newVersion, '1-2-0');
      assert.equal(body.replicas, 2);
      assert.equal(body.deploymentType, 'blue-green');
      assert.equal(body.healthCheckPath, 'health');
      assert.ok(!Number.isNaN(Date.parse(body.created)));
      assert.equal(body.created, body.lastModified);
      assert.equal('email' in body, false);
      assert.equal('password' in body, false);
      const stored = await request(`${base}/descriptors/${body.id}/?namespace=create-ns`);
      assert.equal(stored.text.includes('hunter2'), false, 'the password is never stored or returned');
      assert.deepEqual(stored.body, body);
    });

    it('serves the Location joined to a base URL ending in "/" (doubled slash)', async () => {
      const res = await create('join-ns');
      const followed = await request(`${base}/${res.headers.get('location')}`);
      assert.equal(followed.status, 200);
      assert.equal(followed.body.id, res.body.id);
    });

    it('takes the namespace from the query when the body has none, and rejects a different one', async () => {
      const ok = await request(`${base}/descriptors?namespace=ns-a`, { method: 'POST', json: sampleDescriptor({ namespace: 'ns-a' }) });
      assert.equal(ok.status, 201);
      const bad = await request(`${base}/descriptors/?namespace=ns-a`, { method: 'POST', json: sampleDescriptor({ namespace: 'ns-b' }) });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error, 'bad_request');
      assert.match(bad.body.message, /does not match/);
    });

    it('rejects a body with an id, a missing or bad namespace', async () => {
      const withId = await request(`${base}/descriptors/?namespace=x`, { method: 'POST', json: sampleDescriptor({ id: 'abc' }) });
      assert.equal(withId.status, 400);
      const noNs = await request(`${base}/descriptors/`, { method: 'POST', json: sampleDescriptor() });
      assert.equal(noNs.status, 400);
      assert.match(noNs.body.message, /namespace/);
      const badNs = await request(`${base}/descriptors/?namespace=Not_Valid`, { method: 'POST', json: sampleDescriptor() });
      assert.equal(badNs.status, 400);
    });

    it('reports every validation problem at once with its field path', async () => {
      const res = await request(`${base}/descriptors/?namespace=v`, {
        method: 'POST',
        json: { appName: '9lives', replicas: 5000, unknownField: 1, podspec: { containers: [{ name: 'c' }] }, healthCheckType: 'tcp' },
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.error, 'validation_failed');
      const paths = (res.body.details as Array<{ path: string }>).map((d) => d.path).sort();
      assert.deepEqual(paths, ['appName', 'healthCheckType', 'podspec.containers.0.image', 'replicas', 'unknownField']);
      const list = await request(`${base}/descriptors/?namespace=v`);
      assert.deepEqual(list.body, [], 'nothing is stored for an invalid descriptor');
    });
  });

  describe('list and get', () => {
    it('lists an empty namespace as [] with 200', async () => {
      const res = await request(`${base}/descriptors/?namespace=empty-ns`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, []);
    });

    it('lists newest lastModified first and filters by (normalised) appname', async () => {
      const a = await create('list-ns', { appName: 'alpha' });
      const b = await create('list-ns', { appName: 'beta' });
      const c = await create('list-ns', { appName: 'alpha' });
      const all = await request(`${base}/descriptors?namespace=list-ns`);
      assert.deepEqual(all.body.map((d: { id: string }) => d.id), [c.body.id, b.body.id, a.body.id]);
      const alpha = await request(`${base}/descriptors/?namespace=list-ns&appname=ALPHA`);
      assert.deepEqual(alpha.body.map((d: { id: string }) => d.id), [c.body.id, a.body.id]);
      // Touching the oldest makes it the newest.
      const put = await request(`${base}/descriptors/${a.body.id}/?namespace=list-ns`, { method: 'PUT', json: sampleDescriptor({ appName: 'alpha', replicas: 3 }) });
      assert.equal(put.status, 204);
      const again = await request(`${base}/descriptors/?namespace=list-ns&appname=alpha`);
      assert.deepEqual(again.body.map((d: { id: string }) => d.id), [a.body.id, c.body.id]);
    });

    it('gets one by id with and without trailing slash, and 404s for unknown ids and other namespaces', async () => {
      const made = await create('get-ns');
      for (const path of [`/descriptors/${made.body.id}/`, `/descriptors/${made.body.id}`, `//descriptors//${made.body.id}//`]) {
        const res = await request(`${base}${path}?namespace=get-ns`);
        assert.equal(res.status, 200, path);
        assert.equal(res.body.id, made.body.id);
      }
      const missing = await request(`${base}/descriptors/00000000-0000-4000-8000-000000000000/?namespace=get-ns`);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error, 'not_found');
      const otherNs = await request(`${base}/descriptors/${made.body.id}/?namespace=other-ns`);
      assert.equal(otherNs.status, 404);
    });
  });

  describe('update', () => {
    it('applies defaults and validation, keeps created, moves lastModified and the ETag', async () => {
      const made = await create('put-ns', { replicas: 4 });
      const url = `${base}/descriptors/${made.body.id}/?namespace=put-ns`;
      const { replicas: _r, ...withoutReplicas } = sampleDescriptor();
      const res = await request(url, { method: 'PUT', json: { ...withoutReplicas, id: made.body.id, created: '2000-01-01T00:00:00Z' } });
      assert.equal(res.status, 204, res.text);
      assert.equal(res.text, '');
      const got = await request(url);
      assert.equal(got.body.replicas, 1, 'the default applies on update as on create');
      assert.equal(got.body.created, made.body.created, 'created is server-managed');
      assert.ok(got.body.lastModified > made.body.lastModified);
      assert.notEqual(got.headers.get('etag'), made.headers.get('etag'));
      assert.equal(got.headers.get('etag'), res.headers.get('etag'));

      const invalid = await request(url, { method: 'PUT', json: sampleDescriptor({ replicas: -1 }) });
      assert.equal(invalid.status, 400);
      assert.equal(invalid.body.error, 'validation_failed');
    });

    it('refuses to change appName, a different id in the body, and unknown descriptors', async () => {
      const made = await create('put-ns2', { appName: 'shop' });
      const url = `${base}/descriptors/${made.body.id}/?namespace=put-ns2`;
      const renamed = await request(url, { method: 'PUT', json: sampleDescriptor({ appName: 'other' }) });
      assert.equal(renamed.status, 400);
      assert.match(renamed.body.message, /appName cannot change/);
      const sameAfterNormalising = await request(url, { method: 'PUT', json: sampleDescriptor({ appName: 'SHOP' }) });
      assert.equal(sameAfterNormalising.status, 204);
      const otherId = await request(url, { method: 'PUT', json: sampleDescriptor({ appName: 'shop', id: 'not-this-one' }) });
      assert.equal(otherId.status, 400);
      const missing = await request(`${base}/descriptors/00000000-0000-4000-8000-000000000001/?namespace=put-ns2`, { method: 'PUT', json: sampleDescriptor() });
      assert.equal(missing.status, 404);
    });

    it('answers 412 for a stale If-Match', async () => {
      const made = await create('etag-ns');
      const url = `${base}/descriptors/${made.body.id}/?namespace=etag-ns`;
      const etag = made.headers.get('etag')!;
      const first = await request(url, { method: 'PUT', headers: { 'If-Match': etag }, json: sampleDescriptor({ replicas: 3 }) });
      assert.equal(first.status, 204);
      const stale = await request(url, { method: 'PUT', headers: { 'If-Match': etag }, json: sampleDescriptor({ replicas: 5 }) });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.error, 'precondition_failed');
      assert.equal((await request(url)).body.replicas, 3);
    });

    it('lets exactly one of 20 concurrent PUTs from the same revision win', async () => {
      const made = await create('race-ns');
      const url = `${base}/descriptors/${made.body.id}/?namespace=race-ns`;
      const etag = made.headers.get('etag')!;
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        request(url, { method: 'PUT', headers: { 'If-Match': etag }, json: sampleDescriptor({ replicas: 10 + i }) })));
      const statuses = results.map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 204).length, 1, `statuses: ${statuses.join(',')}`);
      assert.ok(statuses.every((s) => s === 204 || s === 409 || s === 412), `statuses: ${statuses.join(',')}`);
      const winner = results.findIndex((r) => r.status === 204);
      assert.equal((await request(url)).body.replicas, 10 + winner, 'the stored value is the winner\'s');
    });
  });

  describe('delete', () => {
    it('deletes one (204) and then 404s', async () => {
      const made = await create('del-ns');
      const url = `${base}/descriptors/${made.body.id}/?namespace=del-ns`;
      assert.equal((await request(url, { method: 'DELETE' })).status, 204);
      assert.equal((await request(url)).status, 404);
      assert.equal((await request(url, { method: 'DELETE' })).status, 404);
    });

    it('bulk-deletes an app keeping the latest by default, or all with keepLatest=false', async () => {
      const ns = 'bulk-ns';
      await create(ns, { appName: 'app' });
      await create(ns, { appName: 'app' });
      const newest = await create(ns, { appName: 'app' });
      const other = await create(ns, { appName: 'keepme' });
      const res = await request(`${base}/descriptors/?namespace=${ns}&appname=app`, { method: 'DELETE' });
      assert.equal(res.status, 204);
      const left = await request(`${base}/descriptors/?namespace=${ns}`);
      assert.deepEqual(left.body.map((d: { id: string }) => d.id).sort(), [newest.body.id, other.body.id].sort());
      const all = await request(`${base}/descriptors/?namespace=${ns}&appname=app&keepLatest=false`, { method: 'DELETE' });
      assert.equal(all.status, 204);
      const rest = await request(`${base}/descriptors/?namespace=${ns}`);
      assert.deepEqual(rest.body.map((d: { id: string }) => d.id), [other.body.id]);
      assert.equal((await request(`${base}/descriptors/?namespace=${ns}&appname=app`, { method: 'DELETE' })).status, 404);
      assert.equal((await request(`${base}/descriptors/?namespace=${ns}`, { method: 'DELETE' })).status, 400);
      assert.equal((await request(`${base}/descriptors/?namespace=${ns}&appname=keepme&keepLatest=maybe`, { method: 'DELETE' })).status, 400);
    });
  });

  describe('validate', () => {
    it('answers {valid: true} for a good descriptor and stores nothing', async () => {
      const res = await request(`${base}/descriptors/validate`, { method: 'POST', json: sampleDescriptor({ namespace: 'val-ns' }) });
      assert.equal(res.status, 200);
      assert.equal(res.body.valid, true);
      assert.deepEqual((await request(`${base}/descriptors/?namespace=val-ns`)).body, []);
    });

    it('answers 400 with the list of problems for a bad one', async () => {
      const res = await request(`${base}/descriptors/validate/`, { method: 'POST', json: { appName: 'x', frontend: 'https://example.com' } });
      assert.equal(res.status, 400);
      assert.equal(res.body.valid, false);
      assert.deepEqual((res.body.details as Array<{ path: string }>).map((d) => d.path).sort(), ['frontend', 'podspec']);
    });
  });

  describe('HTTP conventions', () => {
    it('answers malformed JSON with 400, other media types with 415, big bodies with 413', async () => {
      const malformed = await request(`${base}/descriptors/?namespace=h`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"appName":' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error, 'invalid_json');
      const text = await request(`${base}/descriptors/?namespace=h`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'appName=x' });
      assert.equal(text.status, 415);
      assert.equal(text.body.error, 'unsupported_media_type');
      const huge = JSON.stringify(sampleDescriptor({ webhooks: [{ key: 'k', description: 'x'.repeat(1000) }], deploymentTs: 'y'.repeat(1024 * 1024) }));
      const big = await request(`${base}/descriptors/?namespace=h`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: huge });
      assert.equal(big.status, 413);
      assert.equal(big.body.error, 'payload_too_large');
      const array = await request(`${base}/descriptors/?namespace=h`, { method: 'POST', json: [1, 2] });
      assert.equal(array.status, 400);
    });

    it('answers unknown routes with 404 and wrong methods with 405 and Allow, as JSON', async () => {
      const unknown = await request(`${base}/nothing/here`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error, 'not_found');
      const wrong = await request(`${base}/descriptors/?namespace=h`, { method: 'PATCH' });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.body.error, 'method_not_allowed');
      assert.match(wrong.headers.get('allow') ?? '', /GET/);
      assert.match(wrong.headers.get('allow') ?? '', /POST/);
      // Answered by the root router's allowedMethods alone (the routers have none of their own).
      const options = await request(`${base}/descriptors/?namespace=h`, { method: 'OPTIONS' });
      assert.equal(options.status, 200);
      assert.match(options.headers.get('allow') ?? '', /GET/);
      const unknownMethod = await request(`${base}/descriptors/?namespace=h`, { method: 'PROPFIND' });
      assert.equal(unknownMethod.status, 501);
      assert.equal(unknownMethod.body.error, 'not_implemented');
    });

    it('honours an incoming X-Request-Id, generates one otherwise, and logs one access line per request', async () => {
      const mine = await request(`${base}/healthz`, { headers: { 'X-Request-Id': 'pipeline-42' } });
      assert.equal(mine.headers.get('x-request-id'), 'pipeline-42');
      const generated = await request(`${base}/healthz`);
      assert.match(generated.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
      const evil = await request(`${base}/healthz`, { headers: { 'X-Request-Id': 'a b\tc' } });
      assert.notEqual(evil.headers.get('x-request-id'), 'a b\tc');
      const lines = cutover.records.filter((r) => r['msg'] === 'request' && r['req_id'] === 'pipeline-42');
      assert.equal(lines.length, 1);
      assert.equal(lines[0]!['status'], 200);
      assert.equal(lines[0]!['url'], '/healthz');
    });
  });

  describe('store outages', () => {
    it('answers 503 within 5 s while etcd is down and recovers by itself with the same data', async () => {
      const made = await create('outage-ns');
      const url = `${base}/descriptors/${made.body.id}/?namespace=outage-ns`;
      await etcd.stop();
      try {
        for (const [method, u] of [['GET', url], ['GET', `${base}/descriptors/?namespace=outage-ns`], ['POST', `${base}/descriptors/?namespace=outage-ns`]] as const) {
          const started = Date.now();
          const res = await request(u, { method, json: method === 'POST' ? sampleDescriptor() : undefined });
          const took = Date.now() - started;
          assert.equal(res.status, 503, `${method} ${u}: ${res.text}`);
          assert.equal(res.body.error, 'store_unavailable');
          assert.ok(took < 5000, `${method} took ${took} ms`);
        }
        const ready = await request(`${base}/readyz`);
        assert.equal(ready.status, 503);
        assert.notEqual(ready.body.checks.etcd, 'ok');
        assert.equal((await request(`${base}/healthz`)).status, 200, 'liveness does not depend on etcd');
      } finally {
        await etcd.start();
      }
      const back = await waitFor('the API to answer again after etcd restarted', async () => {
        const res = await request(url);
        return res.status === 200 ? res : undefined;
      }, { timeoutMs: 15_000, intervalMs: 200 });
      assert.deepEqual(back.body, made.body);
      // This test runs without a cluster, so readiness stays 503 for Kubernetes; etcd is back.
      assert.equal((await request(`${base}/readyz`)).body.checks.etcd, 'ok');
    });
  });
});
