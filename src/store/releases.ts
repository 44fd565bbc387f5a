import type { Versioned } from '../domain/types.js';
import type { Release } from '../domain/release.js';
import type { KvOp, KvStore } from './kv.js';
import { keys } from './keys.js';
import { parseRecord } from './json.js';

/** Releases: one version of an app deployed to one or more clusters, stored at the root (shared by all clusters). */
export class ReleaseStore {
  constructor(private readonly kv: KvStore, private readonly onCorrupt: (key: string, err: Error) => void = () => {}) {}

  /** The write of a new release, for the transaction that creates its deployments. */
  putOp(release: Release): KvOp {
    return { type: 'put', key: keys.release(release.namespace, release.id), value: JSON.stringify(release) };
  }

  async get(namespace: string, id: string): Promise<Versioned<Release> | undefined> {
    const entry = await this.kv.get(keys.release(namespace, id));
    return entry ? { value: parseRecord<Release>(entry), revision: entry.modRevision } : undefined;
  }

  /** Newest first; unreadable entries are reported and left out. */
  async list(namespace: string, filter: { appName?: string; environment?: string } = {}): Promise<Release[]> {
    const { entries } = await this.kv.list(keys.releasesOf(namespace), { sortBy: 'create', order: 'desc' });
    const out: Release[] = [];
    for (const entry of entries) {
      try {
        const r = parseRecord<Release>(entry);
        if ((filter.appName === undefined || r.appName === filter.appName) && (filter.environment === undefined || r.environment === filter.environment)) out.push(r);
      } catch (err) {
        this.onCorrupt(entry.key, err as Error);
      }
    }
    return out;
  }
}
