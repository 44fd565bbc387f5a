import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { ApiServerProxyHealthChecker, type ProxyGet, type ProxyGetRequest } from '../../src/healthcheck/proxy.js';
import type { HealthTarget } from '../../src/healthcheck/types.js';

const target: HealthTarget = { namespace: 'shop', podName: 'web-7-abc', podIP: '10.0.0.7', port: 8081, path: 'status/health?x=1' };

/** A fake proxyGet that records its requests and answers with `answer`. */
function fakeProxyGet(answer: (req: ProxyGetRequest) => Promise<{ statusCode: number; body: string }>): ProxyGet & { calls: ProxyGetRequest[] } {
  const calls: ProxyGetRequest[] = [];
  const fn = (req: ProxyGetRequest) => {
    calls.push(req);
    return answer(req);
  };
  return Object.assign(fn, { calls });
}

describe('ApiServerProxyHealthChecker', () => {
  it('asks the proxy for the pod, port and path (no leading slash) and evaluates a probe answer', async () => {
    const proxyGet = fakeProxyGet(async () => ({ statusCode: 200, body: '{"healthy":true}' }));
    const r = await new ApiServerProxyHealthChecker(proxyGet, { timeoutMs: 1500 }).check(target, 'probe');
    assert.equal(proxyGet.calls.length, 1);
    const call = proxyGet.calls[0]!;
    assert.deepEqual({ ...call, signal: undefined }, {
      namespace: 'shop',
      podName: 'web-7-abc',
      port: 8081,
      path: 'status/health?x=1',
      timeoutMs: 1500,
      signal: undefined,
    });
    assert.ok(call.signal instanceof AbortSignal);
    assert.deepEqual({ ...r, latencyMs: 0, checkedAt: '' }, {
      podName: 'web-7-abc',
      healthy: true,
      statusCode: 200,
      body: '{"healthy":true}',
      reason: 'healthy',
      latencyMs: 0,
      checkedAt: '',
    });
  });

  it('normalises a path given with a leading slash', async () => {
    const proxyGet = fakeProxyGet(async () => ({ statusCode: 200, body: '' }));
    await new ApiServerProxyHealthChecker(proxyGet).check({ ...target, path: '/health' }, 'simple');
    assert.equal(proxyGet.calls[0]?.path, 'health');
  });

  it('evaluates like the direct checker', async () => {
    const cases: Array<[ 'probe' | 'simple', number, string, boolean, string]> = [
      ['probe', 200, '{"healthy":false}', false, 'body has "healthy": false'],
      ['probe', 200, 'not json', false, 'body is not JSON'],
      ['simple', 204, '', true, 'healthy'],
      ['simple', 301, '', false, 'status 301 (redirects are not followed)'],
      ['simple', 503, 'unavailable', false, 'status 503'],
    ];
    for (const [type, statusCode, body, healthy, reason] of cases) {
      const checker = new ApiServerProxyHealthChecker(async () => ({ statusCode, body }));
      const r = await checker.check(target, type);
      assert.deepEqual([r.healthy, r.reason, r.statusCode], [healthy, reason, statusCode], `${type} ${statusCode}`);
    }
  });

  it('turns a rejected proxyGet into an unhealthy one-line result', async () => {
    const checker = new ApiServerProxyHealthChecker(async () => {
      throw new Error('pods "web-7-abc" not found\nHTTP-Code: 404');
    });
    const r = await checker.check(target, 'probe');
    assert.equal(r.healthy, false);
    assert.equal(r.reason, 'proxy: pods "web-7-abc" not found HTTP-Code: 404');
    assert.equal('statusCode' in r, false);
    assert.equal(r.body, '');
  });

  it('times out a proxyGet that never settles, and aborts its signal', async () => {
    const proxyGet = fakeProxyGet(() => new Promise(() => {}));
    const started = performance.now();
    const r = await new ApiServerProxyHealthChecker(proxyGet, { timeoutMs: 200 }).check(target, 'probe');
    const elapsed = performance.now() - started;
    assert.equal(r.healthy, false);
    assert.equal(r.reason, 'proxy: timed out after 200 ms');
    assert.ok(elapsed >= 190 && elapsed < 1200, `took ${elapsed} ms`);
    assert.equal(proxyGet.calls[0]?.signal?.aborted, true);
  });

  it('reports its own timeout even when proxyGet rejects with an abort error', async () => {
    const checker = new ApiServerProxyHealthChecker(
      (req) => new Promise((_, reject) => req.signal?.addEventListener('abort', () => reject(new Error('The user aborted a request.')))),
      { timeoutMs: 100 },
    );
    const r = await checker.check(target, 'simple');
    assert.equal(r.reason, 'proxy: timed out after 100 ms');
  });

  it('rejects with the caller abort reason and aborts proxyGet', async () => {
    const proxyGet = fakeProxyGet(() => new Promise(() => {}));
    const controller = new AbortController();
    const reason = new Error('deadline');
    setTimeout(() => controller.abort(reason), 50);
    await assert.rejects(new ApiServerProxyHealthChecker(proxyGet).check(target, 'probe', controller.signal), (err) => err === reason);
    assert.equal(proxyGet.calls[0]?.signal?.aborted, true);
    await assert.rejects(new ApiServerProxyHealthChecker(proxyGet).check(target, 'probe', AbortSignal.abort(reason)), (err) => err === reason);
    assert.equal(proxyGet.calls.length, 1); // an already aborted check never calls the proxy
  });

  it('does not trust an oversized probe body', async () => {
    const checker = new ApiServerProxyHealthChecker(async () => ({ statusCode: 200, body: '{"healthy":true,"pad":"' + 'x'.repeat(100) + '"}' }), {
      maxBodyBytes: 50,
    });
    const r = await checker.check(target, 'probe');
    assert.equal(r.healthy, false);
    assert.equal(r.reason, 'body exceeds 50 bytes');
  });
});
