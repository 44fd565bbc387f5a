import type { Versioned } from '../domain/types.js';
import type { DeploymentEvent, DeploymentRecord, LivePointer, PodHealth, QueueItem } from '../domain/deployment.js';
import { FINAL_STATUSES, rollbackWorkId } from '../domain/deployment.js';
import { FenceLostError, RevisionConflictError } from '../domain/errors.js';
import type { Guard, KvEntry, KvOp, KvStore, WatchHandle } from './kv.js';
import { StoreDataError } from './kv.js';
import { keys, seqOfEventKey } from './keys.js';
import { parseRecord } from './json.js';
import { importMarkOp, type ImportMark } from './imports.js';

/** A commit's `absent` key exists: the caller must look at what it stands for before going on. */
export class PresentKeyError extends Error {
  constructor(readonly key: string) {
    super(`${key} exists`);
    this.name = 'PresentKeyError';
  }
}

/** Someone's request to stop a deployment in progress. */
export interface CancelRequest {
  /** Who asked (the caller's identity, as in the audit trail). */
  by: string;
  at: string;
}

/** What an event carries before the store gives it a sequence number and time. */
export type EventInput =
  /** `time`: when the line was said, if it is stored later (batched with the next write); else the write's time. */
  | { type: 'log'; message: string; time?: string }
  | { type: 'status'; status: DeploymentRecord['status']; step: DeploymentRecord['step'] };

export interface RecordChange {
  /** The new record, written only if the stored one is still at `expectedRevision`. */
  record: DeploymentRecord;
  expectedRevision: string;
  events?: EventInput[];
  /** Health results of the record's pods written in the same transaction (one key per pod). */
  health?: PodHealth[];
  /** The record as it was at `expectedRevision` (handed to the change-ops hook; not written). */
  previous?: DeploymentRecord;
}

/** A record change as a transaction writes it: what the change-ops hook is shown. */
export interface StoredChange {
  record: DeploymentRecord;
  /** True when the transaction creates the record (create()). */
  created: boolean;
  /** The record before the change (commit(): when the caller gave it). */
  previous?: DeploymentRecord | undefined;
  /** The events written with it, with their sequence numbers and time. */
  events: readonly DeploymentEvent[];
}

/** Further operations for a change's transaction, and what to do once it is stored. */
export interface ChangeOps {
  ops: KvOp[];
  /** Called once the transaction succeeded (not for attempts that did not). */
  committed?: () => void;
}

/**
 * Computes operations to write in the same transaction as record changes (create, commit): a
 * pure function of the changes; it must not do I/O and must return at most `room` operations
 * (what etcd's per-transaction limit leaves). The store knows nothing of what they mean.
 */
export type ChangeOpsHook = (changes: readonly StoredChange[], room: number) => ChangeOps | undefined;

export interface DeploymentStoreOptions {
  changeOps?: ChangeOpsHook;
}

/** A change of an app's live pointer, guarded by the revision it was read at ("0": absent). */
export interface LiveChange {
  namespace: string;
  appName: string;
  expectedRevision: string;
  /** The new live deployment, or null to clear the pointer. */
  next: LivePointer | null;
}

export interface CommitOptions {
  /** The caller's ownership of the app: the commit fails with FenceLostError when it is gone. */
  fence?: Guard | undefined;
  /** Remove these queue items in the same transaction (the work they stood for is finished). */
  dequeue?: { namespace: string; appName: string; workIds: string[] };
  /** Keys (under the prefix) that must not exist, else PresentKeyError: e.g. a rollback request the drain must not race. */
  absent?: string[];
  live?: LiveChange;
  /** Ask the app's owner to reconcile its objects (a cleanup could not finish). */
  requestReconcile?: { namespace: string; appName: string; reason: string };
}

export interface NewDeployment {
  record: DeploymentRecord;
  queueItem: QueueItem;
  events: EventInput[];
  /** Advance the app's version counter in the same transaction (guarded by its revision). */
  versionCounter?: { value: number; expectedRevision: string };
}

/** A record creation's writes, not yet committed (DeploymentStore.prepareCreate). */
export interface PreparedCreate {
  guards: Guard[];
  ops: KvOp[];
  committed(): void;
}

/** An event with the time it happened (imported logs keep their own times). */
export type TimedEvent = EventInput & { time: string };

/** A finished record imported from another deployer's data (DeploymentStore.importRecord). */
export interface ImportedDeployment {
  record: DeploymentRecord;
  /** Its log lines and status changes, in order (they get seq 1, 2, …). */
  events: TimedEvent[];
  health: PodHealth[];
  /** The import ledger's source name (e.g. "amdatu") and the mark written with the record. */
  source: string;
  mark: ImportMark;
  /** Make it the app's live record; only when the app has none (else nothing is written: 'live-taken'). */
  live: boolean;
}

/** 'exists': the record or its import mark is there already; 'live-taken': the app has a live record. */
export type ImportOutcome = 'imported' | 'exists' | 'live-taken';

export interface VersionCounter {
  value: number;
  /** "0" when the counter does not exist yet. */
  revision: string;
}

export interface AppRef {
  namespace: string;
  appName: string;
}

/** The records of one app, read through its index; unreadable ones are named, never dropped silently. */
export interface AppRecords {
  records: Array<Versioned<DeploymentRecord>>;
  /** Keys of records that exist but cannot be parsed. */
  unreadable: string[];
}

export interface Live extends LivePointer {
  revision: string;
}

