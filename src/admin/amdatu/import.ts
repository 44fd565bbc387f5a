import type { KvStore } from '../../store/kv.js';
import { keys } from '../../store/keys.js';
import type { EtcdDescriptorStore } from '../../store/descriptors.js';
import type { DeploymentStore } from '../../store/deployments.js';
import type { EnvironmentStore } from '../../store/environment.js';
import { importMarkId, readImportMarks, type ImportMark } from '../../store/imports.js';
import { recordRef, type OriginalData } from './layout.js';
import {
  SOURCE, importEvents, mapDeployment, mapDescriptor, mapEnvironmentKey, newestFirst, notLive, type MappedDeployment,
} from './mapping.js';

/**
 * Copies the original's data (already read, see layout.ts) into cutover's stores, idempotently:
 * descriptors and records carry an import-ledger mark (src/store/imports.ts), so a second run
 * imports nothing again; environment values are only added where cutover has none. With `dryRun`
 * it reads the same and reports what it would do, writing nothing.
 */

export type ItemKind = 'descriptor' | 'deployment' | 'environment' | 'log' | 'health' | 'key';
/**
 * imported: written (or would be, in a dry run); already-imported: there from an earlier run (or
 * the same environment value); skipped: deliberately not imported (the reason says why); bad: not
 * importable as it is (unreadable or invalid), fix it in the original and run again.
 */
export type Outcome = 'imported' | 'already-imported' | 'skipped' | 'bad';

export interface ReportItem {
  kind: ItemKind;
  /** The original's etcd v2 key. */
  key: string;
  outcome: Outcome;
  detail?: string;
  notes?: string[];
}

export interface AppReport {
  namespace: string;
  appName: string;
  /** What happened to the app's live record. */
  live?: string;
  /** The "#" counter before and after (after: the highest imported numeric version, if higher). */
  versionCounter?: { before: number; after: number };
}

export interface ImportReport {
  source: string;
  etcdVersion?: string;
  dryRun: boolean;
  items: ReportItem[];
  apps: AppReport[];
  /** Things an operator should look at: conflicts with cutover's own data, retention. */
  warnings: string[];
  counts: Record<Outcome, number>;
  durationMs: number;
}

export interface ImportTargets {
  kv: KvStore;
  descriptors: EtcdDescriptorStore;
  deployments: DeploymentStore;
  environment: EnvironmentStore;
}

export interface ImportOptions {
  dryRun: boolean;
  /** CUTOVER_RETAIN_RECORDS: apps with more records get a warning (retention prunes at their next deployment). */
  retainRecords: number;
  now?: () => Date;
  /** Shown in the report (e.g. the --from URL). */
  sourceName: string;
  etcdVersion?: string;
}

/** A mapped record still to import, with what the mapping noted about it. */
type Candidate = MappedDeployment & { notes: string[] };

