import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../log.js';
import type { ApiKeyRecord, ApiKeyStore, EncryptedSecret } from '../store/api-keys.js';
import { DNS1123_LABEL, MAX_LABEL_LENGTH } from '../domain/names.js';
import { ALL_NAMESPACES, AuthenticationError, parseNamespaces, type Caller } from './caller.js';
import {
  bodyDigest, canonicalString, computeSignature, KEY_ID_HEADER, NONCE_HEADER, NONCE_PATTERN, SIGNATURE_HEADER, SIGNATURE_VERSION,
  TIMESTAMP_HEADER,
} from './signing.js';

/**
 * API keys for pipelines. A key's secret is needed to check HMAC signatures, so it cannot be
 * stored as a one-way hash: it is stored encrypted with AES-256-GCM under a key-encryption key
 * (KEK) from the configuration, with the key id as additional authenticated data (a ciphertext
 * moved to another key's record does not decrypt). etcd alone never reveals a secret.
 */

export const KEY_ID_PATTERN = /^ck_[0-9a-f]{16}$/;
/** Requests whose timestamp is further than this from the server's clock are refused. */
export const SIGNATURE_WINDOW_SECONDS = 30;
export const SIGNATURE_CHALLENGE = 'Cutover-HMAC-SHA256 realm="cutover"';
const TEAM_PATTERN = DNS1123_LABEL;

export interface KeyEncryptionKey {
  /** Short fingerprint stored with each ciphertext, so the right KEK is picked after a KEK rotation. */
  id: string;
  key: Buffer;
}

export class KeyEncryptionKeyError extends Error {}

/**
 * Parses CUTOVER_KEY_ENCRYPTION_KEY(_FILE): one or more 32-byte keys, as 64 hex digits or base64,
 * separated by commas or newlines. The first encrypts new keys; all of them decrypt (rotation).
 * Error messages never include the key material.
 */
export function parseKeyEncryptionKeys(text: string): KeyEncryptionKey[] {
  const items = text.split(/[\s,]+/).map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new KeyEncryptionKeyError('the key-encryption key is empty');
  return items.map((item, i) => {
    let key: Buffer | undefined;
    if (/^[0-9a-fA-F]{64}$/.test(item)) key = Buffer.from(item, 'hex');
    else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(item)) key = Buffer.from(item.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (!key || key.length !== 32) {
      throw new KeyEncryptionKeyError(`key-encryption key #${i + 1} is not 32 bytes as 64 hex digits or base64 (generate one with: openssl rand -base64 32)`);
    }
    return { id: createHash('sha256').update('cutover-kek-id\0').update(key).digest('hex').slice(0, 16), key };
  });
}

export function encryptSecret(kek: KeyEncryptionKey, keyId: string, secret: string): EncryptedSecret {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek.key, iv);
  cipher.setAAD(Buffer.from(keyId, 'utf8'));
  const data = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return { alg: 'A256GCM', kek: kek.id, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
}

