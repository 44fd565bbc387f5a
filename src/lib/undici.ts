/**
 * undici's dispatchers and its request API, without the rest of the package: `import 'undici'`
 * also loads fetch, WebSocket, EventSource, the HTTP cache and the mock agents, none of which
 * cutover uses (measured: +8–10 MiB RSS per replica). The paths below belong to the exact undici
 * version pinned in package.json; test/unit/undici-parts.test.ts checks that they are the classes
 * the package itself exports.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);
const DispatcherBase = require('undici/lib/dispatcher/dispatcher.js') as typeof Undici.Dispatcher;
// What undici's index.js does: dispatcher.request() and the other calls of its API.
Object.assign(DispatcherBase.prototype, require('undici/lib/api/index.js') as object);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
export type Agent = Undici.Agent;
export const Pool = require('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
export type Pool = Undici.Pool;
export type PoolOptions = Undici.Pool.Options;
export const Client = require('undici/lib/dispatcher/client.js') as typeof Undici.Client;
export type Client = Undici.Client;
export type { Dispatcher } from 'undici';

export type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  dispatcher: Undici.Dispatcher;
  method?: Undici.Dispatcher.HttpMethod;
};

/** undici's `request(url, options)`, always through the given dispatcher (there is no global one here). */
export function request(url: string | URL, { dispatcher, ...options }: RequestOptions): Promise<Undici.Dispatcher.ResponseData> {
  const { origin, pathname, search } = typeof url === 'string' ? new URL(url) : url;
  return dispatcher.request({ ...options, origin, path: `${pathname}${search}`, method: options.method ?? (options.body ? 'PUT' : 'GET') });
}
