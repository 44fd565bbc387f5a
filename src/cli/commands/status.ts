import type { CommandContext } from '../context.js';
import { notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatAppStatus, liveRecord } from '../format.js';
import type { AppRef } from '../settings.js';

/** `cutover status NAMESPACE/APP`: what runs, what is deploying or queued, the last deployments. */
export async function statusCommand(ctx: CommandContext, ref: AppRef, flags: { last: number }): Promise<number> {
  const [deployments, descriptors] = await Promise.all([
    ctx.api.listDeployments(ref.namespace, ref.appName, flags.last),
    ctx.api.listDescriptors(ref.namespace, ref.appName),
  ]);
  if (deployments.length === 0 && descriptors.length === 0) {
    throw notFound(`${ref.namespace}/${ref.appName}: no descriptor and no deployments`, 'check the namespace and app name; cutover apply -f FILE creates an app\'s descriptor');
  }
  const newest = descriptors[0];
  const descriptor = newest ? { id: newest.id, newVersion: newest.newVersion, lastModified: newest.lastModified } : undefined;
  // Several clusters: what runs in each (records name their cluster; older ones the default).
  const clusters = [...new Set(deployments.map((r) => r.cluster ?? ''))];
  if (clusters.length > 1) {
    if (ctx.json) {
      ctx.emitJson({
        ok: true, exitCode: 0, namespace: ref.namespace, appName: ref.appName,
        clusters: Object.fromEntries(clusters.map((c) => {
          const live = liveRecord(deployments.filter((r) => (r.cluster ?? '') === c));
          return [c || 'default', live ? { version: live.version, since: live.times.switched ?? live.times.finished ?? live.lastModified, deploymentId: live.id } : null];
        })),
        active: deployments.filter((r) => r.status === 'DEPLOYING' || r.status === 'UNDEPLOYING'),
        descriptor: descriptor ?? null,
        deployments,
      });
      return ExitCode.success;
    }
    for (const c of clusters.sort()) {
      ctx.io.stdout.write(`cluster ${c || 'default'}:\n`);
      const lines = formatAppStatus({ namespace: ref.namespace, appName: ref.appName, deployments: deployments.filter((r) => (r.cluster ?? '') === c), descriptor }, ctx.io.now(), ctx.style);
      ctx.io.stdout.write(`${lines.map((l) => `  ${l}`).join('\n')}\n`);
    }
    return ExitCode.success;
  }
  if (ctx.json) {
    const live = liveRecord(deployments);
    ctx.emitJson({
      ok: true, exitCode: 0, namespace: ref.namespace, appName: ref.appName,
      running: live ? { version: live.version, since: live.times.switched ?? live.times.finished ?? live.lastModified, deploymentId: live.id } : null,
      active: deployments.filter((r) => r.status === 'DEPLOYING' || r.status === 'UNDEPLOYING'),
      descriptor: descriptor ?? null,
      deployments,
    });
    return ExitCode.success;
  }
  ctx.io.stdout.write(`${formatAppStatus({ namespace: ref.namespace, appName: ref.appName, deployments, descriptor }, ctx.io.now(), ctx.style).join('\n')}\n`);
  return ExitCode.success;
}
