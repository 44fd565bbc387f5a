/**
 * A first-come, first-served bound on calls in flight. cutover uses it for the writes (create,
 * replace, delete) it sends one API server: 200 deployments starting at once would otherwise send
 * 600 creates together, a starved API server answers none of them within the call timeout, and
 * every retry starts the work again (measured: 6,600 Service creates cut off after 10 s in one
 * 200-app run, each leaking a ClusterIP the server later had to repair).
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
  }

  /** Calls in flight and waiting, for tests and metrics. */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /**
   * Resolves with a release function once a slot is free (in order of asking); rejects with the
   * signal's reason when it aborts first. Call the release function exactly once.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active < this.max) {
      this.active++;
      return this.releaser();
    }
    return new Promise<() => void>((resolve, reject) => {
      const entry = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          this.active++;
          resolve(this.releaser());
        },
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(entry);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.grant();
    };
  }
}
