/**
 * A line diff for the side-by-side descriptor view: longest common subsequence over lines, then
 * rows pairing removed and added lines. Descriptors are a few hundred lines at most, so the
 * O(n·m) table is small; pure, so it is unit-tested outside the browser.
 */

export type DiffRow =
  | { kind: 'same'; left: string; right: string; leftNo: number; rightNo: number }
  | { kind: 'changed'; left: string; right: string; leftNo: number; rightNo: number }
  | { kind: 'removed'; left: string; leftNo: number }
  | { kind: 'added'; right: string; rightNo: number };

/** Lines beyond this on either side are compared as one block (keeps the table bounded). */
const MAX_LINES = 4000;

export function diffLines(leftText: string, rightText: string): DiffRow[] {
  const a = leftText.split('\n').slice(0, MAX_LINES);
  const b = rightText.split('\n').slice(0, MAX_LINES);
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: length of the LCS of a[i..] and b[j..], as one flat array.
  const lcs = new Uint32Array((n + 1) * (m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * (m + 1) + j] = a[i] === b[j] ? lcs[(i + 1) * (m + 1) + j + 1]! + 1 : Math.max(lcs[(i + 1) * (m + 1) + j]!, lcs[i * (m + 1) + j + 1]!);
    }
  }
  const rows: DiffRow[] = [];
  let removed: Array<{ text: string; no: number }> = [];
  let added: Array<{ text: string; no: number }> = [];
  // Pending removals and additions between two common lines become "changed" rows pairwise.
  const flush = () => {
    const pairs = Math.min(removed.length, added.length);
    for (let k = 0; k < pairs; k++) rows.push({ kind: 'changed', left: removed[k]!.text, leftNo: removed[k]!.no, right: added[k]!.text, rightNo: added[k]!.no });
    for (const r of removed.slice(pairs)) rows.push({ kind: 'removed', left: r.text, leftNo: r.no });
    for (const r of added.slice(pairs)) rows.push({ kind: 'added', right: r.text, rightNo: r.no });
    removed = [];
    added = [];
  };
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      rows.push({ kind: 'same', left: a[i]!, right: b[j]!, leftNo: i + 1, rightNo: j + 1 });
      i++;
      j++;
    } else if (j < m && (i >= n || lcs[i * (m + 1) + j + 1]! >= lcs[(i + 1) * (m + 1) + j]!)) {
      added.push({ text: b[j]!, no: j + 1 });
      j++;
    } else {
      removed.push({ text: a[i]!, no: i + 1 });
      i++;
    }
  }
  flush();
  return rows;
}

/** Stable, readable JSON of a descriptor for diffing: server-managed fields left out, keys sorted. */
export function descriptorText(descriptor: Record<string, unknown>): string {
  const { id: _id, created: _c, lastModified: _l, ...rest } = descriptor;
  return JSON.stringify(sortKeys(rest), null, 2);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value as Record<string, unknown>).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]));
  }
  return value;
}
