import type { KvOp, KvStore } from './kv.js';
import { keys, type ImportedKind } from './keys.js';

/**
 * The import ledger (`imports/{source}/{kind}/{namespace}/{id}`): what was imported from another
 * deployer's data, and when. The stores write a mark in the same transaction as the item it stands
 * for (DeploymentStore.importRecord, EtcdDescriptorStore.importDescriptor); an import reads the
 * ledger to skip what it imported before, even when retention or an operator deleted it since.
 */
export interface ImportMark {
  /** Where the item came from (e.g. the etcd v2 key). */
  from: string;
  /** ISO time of the import. */
  at: string;
}

export interface ImportMarkRef {
  source: string;
  kind: ImportedKind;
  namespace: string;
  id: string;
}

/** The put of a mark, for the transaction that writes the item. */
export function importMarkOp(ref: ImportMarkRef, mark: ImportMark): KvOp {
  return { type: 'put', key: keys.importMark(ref.source, ref.kind, ref.namespace, ref.id), value: JSON.stringify(mark) };
}

/** Every mark of one source, by `{kind}/{namespace}/{id}`. An unreadable mark still counts as imported. */
export async function readImportMarks(kv: KvStore, source: string): Promise<Map<string, ImportMark>> {
  const prefix = keys.importMarksOf(source);
  const { entries } = await kv.list(prefix);
  const marks = new Map<string, ImportMark>();
  for (const e of entries) {
    let mark: ImportMark = { from: '?', at: '?' };
    try {
      const parsed = JSON.parse(e.value) as Partial<ImportMark>;
      mark = { from: String(parsed.from ?? '?'), at: String(parsed.at ?? '?') };
    } catch {
      // kept as "imported, details unknown": a damaged mark must not cause a second import
    }
    marks.set(e.key.slice(prefix.length), mark);
  }
  return marks;
}

/** The ledger's lookup key of one item (as in readImportMarks' map). */
export function importMarkId(kind: ImportedKind, namespace: string, id: string): string {
  return `${kind}/${namespace}/${id}`;
}
