// The fake pods. Runs inside the test bed's network namespace, where every 198.18.x.y address is local:
// one HTTP listener per container port on 0.0.0.0 answers for all pods, and picks the pod by the local
// address of the connection (= the pod IP). The pod table arrives over a Unix control socket from the
// host-side controller (controller.ts); connections to an IP/port with no live pod are destroyed
// (after waiting briefly for a table that has it: UNKNOWN_POD_GRACE_MS), so traffic to a removed pod
// fails instead of being silently answered.
//
// Usage: ip netns exec <netns> node --import tsx test/testbed/fake-pods/server.ts --socket <path>
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { answer } from './behaviour.js';
import { onJsonLines, type ControlReply, type ControlRequest, type FakePod, type FakePodState } from './protocol.js';

interface Entry {
  pod: FakePod;
  requests: number;
  sockets: Set<Socket>;
}

const { values } = parseArgs({ options: { socket: { type: 'string' } } });
if (!values.socket) throw new Error('usage: server.ts --socket <path>');
const socketPath: string = values.socket;

const startedAt = new Date().toISOString();
const pods = new Map<string, Entry>(); // by pod IP
const listeners = new Map<number, Server>(); // by port
let syncs = 0;
let lastSyncAt: string | null = null;

const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);

function entryFor(socket: Socket): Entry | undefined {
  const ip = socket.localAddress;
  const entry = ip === undefined ? undefined : pods.get(ip);
  return entry && entry.pod.ports.includes(socket.localPort ?? -1) ? entry : undefined;
}

/**
 * A connection to an IP with no pod in the table waits this long for a table that has one. kwok
 * marks a pod Ready in the same update that starts it, and the controller's table reaches this
 * server a few milliseconds after that update reaches everyone else: a health check sent at once
 * would find no pod, where a real pod (Ready only once its readiness probe passed) answers.
 */
const UNKNOWN_POD_GRACE_MS = 500;

/** Connections waiting for their pod, with the requests that came on them meanwhile. */
const held = new Map<Socket, { timer: NodeJS.Timeout; requests: Array<() => void> }>();

function adopt(entry: Entry, socket: Socket): void {
  entry.sockets.add(socket);
  socket.once('close', () => entry.sockets.delete(socket));
}

function onConnection(socket: Socket): void {
  const entry = entryFor(socket);
  if (entry) {
    adopt(entry, socket);
    return;
  }
  const timer = setTimeout(() => {
    held.delete(socket);
    socket.destroy();
  }, UNKNOWN_POD_GRACE_MS);
  held.set(socket, { timer, requests: [] });
  socket.once('close', () => {
    clearTimeout(timer);
    held.delete(socket);
  });
}

/** After a new table: held connections whose pod is there now are served. */
function releaseHeld(): void {
  for (const [socket, { timer, requests }] of held) {
    const entry = entryFor(socket);
    if (!entry) continue;
    clearTimeout(timer);
    held.delete(socket);
    adopt(entry, socket);
    for (const serve of requests) serve();
  }
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const waiting = held.get(req.socket);
  if (waiting) {
    waiting.requests.push(() => onRequest(req, res));
    return;
  }
  const entry = entryFor(req.socket);
  if (!entry || !entry.sockets.has(req.socket)) {
    // The pod went away (or its IP was reused by a new pod) while this keep-alive connection was open.
    req.socket.destroy();
    return;
  }
  entry.requests += 1;
  const a = answer(entry.pod, req.url ?? '/', entry.requests);
  req.resume(); // accept and discard any request body (POST)
  const send = () => {
    if (res.destroyed) return;
    res.writeHead(a.status, {
      'content-type': a.contentType,
      'content-length': Buffer.byteLength(a.body),
      'x-fake-pod': `${entry.pod.namespace}/${entry.pod.name}`,
    });
    res.end(a.body); // Node drops the body by itself for HEAD
  };
  if (a.delayMs > 0) {
    const timer = setTimeout(send, a.delayMs);
    res.once('close', () => clearTimeout(timer));
  } else {
    send();
  }
}

