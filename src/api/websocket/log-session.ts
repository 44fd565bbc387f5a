import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { FINAL_STATUSES, type DeploymentStatus, type DeploymentStep } from '../../domain/deployment.js';
import type { Logger } from '../../log.js';
import type { FeedChange, FeedLease } from './deployment-feed.js';
import { currentStatusFrame, type FrameLog, type StreamFormat } from './frames.js';

/** Close codes of the log websocket (docs/websocket.md). */
export const CloseCode = {
  /** The deployment reached a final status (the reason), or was deleted ("DELETED"). */
  done: 1000,
  /** The server shuts down; the reason says where to resume. */
  goingAway: 1001,
  /** The feed broke down unexpectedly; resume with from=. */
  internalError: 1011,
  /** The client fell too far behind the live log; resume with from=. */
  tryAgainLater: 1013,
} as const;

export interface SessionSpec {
  namespace: string;
  deploymentId: string;
  requestId: string;
  format: StreamFormat;
  /** Send events after this sequence number (0: everything). */
  from: number;
  /** The record's status, used only when the deployment has no status event at all. */
  recordStatus: { status: DeploymentStatus; step: DeploymentStep; time: string };
}

export interface SessionOptions {
  /** Most bytes handed to the socket and not yet written; also the most a client may lag behind live. */
  maxBufferedBytes: number;
  log: Logger;
  /** The server decided to close (the closing handshake may take a while: the close frame queues behind data). */
  onClosing?: (code: number, reason: string, lastSeq: number) => void;
  /** Batches the sockets' sends per event-loop turn (without it, each new event is sent at once). */
  pumpQueue?: PumpQueue;
}

/**
 * Sessions with new events to send, pumped together after the current I/O callbacks: events
 * that arrive together (a busy etcd watch delivers several per read) then leave in one write per
 * socket instead of one each, so a loaded server spends fewer system calls per line just when it
 * needs to. Idle, this costs one setImmediate.
 */
export class PumpQueue {
  private readonly due = new Set<LogSession>();
  private scheduled = false;

  add(session: LogSession): void {
    this.due.add(session);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    const sessions = [...this.due];
    this.due.clear();
    for (const session of sessions) session.flush();
  }
}

/**
 * The TCP socket under a ws WebSocket, to cork it around a batch of sends. `_socket` is not
 * public API, so this is only an optimisation: without it every frame is written on its own.
 */
function underlyingSocket(ws: WebSocket): Duplex | undefined {
  const socket = (ws as unknown as { _socket?: unknown })._socket;
  return socket && typeof (socket as Duplex).cork === 'function' ? (socket as Duplex) : undefined;
}

export interface SessionEnd {
  /** The code we closed with (undefined: the client closed first, or the connection dropped). */
  sentCode?: number;
  sentReason?: string;
  /** The code of the closing handshake as ws reports it (1006: no close frame). */
  code: number;
  framesSent: number;
  bytesSent: number;
  /** Sequence number of the last event the socket was given. */
  lastSeq: number;
  durationMs: number;
}

/**
 * One websocket watching one deployment's log. It holds no copy of the log: only a cursor into
 * the feed's shared event list. It hands frames to the socket while the socket's buffer is
 * below the limit and continues when that buffer has drained, so memory per socket is bounded
 * by the limit. A client that lets the live log run more than the limit ahead of what it has
 * taken is closed with 1013 (it resumes with from=).
 */
export class LogSession {
  private cursor = 0;
  /** Index of the first event that arrived after the socket opened (the backlog is before it). */
  private liveFrom = 0;
  private lastSeq: number;
  private waitingForDrain = false;
  private closing = false;
  private finished = false;
  /** Close with this once every event before `atIndex` is sent. */
  private pendingClose: { atIndex: number; code: number; reason: string } | undefined;
  private unsubscribe: (() => void) | undefined;
  private sentCode: number | undefined;
  private sentReason: string | undefined;
  private framesSent = 0;
  private bytesSent = 0;
  private readonly startedAt = Date.now();
  private answeredPing = true;
  private resolveEnded!: (end: SessionEnd) => void;
  /** Resolves once the socket is closed and the feed released. */
  readonly ended: Promise<SessionEnd> = new Promise((resolve) => {
    this.resolveEnded = resolve;
  });

  constructor(
    private readonly ws: WebSocket,
    private readonly lease: FeedLease,
    private readonly frames: FrameLog,
    readonly spec: SessionSpec,
    private readonly options: SessionOptions,
  ) {
    this.lastSeq = spec.from;
  }

  get feed() {
    return this.lease.feed;
  }

  start(): void {
    const feed = this.feed;
    this.cursor = feed.indexAfter(this.spec.from);
    this.liveFrom = feed.events.length;
    this.ws.on('close', (code) => this.onClosed(code));
    this.ws.on('error', (err) => this.options.log.debug({ err: err.message }, 'log stream socket error'));
    this.ws.on('pong', () => {
      this.answeredPing = true;
    });
    // The stream is one-way: what a client sends (within maxPayload) is read and dropped by ws.

    const current = feed.status ?? { ...this.spec.recordStatus, seq: 0, type: 'status' as const };
    if (this.spec.format === 'json') this.send(Buffer.from(currentStatusFrame(current), 'utf8'));
    // Finished already: the backlog, then close (later lines, e.g. of an undeploy request, do not hold it open).
    if (FINAL_STATUSES.has(current.status)) this.pendingClose = { atIndex: this.liveFrom, code: CloseCode.done, reason: current.status };
    this.unsubscribe = feed.subscribe((change) => this.onFeedChange(change));
    if (feed.failed) this.onFeedChange({ type: 'failed', error: feed.failed });
    else if (feed.deleted) this.onFeedChange({ type: 'deleted' });
    this.pump();
  }

