import { ApiError } from '../api/errors.js';

/** How a caller proved who it is. */
export type AuthMethod = 'jwt' | 'api-key' | 'none';

/** Namespaces value that makes a caller an administrator: every namespace, key management, cluster audit. */
export const ALL_NAMESPACES = '*';

/** Pseudo-namespace of audit entries that belong to no namespace (key management). Not a DNS label, so it cannot clash. */
export const CLUSTER_AUDIT_NAMESPACE = '_cluster';

/** An authenticated caller, as the REST API and the websocket see it. */
export interface Caller {
  /** Who: the JWT's subject (or configured name claim), `apikey:<id>` for API keys, `anonymous` when auth is off. */
  identity: string;
  method: AuthMethod;
  /** The namespaces the caller may use, or "*" for all (administrator). */
  namespaces: typeof ALL_NAMESPACES | ReadonlySet<string>;
  /** API keys: the owning team and the key id. */
  team?: string;
  keyId?: string;
}

export function isAdministrator(caller: Caller): boolean {
  return caller.namespaces === ALL_NAMESPACES;
}

/**
 * Whether the caller may use a namespace at all: read it, and change it in the environments it
 * is granted. A grant is "NS" (every environment) or "NS@ENV" (changes only in environment ENV;
 * docs/security.md, "Environments").
 */
export function mayUseNamespace(caller: Caller, namespace: string): boolean {
  if (caller.namespaces === ALL_NAMESPACES || caller.namespaces.has(namespace)) return true;
  for (const grant of caller.namespaces) if (grant.startsWith(`${namespace}@`)) return true;
  return false;
}

/** Whether the caller may change what runs in a namespace in the clusters of `environment`. */
export function mayChangeIn(caller: Caller, namespace: string, environment: string): boolean {
  return caller.namespaces === ALL_NAMESPACES || caller.namespaces.has(namespace) || caller.namespaces.has(`${namespace}@${environment}`);
}

/** Throws AuthorizationError (403) unless the caller may change the namespace in `environment` (no caller: authentication is off). */
export function assertMayChangeIn(caller: Caller | undefined, namespace: string, environment: string): void {
  if (caller && !mayChangeIn(caller, namespace, environment)) {
    throw new AuthorizationError(`${caller.identity} may not change namespace ${namespace} in environment ${environment}`);
  }
}

/** 401: no credentials, or credentials that do not hold. Carries the WWW-Authenticate challenges. */
export class AuthenticationError extends ApiError {
  constructor(message: string, challenges: string[], readonly reason: string = message) {
    super(401, 'unauthorized', message, undefined, challenges.length > 0 ? { 'WWW-Authenticate': challenges.join(', ') } : {});
    this.name = 'AuthenticationError';
  }
}

/** 403: authenticated, but not allowed to do this. */
export class AuthorizationError extends ApiError {
  constructor(message: string) {
    super(403, 'forbidden', message);
    this.name = 'AuthorizationError';
  }
}

/** 429: too many failed authentications from this client address. */
export class TooManyAuthFailuresError extends ApiError {
  constructor(readonly retryAfterSeconds: number) {
    super(429, 'too_many_auth_failures', `too many failed authentications from this address; retry in ${retryAfterSeconds} s`,
      undefined, { 'Retry-After': String(retryAfterSeconds) });
    this.name = 'TooManyAuthFailuresError';
  }
}

/**
 * Throws AuthorizationError (403) unless the caller may use the namespace. The single rule used
 * by the REST API (through requireNamespace) and meant for the websocket upgrade handler.
 */
export function assertNamespaceAllowed(caller: Caller, namespace: string): void {
  if (!mayUseNamespace(caller, namespace)) {
    throw new AuthorizationError(`${caller.identity} may not use namespace ${namespace}`);
  }
}

/** Throws AuthorizationError (403) unless the caller is an administrator (namespaces "*"). */
export function assertAdministrator(caller: Caller): void {
  if (!isAdministrator(caller)) throw new AuthorizationError(`${caller.identity} is not an administrator (namespaces "*")`);
}

/** Parses a namespaces claim or setting: an array of strings, or one string separated by spaces and/or commas. */
export function parseNamespaces(value: unknown): typeof ALL_NAMESPACES | Set<string> {
  const items = Array.isArray(value)
    ? value.filter((v): v is string => typeof v === 'string').flatMap((v) => v.split(/[\s,]+/))
    : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  const names = items.map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.includes(ALL_NAMESPACES)) return ALL_NAMESPACES;
  return new Set(names);
}
