import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { AUDIENCE, bearer, ISSUER, JwksServer, noneToken, signToken } from '../support/security.js';

const jwtEnv = (extra: Record<string, string>) => ({
  CUTOVER_AUTH: 'on',
  CUTOVER_API_KEYS: 'off',
  CUTOVER_JWT_ISSUER: ISSUER,
  CUTOVER_JWT_AUDIENCE: `other-audience,${AUDIENCE}`,
  CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000',
  ...extra,
});

describe('security: bearer JWTs', () => {
  let etcd: TestEtcd;
  let jwks: JwksServer;
  let cutover: TestCutover;
  let base: string;

  before(async () => {
    etcd = await TestEtcd.create();
    jwks = await JwksServer.start();
    cutover = await startTestCutover(etcd.endpoint, jwtEnv({ CUTOVER_JWT_JWKS_URL: jwks.url }));
    base = cutover.url;
  });

  after(async () => {
    await cutover?.stop();
    await jwks?.close();
    await etcd?.destroy();
  });

  const list = (token: string, ns = 'team-a') => request(`${base}/descriptors/?namespace=${ns}`, { headers: bearer(token) });
  const refused = async (token: string, pattern: RegExp) => {
    const res = await list(token);
    assert.equal(res.status, 401, res.text);
    assert.equal(res.body.error, 'unauthorized');
    assert.match(res.body.message, pattern);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="cutover", error="invalid_token"/);
    assert.equal(res.headers.get('www-authenticate')?.includes('Cutover-HMAC'), false, 'API keys are off here');
  };

  it('accepts RS256 and ES256 tokens from the JWKS, within their namespaces', async () => {
    const rs = await jwks.token({ namespaces: ['team-a'] }, 0);
    const es = await jwks.token({ namespaces: 'team-a' }, 1);
    assert.equal((await list(rs)).status, 200);
    assert.equal((await list(es)).status, 200);
    assert.equal((await list(rs, 'team-b')).status, 403);
    const created = await request(`${base}/descriptors/?namespace=team-a`, { method: 'POST', headers: bearer(rs), json: sampleDescriptor() });
    assert.equal(created.status, 201, created.text);
    assert.ok(jwks.requests >= 1, 'keys were fetched from the JWKS URL');
  });

  it('makes "*" an administrator', async () => {
    const root = await jwks.token({ sub: 'root', namespaces: ['*'] });
    assert.equal((await list(root, 'any-namespace')).status, 200);
    assert.equal((await request(`${base}/audit?namespace=_cluster`, { headers: bearer(root) })).status, 200);
    const notRoot = await jwks.token({ namespaces: ['team-a'] });
    assert.equal((await request(`${base}/audit?namespace=_cluster`, { headers: bearer(notRoot) })).status, 403);
  });

  it('refuses a wrong issuer, a wrong audience and an expired token', async () => {
    await refused(await jwks.token({ issuer: 'https://evil.invalid/' }), /"iss"/);
    await refused(await jwks.token({ audience: 'someone-else' }), /"aud"/);
    await refused(await jwks.token({ expiresIn: -120 }), /expired/);
  });

  it('refuses a bad signature, a tampered payload, an unknown key and a token without exp', async () => {
    const stranger = await generateKeyPair('RS256');
    // Claims to be signed by the JWKS's key-0, but is not.
    await refused(await signToken(stranger.privateKey, 'RS256', 'key-0', { namespaces: ['*'] }), /signature is not valid/);
    const good = await jwks.token({ namespaces: ['team-a'] });
    const [h, , s] = good.split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'mallory', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300, namespaces: ['*'] })).toString('base64url');
    await refused(`${h}.${forged}.${s}`, /signature is not valid/);
    await refused(await signToken(stranger.privateKey, 'RS256', 'no-such-kid'), /unknown key/);
    const noExp = await new SignJWT({ namespaces: ['team-a'] }).setProtectedHeader({ alg: 'RS256', kid: 'key-0' })
      .setSubject('alice').setIssuer(ISSUER).setAudience(AUDIENCE).sign(jwks.keys[0]!.privateKey);
    await refused(noExp, /"exp"/);
  });

  it('refuses alg "none", algorithms not allowed, and things that are not tokens', async () => {
    await refused(noneToken({ namespaces: '*' }), /malformed|not allowed|not valid/);
    // An HS256 token is not accepted where keys are asymmetric (no algorithm confusion).
    const hs = await signToken(new TextEncoder().encode('x'.repeat(32)), 'HS256', 'key-0', { namespaces: '*' });
    await refused(hs, /algorithm is not allowed/);
    await refused('abc', /malformed/);
    await refused('a.b', /malformed/);
    const basic = await request(`${base}/descriptors/?namespace=team-a`, { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(basic.status, 401);
    assert.match(basic.body.message, /Bearer <token>/);
  });

  it('uses the configured identity and namespaces claims', async () => {
    const custom = await startTestCutover(etcd.endpoint, jwtEnv({
      CUTOVER_JWT_JWKS_URL: jwks.url, CUTOVER_JWT_NAMESPACES_CLAIM: 'groups', CUTOVER_JWT_IDENTITY_CLAIM: 'email',
      CUTOVER_ETCD_PREFIX: cutover.config.etcdPrefix,
    }));
    try {
      const token = await jwks.token({ sub: 'u-123', namespaces: ['team-x'], claims: { email: 'dana@example.com', groups: ['team-y'] } });
      assert.equal((await request(`${custom.url}/descriptors/?namespace=team-y`, { headers: bearer(token) })).status, 200);
      assert.equal((await request(`${custom.url}/descriptors/?namespace=team-x`, { headers: bearer(token) })).status, 403, 'the default claim is not read');
      const created = await request(`${custom.url}/descriptors/?namespace=team-y`, { method: 'POST', headers: bearer(token), json: sampleDescriptor({ appName: 'claims' }) });
      assert.equal(created.status, 201);
      const audit = await request(`${custom.url}/audit?namespace=team-y`, { headers: bearer(token) });
      assert.equal(audit.body[0].actor.identity, 'dana@example.com');
      assert.equal(audit.body[0].actor.auth, 'jwt');
      const noEmail = await jwks.token({ claims: { groups: ['team-y'] } });
      const res = await request(`${custom.url}/descriptors/?namespace=team-y`, { headers: bearer(noEmail) });
      assert.equal(res.status, 401);
      assert.match(res.body.message, /"email"/);
    } finally {
      await custom.stop();
    }
  });

  it('answers 503, not 401, when the JWKS cannot be fetched', async () => {
    const unreachable = await startTestCutover(etcd.endpoint, jwtEnv({ CUTOVER_JWT_JWKS_URL: 'http://127.0.0.1:1/jwks.json' }));
    try {
      const res = await request(`${unreachable.url}/descriptors/?namespace=team-a`, { headers: bearer(await jwks.token({ namespaces: ['team-a'] })) });
      assert.equal(res.status, 503, res.text);
      assert.equal(res.body.error, 'auth_unavailable');
      assert.ok(res.headers.get('retry-after'));
    } finally {
      await unreachable.stop();
    }
  });

  it('verifies against a configured PEM public key', async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const dir = mkdtempSync(join(tmpdir(), 'cutover-jwt-'));
    const pemFile = join(dir, 'public.pem');
    writeFileSync(pemFile, await exportSPKI(pair.publicKey));
    const pem = await startTestCutover(etcd.endpoint, jwtEnv({ CUTOVER_JWT_PUBLIC_KEY_FILE: pemFile }));
    try {
      const good = await signToken(pair.privateKey, 'ES256', undefined, { namespaces: ['team-a'] });
      assert.equal((await request(`${pem.url}/descriptors/?namespace=team-a`, { headers: bearer(good) })).status, 200);
      const other = await generateKeyPair('ES256');
      const bad = await signToken(other.privateKey, 'ES256', undefined, { namespaces: ['team-a'] });
      assert.equal((await request(`${pem.url}/descriptors/?namespace=team-a`, { headers: bearer(bad) })).status, 401);
      assert.equal((await request(`${pem.url}/descriptors/?namespace=team-a`, { headers: bearer(noneToken()) })).status, 401);
    } finally {
      await pem.stop();
    }
  });
});
