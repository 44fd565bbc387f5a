import type { DeploymentRecord } from '../../domain/deployment.js';
import { normaliseVersion } from '../../domain/names.js';
import type { ApiResponse } from '../client.js';
import type { CommandContext } from '../context.js';
import { notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { liveRecord } from '../format.js';
import type { AppRef } from '../settings.js';
import { absoluteLocation, reportStarted } from './deploy.js';
import { waitForDeployment, waitJson } from './watch.js';

/** Deployments enough to find the previous version even after a run of failed attempts. */
const HISTORY = 200;

/** A record whose version once served traffic: it was switched to, or replaced by a later one. */
export function wasLive(r: DeploymentRecord): boolean {
  return r.status === 'DEPLOYED' || r.times.switched !== undefined || r.replacedBy !== undefined;
}

/**
 * Which record to redeploy. Default: the version that ran before the live one (the record the
 * live one replaced, else the newest other version that was live). With --to VERSION: the newest
 * record of that version that was live. Records come newest first.
 */
export function chooseRollbackTarget(records: DeploymentRecord[], toVersion?: string): { target: DeploymentRecord | undefined; live: DeploymentRecord | undefined } {
  const live = liveRecord(records);
  if (toVersion !== undefined) {
    const version = normaliseVersion(toVersion);
    // Already there: the state a pipeline asks for holds, so this is a success with nothing to do.
    if (live?.version === version) return { target: undefined, live };
    const target = records.find((r) => r.version === version && wasLive(r));
    if (!target) {
      const failedOnly = records.some((r) => r.version === version);
      throw notFound(`no successful deployment of version ${version}${failedOnly ? ' (it was deployed, but never went live)' : ''}`, 'cutover status NAMESPACE/APP lists the versions');
    }
    return { target, live };
  }
  const replaced = live?.replaces ? records.find((r) => r.id === live.replaces && r.version !== live.version) : undefined;
  const target = replaced ?? records.find((r) => r !== live && wasLive(r) && r.version !== live?.version && (!live || Date.parse(r.created) < Date.parse(live.created)));
  if (!target) throw notFound(live ? `no earlier successful version to roll back to (version ${live.version} is the only one that went live)` : 'no successful deployment to roll back to');
  return { target, live };
}

/**
 * `cutover rollback NAMESPACE/APP [--to VERSION]`: redeploys an earlier record's copy of its
 * descriptor (PUT /deployments/{id}), i.e. the same pod spec and settings as then, as a normal
 * blue-green deployment. A descriptor with "#" gets a new version number (numbers are never reused).
 */
export async function rollbackCommand(ctx: CommandContext, ref: AppRef, flags: { to?: string | undefined; wait?: boolean | undefined }): Promise<number> {
  const records = await ctx.api.listDeployments(ref.namespace, ref.appName, HISTORY);
  if (records.length === 0) throw notFound(`${ref.namespace}/${ref.appName} has no deployments`);
  const { target, live } = chooseRollbackTarget(records, flags.to);
  if (!target) {
    const message = `${ref.namespace}/${ref.appName}: version ${live?.version} runs already (deployment ${live?.id}); nothing to do`;
    ctx.progress.info(message, 'rollback');
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, outcome: 'ALREADY_RUNNING', message, deployment: live ?? null });
    return ExitCode.success;
  }
  const inProgress = records.filter((r) => r.status === 'DEPLOYING');
  if (inProgress.length > 0) ctx.progress.notice(`${inProgress.length} deployment(s) in progress; the rollback runs after them`);

  // The version the live one replaced may still be draining: then the server switches traffic
  // straight back to its running pods (instant) — or, after the drain, redeploys it.
  if (live && target.id === live.replaces) return rollbackLive(ctx, ref, live, target, flags);
  ctx.progress.info(`${ref.namespace}/${ref.appName}: ${live ? `version ${live.version} runs now (deployment ${live.id})` : 'nothing runs now'}; `
    + `redeploying the descriptor of version ${target.version} (deployment ${target.id}, ${target.status.toLowerCase()})`, 'rollback');

  const before = new Set(records.slice(0, 20).map((r) => r.id));
  const started = await ctx.api.redeploy(ref.namespace, target.id, ref.appName, async () => {
    const mine = (await ctx.api.listDeployments(ref.namespace, ref.appName, 20)).find((r) => !before.has(r.id) && r.redeployOf === target.id);
    return mine ? ({ status: 202, headers: new Headers(), body: mine, text: '' } satisfies ApiResponse<DeploymentRecord>) : undefined;
  });
  const record = started.record;
  const location = absoluteLocation(ctx, started.location, record);
  reportStarted(ctx, record, location, 'rollback deployment');
  if (record.version !== target.version) ctx.progress.info(`version ${target.version}'s descriptor is deployed as version ${record.version} (its newVersion is "${target.descriptor.newVersion}")`, 'deploy');
  const base = { rolledBackTo: { deploymentId: target.id, version: target.version }, replacing: live ? { deploymentId: live.id, version: live.version } : null, location };
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, ...base, deployment: record });
    return ExitCode.success;
  }
  const outcome = await waitForDeployment(ctx, { namespace: ref.namespace, appName: ref.appName, id: record.id, version: record.version }, 'deploy');
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, ...base, ...waitJson(outcome) });
  return outcome.exitCode;
}

