/**
 * The CLI's exit codes: one meaning each, so a pipeline can react without parsing output
 * (NAIS deploy's scheme, adapted to cutover). Documented in README.md, docs/cli.md and `--help`.
 */
export const ExitCode = {
  success: 0,
  /** The deployment (or undeploy) ended FAILURE, or its record was deleted before it ended. */
  deploymentFailed: 1,
  /** Bad command line: unknown command or option, missing argument, malformed flag value. */
  usage: 2,
  /** The input was refused: descriptor validation (400), unreadable or unparsable file. */
  invalidInput: 3,
  /** Authentication or permission refused (401, 403, 429 after failed authentications). */
  auth: 4,
  /** --timeout passed while waiting; the deployment goes on on the server. */
  timeout: 5,
  /** cutover unreachable or failing (connection refused, 5xx) after retrying within --timeout. */
  unavailable: 6,
  /** No such deployment, descriptor, app or environment value (404). */
  notFound: 7,
  /** The request conflicts with the current state (409, or 412: the descriptor changed meanwhile). */
  conflict: 8,
  /** Anything unexpected (a bug in the CLI, or an answer it does not understand). */
  internal: 9,
  /** Interrupted (Ctrl-C); the deployment goes on on the server. */
  interrupted: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The table shown in `cutover --help` and docs/cli.md. */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [number, string]> = [
  [ExitCode.success, 'success (with --wait: the deployment reached DEPLOYED, or the undeploy UNDEPLOYED)'],
  [ExitCode.deploymentFailed, 'the deployment failed (FAILURE); the reason and the last log lines are printed'],
  [ExitCode.usage, 'usage error: unknown command or option, missing argument, bad flag value'],
  [ExitCode.invalidInput, 'invalid input: the descriptor was refused (400) or the file cannot be read or parsed'],
  [ExitCode.auth, 'authentication or permission refused (401, 403, 429)'],
  [ExitCode.timeout, '--timeout passed while waiting (the deployment continues on the server)'],
  [ExitCode.unavailable, 'cutover unreachable or failing (connection refused, 5xx) after retries'],
  [ExitCode.notFound, 'not found: no such app, descriptor, deployment or environment value (404)'],
  [ExitCode.conflict, 'conflict with the current state (409, 412)'],
  [ExitCode.internal, 'unexpected error (please report it)'],
  [ExitCode.interrupted, 'interrupted (Ctrl-C); the deployment continues on the server'],
];
