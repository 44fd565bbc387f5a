// The fake-pods control protocol: newline-delimited JSON over a Unix socket (Unix sockets work across
// network namespaces, TCP to the host's 127.0.0.1 does not). The host-side controller pushes the pod
// table with `sync`; tests and `status` ask with `list` / `status`. Every request carries an id that the
// reply echoes.
import { connect, type Socket } from 'node:net';

/** What the server needs to know about one pod (from the API server, via the controller). */
export interface FakePod {
  ip: string;
  uid: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  /** TCP container ports of all containers. */
  ports: number[];
  /** Literal env values of the first container (FAKE_HEALTH, FAKE_DELAY_MS, ...). */
  env: Record<string, string>;
}

export interface FakePodState extends FakePod {
  /** HTTP requests answered for this pod since the server learned about it. */
  requests: number;
}

export interface ServerStatus {
  pods: number;
  ports: number[];
  syncs: number;
  lastSyncAt: string | null;
  startedAt: string;
}

export type ControlRequest =
  | { id: number; type: 'sync'; pods: FakePod[] }
  | { id: number; type: 'list' }
  | { id: number; type: 'status' };

export type ControlReply =
  | { id: number; type: 'ack'; pods: number; ports: number[] }
  | { id: number; type: 'pods'; pods: FakePodState[] }
  | { id: number; type: 'status'; status: ServerStatus }
  | { id: number; type: 'error'; message: string };

type Body<T> = T extends unknown ? Omit<T, 'id'> : never;
export type ControlRequestBody = Body<ControlRequest>;

/** Splits a byte stream into JSON lines. */
export function onJsonLines(socket: Socket, handle: (msg: unknown) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        socket.destroy(new Error(`invalid JSON on control socket: ${line.slice(0, 80)}`));
        return;
      }
      handle(msg);
    }
  });
}

/** A client connection that can carry many requests (the controller keeps one open). */
export class ControlConnection {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: ControlReply) => void; reject: (e: Error) => void }>();
  private closedError: Error | undefined;

  private constructor(private readonly socket: Socket) {
    onJsonLines(socket, (msg) => {
      const reply = msg as ControlReply;
      this.pending.get(reply.id)?.resolve(reply);
      this.pending.delete(reply.id);
    });
    const fail = (err?: Error) => {
      this.closedError ??= err ?? new Error('fake-pods control socket closed');
      for (const p of this.pending.values()) p.reject(this.closedError);
      this.pending.clear();
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  static connect(path: string, timeoutMs = 2_000): Promise<ControlConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting to ${path} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new ControlConnection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  onClose(cb: () => void): void {
    this.socket.once('close', cb);
  }

  request(body: ControlRequestBody, timeoutMs = 10_000): Promise<ControlReply> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    return new Promise<ControlReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`fake-pods ${body.type} request timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (r) => { clearTimeout(timer); resolve(r); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.socket.write(JSON.stringify({ ...body, id }) + '\n');
    });
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

/** One request on a fresh connection. */
export async function controlRequest(path: string, body: ControlRequestBody, timeoutMs = 10_000): Promise<ControlReply> {
  const conn = await ControlConnection.connect(path, timeoutMs);
  try {
    return await conn.request(body, timeoutMs);
  } finally {
    conn.close();
  }
}
