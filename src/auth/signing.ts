import { createHash, createHmac, randomBytes } from 'node:crypto';

/**
 * The signed-request scheme of cutover's API keys (docs/security.md, "Signed requests"). Pure
 * node:crypto with no server dependencies, so the CLI and pipeline scripts can import it as is.
 *
 * The signature is HMAC-SHA256, keyed with the key's secret (its UTF-8 bytes, exactly as printed
 * when the key was created), over the canonical string
 *
 *     CUTOVER-HMAC-SHA256-V1 \n METHOD \n REQUEST-TARGET \n TIMESTAMP \n NONCE \n HEX(SHA-256(BODY))
 *
 * REQUEST-TARGET is the path with its query exactly as sent on the request line (no decoding or
 * reordering), TIMESTAMP the decimal unix time in seconds also sent in X-Cutover-Timestamp, NONCE
 * the random value sent in X-Cutover-Nonce (each signature is accepted once; the nonce lets a
 * client send the same request twice in one second), and BODY the raw body bytes (empty when
 * there is none). There is no trailing newline.
 */

export const SIGNATURE_SCHEME = 'CUTOVER-HMAC-SHA256-V1';
export const KEY_ID_HEADER = 'X-Cutover-Key-Id';
export const TIMESTAMP_HEADER = 'X-Cutover-Timestamp';
export const SIGNATURE_HEADER = 'X-Cutover-Signature';
export const NONCE_HEADER = 'X-Cutover-Nonce';
/** 16 to 64 characters of base64url: at least 96 random bits in practice. */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;
/** Prefix of the signature header's value; a later scheme gets v2= and both can coexist. */
export const SIGNATURE_VERSION = 'v1';

export type BodyInput = string | Uint8Array | undefined;

/** Hex SHA-256 of the body; a string is hashed as its UTF-8 bytes. */
export function bodyDigest(body: BodyInput): string {
  const hash = createHash('sha256');
  if (body !== undefined) hash.update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
  return hash.digest('hex');
}

export function canonicalString(method: string, requestTarget: string, timestamp: number | string, nonce: string, bodySha256Hex: string): string {
  return [SIGNATURE_SCHEME, method.toUpperCase(), requestTarget, String(timestamp), nonce, bodySha256Hex].join('\n');
}

/** A fresh nonce: 16 random bytes as base64url (22 characters). */
export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

/** Hex HMAC-SHA256 of the canonical string with the secret's UTF-8 bytes as key. */
export function computeSignature(secret: string, canonical: string): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(canonical, 'utf8').digest('hex');
}

export interface SignRequestInput {
  keyId: string;
  secret: string;
  method: string;
  /** Path with query exactly as it will be sent, e.g. "/deployments/?namespace=shop&descriptorId=…". */
  pathWithQuery: string;
  /** The exact body bytes that will be sent (a string is sent and hashed as UTF-8). */
  body?: BodyInput;
  /** Unix seconds; default now. */
  timestamp?: number;
  /** Default: a fresh random one (pass one only to reproduce a signature, e.g. in tests). */
  nonce?: string;
}

/** The four headers that authenticate one request; sign each request anew (a signature is accepted once). */
export function signRequest(input: SignRequestInput): Record<string, string> {
  const timestamp = input.timestamp ?? Math.floor(Date.now() / 1000);
  const nonce = input.nonce ?? newNonce();
  const canonical = canonicalString(input.method, input.pathWithQuery, timestamp, nonce, bodyDigest(input.body));
  return {
    [KEY_ID_HEADER]: input.keyId,
    [TIMESTAMP_HEADER]: String(timestamp),
    [NONCE_HEADER]: nonce,
    [SIGNATURE_HEADER]: `${SIGNATURE_VERSION}=${computeSignature(input.secret, canonical)}`,
  };
}
