import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { once } from 'node:events';
import { DirectHealthChecker } from '../../src/healthcheck/direct.js';
import { summarise, waitUntilAllHealthy } from '../../src/healthcheck/wait.js';
import type { HealthChecker, HealthResult, HealthTarget } from '../../src/healthcheck/types.js';

interface CountingServer {
  port: number;
  requests: number;
  close(): Promise<void>;
}

const servers: CountingServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** An HTTP server on 127.0.0.1 that counts requests; `handle` gets the 1-based request number. */
async function startCountingServer(handle: (n: number, res: http.ServerResponse) => void): Promise<CountingServer> {
  const server = http.createServer((_req, res) => handle(++s.requests, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const s: CountingServer = {
    port: (server.address() as net.AddressInfo).port,
    requests: 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(s);
  return s;
}

const answer = (res: http.ServerResponse, status: number, body: string): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(body);
};

const target = (podName: string, port: number): HealthTarget => ({ namespace: 'ns', podName, podIP: '127.0.0.1', port, path: 'health' });

const checker = new DirectHealthChecker({ timeoutMs: 5000 });
after(() => checker.close());

/** A deadline for the test itself, so a broken implementation fails instead of hanging. */
const testDeadline = (ms: number): AbortSignal => AbortSignal.timeout(ms);

describe('waitUntilAllHealthy', () => {
  it('re-checks only unhealthy targets, and a slow target does not delay the others', async () => {
    const order: string[] = [];
    let flakyBecameHealthy!: () => void;
    const flakyHealthy = new Promise<void>((resolve) => (flakyBecameHealthy = resolve));

    const ready = await startCountingServer((_n, res) => answer(res, 200, '{"healthy":true}'));
    const flaky = await startCountingServer((n, res) => {
      if (n < 4) return answer(res, 503, '{"healthy":false}');
      answer(res, 200, '{"healthy":true}');
      flakyBecameHealthy();
    });
    // Answers only once the flaky pod has become healthy: if checks were serialised behind it, this would deadlock.
    const slow = await startCountingServer((_n, res) => void flakyHealthy.then(() => answer(res, 200, '{"healthy":true}')));

    await waitUntilAllHealthy({
      targets: [target('slow', slow.port), target('flaky', flaky.port), target('ready', ready.port)],
      type: 'probe',
      checker,
      intervalMs: 20,
      signal: testDeadline(4000),
      onResult: (r) => void order.push(`${r.podName}:${r.healthy ? 'healthy' : r.reason}`),
    });

    assert.deepEqual(
      order.filter((o) => o.startsWith('flaky')),
      [...Array<string>(3).fill('flaky:status 503; body has "healthy": false'), 'flaky:healthy'],
    );
    // The slow pod's only result came after all of the flaky pod's results.
    assert.equal(order.at(-1), 'slow:healthy');
    assert.ok(order.indexOf('ready:healthy') < order.indexOf('slow:healthy'));
    // Healthy targets are never checked again.
    assert.deepEqual([ready.requests, flaky.requests, slow.requests], [1, 4, 1]);
  });

  it('waits intervalMs between checks of an unhealthy target', async () => {
    const times: number[] = [];
    const s = await startCountingServer((n, res) => {
      times.push(performance.now());
      answer(res, n < 3 ? 500 : 200, '');
    });
    await waitUntilAllHealthy({ targets: [target('a', s.port)], type: 'simple', checker, intervalMs: 100, signal: testDeadline(4000), onResult: () => {} });
    assert.equal(times.length, 3);
    assert.ok(times[1]! - times[0]! >= 95 && times[2]! - times[1]! >= 95, `gaps ${times[1]! - times[0]!}, ${times[2]! - times[1]!}`);
  });

  it('keeps going when onResult throws or rejects', async () => {
    const seen: HealthResult[] = [];
    const s = await startCountingServer((n, res) => answer(res, n < 3 ? 503 : 200, ''));
    let calls = 0;
    await waitUntilAllHealthy({
      targets: [target('a', s.port)],
      type: 'simple',
      checker,
      intervalMs: 10,
      signal: testDeadline(4000),
      onResult: (r) => {
        seen.push(r);
        if (++calls % 2 === 1) throw new Error('sync failure');
        return Promise.reject(new Error('async failure'));
      },
    });
    assert.deepEqual(seen.map((r) => r.reason), ['status 503', 'status 503', 'healthy']);
  });

  it('rejects with the signal reason when aborted, and reports nothing afterwards', async () => {
    const s = await startCountingServer((_n, res) => answer(res, 503, ''));
    const controller = new AbortController();
    const reason = new Error('deployment deadline reached');
    const results: HealthResult[] = [];
    const waiting = waitUntilAllHealthy({
      targets: [target('never', s.port)],
      type: 'simple',
      checker,
      intervalMs: 20,
      signal: controller.signal,
      onResult: (r) => {
        results.push(r);
        if (results.length === 3) controller.abort(reason);
      },
    });
    await assert.rejects(waiting, (err) => err === reason);
    const requestsAtAbort = s.requests;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(results.length, 3);
    assert.equal(s.requests, requestsAtAbort);
    assert.equal(results[2]?.reason, 'status 503');
  });

  it('rejects promptly even when the checker ignores the signal', async () => {
    const stuck: HealthChecker = { check: () => new Promise(() => {}) };
    const reason = new Error('stop');
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 50);
    const started = performance.now();
    await assert.rejects(
      waitUntilAllHealthy({ targets: [target('a', 1)], type: 'probe', checker: stuck, intervalMs: 10, signal: controller.signal, onResult: () => {} }),
      (err) => err === reason,
    );
    assert.ok(performance.now() - started < 1000);
  });

  it('rejects at once for an already aborted signal, without checking', async () => {
    let checks = 0;
    const counting: HealthChecker = {
      check: async (t) => {
        checks++;
        return { podName: t.podName, healthy: true, body: '', reason: 'healthy', latencyMs: 0, checkedAt: new Date().toISOString() };
      },
    };
    const reason = new Error('already over');
    await assert.rejects(
      waitUntilAllHealthy({ targets: [target('a', 1)], type: 'probe', checker: counting, intervalMs: 10, signal: AbortSignal.abort(reason), onResult: () => {} }),
      (err) => err === reason,
    );
    assert.equal(checks, 0);
  });

  it('reports a checker that rejects for a non-abort reason and retries it', async () => {
    let attempts = 0;
    const broken: HealthChecker = {
      check: async (t) => {
        if (++attempts === 1) throw new Error('bug\nin checker');
        return { podName: t.podName, healthy: true, body: '', reason: 'healthy', latencyMs: 1, checkedAt: new Date().toISOString() };
      },
    };
    const reasons: string[] = [];
    await waitUntilAllHealthy({ targets: [target('a', 1)], type: 'probe', checker: broken, intervalMs: 5, signal: testDeadline(2000), onResult: (r) => void reasons.push(r.reason) });
    assert.deepEqual(reasons, ['check failed: bug in checker', 'healthy']);
  });

  it('resolves at once with no targets', async () => {
    await waitUntilAllHealthy({ targets: [], type: 'probe', checker, intervalMs: 10, signal: testDeadline(1000), onResult: () => assert.fail('no results expected') });
  });
});

describe('summarise', () => {
  const result = (podName: string, healthy: boolean, reason = healthy ? 'healthy' : 'status 503'): HealthResult => ({
    podName,
    healthy,
    reason,
    body: '',
    latencyMs: 1,
    checkedAt: '2026-01-01T00:00:00.000Z',
  });
  const map = (...results: HealthResult[]) => new Map(results.map((r) => [r.podName, r]));

  it('names the unhealthy pods and their reasons', () => {
    assert.equal(summarise(map(result('web-7-b', true), result('web-7-abc', false), result('web-7-c', true))), '2/3 healthy; web-7-abc: status 503');
    assert.equal(
      summarise(map(result('z', false, 'connection refused'), result('a', false, 'timed out after 2000 ms'))),
      '0/2 healthy; a: timed out after 2000 ms; z: connection refused',
    );
  });

  it('says when all are healthy', () => {
    assert.equal(summarise(map(result('a', true), result('b', true))), '2/2 healthy');
  });

  it('counts pods without results when given the number of targets', () => {
    assert.equal(summarise(map(result('a', true)), 3), '1/3 healthy; 2 not checked yet');
  });

  it('stays short with many unhealthy pods', () => {
    const many = map(...Array.from({ length: 8 }, (_, i) => result(`p${i}`, false)));
    assert.equal(summarise(many), '0/8 healthy; p0: status 503; p1: status 503; p2: status 503; p3: status 503; p4: status 503; 3 more unhealthy');
  });
});
