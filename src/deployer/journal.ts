import type { Versioned } from '../domain/types.js';
import type { DeploymentRecord, PodHealth } from '../domain/deployment.js';
import { FenceLostError, RevisionConflictError } from '../domain/errors.js';
import type { CommitOptions, DeploymentStore, EventInput, LiveChange, RecordChange } from '../store/deployments.js';
import { StoreUnavailableError, type Guard } from '../store/kv.js';
import type { EngineEvents } from './events.js';
import type { Logger } from '../log.js';
import { WorkInterrupted } from './errors.js';
import { sleep } from '../lib/deadline.js';

const FINAL_WRITE_PATIENCE_MS = 5 * 60_000;
/** Lines and health results noted but not stored yet are written at the latest this much later. */
const NOTE_FLUSH_MS = 250;
/** More noted writes than this are stored at once (an etcd transaction holds at most 128 operations). */
const MAX_NOTED = 40;

/** What a journal writes with: the owner's fence, and the signal that ends its patience. */
export interface JournalScope {
  /** Ends waiting for etcd (ownership gone, shutdown). Final writes still get their patience. */
  signal: AbortSignal;
  fence?: Guard | undefined;
}

export interface UpdateOptions {
  /** Ends the work: remove this queue item (or these) in the same transaction. */
  dequeue?: string | string[];
  /** Keys that must not exist (else PresentKeyError, nothing written): see CommitOptions.absent. */
  absent?: string[];
  /** An outcome: retried for up to FINAL_WRITE_PATIENCE_MS while etcd is unreachable, even after the scope ended. */
  final?: boolean;
  live?: Omit<LiveChange, 'namespace' | 'appName'>;
  /** Ask the owner to reconcile the app's objects (cleanup incomplete). */
  requestReconcile?: string;
  /** Another record changed in the same transaction (the replaced deployment, at the switch). */
  with?: { journal: Journal; change: (r: DeploymentRecord) => DeploymentRecord; lines?: string[] };
}

/**
 * The engine's pen for one deployment record: every line and every state change is stored
 * (one etcd key per line; record + status event in one transaction, fenced by the app's
 * ownership) and then published on the bus. While etcd is unreachable, writes wait and retry,
 * so work pauses instead of failing; the scope's signal (lost ownership, shutdown) ends the wait.
 *
 * Lines said with note() and health results are not a transaction each: they go with this
 * journal's next write (a state change or a line), in its transaction and before its own lines,
 * or at the latest NOTE_FLUSH_MS later; flush() stores them now (the engine calls it when a run
 * ends). A line keeps the time it was said.
 */
export class Journal {
  constructor(
    private current: Versioned<DeploymentRecord>,
    private readonly store: DeploymentStore,
    private readonly bus: EngineEvents,
    private readonly log: Logger,
    private readonly scope: JournalScope,
    private readonly now: () => Date,
  ) {}

  /** Noted lines and health results not stored yet (taken by the next write). */
  private noted: Array<{ message: string; at: Date }> = [];
  private notedHealth = new Map<string, PodHealth>();
  private flushTimer: ReturnType<typeof setTimeout> | undefined;

  get record(): DeploymentRecord {
    return this.current.value;
  }

  get revision(): string {
    return this.current.revision;
  }

  /** Stores a line now, with whatever was noted before it (one transaction). */
  async line(message: string): Promise<void> {
    this.noted.push({ message, at: this.now() });
    await this.flush();
  }

  /** A line stored with the next write (see the class comment); published once stored. */
  note(message: string): void {
    this.noted.push({ message, at: this.now() });
    this.armFlush();
  }

  /** Stores what was noted and not stored yet. */
  async flush(): Promise<void> {
    this.disarmFlush();
    if (this.noted.length === 0 && this.notedHealth.size === 0) return;
    const r = this.record;
    const taken = this.take();
    try {
      await this.retrying(() => this.store.appendEvents(r.namespace, r.id, taken.events, this.scope.fence, taken.health));
    } catch (err) {
      this.giveBack(taken);
      throw err;
    }
    this.publishLines(r, taken.lines);
  }

