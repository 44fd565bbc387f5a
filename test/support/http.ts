/** Small fetch helpers for API tests. */
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
  const res = await fetch(url, { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body });
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
