import type { KvStore } from './kv.js';
import { keys } from './keys.js';

/**
 * Environment-wide values injected into every deployed container: etcd keys
 * `/deployer/environment/NAME` (Amdatu-compatible). The variable name is the key's last segment
 * upper-cased with "-" → "_" (so `my-key` becomes `MY_KEY`).
 */

export interface EnvironmentEntry {
  /** The key segment as stored. */
  key: string;
  /** The variable name containers see. */
  name: string;
  value: string;
  /** Set for a value of one cluster only (it overrides the value for all clusters). */
  cluster?: string;
}

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function envNameOfKey(key: string): string {
  return key.toUpperCase().replace(/-/g, '_');
}

/**
 * With a cluster: that cluster's view — the values for all clusters, overridden by the cluster's
 * own (`cluster-environment/<cluster>/NAME`, e.g. a database URL per cluster) — and writes go to
 * the cluster's own values.
 */
export class EnvironmentStore {
  constructor(private readonly kv: KvStore, private readonly cluster?: string) {}

  /** Entries with valid names; `skipped` lists keys that cannot be environment variable names. */
  async read(): Promise<{ entries: EnvironmentEntry[]; skipped: string[] }> {
    const [shared, own] = await Promise.all([
      this.readPrefix(keys.allEnvironment()),
      this.cluster ? this.readPrefix(keys.allClusterEnvironment(this.cluster)) : undefined,
    ]);
    const byName = new Map(shared.entries.map((e) => [e.name, e]));
    for (const e of own?.entries ?? []) byName.set(e.name, { ...e, cluster: this.cluster! });
    return { entries: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)), skipped: [...shared.skipped, ...(own?.skipped ?? [])] };
  }

  private async readPrefix(prefix: string): Promise<{ entries: EnvironmentEntry[]; skipped: string[] }> {
    const { entries } = await this.kv.list(prefix);
    const out: EnvironmentEntry[] = [];
    const skipped: string[] = [];
    for (const e of entries) {
      const key = e.key.slice(prefix.length);
      const name = envNameOfKey(key);
      // Only direct children count (the original read one level); deeper keys are not variables.
      if (key.includes('/') || !ENV_NAME.test(name)) {
        skipped.push(key);
        continue;
      }
      out.push({ key, name, value: e.value });
    }
    return { entries: out, skipped };
  }

  private keyOf(key: string): string {
    return this.cluster ? keys.clusterEnvironment(this.cluster, key) : keys.environment(key);
  }

  async set(key: string, value: string): Promise<void> {
    await this.kv.transact([], [{ type: 'put', key: this.keyOf(key), value }]);
  }

  /** Sets the value only if the key does not exist yet (false: it existed, nothing written). */
  async create(key: string, value: string): Promise<boolean> {
    const stored = this.keyOf(key);
    const res = await this.kv.transact([{ key: stored, modRevision: '0' }], [{ type: 'put', key: stored, value }]);
    return res.succeeded;
  }

  /** The stored value of one key, if any. */
  async get(key: string): Promise<string | undefined> {
    return (await this.kv.get(this.keyOf(key)))?.value;
  }

  /** False when there was no such key. */
  async unset(key: string): Promise<boolean> {
    const existing = await this.kv.get(this.keyOf(key));
    if (!existing) return false;
    await this.kv.transact([], [{ type: 'delete', key: this.keyOf(key) }]);
    return true;
  }
}