export interface ReconcileRequest {
  reason: string;
  /** Earlier attempts that could not finish (for the backoff). */
  attempts: number;
  /** ISO time before which the owner should not try again. */
  notBefore?: string;
  revision: string;
}

/**
 * Two writers appending to one log at the same time race for the next sequence number; the
 * loser retries. A jittered pause keeps a writer with a long backlog from starving the other.
 */
const MAX_APPEND_ATTEMPTS = 200;
function contentionPause(attempt: number): Promise<void> {
  if (attempt < 2) return Promise.resolve();
  return new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt, 6)));
}

/** Events read per etcd range request. */
const EVENT_PAGE = 1000;
/** Records removed per pruning transaction (each takes four operations; etcd allows 128). */
const PRUNE_BATCH = 25;
/** etcd's default limit of operations in one transaction (--max-txn-ops). */
export const MAX_TXN_OPS = 128;
/** Log lines and health entries of an imported record written per transaction when they do not fit in one. */
const IMPORT_BATCH = 100;
/** The key layout this code writes; older layouts are migrated at start-up (migrateLayout). */
export const LAYOUT_VERSION = '2';

/**
 * Deployment records with their event log, health data, per-app index and live pointer, the
 * per-app version counter and work queue. Every multi-key change is one etcd transaction; every
 * write an app's owner makes can carry its ownership as a fence.
 */
export class DeploymentStore {
  private readonly nextSeq = new Map<string, number>();
  private readonly appendChains = new Map<string, Promise<unknown>>();

  constructor(private readonly kv: KvStore, private readonly now: () => Date = () => new Date(), private readonly options: DeploymentStoreOptions = {}) {}

  // --- records -------------------------------------------------------------------------------

  /** The record; StoreDataError when it exists but cannot be read. */
  async get(namespace: string, id: string): Promise<Versioned<DeploymentRecord> | undefined> {
    const entry = await this.kv.get(keys.deployment(namespace, id));
    return entry ? { value: parseRecord<DeploymentRecord>(entry), revision: entry.modRevision } : undefined;
  }

  /**
   * Records of a namespace, or of one app (read through the app's index, not the namespace),
   * newest `created` first. Unreadable records are reported to `onCorrupt` and left out.
   */
  async list(namespace: string, appName?: string, onCorrupt?: (key: string, err: Error) => void): Promise<Array<Versioned<DeploymentRecord>>> {
    if (appName !== undefined) {
      const app = await this.listApp(namespace, appName);
      for (const key of app.unreadable) onCorrupt?.(key, new StoreDataError(key, 'unreadable record'));
      return app.records;
    }
    const { entries } = await this.kv.list(keys.deploymentsOf(namespace));
    const out: Array<Versioned<DeploymentRecord>> = [];
    for (const entry of entries) {
      try {
        out.push({ value: parseRecord<DeploymentRecord>(entry), revision: entry.modRevision });
      } catch (err) {
        onCorrupt?.(entry.key, err as Error);
      }
    }
    return sortNewestFirst(out);
  }

  /** The records of one app, newest first, with the keys of those that cannot be read. */
  async listApp(namespace: string, appName: string): Promise<AppRecords> {
    const { entries } = await this.kv.list(keys.appRecordsOf(namespace, appName));
    const ids = entries.map((e) => e.key.slice(e.key.lastIndexOf('/') + 1));
    const found = await this.kv.getMany(ids.map((id) => keys.deployment(namespace, id)));
    const records: Array<Versioned<DeploymentRecord>> = [];
    const unreadable: string[] = [];
    found.forEach((entry) => {
      if (!entry) return; // index entry of a record deleted in the same instant; harmless
      try {
        records.push({ value: parseRecord<DeploymentRecord>(entry), revision: entry.modRevision });
      } catch {
        unreadable.push(entry.key);
      }
    });
    return { records: sortNewestFirst(records), unreadable };
  }

  /** The app's live (DEPLOYED) deployment, if any. */
  async live(namespace: string, appName: string): Promise<Live | undefined> {
    const entry = await this.kv.get(keys.live(namespace, appName));
    if (!entry) return undefined;
    return { ...parseRecord<LivePointer>(entry), revision: entry.modRevision };
  }

  /** Creates the record, its index entry, queue item and first events (and advances the version counter) at once. */
  async create(input: NewDeployment): Promise<Versioned<DeploymentRecord>> {
    const planned = this.prepareCreate(input);
    const res = await this.kv.transact(planned.guards, planned.ops);
    if (!res.succeeded) throw new RevisionConflictError('the version counter or the record changed concurrently');
    planned.committed();
    return { value: input.record, revision: res.revision };
  }

  /**
   * What create() writes, for a caller that writes several records in one transaction (a release
   * across clusters); `committed` must be called once that transaction succeeded.
   */
  prepareCreate(input: NewDeployment): PreparedCreate {
    const { record } = input;
    const recordKey = keys.deployment(record.namespace, record.id);
    const queueKey = keys.queueItem(record.namespace, record.appName, input.queueItem.workId);
    const guards: Guard[] = [{ key: recordKey, modRevision: '0' }, { key: queueKey, modRevision: '0' }];
    const events = this.stampEvents(1, input.events);
    const ops: KvOp[] = [
      { type: 'put', key: recordKey, value: JSON.stringify(record) },
      { type: 'put', key: keys.appRecord(record.namespace, record.appName, record.id), value: record.created },
      { type: 'put', key: queueKey, value: JSON.stringify(input.queueItem) },
      ...this.eventPuts(record.namespace, record.id, events),
    ];
    if (input.versionCounter) {
      const counterKey = keys.versionCounter(record.namespace, record.appName);
      guards.push({ key: counterKey, modRevision: input.versionCounter.expectedRevision });
      ops.push({ type: 'put', key: counterKey, value: String(input.versionCounter.value) });
    }
    const extra = this.changeOps([{ record, created: true, events }], ops.length);
    return {
      guards,
      ops: [...ops, ...(extra?.ops ?? [])],
      committed: () => {
        extra?.committed?.();
        this.nextSeq.set(recordKey, input.events.length + 1);
      },
    };
  }

