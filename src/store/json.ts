import type { KvEntry } from './kv.js';
import { StoreDataError } from './kv.js';

/** Parses a stored JSON object, naming the key when the value is not one. */
export function parseRecord<T>(entry: KvEntry): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(entry.value);
  } catch {
    throw new StoreDataError(entry.key, 'value is not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StoreDataError(entry.key, 'value is not a JSON object');
  }
  return parsed as T;
}
