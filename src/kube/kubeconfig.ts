import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';

/**
 * How to reach one cluster: its server and the credentials, read from a kubeconfig or from the
 * pod's service account. Only what cutover needs: client certificates, bearer tokens (inline or
 * from a file, re-read as they rotate), CA data or files, insecure-skip-tls-verify. Exec and
 * auth-provider plugins are refused with a clear message rather than half-supported.
 */
export interface ClusterAccess {
  /** Name of the context (or "in-cluster"), for messages. */
  name: string;
  /** https://host:port (no trailing slash). */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTlsVerify?: boolean;
  tlsServerName?: string;
  /** The bearer token to send now (a token file is re-read once a minute). */
  token?: () => string;
}

export class KubeconfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeconfigError';
  }
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The cluster to deploy to: the kubeconfig at `path`; else, inside a pod, its service account;
 * else $KUBECONFIG (first file) or ~/.kube/config. Never a silent default such as localhost:8080.
 */
export function loadClusterAccess(path: string | undefined, env: NodeJS.ProcessEnv = process.env): ClusterAccess {
  if (path) return fromKubeconfigFile(path);
  if (env['KUBERNETES_SERVICE_HOST']) return inCluster(env);
  const fromEnv = env['KUBECONFIG']?.split(':').find((p) => p.length > 0);
  const defaultFile = join(homedir(), '.kube', 'config');
  if (fromEnv) return fromKubeconfigFile(fromEnv);
  if (existsSync(defaultFile)) return fromKubeconfigFile(defaultFile);
  throw new KubeconfigError('no Kubernetes cluster configured: set CUTOVER_KUBECONFIG (or KUBECONFIG), or run cutover inside a cluster');
}

export function inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT): ClusterAccess {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  if (!host) throw new KubeconfigError('not inside a cluster: KUBERNETES_SERVICE_HOST is not set');
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    name: 'in-cluster',
    server: `https://${hostPart}:${port}`,
    ca: readFileSync(join(dir, 'ca.crt')),
    token: rereadingToken(join(dir, 'token')),
  };
}

interface Named<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

export function fromKubeconfigFile(file: string): ClusterAccess {
  let doc: Record<string, unknown>;
  try {
    doc = (parse(readFileSync(file, 'utf8'), { version: '1.1' }) ?? {}) as Record<string, unknown>;
  } catch (err) {
    throw new KubeconfigError(`cannot read the kubeconfig ${file}: ${(err as Error).message}`);
  }
  return fromKubeconfig(doc, dirname(file), file);
}

/** Reads a parsed kubeconfig; relative file paths in it are relative to `baseDir`. */
export function fromKubeconfig(doc: Record<string, unknown>, baseDir: string, label = 'the kubeconfig'): ClusterAccess {
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || !contextName) throw new KubeconfigError(`${label} has no current cluster (current-context is not set)`);
  const find = <T>(list: unknown, name: string, what: string): T => {
    const item = (Array.isArray(list) ? (list as Array<Named<T>>) : []).find((x) => x?.name === name);
    const value = item?.[what] as T | undefined;
    if (!value) throw new KubeconfigError(`${label} has no current cluster: ${what} "${name}" is not defined`);
    return value;
  };
  const context = find<Record<string, string>>(doc['contexts'], contextName, 'context');
  const cluster = find<Record<string, unknown>>(doc['clusters'], context['cluster'] ?? '', 'cluster');
  const user = context['user'] ? find<Record<string, unknown>>(doc['users'], context['user'], 'user') : {};
  const server = String(cluster['server'] ?? '').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(server)) throw new KubeconfigError(`${label}: cluster "${context['cluster']}" has no server URL`);
  if (user['exec'] || user['auth-provider']) {
    throw new KubeconfigError(`${label}: user "${context['user']}" authenticates with an ${user['exec'] ? 'exec' : 'auth-provider'} plugin, which cutover does not run; use a client certificate or a token (e.g. a service account's)`);
  }
  const file = (p: unknown) => readFileSync(isAbsolute(String(p)) ? String(p) : join(baseDir, String(p)));
  const data = (inline: unknown, path: unknown): Buffer | undefined => {
    if (typeof inline === 'string' && inline) return Buffer.from(inline, 'base64');
    if (typeof path === 'string' && path) return file(path);
    return undefined;
  };
  const ca = data(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = data(user['client-certificate-data'], user['client-certificate']);
  const key = data(user['client-key-data'], user['client-key']);
  const tokenFile = typeof user['tokenFile'] === 'string' ? (isAbsolute(user['tokenFile']) ? user['tokenFile'] : join(baseDir, user['tokenFile'])) : undefined;
  const token = typeof user['token'] === 'string' && user['token'] ? staticToken(user['token']) : tokenFile ? rereadingToken(tokenFile) : undefined;
  return {
    name: contextName,
    server,
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecureSkipTlsVerify: true } : {}),
    ...(typeof cluster['tls-server-name'] === 'string' ? { tlsServerName: cluster['tls-server-name'] } : {}),
    ...(token ? { token } : {}),
  };
}

function staticToken(token: string): () => string {
  return () => token;
}

/** Service-account tokens rotate: re-read the file when the copy is older than a minute. */
function rereadingToken(path: string): () => string {
  let value = readFileSync(path, 'utf8').trim();
  let readAt = Date.now();
  return () => {
    if (Date.now() - readAt > 60_000) {
      try {
        value = readFileSync(path, 'utf8').trim();
        readAt = Date.now();
      } catch {
        // keep the last token; the API server says when it no longer works
      }
    }
    return value;
  };
}
