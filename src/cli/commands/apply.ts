import type { Descriptor } from '../../domain/types.js';
import type { CommandContext } from '../context.js';
import type { DescriptorDocument } from '../descriptor-file.js';
import { diffDescriptors, type Change } from '../diff.js';
import { CliError, invalidInput, type FieldProblem } from '../errors.js';
import { ExitCode } from '../exit-codes.js';
import { formatChanges, summariseChanges } from '../format.js';

/**
 * `cutover apply -f FILE`: each document becomes the newest descriptor of its (namespace, app):
 * updated in place (PUT with If-Match) when the app has one, created (POST) otherwise, and left
 * alone when nothing changed. Everything is validated by the server first, all documents before
 * any is stored, so a file with one bad document changes nothing.
 */

export interface ApplyOutcome {
  label: string;
  namespace: string;
  appName: string;
  action: 'created' | 'updated' | 'unchanged';
  descriptor: Descriptor;
  changes: Change[];
  location?: string | undefined;
}

export interface ApplyOptions {
  /** -n: the namespace of documents that name none (and must match those that do). */
  namespace?: string | undefined;
  /** --version: overrides newVersion of every document. */
  newVersion?: string | undefined;
}

/** Fields the server assigns; a file saved from GET may carry them, they are not the user's to set. */
const SERVER_ASSIGNED = ['id', 'created', 'lastModified'] as const;

interface Prepared {
  label: string;
  namespace: string;
  appName: string;
  body: Record<string, unknown>;
  normalised: Record<string, unknown>;
}

/** Validates every document (reporting every problem of every one), then applies them in order. */
export async function applyDocuments(ctx: CommandContext, docs: DescriptorDocument[], options: ApplyOptions = {}): Promise<ApplyOutcome[]> {
  const prepared: Prepared[] = [];
  const problems: FieldProblem[] = [];
  const prefix = (label: string, path: string) => (docs.length > 1 ? `${label}${path ? `: ${path}` : ''}` : path);

  for (const doc of docs) {
    const body: Record<string, unknown> = { ...doc.body };
    for (const field of SERVER_ASSIGNED) delete body[field];
    const fileNs = body['namespace'];
    if (fileNs !== undefined && typeof fileNs !== 'string') {
      problems.push({ path: prefix(doc.label, 'namespace'), message: 'must be a string' });
      continue;
    }
    if (options.namespace !== undefined && fileNs !== undefined && fileNs !== options.namespace) {
      problems.push({ path: prefix(doc.label, 'namespace'), message: `is "${fileNs}" but the command names namespace "${options.namespace}"` });
      continue;
    }
    const namespace = (fileNs as string | undefined) ?? options.namespace;
    if (namespace === undefined) {
      problems.push({ path: prefix(doc.label, 'namespace'), message: 'is missing: set namespace in the descriptor or pass -n NAMESPACE' });
      continue;
    }
    body['namespace'] = namespace;
    if (options.newVersion !== undefined) body['newVersion'] = options.newVersion;
    const answer = await ctx.api.validateDescriptor(body, doc.label);
    if (!answer.valid || !answer.descriptor) {
      const details = answer.details ?? [];
      if (details.length === 0) problems.push({ path: prefix(doc.label, ''), message: answer.message ?? 'invalid descriptor' });
      for (const d of details) problems.push({ path: prefix(doc.label, d.path), message: d.message });
      continue;
    }
    prepared.push({ label: doc.label, namespace, appName: String(answer.descriptor['appName']), body, normalised: answer.descriptor });
  }
  if (problems.length > 0) {
    throw invalidInput(`${docs.length > 1 ? `the descriptors of ${docs[0]?.label.replace(/ document \d+$/, '')} were` : `the descriptor in ${docs[0]?.label ?? 'the input'} was`} refused; nothing was applied`, problems,
      'fix the fields named above (docs/deployments.md describes each) and run the command again');
  }
  const seen = new Map<string, string>();
  for (const p of prepared) {
    const key = `${p.namespace}/${p.appName}`;
    const first = seen.get(key);
    if (first) throw invalidInput(`${p.label} and ${first} are both descriptors of ${key}; keep one`);
    seen.set(key, p.label);
  }

  const outcomes: ApplyOutcome[] = [];
  for (const p of prepared) outcomes.push(await applyOne(ctx, p));
  return outcomes;
}

async function applyOne(ctx: CommandContext, p: Prepared): Promise<ApplyOutcome> {
  const base = { label: p.label, namespace: p.namespace, appName: p.appName };
  const existing = await ctx.api.listDescriptors(p.namespace, p.appName);
  const newest = existing[0];
  if (!newest) {
    const before = new Set(existing.map((d) => d.id));
    const { descriptor, location } = await ctx.api.createDescriptor(p.namespace, p.body, async () => {
      // An ambiguous failure: if a descriptor equal to ours appeared, the create went through.
      const now = await ctx.api.listDescriptors(p.namespace, p.appName);
      const ours = now.find((d) => !before.has(d.id) && diffDescriptors(d, p.normalised).length === 0);
      return ours ? { status: 201, headers: new Headers(), body: ours, text: '' } : undefined;
    });
    return { ...base, action: 'created', descriptor, changes: [], location: location ? ctx.client.url(location).toString() : undefined };
  }
  let firstChanges: Change[] | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const { descriptor: stored, etag } = await ctx.api.getDescriptor(p.namespace, newest.id);
    const changes = diffDescriptors(stored, p.normalised);
    if (changes.length === 0) {
      // After a 412 the stored descriptor may already be ours (a retried PUT that had gone through).
      return firstChanges ? { ...base, action: 'updated', descriptor: stored, changes: firstChanges } : { ...base, action: 'unchanged', descriptor: stored, changes: [] };
    }
    firstChanges ??= changes;
    const res = await ctx.api.updateDescriptor(p.namespace, newest.id, p.body, etag);
    if (res.status !== 412) {
      const { descriptor } = await ctx.api.getDescriptor(p.namespace, newest.id);
      return { ...base, action: 'updated', descriptor, changes };
    }
    // Changed since we read it (someone else, or our own retried PUT): read again and compare.
  }
  throw new CliError(ExitCode.conflict, `descriptor ${newest.id} of ${p.namespace}/${p.appName} keeps changing while it is applied`, { hint: 'someone else is updating it; run the command again' });
}

/** Prints the outcome of each document. */
export function reportApply(ctx: CommandContext, outcomes: ApplyOutcome[]): void {
  for (const o of outcomes) {
    const app = `${o.namespace}/${o.appName}`;
    if (o.action === 'created') {
      ctx.progress.info(`${app}: created descriptor ${o.descriptor.id} (newVersion ${JSON.stringify(o.descriptor.newVersion)})${o.location ? ` at ${o.location}` : ''}`, 'apply');
    } else if (o.action === 'unchanged') {
      ctx.progress.info(`${app}: unchanged (descriptor ${o.descriptor.id})`, 'apply');
    } else {
      ctx.progress.info(`${app}: updated descriptor ${o.descriptor.id}${o.changes.length ? `: ${summariseChanges(o.changes)}` : ' (already as applied)'}`, 'apply');
      ctx.progress.detail(formatChanges(o.changes, ctx.style));
    }
  }
}

export function applyJson(outcomes: ApplyOutcome[]): unknown[] {
  return outcomes.map((o) => ({
    source: o.label, namespace: o.namespace, appName: o.appName, action: o.action, descriptorId: o.descriptor.id,
    newVersion: o.descriptor.newVersion, changes: o.changes, ...(o.location ? { location: o.location } : {}),
  }));
}
