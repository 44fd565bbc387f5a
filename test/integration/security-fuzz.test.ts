import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { TestEtcd } from '../support/etcd.js';
import { unreachableKubeconfig } from '../support/cutover.js';
import { CutoverProcess } from '../support/process.js';
import { request, sampleDescriptor } from '../support/http.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { signRequest } from '../../src/auth/signing.js';

/** A small seeded PRNG (mulberry32), so a failing case can be reproduced from the seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Outcome {
  status: number;
  request: string;
}

/** Sends raw bytes on a fresh connection; resolves with the first status code (0: closed without an answer). */
function rawExchange(port: number, payload: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const head = Buffer.concat(chunks).subarray(0, 64).toString('latin1');
      resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0));
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // One status line is all that is checked; do not wait for a keep-alive connection to close.
      if (/^HTTP\/1\.[01] \d{3}/.test(Buffer.concat(chunks).toString('latin1'))) {
        finish();
        socket.destroy();
      }
    });
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.setTimeout(3000, () => socket.destroy());
    // Half-close only later: a server may drop the answer to a request whose client already hung up.
    socket.write(payload);
    setTimeout(() => {
      if (!done) socket.end();
    }, 500).unref();
  });
}

describe('security: malformed requests (fuzz) against a cutover process with authentication on', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let proc: CutoverProcess;
  let token: string;

  before(async () => {
    etcd = await TestEtcd.create();
    proc = await CutoverProcess.start({
      // Limited failures would turn most unauthenticated cases into 429s; the limiter has its own test.
      ...authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000' }),
      CUTOVER_ETCD_ENDPOINTS: etcd.endpoint,
      CUTOVER_ETCD_PREFIX: '/fuzz/',
      CUTOVER_KUBECONFIG: unreachableKubeconfig(),
      CUTOVER_LOG_LEVEL: 'warn',
    });
    token = await hsToken(secrets.jwtSecret, { sub: 'fuzzer', namespaces: '*' });
  });

  after(async () => {
    await proc?.stop();
    await etcd?.destroy();
  });

  it('answers thousands of malformed requests without a 5xx and stays up', async () => {
    const port = proc.port;
    const random = prng(20261123);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    /** Mostly well-formed, so that most cases get past the HTTP parser and authentication to the handlers. */
    const usually = <T>(normal: T, odd: readonly T[], oddShare = 0.3): T => (random() < oddShare ? pick(odd) : normal);
    const created = await request(`${proc.url}/descriptors/?namespace=fuzz`, { method: 'POST', headers: bearer(token), json: sampleDescriptor() });
    assert.equal(created.status, 201, created.text);
    const id = created.body.id as string;

    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'BREW', 'get', 'PROPFIND', 'M-SEARCH'];
    const paths = [
      '/descriptors/?namespace=fuzz', `/descriptors/${id}/?namespace=fuzz`, '/deployments/?namespace=fuzz', `/deployments/?namespace=fuzz&descriptorId=${id}`,
      `/deployments/${id}/logs?namespace=fuzz`, '/audit?namespace=fuzz', '/audit?namespace=_cluster&limit=-1', '/admin/keys', '/admin/keys/ck_..%2f..',
      '/descriptors/validate', '/descriptors/../deployments?namespace=fuzz', '/descriptors/%2f%2e%2e%2fdeployments', '/descriptors/%00?namespace=fuzz',
      '/descriptors/%ff%fe?namespace=fuzz', '/deployments/%c0%ae%c0%ae/?namespace=fuzz', `/deployments/${'a'.repeat(300)}?namespace=fuzz`, '/%', '/%%32%65',
      '/descriptors?namespace=', '/descriptors?namespace=%00', '/descriptors?namespace=A_B', '/descriptors?namespace=..%2fetc', '/descriptors?namespace=fuzz&namespace=other',
      '/descriptors?namespace=%E2%80%AEevil', `/descriptors?namespace=fuzz&appname=${'x'.repeat(5000)}`, `/descriptors?${'a=1&'.repeat(3000)}namespace=fuzz`,
      '*', 'http://evil.example/descriptors?namespace=fuzz', '/\u00e9t\u00e9', '/healthz/../descriptors?namespace=fuzz', '//admin//keys//', '/metrics?x=%zz',
      `/descriptors?limit=${'9'.repeat(400)}&namespace=fuzz`, '/deployments?namespace=fuzz&limit=0x10', '/deployments?namespace=fuzz&limit=1e3',
    ];
    const bodies: Array<Buffer | string> = [
      '', '{', '}', '[]', '"str"', 'null', '1e400', `{"a":${'['.repeat(4000)}`, '{"appName":"\\uD800"}', Buffer.from([0x7b, 0xff, 0xfe, 0x22, 0x7d]),
      '{"__proto__":{"polluted":1}}', '{"constructor":{"prototype":{"x":1}}}', '\ufeff{"appName":"bom"}', JSON.stringify(sampleDescriptor()),
      JSON.stringify(sampleDescriptor({ replicas: 'many' })), JSON.stringify({ ...sampleDescriptor(), podspec: 'not an object' }), '{"a":1}{"b":2}',
      `{"pad":"${'p'.repeat(200_000)}"}`, Buffer.alloc(2048, 0), '\u0000\u0001\u0002', '{"team":"x","namespaces":"*"}', '{"team":"Bad Team","namespaces":[1,2]}',
    ];
    const contentTypes = ['application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x', 'application/vnd.api+json', '', 'application/json;;;', 'text/json', '*/*', 'application/json\u0000'];
    const auth = () => usually(`Authorization: Bearer ${token}\r\n`, [
      '', 'Authorization: Bearer \r\n', `Authorization: Bearer ${'a'.repeat(9000)}\r\n`, 'Authorization: Basic Zm9vOmJhcg==\r\n',
      `Authorization: Bearer ${token}\r\nAuthorization: Bearer ${token}\r\n`, 'Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.\r\n',
      'X-Cutover-Key-Id: ck_0000000000000000\r\nX-Cutover-Timestamp: 1\r\nX-Cutover-Nonce: aaaaaaaaaaaaaaaa\r\nX-Cutover-Signature: v1=00\r\n',
      `X-Cutover-Key-Id: ck_0000000000000000\r\nX-Cutover-Timestamp: ${Math.floor(Date.now() / 1000)}\r\nX-Cutover-Nonce: ${'n'.repeat(20)}\r\nX-Cutover-Signature: v1=${'0'.repeat(64)}\r\n`,
      'X-Cutover-Key-Id: ck_0000000000000000\r\nX-Cutover-Key-Id: ck_1111111111111111\r\n',
    ]);
    const framing = (body: Buffer): Array<{ headers: string; payload: Buffer }> => [
      { headers: `Content-Length: ${body.length}\r\n`, payload: body },
      { headers: `Content-Length: ${body.length + 10}\r\n`, payload: body },
      { headers: 'Content-Length: -1\r\n', payload: body },
      { headers: `Content-Length: ${body.length}\r\nContent-Length: 0\r\n`, payload: body },
      { headers: 'Transfer-Encoding: chunked\r\n', payload: Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]) },
      { headers: 'Transfer-Encoding: chunked\r\n', payload: Buffer.from('zz\r\ngarbage\r\n0\r\n\r\n') },
      { headers: 'Transfer-Encoding: chunked\r\n', payload: Buffer.from('ffffffffffffffff\r\nabc') },
      { headers: `Transfer-Encoding: chunked\r\nContent-Length: ${body.length}\r\n`, payload: body },
      { headers: `Content-Encoding: gzip\r\nContent-Length: ${body.length}\r\n`, payload: body },
      { headers: 'Content-Encoding: gzip\r\n', payload: gzipSync(body) },
      { headers: `Content-Encoding: br\r\nContent-Length: ${body.length}\r\n`, payload: body },
    ];

    const cases: Buffer[] = [];
    for (let i = 0; i < 2200; i++) {
      const method = usually(pick(['GET', 'POST', 'PUT', 'DELETE']), methods);
      const path = pick(paths);
      const rawBody = pick(bodies);
      const body = Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody, 'utf8');
      const frames = framing(body);
      const frame = usually(frames[0]!, frames.slice(1));
      const type = usually('application/json', contentTypes);
      const extra = usually('', [`X-Junk: ${'j'.repeat(20_000)}\r\n`, 'Bad Header\r\n', 'X-Folded: a\r\n  b\r\n', 'X-Request-Id: \u00ff\u00fe\r\n', 'Origin: null\r\n', 'Expect: 100-continue\r\n', 'Host: a\r\nHost: b\r\n']);
      const version = usually('HTTP/1.1', ['HTTP/1.0', 'HTTP/2.0', 'HTTP/9', ''], 0.1);
      const head = `${method} ${path} ${version}\r\nHost: 127.0.0.1\r\n${auth()}${type ? `Content-Type: ${type}\r\n` : ''}${extra}${frame.headers}Connection: close\r\n\r\n`;
      cases.push(Buffer.concat([Buffer.from(head, 'latin1'), frame.payload]));
    }
    // Plain garbage and truncated request lines.
    for (let i = 0; i < 300; i++) {
      const len = 1 + Math.floor(random() * 600);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) bytes[j] = Math.floor(random() * 256);
      cases.push(random() < 0.5 ? bytes : Buffer.concat([Buffer.from('GET /descriptors?namespace=fuzz HTTP/1.1\r\n'), bytes]));
    }
    cases.push(Buffer.from(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`));
    cases.push(Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\n${'X-Many: 1\r\n'.repeat(3000)}\r\n`));
    // Pipelined requests on one connection.
    cases.push(Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /descriptors?namespace=fuzz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{GET / HTTP/1.1\r\n\r\n`));

    const outcomes: Outcome[] = [];
    const concurrency = 24;
    for (let i = 0; i < cases.length; i += concurrency) {
      const batch = cases.slice(i, i + concurrency);
      const statuses = await Promise.all(batch.map((c) => rawExchange(port, c)));
      statuses.forEach((status, j) => outcomes.push({ status, request: batch[j]!.subarray(0, 300).toString('latin1') }));
      assert.ok(proc.running, `cutover exited during the fuzz (after case ${i}): ${proc.output.slice(-5).join('\n')}`);
    }

    // Signed requests with real signatures over odd bodies and targets, over HTTP with keep-alive.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const keyRes = await request(`${proc.url}/admin/keys`, { method: 'POST', headers: bearer(token), json: { team: 'fuzz', namespaces: ['fuzz'] } });
    assert.equal(keyRes.status, 201, keyRes.text);
    const key = { id: keyRes.body.key.id as string, secret: keyRes.body.secret as string };
    const httpCases = Array.from({ length: 400 }, () => {
      const method = pick(['GET', 'POST', 'PUT', 'DELETE']);
      const target = pick(paths.filter((p) => p.startsWith('/')));
      const rawBody = pick(bodies);
      const body = Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody, 'utf8');
      const headers: Record<string, string> = { ...signRequest({ keyId: key.id, secret: key.secret, method, pathWithQuery: target, body }), 'Content-Type': pick(contentTypes.filter((t) => !t.includes('\u0000'))) || 'application/json' };
      if (random() < 0.2) headers['X-Cutover-Timestamp'] = String(Number(headers['X-Cutover-Timestamp']) - 100);
      return { method, target, body, headers };
    });
    for (let i = 0; i < httpCases.length; i += 8) {
      const statuses = await Promise.all(httpCases.slice(i, i + 8).map((c) => new Promise<number>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: c.method, path: c.target, headers: { ...c.headers, 'Content-Length': String(c.body.length) }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.setTimeout(5000, () => req.destroy());
        req.end(c.body);
      })));
      statuses.forEach((status, j) => outcomes.push({ status, request: `${httpCases[i + j]!.method} ${httpCases[i + j]!.target}` }));
    }
    agent.destroy();

    // 501 is the router's answer to a method it does not know (PROPFIND…), not a failure of cutover's.
    const serverErrors = outcomes.filter((o) => o.status >= 500 && o.status !== 501);
    assert.deepEqual(serverErrors.slice(0, 5), [], `${serverErrors.length} requests got a 5xx`);
    assert.ok(outcomes.length >= 2900, `${outcomes.length} requests sent`);
    const counts = new Map<number, number>();
    for (const o of outcomes) counts.set(o.status, (counts.get(o.status) ?? 0) + 1);
    const answered = outcomes.filter((o) => o.status > 0);
    assert.ok(answered.length > outcomes.length / 2, `most requests are answered (${answered.length}/${outcomes.length}; by status ${JSON.stringify([...counts])})`);
    assert.ok(outcomes.some((o) => o.status === 401), 'unauthenticated requests were refused');
    assert.ok(outcomes.some((o) => o.status === 400), 'malformed requests were refused');
    assert.ok(outcomes.some((o) => o.status >= 200 && o.status < 300), 'some got through to the handlers');

    assert.ok(proc.running, 'cutover is still running');
    const health = await request(`${proc.url}/healthz`);
    assert.equal(health.status, 200);
    const list = await request(`${proc.url}/descriptors/?namespace=fuzz`, { headers: bearer(token) });
    assert.equal(list.status, 200, 'and still serves');
    const internal = proc.logLines().filter((l) => l['msg'] === 'unhandled error' || l['msg'] === 'unhandled promise rejection');
    assert.deepEqual(internal.map((l) => (l['err'] as { message?: string } | undefined)?.message ?? l['msg']), [], 'no internal errors logged');
    const polluted = await request(`${proc.url}/descriptors/?namespace=fuzz`, { headers: bearer(token) });
    assert.equal(polluted.text.includes('polluted'), false);
  });
});
