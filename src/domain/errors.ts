/** Errors with a meaning the API maps to HTTP statuses; anything else is an internal error. */

export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

/** The record changed since the caller read it (etcd revision moved on). */
export class RevisionConflictError extends Error {
  constructor(message: string, readonly currentRevision?: string) {
    super(message);
    this.name = 'RevisionConflictError';
  }
}

/** A request that is well-formed but not allowed in the current state (HTTP 409). */
export class StateConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StateConflictError';
  }
}

/**
 * A write was fenced off: the writer no longer owns the app (its lease expired or ownership moved
 * to another replica). The work stops quietly; the new owner resumes it.
 */
export class FenceLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FenceLostError';
  }
}

/** A request that names something that does not exist as a setting (an unknown cluster or environment): HTTP 400. */
export class InvalidRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRequestError';
  }
}
