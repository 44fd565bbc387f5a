import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor, type JsonResponse } from '../support/http.js';
import { authEnv, authSecrets, bearer, createKey, hsToken, signedRequest } from '../support/security.js';

/**
 * Every REST route with authentication on: no credentials → 401, a namespace the caller may not
 * use → 403, the right namespace → served. Fixtures live in namespace team-a.
 */
describe('security: authentication and namespace authorisation on every route', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let base: string;
  let admin: string;
  let teamA: string;
  let teamB: string;

  before(async () => {
    etcd = await TestEtcd.create();
    // Many deliberate failures from one address here; the limiter has its own test.
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000' }));
    base = cutover.url;
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: ['*'] });
    teamA = await hsToken(secrets.jwtSecret, { sub: 'alice', namespaces: ['team-a'] });
    teamB = await hsToken(secrets.jwtSecret, { sub: 'bob', namespaces: 'team-b' });
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  interface Fixture {
    descriptorId: string;
    deploymentId: string;
    keyId: string;
  }

  /** A descriptor, a deployment record and an API key to act on (no cluster is needed for the API's answers). */
  async function fixture(app: string): Promise<Fixture> {
    const d = await request(`${base}/descriptors/?namespace=team-a`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: app }) });
    assert.equal(d.status, 201, d.text);
    const dep = await request(`${base}/deployments/?namespace=team-a&descriptorId=${d.body.id}`, { method: 'POST', headers: bearer(admin) });
    assert.equal(dep.status, 202, dep.text);
    const key = await createKey(base, admin, 'team-a', ['team-a']);
    return { descriptorId: d.body.id, deploymentId: dep.body.id, keyId: key.id };
  }

  interface Route {
    method: string;
    path: (f: Fixture, ns: string) => string;
    json?: (f: Fixture) => unknown;
    /** Statuses meaning "served" for a caller allowed there. */
    ok: number[];
    /** "namespace": needs the namespace; "admin": needs namespaces "*"; "any": any authenticated caller. */
    scope: 'namespace' | 'admin' | 'any';
  }

  const routes: Record<string, Route> = {
    'POST /descriptors': { method: 'POST', path: (_f, ns) => `/descriptors/?namespace=${ns}`, json: () => sampleDescriptor({ appName: 'created' }), ok: [201], scope: 'namespace' },
    'GET /descriptors': { method: 'GET', path: (_f, ns) => `/descriptors/?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /descriptors/{id}': { method: 'GET', path: (f, ns) => `/descriptors/${f.descriptorId}/?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'PUT /descriptors/{id}': { method: 'PUT', path: (f, ns) => `/descriptors/${f.descriptorId}/?namespace=${ns}`, json: () => sampleDescriptor({ appName: 'app-put', replicas: 3 }), ok: [204], scope: 'namespace' },
    'DELETE /descriptors/{id}': { method: 'DELETE', path: (f, ns) => `/descriptors/${f.descriptorId}/?namespace=${ns}`, ok: [204], scope: 'namespace' },
    'DELETE /descriptors?appname': { method: 'DELETE', path: (_f, ns) => `/descriptors/?namespace=${ns}&appname=app-bulk&keepLatest=false`, ok: [204], scope: 'namespace' },
    'POST /descriptors/validate': { method: 'POST', path: () => '/descriptors/validate', json: () => sampleDescriptor(), ok: [200], scope: 'any' },
    'POST /deployments': { method: 'POST', path: (f, ns) => `/deployments/?namespace=${ns}&descriptorId=${f.descriptorId}`, ok: [202], scope: 'namespace' },
    'GET /deployments': { method: 'GET', path: (_f, ns) => `/deployments/?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /deployments/{id}': { method: 'GET', path: (f, ns) => `/deployments/${f.deploymentId}/?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /deployments/{id}/logs': { method: 'GET', path: (f, ns) => `/deployments/${f.deploymentId}/logs?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /deployments/{id}/events': { method: 'GET', path: (f, ns) => `/deployments/${f.deploymentId}/events?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /deployments/{id}/healthcheckdata': { method: 'GET', path: (f, ns) => `/deployments/${f.deploymentId}/healthcheckdata?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'PUT /deployments/{id}': { method: 'PUT', path: (f, ns) => `/deployments/${f.deploymentId}/?namespace=${ns}`, ok: [202], scope: 'namespace' },
    'DELETE /deployments/{id}': { method: 'DELETE', path: (f, ns) => `/deployments/${f.deploymentId}/?namespace=${ns}`, ok: [202], scope: 'namespace' },
    'DELETE /deployments?appname': { method: 'DELETE', path: (_f, ns) => `/deployments/?namespace=${ns}&appname=app-bulk`, ok: [204, 202], scope: 'namespace' },
    'GET /audit': { method: 'GET', path: (_f, ns) => `/audit?namespace=${ns}`, ok: [200], scope: 'namespace' },
    'GET /admin/keys': { method: 'GET', path: () => '/admin/keys', ok: [200], scope: 'admin' },
    'POST /admin/keys': { method: 'POST', path: () => '/admin/keys', json: () => ({ team: 'team-a', namespaces: ['team-a'] }), ok: [201], scope: 'admin' },
    'DELETE /admin/keys/{id}': { method: 'DELETE', path: (f) => `/admin/keys/${f.keyId}`, ok: [200], scope: 'admin' },
    'GET /environment': { method: 'GET', path: () => '/environment', ok: [200], scope: 'admin' },
    'PUT /environment/{key}': { method: 'PUT', path: () => '/environment/route-test', json: () => ({ value: 'v' }), ok: [204], scope: 'admin' },
    'DELETE /environment/{key}': { method: 'DELETE', path: () => '/environment/route-test', ok: [204, 404], scope: 'admin' },
  };

  const call = (route: Route, f: Fixture, ns: string, headers: Record<string, string> = {}): Promise<JsonResponse> =>
    request(`${base}${route.path(f, ns)}`, { method: route.method, headers, ...(route.json ? { json: route.json(f) } : {}) });

  for (const [name, route] of Object.entries(routes)) {
    it(`${name}: 401 without credentials, 403 outside the caller's namespaces, served inside them`, async () => {
      const f = await fixture(name.includes('appname') ? 'app-bulk' : 'app-put');

      const anonymous = await call(route, f, 'team-a');
      assert.equal(anonymous.status, 401, anonymous.text);
      assert.equal(anonymous.body.error, 'unauthorized');
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /Bearer realm="cutover"/);
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /Cutover-HMAC-SHA256 realm="cutover"/);

      const garbage = await call(route, f, 'team-a', { Authorization: 'Bearer not.a.token' });
      assert.equal(garbage.status, 401, garbage.text);
      assert.match(garbage.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

      if (route.scope !== 'any') {
        // team-b's caller asks for team-a's things; an administrator route is refused to a namespace caller.
        const forbidden = await call(route, f, 'team-a', bearer(route.scope === 'admin' ? teamA : teamB));
        assert.equal(forbidden.status, 403, forbidden.text);
        assert.equal(forbidden.body.error, 'forbidden');
        assert.equal(forbidden.text.includes(f.descriptorId), false, 'a refusal names nothing of the namespace');
      }

      const allowed = await call(route, f, 'team-a', bearer(route.scope === 'admin' ? admin : teamA));
      assert.ok(route.ok.includes(allowed.status), `${name} answered ${allowed.status}: ${allowed.text}`);
    });
  }

  it('refused mutations change nothing', async () => {
    const f = await fixture('app-keep');
    for (const headers of [{}, bearer(teamB)]) {
      const del = await request(`${base}/descriptors/${f.descriptorId}/?namespace=team-a`, { method: 'DELETE', headers });
      assert.ok([401, 403].includes(del.status));
      const undeploy = await request(`${base}/deployments/${f.deploymentId}/?namespace=team-a&deleteDeployment=true`, { method: 'DELETE', headers });
      assert.ok([401, 403].includes(undeploy.status));
    }
    const still = await request(`${base}/descriptors/${f.descriptorId}/?namespace=team-a`, { headers: bearer(teamA) });
    assert.equal(still.status, 200);
    const record = await request(`${base}/deployments/${f.deploymentId}/?namespace=team-a`, { headers: bearer(teamA) });
    assert.equal(record.status, 200);
    const revokeRefused = await request(`${base}/admin/keys/${f.keyId}`, { method: 'DELETE', headers: bearer(teamA) });
    assert.equal(revokeRefused.status, 403);
    const keys = await request(`${base}/admin/keys`, { headers: bearer(admin) });
    assert.equal(keys.body.find((k: { id: string }) => k.id === f.keyId).status, 'active');
  });

  it('lists only the namespace asked for, and only when the caller may use it', async () => {
    const inB = await request(`${base}/descriptors/?namespace=team-b`, { method: 'POST', headers: bearer(teamB), json: sampleDescriptor({ appName: 'secret-app' }) });
    assert.equal(inB.status, 201);
    const aList = await request(`${base}/descriptors/?namespace=team-a`, { headers: bearer(teamA) });
    assert.equal(aList.status, 200);
    assert.equal(aList.text.includes('secret-app'), false);
    for (const path of ['/descriptors/?namespace=team-b', '/deployments/?namespace=team-b', '/audit?namespace=team-b', '/audit?namespace=_cluster', '/admin/keys']) {
      const res = await request(`${base}${path}`, { headers: bearer(teamA) });
      assert.equal(res.status, 403, path);
      assert.equal(res.text.includes('secret-app'), false, path);
    }
    // A get by id in another namespace is refused before the store is read: no existence oracle.
    const byId = await request(`${base}/descriptors/${inB.body.id}/?namespace=team-b`, { headers: bearer(teamA) });
    const unknownId = await request(`${base}/descriptors/00000000-0000-0000-0000-000000000000/?namespace=team-b`, { headers: bearer(teamA) });
    assert.equal(byId.status, 403);
    assert.equal(unknownId.status, 403);
  });

  it('reads namespaces from an array or a space/comma-separated claim; "*" is an administrator', async () => {
    const spaced = await hsToken(secrets.jwtSecret, { sub: 'carol', namespaces: 'team-c team-d,team-e' });
    for (const ns of ['team-c', 'team-d', 'team-e']) {
      assert.equal((await request(`${base}/descriptors/?namespace=${ns}`, { headers: bearer(spaced) })).status, 200, ns);
    }
    assert.equal((await request(`${base}/descriptors/?namespace=team-a`, { headers: bearer(spaced) })).status, 403);
    const none = await hsToken(secrets.jwtSecret, { sub: 'nobody' });
    assert.equal((await request(`${base}/descriptors/?namespace=team-a`, { headers: bearer(none) })).status, 403, 'no claim: no namespace');
    assert.equal((await request(`${base}/descriptors/?namespace=anything`, { headers: bearer(admin) })).status, 200);
    const cluster = await request(`${base}/audit?namespace=_cluster`, { headers: bearer(admin) });
    assert.equal(cluster.status, 200);
  });

  it('applies the same namespace rule to API keys, and only "*" keys manage keys', async () => {
    const key = await createKey(base, admin, 'team-a', 'team-a');
    const ok = await signedRequest(base, key, 'GET', '/descriptors/?namespace=team-a');
    assert.equal(ok.status, 200, ok.text);
    const other = await signedRequest(base, key, 'GET', '/descriptors/?namespace=team-b');
    assert.equal(other.status, 403);
    const manage = await signedRequest(base, key, 'GET', '/admin/keys');
    assert.equal(manage.status, 403);
    const adminKey = await createKey(base, admin, 'platform', ['*']);
    const managed = await signedRequest(base, adminKey, 'GET', '/admin/keys');
    assert.equal(managed.status, 200, managed.text);
    assert.equal(managed.text.includes(key.secret), false, 'lists never include secrets');
    assert.equal(managed.text.includes('"data"'), false, 'nor the encrypted secret');
  });

  it('keeps /healthz and /readyz open, and /metrics open unless configured', async () => {
    assert.equal((await request(`${base}/healthz`)).status, 200);
    const ready = await request(`${base}/readyz`);
    assert.ok([200, 503].includes(ready.status), 'readiness answers (503: no cluster here), never 401');
    assert.equal((await request(`${base}/metrics`)).status, 200);
    assert.equal((await request(`${base}/healthz`, { method: 'POST', json: {} })).status, 401, 'only GET/HEAD are open');

    const protectedMetrics = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_METRICS_AUTH: 'on' }));
    try {
      const anonymous = await request(`${protectedMetrics.url}/metrics`);
      assert.equal(anonymous.status, 401);
      const withToken = await request(`${protectedMetrics.url}/metrics`, { headers: bearer(teamA) });
      assert.equal(withToken.status, 200);
      assert.equal((await request(`${protectedMetrics.url}/healthz`)).status, 200);
    } finally {
      await protectedMetrics.stop();
    }
  });

  it('sends the security headers on every response, errors included', async () => {
    const responses = [
      await request(`${base}/healthz`),
      await request(`${base}/descriptors/?namespace=team-a`),
      await request(`${base}/descriptors/?namespace=team-a`, { headers: bearer(teamA) }),
      await request(`${base}/no/such/route`, { headers: bearer(teamA) }),
      await request(`${base}/descriptors/?namespace=team-a`, { method: 'POST', headers: { ...bearer(teamA), 'Content-Type': 'application/json' }, body: '{bad json' }),
    ];
    for (const res of responses) {
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.equal(res.headers.get('content-security-policy'), "default-src 'none'; frame-ancestors 'none'");
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('strict-transport-security'), null, 'HSTS only when configured');
      assert.equal(/at .+\.ts:\d+/.test(res.text), false, 'no stack traces');
    }
    const hsts = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_HSTS_MAX_AGE_SECONDS: '31536000' }));
    try {
      assert.equal((await request(`${hsts.url}/healthz`)).headers.get('strict-transport-security'), 'max-age=31536000');
    } finally {
      await hsts.stop();
    }
  });
});
