// How a fake pod answers an HTTP request: decided by env FAKE_HEALTH of its first container (the contract
// in docs/testbed.md). Pure function, so the contract can be tested without a network namespace.
import type { FakePod } from './protocol.js';

export interface Answer {
  status: number;
  contentType: string;
  body: string;
  /** Wait this long before answering (FAKE_HEALTH=slow). */
  delayMs: number;
}

export const DEFAULT_SLOW_DELAY_MS = 10_000;

/**
 * @param requestNumber 1 for the pod's first request, 2 for the second, ... (drives `flap`).
 */
export function answer(pod: FakePod, path: string, requestNumber: number): Answer {
  const mode = pod.env.FAKE_HEALTH;
  const pad = padding(path);
  const body = (healthy: boolean) => JSON.stringify({
    healthy,
    pod: pod.name,
    version: pod.labels.version ?? null,
    namespace: pod.namespace,
    ip: pod.ip,
    ...(pad ? { pad } : {}),
  });
  const json = (status: number, healthy: boolean, delayMs = 0): Answer =>
    ({ status, contentType: 'application/json', body: body(healthy), delayMs });
  const error = (text: string): Answer =>
    ({ status: 500, contentType: 'text/plain; charset=utf-8', body: text, delayMs: 0 });

  switch (mode) {
    case undefined:
    case '':
      return byPath(pod, path, json, error);
    case 'healthy':
      return json(200, true);
    case 'unhealthy':
      return json(503, false);
    case 'probe-false':
      return json(200, false);
    case 'error':
      return error(`fake pod ${pod.name}: internal error (FAKE_HEALTH=error)\n`);
    case 'slow':
      return json(200, true, slowDelay(pod.env.FAKE_DELAY_MS));
    case 'flap':
      // Odd requests healthy, even requests unhealthy: 1st healthy, 2nd 503, 3rd healthy, ...
      return requestNumber % 2 === 1 ? json(200, true) : json(503, false);
    default:
      // A typo should be loud, not silently healthy.
      return error(`fake pod ${pod.name}: unknown FAKE_HEALTH=${JSON.stringify(mode)}\n`);
  }
}

/** FAKE_HEALTH unset: the last path segment decides (compatible with the original deployer's demo image). */
function byPath(
  pod: FakePod,
  path: string,
  json: (status: number, healthy: boolean) => Answer,
  error: (text: string) => Answer,
): Answer {
  const segments = (path.split('?')[0] ?? '').split('/').filter(Boolean);
  switch (segments[segments.length - 1]) {
    case 'unhealthy':
      return json(200, false);
    case 'error':
      return error(`fake pod ${pod.name}: internal error (path /error)\n`);
    default:
      return json(200, true);
  }
}

/** `?pad=N` makes a JSON answer N bytes longer (at most 1 MiB): large enough to be compressed. */
export const MAX_PAD = 1 << 20;

function padding(path: string): string | undefined {
  const query = path.includes('?') ? new URLSearchParams(path.slice(path.indexOf('?') + 1)) : undefined;
  const n = Number(query?.get('pad') ?? 0);
  return Number.isInteger(n) && n > 0 ? 'x'.repeat(Math.min(n, MAX_PAD)) : undefined;
}

function slowDelay(raw: string | undefined): number {
  const n = Number(raw);
  return raw !== undefined && raw !== '' && Number.isFinite(n) && n >= 0 ? n : DEFAULT_SLOW_DELAY_MS;
}
