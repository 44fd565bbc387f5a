import type { DeploymentRecord, DeploymentStatus, DeploymentStep, PodHealth } from '../../domain/deployment.js';
import type { Descriptor, DescriptorInput } from '../../domain/types.js';
import { namespaceSchema, validateDescriptor } from '../../domain/descriptor-schema.js';
import { isValidVersion, normaliseVersion, AUTO_VERSION, isNumericVersion } from '../../domain/names.js';
import { evaluateAnswer, excerpt } from '../../healthcheck/evaluate.js';
import { ENV_NAME, envNameOfKey } from '../../store/environment.js';
import type { TimedEvent } from '../../store/deployments.js';
import type { SourceEntry, SourceItem } from './layout.js';

/**
 * Pure mapping of the Amdatu deployer's stored values (reference §5, §7) to cutover's records.
 * No I/O: every function takes the original's text and returns cutover's value, or the reason it
 * cannot be imported. docs/migrating-from-amdatu.md describes each rule.
 */

/** The import ledger's source name, and the records' `importedFrom`. */
export const SOURCE = 'amdatu';

export type Mapped<T> = { ok: true; value: T; notes: string[] } | { ok: false; reason: string };

/** Ids as cutover's API accepts them in a path (the original used UUID v4). */
const ID = /^[A-Za-z0-9-]{1,128}$/;
/** Go's time.RFC3339 as the original wrote it (local offset, second precision). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
/** Env keys as PUT /environment/{key} accepts them (src/api/routes/environment.ts). */
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,252}$/;
/** The /environment API's limit for one value. */
const MAX_ENV_VALUE_BYTES = 64 * 1024;
/** Health values kept at most (the original stored whole answer bodies; cutover's checker reads 64 KiB). */
const MAX_HEALTH_VALUE_CHARS = 64 * 1024;
/** Env entries the original added to every container and stripped on every read (§7.3, §11). */
const ORIGINAL_INJECTED = ['APP_NAME', 'POD_NAMESPACE', 'APP_VERSION', 'POD_NAME'];

const STATUSES: ReadonlySet<string> = new Set<DeploymentStatus>(['DEPLOYING', 'DEPLOYED', 'UNDEPLOYING', 'UNDEPLOYED', 'FAILURE']);

