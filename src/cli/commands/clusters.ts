import type { ReleaseView } from '../../domain/release.js';
import type { SyncReport } from '../../domain/release.js';
import { query } from '../client.js';
import type { CommandContext } from '../context.js';
import { CliError } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { table } from '../format.js';
import type { AppRef } from '../settings.js';

/** Clusters, releases across them, promotion between environments, and rebuilding a cluster (docs/clusters.md). */

export interface ClusterInfo {
  name: string;
  environment: string;
  default: boolean;
  reachable: boolean;
  version?: string;
  error?: string;
  latencyMs: number;
}

const FINAL = new Set(['DEPLOYED', 'FAILURE', 'UNDEPLOYED']);
const POLL_MS = 1000;

export async function clustersCommand(ctx: CommandContext): Promise<number> {
  const res = await ctx.client.get<ClusterInfo[]>('/clusters', { action: 'listing the clusters' });
  const clusters = res.body;
  if (ctx.json) {
    ctx.emitJson({ ok: true, exitCode: 0, clusters });
    return ExitCode.success;
  }
  const rows = clusters.map((c) => [c.name + (c.default ? ' *' : ''), c.environment, c.reachable ? `${c.version ?? '?'}` : `unreachable: ${c.error ?? ''}`, `${c.latencyMs} ms`]);
  ctx.io.stdout.write(`${table([['CLUSTER', 'ENVIRONMENT', 'VERSION', 'LATENCY'], ...rows], ctx.style).join('\n')}\n`);
  return ExitCode.success;
}

/** Follows a release until every one of its deployments has ended; exit 0 only when it is DEPLOYED. */
export async function waitForRelease(ctx: CommandContext, namespace: string, id: string): Promise<{ exitCode: number; release: ReleaseView }> {
  ctx.setInterruptNote(`stopped waiting; release ${id} goes on on the server: curl '${ctx.client.url(`/releases/${id}/${query({ namespace })}`)}'`);
  const seen = new Map<string, string>();
  const deadline = Date.now() + ctx.timeoutMs;
  for (;;) {
    const release = (await ctx.client.get<ReleaseView>(`/releases/${encodeURIComponent(id)}/${query({ namespace })}`, { action: `reading release ${id}`, namespace })).body;
    for (const d of release.deployments) {
      const now = `${d.status ?? 'missing'} ${d.step ?? ''}`.trim();
      if (seen.get(d.cluster) !== now) {
        seen.set(d.cluster, now);
        ctx.progress.info(`${d.cluster}: ${now}${d.failureReason ? ` — ${d.failureReason}` : ''}`, 'release');
      }
    }
    if (release.status !== 'DEPLOYING') {
      ctx.progress.info(`release ${id} of ${release.namespace}/${release.appName} version ${release.version}: ${release.status}`, 'release');
      return { exitCode: release.status === 'DEPLOYED' ? ExitCode.success : ExitCode.deploymentFailed, release };
    }
    if (Date.now() > deadline) throw new CliError(ExitCode.timeout, `release ${id} still DEPLOYING after ${ctx.timeoutLabel}; it goes on on the server`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** `cutover promote NS/APP --from A --to B`: deploys the release DEPLOYED in A to every cluster of B. */
export async function promoteCommand(ctx: CommandContext, ref: AppRef, flags: { from: string; to: string; release?: string | undefined; wait?: boolean | undefined }): Promise<number> {
  let source = flags.release;
  if (!source) {
    const releases = (await ctx.client.get<ReleaseView[]>(`/releases/${query({ namespace: ref.namespace, appname: ref.appName, environment: flags.from })}`, { action: `listing the releases of ${ref.namespace}/${ref.appName} in ${flags.from}`, namespace: ref.namespace })).body;
    const deployed = releases.find((r) => r.status === 'DEPLOYED');
    if (!deployed) {
      const newest = releases[0];
      throw new CliError(ExitCode.conflict, `${ref.namespace}/${ref.appName} has no release DEPLOYED in ${flags.from}${newest ? ` (the newest, ${newest.id} version ${newest.version}, is ${newest.status})` : ' (it was never deployed there)'}`,
        { hint: `deploy it there first: cutover deploy ${ref.namespace}/${ref.appName} --environment ${flags.from} --wait` });
    }
    source = deployed.id;
  }
  const res = await ctx.client.request<ReleaseView>('POST', `/releases/${encodeURIComponent(source)}/promote${query({ namespace: ref.namespace })}`, {
    json: { environment: flags.to }, idempotent: false,
    context: { action: `promoting release ${source} of ${ref.namespace}/${ref.appName} to ${flags.to}`, namespace: ref.namespace },
  });
  const release = res.body;
  ctx.progress.info(`release ${release.id}: ${ref.namespace}/${ref.appName} version ${release.version} promoted from ${flags.from} to ${flags.to} (${release.deployments.map((d) => d.cluster).join(', ')})`, 'promote');
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, release });
    return ExitCode.success;
  }
  const outcome = await waitForRelease(ctx, ref.namespace, release.id);
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, release: outcome.release });
  return outcome.exitCode;
}

