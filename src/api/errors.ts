import { InvalidRequestError, NotFoundError, RevisionConflictError, StateConflictError } from '../domain/errors.js';
import { StoreUnavailableError } from '../store/kv.js';

/** The JSON body of every error response. */
export interface ErrorBody {
  error: string;
  message: string;
  details?: unknown[];
  requestId?: string;
}

/** An error that becomes an HTTP response with the given status and JSON body. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const badRequest = (message: string, details?: unknown[]) => new ApiError(400, 'bad_request', message, details);
export const notFound = (message: string) => new ApiError(404, 'not_found', message);

/** Statuses that http-errors-style errors from libraries may carry and that we pass on as-is. */
const CLIENT_ERROR_CODES: Record<number, string> = {
  400: 'bad_request',
  408: 'request_timeout',
  411: 'length_required',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  431: 'headers_too_large',
};

/** Maps any thrown value to an ApiError; unknown errors become an opaque 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof StoreUnavailableError) {
    return new ApiError(503, 'store_unavailable', 'the data store (etcd) is unavailable; retry later', undefined, { 'Retry-After': '2' });
  }
  if (err instanceof NotFoundError) return new ApiError(404, 'not_found', err.message);
  if (err instanceof InvalidRequestError) return new ApiError(400, 'bad_request', err.message);
  if (err instanceof RevisionConflictError) return new ApiError(409, 'conflict', err.message);
  if (err instanceof StateConflictError) return new ApiError(409, 'conflict', err.message);
  const status = (err as { status?: unknown; expose?: unknown } | null)?.status;
  if (typeof status === 'number' && CLIENT_ERROR_CODES[status] !== undefined) {
    const message = status === 413 ? 'request body is larger than the limit of 1 MiB'
      : status === 415 ? 'request body must be JSON (Content-Type: application/json)'
      : status === 400 ? `malformed request body: ${(err as Error).message}`
      : (err as Error).message;
    return new ApiError(status, status === 400 ? 'invalid_json' : CLIENT_ERROR_CODES[status]!, message);
  }
  return new ApiError(500, 'internal', 'internal error');
}