/** An original timestamp (RFC3339, any offset) as cutover writes times (UTC ISO, so they sort as strings). */
export function parseOriginalTime(value: unknown): string | undefined {
  if (typeof value !== 'string' || !RFC3339.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

/** `created` and `lastModified`; one may stand in for the other (noted), but not both missing. */
function mapTimes(raw: Record<string, unknown>, notes: string[]): { created: string; lastModified: string } | undefined {
  const created = parseOriginalTime(raw['created']);
  const lastModified = parseOriginalTime(raw['lastModified']);
  if (!created && !lastModified) return undefined;
  if (!created) notes.push('no readable "created"; its "lastModified" is used');
  if (!lastModified) notes.push('no readable "lastModified"; its "created" is used');
  return { created: (created ?? lastModified)!, lastModified: (lastModified ?? created)! };
}

/** The key's id must be usable by cutover, and the value's own id (when present) must agree. */
function checkId(item: SourceItem, raw: Record<string, unknown>, notes: string[]): string | undefined {
  if (!ID.test(item.id)) return `the id ${JSON.stringify(item.id)} is not one cutover can serve (letters, digits and "-", at most 128)`;
  if (raw['id'] === undefined) notes.push('no "id" field; the key\'s id is used');
  else if (raw['id'] !== item.id) return `its "id" (${JSON.stringify(raw['id'])}) differs from its key's`;
  return undefined;
}

/**
 * What the original's `cleanDescriptor` did on every read (§7.3): removes APP_NAME, POD_NAMESPACE,
 * APP_VERSION, POD_NAME and every name of the `environment` map from each container's env, and the
 * map itself. Returns the cleaned copy and the injected names (sorted).
 */
export function cleanOriginalDescriptor(raw: Record<string, unknown>): { descriptor: Record<string, unknown>; injected: string[] } {
  const environment = raw['environment'];
  const injected = environment !== null && typeof environment === 'object' && !Array.isArray(environment) ? Object.keys(environment).sort() : [];
  const strip = new Set([...ORIGINAL_INJECTED, ...injected]);
  const { environment: _environment, ...rest } = raw;
  const podspec = rest['podspec'];
  if (podspec === null || typeof podspec !== 'object' || Array.isArray(podspec)) return { descriptor: rest, injected };
  const containers = (podspec as Record<string, unknown>)['containers'];
  if (!Array.isArray(containers)) return { descriptor: rest, injected };
  const cleanedContainers = containers.map((c: unknown) => {
    if (c === null || typeof c !== 'object' || !Array.isArray((c as Record<string, unknown>)['env'])) return c;
    const env = ((c as Record<string, unknown>)['env'] as unknown[]).filter((e) => !(e !== null && typeof e === 'object' && strip.has(String((e as Record<string, unknown>)['name']))));
    const { env: _env, ...container } = c as Record<string, unknown>;
    return env.length > 0 ? { ...container, env } : container;
  });
  return { descriptor: { ...rest, podspec: { ...podspec, containers: cleanedContainers } }, injected };
}

/**
 * A descriptor as the original stored it (§5.1) → cutover's descriptor: cleaned (§7.3), then
 * validated and defaulted by cutover's own schema (so it can be deployed as it is); `email` and
 * `password` are dropped. Keeps its id and times.
 */
function toDescriptor(raw: Record<string, unknown>, id: string, namespace: string, times: { created: string; lastModified: string }, notes: string[]): Mapped<Descriptor> {
  if (raw['namespace'] !== undefined && raw['namespace'] !== namespace) {
    return { ok: false, reason: `its "namespace" (${JSON.stringify(raw['namespace'])}) differs from its key's (${namespace})` };
  }
  if (namespaceSchema.validate(namespace).error) return { ok: false, reason: `the namespace ${JSON.stringify(namespace)} is not a DNS-1123 label` };
  if (raw['email'] !== undefined || raw['password'] !== undefined) notes.push('"email"/"password" dropped (cutover never stores them)');
  const { id: _id, created: _c, lastModified: _m, ...fields } = raw;
  const result = validateDescriptor({ ...fields, namespace });
  if (!result.ok) {
    return { ok: false, reason: `not a valid descriptor for cutover: ${result.problems.map((p) => `${p.path || '(descriptor)'}: ${p.message}`).join('; ')}` };
  }
  const { id: _i, created: _cr, lastModified: _lm, namespace: _ns, appName, newVersion, podspec, ...rest } = result.value as DescriptorInput;
  return { ok: true, value: { id, namespace, appName, newVersion, created: times.created, lastModified: times.lastModified, ...rest, podspec } as Descriptor, notes };
}

/** A stored descriptor of the original (`/deployer/descriptors/{ns}/{app}/{id}`). */
export function mapDescriptor(item: SourceItem): Mapped<Descriptor> {
  const raw = parseObject(item.value);
  if (!raw) return { ok: false, reason: 'the value is not a JSON object' };
  const notes: string[] = [];
  const idProblem = checkId(item, raw, notes);
  if (idProblem) return { ok: false, reason: idProblem };
  const times = mapTimes(raw, notes);
  if (!times) return { ok: false, reason: 'no readable "created" or "lastModified" (RFC3339)' };
  const { descriptor } = cleanOriginalDescriptor(raw);
  const mapped = toDescriptor(descriptor, item.id, item.namespace, times, notes);
  if (mapped.ok && mapped.value.appName !== item.appName) notes.push(`appName ${mapped.value.appName} (the key says ${item.appName})`);
  return mapped;
}

export interface LogLine {
  time: string;
  message: string;
}

const STAMPED_LINE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})) (.*)$/;
/** The one line the original wrote without a timestamp (§7.4), to the replaced deployment's log. */
const REPLACED_LINE = /^Undeployed during deployment of (\S+)$/;

/**
 * The original's log text (§7.4: `<RFC3339> <message>\n` per line) → lines with their own times.
 * A line without a timestamp continues the previous message (the original logged the descriptor
 * as multi-line JSON), except "Undeployed during deployment of …", which the original wrote
 * without one: it gets `replacedAt` (the record's lastModified, written in the same step).
 */
export function parseOriginalLog(text: string, times: { created: string; replacedAt: string }): LogLine[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out: LogLine[] = [];
  for (const line of lines) {
    const stamped = STAMPED_LINE.exec(line);
    const time = stamped ? parseOriginalTime(stamped[1]) : undefined;
    if (stamped && time) out.push({ time, message: stamped[2]! });
    else if (REPLACED_LINE.test(line)) out.push({ time: times.replacedAt, message: line });
    else if (out.length === 0) out.push({ time: times.created, message: line });
    else out[out.length - 1]!.message += `\n${line}`;
  }
  return out;
}

