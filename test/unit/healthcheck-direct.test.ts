import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { DirectHealthChecker, healthCheckUrl } from '../../src/healthcheck/direct.js';
import type { HealthTarget } from '../../src/healthcheck/types.js';

interface TestServer {
  port: number;
  close(): Promise<void>;
}

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** An HTTP server on 127.0.0.1 with an ephemeral port; closed after each test. */
async function startHttpServer(handler: http.RequestListener): Promise<TestServer & { server: http.Server }> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const s = {
    server,
    port: (server.address() as net.AddressInfo).port,
    async close() {
      server.closeAllConnections(); // also ends requests the handler never answers
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(s);
  return s;
}

/** A raw TCP server, for answers that are not valid HTTP. */
async function startTcpServer(onConnection: (socket: net.Socket) => void): Promise<TestServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const s = {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  servers.push(s);
  return s;
}

const respond = (status: number, body = '', headers: http.OutgoingHttpHeaders = {}): http.RequestListener => (_req, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
};

const target = (port: number, path = 'health'): HealthTarget => ({ namespace: 'ns', podName: 'web-1-abc', podIP: '127.0.0.1', port, path });

const checker = new DirectHealthChecker({ timeoutMs: 2000 });
after(() => checker.close());

describe('DirectHealthChecker: probe', () => {
  const cases: Array<{ name: string; status: number; body: string; healthy: boolean; reason: string }> = [
    { name: 'healthy', status: 200, body: '{"healthy":true}', healthy: true, reason: 'healthy' },
    { name: 'healthy false', status: 200, body: '{"healthy":false}', healthy: false, reason: 'body has "healthy": false' },
    { name: 'not JSON', status: 200, body: '<html>ok</html>', healthy: false, reason: 'body is not JSON' },
    { name: 'JSON array', status: 200, body: '[true]', healthy: false, reason: 'body is a JSON array, not an object' },
    { name: 'missing field', status: 200, body: '{"ok":true}', healthy: false, reason: 'body has no "healthy" property' },
    { name: 'status ignored when the body says healthy', status: 500, body: '{"healthy":true}', healthy: true, reason: 'healthy (body says so; status 500 ignored)' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const s = await startHttpServer(respond(c.status, c.body));
      const r = await checker.check(target(s.port), 'probe');
      assert.equal(r.healthy, c.healthy);
      assert.equal(r.reason, c.reason);
      assert.equal(r.statusCode, c.status);
      assert.equal(r.body, c.body);
      assert.equal(r.podName, 'web-1-abc');
      assert.ok(r.latencyMs >= 0 && r.latencyMs < 2000);
      assert.ok(Math.abs(Date.parse(r.checkedAt) - Date.now()) < 5000, r.checkedAt);
    });
  }
});

describe('DirectHealthChecker: simple', () => {
  for (const [status, healthy] of [[200, true], [204, true], [299, true], [404, false], [500, false]] as const) {
    it(`status ${status}`, async () => {
      const s = await startHttpServer(respond(status, status === 204 ? '' : 'text'));
      const r = await checker.check(target(s.port), 'simple');
      assert.equal(r.healthy, healthy);
      assert.equal(r.statusCode, status);
      assert.equal(r.reason, healthy ? 'healthy' : `status ${status}`);
    });
  }

  it('does not follow a 301', async () => {
    let followed = false;
    const s = await startHttpServer((req, res) => {
      if (req.url === '/elsewhere') {
        followed = true;
        return respond(200, '{"healthy":true}')(req, res);
      }
      respond(301, '', { location: '/elsewhere' })(req, res);
    });
    const r = await checker.check(target(s.port), 'simple');
    assert.equal(r.healthy, false);
    assert.equal(r.statusCode, 301);
    assert.equal(r.reason, 'status 301 (redirects are not followed)');
    assert.equal(followed, false);
  });
});