  /**
   * Records a running version that cutover did not deploy as the app's live deployment: the
   * record (DEPLOYED, `adopted`), its index entry, first events and the live pointer — only if
   * the app has no live deployment (else RevisionConflictError) — and the version counter moved
   * past its version.
   */
  async adopt(record: DeploymentRecord, events: EventInput[]): Promise<Live> {
    const recordKey = keys.deployment(record.namespace, record.id);
    const liveKey = keys.live(record.namespace, record.appName);
    const counter = await this.versionCounter(record.namespace, record.appName);
    const guards: Guard[] = [{ key: recordKey, modRevision: '0' }, { key: liveKey, modRevision: '0' }];
    const pointer: LivePointer = { deploymentId: record.id, version: record.version };
    const ops: KvOp[] = [
      { type: 'put', key: recordKey, value: JSON.stringify(record) },
      { type: 'put', key: keys.appRecord(record.namespace, record.appName, record.id), value: record.created },
      { type: 'put', key: liveKey, value: JSON.stringify(pointer) },
      ...this.eventOps(record.namespace, record.id, 1, events),
    ];
    const numeric = /^[0-9]{1,15}$/.test(record.version) ? Number(record.version) : undefined;
    if (numeric !== undefined && numeric > counter.value) {
      const counterKey = keys.versionCounter(record.namespace, record.appName);
      guards.push({ key: counterKey, modRevision: counter.revision });
      ops.push({ type: 'put', key: counterKey, value: String(numeric) });
    }
    const res = await this.kv.transact(guards, ops);
    if (!res.succeeded) throw new RevisionConflictError(`${record.namespace}/${record.appName} got a live deployment or a new version meanwhile`);
    this.nextSeq.set(recordKey, events.length + 1);
    return { ...pointer, revision: res.revision };
  }

  /** One record's change; see commit(). */
  async update(change: RecordChange, options: CommitOptions = {}): Promise<Versioned<DeploymentRecord>> {
    const [one] = await this.commit([change], options);
    return one!;
  }

  /**
   * Writes new states of one or more records with their events — and, in the same transaction,
   * the live pointer, a dequeue and a reconcile request — or nothing. RevisionConflictError when
   * a record or the live pointer moved on; FenceLostError when the caller's ownership is gone.
   */
  async commit(changes: RecordChange[], options: CommitOptions = {}): Promise<Array<Versioned<DeploymentRecord>>> {
    if (changes.length === 0) throw new Error('commit needs at least one record change');
    const first = changes[0]!.record;
    const chainKey = keys.deployment(first.namespace, first.id);
    return this.serialised(chainKey, async () => {
      for (let attempt = 0; ; attempt++) {
        const guards: Guard[] = [];
        const ops: KvOp[] = [];
        const seqs: Array<{ key: string; next: number }> = [];
        const stored: StoredChange[] = [];
        for (const change of changes) {
          const { record } = change;
          const recordKey = keys.deployment(record.namespace, record.id);
          const seq = await this.peekSeq(record.namespace, record.id);
          const events = this.stampEvents(seq, change.events ?? []);
          const eventOps = this.eventPuts(record.namespace, record.id, events);
          guards.push({ key: recordKey, modRevision: change.expectedRevision });
          for (const op of eventOps) if (op.type === 'put') guards.push({ key: op.key, modRevision: '0' });
          ops.push({ type: 'put', key: recordKey, value: JSON.stringify(record) }, ...eventOps, ...this.healthPuts(record.namespace, record.id, change.health));
          seqs.push({ key: recordKey, next: seq + events.length });
          stored.push({ record, created: false, previous: change.previous, events });
        }
        if (options.fence) guards.push(options.fence);
        if (options.live) {
          const liveKey = keys.live(options.live.namespace, options.live.appName);
          guards.push({ key: liveKey, modRevision: options.live.expectedRevision });
          ops.push(options.live.next ? { type: 'put', key: liveKey, value: JSON.stringify(options.live.next) } : { type: 'delete', key: liveKey });
        }
        if (options.dequeue) for (const workId of options.dequeue.workIds) ops.push({ type: 'delete', key: keys.queueItem(options.dequeue.namespace, options.dequeue.appName, workId) });
        for (const key of options.absent ?? []) guards.push({ key, modRevision: '0' });
        if (options.requestReconcile) {
          const r = options.requestReconcile;
          ops.push({ type: 'put', key: keys.reconcileRequest(r.namespace, r.appName), value: JSON.stringify({ reason: r.reason, at: this.now().toISOString() }) });
        }
        // Computed per attempt: the events' sequence numbers may differ from the last one's.
        const extra = this.changeOps(stored, ops.length);
        if (extra) ops.push(...extra.ops);
        const res = await this.kv.transact(guards, ops);
        if (res.succeeded) {
          extra?.committed?.();
          for (const s of seqs) this.nextSeq.set(s.key, s.next);
          return changes.map((c) => ({ value: c.record, revision: res.revision }));
        }
        // Why did it fail? A record, the live pointer or the fence moved on — or only an event
        // sequence number was taken by another writer (then retry with fresh numbers).
        const checkKeys = [
          ...changes.map((c) => keys.deployment(c.record.namespace, c.record.id)),
          ...(options.fence ? [options.fence.key] : []),
          ...(options.live ? [keys.live(options.live.namespace, options.live.appName)] : []),
        ];
        const now = await this.kv.getMany(checkKeys);
        const present = options.absent && options.absent.length > 0 ? (await this.kv.getMany(options.absent)).findIndex((e) => e !== undefined) : -1;
        if (present >= 0) throw new PresentKeyError(options.absent![present]!);
        if (options.fence && (now[changes.length]?.modRevision ?? '0') !== options.fence.modRevision) {
          throw new FenceLostError(`no longer the owner of ${first.namespace}/${first.appName}`);
        }
        for (let i = 0; i < changes.length; i++) {
          const current = now[i];
          if ((current?.modRevision ?? '0') !== changes[i]!.expectedRevision) {
            throw new RevisionConflictError(`deployment ${changes[i]!.record.id} changed concurrently`, current?.modRevision);
          }
        }
        if (options.live && (now[now.length - 1]?.modRevision ?? '0') !== options.live.expectedRevision) {
          throw new RevisionConflictError(`the live deployment of ${options.live.appName} changed concurrently`);
        }
        for (const s of seqs) this.nextSeq.delete(s.key); // another writer took our sequence numbers
        if (attempt >= MAX_APPEND_ATTEMPTS) throw new Error(`could not append events to deployment ${first.id}`);
        await contentionPause(attempt);
      }
    });
  }