  /** Closes with `code` after what was already handed to the socket; ws cuts it after its close timeout. */
  close(code: number, reason: string): void {
    if (this.closing || this.finished) return;
    this.closing = true;
    this.sentCode = code;
    this.sentReason = reason;
    this.ws.close(code, reason);
    this.options.onClosing?.(code, reason, this.lastSeq);
  }

  /** Server shutdown: close with 1001 and where to resume. */
  goAway(): void {
    this.close(CloseCode.goingAway, `server shutting down; resume with from=${this.lastSeq}`);
  }

  terminate(): void {
    this.ws.terminate();
  }

  /** Heartbeat tick: false when the previous ping was never answered (the caller terminates). */
  ping(): boolean {
    if (!this.answeredPing) return false;
    this.answeredPing = false;
    try {
      this.ws.ping();
    } catch {
      // the socket is closing; its close event ends the session
    }
    return true;
  }

  private onFeedChange(change: FeedChange): void {
    switch (change.type) {
      case 'appended':
        if (this.waitingForDrain) this.checkLag();
        else if (this.options.pumpQueue) this.options.pumpQueue.add(this);
        else this.pump();
        return;
      case 'deleted':
        // The record is gone; what was read before is still sent.
        this.pendingClose ??= { atIndex: this.feed.events.length, code: CloseCode.done, reason: 'DELETED' };
        this.pump();
        return;
      case 'failed':
        this.close(CloseCode.internalError, `log feed failed; resume with from=${this.lastSeq}`);
        return;
      case 'stopped':
        this.goAway();
        return;
      default:
        return;
    }
  }

  /** Sends what is pending now (PumpQueue). */
  flush(): void {
    this.pump();
  }

  /** Hands frames to the socket until it is caught up, its buffer is full, or it is done; one write for all. */
  private pump(): void {
    if (this.closing || this.finished || this.waitingForDrain) return;
    const socket = underlyingSocket(this.ws);
    socket?.cork();
    try {
      this.fill();
    } finally {
      socket?.uncork();
    }
  }

  private fill(): void {
    const events = this.feed.events;
    this.frames.sync();
    const limit = this.options.maxBufferedBytes;
    while (this.cursor < events.length) {
      const index = this.cursor++;
      const event = events[index]!;
      if (event.seq > this.lastSeq) {
        this.lastSeq = event.seq;
        const frame = this.frames.frame(index, this.spec.format);
        if (frame) {
          if (this.ws.bufferedAmount + frame.length >= limit) {
            // This frame fills the buffer: continue once it (and all before it) reached the kernel.
            this.waitingForDrain = true;
            this.send(frame, (err) => this.onDrained(err));
          } else {
            this.send(frame);
          }
        }
      }
      // A final status written while we watch ends the stream, right after the lines before it.
      if (index >= this.liveFrom && event.type === 'status' && FINAL_STATUSES.has(event.status)) {
        this.close(CloseCode.done, event.status);
        return;
      }
      if (this.pendingClose && this.cursor >= this.pendingClose.atIndex) break;
      if (this.waitingForDrain) return;
    }
    if (this.pendingClose && this.cursor >= this.pendingClose.atIndex) this.close(this.pendingClose.code, this.pendingClose.reason);
  }

  private onDrained(err: Error | undefined): void {
    this.waitingForDrain = false;
    if (err) return; // the socket failed; its close event ends the session
    this.pump();
  }

  /** While blocked on a full buffer: how far has the live log run ahead of this client? */
  private checkLag(): void {
    const events = this.feed.events;
    this.frames.sync();
    const lagBytes = this.frames.bytesBetween(Math.max(this.cursor, this.liveFrom), events.length, this.spec.format);
    if (lagBytes > this.options.maxBufferedBytes) {
      this.options.log.info({ lagBytes, bufferedBytes: this.ws.bufferedAmount, lastSeq: this.lastSeq }, 'log stream client too slow; closing with 1013');
      this.close(CloseCode.tryAgainLater, `too slow; resume with from=${this.lastSeq}`);
    }
  }

  private send(frame: Buffer, callback?: (err?: Error) => void): void {
    this.framesSent++;
    this.bytesSent += frame.length;
    this.ws.send(frame, { binary: false }, callback);
  }

  private onClosed(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.unsubscribe?.();
    this.lease.release();
    this.resolveEnded({
      ...(this.sentCode !== undefined ? { sentCode: this.sentCode, sentReason: this.sentReason ?? '' } : {}),
      code,
      framesSent: this.framesSent,
      bytesSent: this.bytesSent,
      lastSeq: this.lastSeq,
      durationMs: Date.now() - this.startedAt,
    });
  }
}