export async function importOriginalData(data: OriginalData, targets: ImportTargets, options: ImportOptions): Promise<ImportReport> {
  const started = performance.now();
  const now = options.now ?? (() => new Date());
  const importedAt = now().toISOString();
  const items: ReportItem[] = [];
  const warnings: string[] = [];
  const apps: AppReport[] = [];
  const add = (item: ReportItem) => items.push(item.notes?.length ? item : withoutNotes(item));
  const marks = await readImportMarks(targets.kv, SOURCE);

  for (const problem of data.problems) add({ kind: 'key', key: problem.key, outcome: 'bad', detail: problem.reason });

  await importEnvironment(data, targets, options, add);
  await importDescriptors(data, targets, options, marks, importedAt, add);

  // Records: mapped first, then per app, so the live record is chosen among all of the app's.
  const known = new Set<string>();
  const byApp = new Map<string, Candidate[]>();
  const highest = new Map<string, number>();
  for (const item of data.deployments) {
    const ref = recordRef(item.namespace, item.id);
    known.add(ref);
    const mapped = mapDeployment(item, data.logs.get(ref), data.health.get(ref) ?? []);
    if (!mapped.ok) {
      add({ kind: 'deployment', key: item.key, outcome: 'bad', detail: mapped.reason });
      continue;
    }
    const { record } = mapped.value;
    const app = `${record.namespace}/${record.appName}`;
    if (mapped.value.numericVersion !== undefined) highest.set(app, Math.max(highest.get(app) ?? 0, mapped.value.numericVersion));
    const mark = marks.get(importMarkId('deployments', record.namespace, record.id));
    if (mark) {
      add({ kind: 'deployment', key: item.key, outcome: 'already-imported', detail: await alreadyImported(mark, () => targets.deployments.get(record.namespace, record.id)) });
      continue;
    }
    if (await targets.deployments.get(record.namespace, record.id)) {
      add({ kind: 'deployment', key: item.key, outcome: 'skipped', detail: `cutover already has a deployment ${record.id} that this import did not write; left as it is` });
      continue;
    }
    byApp.set(app, [...(byApp.get(app) ?? []), { ...mapped.value, notes: mapped.notes }]);
  }

  for (const app of new Set([...byApp.keys(), ...highest.keys()])) {
    const [namespace, appName] = app.split('/') as [string, string];
    const report: AppReport = { namespace, appName };
    const records = byApp.get(app) ?? [];
    const live = await targets.deployments.live(namespace, appName);
    const deployed = records.filter((r) => r.record.status === 'DEPLOYED').sort((a, b) => newestFirst(a.record, b.record));
    const chosen = live ? undefined : deployed[0];
    if (live && deployed.length > 0) {
      const ids = deployed.map((d) => d.record.id).join(', ');
      warnings.push(`${app}: DEPLOYED in the original (${ids}), but cutover already has a live deployment ${live.deploymentId} (version ${live.version}); cutover's stays live, the original's is imported as UNDEPLOYED`);
      report.live = `${live.deploymentId} (version ${live.version}), kept: the original's DEPLOYED record is imported as UNDEPLOYED`;
    } else if (chosen) {
      report.live = `${chosen.record.id} (version ${chosen.record.version}), the original's DEPLOYED record`;
      if (deployed.length > 1) warnings.push(`${app}: ${deployed.length} records DEPLOYED in the original; the newest (${chosen.record.id}) becomes live, the others are imported as UNDEPLOYED`);
    } else if (live) {
      report.live = `${live.deploymentId} (version ${live.version}), unchanged`;
    }
    // Oldest first, so the report reads as the app's history.
    for (const mapped of [...records].sort((a, b) => -newestFirst(a.record, b.record))) {
      const makeLive = mapped === chosen;
      const why = mapped.record.status !== 'DEPLOYED' || makeLive ? undefined
        : live ? `cutover already has a live deployment ${live.deploymentId} of this app` : `the newer DEPLOYED record ${chosen!.record.id} is the live one`;
      let toStore = why ? notLive(mapped) : mapped;
      let outcome = options.dryRun ? 'imported' : await targets.deployments.importRecord({
        record: toStore.record, events: importEvents(toStore, importedAt, why), health: toStore.health,
        source: SOURCE, mark: { from: mapped.key, at: importedAt }, live: makeLive,
      });
      let raceWhy: string | undefined;
      if (outcome === 'live-taken') {
        // cutover made a deployment of the app live after we looked: its record stays live.
        raceWhy = 'cutover made another deployment of this app live during the import';
        toStore = notLive(mapped);
        outcome = await targets.deployments.importRecord({
          record: toStore.record, events: importEvents(toStore, importedAt, raceWhy), health: toStore.health,
          source: SOURCE, mark: { from: mapped.key, at: importedAt }, live: false,
        });
        warnings.push(`${app}: ${raceWhy}; ${mapped.record.id} is imported as UNDEPLOYED`);
        report.live = 'taken by cutover during the import';
      }
      const r = toStore.record;
      const detail = `${r.id} version ${r.version}, ${r.status}${r.status !== mapped.originalStatus ? ` (${mapped.originalStatus} in the original${why ?? raceWhy ? `: ${why ?? raceWhy}` : ''})` : ''}`
        + `${makeLive && outcome === 'imported' ? ', live' : ''}; ${mapped.log.length} log line(s), ${mapped.health.length} health entr${mapped.health.length === 1 ? 'y' : 'ies'}`;
      add(outcome === 'imported'
        ? { kind: 'deployment', key: mapped.key, outcome: 'imported', detail, notes: mapped.notes }
        : { kind: 'deployment', key: mapped.key, outcome: 'skipped', detail: `${r.id}: written by someone else during the import; left as it is` });
    }
    const top = highest.get(app);
    if (top !== undefined) {
      report.versionCounter = options.dryRun
        ? (({ value }) => ({ before: value, after: Math.max(value, top) }))(await targets.deployments.versionCounter(namespace, appName))
        : await targets.deployments.raiseVersionCounter(namespace, appName, top);
    }
    const total = (await targets.kv.count(keys.appRecordsOf(namespace, appName))) + (options.dryRun ? records.length : 0);
    if (total > options.retainRecords) {
      warnings.push(`${app}: ${total} records, more than CUTOVER_RETAIN_RECORDS (${options.retainRecords}); cutover removes the oldest finished ones at the end of the app's next deployment (the import ledger keeps them from being imported again)`);
    }
    apps.push(report);
  }

  // Logs and health data whose record is not in the original: leftovers of its deletes (§12).
  for (const [ref, log] of data.logs) {
    if (!known.has(ref)) add({ kind: 'log', key: log.key, outcome: 'skipped', detail: 'a log without a deployment record in the original (left behind by one of its deletes); nothing to attach it to' });
  }
  for (const [ref, entries] of data.health) {
    if (known.has(ref)) continue;
    for (const h of entries) add({ kind: 'health', key: h.key, outcome: 'skipped', detail: 'health data without a deployment record in the original; nothing to attach it to' });
  }

  const counts: Record<Outcome, number> = { imported: 0, 'already-imported': 0, skipped: 0, bad: 0 };
  for (const item of items) counts[item.outcome]++;
  return {
    source: options.sourceName, ...(options.etcdVersion ? { etcdVersion: options.etcdVersion } : {}), dryRun: options.dryRun,
    items, apps: apps.sort((a, b) => `${a.namespace}/${a.appName}`.localeCompare(`${b.namespace}/${b.appName}`)),
    warnings, counts, durationMs: Math.round(performance.now() - started),
  };
}

