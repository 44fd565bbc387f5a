/**
 * Which browser origins may use cutover: one rule for the log websocket (checked before the
 * upgrade) and for the REST API's CORS headers (src/api/cors.ts).
 *
 * - No Origin header: allowed. CLIs, pipelines and server-side clients do not send one.
 * - Same origin (the Origin's host and port equal the request's Host): allowed.
 * - An origin listed in CUTOVER_ALLOWED_ORIGINS: allowed; "*" in that list allows every origin.
 * - Anything else, "null" (sandboxed pages, file://) included: refused.
 */

export interface OriginDecision {
  allowed: boolean;
  /** The Origin header as sent (absent: a non-browser client). */
  origin?: string;
}

export class OriginPolicy {
  private readonly listed: ReadonlySet<string>;
  private readonly anyOrigin: boolean;

  /** `allowed`: origins as configured (already normalised by the config, or raw: they are normalised here). */
  constructor(allowed: readonly string[]) {
    this.anyOrigin = allowed.includes('*');
    this.listed = new Set(allowed.filter((o) => o !== '*').map((o) => normaliseOrigin(o) ?? o));
  }

  /** Decides for one request from its Origin and Host headers. */
  check(originHeader: string | undefined, hostHeader: string | undefined): OriginDecision {
    if (originHeader === undefined || originHeader === '') return { allowed: true };
    const origin = originHeader;
    if (this.anyOrigin) return { allowed: true, origin };
    const normalised = normaliseOrigin(origin);
    if (normalised === undefined) return { allowed: false, origin };
    if (this.listed.has(normalised)) return { allowed: true, origin };
    return { allowed: isSameOrigin(normalised, hostHeader), origin };
  }
}

/**
 * `scheme://host[:port]` in canonical form (lower case, default port dropped), or undefined when
 * the text is not an http(s) origin (a path, credentials, "null"…).
 */
export function normaliseOrigin(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  // A configured value may end with "/" (URL reports the path "/" either way); any other path is a mistake.
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/') return undefined;
  return url.origin;
}

/** The Origin names the host the request was sent to (the port compared with the Origin's scheme's default). */
function isSameOrigin(normalisedOrigin: string, hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  const origin = new URL(normalisedOrigin);
  try {
    return new URL(`${origin.protocol}//${hostHeader.trim()}`).host === origin.host;
  } catch {
    return false;
  }
}