  /** Deletes the record with its index entry, events and health data (and, when given, a finished queue item). */
  async delete(namespace: string, appName: string, id: string, dequeue?: string): Promise<void> {
    const recordKey = keys.deployment(namespace, id);
    const ops: KvOp[] = [...this.recordDeleteOps(namespace, appName, id)];
    if (dequeue) ops.push({ type: 'delete', key: keys.queueItem(namespace, appName, dequeue) });
    await this.kv.transact([], ops);
    this.nextSeq.delete(recordKey);
  }

  /**
   * Retention: when the app has more than `keep` records, deletes the oldest beyond the newest
   * `keep` that are finished (FAILURE, UNDEPLOYED) — with their index entry, logs and health data,
   * each only if unchanged since it was read and without pending work. The live record and records
   * in progress are never deleted. Candidates come from the index (it holds `created`), so only
   * they are read, not the whole app. Returns how many were deleted.
   */
  async prune(namespace: string, appName: string, keep: number, fence?: Guard): Promise<number> {
    const { entries } = await this.kv.list(keys.appRecordsOf(namespace, appName));
    if (entries.length <= keep) return 0;
    const oldestFirst = entries
      .map((e) => ({ id: e.key.slice(e.key.lastIndexOf('/') + 1), created: e.value, revision: e.createRevision }))
      .sort((a, b) => (a.created === b.created ? cmpRev(a.revision, b.revision) : a.created < b.created ? -1 : 1));
    const candidates = oldestFirst.slice(0, entries.length - keep);
    const found = await this.kv.getMany(candidates.map((c) => keys.deployment(namespace, c.id)));
    const pending = new Set((await this.queue(namespace, appName)).map((q) => q.deploymentId));
    const doomed: Array<{ id: string; revision: string }> = [];
    found.forEach((entry, i) => {
      const id = candidates[i]!.id;
      if (!entry) {
        doomed.push({ id, revision: '0' }); // a stale index entry
        return;
      }
      let status: string | undefined;
      try {
        status = parseRecord<DeploymentRecord>(entry).status;
      } catch {
        return; // unreadable records are kept (and reported elsewhere)
      }
      if ((status === 'FAILURE' || status === 'UNDEPLOYED') && !pending.has(id)) doomed.push({ id, revision: entry.modRevision });
    });
    let deleted = 0;
    for (let i = 0; i < doomed.length; i += PRUNE_BATCH) {
      const batch = doomed.slice(i, i + PRUNE_BATCH);
      const guards: Guard[] = batch.map((r) => ({ key: keys.deployment(namespace, r.id), modRevision: r.revision }));
      if (fence) guards.push(fence);
      const res = await this.kv.transact(guards, batch.flatMap((r) => this.recordDeleteOps(namespace, appName, r.id)));
      if (!res.succeeded) break; // something changed meanwhile; the next pass prunes
      for (const r of batch) this.nextSeq.delete(keys.deployment(namespace, r.id));
      deleted += batch.filter((r) => r.revision !== '0').length;
    }
    return deleted;
  }

  private recordDeleteOps(namespace: string, appName: string, id: string): KvOp[] {
    return [
      { type: 'delete', key: keys.deployment(namespace, id) },
      { type: 'delete', key: keys.appRecord(namespace, appName, id) },
      { type: 'deletePrefix', prefix: keys.eventsOf(namespace, id) },
      { type: 'deletePrefix', prefix: keys.healthOf(namespace, id) },
      { type: 'delete', key: keys.cancelRequest(namespace, id) },
    ];
  }

  // --- cancel requests -----------------------------------------------------------------------

