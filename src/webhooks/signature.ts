import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook signatures (docs/webhooks.md): `X-Cutover-Signature: t=<unix seconds>,v1=<hex>`, where
 * the hex is HMAC-SHA256 with the subscription's secret over `<t>.<raw body>`. The timestamp is
 * signed too, so a receiver can refuse old requests (replays); every attempt is signed anew.
 */
export const SIGNATURE_HEADER = 'X-Cutover-Signature';
export const SIGNATURE_SCHEME = 'v1';
/** What a receiver should accept by default: the signature's time at most this far from its clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

export function signatureHex(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${timestampSeconds}.`).update(body).digest('hex');
}

export function signatureHeaderValue(secret: string, timestampSeconds: number, body: string | Buffer): string {
  return `t=${timestampSeconds},${SIGNATURE_SCHEME}=${signatureHex(secret, timestampSeconds, body)}`;
}

export type VerifyResult = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * The receiver's side, as documented: parses the header, checks the time window and compares in
 * constant time. Several v1 values are accepted (a sender may sign with an old and a new secret).
 */
export function verifySignature(secret: string, header: string | undefined, body: string | Buffer, nowSeconds: number, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS): VerifyResult {
  if (!header) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  let timestamp: number | undefined;
  const candidates: string[] = [];
  for (const part of header.split(',')) {
    const [name, value] = part.trim().split('=', 2);
    if (name === 't' && value && /^[0-9]{1,12}$/.test(value)) timestamp = Number(value);
    else if (name === SIGNATURE_SCHEME && value && /^[0-9a-f]{64}$/.test(value)) candidates.push(value);
  }
  if (timestamp === undefined || candidates.length === 0) return { ok: false, reason: 'malformed signature header' };
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: `timestamp ${timestamp} is outside the tolerance of ${toleranceSeconds} s` };
  const expected = Buffer.from(signatureHex(secret, timestamp, body), 'hex');
  const matches = candidates.some((c) => timingSafeEqual(Buffer.from(c, 'hex'), expected));
  return matches ? { ok: true, timestamp } : { ok: false, reason: 'signature does not match' };
}
