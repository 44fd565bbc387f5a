import { Agent, fetch as undiciFetch } from 'undici';

/** Small fetch helpers for API tests. */

/**
 * One connection per request: an idle keep-alive socket left in the global pool after a test file
 * ended was destroyed by the client's idle timer with an uncaught "socket idle timeout" (Node 24's
 * bundled undici, under load), failing whole files after their last test. Loopback connections are
 * cheap; tests that are about keep-alive use their own agent.
 */
const noKeepAlive = new Agent({ pipelining: 0 });

export interface JsonResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function request<T = any>(url: string, init: RequestInit & { json?: unknown } = {}): Promise<JsonResponse<T>> {
  const { json, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (json !== undefined) headers.set('Content-Type', 'application/json');
  const res = await undiciFetch(url, {
    ...(rest as Parameters<typeof undiciFetch>[1]), headers: Object.fromEntries(headers), body: json !== undefined ? JSON.stringify(json) : (rest.body as string | undefined), dispatcher: noKeepAlive,
  }) as unknown as Response;
  const text = await res.text();
  let body: unknown = undefined;
  if (text.length > 0 && (res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: body as T, text };
}

/** A descriptor that passes validation; override fields per test. */
export function sampleDescriptor(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    appName: 'web',
    newVersion: '#',
    replicas: 2,
    podspec: { containers: [{ name: 'web', image: 'example/web:1', ports: [{ containerPort: 8080 }] }] },
    ...overrides,
  };
}
