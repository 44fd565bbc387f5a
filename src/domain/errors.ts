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