describe('DirectHealthChecker: request', () => {
  it('sends GET to the path with its query, with User-Agent and Accept headers', async () => {
    let seen: http.IncomingMessage | undefined;
    const s = await startHttpServer((req, res) => {
      seen = req;
      respond(200, '{"healthy":true}')(req, res);
    });
    await checker.check(target(s.port, 'status/health?x=1'), 'probe');
    assert.ok(seen);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/status/health?x=1');
    assert.match(seen.headers['user-agent'] ?? '', /^cutover-healthcheck\//);
    assert.equal(seen.headers.accept, 'application/json');
  });

  it('uses a new connection for every check (no stale keep-alive sockets)', async () => {
    const connections = new Set<unknown>();
    const s = await startHttpServer((req, res) => {
      connections.add(req.socket);
      respond(200, '{"healthy":true}')(req, res);
    });
    for (let i = 0; i < 3; i++) {
      await checker.check(target(s.port), 'probe');
      await new Promise((resolve) => setImmediate(resolve)); // give a kept-alive socket time to become reusable
    }
    assert.equal(connections.size, 3);
  });

  it('brackets IPv6 pod IPs in the URL', () => {
    assert.equal(healthCheckUrl({ podIP: 'fd00::1', port: 8080, path: 'health' }), 'http://[fd00::1]:8080/health');
    assert.equal(healthCheckUrl({ podIP: '10.1.2.3', port: 80, path: '/a?b=1' }), 'http://10.1.2.3:80/a?b=1');
  });
});

describe('DirectHealthChecker: failures become unhealthy results', () => {
  it('times out on a server that never answers, within the timeout plus a margin', async () => {
    const s = await startHttpServer(() => {}); // accepts, never answers
    const fast = new DirectHealthChecker({ timeoutMs: 300 });
    try {
      const started = performance.now();
      const r = await fast.check(target(s.port), 'probe');
      const elapsed = performance.now() - started;
      assert.equal(r.healthy, false);
      assert.equal(r.reason, 'timed out after 300 ms');
      assert.equal(r.statusCode, undefined);
      assert.equal('statusCode' in r, false);
      assert.equal(r.body, '');
      assert.ok(elapsed >= 290 && elapsed < 1300, `took ${elapsed} ms`);
    } finally {
      await fast.close();
    }
  });

  it('times out on a body that stalls, keeping the status and what arrived', async () => {
    const s = await startHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"healthy":'); // ... and nothing more
    });
    const fast = new DirectHealthChecker({ timeoutMs: 300 });
    try {
      const started = performance.now();
      const r = await fast.check(target(s.port), 'probe');
      assert.ok(performance.now() - started < 1300);
      assert.equal(r.healthy, false);
      assert.equal(r.statusCode, 200);
      assert.equal(r.reason, 'status 200; timed out after 300 ms while reading the body');
      assert.equal(r.body, '{"healthy":');
    } finally {
      await fast.close();
    }
  });

  it('reports connection refused on a port that was free', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await checker.check(target(port), 'simple');
    assert.equal(r.healthy, false);
    assert.equal(r.reason, 'connection refused');
    assert.equal(r.statusCode, undefined);
  });

  it('reports a connection the pod closes without answering', async () => {
    const s = await startTcpServer((socket) => socket.once('data', () => socket.destroy()));
    const r = await checker.check(target(s.port), 'simple');
    assert.equal(r.healthy, false);
    assert.match(r.reason, /^connection (closed by the pod|reset)$/);
  });

  it('reports an answer that is not HTTP', async () => {
    const s = await startTcpServer((socket) => socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n')));
    const r = await checker.check(target(s.port), 'simple');
    assert.equal(r.healthy, false);
    assert.match(r.reason, /^invalid HTTP answer/);
    assert.doesNotMatch(r.reason, /[\r\n]/);
  });

  it('caps a huge body: stops reading and closes the connection', async () => {
    let written = 0;
    let serverSawClose!: Promise<unknown>;
    const s = await startHttpServer((_req, res) => {
      serverSawClose = once(res, 'close');
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(16 * 1024, 'a');
      // Endless body, written as fast as the client reads it.
      const pump = (): void => {
        while (!res.destroyed && written < 1024 ** 3) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    const small = new DirectHealthChecker({ timeoutMs: 2000, maxBodyBytes: 64 * 1024 });
    try {
      const r = await small.check(target(s.port), 'probe');
      assert.equal(r.healthy, false);
      assert.equal(r.statusCode, 200);
      assert.equal(r.reason, 'body exceeds 65536 bytes');
      assert.equal(Array.from(r.body).length, 256);
      await serverSawClose; // the client hung up instead of reading on
      assert.ok(written < 64 * 1024 ** 2, `server wrote ${written} bytes`);

      const simple = await small.check(target(s.port), 'simple');
      assert.equal(simple.healthy, true, simple.reason);
    } finally {
      await small.close();
    }
  });
});

describe('DirectHealthChecker: abort', () => {
  it('rejects with the abort reason and stops the request', async () => {
    let serverSawClose!: Promise<unknown>;
    const s = await startHttpServer((_req, res) => {
      serverSawClose = once(res, 'close');
    });
    const controller = new AbortController();
    const reason = new Error('deployment deadline');
    const started = performance.now();
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(checker.check(target(s.port), 'probe', controller.signal), (err) => err === reason);
    assert.ok(performance.now() - started < 1000);
    await serverSawClose;
  });

  it('rejects at once for an already aborted signal', async () => {
    const s = await startHttpServer(respond(200, '{"healthy":true}'));
    const reason = new Error('too late');
    await assert.rejects(checker.check(target(s.port), 'probe', AbortSignal.abort(reason)), (err) => err === reason);
  });

  it('rejects after close()', async () => {
    const c = new DirectHealthChecker({ timeoutMs: 500 });
    await c.close();
    await assert.rejects(c.check(target(1), 'simple'), /closed/);
  });

  it('refuses invalid options', () => {
    assert.throws(() => new DirectHealthChecker({ timeoutMs: 0 }), RangeError);
    assert.throws(() => new DirectHealthChecker({ timeoutMs: 100, maxBodyBytes: -1 }), RangeError);
  });
});
