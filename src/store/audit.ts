import { randomBytes } from 'node:crypto';
import type { KvStore } from './kv.js';
import { keys } from './keys.js';
import { parseRecord } from './json.js';

/** One state-changing API call: who did what, where, when, and how it ended. */
export interface AuditEntry {
  /** Time-sortable: 13-digit epoch milliseconds, "-", 8 random hex digits. */
  id: string;
  time: string;
  /** The namespace acted on; `_cluster` for key management. */
  namespace: string;
  app?: string;
  /** e.g. descriptor.create, deployment.deploy, apikey.revoke. */
  action: string;
  method: string;
  /** Path and query as requested. */
  path: string;
  actor: {
    identity: string;
    /** How the caller authenticated: jwt, api-key, none (auth off), cli (admin command on the etcd). */
    auth: string;
    team?: string;
    keyId?: string;
  };
  /** Ids of what was acted on, when known. */
  target?: { descriptorId?: string; deploymentId?: string; keyId?: string };
  status: number;
  outcome: 'success' | 'failure';
  /** The error code of a failed call. */
  error?: string;
  requestId?: string;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'time'>;

export interface AuditStoreOptions {
  /** Entries kept per namespace; older ones are removed within `pruneDelayMs` of a write. */
  keepPerNamespace: number;
  /**
   * How long a prune waits for more writes to the same namespace (default 1000 ms): one prune a
   * second however busy the namespace, instead of a count, a list and a delete after every write.
   */
  pruneDelayMs?: number;
  now?: () => Date;
  onCorrupt?: (key: string, err: Error) => void;
  onPruneError?: (namespace: string, err: Error) => void;
}

export function auditId(at: Date): string {
  return `${String(at.getTime()).padStart(13, '0')}-${randomBytes(4).toString('hex')}`;
}

/**
 * The audit trail in etcd, `audit/{namespace}/{id}`. Retention is by count: the newest
 * `keepPerNamespace` entries of each namespace are kept, pruned in the background within
 * `pruneDelayMs` of a write (coalesced per namespace), so storage stays bounded however busy a
 * namespace is: by the entries written in that time.
 */
export class AuditStore {
  private readonly now: () => Date;
  private readonly pruneDelayMs: number;
  private closing = false;
  /** Namespaces with a prune waiting or running; whether another write came in meanwhile; what ends the wait now. */
  private readonly pruning = new Map<string, { again: boolean; done: Promise<void>; wake: () => void }>();

  constructor(private readonly kv: KvStore, private readonly options: AuditStoreOptions) {
    this.now = options.now ?? (() => new Date());
    this.pruneDelayMs = options.pruneDelayMs ?? 1000;
  }

  async append(input: NewAuditEntry): Promise<AuditEntry> {
    const at = this.now();
    const entry: AuditEntry = { id: auditId(at), time: at.toISOString(), ...input };
    const key = keys.audit(entry.namespace, entry.id);
    await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(entry) }]);
    this.schedulePrune(entry.namespace);
    return entry;
  }

  /** Newest first (by write order), optionally only one app's entries. */
  async list(namespace: string, options: { limit: number; app?: string }): Promise<AuditEntry[]> {
    const { entries } = await this.kv.list(keys.auditOf(namespace), {
      sortBy: 'create', order: 'desc',
      // With an app filter every kept entry may have to be looked at (at most keepPerNamespace).
      ...(options.app === undefined ? { limit: options.limit } : {}),
    });
    const out: AuditEntry[] = [];
    for (const e of entries) {
      try {
        const entry = parseRecord<AuditEntry>(e);
        if (options.app === undefined || entry.app === options.app) out.push(entry);
      } catch (err) {
        this.options.onCorrupt?.(e.key, err as Error);
      }
      if (out.length >= options.limit) break;
    }
    return out;
  }

  /** Prunes what is waiting at once, and waits for background pruning to finish (shutdown). */
  async close(): Promise<void> {
    this.closing = true;
    while (this.pruning.size > 0) {
      for (const p of this.pruning.values()) p.wake();
      await Promise.all([...this.pruning.values()].map((p) => p.done));
    }
  }

  private schedulePrune(namespace: string): void {
    const running = this.pruning.get(namespace);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false, done: Promise.resolve(), wake: () => {} };
    state.done = (async () => {
      try {
        do {
          // Writes that come in while this waits are pruned by the same pass.
          if (!this.closing) {
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, this.pruneDelayMs);
              state.wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
          }
          state.again = false;
          await this.prune(namespace);
        } while (state.again);
      } catch (err) {
        this.options.onPruneError?.(namespace, err as Error);
      } finally {
        this.pruning.delete(namespace);
      }
    })();
    this.pruning.set(namespace, state);
  }

  private async prune(namespace: string): Promise<void> {
    const prefix = keys.auditOf(namespace);
    const count = await this.kv.count(prefix);
    const excess = count - this.options.keepPerNamespace;
    if (excess <= 0) return;
    const { entries } = await this.kv.list(prefix, { sortBy: 'create', order: 'asc', limit: excess });
    for (let i = 0; i < entries.length; i += 100) {
      await this.kv.transact([], entries.slice(i, i + 100).map((e) => ({ type: 'delete' as const, key: e.key })));
    }
  }
}
