import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from '../config.js';
import { KeyEncryptionKeyError, parseKeyEncryptionKeys, type KeyEncryptionKey } from './api-keys.js';
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, type JwtKeySource, type JwtSettings } from './jwt.js';

/** The authentication set-up after the cross-checks between settings (and reading key files). */
export interface AuthSetup {
  enabled: boolean;
  jwt?: JwtSettings;
  /** Signed requests are accepted (auth on, CUTOVER_API_KEYS on, a KEK configured). */
  apiKeysEnabled: boolean;
  /** Configured key-encryption keys: needed to create keys (also with auth off) and to verify them. */
  keks?: KeyEncryptionKey[];
}

export type ReadText = (path: string) => string;
const readText: ReadText = (path) => readFileSync(path, 'utf8');

const DEFAULT_KEY_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const MIN_SECRET_BYTES = 32;

/** The key-encryption keys from CUTOVER_KEY_ENCRYPTION_KEY or its _FILE; undefined when neither is set. */
export function loadKeyEncryptionKeys(config: Config, read: ReadText = readText, problems?: string[]): KeyEncryptionKey[] | undefined {
  const own = problems ?? [];
  let text: string | undefined;
  if (config.keyEncryptionKey && config.keyEncryptionKeyFile) {
    own.push('set CUTOVER_KEY_ENCRYPTION_KEY or CUTOVER_KEY_ENCRYPTION_KEY_FILE, not both');
  } else if (config.keyEncryptionKeyFile) {
    text = readSetting(read, 'CUTOVER_KEY_ENCRYPTION_KEY_FILE', config.keyEncryptionKeyFile, own);
  } else {
    text = config.keyEncryptionKey;
  }
  let keks: KeyEncryptionKey[] | undefined;
  if (text !== undefined) {
    try {
      keks = parseKeyEncryptionKeys(text);
    } catch (err) {
      if (!(err instanceof KeyEncryptionKeyError)) throw err;
      own.push(`CUTOVER_KEY_ENCRYPTION_KEY${config.keyEncryptionKeyFile ? '_FILE' : ''}: ${err.message}`);
    }
  }
  if (!problems && own.length > 0) throw new ConfigError(own);
  return keks;
}

/**
 * Checks the security settings together and reads their files. Throws ConfigError naming every
 * problem (never a secret's value): authentication on with no way in, API keys on without a
 * key-encryption key, ambiguous or incomplete JWT settings, algorithms that do not fit the key.
 */
export function resolveAuthSetup(config: Config, read: ReadText = readText): AuthSetup {
  const problems: string[] = [];
  const enabled = config.auth !== 'off';
  const keks = loadKeyEncryptionKeys(config, read, problems);
  const jwt = resolveJwt(config, read, problems);

  const apiKeysWanted = enabled && config.apiKeys !== 'off';
  if (apiKeysWanted && !keks && !problems.some((p) => p.includes('KEY_ENCRYPTION_KEY'))) {
    problems.push(jwt
      ? 'CUTOVER_API_KEYS is on (the default) but no key-encryption key is set: set CUTOVER_KEY_ENCRYPTION_KEY_FILE or CUTOVER_KEY_ENCRYPTION_KEY (openssl rand -base64 32), or CUTOVER_API_KEYS=off'
      : 'authentication is on (the default) but nothing to authenticate with is configured: set a key-encryption key for API keys (CUTOVER_KEY_ENCRYPTION_KEY_FILE) and/or a JWT key source (CUTOVER_JWT_JWKS_URL, CUTOVER_JWT_PUBLIC_KEY_FILE or CUTOVER_JWT_SECRET_FILE); or CUTOVER_AUTH=off for a local experiment (docs/security.md)');
  }
  if (enabled && !apiKeysWanted && !jwt && problems.length === 0) {
    problems.push('authentication is on but API keys are off and no JWT key source is set: nobody could get in. Set CUTOVER_JWT_JWKS_URL (or another JWT key source), turn CUTOVER_API_KEYS on, or CUTOVER_AUTH=off for a local experiment');
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    enabled,
    ...(enabled && jwt ? { jwt } : {}),
    apiKeysEnabled: apiKeysWanted && keks !== undefined,
    ...(keks ? { keks } : {}),
  };
}

