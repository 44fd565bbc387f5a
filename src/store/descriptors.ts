import type { Descriptor, Versioned } from '../domain/types.js';
import { NotFoundError, RevisionConflictError } from '../domain/errors.js';
import type { KvStore } from './kv.js';
import { keys } from './keys.js';
import { parseRecord } from './json.js';
import { importMarkOp, type ImportMark } from './imports.js';

export interface DescriptorStore {
  /** Stores a new descriptor; fails if the id is taken. */
  create(descriptor: Descriptor): Promise<Versioned<Descriptor>>;
  get(namespace: string, id: string): Promise<Versioned<Descriptor> | undefined>;
  /** Newest `lastModified` first. */
  list(namespace: string, appName?: string): Promise<Array<Versioned<Descriptor>>>;
  /** Replaces the descriptor if it is still at `expectedRevision`; else RevisionConflictError. */
  update(descriptor: Descriptor, expectedRevision: string): Promise<Versioned<Descriptor>>;
  /** Deletes it (only at `expectedRevision` when given); NotFoundError / RevisionConflictError. */
  delete(namespace: string, id: string, expectedRevision?: string): Promise<void>;
  /** Deletes all of them in one transaction, or none (RevisionConflictError) if any changed. */
  deleteMany(namespace: string, items: Array<{ id: string; revision: string }>): Promise<void>;
}

export class EtcdDescriptorStore implements DescriptorStore {
  constructor(private readonly kv: KvStore, private readonly onCorrupt: (key: string, err: Error) => void = () => {}) {}

  async create(descriptor: Descriptor): Promise<Versioned<Descriptor>> {
    const key = keys.descriptor(descriptor.namespace, descriptor.id);
    const res = await this.kv.transact([{ key, modRevision: '0' }], [{ type: 'put', key, value: JSON.stringify(descriptor) }]);
    if (!res.succeeded) throw new RevisionConflictError(`descriptor ${descriptor.id} already exists`);
    return { value: descriptor, revision: res.revision };
  }

  /**
   * Stores a descriptor imported from another deployer's data, with its import-ledger mark, in
   * one transaction: only if neither the descriptor nor the mark exists ('exists' otherwise).
   */
  async importDescriptor(descriptor: Descriptor, source: string, mark: ImportMark): Promise<'imported' | 'exists'> {
    const key = keys.descriptor(descriptor.namespace, descriptor.id);
    const ref = { source, kind: 'descriptors' as const, namespace: descriptor.namespace, id: descriptor.id };
    const markKey = keys.importMark(source, 'descriptors', descriptor.namespace, descriptor.id);
    const res = await this.kv.transact(
      [{ key, modRevision: '0' }, { key: markKey, modRevision: '0' }],
      [{ type: 'put', key, value: JSON.stringify(descriptor) }, importMarkOp(ref, mark)],
    );
    return res.succeeded ? 'imported' : 'exists';
  }

  async get(namespace: string, id: string): Promise<Versioned<Descriptor> | undefined> {
    const entry = await this.kv.get(keys.descriptor(namespace, id));
    if (!entry) return undefined;
    return { value: parseRecord<Descriptor>(entry), revision: entry.modRevision };
  }

  async list(namespace: string, appName?: string): Promise<Array<Versioned<Descriptor>>> {
    const { entries } = await this.kv.list(keys.descriptorsOf(namespace));
    const out: Array<Versioned<Descriptor>> = [];
    for (const entry of entries) {
      try {
        const value = parseRecord<Descriptor>(entry);
        if (appName === undefined || value.appName === appName) out.push({ value, revision: entry.modRevision });
      } catch (err) {
        // One unreadable record must not hide the others (the original failed the whole list).
        this.onCorrupt(entry.key, err as Error);
      }
    }
    return out.sort(newestFirst);
  }

  async update(descriptor: Descriptor, expectedRevision: string): Promise<Versioned<Descriptor>> {
    const key = keys.descriptor(descriptor.namespace, descriptor.id);
    const res = await this.kv.transact([{ key, modRevision: expectedRevision }], [{ type: 'put', key, value: JSON.stringify(descriptor) }]);
    if (!res.succeeded) {
      const current = await this.kv.get(key);
      if (!current) throw new NotFoundError(`descriptor ${descriptor.id} not found`);
      throw new RevisionConflictError(`descriptor ${descriptor.id} was changed by someone else`, current.modRevision);
    }
    return { value: descriptor, revision: res.revision };
  }

  async delete(namespace: string, id: string, expectedRevision?: string): Promise<void> {
    const key = keys.descriptor(namespace, id);
    const current = await this.kv.get(key);
    if (!current) throw new NotFoundError(`descriptor ${id} not found`);
    const guard = expectedRevision ?? current.modRevision;
    const res = await this.kv.transact([{ key, modRevision: guard }], [{ type: 'delete', key }]);
    if (!res.succeeded) throw new RevisionConflictError(`descriptor ${id} was changed by someone else`);
  }

  async deleteMany(namespace: string, items: Array<{ id: string; revision: string }>): Promise<void> {
    if (items.length === 0) return;
    const guards = items.map((i) => ({ key: keys.descriptor(namespace, i.id), modRevision: i.revision }));
    const res = await this.kv.transact(guards, guards.map((g) => ({ type: 'delete' as const, key: g.key })));
    if (!res.succeeded) throw new RevisionConflictError('descriptors changed while deleting them; nothing was deleted, retry');
  }
}

export function newestFirst(a: Versioned<{ lastModified: string }>, b: Versioned<{ lastModified: string }>): number {
  if (a.value.lastModified !== b.value.lastModified) return a.value.lastModified < b.value.lastModified ? 1 : -1;
  return BigInt(b.revision) > BigInt(a.revision) ? 1 : BigInt(b.revision) < BigInt(a.revision) ? -1 : 0;
}
