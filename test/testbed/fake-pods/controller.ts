// Host-side half of the fake pods. The server inside the network namespace cannot reach the API server
// (127.0.0.1 there is the namespace's own loopback), so this process list-watches all pods and pushes
// the table of serving pods (IP -> name, namespace, labels, ports, env) to it over the Unix control socket.
// It pushes a full snapshot after every change (coalesced): simple, and self-healing after a restart of
// either side. List and watch are plain HTTPS: @kubernetes/client-node would more than double this
// process's memory (~120 MiB just to import it) for two GET requests.
//
// With a second cluster (`up --clusters 2`) it follows both API servers: one source per `--server`
// (with its own `--ca`, `--cert`, `--key` and `--pod-cidr`, in the same order), and the table it pushes
// is the union (the pod ranges are disjoint, so IPs cannot collide). It pushes only once every source
// has been listed; a source whose API server is down keeps its last known pods (as real pods keep
// running while their API server is down) until it is listed again.
//
// Usage: node --import tsx test/testbed/fake-pods/controller.ts \
//          --server https://127.0.0.1:16443 --ca ca.crt --cert admin.crt --key admin.key [--pod-cidr 198.18.0.0/16] \
//          [--server https://127.0.0.1:16444 --ca … --cert … --key … --pod-cidr 198.19.64.0/18] --socket <path>
import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { V1Pod } from '@kubernetes/client-node'; // types only: erased at run time
import { ControlConnection, type FakePod } from './protocol.js';
import { DEFAULT_POD_CIDR, toFakePod } from './pod-table.js';

const RETRY_MS = 500;
const WATCH_TIMEOUT_S = 300;

const { values } = parseArgs({
  options: {
    server: { type: 'string', multiple: true }, ca: { type: 'string', multiple: true },
    cert: { type: 'string', multiple: true }, key: { type: 'string', multiple: true },
    'pod-cidr': { type: 'string', multiple: true },
    socket: { type: 'string' },
  },
});
const servers = values.server ?? [];
const usage = 'usage: controller.ts (--server <url> --ca <file> --cert <file> --key <file> [--pod-cidr <cidr>])... --socket <path>';
if (servers.length === 0 || !values.socket || [values.ca, values.cert, values.key].some((v) => v?.length !== servers.length) ||
  (values['pod-cidr'] !== undefined && values['pod-cidr'].length !== servers.length)) {
  throw new Error(usage);
}
const socketPath: string = values.socket;

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

// ---- pod caches, one per API server (list + watch, relist whenever the watch ends) ----
interface Source {
  server: string;
  podCidr: string;
  tls: RequestOptions;
  podsByUid: Map<string, V1Pod>;
  /** Listed at least once. */
  synced: boolean;
  currentWatch: IncomingMessage | undefined;
}
const sources: Source[] = servers.map((server, i) => ({
  server,
  podCidr: values['pod-cidr']?.[i] ?? DEFAULT_POD_CIDR,
  tls: { ca: readFileSync(values.ca![i]!), cert: readFileSync(values.cert![i]!), key: readFileSync(values.key![i]!) },
  podsByUid: new Map(),
  synced: false,
  currentWatch: undefined,
}));
let stopping = false;

function get(src: Source, path: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, src.server), { ...src.tls, method: 'GET', headers: { accept: 'application/json' } }, resolve);
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

async function listPods(src: Source): Promise<string> {
  const res = await get(src, '/api/v1/pods');
  const body = await readAll(res);
  if (res.statusCode !== 200) throw new Error(`list pods: HTTP ${res.statusCode}: ${body.slice(0, 200)}`);
  const list = JSON.parse(body) as { items: V1Pod[]; metadata: { resourceVersion: string } };
  src.podsByUid.clear();
  for (const p of list.items) src.podsByUid.set(p.metadata?.uid ?? '', p);
  log(`${src.server}: listed ${list.items.length} pods`);
  return list.metadata.resourceVersion;
}

/** Follows the watch stream (one JSON event per line) until it ends or reports an error (e.g. 410 Gone). */
async function watchPods(src: Source, resourceVersion: string): Promise<void> {
  const q = new URLSearchParams({
    watch: '1', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(WATCH_TIMEOUT_S),
  });
  const res = await get(src, `/api/v1/pods?${q}`);
  if (res.statusCode !== 200) throw new Error(`watch pods: HTTP ${res.statusCode}: ${(await readAll(res)).slice(0, 200)}`);
  src.currentWatch = res;
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
      if (ev.type === 'DELETED') src.podsByUid.delete(uid);
      else src.podsByUid.set(uid, ev.object);
      schedulePush();
    }
  }
}

async function listWatchForever(src: Source): Promise<void> {
  let failures = 0;
  while (!stopping) {
    try {
      const rv = await listPods(src);
      failures = 0;
      src.synced = true;
      schedulePush();
      await watchPods(src, rv);
    } catch (err) {
      if (stopping) return;
      // While an API server is down (outage tests), say so once a while rather than twice a second.
      if (failures++ % 20 === 0) log(`${src.server}: list/watch failed, retrying: ${(err as Error).message}`);
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
    while (dirty && sources.every((src) => src.synced) && !stopping) {
      try {
        const c = await connection();
        dirty = false; // changes from here on trigger another round
        const pods = sources.flatMap((src) => [...src.podsByUid.values()].map((p) => toFakePod(p, src.podCidr)))
          .filter((p): p is FakePod => p !== undefined);
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
  for (const src of sources) src.currentWatch?.destroy();
  conn?.close();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

log(`controller started (pid ${process.pid}), following ${sources.map((src) => `${src.server} (pods in ${src.podCidr})`).join(', ')}`);
for (const src of sources) void listWatchForever(src);