/**
 * The original's health value of a pod (§9: a probe's raw answer body, or a small JSON status
 * such as {"simplehealthcheck": "http get success"}) → cutover's health entry. `value` stays
 * the original text (its clients read it); `healthy` and `reason` are derived from it as the
 * original judged it; the check time is unknown, so `checkedAt` is the record's lastModified.
 */
export function mapHealth(podName: string, rawValue: string, checkedAt: string): PodHealth {
  const value = rawValue.length > MAX_HEALTH_VALUE_CHARS ? `${rawValue.slice(0, MAX_HEALTH_VALUE_CHARS - 1)}…` : rawValue;
  const parsed = parseObject(rawValue);
  let verdict: { healthy: boolean; reason: string };
  if (parsed && typeof parsed['simplehealthcheck'] === 'string') {
    verdict = { healthy: parsed['simplehealthcheck'] === 'http get success', reason: `simple check: ${excerpt(parsed['simplehealthcheck'], 100)}` };
  } else if (parsed && typeof parsed['probehealthcheck'] === 'string') {
    verdict = { healthy: false, reason: `probe: ${excerpt(parsed['probehealthcheck'], 200)}` };
  } else {
    verdict = evaluateAnswer('probe', 200, rawValue);
  }
  return {
    podName, healthy: verdict.healthy, body: excerpt(rawValue), reason: `${verdict.reason} (imported from the Amdatu deployer)`,
    latencyMs: 0, checkedAt, value,
  };
}

/** A deployment of the original, mapped; its status may still change before it is stored (see importEvents). */
export interface MappedDeployment {
  key: string;
  record: DeploymentRecord;
  /** The status the original had. */
  originalStatus: DeploymentStatus;
  log: LogLine[];
  health: PodHealth[];
  /** Its version as a number, when it is one (for the "#" counter). */
  numericVersion?: number;
}

const STEP_OF: Record<'DEPLOYED' | 'UNDEPLOYED' | 'FAILURE', DeploymentStep> = { DEPLOYED: 'deployed', UNDEPLOYED: 'undeployed', FAILURE: 'failed' };

/**
 * A deployment record of the original (`/deployer/deployments/{ns}/{app}/{id}`, §5.2) with its log
 * and health data → cutover's record. Final statuses stay; DEPLOYING and UNDEPLOYING (stuck: the
 * original has no recovery, §14) become FAILURE, keeping `originalStatus`, so cutover never acts
 * on work nobody does. A record without a log is imported with a note; one without a descriptor,
 * status, version or times is not importable.
 */
