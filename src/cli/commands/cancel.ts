import type { CommandContext } from '../context.js';
import { notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { AppRef } from '../settings.js';
import { waitForDeployment, waitJson } from './watch.js';

/**
 * `cutover cancel NAMESPACE/APP`: stops the app's deployment in progress before its switch (POST
 * /deployments/{id}/cancel); it removes what it created and ends FAILURE "cancelled by …", the
 * running version untouched. Nothing in progress is not an error: there is nothing to stop.
 */
export async function cancelCommand(ctx: CommandContext, ref: AppRef, flags: { wait?: boolean | undefined; id?: string | undefined }): Promise<number> {
  const records = await ctx.api.listDeployments(ref.namespace, ref.appName, 50);
  if (records.length === 0) throw notFound(`${ref.namespace}/${ref.appName} has no deployments`, 'check the namespace and app name');
  const target = flags.id ? records.find((r) => r.id === flags.id) : records.find((r) => r.status === 'DEPLOYING');
  if (!target) {
    if (flags.id) throw notFound(`${ref.namespace}/${ref.appName} has no deployment ${flags.id}`, 'cutover status lists the app\'s deployments');
    const message = `${ref.namespace}/${ref.appName}: nothing to cancel (no deployment is in progress)`;
    ctx.progress.info(message, 'cancel');
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, outcome: 'NOTHING_TO_CANCEL', message, deployment: null });
    return ExitCode.success;
  }
  const fromSeq = flags.wait ? (await ctx.api.events(ref.namespace, target.id, 0)).reduce((max, e) => Math.max(max, e.seq), 0) : 0;
  const answer = await ctx.api.cancel(ref.namespace, target.id, ref.appName);
  ctx.progress.info(`${ref.namespace}/${ref.appName} version ${target.version} (deployment ${target.id}): ${answer.message}`, 'cancel');
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, outcome: 'CANCELLING', message: answer.message, deployment: answer.deployment });
    return ExitCode.success;
  }
  const outcome = await waitForDeployment(ctx, { namespace: ref.namespace, appName: ref.appName, id: target.id, version: target.version }, 'cancel', fromSeq);
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, ...waitJson(outcome) });
  return outcome.exitCode;
}
