import { Agent, request } from '../../lib/undici.js';
import { isDeadlineExceeded, withDeadline } from '../../lib/deadline.js';

/**
 * A read-only client of etcd's v2 keys API (plain HTTP and JSON), just enough to read the Amdatu
 * deployer's data: `GET /v2/keys/{dir}?recursive=true`. Every failure becomes a SourceError whose
 * message says what to do, never a stack trace.
 */

/** One node of a v2 answer: a directory with `nodes`, or a key with a `value`. */
export interface V2Node {
  key: string;
  dir?: boolean;
  value?: string;
  nodes?: V2Node[];
  createdIndex?: number;
  modifiedIndex?: number;
}

/** The source etcd cannot be used (bad URL, unreachable, no v2 API, not etcd). */
export class SourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** `--from`: an http(s) URL of an etcd client endpoint, without credentials, query or fragment. */
export function parseSourceUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new SourceError(`--from ${JSON.stringify(raw)} is not a URL; give the original's etcd client endpoint, e.g. --from http://etcd:2379`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SourceError(`--from must be an http:// or https:// URL of etcd's client endpoint, not ${url.protocol}//…`);
  }
  if (url.username || url.password) throw new SourceError('--from must not contain credentials (etcd v2 authentication is not supported)');
  if (url.search || url.hash) throw new SourceError('--from must not have a query or fragment: give only the endpoint, e.g. http://etcd:2379');
  return url;
}

export interface EtcdV2ReaderOptions {
  /** Per request: connect, headers and body. Default 30 s (a whole log tree is one answer). */
  timeoutMs?: number;
}

export class EtcdV2Reader {
  readonly #agent: Agent;
  readonly #timeoutMs: number;

  constructor(readonly base: URL, options: EtcdV2ReaderOptions = {}) {
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#agent = new Agent({ connect: { timeout: this.#timeoutMs }, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs });
  }

  /** etcd's own version (GET /version), e.g. "3.4.23"; also proves the endpoint is etcd. */
  async serverVersion(): Promise<string> {
    const { status, text } = await this.#get('/version');
    const parsed = status === 200 ? tryJson(text) as { etcdserver?: unknown } | undefined : undefined;
    if (typeof parsed?.etcdserver !== 'string') {
      throw new SourceError(`${this.#show('/version')} did not answer like etcd (status ${status}: ${snippet(text)})`);
    }
    return parsed.etcdserver;
  }

  /**
   * The whole tree under `dir` (e.g. "/deployer/descriptors"), or undefined when it does not
   * exist. SourceError when the endpoint has no v2 API (etcd 3.4+ without --enable-v2).
   */
  async tree(dir: string): Promise<V2Node | undefined> {
    const path = `/v2/keys${dir.split('/').map(encodeURIComponent).join('/')}?recursive=true&sorted=true`;
    const { status, text, contentType } = await this.#get(path);
    const body = contentType.includes('json') ? tryJson(text) as { node?: V2Node; errorCode?: number; message?: string } | undefined : undefined;
    if (status === 404 && body?.errorCode === 100) return undefined; // "Key not found": nothing there
    if (status === 404 && !body) {
      throw new SourceError(`${this.base.origin} does not serve etcd's v2 API (GET /v2/keys answered 404 ${JSON.stringify(snippet(text))}). `
        + 'The original deployer kept its data in the v2 key space: run its etcd with --enable-v2=true (etcd 3.4), or point --from at the etcd it used.');
    }
    if (status !== 200 || !body?.node) {
      throw new SourceError(`${this.#show(path)} answered ${status}${body?.message ? ` (${body.message})` : ''}: ${snippet(text)}`);
    }
    return body.node;
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }

  async #get(path: string): Promise<{ status: number; text: string; contentType: string }> {
    const url = new URL(path, this.base);
    try {
      return await withDeadline(this.#timeoutMs, undefined, async (signal) => {
        const res = await request(url, { method: 'GET', dispatcher: this.#agent, headers: { accept: 'application/json' }, signal });
        const text = await res.body.text();
        return { status: res.statusCode, text, contentType: String(res.headers['content-type'] ?? '') };
      });
    } catch (err) {
      throw new SourceError(`cannot read ${this.#show(path)}: ${describeNetworkError(err)}`);
    }
  }

  #show(path: string): string {
    return `${this.base.origin}${path.split('?')[0]}`;
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string }; name?: string };
  const code = e.code ?? e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (is etcd running there?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (isDeadlineExceeded(err) || e.name === 'TimeoutError' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return 'no answer in time';
  return [code, e.message ?? String(err)].filter(Boolean).join(' ');
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function snippet(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > 120 ? `${oneLine.slice(0, 119)}…` : oneLine;
}
