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

  get record(): DeploymentRecord {
    return this.current.value;
  }

  get revision(): string {
    return this.current.revision;
  }

  async line(message: string): Promise<void> {
    const r = this.record;
    await this.retrying(() => this.store.appendLog(r.namespace, r.id, message, this.scope.fence));
    this.bus.publish({ type: 'log', namespace: r.namespace, appName: r.appName, deploymentId: r.id, message, at: this.now() });
  }

  /**
   * Applies `change` to the record and stores it with `lines` (and a status event when status or
   * step changed). On a concurrent write the record is re-read and `change` applied again —
   * unless someone else moved it on (status or owner changed): then this run stops.
   */
  async update(change: (r: DeploymentRecord) => DeploymentRecord, lines: string[] = [], options: UpdateOptions = {}): Promise<DeploymentRecord> {
    const final = options.final ?? false;
    const other = options.with;
    for (let attempt = 0; ; attempt++) {
      const before = this.current.value;
      const after = { ...change(structuredClone(before)), lastModified: this.now().toISOString() };
      const changes: RecordChange[] = [{ record: after, previous: before, expectedRevision: this.current.revision, events: eventsOf(before, after, lines) }];
      let otherBefore: DeploymentRecord | undefined;
      let otherAfter: DeploymentRecord | undefined;
      if (other) {
        otherBefore = other.journal.current.value;
        otherAfter = { ...other.change(structuredClone(otherBefore)), lastModified: this.now().toISOString() };
        changes.push({ record: otherAfter, previous: otherBefore, expectedRevision: other.journal.current.revision, events: eventsOf(otherBefore, otherAfter, other.lines ?? []) });
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
      this.publish(before, after, lines, stored[0]!.revision);
      if (other && otherBefore && otherAfter) {
        other.journal.current = stored[1]!;
        other.journal.publish(otherBefore, otherAfter, other.lines ?? [], stored[1]!.revision);
      }
      return after;
    }
  }

  async health(health: PodHealth): Promise<void> {
    const r = this.record;
    await this.retrying(() => this.store.putHealth(r.namespace, r.id, health, this.scope.fence));
    this.bus.publish({ type: 'health', namespace: r.namespace, appName: r.appName, deploymentId: r.id, health, at: this.now() });
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

function eventsOf(before: DeploymentRecord, after: DeploymentRecord, lines: string[]): EventInput[] {
  const events: EventInput[] = lines.map((message) => ({ type: 'log', message }));
  if (after.status !== before.status || after.step !== before.step) events.push({ type: 'status', status: after.status, step: after.step });
  return events;
}
