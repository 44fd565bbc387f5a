/** Helpers of the security tests: configuration with auth on, JWTs, a JWKS server, signed requests. */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { signRequest } from '../../src/auth/signing.js';
import { request, type JsonResponse } from './http.js';

export const ISSUER = 'https://idp.test.invalid/';
export const AUDIENCE = 'cutover-test';

/** A fresh key-encryption key and HS256 secret per test file. */
export function authSecrets(): { kek: string; jwtSecret: string } {
  return { kek: randomBytes(32).toString('base64'), jwtSecret: randomBytes(32).toString('base64url') };
}

/** Environment for a cutover with authentication on: API keys plus HS256 bearer tokens. */
export function authEnv(secrets: { kek: string; jwtSecret: string }, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CUTOVER_AUTH: 'on',
    CUTOVER_KEY_ENCRYPTION_KEY: secrets.kek,
    CUTOVER_JWT_SECRET: secrets.jwtSecret,
    CUTOVER_JWT_ISSUER: ISSUER,
    CUTOVER_JWT_AUDIENCE: AUDIENCE,
    ...extra,
  };
}

export interface TokenOptions {
  sub?: string;
  namespaces?: unknown;
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative = already expired. */
  expiresIn?: number;
  claims?: Record<string, unknown>;
}

/** An HS256 token with the test issuer and audience, valid for 5 minutes unless told otherwise. */
export async function hsToken(secret: string, options: TokenOptions = {}): Promise<string> {
  return signToken(new TextEncoder().encode(secret), 'HS256', undefined, options);
}

export async function signToken(key: CryptoKey | Uint8Array, alg: string, kid: string | undefined, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const claims: Record<string, unknown> = { ...options.claims };
  if (options.namespaces !== undefined) claims['namespaces'] = options.namespaces;
  return new SignJWT(claims)
    .setProtectedHeader({ alg, ...(kid ? { kid } : {}) })
    .setSubject(options.sub ?? 'alice')
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 300))
    .sign(key);
}

/** An unsigned token (`alg: none`) with otherwise valid claims. */
export function noneToken(options: TokenOptions = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: options.sub ?? 'mallory', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, namespaces: options.namespaces ?? '*' })}.`;
}

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** A JWKS endpoint on loopback serving the public halves of RS256 and ES256 keys. */
export class JwksServer {
  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    readonly keys: Array<{ kid: string; alg: string; privateKey: CryptoKey }>,
  ) {}

  requests = 0;

  static async start(): Promise<JwksServer> {
    const made = await Promise.all(['RS256', 'ES256'].map(async (alg, i) => {
      const pair = await generateKeyPair(alg, { extractable: true });
      const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: `key-${i}`, alg, use: 'sig' };
      return { kid: `key-${i}`, alg, privateKey: pair.privateKey, jwk };
    }));
    const body = JSON.stringify({ keys: made.map((k) => k.jwk) });
    let self: JwksServer | undefined;
    const server = http.createServer((req, res) => {
      if (self) self.requests++;
      if (req.url !== '/.well-known/jwks.json') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    self = new JwksServer(server, `http://127.0.0.1:${port}/.well-known/jwks.json`, made.map(({ kid, alg, privateKey }) => ({ kid, alg, privateKey })));
    return self;
  }

  token(options: TokenOptions = {}, which = 0): Promise<string> {
    const key = this.keys[which]!;
    return signToken(key.privateKey, key.alg, key.kid, options);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface ApiKey {
  id: string;
  secret: string;
}

/** A request signed with an API key; `target` is the path with query exactly as sent. */
export async function signedRequest(base: string, key: ApiKey, method: string, target: string, options: { json?: unknown; headers?: Record<string, string>; timestamp?: number } = {}): Promise<JsonResponse> {
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = {
    ...signRequest({ keyId: key.id, secret: key.secret, method, pathWithQuery: target, ...(body !== undefined ? { body } : {}), ...(options.timestamp !== undefined ? { timestamp: options.timestamp } : {}) }),
    ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    ...options.headers,
  };
  return request(`${base}${target}`, { method, headers, ...(body !== undefined ? { body } : {}) });
}

/** Creates an API key through the REST endpoint with an administrator's token. */
export async function createKey(base: string, adminToken: string, team: string, namespaces: string[] | string, extra: Record<string, unknown> = {}): Promise<ApiKey & { body: any }> {
  const res = await request(`${base}/admin/keys`, { method: 'POST', headers: bearer(adminToken), json: { team, namespaces, ...extra } });
  if (res.status !== 201) throw new Error(`creating a key answered ${res.status}: ${res.text}`);
  return { id: res.body.key.id, secret: res.body.secret, body: res.body };
}
