import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CutoverClient, backoffMs, type ClientOptions } from '../../src/cli/client.js';
import { CliError, errorFromNetwork, errorFromResponse, transienceOfNetworkError } from '../../src/cli/errors.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { KEY_ID_HEADER, SIGNATURE_HEADER, bodyDigest, canonicalString, computeSignature, NONCE_HEADER, TIMESTAMP_HEADER } from '../../src/auth/signing.js';

const ctx = { action: 'listing the deployments of shop/web', namespace: 'shop' };

/** A fetch error as undici reports it: TypeError("fetch failed") with the socket error as cause. */
function fetchFailed(code: string): Error {
  return Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

/** A client whose fetch answers from a script, recording each request; sleeping is instant. */
function scripted(answers: Array<Response | Error>, options: Partial<ClientOptions> = {}) {
  const calls: Array<{ method: string; url: string; headers: Record<string, string>; body?: string }> = [];
  const notices: string[] = [];
  let clock = 1_000_000;
  const client = new CutoverClient({
    baseUrl: 'http://cutover.test:8000/', retry: true, deadline: clock + 60_000,
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
    onRetry: (n) => notices.push(`${n.reason} ${n.attempt}`),
    fetchImpl: (async (url: URL, init: RequestInit) => {
      calls.push({ method: String(init.method), url: String(url), headers: init.headers as Record<string, string>, ...(init.body ? { body: String(init.body) } : {}) });
      const next = answers.shift();
      if (!next) throw new Error('no more scripted answers');
      if (next instanceof Error) throw next;
      return next;
    }) as unknown as typeof fetch,
    ...options,
  });
  return { client, calls, notices };
}

describe('cli: error → exit code mapping', () => {
  it('maps every HTTP error status to its exit code, with a hint saying what to do', () => {
    const cases: Array<[number, number, RegExp | undefined]> = [
      [400, ExitCode.invalidInput, /fix the input/],
      [413, ExitCode.invalidInput, undefined],
      [401, ExitCode.auth, /key-id.*clock/s],
      [403, ExitCode.auth, /namespace shop/],
      [429, ExitCode.auth, /too many failed authentications/],
      [404, ExitCode.notFound, undefined],
      [409, ExitCode.conflict, undefined],
      [412, ExitCode.conflict, /changed/],
      [500, ExitCode.unavailable, /retry later/],
      [503, ExitCode.unavailable, undefined],
      [418, ExitCode.internal, undefined],
    ];
    for (const [status, code, hint] of cases) {
      const err = errorFromResponse(status, { error: 'x', message: 'server says no' }, ctx);
      assert.equal(err.exitCode, code, `HTTP ${status}`);
      assert.match(err.message, /listing the deployments of shop\/web: server says no|unexpected answer HTTP 418/);
      if (hint) assert.match(err.hint ?? '', hint, `hint of HTTP ${status}`);
    }
  });

  it('keeps the field paths of a refused descriptor', () => {
    const err = errorFromResponse(400, { error: 'validation_failed', message: 'invalid descriptor', details: [{ path: 'replicas', message: 'must be ≥ 0' }, { path: 'podspec', message: 'is required' }] }, ctx);
    assert.deepEqual(err.problems, [{ path: 'replicas', message: 'must be ≥ 0' }, { path: 'podspec', message: 'is required' }]);
  });

  it('says administrator credentials are needed for a 403 on an admin-only endpoint', () => {
    assert.match(errorFromResponse(403, { message: 'no' }, { action: 'listing the environment values', adminOnly: true }).hint ?? '', /administrator/);
  });

  it('classifies network failures: unsent (safe to retry), ambiguous, permanent', () => {
    assert.equal(transienceOfNetworkError(fetchFailed('ECONNREFUSED')), 'unsent');
    assert.equal(transienceOfNetworkError(fetchFailed('ECONNRESET')), 'ambiguous');
    assert.equal(transienceOfNetworkError(fetchFailed('UND_ERR_SOCKET')), 'ambiguous');
    assert.equal(transienceOfNetworkError(Object.assign(new Error('timed out'), { name: 'TimeoutError' })), 'ambiguous');
    assert.equal(transienceOfNetworkError(fetchFailed('ENOTFOUND')), 'permanent');
    const unreachable = errorFromNetwork(fetchFailed('ECONNREFUSED'), 'http://x:1', ctx, 12_000);
    assert.equal(unreachable.exitCode, ExitCode.unavailable);
    assert.match(unreachable.message, /unreachable: ECONNREFUSED \(retried for 12 s\)/);
    assert.match(unreachable.hint ?? '', /--url/);
  });
});

describe('cli: HTTP client retries', () => {
  it('retries 503 and connection refused with backoff, then succeeds', async () => {
    const { client, calls, notices } = scripted([
      json(503, { error: 'store_unavailable', message: 'etcd' }, { 'Retry-After': '2' }),
      fetchFailed('ECONNREFUSED'),
      json(200, [{ id: 'a' }]),
    ]);
    const res = await client.get('/deployments/?namespace=shop', ctx);
    assert.deepEqual(res.body, [{ id: 'a' }]);
    assert.equal(calls.length, 3);
    assert.deepEqual(notices, ['HTTP 503 store_unavailable 1', 'ECONNREFUSED 2']);
  });

  it('does not retry a refusal: 401 fails at once with the auth code', async () => {
    const { client, calls } = scripted([json(401, { error: 'unauthorized', message: 'unknown API key or wrong signature' }, { 'WWW-Authenticate': 'Cutover-HMAC-SHA256' })]);
    await assert.rejects(client.get('/x', ctx), (err: CliError) => err.exitCode === ExitCode.auth && /Cutover-HMAC-SHA256/.test(err.hint ?? ''));
    assert.equal(calls.length, 1);
  });

  it('gives up at the deadline with the unavailable code', async () => {
    const answers = Array.from({ length: 100 }, () => json(502, 'bad gateway'));
    const { client, calls } = scripted(answers, { deadline: 1_000_000 + 5000 });
    await assert.rejects(client.get('/x', ctx), (err: CliError) => err.exitCode === ExitCode.unavailable);
    assert.ok(calls.length >= 3 && calls.length < 10, `retried a few times within 5 s, not ${calls.length}`);
  });

  it('with --no-retry fails at the first transient error', async () => {
    const { client, calls } = scripted([fetchFailed('ECONNREFUSED')], { retry: false });
    await assert.rejects(client.get('/x', ctx), (err: CliError) => err.exitCode === ExitCode.unavailable);
    assert.equal(calls.length, 1);
  });

  it('retries a POST that never arrived, but not one that may have taken effect unless it can check', async () => {
    const refused = scripted([fetchFailed('ECONNREFUSED'), json(202, { id: 'd1' })]);
    assert.equal((await refused.client.request('POST', '/deployments/?namespace=shop&descriptorId=x', { context: ctx })).status, 202);
    assert.equal(refused.calls.length, 2);

    const reset = scripted([fetchFailed('ECONNRESET'), json(202, { id: 'd2' })]);
    await assert.rejects(reset.client.request('POST', '/deployments/?namespace=shop&descriptorId=x', { context: ctx }),
      (err: CliError) => err.exitCode === ExitCode.unavailable && /may or may not have been carried out/.test(err.message));
    assert.equal(reset.calls.length, 1, 'an ambiguous POST is not repeated blindly');

    // With a recovery check: it looks first, and repeats only when the first attempt left no trace.
    let checks = 0;
    const recovering = scripted([json(504, 'timeout'), json(202, { id: 'd3' })]);
    const res = await recovering.client.request('POST', '/deployments/?namespace=shop&descriptorId=x', { context: ctx, recover: async () => { checks++; return undefined; } });
    assert.equal(res.status, 202);
    assert.equal(checks, 1);
    const found = scripted([json(502, 'bad gateway')]);
    const recovered = await found.client.request('POST', '/x', { context: ctx, recover: async () => ({ status: 202, headers: new Headers(), body: { id: 'was-there' }, text: '' }) });
    assert.deepEqual(recovered.body, { id: 'was-there' });
    assert.equal(found.calls.length, 1);
  });

  it('signs every attempt anew with signRequest over the exact target and body', async () => {
    const { client, calls } = scripted([fetchFailed('ECONNREFUSED'), json(201, {})], { credentials: { kind: 'api-key', keyId: 'k1', secret: 's3cret' } });
    await client.request('POST', '/descriptors/?namespace=shop', { json: { appName: 'web' }, context: ctx });
    const [first, second] = calls;
    for (const call of [first!, second!]) {
      const h = call.headers;
      assert.equal(h[KEY_ID_HEADER], 'k1');
      const canonical = canonicalString('POST', '/descriptors/?namespace=shop', h[TIMESTAMP_HEADER]!, h[NONCE_HEADER]!, bodyDigest(call.body));
      assert.equal(h[SIGNATURE_HEADER], `v1=${computeSignature('s3cret', canonical)}`);
    }
    assert.notEqual(first!.headers[NONCE_HEADER], second!.headers[NONCE_HEADER], 'a signature is accepted once: each attempt has its own nonce');
  });

  it('sends a bearer token as Authorization', async () => {
    const { client, calls } = scripted([json(200, [])], { credentials: { kind: 'bearer', token: 'eyJ.x.y' } });
    await client.get('/x', ctx);
    assert.equal(calls[0]!.headers['Authorization'], 'Bearer eyJ.x.y');
  });

  it('backs off exponentially up to 5 s', () => {
    const mid = () => 0.5;
    assert.deepEqual([1, 2, 3, 4, 5, 6, 9].map((n) => backoffMs(n, mid)), [250, 500, 1000, 2000, 4000, 5000, 5000]);
  });
});