  /**
   * Asks whoever runs the deployment to stop at its next safe point. Written only while the
   * record is still at `expectedRevision` (the caller checked it may be cancelled); false when it
   * moved on meanwhile. The log says who asked.
   */
  async requestCancel(namespace: string, id: string, by: string, expectedRevision: string): Promise<boolean> {
    const request: CancelRequest = { by, at: this.now().toISOString() };
    const res = await this.kv.transact([{ key: keys.deployment(namespace, id), modRevision: expectedRevision }], [
      { type: 'put', key: keys.cancelRequest(namespace, id), value: JSON.stringify(request) },
    ]);
    if (!res.succeeded) return false;
    await this.appendLog(namespace, id, `Cancel requested by ${by}`);
    return true;
  }

  async cancelRequestOf(namespace: string, id: string): Promise<CancelRequest | undefined> {
    const entry = await this.kv.get(keys.cancelRequest(namespace, id));
    return entry ? parseRecord<CancelRequest>(entry) : undefined;
  }

  /** Calls `onCancel` once if a cancel request exists or arrives while watching (see watchOnce). */
  async watchCancel(namespace: string, id: string, onCancel: (request: CancelRequest) => void): Promise<WatchHandle> {
    return this.watchOnce(keys.cancelRequest(namespace, id), (value) => {
      try {
        onCancel(JSON.parse(value) as CancelRequest);
      } catch {
        onCancel({ by: 'unknown', at: this.now().toISOString() });
      }
    });
  }

  /**
   * Asks for an instant rollback of the live deployment `live` to `replaced`, which must still be
   * draining: the rollback work item (a fixed key, rollbackWorkId) is written only while the
   * replaced record is unchanged since it was read at `replacedRevision` — the drain's decision to
   * remove it is a write to that record guarded by the item's absence, so exactly one of the two
   * wins (docs/deployments.md, "Instant rollback"). 'queued', 'already' (an earlier request is
   * pending) or 'moved' (the replaced record changed: re-read and decide again).
   */
  async requestRollback(live: DeploymentRecord, replacedId: string, replacedRevision: string, by: string): Promise<'queued' | 'already' | 'moved'> {
    const workId = rollbackWorkId(live.id);
    const key = keys.queueItem(live.namespace, live.appName, workId);
    const item: QueueItem = { workId, kind: 'rollback', deploymentId: live.id, enqueued: this.now().toISOString(), by };
    const res = await this.kv.transact([{ key, modRevision: '0' }, { key: keys.deployment(live.namespace, replacedId), modRevision: replacedRevision }], [
      { type: 'put', key, value: JSON.stringify(item) },
    ]);
    if (res.succeeded) return 'queued';
    return (await this.kv.get(key)) ? 'already' : 'moved';
  }

  /** Calls `onRequest` once if an instant rollback of deployment `id` is pending or gets requested while watching. */
  async watchRollbackRequest(namespace: string, appName: string, id: string, onRequest: (item: QueueItem) => void): Promise<WatchHandle> {
    return this.watchOnce(keys.queueItem(namespace, appName, rollbackWorkId(id)), (value) => {
      try {
        onRequest(JSON.parse(value) as QueueItem);
      } catch {
        onRequest({ workId: rollbackWorkId(id), kind: 'rollback', deploymentId: id, enqueued: this.now().toISOString(), by: 'unknown' });
      }
    });
  }

  /**
   * Calls `fire` once with the key's value if it exists or is put while watching. A watch that
   * ends for good is re-established from a fresh read, so nothing is missed.
   */
  private async watchOnce(key: string, onValue: (value: string) => void): Promise<WatchHandle> {
    let fired = false;
    let closed = false;
    let current: WatchHandle | undefined;
    const fire = (value: string) => {
      if (fired || closed) return;
      fired = true;
      onValue(value);
    };
    const start = async (): Promise<void> => {
      const { entries, revision } = await this.kv.list(key);
      const existing = entries.find((e) => e.key.endsWith(key));
      if (existing) return fire(existing.value);
      if (closed) return;
      current = await this.kv.watch(key, String(BigInt(revision) + 1n), {
        onEvents: (events) => {
          for (const e of events) if (e.type === 'put' && e.key.endsWith(key)) fire(e.value);
        },
        onError: () => {
          if (!closed && !fired) void start().catch(() => undefined);
        },
      });
      if (closed) await current.close();
    };
    await start();
    return {
      close: async () => {
        closed = true;
        await current?.close();
      },
    };
  }

