import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { authEnv, authSecrets, bearer, createKey, hsToken, signedRequest, type ApiKey } from '../support/security.js';
import { signRequest } from '../../src/auth/signing.js';
import { ApiKeyAdmin, parseKeyEncryptionKeys } from '../../src/auth/api-keys.js';
import { ApiKeyStore } from '../../src/store/api-keys.js';
import { keys as kvKeys } from '../../src/store/keys.js';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

/** Runs the admin command against the test's etcd and prefix; resolves with its exit code and output. */
function admin(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/admin/cli.ts', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('security: API keys and signed requests', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let base: string;
  let adminToken: string;
  let key: ApiKey;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000' }));
    base = cutover.url;
    adminToken = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    key = await createKey(base, adminToken, 'shop', ['shop', 'shop-staging']);
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  const expect401 = (res: { status: number; text: string; headers: Headers; body: any }, pattern: RegExp) => {
    assert.equal(res.status, 401, res.text);
    assert.match(res.body?.message ?? '', pattern);
    assert.match(res.headers.get('www-authenticate') ?? '', /Cutover-HMAC-SHA256/);
  };

  it('serves a correctly signed request, body included, and stores exactly the signed body', async () => {
    const created = await signedRequest(base, key, 'POST', '/descriptors/?namespace=shop', { json: sampleDescriptor({ appName: 'signed-app', replicas: 3 }) });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.appName, 'signed-app');
    assert.equal(created.body.replicas, 3);
    const list = await signedRequest(base, key, 'GET', '/descriptors/?namespace=shop&appname=signed-app');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.length, 1);
    const deploy = await signedRequest(base, key, 'POST', `/deployments/?namespace=shop&descriptorId=${created.body.id}`);
    assert.equal(deploy.status, 202, deploy.text);
  });

  it('refuses a changed body, a changed query and a differently written path', async () => {
    const body = JSON.stringify(sampleDescriptor({ appName: 'tamper' }));
    const headers = signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: '/descriptors/?namespace=shop', body });
    const changedBody = await request(`${base}/descriptors/?namespace=shop`, {
      method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: body.replace('"replicas":2', '"replicas":9'),
    });
    expect401(changedBody, /unknown API key or wrong signature/);

    const getHeaders = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: '/descriptors/?namespace=shop' });
    expect401(await request(`${base}/descriptors/?namespace=shop-staging`, { headers: getHeaders }), /wrong signature/);
    const again = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: '/descriptors/?namespace=shop' });
    expect401(await request(`${base}/descriptors?namespace=shop`, { headers: again }), /wrong signature/);
    const method = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: '/descriptors/?namespace=shop&appname=x&keepLatest=false' });
    expect401(await request(`${base}/descriptors/?namespace=shop&appname=x&keepLatest=false`, { method: 'DELETE', headers: method }), /wrong signature/);
    const list = await signedRequest(base, key, 'GET', '/descriptors/?namespace=shop&appname=tamper');
    assert.deepEqual(list.body, [], 'nothing was stored');
  });

  it('refuses timestamps more than 30 s in the past or the future', async () => {
    const now = Math.floor(Date.now() / 1000);
    expect401(await signedRequest(base, key, 'GET', '/descriptors/?namespace=shop', { timestamp: now - 45 }), /more than 30 s away from the server's time/);
    expect401(await signedRequest(base, key, 'GET', '/descriptors/?namespace=shop', { timestamp: now + 45 }), /more than 30 s away/);
    const edge = await signedRequest(base, key, 'GET', '/descriptors/?namespace=shop&edge=1', { timestamp: now - 20 });
    assert.equal(edge.status, 200, 'inside the window');
  });

  it('accepts a signature once: a replay is refused, on this replica and on another one', async () => {
    const target = '/descriptors/?namespace=shop';
    const body = JSON.stringify(sampleDescriptor({ appName: 'replayed' }));
    const headers: Record<string, string> = { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body }), 'Content-Type': 'application/json' };
    const first = await request(`${base}${target}`, { method: 'POST', headers, body });
    assert.equal(first.status, 201, first.text);
    expect401(await request(`${base}${target}`, { method: 'POST', headers, body }), /already used/);

    const other = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_ETCD_PREFIX: cutover.config.etcdPrefix }));
    try {
      expect401(await request(`${other.url}${target}`, { method: 'POST', headers, body }), /already used/);
      const fresh = await signedRequest(other.url, key, 'GET', '/descriptors/?namespace=shop&appname=replayed');
      assert.equal(fresh.status, 200);
      assert.equal(fresh.body.length, 1, 'the replay created nothing');
    } finally {
      await other.stop();
    }
    const seen = await cutover.kv.list(kvKeys.allSeenSignatures());
    assert.ok(seen.entries.length > 0, 'accepted signatures are remembered in etcd');
    const signature = headers['X-Cutover-Signature']!.slice(3);
    assert.equal(seen.entries.some((e) => e.key.includes(signature) || e.value.includes(signature)), false, 'only a hash of the signature is stored');
  });

  it('refuses unknown keys, wrong secrets and malformed or missing headers', async () => {
    expect401(await signedRequest(base, { id: 'ck_0000000000000000', secret: key.secret }, 'GET', '/descriptors/?namespace=shop'), /unknown API key or wrong signature/);
    expect401(await signedRequest(base, { id: key.id, secret: `${key.secret}x` }, 'GET', '/descriptors/?namespace=shop'), /unknown API key or wrong signature/);
    const good = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: '/descriptors/?namespace=shop' });
    const { 'X-Cutover-Signature': _s, ...noSignature } = good;
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: noSignature }), /needs the headers/);
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: { ...good, 'X-Cutover-Signature': 'sha256=abc' } }), /must be "v1="/);
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: { ...good, 'X-Cutover-Timestamp': 'yesterday' } }), /unix time/);
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: { ...good, 'X-Cutover-Key-Id': '../../etc' } }), /not a key id/);
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: { ...good, 'X-Cutover-Nonce': 'short' } }), /X-Cutover-Nonce must be/);
    const { 'X-Cutover-Nonce': _n, ...noNonce } = good;
    expect401(await request(`${base}/descriptors/?namespace=shop`, { headers: noNonce }), /needs the headers/);
    const both = await request(`${base}/descriptors/?namespace=shop`, { headers: { ...good, ...bearer(adminToken) } });
    assert.equal(both.status, 401);
    assert.match(both.text, /not both/);
  });

  it('refuses revoked and expired keys (telling only the holder of the secret why)', async () => {
    const revokedKey = await createKey(base, adminToken, 'shop', ['shop']);
    assert.equal((await signedRequest(base, revokedKey, 'GET', '/descriptors/?namespace=shop')).status, 200);
    const revoke = await request(`${base}/admin/keys/${revokedKey.id}`, { method: 'DELETE', headers: bearer(adminToken) });
    assert.equal(revoke.status, 200);
    assert.equal(revoke.body.status, 'revoked');
    expect401(await signedRequest(base, revokedKey, 'GET', '/descriptors/?namespace=shop'), /was revoked/);
    expect401(await signedRequest(base, { id: revokedKey.id, secret: 'cks_guess' }, 'GET', '/descriptors/?namespace=shop'), /unknown API key or wrong signature/);

    // A key created two hours ago that expired after one.
    const past = new ApiKeyAdmin(new ApiKeyStore(cutover.kv), parseKeyEncryptionKeys(secrets.kek), () => new Date(Date.now() - 2 * 3_600_000));
    const expired = await past.create({ team: 'shop', namespaces: ['shop'], expires: '1h' }, 'test');
    expect401(await signedRequest(base, { id: expired.key.id, secret: expired.secret }, 'GET', '/descriptors/?namespace=shop'), /expired/);
    const listed = await request(`${base}/admin/keys?team=shop`, { headers: bearer(adminToken) });
    assert.equal(listed.body.find((k: { id: string }) => k.id === expired.key.id).status, 'expired');
  });

  it('rotates: two keys of a team are valid at once; after revoking the old one only the new works', async () => {
    const oldKey = await createKey(base, adminToken, 'payments', ['payments']);
    const newKey = await createKey(base, adminToken, 'payments', ['payments'], { expires: '90d', description: 'rotation 2026-Q4' });
    assert.equal(newKey.body.key.team, 'payments');
    assert.ok(Date.parse(newKey.body.key.expires) > Date.now() + 89 * 86_400_000);
    for (const k of [oldKey, newKey]) assert.equal((await signedRequest(base, k, 'GET', '/deployments/?namespace=payments')).status, 200, k.id);
    assert.equal((await request(`${base}/admin/keys/${oldKey.id}`, { method: 'DELETE', headers: bearer(adminToken) })).status, 200);
    expect401(await signedRequest(base, oldKey, 'GET', '/deployments/?namespace=payments'), /revoked/);
    assert.equal((await signedRequest(base, newKey, 'GET', '/deployments/?namespace=payments')).status, 200);
  });

  it('stores secrets only encrypted', async () => {
    const stored = await cutover.kv.get(kvKeys.apiKey(key.id));
    assert.ok(stored);
    assert.equal(stored.value.includes(key.secret), false);
    assert.equal(stored.value.includes(key.secret.slice(4, 20)), false);
    const record = JSON.parse(stored.value);
    assert.equal(record.secret.alg, 'A256GCM');
    // Moved to another record id, the ciphertext does not decrypt (the id is authenticated data).
    const other = await createKey(base, adminToken, 'shop', ['shop']);
    const otherEntry = await cutover.kv.get(kvKeys.apiKey(other.id));
    const swapped = { ...JSON.parse(otherEntry!.value), secret: record.secret };
    await cutover.kv.transact([], [{ type: 'put', key: kvKeys.apiKey(other.id), value: JSON.stringify(swapped) }]);
    assert.equal((await signedRequest(base, { id: other.id, secret: key.secret }, 'GET', '/descriptors/?namespace=shop')).status, 401);
    assert.ok(cutover.records.some((r) => r['msg'] === 'API key cannot be decrypted' && r['keyId'] === other.id));
  });

  it('answers bad bodies of signed requests as the API does otherwise', async () => {
    const target = '/descriptors/?namespace=shop';
    const bad = '{"appName": ';
    const badRes = await request(`${base}${target}`, { method: 'POST', headers: { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body: bad }), 'Content-Type': 'application/json' }, body: bad });
    assert.equal(badRes.status, 400, badRes.text);
    assert.equal(badRes.body.error, 'invalid_json');
    const proto = '{"__proto__": {"x": 1}, "appName": "p"}';
    const protoRes = await request(`${base}${target}`, { method: 'POST', headers: { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body: proto }), 'Content-Type': 'application/json' }, body: proto });
    assert.equal(protoRes.status, 400, protoRes.text);
    const text = 'hello';
    const textRes = await request(`${base}${target}`, { method: 'POST', headers: { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body: text }), 'Content-Type': 'text/plain' }, body: text });
    assert.equal(textRes.status, 415, textRes.text);
    const gz = gzipSync(JSON.stringify(sampleDescriptor()));
    const gzRes = await request(`${base}${target}`, { method: 'POST', headers: { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body: gz }), 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: gz });
    assert.equal(gzRes.status, 415, gzRes.text);
    const big = JSON.stringify({ appName: 'x', pad: 'y'.repeat(1024 * 1024) });
    const bigRes = await request(`${base}${target}`, { method: 'POST', headers: { ...signRequest({ keyId: key.id, secret: key.secret, method: 'POST', pathWithQuery: target, body: big }), 'Content-Type': 'application/json' }, body: big });
    assert.equal(bigRes.status, 413, bigRes.text);
  });

  it('manages keys with the admin command: create prints the secret once, list never, revoke stops it', async () => {
    const env = { CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: cutover.config.etcdPrefix, CUTOVER_KEY_ENCRYPTION_KEY: secrets.kek, CUTOVER_LOG_LEVEL: 'warn' };
    const created = await admin(['keys', 'create', '--team', 'cli-team', '--namespaces', 'shop,cli-ns', '--expires', '30d', '--json'], env);
    assert.equal(created.code, 0, created.stderr);
    const made = JSON.parse(created.stdout);
    assert.match(made.key.id, /^ck_[0-9a-f]{16}$/);
    assert.match(made.secret, /^cks_/);
    assert.deepEqual(made.key.namespaces, ['cli-ns', 'shop']);
    assert.equal((await signedRequest(base, { id: made.key.id, secret: made.secret }, 'GET', '/descriptors/?namespace=cli-ns')).status, 200);

    const plain = await admin(['keys', 'create', '--team', 'cli-team', '--namespaces', 'cli-ns'], env);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /secret \(shown only now/);

    const listed = await admin(['keys', 'list', '--team', 'cli-team'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(listed.stdout.includes(made.key.id));
    assert.equal(listed.stdout.includes(made.secret), false);
    assert.equal(listed.stdout.includes('cks_'), false);

    const revoked = await admin(['keys', 'revoke', made.key.id], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /revoked/);
    expect401(await signedRequest(base, { id: made.key.id, secret: made.secret }, 'GET', '/descriptors/?namespace=cli-ns'), /revoked/);

    const unknown = await admin(['keys', 'revoke', 'ck_ffffffffffffffff'], env);
    assert.equal(unknown.code, 1);
    const usage = await admin(['keys', 'create', '--team', 'x'], env);
    assert.equal(usage.code, 2);
    const noKek = await admin(['keys', 'create', '--team', 'x', '--namespaces', 'y'], { ...env, CUTOVER_KEY_ENCRYPTION_KEY: '' });
    assert.equal(noKek.code, 2);
    assert.match(noKek.stderr, /key-encryption key/);

    const audit = await request(`${base}/audit?namespace=_cluster`, { headers: bearer(adminToken) });
    const cli = audit.body.filter((e: any) => e.actor.auth === 'cli');
    assert.deepEqual(cli.map((e: any) => e.action).sort(), ['apikey.create', 'apikey.create', 'apikey.revoke']);
    assert.ok(cli.every((e: any) => /^cli:/.test(e.actor.identity)));
  });
});
