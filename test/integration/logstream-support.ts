/** Helpers of the log websocket tests: a recording client and an engine stand-in writing to etcd. */
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { WebSocket } from 'ws';
import type { DeploymentRecord, DeploymentStatus, DeploymentStep } from '../../src/domain/deployment.js';
import type { Versioned } from '../../src/domain/types.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { keys } from '../../src/store/keys.js';
import { waitFor } from '../support/wait.js';

export interface StreamOptions {
  format?: 'text' | 'json';
  from?: number;
  headers?: Record<string, string>;
  /** Extra query text, e.g. "&x=1". */
  query?: string;
}

export function streamUrl(base: string, namespace: string, id: string, options: StreamOptions = {}): string {
  const q = new URLSearchParams({ namespace });
  if (options.format) q.set('format', options.format);
  if (options.from !== undefined) q.set('from', String(options.from));
  return `${base.replace(/^http/, 'ws')}/stream/deployments/${id}/logs?${q.toString()}${options.query ?? ''}`;
}

/** A websocket client that keeps every frame and how the connection ended. */
export class RecordingClient {
  readonly frames: string[] = [];
  closeCode: number | undefined;
  closeReason: string | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Set when the server refused the upgrade. */
  refusal: { status: number; body: string; headers: Record<string, string | string[] | undefined> } | undefined;
  readonly ws: WebSocket;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    this.ws.on('message', (data) => this.frames.push(data.toString('utf8')));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => {
          this.refusal = { status: res.statusCode ?? 0, body, headers: res.headers };
          reject(new Error(`upgrade refused with ${res.statusCode}: ${body}`));
        });
      });
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString('utf8');
        resolve({ code, reason: this.closeReason });
      });
    });
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<RecordingClient> {
    const client = new RecordingClient(url, headers);
    await client.opened;
    return client;
  }

  /** Frames parsed as JSON (json format). */
  json(): any[] {
    return this.frames.map((f) => JSON.parse(f));
  }

  async waitForFrames(count: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(`${count} frames (have ${this.frames.length})`, () => this.frames.length >= count, { timeoutMs, intervalMs: 10 });
  }

  async waitForClose(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms (${this.frames.length} frames)`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** Attempts an upgrade and returns the HTTP refusal (status, headers, parsed body). */
export async function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Record<string, string | string[] | undefined> }> {
  const client = new RecordingClient(url, headers);
  try {
    await client.opened;
  } catch {
    // expected
  }
  client.close();
  if (!client.refusal) throw new Error(`expected the upgrade to be refused, but it ${client.ws.readyState === WebSocket.OPEN ? 'succeeded' : 'failed otherwise'}`);
  return { status: client.refusal.status, body: client.refusal.body ? JSON.parse(client.refusal.body) : undefined, headers: client.refusal.headers };
}

/**
 * Stands in for the engine of another process: writes a deployment record and its events to
 * etcd the way the engine does (lines one key each; status changes with the record in one
 * transaction), without a queue item, so no scheduler picks it up, and holding the app's owner
 * key, as the replica working on it would.
 */
export class EngineStandIn {
  readonly store: DeploymentStore;
  private constructor(private readonly kv: EtcdStore) {
    this.store = new DeploymentStore(kv);
  }

  /** `timeoutMs`: of one etcd call (bench/logstream's writer allows a slow etcd more). */
  static create(etcdEndpoint: string, prefix: string, timeoutMs = 5000): EngineStandIn {
    return new EngineStandIn(new EtcdStore({ endpoints: [etcdEndpoint], prefix, timeoutMs }));
  }

  async close(): Promise<void> {
    await this.kv.close();
  }

  /** A new DEPLOYING record with the first line and status event, as POST /deployments writes them. */
  async createDeployment(namespace: string, appName = 'shop'): Promise<SimulatedDeployment> {
    const now = new Date().toISOString();
    const id = randomUUID();
    const record: DeploymentRecord = {
      id, created: now, lastModified: now, namespace, appName, version: '1', status: 'DEPLOYING', step: 'queued',
      descriptor: { namespace, appName, newVersion: '1', replicas: 1, podspec: { containers: [] } } as unknown as DeploymentRecord['descriptor'],
      OldVersion: '', times: { queued: now },
    };
    const key = keys.deployment(namespace, id);
    // The owner key says a replica works on the app (as the scheduler's claim does), so the
    // reconciler does not fail a DEPLOYING record that has no queue item.
    const owner = { type: 'put' as const, key: keys.owner(namespace, appName), value: JSON.stringify({ replica: 'engine-stand-in', since: now }) };
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(record) }, owner]);
    if (!res.succeeded) throw new Error('record exists');
    const d = new SimulatedDeployment(this.store, { value: record, revision: res.revision });
    await d.transition('DEPLOYING', 'queued', [`Deployment ${id} of ${appName} version 1 requested`]);
    return d;
  }
}

export class SimulatedDeployment {
  constructor(private readonly store: DeploymentStore, private current: Versioned<DeploymentRecord>) {}

  get id(): string {
    return this.current.value.id;
  }

  get namespace(): string {
    return this.current.value.namespace;
  }

  async line(message: string): Promise<number> {
    return this.store.appendLog(this.namespace, this.id, message);
  }

  /** Writes the record with `lines` and then a status event, in one transaction (as the engine's Journal does). */
  async transition(status: DeploymentStatus, step: DeploymentStep, lines: string[] = []): Promise<void> {
    const record = { ...this.current.value, status, step, lastModified: new Date().toISOString() };
    this.current = await this.store.update({
      record, expectedRevision: this.current.revision,
      events: [...lines.map((message) => ({ type: 'log' as const, message })), { type: 'status' as const, status, step }],
    });
  }
}

/** Text lines of GET /deployments/{id}/logs, without the trailing empty one. */
export function logLines(text: string): string[] {
  return text.split('\n').filter((l, i, all) => !(i === all.length - 1 && l === ''));
}

/**
 * A minimal websocket client on a raw TCP socket: the handshake by hand, then server frames
 * parsed as they come (text/binary counted and passed on, ping answered, close recorded). Tests
 * use it to connect without reading (the server's writes back up into the TCP window and then its
 * own buffer); the benchmark uses it because it costs a fraction of a full client per frame.
 */
export class RawWebSocket {
  /** Bytes of an incomplete frame, kept until the rest arrives. */
  private pending: Buffer | undefined;
  private reading = false;
  dataFrames = 0;
  close: { code: number; reason: string } | undefined;
  /** Called with the payload of every text or binary frame. */
  onData: ((payload: Buffer) => void) | undefined;
  /** Resolves when the connection is gone: with the close frame's code and reason, or undefined without one. */
  readonly closed: Promise<{ code: number; reason: string } | undefined>;

  private constructor(private readonly socket: net.Socket, rest: Buffer) {
    if (rest.length > 0) this.pending = rest;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(this.close)));
  }

  /** Opens the connection and completes the handshake; frames are read only after `read()`. */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<RawWebSocket> {
    const u = new URL(url);
    const socket = net.connect(Number(u.port), u.hostname);
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined); // a reset shows as a close without a close frame
    socket.write([
      `GET ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13',
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`), '', '',
    ].join('\r\n'));
    let head = Buffer.alloc(0);
    const rest = await new Promise<Buffer>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.pause();
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!status.startsWith('HTTP/1.1 101')) reject(new Error(`handshake refused: ${status}`));
        else resolve(head.subarray(end + 4));
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('connection closed during the handshake')));
    });
    return new RawWebSocket(socket, rest);
  }

  /** Starts (or resumes) reading frames. */
  read(): void {
    if (!this.reading) {
      this.reading = true;
      this.socket.on('data', (chunk: Buffer) => this.parse(chunk));
      if (this.pending) {
        const first = this.pending;
        this.pending = undefined;
        this.parse(first);
      }
    }
    this.socket.resume();
  }

  /** Reads until the server's close frame; its code and reason, and how many data frames came before. */
  async readUntilClose(timeoutMs = 20_000): Promise<{ code: number; reason: string; dataFrames: number }> {
    this.read();
    let timer: NodeJS.Timeout | undefined;
    const close = await Promise.race([this.closed, new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no close frame within ${timeoutMs} ms (${this.dataFrames} data frames read)`)), timeoutMs);
    })]).finally(() => clearTimeout(timer));
    if (!close) throw new Error(`connection closed without a close frame after ${this.dataFrames} data frames`);
    return { ...close, dataFrames: this.dataFrames };
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(chunk: Buffer): void {
    let b = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = undefined;
    let at = 0;
    while (b.length - at >= 2) {
      const opcode = b[at]! & 0x0f;
      let length = b[at + 1]! & 0x7f;
      let offset = at + 2;
      if (length === 126) {
        if (b.length - at < 4) break;
        length = b.readUInt16BE(at + 2);
        offset = at + 4;
      } else if (length === 127) {
        if (b.length - at < 10) break;
        length = Number(b.readBigUInt64BE(at + 2));
        offset = at + 10;
      }
      if (b.length < offset + length) break;
      const payload = b.subarray(offset, offset + length);
      at = offset + length;
      if (opcode === 0x1 || opcode === 0x2) {
        this.dataFrames++;
        this.onData?.(payload);
      } else if (opcode === 0x9) {
        this.sendFrame(0xa, payload);
      } else if (opcode === 0x8) {
        this.close = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString('utf8') };
        this.sendFrame(0x8, payload.subarray(0, 2));
        this.socket.end();
        return;
      }
    }
    if (at < b.length) this.pending = Buffer.from(b.subarray(at));
  }

  /** Client frames are masked (RFC 6455 §5.3); small control frames only. */
  private sendFrame(opcode: number, payload: Buffer): void {
    const mask = randomBytes(4);
    const masked = Buffer.from(payload);
    for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i % 4]!;
    this.socket.write(Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | masked.length]), mask, masked]));
  }
}