/** `cutover sync --cluster NAME`: re-creates the live versions a cluster lacks, from the records. */
export async function syncCommand(ctx: CommandContext, flags: { cluster: string; namespace?: string | undefined; dryRun?: boolean | undefined; wait?: boolean | undefined }): Promise<number> {
  const res = await ctx.client.request<SyncReport>('POST', `/clusters/${encodeURIComponent(flags.cluster)}/sync${query({ namespace: flags.namespace, dryRun: flags.dryRun ? 'true' : undefined })}`, {
    idempotent: true, // a second sync finds the rebuild queued and leaves the app alone
    context: { action: `syncing cluster ${flags.cluster}`, ...(flags.namespace ? { namespace: flags.namespace } : {}) },
  });
  const report = res.body;
  if (report.items.length === 0 && !ctx.json) ctx.progress.info(`cluster ${report.cluster}: no live apps${flags.namespace ? ` in ${flags.namespace}` : ''}`, 'sync');
  for (const i of report.items) {
    const what = i.action === 'rebuild' ? (report.dryRun ? `would rebuild (missing: ${i.missing?.join(', ')})` : `rebuilding as ${i.rebuildId} (missing: ${i.missing?.join(', ')})`)
      : i.action === 'in-sync' ? 'in sync' : `${i.action}: ${i.reason ?? ''}`;
    if (!ctx.json) ctx.progress.info(`${i.namespace}/${i.appName} version ${i.version}: ${what}`, 'sync');
  }
  let exitCode: number = ExitCode.success;
  const results: Array<{ namespace: string; appName: string; deploymentId: string; status: string }> = [];
  if (flags.wait && !report.dryRun) {
    const deadline = Date.now() + ctx.timeoutMs;
    for (const i of report.items.filter((x) => x.rebuildId)) {
      for (;;) {
        const r = (await ctx.api.getDeployment(i.namespace, i.rebuildId!)).body;
        if (FINAL.has(r.status)) {
          ctx.progress.info(`${i.namespace}/${i.appName} version ${i.version}: ${r.status}${r.failureReason ? ` — ${r.failureReason}` : ''}`, 'sync');
          results.push({ namespace: i.namespace, appName: i.appName, deploymentId: r.id, status: r.status });
          if (r.status !== 'DEPLOYED') exitCode = ExitCode.deploymentFailed;
          break;
        }
        if (Date.now() > deadline) throw new CliError(ExitCode.timeout, `the rebuild of ${i.namespace}/${i.appName} is still ${r.status} after ${ctx.timeoutLabel}; it goes on on the server`);
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
    }
  }
  if (ctx.json) ctx.emitJson({ ok: exitCode === 0, exitCode, report, ...(flags.wait ? { results } : {}) });
  return exitCode;
}
