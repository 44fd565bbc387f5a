import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from 'commander';
import type { Credentials } from './client.js';
import { parseDuration } from './duration.js';
import { invalidInput, usageError } from './errors.js';

/** Connection settings from flags, else the environment (flags win). */

export const DEFAULT_URL = 'http://127.0.0.1:8000';
export const DEFAULT_TIMEOUT = '10m';

export interface ConnectionFlags {
  url?: string | undefined;
  keyId?: string | undefined;
  keySecret?: string | undefined;
  keySecretFile?: string | undefined;
  token?: string | undefined;
}

export interface Connection {
  baseUrl: string;
  credentials: Credentials | undefined;
}

const nonEmpty = (v: string | undefined) => (v !== undefined && v.trim() !== '' ? v.trim() : undefined);

export function resolveConnection(flags: ConnectionFlags, env: Record<string, string | undefined>): Connection {
  const rawUrl = nonEmpty(flags.url) ?? nonEmpty(env['CUTOVER_URL']) ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw usageError(`--url "${rawUrl}" is not a URL`, 'give cutover\'s address, e.g. --url https://cutover.example.com (or CUTOVER_URL)');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usageError(`--url "${rawUrl}" must be an http:// or https:// URL`);
  if (url.search || url.hash) throw usageError(`--url "${rawUrl}" must not have a query or fragment`);

  const keyId = nonEmpty(flags.keyId) ?? nonEmpty(env['CUTOVER_KEY_ID']);
  const secretFile = nonEmpty(flags.keySecretFile) ?? nonEmpty(env['CUTOVER_KEY_SECRET_FILE']);
  let secret = nonEmpty(flags.keySecret) ?? (flags.keySecretFile ? undefined : nonEmpty(env['CUTOVER_KEY_SECRET']));
  if (secret === undefined && secretFile !== undefined) {
    try {
      secret = readFileSync(secretFile, 'utf8').trim();
    } catch (err) {
      throw invalidInput(`cannot read the key secret file ${secretFile}: ${(err as { code?: string }).code ?? (err as Error).message}`);
    }
    if (secret === '') throw invalidInput(`the key secret file ${secretFile} is empty`);
  }
  const token = nonEmpty(flags.token) ?? nonEmpty(env['CUTOVER_TOKEN']);

  if (token !== undefined && (keyId !== undefined || secret !== undefined)) {
    throw usageError('give either an API key (--key-id and --key-secret) or a bearer token (--token), not both',
      'check the CUTOVER_KEY_ID, CUTOVER_KEY_SECRET(_FILE) and CUTOVER_TOKEN environment variables too');
  }
  if ((keyId === undefined) !== (secret === undefined)) {
    throw usageError(keyId === undefined ? 'a key secret was given without --key-id (CUTOVER_KEY_ID)' : 'an API key id was given without its secret',
      'an API key needs both its id and its secret: --key-id / CUTOVER_KEY_ID and --key-secret / CUTOVER_KEY_SECRET / CUTOVER_KEY_SECRET_FILE');
  }
  const credentials: Credentials | undefined = token !== undefined
    ? { kind: 'bearer', token }
    : keyId !== undefined && secret !== undefined ? { kind: 'api-key', keyId, secret } : undefined;
  return { baseUrl: url.toString().replace(/\/+$/, ''), credentials };
}

// ---- argument parsers (commander calls them; InvalidArgumentError is a usage error, exit 2) ----

export function parseTimeoutOption(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface AppRef {
  namespace: string;
  appName: string;
}

/** "shop/web" → { namespace: "shop", appName: "web" }. */
export function parseAppRef(value: string): AppRef {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected NAMESPACE/APP, e.g. shop/web; got "${value}"`);
  const [, namespace, appName] = m as unknown as [string, string, string];
  if (namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
    throw new InvalidArgumentError(`"${namespace}" is not a namespace name (lower-case letters, digits and "-", at most 63)`);
  }
  return { namespace, appName };
}

export function parsePositiveInt(value: string): number {
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`expected a positive whole number; got "${value}"`);
  return Number(value);
}

export function parseNamespaceOption(value: string): string {
  if (value.length > 63 || !DNS1123_LABEL.test(value)) throw new InvalidArgumentError(`"${value}" is not a namespace name`);
  return value;
}
