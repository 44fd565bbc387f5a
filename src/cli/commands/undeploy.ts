import type { CommandContext } from '../context.js';
import { notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { liveRecord } from '../format.js';
import type { AppRef } from '../settings.js';
import { waitForDeployment, waitJson } from './watch.js';

/**
 * `cutover undeploy NAMESPACE/APP`: removes the live version (DELETE /deployments/{id} of the
 * DEPLOYED record; of the newest deploying one when none is live). Nothing live is success: the
 * app is already not running.
 */
export async function undeployCommand(ctx: CommandContext, ref: AppRef, flags: { wait?: boolean | undefined }): Promise<number> {
  const records = await ctx.api.listDeployments(ref.namespace, ref.appName, 50);
  if (records.length === 0) throw notFound(`${ref.namespace}/${ref.appName} has no deployments`, 'check the namespace and app name');
  const target = liveRecord(records) ?? records.find((r) => r.status === 'DEPLOYING');
  if (!target) {
    const message = `${ref.namespace}/${ref.appName}: nothing to undeploy (no deployment is live or in progress)`;
    ctx.progress.info(message, 'undeploy');
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, outcome: 'NOTHING_TO_UNDEPLOY', message, deployment: null });
    return ExitCode.success;
  }
  // Follow only what the undeploy adds to the record's log.
  const fromSeq = flags.wait ? (await ctx.api.events(ref.namespace, target.id, 0)).reduce((max, e) => Math.max(max, e.seq), 0) : 0;
  const answer = await ctx.api.undeploy(ref.namespace, target.id, ref.appName);
  ctx.progress.info(`${ref.namespace}/${ref.appName} version ${target.version} (deployment ${target.id}, ${target.status}): ${answer.message}`, 'undeploy');
  if (!flags.wait || answer.status !== 'queued') {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, outcome: answer.status === 'queued' ? 'QUEUED' : 'NOTHING_TO_UNDEPLOY', message: answer.message, deployment: answer.deployment });
    return ExitCode.success;
  }
  const outcome = await waitForDeployment(ctx, { namespace: ref.namespace, appName: ref.appName, id: target.id, version: target.version }, 'undeploy', fromSeq);
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, ...waitJson(outcome) });
  return outcome.exitCode;
}
