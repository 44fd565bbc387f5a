import type { DeploymentEvent, DeploymentRecord } from '../../domain/deployment.js';
import type { CommandContext } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { followDeployment, type FollowState } from '../follow.js';
import { clockTime, deploymentDuration, formatDuration } from '../format.js';

/** Following a deployment (deploy/rollback/undeploy --wait) and turning its end into an exit code. */

export type WaitKind = 'deploy' | 'undeploy' | 'cancel';

export interface WaitOutcome {
  exitCode: number;
  /** DEPLOYED, FAILURE, UNDEPLOYED, DELETED or NOTHING_TO_UNDEPLOY. */
  outcome: string;
  record: DeploymentRecord | undefined;
  logTail: string[];
  message: string;
}

const LOG_TAIL = 15;
const NOTHING_TO_UNDEPLOY = /^Undeploy requested, but nothing to do/;

export async function waitForDeployment(ctx: CommandContext, target: { namespace: string; appName: string; id: string; version: string }, kind: WaitKind, fromSeq = 0): Promise<WaitOutcome> {
  const tail: DeploymentEvent[] = [];
  const isDone = kind === 'deploy' || kind === 'cancel'
    ? undefined
    : (s: FollowState, events: readonly DeploymentEvent[]) => s.deleted || s.status === 'UNDEPLOYED' || s.status === 'FAILURE'
      || events.some((e) => e.type === 'log' && NOTHING_TO_UNDEPLOY.test(e.message));
  ctx.setInterruptNote(`stopped waiting; deployment ${target.id} goes on on the server: cutover logs ${target.id} -n ${target.namespace} -f`);
  const result = await followDeployment({
    api: ctx.api, client: ctx.client, namespace: target.namespace, deploymentId: target.id, fromSeq, timeoutLabel: ctx.timeoutLabel,
    ...(isDone ? { isDone } : {}),
    onEvent: (e) => {
      if (e.type === 'status') ctx.progress.step(e.time, e.status, e.step);
      else {
        ctx.progress.log(e.time, e.message);
        tail.push(e);
        if (tail.length > LOG_TAIL) tail.shift();
      }
    },
    onHealth: (pods) => ctx.progress.health(pods),
    onNotice: (text) => ctx.progress.notice(text),
  }).finally(() => ctx.setInterruptNote(undefined));

  const logTail = tail.map((e) => (e.type === 'log' ? `${e.time} ${e.message}` : ''));
  const record = result.record;
  const app = `${target.namespace}/${target.appName}`;
  const took = record ? ` in ${formatDuration(deploymentDuration(record, ctx.io.now()))}` : '';
  let outcome: WaitOutcome;
  if (result.state.deleted || !record) {
    outcome = kind === 'undeploy'
      ? { exitCode: ExitCode.success, outcome: 'DELETED', record, logTail, message: `${app}: deployment ${target.id} undeployed and deleted` }
      : { exitCode: ExitCode.deploymentFailed, outcome: 'DELETED', record, logTail, message: `${app}: deployment ${target.id} was deleted before it finished` };
  } else if (kind === 'deploy') {
    // A version that went live and was replaced by a later deployment before we looked also succeeded.
    const wentLive = record.status === 'DEPLOYED' || (record.replacedBy !== undefined && record.times.switched !== undefined);
    outcome = wentLive
      ? { exitCode: ExitCode.success, outcome: 'DEPLOYED', record, logTail, message: `DEPLOYED ${app} version ${record.version}${took}` }
      : { exitCode: ExitCode.deploymentFailed, outcome: record.status, record, logTail, message: `${record.status} ${app} version ${record.version}${record.failureReason ? `: ${record.failureReason}` : ''}` };
  } else if (kind === 'cancel') {
    outcome = record.status === 'FAILURE' && (record.failureReason ?? '').startsWith('cancelled by ')
      ? { exitCode: ExitCode.success, outcome: 'CANCELLED', record, logTail, message: `${app}: version ${record.version} cancelled (${record.failureReason}); nothing of it runs, and the running version was not touched` }
      : record.status === 'DEPLOYED'
        ? { exitCode: ExitCode.conflict, outcome: 'DEPLOYED', record, logTail, message: `${app}: version ${record.version} went live before the cancel took effect; undeploy it or roll back` }
        : { exitCode: ExitCode.deploymentFailed, outcome: record.status, record, logTail, message: `${app}: version ${record.version} ended ${record.status}${record.failureReason ? `: ${record.failureReason}` : ''}` };
  } else if (record.status === 'UNDEPLOYED') {
    outcome = { exitCode: ExitCode.success, outcome: 'UNDEPLOYED', record, logTail, message: `UNDEPLOYED ${app} version ${record.version}` };
  } else if (record.status === 'FAILURE' && (record.failureReason ?? '').startsWith('undeploy failed')) {
    outcome = { exitCode: ExitCode.deploymentFailed, outcome: 'FAILURE', record, logTail, message: `FAILURE undeploying ${app} version ${record.version}: ${record.failureReason}` };
  } else {
    // The undeploy found nothing to do (the deployment failed or was replaced meanwhile): nothing of it runs.
    outcome = { exitCode: ExitCode.success, outcome: 'NOTHING_TO_UNDEPLOY', record, logTail, message: `${app}: nothing to undeploy; deployment ${target.id} is ${record.status}` };
  }
  ctx.progress.finish(outcome.exitCode === ExitCode.success, outcome.message);
  if (outcome.exitCode !== ExitCode.success) reportFailure(ctx, outcome);
  return outcome;
}

/** A failed deployment must be obvious in a CI log: the reason, then the last log lines, on stderr. */
function reportFailure(ctx: CommandContext, outcome: WaitOutcome): void {
  const { style } = ctx;
  const lines = [`${style.red(style.bold('error:'))} ${outcome.message}`];
  if (outcome.logTail.length > 0) {
    lines.push(style.bold(`last ${outcome.logTail.length} log lines:`));
    for (const l of outcome.logTail) {
      const space = l.indexOf(' ');
      lines.push(`  ${ctx.interactive ? clockTime(l.slice(0, space)) : l.slice(0, space)} ${l.slice(space + 1)}`);
    }
  }
  if (outcome.record) lines.push(`${style.yellow('hint:')} the whole log: cutover logs ${outcome.record.id} -n ${outcome.record.namespace}`);
  ctx.io.stderr.write(`${lines.join('\n')}\n`);
}

export function waitJson(outcome: WaitOutcome): Record<string, unknown> {
  return { outcome: outcome.outcome, message: outcome.message, deployment: outcome.record ?? null, logTail: outcome.logTail };
}
