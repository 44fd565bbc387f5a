import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request } from '../support/http.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { operations, toOpenApiPath } from '../../src/api/openapi.js';

/** The document against the running service: every route documented, every example accepted. */
describe('OpenAPI document and docs page', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let admin: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets));
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
  });
  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('documents every route the server registered, and nothing it does not serve', async () => {
    // The docs page's own static files (/docs/*.js, *.css) are part of /docs, not API routes.
    const served = new Set(cutover.routes().filter((r) => !r.path.startsWith('/docs/')).map((r) => `${r.method.toLowerCase()} ${toOpenApiPath(r.path)}`));
    const documented = new Set(operations.filter((o) => !o.path.startsWith('/stream/')).map((o) => `${o.method} ${o.path}`));
    const undocumented = [...served].filter((r) => !documented.has(r));
    assert.deepEqual(undocumented, [], `routes missing from src/api/openapi.ts: ${undocumented.join(', ')}`);
    assert.deepEqual([...documented].filter((r) => !served.has(r)), []);
  });

  it('serves /openapi.json and the /docs page without credentials, from local files only', async () => {
    const spec = await request(`${cutover.url}/openapi.json`);
    assert.equal(spec.status, 200);
    assert.equal(spec.body.openapi, '3.1.0');
    const page = await request(`${cutover.url}/docs/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.doesNotMatch(page.text, /https?:\/\//, 'nothing from a CDN');
    for (const asset of ['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/init.js']) {
      const res = await fetch(`${cutover.url}${asset}`);
      assert.equal(res.status, 200, asset);
      assert.ok((await res.arrayBuffer()).byteLength > 30, asset);
    }
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  });

  it('accepts every documented request example through the real API', async () => {
    const created = await request(`${cutover.url}/descriptors/?namespace=shop`, { method: 'POST', headers: bearer(admin), json: operations.find((o) => o.method === 'post' && o.path === '/descriptors')!.example });
    assert.equal(created.status, 201, created.text);
    for (const op of operations.filter((o) => o.example !== undefined)) {
      const path = op.path.replace('{id}', created.body.id).replace('{key}', 'example-key');
      const query = op.query && 'namespace' in (op.query.describe().keys ?? {}) ? '?namespace=shop' : '';
      const res = await request(`${cutover.url}${path}${query}`, { method: op.method.toUpperCase(), headers: bearer(admin), json: op.example });
      assert.ok(res.status >= 200 && res.status < 300, `${op.method} ${op.path}: ${res.status} ${res.text}`);
    }
  });
});
