/** A failure talking to Kubernetes, with what a caller needs to decide. */
export class KubeError extends Error {
  constructor(
    message: string,
    /** HTTP status, 0 when no answer was received. */
    readonly status: number,
    /** Kubernetes Status reason, e.g. AlreadyExists, Conflict, Invalid, Forbidden, NotFound. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeError';
  }

  /** Worth retrying: no answer, throttled, or a server-side failure. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.status === 404;
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeError && err.status === 409 && err.reason === 'AlreadyExists';
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeError && err.status === 409 && err.reason !== 'AlreadyExists';
}

/** 410 Gone: a watch's resourceVersion is too old; list again. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeError && err.status === 410;
}
