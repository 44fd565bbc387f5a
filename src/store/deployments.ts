import type { Versioned } from '../domain/types.js';
import type { DeploymentEvent, DeploymentRecord, PodHealth, QueueItem } from '../domain/deployment.js';
import { RevisionConflictError } from '../domain/errors.js';
import type { Guard, KvOp, KvStore } from './kv.js';
import { keys, seqOfEventKey } from './keys.js';
import { parseRecord } from './json.js';

/** What an event carries before the store gives it a sequence number and time. */
export type EventInput =
  | { type: 'log'; message: string }
  | { type: 'status'; status: DeploymentRecord['status']; step: DeploymentRecord['step'] };

export interface RecordChange {
  /** The new record, written only if the stored one is still at `expectedRevision`. */
  record: DeploymentRecord;
  expectedRevision: string;
  events?: EventInput[];
  /** Remove this queue item (by work id) in the same transaction: the work finished. */
  dequeue?: string;
}

export interface NewDeployment {
  record: DeploymentRecord;
  queueItem: QueueItem;
  events: EventInput[];
  /** Advance the app's version counter in the same transaction (guarded by its revision). */
  versionCounter?: { value: number; expectedRevision: string };
}

export interface VersionCounter {
  value: number;
  /** "0" when the counter does not exist yet. */
  revision: string;
}

export interface AppRef {
  namespace: string;
  appName: string;
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

/**
 * Deployment records with their event log, health data, the per-app version counter and the
 * per-app work queue. Multi-key changes are single etcd transactions.
 */
export class DeploymentStore {
  private readonly nextSeq = new Map<string, number>();
  private readonly appendChains = new Map<string, Promise<unknown>>();

  constructor(private readonly kv: KvStore, private readonly now: () => Date = () => new Date()) {}

  // --- records -------------------------------------------------------------------------------

  async get(namespace: string, id: string): Promise<Versioned<DeploymentRecord> | undefined> {
    const entry = await this.kv.get(keys.deployment(namespace, id));
    return entry ? { value: parseRecord<DeploymentRecord>(entry), revision: entry.modRevision } : undefined;
  }

  /** Records of a namespace (optionally one app), newest `created` first. */
  async list(namespace: string, appName?: string, onCorrupt?: (key: string, err: Error) => void): Promise<Array<Versioned<DeploymentRecord>>> {
    const { entries } = await this.kv.list(keys.deploymentsOf(namespace));
    const out: Array<Versioned<DeploymentRecord>> = [];
    for (const entry of entries) {
      try {
        const value = parseRecord<DeploymentRecord>(entry);
        if (appName === undefined || value.appName === appName) out.push({ value, revision: entry.modRevision });
      } catch (err) {
        onCorrupt?.(entry.key, err as Error);
      }
    }
    return out.sort((a, b) => (a.value.created === b.value.created ? cmpRev(b.revision, a.revision) : a.value.created < b.value.created ? 1 : -1));
  }

  /** Every record in every namespace (recovery and reconciliation). */
  async listAll(): Promise<Array<Versioned<DeploymentRecord>>> {
    const { entries } = await this.kv.list(keys.allDeployments());
    const out: Array<Versioned<DeploymentRecord>> = [];
    for (const entry of entries) {
      try {
        out.push({ value: parseRecord<DeploymentRecord>(entry), revision: entry.modRevision });
      } catch {
        // unreadable records are reported by the namespace listings
      }
    }
    return out;
  }

  /** Creates the record, its queue item and first events (and advances the version counter) at once. */
  async create(input: NewDeployment): Promise<Versioned<DeploymentRecord>> {
    const { record } = input;
    const recordKey = keys.deployment(record.namespace, record.id);
    const queueKey = keys.queueItem(record.namespace, record.appName, input.queueItem.workId);
    const guards: Guard[] = [{ key: recordKey, modRevision: '0' }, { key: queueKey, modRevision: '0' }];
    const ops: KvOp[] = [
      { type: 'put', key: recordKey, value: JSON.stringify(record) },
      { type: 'put', key: queueKey, value: JSON.stringify(input.queueItem) },
      ...this.eventOps(record.namespace, record.id, 1, input.events),
    ];
    if (input.versionCounter) {
      const counterKey = keys.versionCounter(record.namespace, record.appName);
      guards.push({ key: counterKey, modRevision: input.versionCounter.expectedRevision });
      ops.push({ type: 'put', key: counterKey, value: String(input.versionCounter.value) });
    }
    const res = await this.kv.transact(guards, ops);
    if (!res.succeeded) throw new RevisionConflictError('the version counter or the record changed concurrently');
    this.nextSeq.set(recordKey, input.events.length + 1);
    return { value: record, revision: res.revision };
  }

