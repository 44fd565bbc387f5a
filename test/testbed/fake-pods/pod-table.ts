// Which pods the fake-pods server answers for, and what it needs to know about each.
import type { V1Pod } from '@kubernetes/client-node';
import type { FakePod } from './protocol.js';

/** Cluster 1's pod range (NETWORK.podCidr); cluster 2's pods come from 198.19.64.0/18 (CLUSTER2.podCidr). */
export const DEFAULT_POD_CIDR = '198.18.0.0/16';

function ipv4ToInt(ip: string): number | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const part of parts) {
    const b = Number(part);
    if (!/^\d{1,3}$/.test(part) || b > 255) return undefined;
    n = n * 256 + b;
  }
  return n;
}

/** Whether an IPv4 address lies in an IPv4 CIDR (`198.19.64.0/18`). */
export function cidrContains(cidr: string, ip: string): boolean {
  const [base, bits] = cidr.split('/');
  const b = ipv4ToInt(base ?? '');
  const a = ipv4ToInt(ip);
  const len = Number(bits);
  if (a === undefined || b === undefined || !Number.isInteger(len) || len < 0 || len > 32) return false;
  const size = 2 ** (32 - len);
  return Math.floor(a / size) === Math.floor(b / size);
}

/**
 * A pod is served when its IP is in its cluster's pod range, its first container is running and it is
 * not being deleted.
 */
export function toFakePod(p: V1Pod, podCidr: string = DEFAULT_POD_CIDR): FakePod | undefined {
  const ip = p.status?.podIP;
  if (!ip || !cidrContains(podCidr, ip) || p.metadata?.deletionTimestamp || p.status?.phase !== 'Running') return undefined;
  const first = p.spec?.containers[0];
  if (!first) return undefined;
  const status = p.status.containerStatuses?.find((s) => s.name === first.name);
  if (!status?.state?.running) return undefined;
  const ports = new Set<number>();
  for (const c of p.spec?.containers ?? []) {
    for (const port of c.ports ?? []) if ((port.protocol ?? 'TCP') === 'TCP') ports.add(port.containerPort);
  }
  const env: Record<string, string> = {};
  for (const e of first.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return {
    ip,
    uid: p.metadata?.uid ?? '',
    name: p.metadata?.name ?? '',
    namespace: p.metadata?.namespace ?? '',
    labels: p.metadata?.labels ?? {},
    ports: [...ports].sort((a, b) => a - b),
    env,
  };
}
