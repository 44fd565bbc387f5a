/**
 * Deadlines and cancellation that do not depend on garbage collection.
 *
 * `AbortSignal.timeout()` keeps its timer only weakly, and on Node 20 a timeout signal combined
 * with `AbortSignal.any()` is lost after a garbage collection (nodejs/node#57736): a deadline that
 * must fire silently never does. Everything in cutover that must end — deployment deadlines,
 * health-check timeouts, cleanup bounds, API call timeouts — uses these primitives instead: the
 * timer is an ordinary `setTimeout` (held by the event loop until it fires or is cleared) and the
 * links between signals are plain listeners, removed explicitly. test/unit/deadline.test.ts proves
 * them under forced GC, and test/unit/no-weak-timers.test.ts keeps the weak APIs out of src/.
 */

/** The reason a Deadline aborts with; `name` is 'TimeoutError' like AbortSignal.timeout()'s. */
export class DeadlineExceeded extends Error {
  constructor(readonly ms: number, message = `deadline of ${ms} ms exceeded`) {
    super(message);
    this.name = 'TimeoutError';
  }
}

export function isDeadlineExceeded(reason: unknown): reason is DeadlineExceeded {
  return reason instanceof DeadlineExceeded;
}

/**
 * A signal that aborts after `ms`, or earlier when any parent aborts. Call `clear()` when the
 * guarded work is over: it stops the timer and detaches from the parents (a forgotten Deadline
 * keeps the process alive until it fires, which makes the leak visible).
 */
export class Deadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly detach: Array<() => void> = [];

  private constructor(readonly ms: number, parents: ReadonlyArray<AbortSignal | undefined>, reason?: string) {
    for (const parent of parents) {
      if (!parent) continue;
      if (parent.aborted) {
        this.controller.abort(parent.reason);
        return;
      }
      const onAbort = () => this.abort(parent.reason);
      parent.addEventListener('abort', onAbort, { once: true });
      this.detach.push(() => parent.removeEventListener('abort', onAbort));
    }
    this.timer = setTimeout(() => this.abort(new DeadlineExceeded(ms, reason)), Math.max(0, ms));
  }

  /** Aborts after `ms` milliseconds (or when a parent aborts). */
  static after(ms: number, ...parents: Array<AbortSignal | undefined>): Deadline {
    return new Deadline(ms, parents);
  }

  /** Aborts at the wall-clock time `epochMs` (or when a parent aborts). */
  static at(epochMs: number, ...parents: Array<AbortSignal | undefined>): Deadline {
    return new Deadline(Math.max(0, epochMs - Date.now()), parents);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True when this deadline's own timer fired (not a parent's abort). */
  get expired(): boolean {
    return this.controller.signal.aborted && isDeadlineExceeded(this.controller.signal.reason);
  }

  /** Stops the timer and detaches from the parents; the signal stays as it is. */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const d of this.detach.splice(0)) d();
  }

  private abort(reason: unknown): void {
    this.clear();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }
}

/**
 * Runs `fn` with a signal that aborts after `ms` or with `parent`, and always clears the timer.
 * The common case: one bounded operation.
 */
export async function withDeadline<T>(ms: number, parent: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = Deadline.after(ms, parent);
  try {
    return await fn(deadline.signal);
  } finally {
    deadline.clear();
  }
}

/**
 * A signal that aborts when any of `parents` aborts, with that parent's reason; no timer. Call
 * `dispose()` when done so long-lived parents do not accumulate listeners.
 */
export function linkSignals(...parents: Array<AbortSignal | undefined>): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const detach: Array<() => void> = [];
  const dispose = () => {
    for (const d of detach.splice(0)) d();
  };
  for (const parent of parents) {
    if (!parent) continue;
    if (parent.aborted) {
      dispose();
      controller.abort(parent.reason);
      break;
    }
    const onAbort = () => {
      dispose();
      controller.abort(parent.reason);
    };
    parent.addEventListener('abort', onAbort, { once: true });
    detach.push(() => parent.removeEventListener('abort', onAbort));
  }
  return { signal: controller.signal, dispose };
}

/** Resolves after `ms`; rejects with the signal's reason when it aborts first. The timer is cleared either way. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
