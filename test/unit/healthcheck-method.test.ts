import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { DirectHealthChecker, healthCheckMethod, MethodFallbackChecker, type HealthTarget } from '../../src/healthcheck/index.js';

/** The health check's HTTP method (issue #15): the original's POST for probes, GET where POST is not served. */
describe('health check method', () => {
  let server: Server;
  let port: number;
  const seen: Array<{ method: string; path: string; contentType: string | undefined; body: string }> = [];
  const checker = new DirectHealthChecker({ timeoutMs: 2000 });

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        seen.push({ method: req.method!, path: req.url!, contentType: req.headers['content-type'], body });
        const allowed = req.url === '/get-only' ? ['GET'] : req.url === '/post-only' ? ['POST'] : req.url === '/get-404' ? ['GET'] : ['GET', 'POST'];
        if (!allowed.includes(req.method!)) {
          res.writeHead(req.url === '/get-404' ? 404 : 405, { allow: allowed.join(', ') }).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ healthy: true }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    await checker.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const target = (path: string, method: 'GET' | 'POST'): HealthTarget => ({ namespace: 'ns', podName: `pod-${path}`, podIP: '127.0.0.1', port, path, method });

  it('chooses POST for probes (with a GET fallback), GET for simple checks, and exactly what the descriptor pins', () => {
    assert.deepEqual(healthCheckMethod('probe'), { method: 'POST', fallbackToGet: true });
    assert.deepEqual(healthCheckMethod('simple'), { method: 'GET', fallbackToGet: false });
    assert.deepEqual(healthCheckMethod('probe', 'GET'), { method: 'GET', fallbackToGet: false });
    assert.deepEqual(healthCheckMethod('simple', 'POST'), { method: 'POST', fallbackToGet: false });
  });

  it('a probe POSTs an empty body as application/json, like the original', async () => {
    seen.length = 0;
    const r = await checker.check(target('both', 'POST'), 'probe');
    assert.equal(r.healthy, true, r.reason);
    assert.deepEqual(seen, [{ method: 'POST', path: '/both', contentType: 'application/json', body: '' }]);
  });

  it('falls back to GET for a pod whose POST answers 405 (or 404), once, and checks it with GET from then on', async () => {
    for (const path of ['get-only', 'get-404']) {
      seen.length = 0;
      const fallbacks: number[] = [];
      const fallback = new MethodFallbackChecker(checker, (_t, status) => fallbacks.push(status));
      const first = await fallback.check(target(path, 'POST'), 'probe');
      const second = await fallback.check(target(path, 'POST'), 'probe');
      assert.equal(first.healthy, true, first.reason);
      assert.equal(second.healthy, true, second.reason);
      assert.deepEqual(seen.map((s) => s.method), ['POST', 'GET', 'GET'], path);
      assert.deepEqual(fallbacks, [path === 'get-404' ? 404 : 405]);
    }
  });

  it('an endpoint that takes POST only is healthy with POST; a pinned POST never falls back', async () => {
    const fallback = new MethodFallbackChecker(checker);
    assert.equal((await fallback.check(target('post-only', 'POST'), 'probe')).healthy, true);
    seen.length = 0;
    const pinned = await checker.check(target('get-only', 'POST'), 'probe');
    assert.equal(pinned.healthy, false);
    assert.equal(pinned.statusCode, 405);
    assert.deepEqual(seen.map((s) => s.method), ['POST']);
  });
});