  /**
   * Writes a new state of a record together with its events (and optionally removes its queue
   * item), or nothing: RevisionConflictError when the record moved on since `expectedRevision`.
   */
  async update(change: RecordChange): Promise<Versioned<DeploymentRecord>> {
    const { record } = change;
    const recordKey = keys.deployment(record.namespace, record.id);
    return this.serialised(recordKey, async () => {
      for (let attempt = 0; ; attempt++) {
        const seq = await this.peekSeq(record.namespace, record.id);
        const events = change.events ?? [];
        const guards: Guard[] = [{ key: recordKey, modRevision: change.expectedRevision }];
        const eventOps = this.eventOps(record.namespace, record.id, seq, events);
        for (const op of eventOps) if (op.type === 'put') guards.push({ key: op.key, modRevision: '0' });
        const ops: KvOp[] = [{ type: 'put', key: recordKey, value: JSON.stringify(record) }, ...eventOps];
        if (change.dequeue) ops.push({ type: 'delete', key: keys.queueItem(record.namespace, record.appName, change.dequeue) });
        const res = await this.kv.transact(guards, ops);
        if (res.succeeded) {
          this.nextSeq.set(recordKey, seq + events.length);
          return { value: record, revision: res.revision };
        }
        const current = await this.kv.get(recordKey);
        if (!current || current.modRevision !== change.expectedRevision) {
          throw new RevisionConflictError(`deployment ${record.id} changed concurrently`, current?.modRevision);
        }
        this.nextSeq.delete(recordKey); // another writer took our sequence numbers
        if (attempt >= MAX_APPEND_ATTEMPTS) throw new Error(`could not append events to deployment ${record.id}`);
        await contentionPause(attempt);
      }
    });
  }

  /** Deletes the record with its events and health data (and, when given, a finished queue item). */
  async delete(namespace: string, appName: string, id: string, dequeue?: string): Promise<void> {
    const recordKey = keys.deployment(namespace, id);
    const ops: KvOp[] = [
      { type: 'delete', key: recordKey },
      { type: 'deletePrefix', prefix: keys.eventsOf(namespace, id) },
      { type: 'deletePrefix', prefix: keys.healthOf(namespace, id) },
    ];
    if (dequeue) ops.push({ type: 'delete', key: keys.queueItem(namespace, appName, dequeue) });
    await this.kv.transact([], ops);
    this.nextSeq.delete(recordKey);
  }

  // --- events --------------------------------------------------------------------------------

  /** Appends one log line (its own key, so concurrent writers never lose lines). */
  async appendLog(namespace: string, id: string, message: string): Promise<number> {
    const recordKey = keys.deployment(namespace, id);
    return this.serialised(recordKey, async () => {
      for (let attempt = 0; ; attempt++) {
        const seq = await this.peekSeq(namespace, id);
        const [op] = this.eventOps(namespace, id, seq, [{ type: 'log', message }]);
        const res = await this.kv.transact([{ key: (op as { key: string }).key, modRevision: '0' }], [op!]);
        if (res.succeeded) {
          this.nextSeq.set(recordKey, seq + 1);
          return seq;
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

  async putHealth(namespace: string, id: string, health: PodHealth): Promise<void> {
    await this.kv.transact([], [{ type: 'put', key: keys.health(namespace, id, health.podName), value: JSON.stringify(health) }]);
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

  // --- work queue ----------------------------------------------------------------------------

  async enqueue(namespace: string, appName: string, item: QueueItem): Promise<void> {
    const key = keys.queueItem(namespace, appName, item.workId);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(item) }]);
    if (!res.succeeded) throw new RevisionConflictError(`work ${item.workId} is already queued`);
  }

  /** Pending work of an app in arrival order (creation revision). */
  async queue(namespace: string, appName: string): Promise<Array<QueueItem & { key: string; revision: string }>> {
    const { entries } = await this.kv.list(keys.queueOf(namespace, appName), { sortBy: 'create', order: 'asc' });
    return entries.map((e) => ({ ...parseRecord<QueueItem>(e), key: e.key, revision: e.createRevision }));
  }

  /** Pending work items of one deployment. */
  async pendingWorkOf(namespace: string, appName: string, deploymentId: string): Promise<QueueItem[]> {
    return (await this.queue(namespace, appName)).filter((q) => q.deploymentId === deploymentId);
  }

  async dequeue(namespace: string, appName: string, workId: string): Promise<void> {
    await this.kv.transact([], [{ type: 'delete', key: keys.queueItem(namespace, appName, workId) }]);
  }

  /** Apps that have pending work. */
  async appsWithWork(): Promise<AppRef[]> {
    const { entries } = await this.kv.list(keys.allQueues());
    const seen = new Map<string, AppRef>();
    for (const e of entries) {
      const [, namespace, appName] = e.key.split('/');
      if (namespace && appName) seen.set(`${namespace}/${appName}`, { namespace, appName });
    }
    return [...seen.values()];
  }

  // --- helpers -------------------------------------------------------------------------------

  private eventOps(namespace: string, id: string, firstSeq: number, events: EventInput[]): KvOp[] {
    const time = this.now().toISOString();
    return events.map((e, i) => {
      const seq = firstSeq + i;
      const value: DeploymentEvent = e.type === 'log'
        ? { seq, time, type: 'log', message: e.message }
        : { seq, time, type: 'status', status: e.status, step: e.step };
      return { type: 'put', key: keys.event(namespace, id, seq), value: JSON.stringify(value) };
    });
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

function cmpRev(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
