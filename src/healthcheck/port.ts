/** Port used when nothing better is known; the original deployer's default. */
export const DEFAULT_HEALTH_CHECK_PORT = 9999;
export const DEFAULT_HEALTH_CHECK_PATH = 'health';

export interface HealthCheckPortInput {
  healthCheckPort?: number;
  podspec: { containers: Array<{ ports?: Array<{ containerPort: number; name?: string }> }> };
}

/**
 * The port whose health endpoint is checked: `healthCheckPort` when given; otherwise, among the
 * FIRST container's ports, the one named `healthcheck`, else the only one, else the first one;
 * with no ports, 9999. (The original deployer's algorithm, plus `healthCheckPort`, which it ignored.)
 */
export function selectHealthCheckPort(input: HealthCheckPortInput): number {
  if (input.healthCheckPort !== undefined) return input.healthCheckPort;
  const ports = input.podspec.containers[0]?.ports ?? [];
  const named = ports.find((p) => p.name === 'healthcheck');
  // "the only port" and "the first port" both come down to ports[0].
  return (named ?? ports[0])?.containerPort ?? DEFAULT_HEALTH_CHECK_PORT;
}

/** Normalises a descriptor's health-check path to a URL path with exactly one leading "/": "health" → "/health". */
export function healthCheckUrlPath(path: string | undefined): string {
  // Collapsing leading slashes also stops "//host/x" from being read as another authority.
  const relative = (path ?? '').trim().replace(/^\/+/, '');
  return '/' + (relative === '' ? DEFAULT_HEALTH_CHECK_PATH : relative);
}
