import type { DeploymentRecord } from '../../domain/deployment.js';
import { normaliseAppName, normaliseVersion } from '../../domain/names.js';
import type { Descriptor } from '../../domain/types.js';
import type { ApiResponse } from '../client.js';
import type { CommandContext } from '../context.js';
import { loadDescriptorFile, type DescriptorDocument } from '../descriptor-file.js';
import { invalidInput, notFound } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import type { AppRef } from '../settings.js';
import { applyDocuments, applyJson, reportApply, type ApplyOutcome } from './apply.js';
import { waitForDeployment, waitJson } from './watch.js';
import { waitForRelease } from './clusters.js';
import { query } from '../client.js';
import type { ReleaseView } from '../../domain/release.js';

export interface DeployFlags {
  file?: string | undefined;
  version?: string | undefined;
  wait?: boolean | undefined;
  cluster?: string | undefined;
  environment?: string | undefined;
}

/** The document of FILE that describes NAMESPACE/APP. */
function pickDocument(docs: DescriptorDocument[], ref: AppRef, file: string): DescriptorDocument {
  const describe = (d: DescriptorDocument) => `${String(d.body['namespace'] ?? '?')}/${String(d.body['appName'] ?? '?')}`;
  const matching = docs.filter((d) => typeof d.body['appName'] === 'string' && normaliseAppName(d.body['appName']) === ref.appName
    && (d.body['namespace'] === undefined || d.body['namespace'] === ref.namespace));
  if (matching.length === 1) return matching[0]!;
  if (matching.length === 0) {
    throw invalidInput(`${file} has no descriptor of ${ref.namespace}/${ref.appName} (it has: ${docs.map(describe).join(', ')})`, undefined,
      'name the app the file describes, or fix namespace/appName in the file');
  }
  throw invalidInput(`${file} has ${matching.length} descriptors of ${ref.namespace}/${ref.appName}; keep one`);
}

/** The descriptor to deploy: from FILE (applied first), else the app's newest, with --version applied. */
async function descriptorToDeploy(ctx: CommandContext, ref: AppRef, flags: DeployFlags): Promise<{ descriptor: Descriptor; applied: ApplyOutcome[] }> {
  if (flags.file !== undefined) {
    const docs = await loadDescriptorFile(flags.file, ctx.io.stdin);
    const doc = pickDocument(docs, ref, flags.file === '-' ? 'stdin' : flags.file);
    if (docs.length > 1) ctx.progress.notice(`applying only ${doc.label} (the descriptor of ${ref.namespace}/${ref.appName}); cutover apply applies them all`);
    const applied = await applyDocuments(ctx, [doc], { namespace: ref.namespace, newVersion: flags.version });
    return { descriptor: applied[0]!.descriptor, applied };
  }
  const newest = (await ctx.api.listDescriptors(ref.namespace, ref.appName))[0];
  if (!newest) {
    throw notFound(`${ref.namespace}/${ref.appName} has no descriptor`, `create one first: cutover apply -f app.yaml, or apply and deploy in one step: cutover deploy ${ref.namespace}/${ref.appName} -f app.yaml`);
  }
  if (flags.version === undefined || normaliseVersion(flags.version) === newest.newVersion) return { descriptor: newest, applied: [] };
  const applied = await applyDocuments(ctx, [{ label: `descriptor ${newest.id}`, body: { ...newest } }], { namespace: ref.namespace, newVersion: flags.version });
  return { descriptor: applied[0]!.descriptor, applied };
}

/**
 * Starts a deployment, with a retry that cannot deploy twice: after an ambiguous failure the
 * app's records are compared with those that existed before, and a new one of this descriptor is ours.
 */
export async function startDeployment(ctx: CommandContext, ref: AppRef, descriptorId: string, target: { cluster?: string | undefined; environment?: string | undefined } = {}): Promise<{ record: DeploymentRecord; location: string }> {
  const before = new Set((await ctx.api.listDeployments(ref.namespace, ref.appName, 20)).map((r) => r.id));
  const started = await ctx.api.startDeployment(ref.namespace, descriptorId, ref.appName, async () => {
    const mine = (await ctx.api.listDeployments(ref.namespace, ref.appName, 20)).find((r) => !before.has(r.id) && r.descriptor.id === descriptorId);
    return mine ? ({ status: 202, headers: new Headers(), body: mine, text: '' } satisfies ApiResponse<DeploymentRecord>) : undefined;
  }, target);
  return { record: started.record, location: absoluteLocation(ctx, started.location, started.record) };
}

export function absoluteLocation(ctx: CommandContext, location: string | undefined, record: DeploymentRecord): string {
  return ctx.client.url(location ?? `/deployments/${record.id}/?namespace=${encodeURIComponent(record.namespace)}`).toString();
}

export function reportStarted(ctx: CommandContext, record: DeploymentRecord, location: string, what = 'deployment'): void {
  ctx.progress.info(`${what} ${record.id} of ${record.namespace}/${record.appName} version ${record.version} started${record.step === 'queued' ? ' (queued)' : ''}`, 'deploy');
  ctx.progress.info(`Location: ${location}`, 'deploy');
}

export async function deployCommand(ctx: CommandContext, ref: AppRef, flags: DeployFlags): Promise<number> {
  const { descriptor, applied } = await descriptorToDeploy(ctx, ref, flags);
  reportApply(ctx, applied);
  if (flags.environment) return deployToEnvironment(ctx, ref, descriptor.id, flags, applied);
  const { record, location } = await startDeployment(ctx, ref, descriptor.id, { cluster: flags.cluster });
  reportStarted(ctx, record, location);
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, applied: applyJson(applied), deployment: record, location });
    return ExitCode.success;
  }
  const outcome = await waitForDeployment(ctx, { namespace: ref.namespace, appName: ref.appName, id: record.id, version: record.version }, 'deploy');
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, applied: applyJson(applied), location, ...waitJson(outcome) });
  return outcome.exitCode;
}

/** An environment deploy answers with a release: one deployment per cluster, followed together. */
async function deployToEnvironment(ctx: CommandContext, ref: AppRef, descriptorId: string, flags: DeployFlags, applied: ApplyOutcome[]): Promise<number> {
  const res = await ctx.client.request<ReleaseView>('POST', `/deployments/${query({ namespace: ref.namespace, descriptorId, environment: flags.environment, cluster: flags.cluster })}`, {
    context: { action: `deploying ${ref.namespace}/${ref.appName} to environment ${flags.environment}`, namespace: ref.namespace },
  });
  const release = res.body;
  ctx.progress.info(`release ${release.id} of ${ref.namespace}/${ref.appName} version ${release.version} to ${flags.environment} started: ${release.deployments.map((d) => `${d.cluster} ${d.deploymentId}`).join(', ')}`, 'deploy');
  if (!flags.wait) {
    if (ctx.json) ctx.emitJson({ ok: true, exitCode: 0, applied: applyJson(applied), release });
    return ExitCode.success;
  }
  const outcome = await waitForRelease(ctx, ref.namespace, release.id);
  if (ctx.json) ctx.emitJson({ ok: outcome.exitCode === 0, exitCode: outcome.exitCode, applied: applyJson(applied), release: outcome.release });
  return outcome.exitCode;
}
