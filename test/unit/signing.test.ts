import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bodyDigest, canonicalString, computeSignature, signRequest } from '../../src/auth/signing.js';

/** The worked example of docs/security.md; the docs and this test must show the same numbers. */
const VECTOR = {
  keyId: 'ck_0123456789abcdef',
  secret: 'cks_k5sW7o0bQ3eX9Jm2Vt8rYc4Ln6Pz1Hd0Ga3Fu5Ei7Bw',
  method: 'POST',
  target: '/descriptors/?namespace=shop',
  timestamp: 1767225600,
  nonce: 'Zm9yLXRoZS1kb2NzLW9ubHk',
  body: '{"appName":"web","newVersion":"#","replicas":2,"podspec":{"containers":[{"name":"web","image":"example/web:1"}]}}',
  bodySha256: '65d0e98074883f5bab4bf64e08b1c269469ee7073a363d90df29fe3dd798adc4',
  signature: '6050566513b67af7edfa434fa383882bb421db132ae33b1fa6dbbb5b602f8fd9',
};

describe('signed requests: canonical form', () => {
  it('hashes the body and builds the canonical string of the worked example', () => {
    assert.equal(bodyDigest(VECTOR.body), VECTOR.bodySha256);
    assert.equal(bodyDigest(Buffer.from(VECTOR.body, 'utf8')), VECTOR.bodySha256, 'a string is hashed as its UTF-8 bytes');
    assert.equal(bodyDigest(undefined), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'no body = SHA-256 of nothing');
    assert.equal(
      canonicalString('post', VECTOR.target, VECTOR.timestamp, VECTOR.nonce, VECTOR.bodySha256),
      `CUTOVER-HMAC-SHA256-V1\nPOST\n/descriptors/?namespace=shop\n1767225600\nZm9yLXRoZS1kb2NzLW9ubHk\n${VECTOR.bodySha256}`,
    );
  });

  it('signs the worked example with the documented signature', () => {
    const canonical = canonicalString(VECTOR.method, VECTOR.target, VECTOR.timestamp, VECTOR.nonce, VECTOR.bodySha256);
    assert.equal(computeSignature(VECTOR.secret, canonical), VECTOR.signature);
    assert.deepEqual(signRequest({
      keyId: VECTOR.keyId, secret: VECTOR.secret, method: VECTOR.method, pathWithQuery: VECTOR.target, body: VECTOR.body, timestamp: VECTOR.timestamp, nonce: VECTOR.nonce,
    }), {
      'X-Cutover-Key-Id': VECTOR.keyId,
      'X-Cutover-Timestamp': '1767225600',
      'X-Cutover-Nonce': VECTOR.nonce,
      'X-Cutover-Signature': `v1=${VECTOR.signature}`,
    });
  });

  it('changes the signature when any signed part changes', () => {
    const base = { keyId: VECTOR.keyId, secret: VECTOR.secret, method: 'POST', pathWithQuery: VECTOR.target, body: VECTOR.body, timestamp: VECTOR.timestamp, nonce: VECTOR.nonce };
    const sig = (o: Partial<typeof base>) => signRequest({ ...base, ...o })['X-Cutover-Signature'];
    const original = sig({});
    assert.equal(original, `v1=${VECTOR.signature}`);
    for (const change of [{ method: 'PUT' }, { pathWithQuery: '/descriptors/?namespace=shop2' }, { body: `${VECTOR.body} ` }, { timestamp: VECTOR.timestamp + 1 }, { nonce: `${VECTOR.nonce}x` }, { secret: `${VECTOR.secret}x` }]) {
      assert.notEqual(sig(change), original, JSON.stringify(change));
    }
    assert.notEqual(sig({ pathWithQuery: '/descriptors?namespace=shop' }), original, 'the target is signed exactly as sent, not normalised');
  });

  it('gives every request a fresh nonce unless one is passed', () => {
    const input = { keyId: VECTOR.keyId, secret: VECTOR.secret, method: 'GET', pathWithQuery: '/deployments/?namespace=shop', timestamp: VECTOR.timestamp };
    const a = signRequest(input);
    const b = signRequest(input);
    assert.match(a['X-Cutover-Nonce']!, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(a['X-Cutover-Nonce'], b['X-Cutover-Nonce']);
    assert.notEqual(a['X-Cutover-Signature'], b['X-Cutover-Signature'], 'the same request twice in one second still has two signatures');
  });

  it('is the example docs/security.md shows', () => {
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    for (const value of [VECTOR.keyId, VECTOR.secret, VECTOR.target, String(VECTOR.timestamp), VECTOR.nonce, VECTOR.bodySha256, VECTOR.signature, VECTOR.body]) {
      assert.ok(doc.includes(value), `docs/security.md shows ${value}`);
    }
  });
});
