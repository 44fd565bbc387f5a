import type { CommandContext } from '../context.js';
import { usageError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { followDeployment } from '../follow.js';
import type { DeploymentEvent } from '../../domain/deployment.js';

export interface LogsFlags {
  namespace?: string | undefined;
  follow?: boolean | undefined;
}

/** "ID" with -n NS, or "NS/ID". */
export function resolveDeploymentRef(arg: string, namespace: string | undefined): { namespace: string; id: string } {
  const slash = arg.indexOf('/');
  if (slash > 0) {
    const ns = arg.slice(0, slash);
    if (namespace !== undefined && namespace !== ns) throw usageError(`-n ${namespace} contradicts ${arg}`);
    return { namespace: ns, id: arg.slice(slash + 1) };
  }
  if (namespace === undefined) throw usageError('which namespace? give -n NAMESPACE (or NAMESPACE/DEPLOYMENT_ID)', 'cutover status NAMESPACE/APP lists an app\'s deployments with their ids');
  return { namespace, id: arg };
}

/**
 * `cutover logs DEPLOYMENT_ID -n NS [-f]`: the log as `GET …/logs` returns it (`<RFC 3339 time>
 * <message>` per line); with -f, followed live until the deployment ends. Exit 0 whatever the
 * outcome: `deploy --wait` and `status` are the commands that judge it.
 */
export async function logsCommand(ctx: CommandContext, arg: string, flags: LogsFlags): Promise<number> {
  const { namespace, id } = resolveDeploymentRef(arg, flags.namespace);
  if (!flags.follow) {
    if (ctx.json) {
      ctx.emitJson({ ok: true, exitCode: 0, namespace, deploymentId: id, events: await ctx.api.events(namespace, id, 0) });
    } else {
      ctx.io.stdout.write(await ctx.api.logText(namespace, id));
    }
    return ExitCode.success;
  }
  const collected: DeploymentEvent[] = [];
  ctx.setInterruptNote(undefined);
  const result = await followDeployment({
    api: ctx.api, client: ctx.client, namespace, deploymentId: id, timeoutLabel: ctx.timeoutLabel,
    onEvent: (e) => {
      if (ctx.json) collected.push(e);
      else if (e.type === 'log') {
        if (ctx.interactive) ctx.progress.log(e.time, e.message);
        else ctx.io.stdout.write(`${e.time} ${e.message}\n`);
      } else if (ctx.interactive) ctx.progress.step(e.time, e.status, e.step);
    },
    onHealth: ctx.interactive ? (pods) => ctx.progress.health(pods) : undefined,
    onNotice: (text) => (ctx.interactive || ctx.json ? ctx.progress.notice(text) : ctx.io.stderr.write(`notice: ${text}\n`)),
  });
  const end = result.state.deleted ? 'DELETED' : result.record?.status ?? 'unknown';
  if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, namespace, deploymentId: id, status: end, deployment: result.record ?? null, events: collected });
  else if (ctx.interactive) ctx.progress.finish(end !== 'FAILURE' && end !== 'DELETED', `${end}${result.record?.failureReason ? `: ${result.record.failureReason}` : ''}`);
  return ExitCode.success;
}
