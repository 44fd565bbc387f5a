import { randomUUID } from 'node:crypto';
import type { DeploymentRecord } from '../domain/deployment.js';
import { validateDescriptor } from '../domain/descriptor-schema.js';
import { RevisionConflictError } from '../domain/errors.js';
import type { ControllerKind, Descriptor } from '../domain/types.js';
import type { Live } from '../store/deployments.js';
import { whileUnavailable } from '../store/kv.js';
import type { Cluster, KubeObject } from './cluster.js';
import type { RunContext } from './context.js';
import { isAmdatuStableService, isAmdatuVersioned } from './labels.js';
import { WORKLOAD_KINDS } from './workload.js';

/**
 * A namespace the Amdatu deployer deployed holds a running version with no cutover record. On the
 * app's first deployment by cutover (no live record), that version is adopted: recorded as the
 * live deployment (DEPLOYED, `adopted`), so this deployment replaces it exactly like one of
 * cutover's own — traffic moves, then the adopted version drains and is removed. Only objects
 * with the original's exact names and labels count (`isAmdatuVersioned`); anything that merely
 * shares the `app` label is left alone. The serving version is the one the original's stable
 * Service selects (else the only one found). Returns the new live pointer, or undefined.
 */
export async function adoptOriginalVersion(ctx: RunContext, d: Descriptor, signal: AbortSignal): Promise<Live | undefined> {
  const found: Array<{ kind: ControllerKind; object: KubeObject; version: string }> = [];
  for (const kind of WORKLOAD_KINDS) {
    for (const object of await ctx.cluster.list(kind, d.namespace, `app=${d.appName}`, signal)) {
      if (object.metadata?.deletionTimestamp || !isAmdatuVersioned(object.metadata, d.appName)) continue;
      if (object.metadata?.annotations?.['cutover.io/deployment-id']) continue;
      found.push({ kind: kind as ControllerKind, object, version: object.metadata!.labels!['version']! });
    }
  }
  if (found.length === 0) return undefined;
  const stable = await ctx.cluster.get('Service', d.namespace, d.appName, signal);
  const served = stable && isAmdatuStableService(stable.metadata, d.appName) ? stable.spec?.selector?.['version'] as string | undefined : undefined;
  const pick = found.find((f) => f.version === served) ?? (found.length === 1 ? found[0] : undefined);
  if (!pick) {
    await ctx.journal.line(`Found versions ${found.map((f) => f.version).join(', ')} of ${d.appName} deployed by the Amdatu deployer, none selected by a stable Service: none adopted, all left alone`);
    return undefined;
  }
  const at = ctx.deps.now().toISOString();
  const name = `${d.appName}-${pick.version}`;
  const objects = [`${pick.kind} ${name}`];
  if (await ctx.cluster.get('Service', d.namespace, name, signal)) objects.push(`Service ${name}`);
  if (served === pick.version) objects.push(`Service ${d.appName}`);
  const record: DeploymentRecord = {
    id: randomUUID(), created: pick.object.metadata?.annotations?.['deploymentTs'] && Date.parse(pick.object.metadata.annotations['deploymentTs'])
      ? new Date(Date.parse(pick.object.metadata.annotations['deploymentTs'])).toISOString() : at,
    lastModified: at, namespace: d.namespace, appName: d.appName, version: pick.version,
    status: 'DEPLOYED', step: 'deployed', descriptor: descriptorOf(d, pick.kind, pick.object, pick.version), OldVersion: '',
    times: { finished: at }, adopted: { from: 'amdatu', objects, at },
  };
  const others = found.filter((f) => f !== pick).map((f) => `${f.kind} ${d.appName}-${f.version}`);
  try {
    const live = await whileUnavailable(() => ctx.deps.store.adopt(record, [
      { type: 'log', message: `Adopted version ${pick.version} of ${d.appName}, deployed by the Amdatu deployer (${objects.join(', ')}), as the live deployment; deployment ${ctx.journal.record.id} replaces it` },
      { type: 'status', status: 'DEPLOYED', step: 'deployed' },
    ]), signal);
    await ctx.journal.line(`Adopted version ${pick.version}, deployed by the Amdatu deployer (${objects.join(', ')}), as the running version: record ${record.id}${others.length > 0 ? `; also found ${others.join(', ')}, not serving: left alone` : ''}`);
    return live;
  } catch (err) {
    // Another replica, or a concurrent request, made a live deployment meanwhile: use that one.
    if (err instanceof RevisionConflictError) return whileUnavailable(() => ctx.deps.store.live(d.namespace, d.appName), signal);
    throw err;
  }
}

/**
 * What the original ran, as a descriptor copy (for the record, and for a later rollback to it):
 * its pod template and replicas, and the settings it wrote as annotations (§8.1 of the reference).
 */
function descriptorOf(current: Descriptor, kind: ControllerKind, workload: KubeObject, version: string): Descriptor {
  const a: Record<string, string> = workload.metadata?.annotations ?? {};
  const podspec = workload.spec?.template?.spec ?? {};
  const input: Record<string, unknown> = {
    namespace: current.namespace, appName: current.appName, newVersion: version, controllerKind: kind,
    replicas: Math.max(1, Number(workload.spec?.replicas ?? 1)), podspec,
    ...(a['frontend'] ? { frontend: a['frontend'] } : {}),
    ...(a['useHealthCheck'] ? { useHealthCheck: a['useHealthCheck'] === 'true' } : {}),
    ...(a['healthCheckPath'] ? { healthCheckPath: a['healthCheckPath'] } : {}),
    ...(a['healthCheckType'] ? { healthCheckType: a['healthCheckType'] } : {}),
    ...(Number(a['healthCheckPort']) > 0 ? { healthCheckPort: Number(a['healthCheckPort']) } : {}),
  };
  const result = validateDescriptor(input);
  const at = new Date().toISOString();
  const base = result.ok ? result.value : { ...current, newVersion: version, controllerKind: kind, podspec };
  return { ...base, id: current.id, created: at, lastModified: at } as Descriptor;
}

/**
 * The highest numeric `version` label of the app's workloads in the namespace (0 when none): an
 * app's first "#" deployment continues after a version someone else deployed.
 */
export async function highestVersionInCluster(cluster: Cluster, namespace: string, appName: string, signal: AbortSignal): Promise<number> {
  let highest = 0;
  for (const kind of WORKLOAD_KINDS) {
    for (const object of await cluster.list(kind, namespace, `app=${appName}`, signal)) {
      const v = object.metadata?.labels?.['version'];
      if (v && /^[0-9]{1,15}$/.test(v)) highest = Math.max(highest, Number(v));
    }
  }
  return highest;
}
