import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ConfigError, loadConfig } from '../../src/config.js';
import { clientKey, FailedAuthLimiter } from '../../src/auth/rate-limit.js';
import { ALL_NAMESPACES, assertNamespaceAllowed, AuthorizationError, parseNamespaces, type Caller } from '../../src/auth/caller.js';
import { decryptSecret, encryptSecret, KeyEncryptionKeyError, parseDuration, parseKeyEncryptionKeys } from '../../src/auth/api-keys.js';
import { resolveAuthSetup } from '../../src/auth/settings.js';
import { Authenticator } from '../../src/auth/middleware.js';
import { JwtVerifier } from '../../src/auth/jwt.js';
import { createSilentLogger } from '../../src/log.js';
import { AUDIENCE, hsToken, ISSUER } from '../support/security.js';

describe('failed-authentication limiter', () => {
  it('allows the budget, then answers with the wait until the next token', () => {
    let now = 1_000_000;
    const limiter = new FailedAuthLimiter({ failuresPerMinute: 6, now: () => now });
    for (let i = 0; i < 6; i++) assert.equal(limiter.recordFailure('10.0.0.1'), undefined, `failure ${i + 1}`);
    assert.equal(limiter.recordFailure('10.0.0.1'), 10, 'one token per 10 s');
    assert.equal(limiter.recordFailure('10.0.0.2'), undefined, 'other addresses have their own budget');
    now += 10_000;
    assert.equal(limiter.recordFailure('10.0.0.1'), undefined, 'refilled');
    assert.ok((limiter.recordFailure('10.0.0.1') ?? 0) >= 1);
  });

  it('groups IPv6 clients by /64 and unwraps IPv4-mapped addresses', () => {
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    assert.notEqual(clientKey('2001:db8:1:2::1'), clientKey('2001:db8:1:3::1'));
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey(undefined), 'unknown');
  });

  it('tracks a bounded number of clients', () => {
    const limiter = new FailedAuthLimiter({ failuresPerMinute: 1, maxClients: 100 });
    for (let i = 0; i < 1000; i++) limiter.recordFailure(`10.1.${Math.floor(i / 256)}.${i % 256}`);
    assert.equal(limiter.size, 100);
  });
});

describe('callers and namespaces', () => {
  it('parses arrays and space/comma-separated strings; "*" anywhere makes an administrator', () => {
    assert.deepEqual([...(parseNamespaces(['a', 'b c']) as Set<string>)], ['a', 'b', 'c']);
    assert.deepEqual([...(parseNamespaces('a, b,c  d') as Set<string>)], ['a', 'b', 'c', 'd']);
    assert.equal(parseNamespaces('a *'), ALL_NAMESPACES);
    assert.equal(parseNamespaces(['*']), ALL_NAMESPACES);
    assert.deepEqual([...(parseNamespaces(undefined) as Set<string>)], []);
    assert.deepEqual([...(parseNamespaces(42) as Set<string>)], []);
    assert.deepEqual([...(parseNamespaces([1, 'x', null]) as Set<string>)], ['x']);
  });

  it('allows a namespace only when listed or for administrators', () => {
    const caller: Caller = { identity: 'a', method: 'jwt', namespaces: new Set(['x']) };
    assert.doesNotThrow(() => assertNamespaceAllowed(caller, 'x'));
    assert.throws(() => assertNamespaceAllowed(caller, 'y'), (err: unknown) => err instanceof AuthorizationError && err.status === 403);
    assert.doesNotThrow(() => assertNamespaceAllowed({ ...caller, namespaces: ALL_NAMESPACES }, 'y'));
  });
});