export function mapDeployment(item: SourceItem, log: SourceEntry | undefined, health: Array<{ podName: string; value: string }>): Mapped<MappedDeployment> {
  const raw = parseObject(item.value);
  if (!raw) return { ok: false, reason: 'the value is not a JSON object' };
  const notes: string[] = [];
  const idProblem = checkId(item, raw, notes);
  if (idProblem) return { ok: false, reason: idProblem };
  const status = raw['status'];
  if (typeof status !== 'string' || !STATUSES.has(status)) return { ok: false, reason: `no known "status" (${JSON.stringify(status ?? null)})` };
  const originalStatus = status as DeploymentStatus;
  const embedded = raw['descriptor'];
  if (embedded === null || typeof embedded !== 'object' || Array.isArray(embedded)) return { ok: false, reason: 'no "descriptor" (a partial record)' };
  const times = mapTimes(raw, notes);
  if (!times) return { ok: false, reason: 'no readable "created" or "lastModified" (RFC3339)' };
  const rawVersion = raw['version'];
  const version = typeof rawVersion === 'string' ? normaliseVersion(rawVersion) : '';
  if (version === '' || version === AUTO_VERSION || !isValidVersion(version)) return { ok: false, reason: `no usable "version" (${JSON.stringify(rawVersion ?? null)})` };

  const { descriptor: cleaned, injected } = cleanOriginalDescriptor(embedded as Record<string, unknown>);
  const embeddedId = typeof cleaned['id'] === 'string' && ID.test(cleaned['id']) ? cleaned['id'] : undefined;
  if (!embeddedId) notes.push('its descriptor copy has no usable id; the deployment\'s id stands in');
  const descriptorId = embeddedId ?? item.id;
  const descriptorTimes = mapTimes(cleaned, []) ?? times;
  // Notes about the copy (e.g. its dropped email/password) would repeat on every record: the descriptor's own item says them.
  const descriptor = toDescriptor({ ...cleaned, id: descriptorId }, descriptorId, item.namespace, descriptorTimes, []);
  if (!descriptor.ok) return { ok: false, reason: `its descriptor copy: ${descriptor.reason}` };

  const stuck = originalStatus === 'DEPLOYING' || originalStatus === 'UNDEPLOYING';
  const finalStatus = stuck ? 'FAILURE' : originalStatus as 'DEPLOYED' | 'UNDEPLOYED' | 'FAILURE';
  const lines = log ? parseOriginalLog(log.value, { created: times.created, replacedAt: times.lastModified }) : [];
  if (!log) notes.push('no log in the original (/deployer/logs has no key for it)');
  const replacedBy = lines.map((l) => REPLACED_LINE.exec(l.message)?.[1]).filter((x): x is string => x !== undefined).pop();
  const oldVersion = raw['OldVersion'];

  const record: DeploymentRecord = {
    id: item.id,
    created: times.created,
    lastModified: times.lastModified,
    namespace: item.namespace,
    appName: descriptor.value.appName,
    version,
    status: finalStatus,
    step: STEP_OF[finalStatus],
    descriptor: descriptor.value,
    OldVersion: typeof oldVersion === 'string' ? oldVersion : '',
    ...(injected.length > 0 ? { injectedEnvironment: injected } : {}),
    times: { queued: times.created, ...(finalStatus !== 'UNDEPLOYED' ? { finished: times.lastModified } : {}) },
    ...(finalStatus === 'FAILURE' ? {
      failureReason: stuck
        ? `was ${originalStatus} in the Amdatu deployer when imported; it has no recovery after a restart, so nothing was working on it: imported as FAILURE`
        : 'failed in the Amdatu deployer, before the import; its log has the details',
    } : {}),
    ...(replacedBy ? { replacedBy } : {}),
    importedFrom: SOURCE,
    ...(stuck ? { originalStatus } : {}),
  };
  return {
    ok: true,
    value: {
      key: item.key, record, originalStatus, log: lines,
      health: health.map((h) => mapHealth(h.podName, h.value, times.lastModified)),
      ...(isNumericVersion(version) ? { numericVersion: Number(version) } : {}),
    },
    notes,
  };
}

/**
 * Imports a DEPLOYED record as UNDEPLOYED (keeping `originalStatus`): for when it cannot become the
 * app's live record (cutover has one, or a newer DEPLOYED record of the app is the live one).
 */
export function notLive(mapped: MappedDeployment): MappedDeployment {
  const record: DeploymentRecord = { ...mapped.record, status: 'UNDEPLOYED', step: 'undeployed', originalStatus: mapped.originalStatus, times: { queued: mapped.record.times.queued! } };
  return { ...mapped, record };
}

/**
 * The events stored with an imported record: first a line saying it was imported (at the time of
 * the import), then the original's log lines with their own times, then its status.
 */
export function importEvents(mapped: MappedDeployment, importedAt: string, why?: string): TimedEvent[] {
  const { record } = mapped;
  const as = record.status !== mapped.originalStatus ? `; imported as ${record.status}${why ? `: ${why}` : ''}` : '';
  return [
    { type: 'log', time: importedAt, message: `Imported from the Amdatu deployer (etcd v2 key ${mapped.key}); its status there: ${mapped.originalStatus}${as}` },
    ...mapped.log.map((l): TimedEvent => ({ type: 'log', time: l.time, message: l.message })),
    { type: 'status', time: record.lastModified, status: record.status, step: record.step },
  ];
}

/** An environment value of the original → the key cutover stores it under (the same key), or why not. */
export function mapEnvironmentKey(name: string, value: string): Mapped<{ key: string; variable: string }> {
  if (!ENV_KEY.test(name) || !ENV_NAME.test(envNameOfKey(name))) {
    return { ok: false, reason: `"${name.slice(0, 64)}" cannot be an environment variable name in cutover (letters, digits, "_" and "-", starting with a letter or "_")` };
  }
  if (Buffer.byteLength(value) > MAX_ENV_VALUE_BYTES) return { ok: false, reason: `its value is over ${MAX_ENV_VALUE_BYTES / 1024} KiB (the /environment API's limit)` };
  return { ok: true, value: { key: name, variable: envNameOfKey(name) }, notes: [] };
}

/** Newest first by lastModified, then created: which of an app's DEPLOYED records becomes live. */
export function newestFirst(a: DeploymentRecord, b: DeploymentRecord): number {
  if (a.lastModified !== b.lastModified) return a.lastModified < b.lastModified ? 1 : -1;
  return a.created < b.created ? 1 : a.created > b.created ? -1 : 0;
}
