/**
 * The lines of a live log, kept in sequence order across reconnects: the websocket numbers every
 * event (log lines and status changes share one sequence, docs/websocket.md), so a client that
 * reconnects with `from=<highest seq seen>` gets exactly what it missed; anything at or below that
 * (a frame repeated by a server in a race) is dropped here. Pure, so it is unit-tested.
 */
export interface LogLine {
  seq: number;
  time: string;
  message: string;
}

export class LogBuffer {
  readonly lines: LogLine[] = [];
  /** Highest sequence number taken, log or status: where a reconnect resumes. */
  lastSeq = 0;
  /** Events that arrived with a gap before them (should never happen; shown to the user if it does). */
  gaps = 0;

  /** Takes one numbered event; returns false when it was a repeat and was dropped. */
  accept(seq: number, line?: Omit<LogLine, 'seq'>): boolean {
    if (!Number.isInteger(seq) || seq <= this.lastSeq) return false;
    if (seq !== this.lastSeq + 1) this.gaps++;
    this.lastSeq = seq;
    if (line) this.lines.push({ seq, ...line });
    return true;
  }
}

/** The close of a log stream: final (do not reconnect) or resumable. */
export function isFinalClose(code: number, reason: string): boolean {
  return code === 1000 && /^(DEPLOYED|FAILURE|UNDEPLOYED|DELETED)$/.test(reason);
}

/** Reconnect delay: 0.5 s, 1 s, 2 s, … at most 10 s. */
export function backoffMs(attempt: number): number {
  return Math.min(10_000, 500 * 2 ** Math.max(0, attempt));
}