function resolveJwt(config: Config, read: ReadText, problems: string[]): JwtSettings | undefined {
  const sources = [
    config.jwtJwksUrl ? 'CUTOVER_JWT_JWKS_URL' : undefined,
    config.jwtPublicKeyFile ? 'CUTOVER_JWT_PUBLIC_KEY_FILE' : undefined,
    config.jwtSecret ? 'CUTOVER_JWT_SECRET' : undefined,
    config.jwtSecretFile ? 'CUTOVER_JWT_SECRET_FILE' : undefined,
  ].filter((s): s is string => s !== undefined);
  if (sources.length === 0) {
    if (config.jwtIssuer || config.jwtAudience) problems.push('CUTOVER_JWT_ISSUER/CUTOVER_JWT_AUDIENCE are set but no JWT key source is (CUTOVER_JWT_JWKS_URL, CUTOVER_JWT_PUBLIC_KEY_FILE or CUTOVER_JWT_SECRET_FILE)');
    return undefined;
  }
  if (sources.length > 1) {
    problems.push(`set one JWT key source, not ${sources.join(' and ')}`);
    return undefined;
  }
  let key: JwtKeySource | undefined;
  if (config.jwtJwksUrl) {
    key = { kind: 'jwks', url: config.jwtJwksUrl };
  } else if (config.jwtPublicKeyFile) {
    const pem = readSetting(read, 'CUTOVER_JWT_PUBLIC_KEY_FILE', config.jwtPublicKeyFile, problems);
    if (pem !== undefined) {
      if (/PRIVATE KEY/.test(pem)) {
        problems.push('CUTOVER_JWT_PUBLIC_KEY_FILE holds a private key: give cutover the public key only');
      } else {
        try {
          createPublicKey(pem);
          key = { kind: 'public-key', pem };
        } catch {
          problems.push('CUTOVER_JWT_PUBLIC_KEY_FILE is not a PEM public key');
        }
      }
    }
  } else {
    const text = config.jwtSecretFile ? readSetting(read, 'CUTOVER_JWT_SECRET_FILE', config.jwtSecretFile, problems)?.trim() : config.jwtSecret;
    if (text !== undefined) {
      const secret = Buffer.from(text, 'utf8');
      if (secret.length < MIN_SECRET_BYTES) problems.push(`${sources[0]}: the JWT secret must be at least ${MIN_SECRET_BYTES} bytes`);
      else key = { kind: 'secret', secret: new Uint8Array(secret) };
    }
  }
  if (!config.jwtIssuer) problems.push('CUTOVER_JWT_ISSUER is required with a JWT key source');
  if (!config.jwtAudience || config.jwtAudience.length === 0) problems.push('CUTOVER_JWT_AUDIENCE is required with a JWT key source');
  const isSecret = !!(config.jwtSecret || config.jwtSecretFile);
  const algorithms = config.jwtAlgorithms ?? (isSecret ? ['HS256'] : DEFAULT_KEY_ALGORITHMS);
  const fitting: readonly string[] = isSecret ? HMAC_ALGORITHMS : ASYMMETRIC_ALGORITHMS;
  const misfits = algorithms.filter((a) => !fitting.includes(a));
  if (misfits.length > 0) {
    problems.push(`CUTOVER_JWT_ALGORITHMS: ${misfits.join(', ')} do not fit ${isSecret ? 'a shared secret (use HS256, HS384, HS512)' : 'a public key or JWKS (use RS*, PS*, ES*, EdDSA)'}`);
  }
  if (!key || !config.jwtIssuer || !config.jwtAudience || misfits.length > 0) return undefined;
  return {
    key,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    algorithms,
    namespacesClaim: config.jwtNamespacesClaim,
    identityClaim: config.jwtIdentityClaim,
    clockToleranceSeconds: config.jwtClockToleranceSeconds,
  };
}

function readSetting(read: ReadText, name: string, path: string, problems: string[]): string | undefined {
  try {
    return read(path);
  } catch (err) {
    problems.push(`${name}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}
