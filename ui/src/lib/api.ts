/**
 * The UI's only way to the REST API: same origin, the bearer token from session storage, and
 * every failure turned into an ApiProblem that says in plain words what happened and what to do.
 */

const TOKEN_KEY = 'cutover.token';

export const session = {
  get token(): string | undefined {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  },
  /** Session storage only: the token is gone when the tab closes, and never reaches disk cookies. */
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export interface FieldProblem {
  path: string;
  message: string;
}

export class ApiProblem extends Error {
  constructor(
    /** HTTP status; 0 when cutover could not be reached at all. */
    readonly status: number,
    readonly code: string,
    readonly serverMessage: string,
    readonly details: FieldProblem[] = [],
    readonly requestId?: string,
    readonly retryAfter?: string,
  ) {
    super(serverMessage);
    this.name = 'ApiProblem';
  }

  /** What happened and what to do next, for people. */
  get plain(): string {
    const m = this.serverMessage;
    switch (true) {
      case this.status === 0:
        return 'cutover cannot be reached. Check your network or whether cutover is running; this page tries again by itself.';
      case this.status === 401:
        return `You are not signed in, or your token is no longer valid (${m}). Sign in again with a fresh token.`;
      case this.status === 403:
        return `Not allowed: ${m}. Ask an administrator for access, or sign in with a token that has it.`;
      case this.status === 404:
        return `Not found: ${m}. It may have been deleted meanwhile; go back to the overview.`;
      case this.status === 409 || this.status === 412:
        return `Someone else changed this meanwhile (${m}). Reload the page and try again.`;
      case this.status === 429:
        return `Too many failed sign-ins from this address. Wait ${this.retryAfter ?? 'a minute'} seconds and try again.`;
      case this.code === 'validation_failed':
        return 'The descriptor was refused. Fix the fields marked in red and try again.';
      case this.status === 400 || this.status === 413 || this.status === 415:
        return `The request was refused: ${m}. Correct it and try again.`;
      case this.status === 503:
        return `cutover or something it needs is unavailable right now (${m}). Try again in a moment.`;
      default:
        return `cutover failed unexpectedly${this.requestId ? ` (request id ${this.requestId})` : ''}. Try again; if it keeps failing, give the request id to whoever runs cutover.`;
    }
  }
}

export type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
/** Called on every 401, so the app can show the sign-in page. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function authHeaders(): Record<string, string> {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
  headers: Headers;
}

export async function toProblem(res: Response): Promise<ApiProblem> {
  let body: { error?: string; message?: string; details?: unknown; requestId?: string } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  const details = Array.isArray(body.details)
    ? body.details.filter((d): d is FieldProblem => typeof d === 'object' && d !== null && typeof (d as FieldProblem).path === 'string')
    : [];
  return new ApiProblem(res.status, body.error ?? `http_${res.status}`, body.message ?? res.statusText, details, body.requestId, res.headers.get('Retry-After') ?? undefined);
}

export async function api<T = unknown>(method: string, path: string, options: { json?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<ApiAnswer<T>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers: { Accept: 'application/json', ...authHeaders(), ...(options.json !== undefined ? { 'Content-Type': 'application/json' } : {}), ...options.headers },
      ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiProblem(0, 'unreachable', (err as Error).message);
  }
  if (!res.ok) {
    const problem = await toProblem(res);
    if (res.status === 401) for (const l of unauthorizedListeners) l();
    throw problem;
  }
  const text = res.status === 204 ? '' : await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as T };
}

export const q = encodeURIComponent;
