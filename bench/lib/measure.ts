/** Shared helpers of the bench/ scripts: run an operation N times at concurrency C, print a table. */

export interface Row {
  name: string;
  count: number;
  p50: number;
  p99: number;
  max: number;
  perSecond: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

/** "p50 / p99" of the finite values, in whole ms, for the benches' tables. */
export function p50p99(values: number[]): string {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return `${percentile(sorted, 50).toFixed(0)} / ${percentile(sorted, 99).toFixed(0)}`;
}

export async function measure(name: string, count: number, concurrency: number, op: () => Promise<unknown>): Promise<Row> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      next++;
      const t0 = process.hrtime.bigint();
      await op();
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  return {
    name,
    count: latencies.length,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies[latencies.length - 1] ?? Number.NaN,
    perSecond: latencies.length / seconds,
  };
}

export function printTable(title: string, rows: Row[]): void {
  const header = ['operation', 'n', 'p50 ms', 'p99 ms', 'max ms', 'req/s'];
  const lines = rows.map((r) => [r.name, String(r.count), r.p50.toFixed(2), r.p99.toFixed(2), r.max.toFixed(2), r.perSecond.toFixed(0)]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\n${title}\n`);
  console.log(fmt(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
  console.log('');
}

/** Prints a markdown table (first column left-aligned). */
export function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\n${title}\n`);
  console.log(fmt(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(fmt(r));
  console.log('');
}
