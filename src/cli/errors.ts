import { ExitCode } from './exit-codes.js';

/** One problem of a refused descriptor, as the API reports it (`details` of a 400). */
export interface FieldProblem {
  path: string;
  message: string;
}

/**
 * An error the CLI reports and exits with: what went wrong, what to do about it, and the exit
 * code that tells a pipeline which kind of failure it was.
 */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    readonly options: { hint?: string; problems?: FieldProblem[]; status?: number; code?: string; cause?: unknown } = {},
  ) {
    super(message);
    this.name = 'CliError';
  }

  get hint(): string | undefined {
    return this.options.hint;
  }

  get problems(): FieldProblem[] {
    return this.options.problems ?? [];
  }
}

export const usageError = (message: string, hint?: string) => new CliError(ExitCode.usage, message, hint ? { hint } : {});
export const invalidInput = (message: string, problems?: FieldProblem[], hint?: string) =>
  new CliError(ExitCode.invalidInput, message, { ...(problems ? { problems } : {}), ...(hint ? { hint } : {}) });
export const notFound = (message: string, hint?: string) => new CliError(ExitCode.notFound, message, hint ? { hint } : {});

/** What the CLI was doing, to word error messages and hints. */
export interface RequestContext {
  /** e.g. "listing the deployments of shop/web" */
  action: string;
  namespace?: string;
  /** Administrator-only endpoints get a different 403 hint. */
  adminOnly?: boolean;
}

/** The JSON error body of the API: `{"error", "message", "details"}`. */
interface ApiErrorBody {
  error?: unknown;
  message?: unknown;
  details?: unknown;
}

function problemsOf(details: unknown): FieldProblem[] | undefined {
  if (!Array.isArray(details)) return undefined;
  const problems = details.flatMap((d) => {
    if (d && typeof d === 'object' && typeof (d as FieldProblem).message === 'string') {
      const path = (d as FieldProblem).path;
      return [{ path: typeof path === 'string' ? path : '', message: (d as FieldProblem).message }];
    }
    return [];
  });
  return problems.length > 0 ? problems : undefined;
}

/** Maps an HTTP error answer of cutover to the error the CLI reports (after any retries). */
export function errorFromResponse(status: number, body: unknown, context: RequestContext, headers?: { get(name: string): string | null }): CliError {
  const b = (body && typeof body === 'object' ? body : {}) as ApiErrorBody;
  const serverMessage = typeof b.message === 'string' ? b.message : typeof body === 'string' && body.trim() ? body.trim().slice(0, 500) : `HTTP ${status}`;
  const code = typeof b.error === 'string' ? b.error : undefined;
  const message = `${context.action}: ${serverMessage}`;
  const base = { status, ...(code ? { code } : {}) };
  switch (true) {
    case status === 400 || status === 413 || status === 415 || status === 422: {
      const problems = problemsOf(b.details);
      return new CliError(ExitCode.invalidInput, message, { ...base, ...(problems ? { problems } : {}), hint: 'fix the input and run the command again' });
    }
    case status === 401: {
      const challenge = headers?.get('www-authenticate');
      return new CliError(ExitCode.auth, message, {
        ...base,
        hint: 'authentication failed: check --key-id/--key-secret (CUTOVER_KEY_ID, CUTOVER_KEY_SECRET or CUTOVER_KEY_SECRET_FILE) or --token (CUTOVER_TOKEN), '
          + 'that the key is not revoked or expired, and that this machine\'s clock is within 30 s of the server\'s (signed requests carry a timestamp)'
          + (challenge ? `; the server accepts: ${challenge}` : ''),
      });
    }
    case status === 403:
      return new CliError(ExitCode.auth, message, {
        ...base,
        hint: context.adminOnly
          ? 'this needs administrator credentials (an API key or token with namespaces "*")'
          : `the credentials may not use namespace ${context.namespace ?? 'NS'}: an API key's namespaces (cutover-admin keys list) or the token's namespaces claim must include it`,
      });
    case status === 429: {
      const retryAfter = headers?.get('retry-after');
      return new CliError(ExitCode.auth, message, {
        ...base,
        hint: `too many failed authentications from this address${retryAfter ? `; wait ${retryAfter} s` : ''}, then check the credentials`,
      });
    }
    case status === 404:
      return new CliError(ExitCode.notFound, message, { ...base });
    case status === 409 || status === 412:
      return new CliError(ExitCode.conflict, message, { ...base, hint: status === 412 ? 'it changed while this command ran; run the command again' : 'wait for the running operation to end, then retry' });
    case status >= 500:
      return new CliError(ExitCode.unavailable, message, { ...base, hint: 'cutover is failing; retry later, and check its log (the requestId in its answer finds the line)' });
    default:
      return new CliError(ExitCode.internal, `${context.action}: unexpected answer HTTP ${status}: ${serverMessage}`, { ...base });
  }
}

/** The error code of a failed fetch or socket (undici puts it on `cause`). */
export function networkErrorCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if ((e as { name?: unknown }).name === 'TimeoutError') return 'TIMEOUT';
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Failures where the request certainly never reached cutover: safe to retry any request. */
const UNSENT = new Set(['ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Failures after the request may have arrived: safe to retry only idempotent requests. */
const AMBIGUOUS = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', 'TIMEOUT', 'UND_ERR_CLOSED']);

export type Transience = 'unsent' | 'ambiguous' | 'permanent';

export function transienceOfNetworkError(err: unknown): Transience {
  const code = networkErrorCode(err);
  if (code && UNSENT.has(code)) return 'unsent';
  if (code && AMBIGUOUS.has(code)) return 'ambiguous';
  return 'permanent';
}

/** 502/503/504 are retried; whether cutover acted on the request first cannot be known. */
export function isTransientStatus(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

/** A network failure that retries did not overcome (or that is not worth retrying). */
export function errorFromNetwork(err: unknown, baseUrl: string, context: RequestContext, retriedForMs?: number): CliError {
  const code = networkErrorCode(err);
  const cause = (err as { cause?: unknown })?.cause;
  const detail = code ?? (cause instanceof Error ? cause.message : err instanceof Error ? err.message : String(err));
  const retried = retriedForMs !== undefined && retriedForMs >= 1000 ? ` (retried for ${Math.round(retriedForMs / 1000)} s)` : '';
  const hint = code === 'ENOTFOUND'
    ? `the host of ${baseUrl} is unknown: check --url (CUTOVER_URL)`
    : code === 'ECONNREFUSED'
      ? `nothing answers at ${baseUrl}: check --url (CUTOVER_URL) and that cutover runs`
      : `check --url (CUTOVER_URL = ${baseUrl}), the network, and that cutover runs`;
  return new CliError(ExitCode.unavailable, `${context.action}: cutover unreachable: ${detail}${retried}`, { hint, cause: err, ...(code ? { code } : {}) });
}
