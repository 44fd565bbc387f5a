import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { EtcdStore } from '../../src/store/etcd.js';
import { StoreUnavailableError, type WatchEvent, type WatchHandle } from '../../src/store/kv.js';
import { prefixEnd } from '../../src/store/etcd-http.js';
import { urgent } from '../../src/lib/urgency.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

/**
 * EtcdStore's wire protocol and policy against a fake etcd gateway (node:http): what a real etcd
 * does not do on demand — break a watch stream mid-line, answer a keepalive late, forget a lease,
 * answer "leader changed". The real etcd is in the integration tests (store-events, etcd-pause,
 * etcd-cluster, outages).
 */
type Handler = (body: Record<string, unknown>, req: IncomingMessage, res: ServerResponse) => void;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const kv = (key: string, value: string, rev: number) => ({ key: b64(key), value: b64(value), create_revision: String(rev), mod_revision: String(rev) });
const line = (result: unknown) => `${JSON.stringify({ result })}\n`;

describe('EtcdStore over a fake etcd gateway', () => {
  let server: Server;
  let endpoint: string;
  const handlers = new Map<string, Handler>();
  const stores: EtcdStore[] = [];
  const store = (options: Partial<ConstructorParameters<typeof EtcdStore>[0]> = {}) => {
    const s = new EtcdStore({ endpoints: [endpoint], prefix: '/p/', timeoutMs: 1000, ...options });
    stores.push(s);
    return s;
  };

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const handler = handlers.get(req.url ?? '');
        if (!handler) {
          res.writeHead(404).end('{"code":12,"message":"not implemented"}');
          return;
        }
        handler(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>, req, res);
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of stores) await s.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('prefixEnd is the first key after every key with the prefix', () => {
    assert.equal(prefixEnd('/p/a').toString('utf8'), '/p/b');
    // Bytes, not characters: ÿ is c3 bf in UTF-8.
    assert.deepEqual([...prefixEnd('a\u00ff')], [0x61, 0xc3, 0xc0]);
    assert.deepEqual([...prefixEnd('')], [0]);
  });

  it('reads keys relative to the prefix, with revisions as strings, and sends prefixed keys', async () => {
    let seen: Record<string, unknown> | undefined;
    handlers.set('/v3/kv/range', (body, _req, res) => {
      seen = body;
      res.end(JSON.stringify({ header: { revision: '9' }, kvs: [kv('/p/a/1', 'one', 4)] }));
    });
    const entry = await store().get('a/1');
    assert.deepEqual(entry, { key: 'a/1', value: 'one', createRevision: '4', modRevision: '4' });
    assert.equal(seen?.['key'], b64('/p/a/1'));
  });

  it('a watch broken mid-line reconnects from the revision after the last event; events arrive once, in order', async () => {
    const starts: unknown[] = [];
    handlers.set('/v3/watch', (body, _req, res) => {
      const create = body['create_request'] as { start_revision?: string; key: string; range_end: string };
      starts.push(create.start_revision);
      assert.equal(create.key, b64('/p/w/'));
      assert.equal(create.range_end, b64('/p/w0'));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line({ header: { revision: '4' }, created: true }));
      if (starts.length === 1) {
        const events = line({ header: { revision: '6' }, events: [{ kv: kv('/p/w/a', '1', 5) }, { kv: kv('/p/w/b', '2', 6) }] });
        // The first object in two writes, then half of a second one, then the connection breaks.
        res.write(events.slice(0, 40));
        setTimeout(() => {
          res.write(events.slice(40));
          res.write(line({ header: { revision: '7' }, events: [{ kv: kv('/p/w/lost', 'x', 7) }] }).slice(0, 30));
          setTimeout(() => res.socket?.destroy(), 20);
        }, 20);
      } else {
        res.write(line({ header: { revision: '7' }, events: [{ type: 'DELETE', kv: { key: b64('/p/w/a'), mod_revision: '7' } }] }));
      }
    });
    const got: WatchEvent[] = [];
    const errors: Error[] = [];
    const handle = await store().watch('w/', '3', { onEvents: (e) => got.push(...e), onError: (e) => errors.push(e) });
    try {
      await waitFor('three events', () => got.length >= 3, { timeoutMs: 5000, intervalMs: 10 });
      assert.deepEqual(starts, ['3', '7']);
      assert.deepEqual(got.map((e) => [e.type, e.key, e.value, e.modRevision]), [['put', 'w/a', '1', '5'], ['put', 'w/b', '2', '6'], ['delete', 'w/a', '', '7']]);
      assert.deepEqual(errors, []);
    } finally {
      await handle.close();
    }
  });

  it('a watch canceled for compaction ends with onError once, after watch() has handed out its handle', async () => {
    handlers.set('/v3/watch', (_body, _req, res) => {
      res.writeHead(200);
      res.write(line({ header: { revision: '9' }, created: true }) + line({ canceled: true, compact_revision: '8' }));
    });
    const errors: Array<{ err: Error; hadHandle: boolean }> = [];
    let handle: WatchHandle | undefined;
    handle = await store().watch('w/', '2', {
      onEvents: () => assert.fail('no events expected'),
      onError: (err) => errors.push({ err, hadHandle: handle !== undefined }),
    });
    await waitFor('onError', () => errors.length > 0, { timeoutMs: 2000, intervalMs: 5 });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.err.message, /compacted/);
    assert.ok(!(errors[0]!.err instanceof StoreUnavailableError));
    assert.equal(errors[0]!.hadHandle, true);
    await handle.close();
  });

  it('lease: validUntil counts from the sending of the last answered keepalive, not from its answer', async () => {
    const received: number[] = [];
    handlers.set('/v3/lease/grant', (_body, _req, res) => res.end(JSON.stringify({ ID: '77', TTL: '1' })));
    handlers.set('/v3/lease/keepalive', (body, _req, res) => {
      assert.equal(body['ID'], '77');
      received.push(performance.now());
      // A slow answer: 300 ms after the keepalive arrived.
      setTimeout(() => res.end(JSON.stringify({ result: { ID: '77', TTL: '1' } })), 300);
    });
    const granted = performance.now();
    const lease = await store().grantLease(1);
    const lost: Error[] = [];
    lease.onLost((err) => lost.push(err));
    const initial = lease.validUntil();
    assert.ok(initial >= granted + 1000 && initial <= performance.now() + 1000);
    await waitFor('an answered keepalive', () => lease.validUntil() > initial, { timeoutMs: 3000, intervalMs: 5 });
    const sentAt = received[0]!;
    assert.ok(lease.validUntil() <= sentAt + 1000, `validUntil ${lease.validUntil() - sentAt} ms after the keepalive arrived`);
    assert.ok(lease.validUntil() >= sentAt + 1000 - 50);
    assert.deepEqual(lost, []);
    handlers.set('/v3/lease/revoke', (_body, _req, res) => res.end('{}'));
    await lease.revoke();
    assert.equal(lease.validUntil(), 0);
  });

  it('lease: keepalives go out every TTL / 3 while earlier ones are unanswered; late answers extend the lease from the latest sending', async () => {
    // Regression: one keepalive at a time, each waiting for its answer, left a lease with TTL 3 s
    // almost nothing after a 3 s etcd pause, and the owner gave up a deployment (fault loop).
    const held: Array<{ at: number; answer: () => void }> = [];
    handlers.set('/v3/lease/grant', (_body, _req, res) => res.end(JSON.stringify({ ID: '79', TTL: '3' })));
    handlers.set('/v3/lease/keepalive', (_body, _req, res) => {
      const h = { at: performance.now(), answer: () => res.end(JSON.stringify({ result: { ID: '79', TTL: '3' } })) };
      held.push(h);
      // Given up by the client (its deadline): no longer in flight.
      res.on('close', () => {
        if (!res.writableEnded && held.includes(h)) held.splice(held.indexOf(h), 1);
      });
    });
    const lease = await store().grantLease(3);
    const lost: Error[] = [];
    lease.onLost((err) => lost.push(err));
    try {
      // Like etcd paused: nothing is answered until two keepalives are waiting.
      await waitFor('two keepalives in flight at once', () => held.length >= 2, { timeoutMs: 5000, intervalMs: 10 });
      const latest = held[held.length - 1]!.at;
      for (const h of held.splice(0)) h.answer();
      await waitFor('the answers counted', () => lease.validUntil() >= latest + 3000 - 50, { timeoutMs: 2000, intervalMs: 5 });
      assert.ok(lease.validUntil() <= latest + 3000);
      assert.deepEqual(lost, []);
    } finally {
      handlers.set('/v3/lease/keepalive', (_body, _req, res) => res.end(JSON.stringify({ result: { ID: '79', TTL: '3' } })));
      for (const h of held.splice(0)) h.answer();
      handlers.set('/v3/lease/revoke', (_body, _req, res) => res.end('{}'));
      await lease.revoke();
    }
  });

  it('lease: a keepalive answered without TTL (etcd forgot the lease) reports it lost at once', async () => {
    handlers.set('/v3/lease/grant', (_body, _req, res) => res.end(JSON.stringify({ ID: '78', TTL: '30' })));
    handlers.set('/v3/lease/keepalive', (_body, _req, res) => res.end(JSON.stringify({ result: { ID: '78' } })));
    const lease = await store().grantLease(1);
    const lost: Error[] = [];
    lease.onLost((err) => lost.push(err));
    // TTL 1 s: the first keepalive goes out after ~333 ms, long before the lease would expire.
    const t0 = performance.now();
    await waitFor('the lease reported lost', () => lost.length > 0, { timeoutMs: 2000, intervalMs: 5 });
    assert.ok(performance.now() - t0 < 900, 'lost on the answer, not at expiry');
    assert.match(lost[0]!.message, /not found/);
    assert.equal(lease.validUntil(), 0);
  });

  it('a call refused by one member goes to the next; "unavailable" answers are StoreUnavailableError, other errors are not', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const unavailable: string[] = [];
    const s = store({ endpoints: [dead, endpoint], onUnavailable: (op) => unavailable.push(op) });
    handlers.set('/v3/kv/range', (body, _req, res) => {
      const key = Buffer.from(String(body['key']), 'base64').toString('utf8');
      if (key === '/p/leader') res.writeHead(503).end('{"code":14,"message":"etcdserver: leader changed"}');
      else if (key === '/p/old') res.writeHead(400).end('{"code":11,"message":"etcdserver: mvcc: required revision has been compacted"}');
      else res.end(JSON.stringify({ header: { revision: '3' }, kvs: [kv(key, 'v', 2)] }));
    });
    for (let i = 0; i < 6; i++) assert.equal((await s.get('k'))?.value, 'v', 'refused by the dead member, answered by the live one');
    await assert.rejects(s.get('leader'), (err: Error) => err instanceof StoreUnavailableError && /leader changed/.test(err.message));
    await assert.rejects(s.get('old'), (err: Error) => !(err instanceof StoreUnavailableError) && /compacted/.test(err.message));
    assert.deepEqual(unavailable, ['get']);
  });

  it('a member that never answers fails the call at its deadline with StoreUnavailableError', async () => {
    handlers.set('/v3/kv/txn', () => { /* never answers */ });
    const s = store({ timeoutMs: 300 });
    const t0 = performance.now();
    await assert.rejects(s.transact([], [{ type: 'put', key: 'k', value: 'v' }]), StoreUnavailableError);
    const took = performance.now() - t0;
    assert.ok(took >= 290 && took < 1000, `failed after ${took} ms`);
  });
});

