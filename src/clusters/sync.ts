import type { DeploymentRecord, LivePointer } from '../domain/deployment.js';
import type { SyncItem, SyncReport } from '../domain/release.js';

export type { SyncItem, SyncReport };
import { versionedName } from '../domain/names.js';
import { parseRecord } from '../store/json.js';
import type { FleetMember } from './fleet.js';

/**
 * Rebuilds a cluster from the records: for each app live in the cluster (of one namespace, or
 * every namespace cutover manages there) whose version's workload or stable Service is missing,
 * queues a deployment of the live record's descriptor copy under the same version, which becomes
 * the live record once ready, healthy and switched. Idempotent: apps whose objects are there, or
 * that have work queued (a rebuild included), are left alone. Reads the cluster, never deletes.
 */
export async function syncCluster(member: FleetMember, o: { namespace?: string; dryRun: boolean; by: string; signal?: AbortSignal }): Promise<SyncReport> {
  const { entries } = await member.kv.list(o.namespace ? `live/${o.namespace}/` : 'live/');
  const items: SyncItem[] = [];
  for (const entry of entries) {
    const [, namespace, appName] = entry.key.split('/');
    if (!namespace || !appName) continue;
    let pointer: LivePointer;
    try {
      pointer = parseRecord<LivePointer>(entry);
    } catch {
      items.push({ namespace, appName, version: '?', deploymentId: '?', action: 'skipped', reason: 'its live pointer is unreadable' });
      continue;
    }
    const base = { namespace, appName, version: pointer.version, deploymentId: pointer.deploymentId };
    const found = await member.deployments.get(namespace, pointer.deploymentId).catch(() => undefined);
    if (!found || found.value.status !== 'DEPLOYED') {
      items.push({ ...base, action: 'skipped', reason: found ? `its live record is ${found.value.status}` : 'its live record is missing or unreadable' });
      continue;
    }
    const missing = await missingObjects(member, found.value, o.signal);
    if (missing.length === 0) {
      items.push({ ...base, action: 'in-sync' });
      continue;
    }
    const queued = await member.deployments.queue(namespace, appName);
    if (queued.length > 0) {
      items.push({ ...base, action: 'busy', missing, reason: `work is queued for the app (${queued.map((q) => `${q.kind} ${q.deploymentId}`).join(', ')}); run sync again when it is done` });
      continue;
    }
    if (o.dryRun) {
      items.push({ ...base, action: 'rebuild', missing });
      continue;
    }
    const rebuild = await member.requests.restore(found.value, o.by);
    items.push({ ...base, action: 'rebuild', missing, rebuildId: rebuild.id });
  }
  const namespaces = [...new Set(items.map((i) => i.namespace))];
  return { cluster: member.spec.name, dryRun: o.dryRun, namespaces, items };
}

async function missingObjects(member: FleetMember, record: DeploymentRecord, signal?: AbortSignal): Promise<string[]> {
  const { namespace, appName } = record;
  const kind = record.descriptor.controllerKind ?? 'Deployment';
  const name = versionedName(appName, record.version);
  const [workload, stable] = await Promise.all([
    member.cluster.get(kind, namespace, name, signal),
    member.cluster.get('Service', namespace, appName, signal),
  ]);
  return [...(workload ? [] : [`${kind} ${name}`]), ...(stable ? [] : [`Service ${appName}`])];
}
