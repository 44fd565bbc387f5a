// Polling with a deadline. Every wait in the test bed goes through here so that a timeout always names
// what was awaited, the last reason it was not yet true, and the log file to look at.
import { setTimeout as delay } from 'node:timers/promises';

export interface WaitOptions {
  timeoutMs: number;
  /** Poll interval; short by default because the conditions are cheap local calls. */
  intervalMs?: number;
  /** Log file that explains a failure, named in the error. */
  logFile?: string;
  /** Checked between polls: lets a wait fail fast when e.g. the process it waits for has died. */
  abortIf?: () => string | undefined;
}

/** Result of one check: `true` when done, otherwise a short reason (shown if the wait times out). */
export type Check<T> = () => Promise<{ done: true; value: T } | { done: false; reason: string }>;

export class WaitTimeoutError extends Error {}

export async function waitFor<T>(what: string, check: Check<T>, opts: WaitOptions): Promise<T> {
  const started = Date.now();
  const interval = opts.intervalMs ?? 100;
  let reason = 'not checked yet';
  for (;;) {
    try {
      const r = await check();
      if (r.done) return r.value;
      reason = r.reason;
    } catch (err) {
      reason = err instanceof Error ? err.message.split('\n')[0] ?? String(err) : String(err);
    }
    const aborted = opts.abortIf?.();
    if (aborted) throw new Error(`gave up waiting for ${what}: ${aborted}${logHint(opts.logFile)}`);
    if (Date.now() - started >= opts.timeoutMs) {
      throw new WaitTimeoutError(
        `timed out after ${opts.timeoutMs} ms waiting for ${what} (last: ${reason})${logHint(opts.logFile)}`,
      );
    }
    await delay(interval);
  }
}

/** Convenience for checks that only say yes/no. */
export async function waitUntil(what: string, check: () => Promise<string | true>, opts: WaitOptions): Promise<void> {
  await waitFor(what, async () => {
    const r = await check();
    return r === true ? { done: true as const, value: undefined } : { done: false as const, reason: r };
  }, opts);
}

function logHint(logFile: string | undefined): string {
  return logFile ? `; see ${logFile}` : '';
}
