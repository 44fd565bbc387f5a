import type { Versioned } from '../domain/types.js';
import type { DeploymentRecord, PodHealth } from '../domain/deployment.js';
import { RevisionConflictError } from '../domain/errors.js';
import type { DeploymentStore, EventInput } from '../store/deployments.js';
import { StoreUnavailableError } from '../store/kv.js';
import type { EngineEvents } from './events.js';
import type { Logger } from '../log.js';
import { WorkInterrupted } from './errors.js';

const FINAL_WRITE_PATIENCE_MS = 5 * 60_000;

/**
 * The engine's pen for one deployment record: every line and every state change is stored
 * (one etcd key per line; record + status event in one transaction) and then published on the
 * bus. While etcd is unreachable, writes wait and retry, so work pauses instead of failing; the
 * job's signal (deadline, shutdown, lost ownership) ends the wait.
 */
export class Journal {
  constructor(
    private current: Versioned<DeploymentRecord>,
    private readonly store: DeploymentStore,
    private readonly bus: EngineEvents,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
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
    await this.retrying(() => this.store.appendLog(r.namespace, r.id, message));
    this.bus.publish({ type: 'log', namespace: r.namespace, appName: r.appName, deploymentId: r.id, message, at: this.now() });
  }

  /**
   * Applies `change` to the record and stores it with `lines` (and a status event when status or
   * step changed). On a concurrent write the record is re-read and `change` applied again.
   */
  async update(change: (r: DeploymentRecord) => DeploymentRecord, lines: string[] = [], options: { dequeue?: string; final?: boolean } = {}): Promise<DeploymentRecord> {
    const final = options.final ?? false;
    for (let attempt = 0; ; attempt++) {
      const before = this.current.value;
      const after = { ...change(structuredClone(before)), lastModified: this.now().toISOString() };
      const events: EventInput[] = lines.map((message) => ({ type: 'log', message }));
      const transitioned = after.status !== before.status || after.step !== before.step;
      if (transitioned) events.push({ type: 'status', status: after.status, step: after.step });
      try {
        this.current = await this.retrying(() => this.store.update({
          record: after, expectedRevision: this.current.revision, events, ...(options.dequeue ? { dequeue: options.dequeue } : {}),
        }), final);
      } catch (err) {
        if (err instanceof RevisionConflictError && attempt < 5) {
          const fresh = await this.retrying(() => this.store.get(before.namespace, before.id), final);
          if (!fresh) throw new WorkInterrupted(`deployment ${before.id} was deleted while it was being worked on`);
          // Someone else moved the record on (another replica took over, or its deadline was
          // enforced): this run must stop rather than write over their decision.
          if (fresh.value.status !== before.status || (fresh.value.owner ?? '') !== (before.owner ?? '')) {
            throw new WorkInterrupted(`deployment ${before.id} was changed elsewhere (now ${fresh.value.status}${fresh.value.owner ? ` on ${fresh.value.owner}` : ''})`);
          }
          this.current = fresh;
          continue;
        }
        throw err;
      }
      const at = this.now();
      for (const message of lines) this.bus.publish({ type: 'log', namespace: after.namespace, appName: after.appName, deploymentId: after.id, message, at });
      if (transitioned) this.bus.publish({ type: 'transition', record: after, previousStatus: before.status, previousStep: before.step, at });
      return after;
    }
  }

  async health(health: PodHealth): Promise<void> {
    const r = this.record;
    await this.retrying(() => this.store.putHealth(r.namespace, r.id, health));
    this.bus.publish({ type: 'health', namespace: r.namespace, appName: r.appName, deploymentId: r.id, health, at: this.now() });
  }

  /** Re-reads the record (after another component may have changed it). */
  async refresh(): Promise<DeploymentRecord | undefined> {
    const r = this.record;
    const fresh = await this.retrying(() => this.store.get(r.namespace, r.id));
    if (fresh) this.current = fresh;
    return fresh?.value;
  }

  /**
   * Retries store calls while etcd is unavailable, until the job's signal ends — or, for the
   * writes that end a job (`final`), for up to FINAL_WRITE_PATIENCE_MS even after it ended, so an
   * outcome is not lost to a short etcd outage at the deadline.
   */
  private async retrying<T>(fn: () => Promise<T>, final = false): Promise<T> {
    let delay = 250;
    let warned = false;
    const giveUpAt = Date.now() + FINAL_WRITE_PATIENCE_MS;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof StoreUnavailableError)) throw err;
        if (final ? Date.now() > giveUpAt : this.signal.aborted) throw err;
        if (!warned) {
          this.log.warn({ deploymentId: this.record.id, err: err.message }, 'etcd unavailable; deployment paused until it is back');
          warned = true;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 3000);
      }
    }
  }
}
