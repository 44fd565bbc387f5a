import { RevisionConflictError } from '../domain/errors.js';
import type { KvStore } from './kv.js';
import { keys } from './keys.js';
import { parseRecord } from './json.js';

/** A key's secret, encrypted with AES-256-GCM under a key-encryption key (src/auth/api-keys.ts). */
export interface EncryptedSecret {
  alg: 'A256GCM';
  /** Fingerprint of the key-encryption key that encrypted it. */
  kek: string;
  /** base64 */
  iv: string;
  tag: string;
  data: string;
}

export interface ApiKeyRecord {
  id: string;
  team: string;
  /** Namespaces the key may use; ["*"] for an administrator key. */
  namespaces: string[];
  description?: string;
  created: string;
  createdBy: string;
  /** Unset: the key does not expire. */
  expires?: string;
  revoked?: string;
  revokedBy?: string;
  secret: EncryptedSecret;
}

/** API key records in etcd under `apikeys/{id}`. */
export class ApiKeyStore {
  constructor(private readonly kv: KvStore, private readonly onCorrupt: (key: string, err: Error) => void = () => {}) {}

  async create(record: ApiKeyRecord): Promise<void> {
    const key = keys.apiKey(record.id);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(record) }]);
    if (!res.succeeded) throw new RevisionConflictError(`API key ${record.id} already exists`);
  }

  async get(id: string): Promise<ApiKeyRecord | undefined> {
    const entry = await this.kv.get(keys.apiKey(id));
    return entry ? parseRecord<ApiKeyRecord>(entry) : undefined;
  }

  /** Every key, oldest first. */
  async list(): Promise<ApiKeyRecord[]> {
    const { entries } = await this.kv.list(keys.allApiKeys());
    const out: ApiKeyRecord[] = [];
    for (const entry of entries) {
      try {
        out.push(parseRecord<ApiKeyRecord>(entry));
      } catch (err) {
        this.onCorrupt(entry.key, err as Error);
      }
    }
    return out.sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id.localeCompare(b.id)));
  }

  /**
   * Marks the key revoked (kept, so lists and audits can still name it); undefined when it does
   * not exist. Compare-and-swap, so a concurrent revoke keeps the first time and author.
   */
  async revoke(id: string, revokedBy: string, at: Date): Promise<ApiKeyRecord | undefined> {
    const key = keys.apiKey(id);
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.kv.get(key);
      if (!entry) return undefined;
      const record = parseRecord<ApiKeyRecord>(entry);
      if (record.revoked) return record;
      const updated: ApiKeyRecord = { ...record, revoked: at.toISOString(), revokedBy };
      const res = await this.kv.transact([{ key, modRevision: entry.modRevision }], [{ type: 'put', key, value: JSON.stringify(updated) }]);
      if (res.succeeded) return updated;
    }
    throw new RevisionConflictError(`API key ${id} kept changing while revoking it; retry`);
  }
}