/** POST /deployments/{live}/rollback: instant while the replaced version drains, else a redeploy of its copy. */
async function rollbackLive(ctx: CommandContext, ref: AppRef, live: DeploymentRecord, target: DeploymentRecord, flags: { wait?: boolean | undefined }): Promise<number> {
  const answer = await ctx.api.rollback(ref.namespace, live.id, ref.appName);
  const record = answer.deployment;
  const base = { mode: answer.mode, rolledBackTo: { deploymentId: target.id, version: target.version }, replacing: { deploymentId: live.id, version: live.version } };
  const now = `version ${live.version} runs now (deployment ${live.id})`;
  if (answer.mode === 'instant') {
    ctx.progress.info(`${ref.namespace}/${ref.appName}: ${now}; version ${target.version} (deployment ${target.id}) is still draining: switching traffic straight back to it (no new pods)`, 'rollback');
  } else {
    ctx.progress.info(`${ref.namespace}/${ref.appName}: ${now}; redeploying the descriptor of version ${target.version} (deployment ${target.id}, ${target.status.toLowerCase()}): it no longer runs`, 'rollback');
    reportStarted(ctx, record, absoluteLocation(ctx, undefined, record), 'rollback deployment');
    if (record.version !== target.version) ctx.progress.info(`version ${target.version}'s descriptor is deployed as version ${record.version} (its newVersion is "${target.descriptor.newVersion}")`, 'deploy');
  }
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, ...base, message: answer.message, deployment: record });
    return ExitCode.success;
  }
  const outcome = await waitForDeployment(ctx, { namespace: ref.namespace, appName: ref.appName, id: record.id, version: record.version }, 'deploy');
  // Instant: success means this very record is live again because of this rollback.
  const restored = answer.mode === 'redeploy' || (outcome.record?.status === 'DEPLOYED' && outcome.record.restoredFrom === live.id);
  const exitCode = restored ? outcome.exitCode : ExitCode.deploymentFailed;
  const message = answer.mode === 'instant'
    ? restored ? `DEPLOYED ${ref.namespace}/${ref.appName} version ${target.version} again (instant rollback of version ${live.version})` : `${ref.namespace}/${ref.appName}: the instant rollback did not happen (see cutover logs ${live.id} -n ${ref.namespace})`
    : outcome.message;
  if (!restored) ctx.progress.notice(message);
  if (ctx.json) ctx.emitJson({ ok: exitCode === 0, exitCode, ...base, ...waitJson({ ...outcome, exitCode, message }) });
  return exitCode;
}