async function ensureListener(port: number): Promise<void> {
  if (listeners.has(port)) return;
  const server = createHttpServer({ keepAliveTimeout: 5_000 }, onRequest);
  server.on('connection', onConnection);
  listeners.set(port, server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '0.0.0.0', port }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: Error) => {
    listeners.delete(port);
    throw new Error(`cannot listen on port ${port}: ${err.message}`);
  });
  log(`listening on 0.0.0.0:${port}`);
}

/** Replaces the pod table; answers only after every needed port is listening. */
async function sync(next: FakePod[]): Promise<ControlReply & { type: 'ack' }> {
  const byIp = new Map(next.map((p) => [p.ip, p]));
  for (const [ip, entry] of pods) {
    const replacement = byIp.get(ip);
    if (!replacement || replacement.uid !== entry.pod.uid) {
      for (const s of entry.sockets) s.destroy();
      pods.delete(ip);
      log(`removed ${entry.pod.namespace}/${entry.pod.name} ${ip}`);
    }
  }
  for (const pod of next) {
    const entry = pods.get(pod.ip);
    if (entry) {
      // Same pod, possibly new labels/ports/env. Drop connections on ports it no longer has.
      for (const s of entry.sockets) if (!pod.ports.includes(s.localPort ?? -1)) s.destroy();
      entry.pod = pod;
    } else {
      pods.set(pod.ip, { pod, requests: 0, sockets: new Set() });
      log(`added ${pod.namespace}/${pod.name} ${pod.ip} ports ${pod.ports.join(',') || '(none)'}`);
    }
  }
  const ports = [...new Set(next.flatMap((p) => p.ports))];
  const failures: string[] = [];
  await Promise.all(ports.map((p) => ensureListener(p).catch((e: Error) => failures.push(e.message))));
  if (failures.length) log(`WARNING ${failures.join('; ')}`);
  releaseHeld();
  syncs += 1;
  lastSyncAt = new Date().toISOString();
  return { id: 0, type: 'ack', pods: pods.size, ports: [...listeners.keys()].sort((a, b) => a - b) };
}

function listPods(): FakePodState[] {
  return [...pods.values()].map((e) => ({ ...e.pod, requests: e.requests }));
}

async function handle(msg: ControlRequest): Promise<ControlReply> {
  switch (msg.type) {
    case 'sync':
      return { ...(await sync(msg.pods)), id: msg.id };
    case 'list':
      return { id: msg.id, type: 'pods', pods: listPods() };
    case 'status':
      return {
        id: msg.id,
        type: 'status',
        status: { pods: pods.size, ports: [...listeners.keys()].sort((a, b) => a - b), syncs, lastSyncAt, startedAt },
      };
    default:
      return { id: (msg as { id: number }).id, type: 'error', message: `unknown request ${JSON.stringify(msg)}` };
  }
}

const control = createNetServer((conn) => {
  // Requests on one connection are handled in order, so a sync never overtakes an earlier one.
  let queue = Promise.resolve();
  conn.on('error', () => conn.destroy());
  onJsonLines(conn, (msg) => {
    queue = queue.then(async () => {
      const reply = await handle(msg as ControlRequest).catch((err: Error) =>
        ({ id: (msg as { id: number }).id, type: 'error' as const, message: err.message }));
      if (!conn.destroyed) conn.write(JSON.stringify(reply) + '\n');
    });
  });
});

rmSync(socketPath, { force: true }); // a stale socket file from a crashed run
control.listen(socketPath, () => log(`control socket ${socketPath} (pid ${process.pid})`));

function shutdown(signal: string): void {
  log(`${signal}: shutting down`);
  control.close();
  rmSync(socketPath, { force: true });
  for (const s of listeners.values()) {
    s.closeAllConnections();
    s.close();
  }
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
