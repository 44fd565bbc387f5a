/** A failure that ends a deployment with FAILURE and this reason (expected, not a bug). */
export class DeploymentFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeploymentFailure';
  }
}

/**
 * The work was stopped from outside — shutdown, lost ownership, or the record was taken over by
 * another replica — and must end quietly: whoever owns the app next resumes it.
 */
export class WorkInterrupted extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'WorkInterrupted';
  }
}