  /** Takes the noted writes for a transaction (given back should it fail). */
  private take(): { lines: Array<{ message: string; at: Date }>; events: EventInput[]; health: PodHealth[] } {
    this.disarmFlush();
    const lines = this.noted;
    const health = [...this.notedHealth.values()];
    this.noted = [];
    this.notedHealth = new Map();
    return { lines, health, events: lines.map((l) => ({ type: 'log', message: l.message, time: l.at.toISOString() })) };
  }

  private giveBack(taken: { lines: Array<{ message: string; at: Date }>; health: PodHealth[] }): void {
    this.noted = [...taken.lines, ...this.noted];
    for (const h of taken.health) if (!this.notedHealth.has(h.podName)) this.notedHealth.set(h.podName, h);
  }

  private armFlush(): void {
    if (this.noted.length + this.notedHealth.size >= MAX_NOTED) {
      void this.flush().catch(() => undefined);
      return;
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      // A failed flush keeps its writes for the next write (which reports a lost fence itself).
      this.flush().catch((err: unknown) => this.log.debug({ deploymentId: this.record.id, err: (err as Error).message }, 'storing noted log lines failed; they go with the next write'));
    }, NOTE_FLUSH_MS);
    this.flushTimer.unref?.();
  }

  private disarmFlush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /**
   * Applies `change` to the record and stores it with `lines` (and a status event when status or
   * step changed). On a concurrent write the record is re-read and `change` applied again —
   * unless someone else moved it on (status or owner changed): then this run stops.
   */
  async update(change: (r: DeploymentRecord) => DeploymentRecord, lines: string[] = [], options: UpdateOptions = {}): Promise<DeploymentRecord> {
    // Its lines keep the time they were said, however long the write takes. Lines said while it is
    // being stored are stored after it: the store writes one record's changes in call order.
    const saidAt = this.now().toISOString();
    const final = options.final ?? false;
    const other = options.with;
    const taken = this.take();
    try {
      return await this.updateWith(change, lines, options, final, other, taken, saidAt);
    } catch (err) {
      this.giveBack(taken);
      throw err;
    }
  }

  private async updateWith(
    change: (r: DeploymentRecord) => DeploymentRecord, lines: string[], options: UpdateOptions, final: boolean, other: UpdateOptions['with'],
    taken: ReturnType<Journal['take']>, saidAt: string,
  ): Promise<DeploymentRecord> {
    for (let attempt = 0; ; attempt++) {
      const before = this.current.value;
      const after = { ...change(structuredClone(before)), lastModified: this.now().toISOString() };
      const changes: RecordChange[] = [{ record: after, previous: before, expectedRevision: this.current.revision, events: [...taken.events, ...eventsOf(before, after, lines, saidAt)], health: taken.health }];
      let otherBefore: DeploymentRecord | undefined;
      let otherAfter: DeploymentRecord | undefined;
      if (other) {
        otherBefore = other.journal.current.value;
        otherAfter = { ...other.change(structuredClone(otherBefore)), lastModified: this.now().toISOString() };
        changes.push({ record: otherAfter, previous: otherBefore, expectedRevision: other.journal.current.revision, events: eventsOf(otherBefore, otherAfter, other.lines ?? [], saidAt) });
      }
      const commitOptions: CommitOptions = {
        fence: this.scope.fence,
        ...(options.dequeue ? { dequeue: { namespace: after.namespace, appName: after.appName, workIds: [options.dequeue].flat() } } : {}),
        ...(options.absent ? { absent: options.absent } : {}),
        ...(options.live ? { live: { ...options.live, namespace: after.namespace, appName: after.appName } } : {}),
        ...(options.requestReconcile ? { requestReconcile: { namespace: after.namespace, appName: after.appName, reason: options.requestReconcile } } : {}),
      };
      let stored: Array<Versioned<DeploymentRecord>>;
      try {
        stored = await this.retrying(() => this.store.commit(changes, commitOptions), final);
      } catch (err) {
        if (err instanceof RevisionConflictError && attempt < 5) {
          await this.refreshOrStop(before, final);
          if (other) await other.journal.refreshOrStop(other.journal.current.value, final);
          continue;
        }
        throw err;
      }
      this.current = stored[0]!;
      this.publishLines(after, taken.lines);
      this.publish(before, after, lines, stored[0]!.revision);
      if (other && otherBefore && otherAfter) {
        other.journal.current = stored[1]!;
        other.journal.publish(otherBefore, otherAfter, other.lines ?? [], stored[1]!.revision);
      }
      return after;
    }
  }

  /** A pod's health result: stored with the next write (the latest per pod), published now. */
  async health(health: PodHealth): Promise<void> {
    const r = this.record;
    this.notedHealth.set(health.podName, health);
    this.armFlush();
    this.bus.publish({ type: 'health', namespace: r.namespace, appName: r.appName, deploymentId: r.id, health, at: this.now() });
  }

  private publishLines(r: DeploymentRecord, lines: Array<{ message: string; at: Date }>): void {
    for (const l of lines) this.bus.publish({ type: 'log', namespace: r.namespace, appName: r.appName, deploymentId: r.id, message: l.message, at: l.at });
  }

  private publish(before: DeploymentRecord, after: DeploymentRecord, lines: string[], revision: string): void {
    const at = this.now();
    for (const message of lines) this.bus.publish({ type: 'log', namespace: after.namespace, appName: after.appName, deploymentId: after.id, message, at });
    if (after.status !== before.status || after.step !== before.step) {
      this.bus.publish({ type: 'transition', record: after, previousStatus: before.status, previousStep: before.step, at, revision });
    }
  }

  /** After a conflict: continue from the stored record, or stop if someone else decided about it. */
  private async refreshOrStop(before: DeploymentRecord, final: boolean): Promise<void> {
    const fresh = await this.retrying(() => this.store.get(before.namespace, before.id), final);
    if (!fresh) throw new WorkInterrupted(`deployment ${before.id} was deleted while it was being worked on`);
    if (fresh.value.status !== before.status || (fresh.value.owner ?? '') !== (before.owner ?? '')) {
      throw new WorkInterrupted(`deployment ${before.id} was changed elsewhere (now ${fresh.value.status}${fresh.value.owner ? ` on ${fresh.value.owner}` : ''})`);
    }
    this.current = fresh;
  }

  /**
   * Retries store calls while etcd is unavailable, until the scope's signal ends — or, for the
   * writes that end a job (`final`), for up to FINAL_WRITE_PATIENCE_MS even after it ended, so an
   * outcome is not lost to a short etcd outage. A lost fence ends the work at once.
   */
  private async retrying<T>(fn: () => Promise<T>, final = false): Promise<T> {
    let delay = 250;
    let warned = false;
    const giveUpAt = Date.now() + FINAL_WRITE_PATIENCE_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof FenceLostError) throw new WorkInterrupted(err.message);
        if (!(err instanceof StoreUnavailableError)) throw err;
        if (final ? Date.now() > giveUpAt : this.scope.signal.aborted) throw err;
        if (!warned) {
          this.log.warn({ deploymentId: this.record.id, err: err.message }, 'etcd unavailable; deployment paused until it is back');
          warned = true;
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 3000);
      }
    }
  }
}

function eventsOf(before: DeploymentRecord, after: DeploymentRecord, lines: string[], time: string): EventInput[] {
  const events: EventInput[] = lines.map((message) => ({ type: 'log', message, time }));
  if (after.status !== before.status || after.step !== before.step) events.push({ type: 'status', status: after.status, step: after.step });
  return events;
}
