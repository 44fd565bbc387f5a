import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as parts from '../../src/lib/undici.js';

/**
 * src/lib/undici.ts loads undici's dispatchers from paths inside the package (to leave fetch,
 * WebSocket and the rest unloaded). After an upgrade of undici these must still be the classes
 * the package exports, and request() must still send what undici's own request() sends.
 */
describe('undici, loaded in parts', () => {
  it('gives the classes undici itself exports', async () => {
    const undici = await import('undici');
    assert.equal(parts.Agent, undici.Agent);
    assert.equal(parts.Pool, undici.Pool);
    assert.equal(parts.Client, undici.Client);
    assert.equal(typeof new parts.Agent().request, 'function', 'dispatchers have the request API');
  });

  it('request() sends method, path with query, headers and body, and gives status and body', async () => {
    const seen: Array<{ method?: string; url?: string; header?: string; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, header: req.headers['x-test'] as string, body });
        res.writeHead(201, { 'content-type': 'text/plain' }).end('made');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const agent = new parts.Agent();
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/a/b?x=1&y=2`;
      const res = await parts.request(url, { dispatcher: agent, method: 'POST', headers: { 'x-test': 'yes' }, body: '{"k":1}' });
      assert.equal(res.statusCode, 201);
      assert.equal(await res.body.text(), 'made');
      const plain = await parts.request(new URL(url), { dispatcher: agent });
      await plain.body.dump();
      assert.deepEqual(seen, [
        { method: 'POST', url: '/a/b?x=1&y=2', header: 'yes', body: '{"k":1}' },
        { method: 'GET', url: '/a/b?x=1&y=2', header: undefined, body: '' },
      ]);
    } finally {
      await agent.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
