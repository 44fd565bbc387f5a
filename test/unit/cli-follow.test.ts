import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { DeploymentEvent } from '../../src/domain/deployment.js';
import { CutoverApi } from '../../src/cli/api.js';
import { CutoverClient } from '../../src/cli/client.js';
import { CliError } from '../../src/cli/errors.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import { followDeployment } from '../../src/cli/follow.js';

/** The follower against a stand-in cutover whose websocket drops, refuses and resumes on cue. */

const T = '2026-05-04T10:15:00.000Z';
const EVENTS: DeploymentEvent[] = [
  { seq: 1, time: T, type: 'log', message: 'requested' },
  { seq: 2, time: T, type: 'status', status: 'DEPLOYING', step: 'queued' },
  ...Array.from({ length: 8 }, (_, i) => ({ seq: i + 3, time: T, type: 'log' as const, message: `line ${i + 3}` })),
  { seq: 11, time: T, type: 'log', message: 'deployment successful' },
  { seq: 12, time: T, type: 'status', status: 'DEPLOYED', step: 'deployed' },
];

type UpgradeHandler = (ws: WebSocket, from: number, attempt: number) => void;

describe('cli: following a deployment', () => {
  let server: http.Server;
  let wss: WebSocketServer;
  let base: string;
  let onUpgrade: UpgradeHandler = () => {};
  let refuseWith: number | undefined;
  let upgrades: number[] = [];
  let eventPolls: number[] = [];
  let visibleEvents = EVENTS.length;

  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      const send = (body: unknown) => res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      if (url.pathname.endsWith('/events')) {
        const after = Number(url.searchParams.get('after') ?? 0);
        eventPolls.push(after);
        // The deployment advances two events per poll, as a live one would.
        visibleEvents = Math.min(EVENTS.length, visibleEvents + 2);
        return send(EVENTS.slice(0, visibleEvents).filter((e) => e.seq > after));
      }
      if (url.pathname.endsWith('/healthcheckdata')) return send([]);
      const done = visibleEvents >= EVENTS.length;
      return send({ id: 'dep-1', namespace: 'shop', appName: 'web', version: '1', status: done ? 'DEPLOYED' : 'DEPLOYING', step: done ? 'deployed' : 'queued', times: {}, created: T, lastModified: T });
    });
    wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      const from = Number(new URL(req.url!, 'http://x').searchParams.get('from') ?? 0);
      upgrades.push(from);
      if (refuseWith !== undefined) {
        const body = JSON.stringify({ error: refuseWith === 401 ? 'unauthorized' : 'bad_gateway', message: `refused with ${refuseWith}` });
        socket.end(`HTTP/1.1 ${refuseWith} No\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => onUpgrade(ws, from, upgrades.length));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function follow(timeoutMs = 20_000) {
    const client = new CutoverClient({ baseUrl: base, retry: true, deadline: Date.now() + timeoutMs });
    const delivered: number[] = [];
    const notices: string[] = [];
    const run = followDeployment({
      api: new CutoverApi(client), client, namespace: 'shop', deploymentId: 'dep-1', timeoutLabel: `${timeoutMs / 1000}s`,
      onEvent: (e) => delivered.push(e.seq), onNotice: (n) => notices.push(n), pollIntervalMs: 50,
    });
    return { run, delivered, notices };
  }

  const sendEvents = (ws: WebSocket, from: number, to: number) => {
    ws.send(JSON.stringify({ type: 'status', current: true, time: T, status: 'DEPLOYING', step: 'queued' }));
    for (const e of EVENTS.filter((x) => x.seq >= from && x.seq <= to)) ws.send(JSON.stringify(e));
  };

  it('resumes a dropped stream with from=<last seq>, delivering every event exactly once', async () => {
    upgrades = [];
    refuseWith = undefined;
    onUpgrade = (ws, from, attempt) => {
      if (attempt === 1) {
        sendEvents(ws, from + 1, 5);
        setTimeout(() => ws.terminate(), 50); // dropped: no close frame (1006)
      } else if (attempt === 2) {
        sendEvents(ws, from, 8); // resends event `from` itself: the client must not deliver it twice
        setTimeout(() => ws.close(1001, 'server shutting down; resume with from=8'), 50);
      } else {
        sendEvents(ws, from + 1, 12);
        setTimeout(() => ws.close(1000, 'DEPLOYED'), 50);
      }
    };
    const { run, delivered, notices } = follow();
    const result = await run;
    assert.deepEqual(delivered, EVENTS.map((e) => e.seq));
    assert.deepEqual(upgrades, [0, 5, 8]);
    assert.equal(result.state.status, 'DEPLOYED');
    assert.equal(result.record?.status, 'DEPLOYED');
    assert.equal(result.polled, false);
    assert.equal(notices.length, 2);
    assert.match(notices[1]!, /closed \(1001 server shutting down; resume with from=8\); resuming after event 8/);
  });

  it('falls back to polling /events?after=SEQ when the websocket keeps failing', async () => {
    upgrades = [];
    eventPolls = [];
    visibleEvents = 0;
    refuseWith = 502;
    try {
      const { run, delivered, notices } = follow();
      const result = await run;
      assert.deepEqual(delivered, EVENTS.map((e) => e.seq), 'every event once, in order');
      assert.equal(upgrades.length, 3, 'three websocket attempts, then polling');
      assert.equal(result.polled, true);
      assert.equal(eventPolls[0], 0);
      assert.ok(eventPolls.every((after, i) => i === 0 || after >= eventPolls[i - 1]!), `polls move forward: ${eventPolls.join(',')}`);
      assert.match(notices.at(-1)!, /keeps failing, polling for events after 0 instead/);
    } finally {
      refuseWith = undefined;
      visibleEvents = EVENTS.length;
    }
  });

  it('stops at once with the auth code when the websocket is refused with 401', async () => {
    refuseWith = 401;
    try {
      await assert.rejects(follow().run, (err: CliError) => err.exitCode === ExitCode.auth && /refused with 401/.test(err.message));
    } finally {
      refuseWith = undefined;
    }
  });

  it('times out with the timeout code when the deployment does not finish in time', async () => {
    upgrades = [];
    onUpgrade = (ws, from) => sendEvents(ws, from + 1, 4); // and then nothing
    const started = Date.now();
    await assert.rejects(follow(1500).run, (err: CliError) => err.exitCode === ExitCode.timeout && /timed out after 1\.5s: deployment dep-1 is still DEPLOYING \(step queued\)/.test(err.message) && /cutover logs dep-1 -n shop -f/.test(err.hint ?? ''));
    assert.ok(Date.now() - started < 4000);
  });
});