  /**
   * Stores a finished record imported from another deployer's data — record, index entry, events,
   * health data, import mark and (when `live`) the app's live pointer — only if neither the record
   * nor its mark exists and, for `live`, the app has no live record. One transaction when it fits
   * etcd's limit; a long log is written first in batches under the not-yet-existing record's
   * prefixes (fixed sequence numbers, so a repeated import rewrites the same keys), and removed
   * again when the record could not be written.
   */
  async importRecord(input: ImportedDeployment): Promise<ImportOutcome> {
    const { record } = input;
    const { namespace, appName, id } = record;
    const recordKey = keys.deployment(namespace, id);
    const markKey = keys.importMark(input.source, 'deployments', namespace, id);
    const liveKey = keys.live(namespace, appName);
    const [existing, marked, live] = await this.kv.getMany([recordKey, markKey, liveKey]);
    if (existing || marked) return 'exists';
    if (input.live && live) return 'live-taken';

    const dataOps: KvOp[] = [
      ...input.events.map((e, i): KvOp => ({ type: 'put', key: keys.event(namespace, id, i + 1), value: JSON.stringify(timedEvent(e, i + 1)) })),
      ...input.health.map((h): KvOp => ({ type: 'put', key: keys.health(namespace, id, h.podName), value: JSON.stringify(h) })),
    ];
    const ops: KvOp[] = [
      { type: 'put', key: recordKey, value: JSON.stringify(record) },
      { type: 'put', key: keys.appRecord(namespace, appName, id), value: record.created },
      importMarkOp({ source: input.source, kind: 'deployments', namespace, id }, input.mark),
    ];
    const guards: Guard[] = [{ key: recordKey, modRevision: '0' }, { key: markKey, modRevision: '0' }];
    if (input.live) {
      guards.push({ key: liveKey, modRevision: '0' });
      ops.push({ type: 'put', key: liveKey, value: JSON.stringify({ deploymentId: id, version: record.version } satisfies LivePointer) });
    }
    const batched = dataOps.length + ops.length + guards.length > MAX_TXN_OPS;
    if (batched) {
      for (let i = 0; i < dataOps.length; i += IMPORT_BATCH) await this.kv.transact([], dataOps.slice(i, i + IMPORT_BATCH));
    } else {
      ops.push(...dataOps);
    }
    const res = await this.kv.transact(guards, ops);
    if (res.succeeded) return 'imported';
    const [nowRecord, nowMark] = await this.kv.getMany([recordKey, markKey]);
    if (batched && !nowRecord) {
      await this.kv.transact([{ key: recordKey, modRevision: '0' }], [
        { type: 'deletePrefix', prefix: keys.eventsOf(namespace, id) },
        { type: 'deletePrefix', prefix: keys.healthOf(namespace, id) },
      ]);
    }
    return nowRecord || nowMark ? 'exists' : 'live-taken';
  }

  // --- events --------------------------------------------------------------------------------

  /** Appends one log line (its own key, so concurrent writers never lose lines). */
  async appendLog(namespace: string, id: string, message: string, fence?: Guard): Promise<number> {
    return this.appendEvents(namespace, id, [{ type: 'log', message }], fence);
  }

  /**
   * Appends log lines (each its own key, so concurrent writers never lose lines) and health results
   * in one transaction; returns the first line's sequence number.
   */
  async appendEvents(namespace: string, id: string, events: EventInput[], fence?: Guard, health: PodHealth[] = []): Promise<number> {
    const recordKey = keys.deployment(namespace, id);
    return this.serialised(recordKey, async () => {
      for (let attempt = 0; ; attempt++) {
        const seq = await this.peekSeq(namespace, id);
        const ops = [...this.eventOps(namespace, id, seq, events), ...this.healthPuts(namespace, id, health)];
        const guards: Guard[] = events.map((_, i) => ({ key: keys.event(namespace, id, seq + i), modRevision: '0' }));
        if (fence) guards.push(fence);
        const res = await this.kv.transact(guards, ops);
        if (res.succeeded) {
          this.nextSeq.set(recordKey, seq + events.length);
          return seq;
        }
        if (fence && ((await this.kv.get(fence.key))?.modRevision ?? '0') !== fence.modRevision) {
          throw new FenceLostError(`no longer the owner (log of deployment ${id})`);
        }
        this.nextSeq.delete(recordKey); // another writer took this sequence number
        if (attempt >= MAX_APPEND_ATTEMPTS) throw new Error(`could not append to the log of deployment ${id}`);
        await contentionPause(attempt);
      }
    });
  }

  /**
   * Events in order, optionally only those after `afterSeq`; `revision` is where a watch
   * continues. Read in pages at one revision, so a long log is neither one huge response nor
   * torn by concurrent writes.
   */
  async events(namespace: string, id: string, afterSeq = 0): Promise<{ events: DeploymentEvent[]; revision: string }> {
    const prefix = keys.eventsOf(namespace, id);
    const events: DeploymentEvent[] = [];
    let fromKey = keys.event(namespace, id, afterSeq + 1);
    let atRevision: string | undefined;
    for (;;) {
      const page = await this.kv.list(prefix, { fromKey, limit: EVENT_PAGE, ...(atRevision ? { atRevision } : {}) });
      atRevision ??= page.revision;
      for (const e of page.entries) {
        if (seqOfEventKey(e.key) <= afterSeq) continue;
        try {
          events.push(parseRecord<DeploymentEvent>(e));
        } catch {
          // a foreign value under our prefix is skipped rather than breaking the log
        }
      }
      const last = page.entries[page.entries.length - 1];
      if (page.entries.length < EVENT_PAGE || !last) return { events, revision: atRevision };
      fromKey = `${last.key}\0`;
    }
  }

  // --- health data ---------------------------------------------------------------------------

  async putHealth(namespace: string, id: string, health: PodHealth, fence?: Guard): Promise<void> {
    const res = await this.kv.transact(fence ? [fence] : [], this.healthPuts(namespace, id, [health]));
    if (!res.succeeded) throw new FenceLostError(`no longer the owner (health data of deployment ${id})`);
  }

  async listHealth(namespace: string, id: string): Promise<PodHealth[]> {
    const { entries } = await this.kv.list(keys.healthOf(namespace, id));
    return entries.map((e) => parseRecord<PodHealth>(e));
  }

  // --- version counter -----------------------------------------------------------------------