describe('key encryption', () => {
  it('parses hex and base64 keys, several of them, and never echoes a bad one', () => {
    const hex = randomBytes(32).toString('hex');
    const b64 = randomBytes(32).toString('base64');
    const keks = parseKeyEncryptionKeys(`${hex}\n${b64}`);
    assert.equal(keks.length, 2);
    assert.notEqual(keks[0]!.id, keks[1]!.id);
    assert.equal(parseKeyEncryptionKeys(hex)[0]!.id, keks[0]!.id, 'the id is a stable fingerprint');
    assert.throws(() => parseKeyEncryptionKeys('secret-but-too-short'), (err: unknown) => err instanceof KeyEncryptionKeyError && !err.message.includes('secret-but-too-short'));
    assert.throws(() => parseKeyEncryptionKeys(''), KeyEncryptionKeyError);
  });

  it('encrypts with AES-256-GCM bound to the key id, and decrypts with any configured KEK', () => {
    const [old, current] = parseKeyEncryptionKeys(`${randomBytes(32).toString('hex')},${randomBytes(32).toString('hex')}`);
    const enc = encryptSecret(old!, 'ck_0123456789abcdef', 'cks_the-secret');
    assert.equal(JSON.stringify(enc).includes('the-secret'), false);
    assert.equal(decryptSecret([current!, old!], 'ck_0123456789abcdef', enc), 'cks_the-secret', 'after a KEK rotation the old one still decrypts');
    assert.throws(() => decryptSecret([current!, old!], 'ck_ffffffffffffffff', enc), /does not decrypt/, 'the id is authenticated');
    const tampered = { ...enc, data: Buffer.from(Buffer.from(enc.data, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64') };
    assert.throws(() => decryptSecret([old!], 'ck_0123456789abcdef', tampered), /does not decrypt/);
    assert.throws(() => decryptSecret([current!], 'ck_0123456789abcdef', enc), /not configured/);
  });

  it('reads expiry durations', () => {
    assert.equal(parseDuration('90d'), 90 * 86_400_000);
    assert.equal(parseDuration('12h'), 12 * 3_600_000);
    assert.equal(parseDuration('30m'), 30 * 60_000);
    assert.equal(parseDuration('3w'), undefined);
  });
});

describe('security settings', () => {
  const kek = randomBytes(32).toString('base64');
  const secret = randomBytes(32).toString('hex');
  const problems = (env: Record<string, string>, read: (p: string) => string = () => { throw Object.assign(new Error('nope'), { code: 'ENOENT' }); }): string => {
    try {
      resolveAuthSetup(loadConfig(env), read);
      return '';
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.problems.join('\n');
    }
  };

  it('refuses the default (auth on, nothing configured) and names both ways out', () => {
    const text = problems({});
    assert.match(text, /CUTOVER_KEY_ENCRYPTION_KEY/);
    assert.match(text, /CUTOVER_JWT_JWKS_URL/);
    assert.match(text, /CUTOVER_AUTH=off/);
  });

  it('starts with auth off, with only a KEK, or with only JWT', () => {
    assert.equal(resolveAuthSetup(loadConfig({ CUTOVER_AUTH: 'off' })).enabled, false);
    const keysOnly = resolveAuthSetup(loadConfig({ CUTOVER_KEY_ENCRYPTION_KEY: kek }));
    assert.equal(keysOnly.apiKeysEnabled, true);
    assert.equal(keysOnly.jwt, undefined);
    const jwtOnly = resolveAuthSetup(loadConfig({ CUTOVER_API_KEYS: 'off', CUTOVER_JWT_SECRET: secret, CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a' }));
    assert.equal(jwtOnly.apiKeysEnabled, false);
    assert.deepEqual(jwtOnly.jwt?.algorithms, ['HS256']);
    const jwks = resolveAuthSetup(loadConfig({ CUTOVER_API_KEYS: 'off', CUTOVER_JWT_JWKS_URL: 'https://idp/jwks', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a,b' }));
    assert.deepEqual(jwks.jwt?.audience, ['a', 'b']);
    assert.ok(!jwks.jwt?.algorithms.includes('HS256'));
  });

  it('names ambiguous, incomplete and unsafe JWT settings', () => {
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_SECRET: secret, CUTOVER_JWT_JWKS_URL: 'https://x/j', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a' }), /one JWT key source/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_SECRET: secret }), /CUTOVER_JWT_ISSUER is required[\s\S]*CUTOVER_JWT_AUDIENCE is required/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_ISSUER: 'i' }), /no JWT key source/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_SECRET: 'short', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a' }), /at least 32 bytes/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_SECRET: secret, CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a', CUTOVER_JWT_ALGORITHMS: 'RS256' }), /do not fit a shared secret/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_JWKS_URL: 'https://x/j', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a', CUTOVER_JWT_ALGORITHMS: 'HS256' }), /do not fit a public key/);
    assert.throws(() => loadConfig({ CUTOVER_JWT_ALGORITHMS: 'none' }), /never accepted/);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_PUBLIC_KEY_FILE: '/k.pem', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a' }, () => pem), /private key/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY: kek, CUTOVER_JWT_PUBLIC_KEY_FILE: '/k.pem', CUTOVER_JWT_ISSUER: 'i', CUTOVER_JWT_AUDIENCE: 'a' }, () => 'junk'), /not a PEM public key/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY_FILE: '/nope' }), /cannot read \/nope: ENOENT/);
    assert.match(problems({ CUTOVER_KEY_ENCRYPTION_KEY_FILE: '/kek', CUTOVER_KEY_ENCRYPTION_KEY: kek }), /not both/);
    assert.match(problems({ CUTOVER_API_KEYS: 'off' }), /nobody could get in/);
  });

  it('never echoes a secret setting in a configuration error', () => {
    assert.doesNotThrow(() => loadConfig({ CUTOVER_KEY_ENCRYPTION_KEY: 'whatever-value' }), 'the format is checked at start-up, without echo');
    const text = problems({ CUTOVER_KEY_ENCRYPTION_KEY: 'my-secret-kek-value' });
    assert.equal(text.includes('my-secret-kek-value'), false);
    assert.match(text, /not 32 bytes/);
  });
});

describe('websocket authentication from a raw request', () => {
  const secret = randomBytes(32).toString('base64url');
  const authenticator = new Authenticator({
    enabled: true,
    jwt: new JwtVerifier({
      key: { kind: 'secret', secret: new TextEncoder().encode(secret) }, issuer: ISSUER, audience: [AUDIENCE], algorithms: ['HS256'],
      namespacesClaim: 'namespaces', identityClaim: 'sub', clockToleranceSeconds: 0,
    }),
    limiter: new FailedAuthLimiter({ failuresPerMinute: 100 }),
    log: createSilentLogger(),
  });
  const fakeRequest = (headers: Record<string, string>) => ({ method: 'GET', url: '/stream/deployments/x/logs?namespace=a', headers, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;

  it('reads the Authorization header, or a token offered as subprotocol cutover.bearer.<jwt>', async () => {
    const token = await hsToken(secret, { sub: 'ui-user', namespaces: ['a'] });
    const viaHeader = await authenticator.authenticateRequest(fakeRequest({ authorization: `Bearer ${token}` }), undefined);
    assert.equal(viaHeader.identity, 'ui-user');
    const viaProtocol = await authenticator.authenticateRequest(fakeRequest({ 'sec-websocket-protocol': `cutover.v1, cutover.bearer.${token}` }), undefined);
    assert.equal(viaProtocol.identity, 'ui-user');
    await assert.rejects(authenticator.authenticateRequest(fakeRequest({}), undefined), (err: { status?: number }) => err.status === 401);
  });
});
