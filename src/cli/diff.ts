/**
 * Field-level differences between the stored descriptor and the one being applied, both as the
 * server normalises them (defaults filled in), so a file that omits a default is "unchanged".
 */

export type Change =
  | { kind: 'added'; path: string; after: unknown }
  | { kind: 'removed'; path: string; before: unknown }
  | { kind: 'changed'; path: string; before: unknown; after: unknown };

/** Server-managed fields: they differ between any two descriptors and are not the user's to change. */
export const SERVER_MANAGED_FIELDS: ReadonlySet<string> = new Set(['id', 'created', 'lastModified', 'namespace']);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const plain = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  return path === '' ? plain : plain.startsWith('"') ? `${path}[${plain}]` : `${path}.${plain}`;
}

function walk(before: unknown, after: unknown, path: string, out: Change[]): void {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) {
      if (path === '' && SERVER_MANAGED_FIELDS.has(key)) continue;
      const inBefore = Object.hasOwn(before, key) && before[key] !== undefined;
      const inAfter = Object.hasOwn(after, key) && after[key] !== undefined;
      const p = join(path, key);
      if (inBefore && !inAfter) out.push({ kind: 'removed', path: p, before: before[key] });
      else if (!inBefore && inAfter) out.push({ kind: 'added', path: p, after: after[key] });
      else if (inBefore && inAfter) walk(before[key], after[key], p, out);
    }
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    // Lists are compared by position: a container or env var inserted in the middle shows as
    // changes from there on, which is what a replace does to them anyway.
    const n = Math.max(before.length, after.length);
    for (let i = 0; i < n; i++) {
      const p = join(path, i);
      if (i >= after.length) out.push({ kind: 'removed', path: p, before: before[i] });
      else if (i >= before.length) out.push({ kind: 'added', path: p, after: after[i] });
      else walk(before[i], after[i], p, out);
    }
    return;
  }
  if (!Object.is(before, after)) out.push({ kind: 'changed', path, before, after });
}

/** Every added, removed and changed field path, in a stable order; [] means unchanged. */
export function diffDescriptors(stored: unknown, desired: unknown): Change[] {
  const out: Change[] = [];
  walk(stored, desired, '', out);
  return out;
}
