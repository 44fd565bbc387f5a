// Which pods the fake-pods server answers for, and what it needs to know about each.
import type { V1Pod } from '@kubernetes/client-node';
import type { FakePod } from './protocol.js';

const POD_IP_PREFIX = '198.18.'; // NETWORK.podCidr (198.18.0.0/16)

/** A pod is served when its first container is running and it is not being deleted. */
export function toFakePod(p: V1Pod): FakePod | undefined {
  const ip = p.status?.podIP;
  if (!ip || !ip.startsWith(POD_IP_PREFIX) || p.metadata?.deletionTimestamp || p.status?.phase !== 'Running') return undefined;
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
