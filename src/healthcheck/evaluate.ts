import type { HealthCheckType } from './types.js';

export const MAX_EXCERPT_CHARS = 256;
const MAX_REASON_CHARS = 300;

export interface Verdict {
  healthy: boolean;
  reason: string;
}

export interface AnswerDetails {
  /** Set when the body was cut off at this many bytes, so it is incomplete. */
  truncatedAtBytes?: number;
}

const isSuccess = (statusCode: number): boolean => statusCode >= 200 && statusCode <= 299;

/**
 * Decides whether an HTTP answer means "healthy".
 *
 * - `simple`: any 2xx status. Redirects are not followed, so a 3xx is unhealthy.
 * - `probe`: the body must be a JSON object whose `healthy` property is exactly `true`.
 *   The status code is deliberately ignored (as in the original deployer): an app answering
 *   503 with `{"healthy": true}` is healthy. Non-2xx statuses are still named in the reason.
 */
export function evaluateAnswer(type: HealthCheckType, statusCode: number, body: string, details: AnswerDetails = {}): Verdict {
  if (type === 'simple') {
    if (isSuccess(statusCode)) return { healthy: true, reason: 'healthy' };
    if (statusCode >= 300 && statusCode <= 399) return { healthy: false, reason: `status ${statusCode} (redirects are not followed)` };
    return { healthy: false, reason: `status ${statusCode}` };
  }
  const bodyVerdict = evaluateProbeBody(body, details);
  if (isSuccess(statusCode)) return bodyVerdict;
  return bodyVerdict.healthy
    ? { healthy: true, reason: `healthy (body says so; status ${statusCode} ignored)` }
    : { healthy: false, reason: `status ${statusCode}; ${bodyVerdict.reason}` };
}

function evaluateProbeBody(body: string, details: AnswerDetails): Verdict {
  // A cut-off body cannot be trusted even if its beginning looks fine.
  if (details.truncatedAtBytes !== undefined) return { healthy: false, reason: `body exceeds ${details.truncatedAtBytes} bytes` };
  if (body.trim() === '') return { healthy: false, reason: 'body is empty' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { healthy: false, reason: 'body is not JSON' };
  }
  if (Array.isArray(parsed)) return { healthy: false, reason: 'body is a JSON array, not an object' };
  if (parsed === null || typeof parsed !== 'object') {
    return { healthy: false, reason: `body is JSON ${parsed === null ? 'null' : typeof parsed}, not an object` };
  }
  if (!Object.hasOwn(parsed, 'healthy')) return { healthy: false, reason: 'body has no "healthy" property' };
  const healthy = (parsed as Record<string, unknown>).healthy;
  if (healthy === true) return { healthy: true, reason: 'healthy' };
  return { healthy: false, reason: `body has "healthy": ${excerpt(JSON.stringify(healthy), 40)}` };
}

// C0/C1 controls plus line separators and bidi overrides: anything that could break a log line or disguise text.
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** A short, single-line, printable excerpt of an answer body (or of any untrusted text). */
export function excerpt(text: string, maxChars: number = MAX_EXCERPT_CHARS): string {
  const trimmed = text.trim();
  // Look at a bounded head only, so a huge body costs no more than a small one.
  const headLength = maxChars * 2 + 1;
  const cut = trimmed.length > headLength;
  const head = cut ? trimmed.slice(0, headLength).replace(/[\uD800-\uDBFF]$/, '') : trimmed;
  const cleaned = head.replace(/[\t\r\n]+/g, ' ').replace(UNSAFE_CHARS, '\uFFFD');
  // Count code points, not UTF-16 units, so a cut never splits a surrogate pair.
  const chars = Array.from(cleaned);
  if (!cut && chars.length <= maxChars) return cleaned;
  return chars.slice(0, maxChars - 1).join('') + '…';
}

/** Makes untrusted text (e.g. an error message) safe and short enough for a `reason`. */
export function toReason(text: string): string {
  return excerpt(text, MAX_REASON_CHARS);
}
