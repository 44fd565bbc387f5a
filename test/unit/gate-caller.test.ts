import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { validateDescriptor } from '../../src/domain/descriptor-schema.js';
import { HttpGateCaller } from '../../src/gates/http.js';
import { gateLabel, type GateRequest } from '../../src/gates/types.js';

const request: GateRequest = { phase: 'pre-switch', namespace: 'ns', appName: 'shop', deploymentId: 'd1', version: '2', previousVersion: '1', attempt: 1 };

/** The HTTP gate caller against a local receiver on 127.0.0.1, and the descriptor fields. */
describe('HTTP gate caller', () => {
  let server: http.Server;
  let base: string;
  const received: Array<{ path: string; body: unknown; method: string }> = [];
  const caller = new HttpGateCaller();

  before(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: body ? JSON.parse(body) : undefined, method: req.method ?? '' });
        const answer = (status: number, text: string) => res.writeHead(status, { 'content-type': 'application/json' }).end(text);
        switch (req.url) {
          case '/pass': return answer(200, '{"pass": true, "reason": "error rate 0.1%"}');
          case '/fail': return answer(200, '{"pass": false, "reason": "error rate 12%"}');
          case '/fail-no-reason': return answer(200, '{"pass": false}');
          case '/503': return answer(503, '{"pass": true}');
          case '/not-json': return answer(200, 'OK');
          case '/no-pass': return answer(200, '{"ok": true}');
          case '/huge': return answer(200, `{"pass": true, "reason": "${'x'.repeat(200_000)}"}`);
          case '/slow': return; // never answers
          default: return answer(404, '{}');
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await caller.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const call = (path: string, timeoutSeconds = 2, signal = new AbortController().signal) => caller.call({ url: `${base}${path}`, timeoutSeconds, retries: 0 }, request, signal);

  it('POSTs the deployment facts as JSON and reads the verdict and reason', async () => {
    const pass = await call('/pass');
    assert.equal(pass.outcome, 'pass');
    assert.equal(pass.reason, 'error rate 0.1%');
    assert.equal(pass.statusCode, 200);
    const last = received.at(-1)!;
    assert.equal(last.method, 'POST');
    assert.deepEqual(last.body, request);
    assert.deepEqual(await call('/fail').then((a) => [a.outcome, a.reason]), ['fail', 'error rate 12%']);
    assert.deepEqual(await call('/fail-no-reason').then((a) => [a.outcome, a.reason]), ['fail', 'failed (no reason given)']);
  });

  it('no verdict (retried by the engine): a non-2xx status, a body that is not {"pass": boolean}, no listener', async () => {
    assert.deepEqual(await call('/503').then((a) => [a.outcome, a.reason]), ['error', 'HTTP 503']);
    assert.equal((await call('/not-json')).outcome, 'error');
    assert.match((await call('/no-pass')).reason, /no boolean "pass"/);
    const closed = await caller.call({ url: 'http://127.0.0.1:9/gate', timeoutSeconds: 2, retries: 0 }, request, new AbortController().signal);
    assert.deepEqual([closed.outcome, closed.reason], ['error', 'connection refused']);
  });

  it('times out after the gate\'s timeoutSeconds, and reads at most 64 KiB of an answer', async () => {
    const t0 = Date.now();
    const slow = await call('/slow', 1);
    const took = Date.now() - t0;
    assert.deepEqual([slow.outcome, slow.reason], ['error', 'timed out after 1000 ms']);
    assert.ok(took >= 950 && took < 3000, `took ${took} ms`);
    const huge = await call('/huge');
    assert.equal(huge.outcome, 'error', 'a truncated answer is not JSON');
  });

  it('rejects with the caller\'s reason when the caller aborts (a cancel, the deadline)', async () => {
    const ac = new AbortController();
    const pending = call('/slow', 30, ac.signal);
    setTimeout(() => ac.abort(new Error('cancelled by test')), 50);
    await assert.rejects(pending, /cancelled by test/);
  });

  it('descriptor fields: http(s) URLs only, no credentials, bounded timeout and retries, defaults 10 s and 2', () => {
    const d = (gates: unknown) => validateDescriptor({ appName: 'shop', namespace: 'ns', podspec: { containers: [{ name: 'a', image: 'x' }] }, preSwitchGates: gates, postSwitchChecks: gates });
    const ok = d([{ url: 'https://gates.example.com/smoke?token=abc' }]);
    assert.ok(ok.ok);
    assert.deepEqual(ok.value.preSwitchGates, [{ url: 'https://gates.example.com/smoke?token=abc', timeoutSeconds: 10, retries: 2 }]);
    const problems = (gates: unknown) => {
      const r = d(gates);
      return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
    };
    assert.deepEqual(problems([{ url: 'ftp://x.example/gate' }])[0], 'preSwitchGates.0.url: "preSwitchGates[0].url" must be an http:// or https:// URL');
    assert.match(problems([{ url: 'https://user:pw@x.example/gate' }])[0]!, /must not contain a user name or password/);
    assert.match(problems([{ url: 'not a url' }])[0]!, /must be an http:\/\/ or https:\/\/ URL/);
    assert.match(problems([{ url: 'https://x.example', timeoutSeconds: 0 }])[0]!, /timeoutSeconds" must be greater than or equal to 1/);
    assert.match(problems([{ url: 'https://x.example', timeoutSeconds: 301 }])[0]!, /timeoutSeconds" must be less than or equal to 300/);
    assert.match(problems([{ url: 'https://x.example', retries: 11 }])[0]!, /retries" must be less than or equal to 10/);
    assert.match(problems([{ url: 'https://x.example', extra: 1 }])[0]!, /"preSwitchGates\[0\].extra" is not allowed/);
    assert.equal(problems(Array.from({ length: 11 }, () => ({ url: 'https://x.example' }))).length, 2, 'at most 10 of each');
  });

  it('names a gate by its name, else by host and path (never the query, which may hold a token)', () => {
    assert.equal(gateLabel({ url: 'https://gates.example.com/smoke?token=abc', timeoutSeconds: 1, retries: 0 }), 'gates.example.com/smoke');
    assert.equal(gateLabel({ name: 'smoke', url: 'https://gates.example.com/', timeoutSeconds: 1, retries: 0 }), 'smoke');
  });
});
