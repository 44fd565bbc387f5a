import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, unreachableKubeconfig, type TestCutover } from '../support/cutover.js';
import { CutoverProcess } from '../support/process.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { authEnv, authSecrets, hsToken } from '../support/security.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachLogStream, type LogStreamEvent } from '../../src/api/websocket/log-stream.js';
import { ApiError } from '../../src/api/errors.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { createSilentLogger } from '../../src/log.js';
import { EngineStandIn, RawWebSocket, RecordingClient, logLines, refusedUpgrade, streamUrl, type SimulatedDeployment } from './logstream-support.js';

/**
 * The log websocket against a real etcd. Deployments are written by an engine stand-in through
 * DeploymentStore (as another replica's engine would), so no cluster is needed; the test bed
 * variant with real deployments is logstream-deployments.test.ts.
 */
describe('log websocket (real etcd)', () => {
  const ns = 'logs';
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let engine: EngineStandIn;
  const clients: RecordingClient[] = [];

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, { CUTOVER_ALLOWED_ORIGINS: 'https://ui.example.com' });
    engine = EngineStandIn.create(etcd.endpoint, cutover.config.etcdPrefix);
  });

  after(async () => {
    for (const c of clients) c.close();
    await cutover?.stop();
    await engine?.close();
    await etcd?.destroy();
  });

  const open = async (d: SimulatedDeployment, options: Parameters<typeof streamUrl>[3] = {}, base = cutover.url) => {
    const client = await RecordingClient.open(streamUrl(base, d.namespace, d.id, options), options.headers);
    clients.push(client);
    return client;
  };
  const restLog = async (id: string, base = cutover.url) => {
    const res = await request(`${base}/deployments/${id}/logs?namespace=${ns}`);
    assert.equal(res.status, 200, res.text);
    return logLines(res.text);
  };

  it('sends the backlog, then each new line once and in order, then the final lines, and closes 1000 with the final status', async () => {
    const d = await engine.createDeployment(ns);
    await d.line('backlog 1');
    await d.line('backlog 2');
    const client = await open(d);
    await client.waitForFrames(3);
    for (let i = 1; i <= 20; i++) await d.line(`live ${i}`);
    await d.transition('DEPLOYING', 'health-checking', ['All 2 pods are ready']);
    await d.transition('DEPLOYED', 'deployed', ['Traffic switched', 'deployment successful']);
    await d.line('written after the final status'); // must neither arrive nor hold the socket open

    const { code, reason } = await client.waitForClose();
    assert.equal(code, 1000);
    assert.equal(reason, 'DEPLOYED');
    const rest = await restLog(d.id);
    assert.equal(rest.at(-1)?.endsWith('written after the final status'), true);
    assert.deepEqual(client.frames, rest.slice(0, -1), 'every line up to the final status, exactly once, in order, formatted as GET /logs');
    assert.match(client.frames[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z Deployment .* requested$/);
    await waitFor('the feed to stop after its last socket left', () => cutover.logStream.feedCount() === 0);
  });

  it('gives a socket opened after the end the whole backlog and a close', async () => {
    const d = await engine.createDeployment(ns);
    await d.line('pulling');
    await d.transition('FAILURE', 'failed', ['Deployment failed: pods crash', 'Removed Deployment shop-1']);
    await d.line('Undeploy requested, but nothing to do');
    const client = await open(d);
    const { code, reason } = await client.waitForClose();
    assert.equal(code, 1000);
    assert.equal(reason, 'FAILURE');
    assert.deepEqual(client.frames, await restLog(d.id));
  });

  it('keeps a draining (UNDEPLOYING) record open until it is UNDEPLOYED', async () => {
    const d = await engine.createDeployment(ns);
    await d.transition('DEPLOYED', 'deployed', ['deployment successful']);
    await d.transition('UNDEPLOYING', 'draining', ['Replaced by deployment x']);
    const client = await open(d, { format: 'json' });
    await d.line('Draining for 1 s');
    await waitFor('the drain line', () => client.json().some((f) => f.message === 'Draining for 1 s'));
    assert.equal(client.closeCode, undefined, 'still open while draining');
    await d.transition('UNDEPLOYING', 'removing');
    await d.transition('UNDEPLOYED', 'undeployed', ['Removed Deployment shop-1']);
    const { code, reason } = await client.waitForClose();
    assert.deepEqual([code, reason], [1000, 'UNDEPLOYED']);
    const frames = client.json();
    assert.deepEqual(frames[0], { type: 'status', current: true, time: frames[0].time, status: 'UNDEPLOYING', step: 'draining' });
    assert.deepEqual(frames.filter((f) => f.type === 'status' && !f.current).map((f) => `${f.status}/${f.step}`),
      ['DEPLOYING/queued', 'DEPLOYED/deployed', 'UNDEPLOYING/draining', 'UNDEPLOYING/removing', 'UNDEPLOYED/undeployed']);
  });

  it('json format with from: a reconnecting client gets exactly what it missed', async () => {
    const d = await engine.createDeployment(ns);
    for (let i = 1; i <= 5; i++) await d.line(`before ${i}`);
    const first = await open(d, { format: 'json' });
    await waitFor('the backlog', () => first.json().some((f) => f.message === 'before 5'));
    for (let i = 1; i <= 5; i++) await d.line(`while connected ${i}`);
    await waitFor('the live lines', () => first.json().some((f) => f.message === 'while connected 5'));
    first.close();
    await first.closed;
    // Written while no one listens, including a step change.
    for (let i = 1; i <= 5; i++) await d.line(`while away ${i}`);
    await d.transition('DEPLOYING', 'switching-traffic');

    const seen = first.json().filter((f) => !f.current);
    const resumeFrom = Math.max(...seen.map((f) => f.seq));
    const second = await open(d, { format: 'json', from: resumeFrom });
    await waitFor('the missed lines', () => second.json().some((f) => f.message === 'while away 5'));
    await d.transition('DEPLOYED', 'deployed', ['deployment successful']);
    assert.deepEqual(await second.waitForClose(), { code: 1000, reason: 'DEPLOYED' });

    const resumed = second.json();
    assert.deepEqual(resumed[0], { type: 'status', current: true, time: resumed[0].time, status: 'DEPLOYING', step: 'switching-traffic' }, 'first: the status at connect');
    const all = [...seen, ...resumed.filter((f) => !f.current)];
    const events = (await request(`${cutover.url}/deployments/${d.id}/events?namespace=${ns}`)).body as Array<{ seq: number; type: string; message?: string; status?: string; step?: string }>;
    assert.deepEqual(all.map((f) => f.seq), events.map((e) => e.seq), 'every event exactly once across both connections');
    assert.deepEqual(all.map((f) => f.message ?? `${f.status}/${f.step}`), events.map((e) => e.message ?? `${e.status}/${e.step}`));
    assert.equal(resumed.find((f) => !f.current).seq, resumeFrom + 1, 'resumes right after from');
  });

  it('text format with from resumes too', async () => {
    const d = await engine.createDeployment(ns); // seq 1 line, seq 2 status
    await d.line('three');
    await d.line('four');
    await d.transition('FAILURE', 'failed', ['six']);
    const client = await open(d, { from: 3 });
    await client.waitForClose();
    assert.deepEqual(client.frames.map((f) => f.replace(/^\S+ /, '')), ['four', 'six']);
  });

  it('shares one etcd watch per deployment among all its sockets and stops it after the last one', async () => {
    const a = await engine.createDeployment(ns);
    const b = await engine.createDeployment(ns);
    const baseline = cutover.logStream.feedCount();
    const onA = await Promise.all(Array.from({ length: 20 }, () => open(a)));
    const onB = await Promise.all(Array.from({ length: 5 }, () => open(b, { format: 'json' })));
    assert.equal(cutover.logStream.feedCount(), baseline + 2);
    assert.equal(cutover.logStream.watcherCount(), 25);
    await a.line('to all twenty');
    for (const c of onA) await waitFor('the line on every socket', () => c.frames.at(-1)?.endsWith('to all twenty'));
    for (const c of onA) c.close();
    await waitFor('the feed of a to stop', () => cutover.logStream.feedCount() === baseline + 1);
    for (const c of onB) c.close();
    await waitFor('every feed to stop', () => cutover.logStream.feedCount() === baseline && cutover.logStream.watcherCount() === 0);
  });

  it('refuses before upgrading: 404 unknown deployment or path, 400 bad namespace or parameters, with JSON bodies and a request id', async () => {
    const d = await engine.createDeployment(ns);
    const base = cutover.url.replace(/^http/, 'ws');
    const unknown = await refusedUpgrade(`${base}/stream/deployments/${randomUUID()}/logs?namespace=${ns}`, { 'X-Request-Id': 'trace-404' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, 'not_found');
    assert.match(unknown.body.message, /not found in namespace logs/);
    assert.equal(unknown.headers['x-request-id'], 'trace-404');

    for (const [url, status, pattern] of [
      [`${base}/stream/deployments/${d.id}/logs`, 400, /"namespace" is required/],
      [`${base}/stream/deployments/${d.id}/logs?namespace=Not_Valid`, 400, /namespace/],
      [`${base}/stream/deployments/${d.id}/logs?namespace=${ns}&namespace=${ns}`, 400, /once/],
      [`${base}/stream/deployments/${d.id}/logs?namespace=${ns}&format=xml`, 400, /format/],
      [`${base}/stream/deployments/${d.id}/logs?namespace=${ns}&from=-1`, 400, /from/],
      [`${base}/stream/deployments/${d.id}/other?namespace=${ns}`, 404, /no route/],
      [`${base}/deployments/${d.id}/logs?namespace=${ns}`, 404, /no route/],
      [`${base}/stream/deployments/not%20an%20id/logs?namespace=${ns}`, 404, /not found/],
    ] as const) {
      const res = await refusedUpgrade(url);
      assert.equal(res.status, status, url);
      assert.match(res.body.message, pattern, url);
      assert.ok(res.headers['x-request-id'], 'every answer carries a request id');
    }

    // Doubled and trailing slashes work as in the REST API; the 101 carries the request id.
    const sloppy = new RecordingClient(`${base}//stream//deployments/${d.id}/logs/?namespace=${ns}`, { 'X-Request-Id': 'trace-ok' });
    clients.push(sloppy);
    let upgradeHeaders: Record<string, unknown> = {};
    sloppy.ws.once('upgrade', (res) => {
      upgradeHeaders = res.headers;
    });
    await sloppy.opened;
    await sloppy.waitForFrames(1);
    assert.equal(upgradeHeaders['x-request-id'], 'trace-ok');
    assert.ok(cutover.records.some((r) => r['req_id'] === 'trace-ok' && r['status'] === 101 && r['msg'] === 'request'), 'the upgrade is logged with its request id');
    sloppy.close();
  });

  it('non-websocket upgrades (curl --http2) still reach the REST API', async () => {
    const { default: net } = await import('node:net');
    const url = new URL(cutover.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(url.port), url.hostname, () => s.write(`GET /deployments?namespace=${ns} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`));
      let text = '';
      s.on('data', (chunk) => {
        text += chunk.toString('utf8');
      });
      s.on('close', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 200 OK/);
    assert.match(answer, /"namespace":"logs"/);
  });

  it('applies the origin rule: configured and same origin allowed, others refused with 403; CORS headers follow the same rule', async () => {
    const d = await engine.createDeployment(ns);
    const url = streamUrl(cutover.url, ns, d.id);
    const evil = await refusedUpgrade(url, { Origin: 'https://evil.example.com' });
    assert.equal(evil.status, 403);
    assert.equal(evil.body.error, 'forbidden_origin');
    assert.equal((await refusedUpgrade(url, { Origin: 'null' })).status, 403);
    for (const origin of ['https://ui.example.com', cutover.url]) {
      const ok = await open(d, { headers: { Origin: origin } });
      await ok.waitForFrames(1);
      ok.close();
    }

    const api = `${cutover.url}/deployments/${d.id}?namespace=${ns}`;
    const allowed = await request(api, { headers: { Origin: 'https://ui.example.com' } });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://ui.example.com');
    assert.match(allowed.headers.get('vary') ?? '', /Origin/);
    for (const h of ['Location', 'ETag', 'X-Request-Id']) assert.match(allowed.headers.get('access-control-expose-headers') ?? '', new RegExp(h));
    const refused = await request(api, { headers: { Origin: 'https://evil.example.com' } });
    assert.equal(refused.status, 200, 'served, but without CORS headers the browser withholds it');
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const plain = await request(api);
    assert.equal(plain.headers.get('access-control-allow-origin'), null);

    const preflight = await request(`${cutover.url}/descriptors/?namespace=${ns}`, {
      method: 'OPTIONS', headers: { Origin: 'https://ui.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://ui.example.com');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /content-type/i);
    const badPreflight = await request(`${cutover.url}/descriptors/?namespace=${ns}`, {
      method: 'OPTIONS', headers: { Origin: 'https://evil.example.com', 'Access-Control-Request-Method': 'DELETE' },
    });
    assert.equal(badPreflight.status, 403);
    assert.equal(badPreflight.body.error, 'forbidden_origin');
  });

  it('keeps an open socket through an etcd restart without losing a line', { timeout: 60_000 }, async () => {
    const d = await engine.createDeployment(ns);
    const client = await open(d);
    await d.line('before the restart');
    await waitFor('the first line', () => client.frames.at(-1)?.endsWith('before the restart'));
    await etcd.stop();
    await etcd.start();
    await waitFor('etcd to take writes again', async () => {
      await d.line('after the restart');
      return true;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    await d.transition('DEPLOYED', 'deployed', ['deployment successful']);
    assert.deepEqual(await client.waitForClose(30_000), { code: 1000, reason: 'DEPLOYED' });
    assert.deepEqual(client.frames, await restLog(d.id));
  });

  it('refuses with the status and headers of an authorize hook before reading anything', async () => {
    const d = await engine.createDeployment(ns);
    const server = http.createServer((_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const kv = new EtcdStore({ endpoints: [etcd.endpoint], prefix: cutover.config.etcdPrefix, timeoutMs: 2000 });
    const seen: string[] = [];
    const stream = attachLogStream(server, {
      sources: [{ deployments: new DeploymentStore(kv), kv }], log: createSilentLogger(), allowedOrigins: [], heartbeatMs: 30_000, maxBufferedBytes: 1 << 20,
      authorize: async (req, namespace) => {
        seen.push(namespace);
        if (req.headers.authorization !== 'Bearer ok') throw new ApiError(401, 'unauthorized', 'a bearer token is required', undefined, { 'WWW-Authenticate': 'Bearer' });
      },
    });
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const refused = await refusedUpgrade(streamUrl(base, ns, d.id));
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error, 'unauthorized');
      assert.equal(refused.headers['www-authenticate'], 'Bearer');
      assert.equal(stream.feedCount(), 0, 'nothing was read for a refused request');
      const allowed = await RecordingClient.open(streamUrl(base, ns, d.id), { Authorization: 'Bearer ok' });
      clients.push(allowed);
      await allowed.waitForFrames(1);
      assert.deepEqual(seen, [ns, ns]);
    } finally {
      await stream.close();
      await new Promise((resolve) => server.close(resolve));
      await kv.close();
    }
  });

  it('answers 503 before upgrading while etcd is unreachable', { timeout: 60_000 }, async () => {
    const d = await engine.createDeployment(ns);
    await etcd.stop();
    try {
      const res = await refusedUpgrade(streamUrl(cutover.url, ns, d.id));
      assert.equal(res.status, 503);
      assert.equal(res.body.error, 'store_unavailable');
      assert.equal(res.headers['retry-after'], '2');
    } finally {
      await etcd.start();
    }
    await waitFor('the stream to work again', async () => {
      const client = new RecordingClient(streamUrl(cutover.url, ns, d.id));
      try {
        await client.opened;
        await client.waitForFrames(1, 2000);
        return true;
      } finally {
        client.close();
      }
    }, { timeoutMs: 30_000, intervalMs: 200 });
  });
});

describe('log websocket: slow clients, heartbeats, shutdown, authentication, several processes', () => {
  let etcd: TestEtcd;
  const cleanups: Array<() => Promise<unknown> | void> = [];

  before(async () => {
    etcd = await TestEtcd.create();
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await etcd?.destroy();
  });

  async function cutoverWith(env: Record<string, string> = {}): Promise<{ cutover: TestCutover; engine: EngineStandIn }> {
    const cutover = await startTestCutover(etcd.endpoint, env);
    const engine = EngineStandIn.create(etcd.endpoint, cutover.config.etcdPrefix);
    cleanups.push(() => cutover.stop(), () => engine.close());
    return { cutover, engine };
  }

  it('cuts off a client that stops reading with 1013 while another client on the deployment receives everything', { timeout: 120_000 }, async () => {
    const { cutover, engine } = await cutoverWith({ CUTOVER_WS_MAX_BUFFERED_BYTES: String(64 * 1024) });
    const events: LogStreamEvent[] = [];
    cleanups.push(cutover.logStream.subscribe((e) => events.push(e)));
    const d = await engine.createDeployment('slow');
    const normal = await RecordingClient.open(streamUrl(cutover.url, d.namespace, d.id));
    cleanups.push(() => normal.close());
    // Handshake, then no reading at all.
    const stalled = await RawWebSocket.connect(streamUrl(cutover.url, d.namespace, d.id), { 'X-Request-Id': 'stalled-client' });
    cleanups.push(() => stalled.destroy());
    await waitFor('both sockets', () => cutover.logStream.watcherCount() === 2);

    // Lines of 32 KiB until the stalled socket's kernel buffers (several MiB on loopback) and then
    // our 64 KiB are full.
    const bigLine = (i: number) => `line ${i} ${'x'.repeat(32 * 1024)}`;
    let written = 0;
    const cutOff = () => events.find((e): e is Extract<LogStreamEvent, { type: 'watcher-closing' }> => e.type === 'watcher-closing' && e.requestId === 'stalled-client');
    while (!cutOff()) {
      assert.ok(written < 600, 'the stalled client was never cut off');
      await Promise.all(Array.from({ length: 10 }, () => d.line(bigLine(++written))));
    }
    assert.equal(cutOff()!.code, 1013);
    assert.match(cutOff()!.reason, /^too slow; resume with from=\d+$/);
    assert.equal(cutover.logStream.watcherCount(), 2, 'the cut-off socket lingers only until its close frame is read or the close times out');

    // The stalled client, reading at last, finds the 1013 close right after what was buffered for it…
    const { code, reason, dataFrames } = await stalled.readUntilClose();
    assert.equal(code, 1013);
    const from = Number(/from=(\d+)/.exec(reason)?.[1]);
    // Seq 1 is the "requested" line, seq 2 the first status, so seq s > 2 is big line s - 2.
    assert.equal(dataFrames, from - 1, 'it received exactly the lines up to from');
    // …and resumes from there.
    const resumed = await RecordingClient.open(streamUrl(cutover.url, d.namespace, d.id, { from }));
    cleanups.push(() => resumed.close());

    for (let i = 0; i < 5; i++) await d.line(bigLine(++written));
    await d.transition('DEPLOYED', 'deployed', ['deployment successful']);
    for (const client of [normal, resumed]) assert.deepEqual(await client.waitForClose(30_000), { code: 1000, reason: 'DEPLOYED' });

    const expected = [`Deployment ${d.id} of shop version 1 requested`, ...Array.from({ length: written }, (_, i) => bigLine(i + 1)), 'deployment successful'];
    const messages = (frames: string[]) => frames.map((f) => f.slice(f.indexOf(' ') + 1));
    assert.equal(normal.frames.length, expected.length, 'the normal client got every line');
    assert.ok(messages(normal.frames).every((m, i) => m === expected[i]), 'the normal client got every line exactly once, in order');
    assert.ok(messages(resumed.frames).every((m, i) => m === expected[from - 1 + i]), 'the resumed client continues right after from');
    assert.equal(dataFrames + resumed.frames.length, expected.length, 'nothing lost or duplicated across the cut-off');
    await waitFor('no watcher left', () => cutover.logStream.watcherCount() === 0, { timeoutMs: 15_000 });
  });

  it('closes every socket with 1001 on shutdown, saying where to resume', async () => {
    const { cutover, engine } = await cutoverWith();
    const d = await engine.createDeployment('shutdown');
    await d.line('one');
    const sockets = await Promise.all(Array.from({ length: 3 }, () => RecordingClient.open(streamUrl(cutover.url, d.namespace, d.id, { format: 'json' }))));
    cleanups.push(() => sockets.forEach((s) => s.close()));
    for (const s of sockets) await waitFor('the backlog', () => s.json().some((f) => f.message === 'one'));
    await cutover.stop();
    for (const s of sockets) {
      const { code, reason } = await s.waitForClose();
      assert.equal(code, 1001);
      assert.equal(reason, 'server shutting down; resume with from=3');
    }
    assert.equal(cutover.logStream.feedCount(), 0);
  });

  it('drops a connection that stops answering pings, and only that one', { timeout: 30_000 }, async () => {
    const { cutover, engine } = await cutoverWith({ CUTOVER_WS_HEARTBEAT_SECONDS: '1' });
    const d = await engine.createDeployment('heartbeat');
    const healthy = await RecordingClient.open(streamUrl(cutover.url, d.namespace, d.id));
    const mute = new WebSocket(streamUrl(cutover.url, d.namespace, d.id), { autoPong: false });
    cleanups.push(() => healthy.close(), () => mute.terminate());
    const muteClosed = new Promise<number>((resolve) => mute.once('close', (code) => resolve(code)));
    await waitFor('both sockets', () => cutover.logStream.watcherCount() === 2);
    const started = Date.now();
    assert.equal(await muteClosed, 1006, 'cut without a closing handshake');
    assert.ok(Date.now() - started < 5000, 'within about two heartbeat intervals');
    await waitFor('one watcher left', () => cutover.logStream.watcherCount() === 1);
    await d.line('still here');
    await waitFor('the healthy client to keep receiving', () => healthy.frames.at(-1)?.endsWith('still here'));
    assert.equal(healthy.closeCode, undefined);
  });

  it('runs the ping timer only while a socket is open, and again for the next one', { timeout: 30_000 }, async () => {
    const { cutover, engine } = await cutoverWith({ CUTOVER_WS_HEARTBEAT_SECONDS: '1' });
    const d = await engine.createDeployment('idle-heartbeat');
    assert.equal(cutover.logStream.heartbeatRunning(), false, 'no timer before the first socket');
    const first = await RecordingClient.open(streamUrl(cutover.url, d.namespace, d.id));
    cleanups.push(() => first.close());
    await first.waitForFrames(1);
    assert.equal(cutover.logStream.heartbeatRunning(), true);
    first.close();
    await waitFor('no watcher left', () => cutover.logStream.watcherCount() === 0);
    assert.equal(cutover.logStream.heartbeatRunning(), false, 'the timer stops with the last socket');
    // A second socket starts it again: a client that stops answering pings is still cut off.
    const mute = new WebSocket(streamUrl(cutover.url, d.namespace, d.id), { autoPong: false });
    cleanups.push(() => mute.terminate());
    const muteClosed = new Promise<number>((resolve) => mute.once('close', (code) => resolve(code)));
    await waitFor('the mute socket', () => cutover.logStream.watcherCount() === 1);
    assert.equal(cutover.logStream.heartbeatRunning(), true);
    assert.equal(await muteClosed, 1006, 'cut without a closing handshake');
    await waitFor('the timer to stop again', () => !cutover.logStream.heartbeatRunning());
  });

  it('with authentication on, the upgrade needs a caller allowed in the namespace (401, 403, then 101)', async () => {
    const secrets = authSecrets();
    const { cutover, engine } = await cutoverWith(authEnv(secrets));
    const d = await engine.createDeployment('secured');
    const url = streamUrl(cutover.url, d.namespace, d.id);
    const anonymous = await refusedUpgrade(url);
    assert.equal(anonymous.status, 401);
    assert.ok(anonymous.headers['www-authenticate'], 'with a challenge');
    const outsider = await refusedUpgrade(url, { Authorization: `Bearer ${await hsToken(secrets.jwtSecret, { namespaces: ['other'] })}` });
    assert.equal(outsider.status, 403);
    const member = await RecordingClient.open(url, { Authorization: `Bearer ${await hsToken(secrets.jwtSecret, { namespaces: ['secured'] })}` });
    cleanups.push(() => member.close());
    await member.waitForFrames(1);
    assert.equal(cutover.logStream.feedCount(), 1, 'refused requests read nothing');
  });

  it('a watcher on one cutover process sees lines written through another (they meet in etcd)', { timeout: 60_000 }, async () => {
    const { cutover: inProcess, engine } = await cutoverWith();
    const other = await CutoverProcess.start({
      CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: inProcess.config.etcdPrefix, CUTOVER_KUBECONFIG: unreachableKubeconfig(),
    });
    cleanups.push(() => other.stop());
    const d = await engine.createDeployment('replicas');
    const onOther = await RecordingClient.open(streamUrl(other.url, d.namespace, d.id, { format: 'json' }));
    const onThis = await RecordingClient.open(streamUrl(inProcess.url, d.namespace, d.id, { format: 'json' }));
    cleanups.push(() => onOther.close(), () => onThis.close());
    for (let i = 1; i <= 10; i++) await d.line(`line ${i}`);
    await d.transition('DEPLOYED', 'deployed', ['deployment successful']);
    for (const c of [onOther, onThis]) assert.deepEqual(await c.waitForClose(), { code: 1000, reason: 'DEPLOYED' });
    const events = (await request(`${other.url}/deployments/${d.id}/events?namespace=${d.namespace}`)).body as Array<{ seq: number }>;
    for (const c of [onOther, onThis]) assert.deepEqual(c.json().filter((f) => !f.current).map((f) => f.seq), events.map((e) => e.seq));
  });
});