describe('EtcdEndpoint connections', () => {
  it('a call made inside urgent() does not queue behind a pool full of slow calls', async () => {
    const held: ServerResponse[] = [];
    const answer = (res: ServerResponse) => res.end(JSON.stringify({ header: { revision: '1' } }));
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const { key } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { key: string };
        if (Buffer.from(key, 'base64').toString() === '/p/slow') held.push(res);
        else answer(res);
      });
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const s = new EtcdStore({ endpoints: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`], prefix: '/p/', timeoutMs: 5000 });
    try {
      // Every connection of the main pool (16) carries a call etcd does not answer yet; more wait.
      const slow = Array.from({ length: 20 }, () => s.get('slow'));
      await waitFor('the main pool to be busy', async () => held.length === 16, { timeoutMs: 5000, intervalMs: 5 });
      assert.equal(await urgent(() => s.get('fast')), undefined);
      assert.equal(held.length, 16, 'the slow calls were still waiting');
      // An ordinary call waits its turn behind them.
      let ordinaryAnswered = false;
      const ordinary = s.get('fast').then(() => { ordinaryAnswered = true; });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(ordinaryAnswered, false);
      while (held.length > 0) answer(held.shift()!);
      await waitFor('the rest of the slow calls', async () => {
        while (held.length > 0) answer(held.shift()!);
        return ordinaryAnswered;
      }, { timeoutMs: 5000, intervalMs: 5 });
      await Promise.all([...slow, ordinary]);
    } finally {
      await s.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('leaves no connection open that never carried a request after a call hit its deadline (etcd would wait 5 s for it at shutdown)', async () => {
    const open = new Map<import('node:net').Socket, { used: boolean }>();
    const server = createServer((req) => {
      open.get(req.socket)!.used = true;
      // never answers
    });
    server.on('connection', (socket) => {
      open.set(socket, { used: false });
      socket.on('close', () => open.delete(socket));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const s = new EtcdStore({ endpoints: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`], prefix: '/p/', timeoutMs: 200 });
    try {
      for (let i = 0; i < 3; i++) await assert.rejects(s.get('k'), StoreUnavailableError);
      // Give a reconnect (undici's, for the aborted request's client) time to happen and be closed.
      await new Promise((r) => setTimeout(r, 300));
      const unused = [...open.values()].filter((c) => !c.used).length;
      assert.equal(unused, 0, `${unused} connection(s) open that never carried a request`);
    } finally {
      await s.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
