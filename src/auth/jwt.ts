import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { ApiError } from '../api/errors.js';
import { AuthenticationError, parseNamespaces, type Caller } from './caller.js';

export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;

/** Where the token's signature key comes from: exactly one of these. */
export type JwtKeySource =
  | { kind: 'jwks'; url: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'secret'; secret: Uint8Array };

export interface JwtSettings {
  key: JwtKeySource;
  issuer: string;
  audience: string[];
  /** Accepted "alg" values; never "none" (jose refuses unsecured tokens in jwtVerify anyway). */
  algorithms: string[];
  /** Claim with the caller's namespaces: an array, or a string separated by spaces/commas; "*" = administrator. */
  namespacesClaim: string;
  /** Claim naming the caller (audit, logs). */
  identityClaim: string;
  clockToleranceSeconds: number;
}

/** Bearer tokens longer than this are refused unread (the header limit is 16 KiB anyway). */
const MAX_TOKEN_LENGTH = 8192;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The token could not be checked because the JWKS endpoint did not answer: the caller is not at fault. */
export class JwksUnavailableError extends ApiError {
  constructor() {
    super(503, 'auth_unavailable', 'the token signing keys (JWKS) could not be fetched; retry later', undefined, { 'Retry-After': '5' });
    this.name = 'JwksUnavailableError';
  }
}

/** jose, loaded with the first token checked (a replica without JWT auth never loads it). */
type Jose = typeof import('jose');
let jose: Promise<Jose> | undefined;
const loadJose = (): Promise<Jose> => (jose ??= import('jose'));

/** Verifies bearer JWTs (signature, issuer, audience, expiry, allowed algorithms) and turns them into callers. */
export class JwtVerifier {
  private key: JWTVerifyGetKey | KeyObject | Uint8Array | undefined;
  private readonly jwksUrl: URL | undefined;

  constructor(private readonly settings: JwtSettings) {
    // A bad PEM or URL fails at start, not with the first request.
    if (settings.key.kind === 'public-key') this.key = createPublicKey(settings.key.pem);
    if (settings.key.kind === 'secret') this.key = settings.key.secret;
    if (settings.key.kind === 'jwks') this.jwksUrl = new URL(settings.key.url);
  }

  private keyOf(j: Jose): JWTVerifyGetKey | KeyObject | Uint8Array {
    // jose caches the key set and refetches on an unknown "kid", at most every cooldown period.
    this.key ??= j.createRemoteJWKSet(this.jwksUrl!, { timeoutDuration: 3000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    return this.key;
  }

  /** The caller a token stands for; AuthenticationError (401) when it does not hold, JwksUnavailableError (503). */
  async verify(token: string): Promise<Caller> {
    if (token.length > MAX_TOKEN_LENGTH || !JWT_SHAPE.test(token)) throw invalidToken('bearer token is malformed');
    let payload: JWTPayload;
    const j = await loadJose();
    try {
      const result = await j.jwtVerify(token, this.keyOf(j) as KeyObject, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: this.settings.algorithms,
        clockTolerance: this.settings.clockToleranceSeconds,
        requiredClaims: ['exp'],
      });
      payload = result.payload;
    } catch (err) {
      throw toAuthError(err, j.errors);
    }
    const identity = payload[this.settings.identityClaim];
    if (typeof identity !== 'string' || identity.length === 0 || identity.length > 256) {
      throw invalidToken(`bearer token has no usable "${this.settings.identityClaim}" claim`);
    }
    return { identity, method: 'jwt', namespaces: parseNamespaces(payload[this.settings.namespacesClaim]) };
  }
}

export const BEARER_CHALLENGE = 'Bearer realm="cutover"';

function invalidToken(description: string): AuthenticationError {
  return new AuthenticationError(description, [`${BEARER_CHALLENGE}, error="invalid_token", error_description="${description.replace(/["\\]/g, '')}"`]);
}

/** jose's errors, as messages that help the caller and reveal nothing about keys. */
function toAuthError(err: unknown, joseErrors: Jose['errors']): ApiError {
  if (err instanceof joseErrors.JWTExpired) return invalidToken('bearer token has expired');
  if (err instanceof joseErrors.JWTClaimValidationFailed) return invalidToken(`bearer token rejected: ${err.message}`);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return invalidToken('bearer token signature is not valid');
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return invalidToken('bearer token algorithm is not allowed');
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return invalidToken('bearer token is signed with an unknown key');
  if (err instanceof joseErrors.JWKSTimeout) return new JwksUnavailableError();
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JOSENotSupported) {
    return invalidToken('bearer token is malformed or uses an unsupported algorithm');
  }
  if (err instanceof joseErrors.JWKSInvalid) return new JwksUnavailableError();
  // A failed JWKS fetch (connection refused, non-200) is not the caller's fault.
  if (err instanceof TypeError || (err instanceof joseErrors.JOSEError && /JSON Web Key Set/i.test(err.message))) return new JwksUnavailableError();
  if (err instanceof joseErrors.JOSEError) return invalidToken('bearer token is not valid');
  return invalidToken('bearer token is not valid');
}
