import type { ImportReport, Outcome } from './import.js';

/** The import report as an operator reads it: one line per item, then apps, warnings and a summary. */
export function formatReport(report: ImportReport): string[] {
  const label: Record<Outcome, string> = {
    imported: report.dryRun ? 'would import' : 'imported',
    'already-imported': 'already there',
    skipped: 'skipped',
    bad: 'BAD',
  };
  const width = Math.max(...Object.values(label).map((l) => l.length));
  const lines: string[] = [
    `import-amdatu from ${report.source}${report.etcdVersion ? ` (etcd ${report.etcdVersion})` : ''}${report.dryRun ? ' — dry run: nothing is written' : ''}`,
  ];
  for (const item of report.items) {
    lines.push(`${label[item.outcome].padEnd(width)}  ${item.kind.padEnd(11)}  ${item.key}${item.detail ? `  ${item.detail}` : ''}`);
    for (const note of item.notes ?? []) lines.push(`${''.padEnd(width)}  ${''.padEnd(11)}  note: ${note}`);
  }
  if (report.apps.length > 0) {
    lines.push('apps:');
    for (const app of report.apps) {
      const counter = app.versionCounter
        ? `"#" counter ${app.versionCounter.before === app.versionCounter.after ? `stays ${app.versionCounter.after}` : `${app.versionCounter.before} → ${app.versionCounter.after}`}`
        : '"#" counter unchanged (no numeric versions)';
      lines.push(`  ${app.namespace}/${app.appName}: live ${app.live ?? 'none'}; ${counter}`);
    }
  }
  if (report.warnings.length > 0) {
    lines.push('warnings:');
    for (const w of report.warnings) lines.push(`  - ${w}`);
  }
  const c = report.counts;
  const totals = `${c.imported} ${report.dryRun ? 'to import' : 'imported'}, ${c['already-imported']} already there, ${c.skipped} skipped, ${c.bad} bad`;
  const lead = c.imported === 0 ? 'nothing new to import: ' : '';
  lines.push(`summary: ${lead}${totals} (${(report.durationMs / 1000).toFixed(1)} s)${c.bad > 0 ? '; the bad items are not imported: fix them in the original and run again' : ''}`);
  return lines;
}
