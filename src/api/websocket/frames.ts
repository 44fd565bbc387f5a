import type { DeploymentEvent } from '../../domain/deployment.js';
import type { DeploymentFeed, StatusEvent } from './deployment-feed.js';

export type StreamFormat = 'text' | 'json';

/** The text frame of a log line: the line of GET /deployments/{id}/logs without its newline. */
export function textFrame(event: DeploymentEvent): string | undefined {
  return event.type === 'log' ? `${event.time} ${event.message}` : undefined;
}

export function jsonFrame(event: DeploymentEvent): string {
  return event.type === 'log'
    ? JSON.stringify({ type: 'log', seq: event.seq, time: event.time, message: event.message })
    : JSON.stringify({ type: 'status', seq: event.seq, time: event.time, status: event.status, step: event.step });
}

/**
 * The first frame of the json format: where the deployment stands now. It is a snapshot, not an
 * event, so it has no `seq` (a client resuming by the highest seq it saw must not skip the
 * backlog because of it); the status event it reflects comes in its place in the stream.
 */
export function currentStatusFrame(status: Pick<StatusEvent, 'status' | 'step' | 'time'>): string {
  return JSON.stringify({ type: 'status', current: true, time: status.time, status: status.status, step: status.step });
}

/**
 * The frames of a feed's events in both formats, encoded once per event and shared by every
 * socket watching that deployment, with running byte totals so how far a socket lags behind is
 * a subtraction.
 */
export class FrameLog {
  private readonly text: Array<Buffer | undefined> = [];
  private readonly json: Buffer[] = [];
  /** Bytes of all frames before index i (length = encoded events + 1). */
  private readonly textBytesBefore: number[] = [0];
  private readonly jsonBytesBefore: number[] = [0];

  constructor(private readonly feed: DeploymentFeed) {}

  /** Encodes the events the feed appended since the last call. */
  sync(): void {
    const events = this.feed.events;
    for (let i = this.json.length; i < events.length; i++) {
      const event = events[i]!;
      const text = textFrame(event);
      const textBuffer = text === undefined ? undefined : Buffer.from(text, 'utf8');
      const jsonBuffer = Buffer.from(jsonFrame(event), 'utf8');
      this.text.push(textBuffer);
      this.json.push(jsonBuffer);
      this.textBytesBefore.push(this.textBytesBefore[i]! + (textBuffer?.length ?? 0));
      this.jsonBytesBefore.push(this.jsonBytesBefore[i]! + jsonBuffer.length);
    }
  }

  /** The frame of event `index` (undefined: nothing to send in this format, e.g. a status in text). */
  frame(index: number, format: StreamFormat): Buffer | undefined {
    return format === 'text' ? this.text[index] : this.json[index];
  }

  /** Bytes of the frames of events [from, to). */
  bytesBetween(from: number, to: number, format: StreamFormat): number {
    const before = format === 'text' ? this.textBytesBefore : this.jsonBytesBefore;
    const end = Math.min(to, before.length - 1);
    return from >= end ? 0 : before[end]! - before[from]!;
  }
}

/** One FrameLog per running feed (a WeakMap entry goes with its feed). */
export class FrameLogs {
  private readonly logs = new WeakMap<DeploymentFeed, FrameLog>();

  of(feed: DeploymentFeed): FrameLog {
    let log = this.logs.get(feed);
    if (!log) {
      log = new FrameLog(feed);
      this.logs.set(feed, log);
    }
    return log;
  }
}