/** The plain secret; throws when no configured KEK matches or the ciphertext was tampered with. */
export function decryptSecret(keks: readonly KeyEncryptionKey[], keyId: string, enc: EncryptedSecret): string {
  const kek = keks.find((k) => k.id === enc.kek);
  if (!kek) throw new KeyEncryptionKeyError(`API key ${keyId} is encrypted with key-encryption key ${enc.kek}, which is not configured`);
  if (enc.alg !== 'A256GCM') throw new KeyEncryptionKeyError(`API key ${keyId}: unknown encryption ${String(enc.alg)}`);
  const decipher = createDecipheriv('aes-256-gcm', kek.key, Buffer.from(enc.iv, 'base64'));
  decipher.setAAD(Buffer.from(keyId, 'utf8'));
  decipher.setAuthTag(Buffer.from(enc.tag, 'base64'));
  try {
    return Buffer.concat([decipher.update(Buffer.from(enc.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyEncryptionKeyError(`API key ${keyId} does not decrypt (wrong key-encryption key or tampered record)`);
  }
}

/** "90d", "12h", "30m" → milliseconds; undefined when the text is none of these. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d{1,6})([dhm])$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  return n * (m[2] === 'd' ? 86_400_000 : m[2] === 'h' ? 3_600_000 : 60_000);
}

export interface NewKeyInput {
  team: string;
  /** Namespaces as a list or a comma/space-separated string; "*" makes an administrator key. */
  namespaces: unknown;
  /** A duration ("90d") or an ISO time; none: the key does not expire. */
  expires?: string;
  description?: string;
}

export class KeyInputError extends Error {}

/** Key information as listed and shown: everything but the encrypted secret. */
export type ApiKeyInfo = Omit<ApiKeyRecord, 'secret'> & { status: 'active' | 'revoked' | 'expired' };

export function keyInfo(record: ApiKeyRecord, now: Date): ApiKeyInfo {
  const { secret: _secret, ...info } = record;
  return { ...info, status: keyStatus(record, now) };
}

export function keyStatus(record: ApiKeyRecord, now: Date): 'active' | 'revoked' | 'expired' {
  if (record.revoked) return 'revoked';
  if (record.expires && Date.parse(record.expires) <= now.getTime()) return 'expired';
  return 'active';
}

/** Creating, listing and revoking keys: shared by the admin REST endpoints and the admin CLI. */
export class ApiKeyAdmin {
  constructor(private readonly store: ApiKeyStore, private readonly keks: readonly KeyEncryptionKey[], private readonly now: () => Date = () => new Date()) {}

  /** Stores a new key and returns it with its secret; the secret is never available again. */
  async create(input: NewKeyInput, createdBy: string): Promise<{ key: ApiKeyInfo; secret: string }> {
    const team = typeof input.team === 'string' ? input.team.trim() : '';
    if (!TEAM_PATTERN.test(team) || team.length > MAX_LABEL_LENGTH) throw new KeyInputError('team must be a DNS-1123 label (lower-case letters, digits and "-")');
    const parsed = parseNamespaces(input.namespaces);
    const namespaces = parsed === ALL_NAMESPACES ? [ALL_NAMESPACES] : [...parsed].sort();
    if (namespaces.length === 0) throw new KeyInputError('namespaces must list at least one namespace, or "*" for an administrator key');
    const bad = namespaces.filter((ns) => ns !== ALL_NAMESPACES && (!DNS1123_LABEL.test(ns) || ns.length > MAX_LABEL_LENGTH));
    if (bad.length > 0) throw new KeyInputError(`not valid namespace names: ${bad.join(', ')}`);
    if (input.description !== undefined && (typeof input.description !== 'string' || input.description.length > 200 || /[\r\n\0]/.test(input.description))) {
      throw new KeyInputError('description must be one line of at most 200 characters');
    }
    const now = this.now();
    let expires: string | undefined;
    if (input.expires !== undefined && input.expires !== '') {
      if (typeof input.expires !== 'string') throw new KeyInputError('expires must be a duration like "90d" or an ISO time');
      const duration = parseDuration(input.expires);
      const at = duration !== undefined ? now.getTime() + duration : Date.parse(input.expires);
      if (!Number.isFinite(at) || at <= now.getTime()) throw new KeyInputError('expires must be a duration like "90d", "12h" or a future ISO time');
      expires = new Date(at).toISOString();
    }
    const kek = this.keks[0];
    if (!kek) throw new KeyEncryptionKeyError('no key-encryption key is configured');
    const id = `ck_${randomBytes(8).toString('hex')}`;
    const secret = `cks_${randomBytes(32).toString('base64url')}`;
    const record: ApiKeyRecord = {
      id, team, namespaces,
      ...(input.description ? { description: input.description } : {}),
      created: now.toISOString(), createdBy,
      ...(expires ? { expires } : {}),
      secret: encryptSecret(kek, id, secret),
    };
    await this.store.create(record);
    return { key: keyInfo(record, now), secret };
  }

  async list(team?: string): Promise<ApiKeyInfo[]> {
    const now = this.now();
    return (await this.store.list()).filter((r) => team === undefined || r.team === team).map((r) => keyInfo(r, now));
  }

  /** The revoked key, or undefined when there is no such key. Revoking twice keeps the first time. */
  async revoke(id: string, revokedBy: string): Promise<ApiKeyInfo | undefined> {
    if (!KEY_ID_PATTERN.test(id)) return undefined;
    const record = await this.store.revoke(id, revokedBy, this.now());
    return record ? keyInfo(record, this.now()) : undefined;
  }
}

/** Signed-request parts the verifier needs; the body is read only once the headers passed their checks. */
export interface SignedRequestParts {
  method: string;
  /** Request-target exactly as on the request line (path and query). */
  target: string;
  headers: IncomingHttpHeaders;
  readBody: () => Promise<Buffer>;
}

/** Remembers signatures so each is accepted once; `firstUse` is false for a replay. */
export interface ReplayGuard {
  firstUse(fingerprint: string, timestampSeconds: number): Promise<boolean>;
}

export interface ApiKeyVerifierOptions {
  store: ApiKeyStore;
  keks: readonly KeyEncryptionKey[];
  replay: ReplayGuard;
  log: Logger;
  now?: () => number;
}

export function isSignedRequest(headers: IncomingHttpHeaders): boolean {
  return [KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER].some((h) => headers[h.toLowerCase()] !== undefined);
}

const SIGNATURE_VALUE = new RegExp(`^${SIGNATURE_VERSION}=([0-9a-fA-F]{64})$`);
/** Keyed with a random secret per process: unknown key ids cost the same HMAC as known ones. */
const DECOY_SECRET = randomBytes(32).toString('base64url');

function refused(message: string): AuthenticationError {
  return new AuthenticationError(message, [SIGNATURE_CHALLENGE]);
}

function singleHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  if (Array.isArray(value)) throw refused(`header ${name} must be sent once`);
  return value;
}

/** Checks signed requests: headers, ±30 s window, key state, HMAC (constant time) and replay. */
export class ApiKeyVerifier {
  private readonly now: () => number;

  constructor(private readonly o: ApiKeyVerifierOptions) {
    this.now = o.now ?? Date.now;
  }

  async verify(req: SignedRequestParts): Promise<Caller> {
    const keyId = singleHeader(req.headers, KEY_ID_HEADER);
    const timestampText = singleHeader(req.headers, TIMESTAMP_HEADER);
    const nonce = singleHeader(req.headers, NONCE_HEADER);
    const signatureText = singleHeader(req.headers, SIGNATURE_HEADER);
    if (keyId === undefined || timestampText === undefined || nonce === undefined || signatureText === undefined) {
      throw refused(`a signed request needs the headers ${KEY_ID_HEADER}, ${TIMESTAMP_HEADER}, ${NONCE_HEADER} and ${SIGNATURE_HEADER} (docs/security.md)`);
    }
    if (!KEY_ID_PATTERN.test(keyId)) throw refused(`${KEY_ID_HEADER} is not a key id (ck_ and 16 hex digits)`);
    if (!/^[0-9]{1,12}$/.test(timestampText)) throw refused(`${TIMESTAMP_HEADER} must be unix time in seconds`);
    if (!NONCE_PATTERN.test(nonce)) throw refused(`${NONCE_HEADER} must be 16 to 64 characters of A-Z, a-z, 0-9, "_" and "-"`);
    const signatureMatch = SIGNATURE_VALUE.exec(signatureText.trim());
    if (!signatureMatch) throw refused(`${SIGNATURE_HEADER} must be "${SIGNATURE_VERSION}=" and 64 hex digits`);
    const nowSeconds = Math.floor(this.now() / 1000);
    const timestamp = Number(timestampText);
    if (Math.abs(nowSeconds - timestamp) > SIGNATURE_WINDOW_SECONDS) {
      throw refused(`${TIMESTAMP_HEADER} ${timestamp} is more than ${SIGNATURE_WINDOW_SECONDS} s away from the server's time ${nowSeconds}; check the client's clock`);
    }

    const found = await this.o.store.get(keyId);
    let secret = DECOY_SECRET;
    if (found) {
      try {
        secret = decryptSecret(this.o.keks, keyId, found.secret);
      } catch (err) {
        // An operator problem (KEK missing after a rotation), not the caller's: logged, refused like a bad key.
        this.o.log.error({ keyId, err: (err as Error).message }, 'API key cannot be decrypted');
      }
    }
    const body = await req.readBody();
    const expected = Buffer.from(computeSignature(secret, canonicalString(req.method, req.target, timestampText, nonce, bodyDigest(body))), 'hex');
    const given = Buffer.from(signatureMatch[1]!.toLowerCase(), 'hex');
    const matches = expected.length === given.length && timingSafeEqual(expected, given);
    if (!found || secret === DECOY_SECRET || !matches) throw refused('unknown API key or wrong signature');

    // Only a caller holding the secret learns the key's state.
    if (found.revoked) throw refused(`API key ${keyId} was revoked on ${found.revoked}`);
    if (found.expires && Date.parse(found.expires) <= this.now()) throw refused(`API key ${keyId} expired on ${found.expires}`);
    const fingerprint = createHash('sha256').update(`${keyId}\n${signatureMatch[1]!.toLowerCase()}`).digest('hex');
    if (!(await this.o.replay.firstUse(fingerprint, timestamp))) {
      throw refused('this signature was already used: sign every request anew (replay refused)');
    }
    const namespaces = parseNamespaces(found.namespaces);
    return { identity: `apikey:${keyId}`, method: 'api-key', namespaces, team: found.team, keyId };
  }
}
