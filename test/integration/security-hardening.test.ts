import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, unreachableKubeconfig, type TestCutover } from '../support/cutover.js';
import { CutoverProcess } from '../support/process.js';
import { request, sampleDescriptor } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { authEnv, authSecrets, bearer, createKey, hsToken, signedRequest } from '../support/security.js';
import { signRequest } from '../../src/auth/signing.js';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

/** Starts src/main.ts and resolves when it exits (start-up refusals); kills it after 20 s. */
function runMain(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: REPO_ROOT, env: { ...process.env, CUTOVER_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One raw HTTP/1.1 exchange; resolves with the status line's code (0 when the server closed without answering). */
function rawStatus(port: number, text: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (c: string) => { data += c; });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    socket.setTimeout(5000, () => socket.destroy());
    socket.end(text);
  });
}

describe('security: hardening', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let base: string;
  let admin: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '1000' }));
    base = cutover.url;
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('answers 429 with Retry-After once an address used up its failures, and still serves valid callers from it', async () => {
    const limited = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '5' }));
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await request(`${limited.url}/descriptors/?namespace=rl`)).status);
      assert.deepEqual(statuses, [401, 401, 401, 401, 401]);
      const over = await request(`${limited.url}/descriptors/?namespace=rl`, { headers: { Authorization: 'Bearer x.y.z' } });
      assert.equal(over.status, 429);
      assert.equal(over.body.error, 'too_many_auth_failures');
      const retryAfter = Number(over.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
      assert.equal(over.headers.get('x-content-type-options'), 'nosniff');

      const token = await hsToken(secrets.jwtSecret, { namespaces: ['rl'] });
      assert.equal((await request(`${limited.url}/descriptors/?namespace=rl`, { headers: bearer(token) })).status, 200, 'a valid token is never limited');
      const key = await createKey(limited.url, await hsToken(secrets.jwtSecret, { namespaces: '*' }), 'rl', ['rl']);
      assert.equal((await signedRequest(limited.url, key, 'GET', '/descriptors/?namespace=rl')).status, 200, 'nor a valid signature');
      assert.equal((await request(`${limited.url}/healthz`)).status, 200, 'open paths stay open');
      assert.equal((await request(`${limited.url}/descriptors/?namespace=rl`)).status, 429, 'failures stay limited');
      // Forbidden is not a failed authentication.
      const other = await hsToken(secrets.jwtSecret, { namespaces: ['elsewhere'] });
      assert.equal((await request(`${limited.url}/descriptors/?namespace=rl`, { headers: bearer(other) })).status, 403);
    } finally {
      await limited.stop();
    }
  });

  it('never writes secrets, tokens or signatures to the log', async () => {
    const key = await createKey(base, admin, 'logs', ['logs']);
    const good = await signedRequest(base, key, 'POST', '/descriptors/?namespace=logs', { json: sampleDescriptor() });
    assert.equal(good.status, 201);
    const headers = signRequest({ keyId: key.id, secret: key.secret, method: 'GET', pathWithQuery: '/descriptors/?namespace=logs' });
    assert.equal((await request(`${base}/descriptors/?namespace=logs`, { headers })).status, 200);
    assert.equal((await request(`${base}/descriptors/?namespace=logs`, { headers })).status, 401, 'replay');
    assert.equal((await signedRequest(base, { id: key.id, secret: 'cks_wrong-secret' }, 'GET', '/descriptors/?namespace=logs')).status, 401);
    const expired = await hsToken(secrets.jwtSecret, { namespaces: ['logs'], expiresIn: -100 });
    assert.equal((await request(`${base}/descriptors/?namespace=logs`, { headers: bearer(expired) })).status, 401);
    const forged = `${admin.slice(0, admin.lastIndexOf('.'))}.${'A'.repeat(43)}`;
    assert.equal((await request(`${base}/descriptors/?namespace=logs`, { headers: bearer(forged) })).status, 401);
    const valid = await hsToken(secrets.jwtSecret, { namespaces: ['logs'] });
    assert.equal((await request(`${base}/descriptors/?namespace=logs`, { headers: bearer(valid) })).status, 200);

    await waitFor('the access log of the last request', () => cutover.records.filter((r) => r['msg'] === 'request').length > 0);
    const log = JSON.stringify(cutover.records);
    const signature = headers['X-Cutover-Signature']!.slice(3);
    for (const [what, secret] of Object.entries({
      'API key secret': key.secret, 'secret body': key.secret.slice(4), 'admin token': admin, 'admin token signature': admin.split('.')[2]!,
      'valid token': valid, 'expired token': expired, 'forged token': forged, signature, 'key-encryption key': secrets.kek, 'JWT secret': secrets.jwtSecret,
    })) {
      assert.equal(log.includes(secret), false, `the log contains the ${what}`);
    }
    const failures = cutover.records.filter((r) => r['msg'] === 'authentication failed');
    assert.ok(failures.length >= 4, 'failures are logged (with their reason only)');
    assert.ok(failures.some((r) => /replay/.test(String(r['reason']))));
    assert.ok(failures.every((r) => typeof r['remote'] === 'string' && typeof r['reason'] === 'string'));
  });

  it('does not let path tricks reach a protected route without credentials', async () => {
    const made = await request(`${base}/descriptors/?namespace=tricks`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'hidden' }) });
    assert.equal(made.status, 201);
    const port = Number(new URL(base).port);
    for (const path of ['/healthz/../descriptors?namespace=tricks', '/%68ealthz', '/HEALTHZ/../descriptors?namespace=tricks', '/healthz%2f..%2fdescriptors?namespace=tricks',
      '/healthz/%2e%2e/descriptors?namespace=tricks', '//healthz//..//descriptors?namespace=tricks', '/readyz;/../descriptors?namespace=tricks', '/descriptors%3fnamespace=tricks']) {
      const status = await rawStatus(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.ok([400, 401, 404].includes(status), `${path} answered ${status}`);
    }
  });

  it('warns at start-up when authentication is off, and then treats callers as administrators', async () => {
    const off = await startTestCutover(etcd.endpoint);
    try {
      const warning = off.records.find((r) => /AUTHENTICATION IS OFF/.test(String(r['msg'])));
      assert.ok(warning, 'the warning is logged');
      assert.equal(warning['level'], 40, 'at warn level');
      const made = await request(`${off.url}/descriptors/?namespace=anyone`, { method: 'POST', json: sampleDescriptor() });
      assert.equal(made.status, 201);
      const audit = await request(`${off.url}/audit?namespace=anyone`);
      assert.deepEqual(audit.body[0].actor, { identity: 'anonymous', auth: 'none' });
    } finally {
      await off.stop();
    }
    const proc = await CutoverProcess.start({ CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: '/auth-off-proc/', CUTOVER_KUBECONFIG: unreachableKubeconfig() });
    try {
      assert.ok(proc.logLines().some((l) => l['level'] === 40 && /AUTHENTICATION IS OFF/.test(String(l['msg']))));
    } finally {
      await proc.stop();
    }
  });

  it('refuses to start with authentication on and nothing to authenticate with, naming the fix and no secret', async () => {
    const none = await runMain({ CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_KUBECONFIG: unreachableKubeconfig(), CUTOVER_AUTH: '' });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /CUTOVER_KEY_ENCRYPTION_KEY/);
    assert.match(none.stderr, /CUTOVER_AUTH=off/);

    const badKek = 'not-a-key-but-a-secret-value';
    const bad = await runMain({ CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_KUBECONFIG: unreachableKubeconfig(), CUTOVER_AUTH: 'on', CUTOVER_KEY_ENCRYPTION_KEY: badKek });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /key-encryption key #1 is not 32 bytes/);
    assert.equal(`${bad.stderr}${bad.stdout}`.includes(badKek), false, 'the value is never echoed');

    const keysOffNoJwt = await runMain({ CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_KUBECONFIG: unreachableKubeconfig(), CUTOVER_AUTH: 'on', CUTOVER_API_KEYS: 'off' });
    assert.equal(keysOffNoJwt.code, 2);
    assert.match(keysOffNoJwt.stderr, /nobody could get in/);
  });
});
