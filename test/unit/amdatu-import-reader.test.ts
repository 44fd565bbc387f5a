import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { EtcdV2Reader, SourceError } from '../../src/admin/amdatu/etcd-v2.js';

/**
 * The etcd v2 reader's answers to what an operator may point --from at: a clear SourceError each
 * time. (The real etcd 3.4, with and without v2, is in test/integration/amdatu-import.test.ts.)
 */
describe('EtcdV2Reader errors', () => {
  let server: http.Server;
  let hanging: net.Server;
  const sockets = new Set<net.Socket>();
  let base: URL;
  let hangingBase: URL;

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/version') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>a web server</html>');
      } else if (req.url?.startsWith('/v2/keys/deployer/missing')) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errorCode":100,"message":"Key not found","cause":"/deployer/missing","index":4}');
      } else if (req.url?.startsWith('/v2/keys/deployer/broken')) {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"errorCode":300,"message":"Raft Internal Error"}');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      }
    });
    // Accepts connections and never answers: an etcd that hangs.
    hanging = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await Promise.all([new Promise<void>((r) => server.listen(0, '127.0.0.1', r)), new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r))]);
    base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    hangingBase = new URL(`http://127.0.0.1:${(hanging.address() as AddressInfo).port}`);
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => hanging.close(r))]);
  });

  it('a server that is not etcd, one without the v2 API, and v2 errors are named as such', async () => {
    const reader = new EtcdV2Reader(base);
    try {
      await assert.rejects(reader.serverVersion(), (e: Error) => e instanceof SourceError && /did not answer like etcd/.test(e.message));
      await assert.rejects(reader.tree('/deployer/descriptors'), (e: Error) => e instanceof SourceError && /does not serve etcd's v2 API .*--enable-v2=true/.test(e.message));
      assert.equal(await reader.tree('/deployer/missing'), undefined, '"Key not found" is an empty tree, not an error');
      await assert.rejects(reader.tree('/deployer/broken'), (e: Error) => e instanceof SourceError && /answered 500 \(Raft Internal Error\)/.test(e.message));
    } finally {
      await reader.close();
    }
  });

  it('an etcd that does not answer fails after the timeout, not never', async () => {
    const reader = new EtcdV2Reader(hangingBase, { timeoutMs: 300 });
    const started = performance.now();
    try {
      await assert.rejects(reader.serverVersion(), (e: Error) => e instanceof SourceError && /no answer in time/.test(e.message));
    } finally {
      await reader.close().catch(() => {});
    }
    assert.ok(performance.now() - started < 5000);
  });
});
