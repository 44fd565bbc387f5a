// Host-side half of the fake pods. The server inside the network namespace cannot reach the API server
// (127.0.0.1 there is the namespace's own loopback), so this process list-watches all pods and pushes
// the table of serving pods (IP -> name, namespace, labels, ports, env) to it over the Unix control socket.
// It pushes a full snapshot after every change (coalesced): simple, and self-healing after a restart of
// either side. List and watch are plain HTTPS: @kubernetes/client-node would more than double this
// process's memory (~120 MiB just to import it) for two GET requests.
//
// Usage: node --import tsx test/testbed/fake-pods/controller.ts \
//          --server https://127.0.0.1:16443 --ca ca.crt --cert admin.crt --key admin.key --socket <path>
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node'; // types only: erased at run time
import { ControlConnection, type FakePod } from './protocol.js';
import { toFakePod } from './pod-table.js';

const RETRY_MS = 500;
const WATCH_TIMEOUT_S = 300;

const { values } = parseArgs({
  options: {
    server: { type: 'string' }, ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    socket: { type: 'string' },
  },
});
if (!values.server || !values.ca || !values.cert || !values.key || !values.socket) {
  throw new Error('usage: controller.ts --server <url> --ca <file> --cert <file> --key <file> --socket <path>');
}
const server: string = values.server;
const socketPath: string = values.socket;
const tls: RequestOptions = { ca: readFileSync(values.ca), cert: readFileSync(values.cert), key: readFileSync(values.key) };

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

// ---- pod cache (list + watch, relist whenever the watch ends) ----
const podsByUid = new Map<string, V1Pod>();
let synced = false;
let currentWatch: IncomingMessage | undefined;
let stopping = false;

function get(path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server), { ...tls, method: 'GET', headers: { accept: 'application/json' } }, resolve);
    req.on('error', reject);
    req.end();
  });
}

async function readAll(res: IncomingMessage): Promise<string> {
  let body = '';
  res.setEncoding('utf8');
  for await (const chunk of res) body += chunk as string;
  return body;
}

async function listPods(): Promise<string> {
  const res = await get('/api/v1/pods');
  const body = await readAll(res);
  if (res.statusCode !== 200) throw new Error(`list pods: HTTP ${res.statusCode}: ${body.slice(0, 200)}`);
  const list = JSON.parse(body) as { items: V1Pod[]; metadata: { resourceVersion: string } };
  podsByUid.clear();
  for (const p of list.items) podsByUid.set(p.metadata?.uid ?? '', p);
  log(`listed ${list.items.length} pods`);
  return list.metadata.resourceVersion;
}

/** Follows the watch stream (one JSON event per line) until it ends or reports an error (e.g. 410 Gone). */
async function watchPods(resourceVersion: string): Promise<void> {
  const q = new URLSearchParams({
    watch: '1', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(WATCH_TIMEOUT_S),
  });
  const res = await get(`/api/v1/pods?${q}`);
  if (res.statusCode !== 200) throw new Error(`watch pods: HTTP ${res.statusCode}: ${(await readAll(res)).slice(0, 200)}`);
  currentWatch = res;
  res.setEncoding('utf8');
  let buf = '';
  for await (const chunk of res) {
    buf += chunk as string;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const ev = JSON.parse(line) as { type: string; object: V1Pod };
      if (ev.type === 'ERROR') {
        res.destroy();
        return;
      }
      if (ev.type === 'BOOKMARK') continue;
      const uid = ev.object.metadata?.uid ?? '';
      if (ev.type === 'DELETED') podsByUid.delete(uid);
      else podsByUid.set(uid, ev.object);
      schedulePush();
    }
  }
}

async function listWatchForever(): Promise<void> {
  while (!stopping) {
    try {
      const rv = await listPods();
      synced = true;
      schedulePush();
      await watchPods(rv);
    } catch (err) {
      if (stopping) return;
      log(`list/watch failed, retrying: ${(err as Error).message}`);
      await delay(RETRY_MS);
    }
  }
}

// ---- pushing to the server ----
let conn: ControlConnection | undefined;
let dirty = false;
let pushing = false;

async function connection(): Promise<ControlConnection> {
  if (conn && !conn.closed) return conn;
  const c = await ControlConnection.connect(socketPath);
  c.onClose(() => {
    if (stopping) return;
    log('control socket closed; will reconnect');
    conn = undefined;
    schedulePush(); // the server may have restarted with an empty table
  });
  conn = c;
  log(`connected to ${socketPath}`);
  return c;
}

function schedulePush(): void {
  dirty = true;
  if (!pushing) void pushLoop();
}

async function pushLoop(): Promise<void> {
  pushing = true;
  try {
    while (dirty && synced && !stopping) {
      try {
        const c = await connection();
        dirty = false; // changes from here on trigger another round
        const pods = [...podsByUid.values()].map(toFakePod).filter((p): p is FakePod => p !== undefined);
        const reply = await c.request({ type: 'sync', pods });
        if (reply.type !== 'ack') throw new Error(`unexpected reply ${JSON.stringify(reply)}`);
      } catch (err) {
        dirty = true;
        log(`push failed, retrying: ${(err as Error).message}`);
        await delay(RETRY_MS);
      }
    }
  } finally {
    pushing = false;
  }
}

function shutdown(signal: string): void {
  log(`${signal}: shutting down`);
  stopping = true;
  currentWatch?.destroy();
  conn?.close();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

log(`controller started (pid ${process.pid})`);
void listWatchForever();