  async versionCounter(namespace: string, appName: string): Promise<VersionCounter> {
    const entry = await this.kv.get(keys.versionCounter(namespace, appName));
    if (!entry) return { value: 0, revision: '0' };
    const value = Number.parseInt(entry.value, 10);
    return { value: Number.isFinite(value) ? value : 0, revision: entry.modRevision };
  }

  /**
   * Raises the app's version counter to at least `atLeast` (never lowers it), so "#" continues
   * after versions that came from elsewhere (imported records). Returns the value before and after.
   */
  async raiseVersionCounter(namespace: string, appName: string, atLeast: number): Promise<{ before: number; after: number }> {
    const key = keys.versionCounter(namespace, appName);
    for (let attempt = 0; attempt < 20; attempt++) {
      const counter = await this.versionCounter(namespace, appName);
      if (counter.value >= atLeast) return { before: counter.value, after: counter.value };
      const res = await this.kv.transact([{ key, modRevision: counter.revision }], [{ type: 'put', key, value: String(atLeast) }]);
      if (res.succeeded) return { before: counter.value, after: atLeast };
    }
    throw new RevisionConflictError(`the version counter of ${namespace}/${appName} keeps changing; retry`);
  }

  // --- work queue ----------------------------------------------------------------------------

  async enqueue(namespace: string, appName: string, item: QueueItem): Promise<void> {
    const key = keys.queueItem(namespace, appName, item.workId);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(item) }]);
    if (!res.succeeded) throw new RevisionConflictError(`work ${item.workId} is already queued`);
  }

  /** Pending work of an app in arrival order (creation revision); unreadable items are returned as such. */
  async queue(namespace: string, appName: string): Promise<Array<QueueItem & { key: string; revision: string }>> {
    const { entries } = await this.kv.list(keys.queueOf(namespace, appName), { sortBy: 'create', order: 'asc' });
    return entries.map((e) => ({ ...parseQueueItem(e), key: e.key, revision: e.createRevision }));
  }

  /** Pending work items of one deployment. */
  async pendingWorkOf(namespace: string, appName: string, deploymentId: string): Promise<QueueItem[]> {
    return (await this.queue(namespace, appName)).filter((q) => q.deploymentId === deploymentId);
  }

  /** Removes a queue item whose record is final, gone or unreadable (never one of live work). */
  async dequeue(namespace: string, appName: string, workId: string, fence?: Guard): Promise<void> {
    const res = await this.kv.transact(fence ? [fence] : [], [{ type: 'delete', key: keys.queueItem(namespace, appName, workId) }]);
    if (!res.succeeded) throw new FenceLostError(`no longer the owner of ${namespace}/${appName}`);
  }

  /** Apps that have pending work or a reconcile request. */
  async appsWithWork(): Promise<AppRef[]> {
    const seen = new Map<string, AppRef>();
    for (const prefix of [keys.allQueues(), keys.allReconcileRequests()]) {
      const { entries } = await this.kv.list(prefix);
      for (const e of entries) {
        const [, namespace, appName] = e.key.split('/');
        if (namespace && appName) seen.set(`${namespace}/${appName}`, { namespace, appName });
      }
    }
    return [...seen.values()];
  }

  // --- reconcile requests --------------------------------------------------------------------

  async reconcileRequest(namespace: string, appName: string): Promise<ReconcileRequest | undefined> {
    const entry = await this.kv.get(keys.reconcileRequest(namespace, appName));
    if (!entry) return undefined;
    let value: Partial<ReconcileRequest> = {};
    try {
      value = parseRecord<Partial<ReconcileRequest>>(entry);
    } catch {
      // an unreadable request is still a request
    }
    return {
      reason: String(value.reason ?? 'requested'),
      attempts: Number(value.attempts ?? 0) || 0,
      ...(typeof value.notBefore === 'string' ? { notBefore: value.notBefore } : {}),
      revision: entry.modRevision,
    };
  }

  /** Asks the app's owner to reconcile its objects (not before `notBefore`, when given). */
  async requestReconcile(namespace: string, appName: string, reason: string, retry?: { notBefore: string; attempts: number; expectedRevision: string; fence?: Guard }): Promise<void> {
    const key = keys.reconcileRequest(namespace, appName);
    const value = JSON.stringify({ reason, at: this.now().toISOString(), ...(retry ? { notBefore: retry.notBefore, attempts: retry.attempts } : {}) });
    const guards: Guard[] = retry ? [{ key, modRevision: retry.expectedRevision }, ...(retry.fence ? [retry.fence] : [])] : [];
    await this.kv.transact(guards, [{ type: 'put', key, value }]);
  }

  /** Clears the request if nobody renewed it since it was read. */
  async clearReconcileRequest(namespace: string, appName: string, revision: string, fence?: Guard): Promise<void> {
    const key = keys.reconcileRequest(namespace, appName);
    await this.kv.transact([{ key, modRevision: revision }, ...(fence ? [fence] : [])], [{ type: 'delete', key }]);
  }

  // --- layout migration ----------------------------------------------------------------------

  /**
   * Brings data written by an older cutover to this layout (idempotent; several replicas may run
   * it at once): the per-app index, the live pointers, and a reconcile request for every app
   * whose records were left in progress without pending work. Reports what it found.
   */
  async migrateLayout(): Promise<{ migrated: boolean; records: number; unreadable: string[]; multipleLive: string[] }> {
    const layout = await this.kv.get(keys.layout());
    if (layout?.value === LAYOUT_VERSION) return { migrated: false, records: 0, unreadable: [], multipleLive: [] };
    const { entries } = await this.kv.list(keys.allDeployments());
    const unreadable: string[] = [];
    const byApp = new Map<string, DeploymentRecord[]>();
    for (const entry of entries) {
      let r: DeploymentRecord;
      try {
        r = parseRecord<DeploymentRecord>(entry);
      } catch {
        unreadable.push(entry.key);
        continue;
      }
      const app = `${r.namespace}/${r.appName}`;
      byApp.set(app, [...(byApp.get(app) ?? []), r]);
      await this.kv.transact([], [{ type: 'put', key: keys.appRecord(r.namespace, r.appName, r.id), value: r.created }]);
    }
    const multipleLive: string[] = [];
    for (const [app, records] of byApp) {
      const [namespace, appName] = app.split('/') as [string, string];
      const deployed = sortNewestFirst(records.map((value) => ({ value, revision: '0' }))).map((x) => x.value).filter((r) => r.status === 'DEPLOYED');
      if (deployed.length > 1) multipleLive.push(app);
      const newest = deployed[0];
      if (newest) {
        const liveKey = keys.live(namespace, appName);
        await this.kv.transact([{ key: liveKey, modRevision: '0' }], [{ type: 'put', key: liveKey, value: JSON.stringify({ deploymentId: newest.id, version: newest.version }) }]);
      }
      const inProgress = records.some((r) => !FINAL_STATUSES.has(r.status));
      if (inProgress || deployed.length > 1) await this.requestReconcile(namespace, appName, 'records from an older layout are in progress or disagree');
    }
    await this.kv.transact([], [{ type: 'put', key: keys.layout(), value: LAYOUT_VERSION }]);
    return { migrated: true, records: entries.length, unreadable, multipleLive };
  }

  // --- helpers -------------------------------------------------------------------------------

  private eventOps(namespace: string, id: string, firstSeq: number, events: EventInput[]): KvOp[] {
    return this.eventPuts(namespace, id, this.stampEvents(firstSeq, events));
  }

  /** The events with their sequence numbers from `firstSeq` and the time now. */
  private stampEvents(firstSeq: number, events: EventInput[]): DeploymentEvent[] {
    const time = this.now().toISOString();
    return events.map((e, i): DeploymentEvent => {
      const seq = firstSeq + i;
      return e.type === 'log' ? { seq, time: e.time ?? time, type: 'log', message: e.message } : { seq, time, type: 'status', status: e.status, step: e.step };
    });
  }

  private healthPuts(namespace: string, id: string, health: PodHealth[] = []): KvOp[] {
    return health.map((h) => ({ type: 'put', key: keys.health(namespace, id, h.podName), value: JSON.stringify(h) }));
  }

  private eventPuts(namespace: string, id: string, events: DeploymentEvent[]): KvOp[] {
    return events.map((e) => ({ type: 'put', key: keys.event(namespace, id, e.seq), value: JSON.stringify(e) }));
  }

  /**
   * The change-ops hook's operations for a transaction that already has `used` operations. A hook
   * that asks for more than fits is a bug: refused here rather than failing the change in etcd.
   */
  private changeOps(changes: StoredChange[], used: number): ChangeOps | undefined {
    const hook = this.options.changeOps;
    if (!hook) return undefined;
    const room = Math.max(0, MAX_TXN_OPS - used);
    const extra = hook(changes, room);
    if (extra && extra.ops.length > room) throw new Error(`the change-ops hook returned ${extra.ops.length} operations for a transaction with room for ${room}`);
    return extra;
  }

  /** The next free sequence number of a deployment's events (cached per process). */
  private async peekSeq(namespace: string, id: string): Promise<number> {
    const recordKey = keys.deployment(namespace, id);
    const cached = this.nextSeq.get(recordKey);
    if (cached !== undefined) return cached;
    const { entries } = await this.kv.list(keys.eventsOf(namespace, id), { order: 'desc', limit: 1 });
    const next = entries[0] ? seqOfEventKey(entries[0].key) + 1 : 1;
    if (this.nextSeq.size > 10_000) this.nextSeq.clear(); // bounded: it is only a cache
    this.nextSeq.set(recordKey, next);
    return next;
  }

  /** Runs appends to one deployment one after another in this process (fewer CAS retries). */
  private serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.appendChains.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.appendChains.set(key, tail);
    void tail.then(() => {
      if (this.appendChains.get(key) === tail) this.appendChains.delete(key);
    });
    return run;
  }
}

function timedEvent(e: TimedEvent, seq: number): DeploymentEvent {
  return e.type === 'log'
    ? { seq, time: e.time, type: 'log', message: e.message }
    : { seq, time: e.time, type: 'status', status: e.status, step: e.step };
}

function parseQueueItem(entry: KvEntry): QueueItem {
  try {
    return parseRecord<QueueItem>(entry);
  } catch {
    // The item names its deployment in its key; the owner removes it without acting on it.
    const workId = entry.key.slice(entry.key.lastIndexOf('/') + 1);
    return { workId, kind: 'deploy', deploymentId: workId, enqueued: '', unreadable: true };
  }
}

function sortNewestFirst(records: Array<Versioned<DeploymentRecord>>): Array<Versioned<DeploymentRecord>> {
  return records.sort((a, b) => (a.value.created === b.value.created ? cmpRev(b.revision, a.revision) : a.value.created < b.value.created ? 1 : -1));
}

function cmpRev(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