async function importEnvironment(data: OriginalData, targets: ImportTargets, options: ImportOptions, add: (i: ReportItem) => void): Promise<void> {
  for (const key of data.environmentDirectories) {
    add({ kind: 'environment', key, outcome: 'skipped', detail: 'a directory: the original read only direct values (it injected an empty variable for it); cutover has no such thing' });
  }
  for (const entry of data.environment) {
    const mapped = mapEnvironmentKey(entry.name, entry.value);
    if (!mapped.ok) {
      add({ kind: 'environment', key: entry.key, outcome: 'bad', detail: mapped.reason });
      continue;
    }
    const { key, variable } = mapped.value;
    // Values are never shown: they are often secrets.
    const existing = await targets.environment.get(key);
    if (existing === entry.value) {
      add({ kind: 'environment', key: entry.key, outcome: 'already-imported', detail: `${variable}: cutover has the same value` });
    } else if (existing !== undefined) {
      add({ kind: 'environment', key: entry.key, outcome: 'skipped', detail: `${variable}: cutover already has a different value; cutover's is kept (change it with PUT /environment/${key})` });
    } else if (options.dryRun || await targets.environment.create(key, entry.value)) {
      add({ kind: 'environment', key: entry.key, outcome: 'imported', detail: `${variable}` });
    } else {
      add({ kind: 'environment', key: entry.key, outcome: 'skipped', detail: `${variable}: set in cutover during the import; cutover's is kept` });
    }
  }
}

async function importDescriptors(data: OriginalData, targets: ImportTargets, options: ImportOptions, marks: Map<string, ImportMark>, importedAt: string, add: (i: ReportItem) => void): Promise<void> {
  for (const item of data.descriptors) {
    const mapped = mapDescriptor(item);
    if (!mapped.ok) {
      add({ kind: 'descriptor', key: item.key, outcome: 'bad', detail: mapped.reason });
      continue;
    }
    const d = mapped.value;
    const mark = marks.get(importMarkId('descriptors', d.namespace, d.id));
    if (mark) {
      add({ kind: 'descriptor', key: item.key, outcome: 'already-imported', detail: await alreadyImported(mark, () => targets.descriptors.get(d.namespace, d.id)) });
    } else if (await targets.descriptors.get(d.namespace, d.id)) {
      add({ kind: 'descriptor', key: item.key, outcome: 'skipped', detail: `cutover already has a descriptor ${d.id} that this import did not write; left as it is` });
    } else if (options.dryRun || await targets.descriptors.importDescriptor(d, SOURCE, { from: item.key, at: importedAt }) === 'imported') {
      add({ kind: 'descriptor', key: item.key, outcome: 'imported', detail: `${d.id} (${d.namespace}/${d.appName}, newVersion ${d.newVersion})`, notes: mapped.notes });
    } else {
      add({ kind: 'descriptor', key: item.key, outcome: 'skipped', detail: `${d.id}: written by someone else during the import; left as it is` });
    }
  }
}

async function alreadyImported(mark: ImportMark, stillThere: () => Promise<unknown>): Promise<string> {
  const present = await stillThere();
  return `imported ${mark.at}${present ? '' : '; deleted in cutover since (retention or an operator), not imported again'}`;
}

function withoutNotes(item: ReportItem): ReportItem {
  const { notes: _notes, ...rest } = item;
  return rest;
}
