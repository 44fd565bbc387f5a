import type { DeploymentRecord, DeploymentStatus, PodHealth } from '../domain/deployment.js';
import type { Change } from './diff.js';
import type { CliError } from './errors.js';
import { EXIT_CODE_TABLE } from './exit-codes.js';

/** Pure formatting of everything the CLI prints; no I/O, so it is unit-tested as is. */

// ---- colour ----

export interface Style {
  enabled: boolean;
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

const sgr = (open: number, close: number) => (s: string) => `\x1b[${open}m${s}\x1b[${close}m`;
const identity = (s: string) => s;

export function makeStyle(enabled: boolean): Style {
  return enabled
    ? { enabled, bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), cyan: sgr(36, 39) }
    : { enabled, bold: identity, dim: identity, red: identity, green: identity, yellow: identity, cyan: identity };
}

/** Colour only on a terminal, unless NO_COLOR is set (https://no-color.org), --no-color given or TERM=dumb. */
export function colourWanted(isTty: boolean, env: Record<string, string | undefined>, flag: boolean): boolean {
  return isTty && flag && (env['NO_COLOR'] ?? '') === '' && env['TERM'] !== 'dumb';
}

export function statusColour(style: Style, status: DeploymentStatus | string): (s: string) => string {
  return status === 'DEPLOYED' || status === 'UNDEPLOYED' ? style.green : status === 'FAILURE' ? style.red : style.yellow;
}

// ---- values ----

/** "850ms", "4.2s", "1m05s", "2h03m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  if (totalSeconds < 3600) return `${Math.floor(totalSeconds / 60)}m${String(totalSeconds % 60).padStart(2, '0')}s`;
  const totalMinutes = Math.round(totalSeconds / 60);
  return `${Math.floor(totalMinutes / 60)}h${String(totalMinutes % 60).padStart(2, '0')}m`;
}

/** "3m ago", "2h ago", "5d ago" (coarse: for "running since"). */
export function formatAgo(ms: number): string {
  if (ms < 60_000) return `${Math.max(0, Math.floor(ms / 1000))}s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ago`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h ago`;
  return `${Math.floor(ms / 86_400_000)}d ago`;
}

/** A value in a diff or table: JSON, shortened to `max` characters. */
export function formatValue(value: unknown, max = 80): string {
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "2026-05-04 10:15:02Z" from an ISO time (seconds precision, for tables). */
export function formatTimestamp(iso: string | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** "10:15:02" local to UTC, for lines on a terminal. */
export function clockTime(iso: string | Date): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().slice(11, 19);
}

// ---- plain (non-TTY) lines ----

export const PLAIN_TAG_WIDTH = 8;

/**
 * A line for CI logs: `<ISO time> <tag> <text>`, the tag padded so messages line up. Events use
 * the server's time of the event, local lines the CLI's clock.
 */
export function plainLine(time: string | Date, tag: string, text: string): string {
  const t = typeof time === 'string' ? time : time.toISOString();
  return `${t} ${tag.padEnd(PLAIN_TAG_WIDTH)} ${text}`;
}

// ---- diffs ----

export function formatChanges(changes: Change[], style: Style): string[] {
  return changes.map((c) => {
    switch (c.kind) {
      case 'added':
        return style.green(`  + ${c.path}: ${formatValue(c.after)}`);
      case 'removed':
        return style.red(`  - ${c.path}: ${formatValue(c.before)}`);
      case 'changed':
        return style.yellow(`  ~ ${c.path}: ${formatValue(c.before)} → ${formatValue(c.after)}`);
    }
  });
}

export function summariseChanges(changes: Change[]): string {
  const count = (kind: Change['kind']) => changes.filter((c) => c.kind === kind).length;
  const parts = [['added', count('added')], ['changed', count('changed')], ['removed', count('removed')]] as const;
  return parts.filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ');
}

// ---- health ----

export function formatPodHealth(pod: PodHealth): string {
  const state = pod.healthy ? 'healthy' : 'not healthy';
  const code = pod.statusCode !== undefined ? `HTTP ${pod.statusCode}, ` : '';
  const reason = !pod.healthy && pod.reason ? `: ${pod.reason}` : '';
  return `pod ${pod.podName} ${state} (${code}${Math.round(pod.latencyMs)} ms)${reason}`;
}

export function healthSummary(pods: PodHealth[]): string {
  if (pods.length === 0) return '';
  return `${pods.filter((p) => p.healthy).length}/${pods.length} pods healthy`;
}

// ---- errors ----

/** The lines of an error report: what went wrong, each refused field, what to do. */
export function formatError(err: CliError, style: Style): string[] {
  const lines = [`${style.red(style.bold('error:'))} ${err.message}`];
  for (const p of err.problems) lines.push(`  ${p.path ? `${style.bold(p.path)}: ` : ''}${p.message}`);
  if (err.hint) lines.push(`${style.yellow('hint:')} ${err.hint}`);
  return lines;
}

// ---- status of an app ----

export interface AppStatusReport {
  namespace: string;
  appName: string;
  /** Newest first, as the API lists them. */
  deployments: DeploymentRecord[];
  descriptor?: { id: string; newVersion: string; lastModified: string } | undefined;
}

/** When a record reached its outcome (for durations). */
export function finishedAt(r: DeploymentRecord): string | undefined {
  if (r.times.finished) return r.times.finished;
  if (r.status === 'FAILURE' || r.status === 'UNDEPLOYED') return r.times.removed ?? r.lastModified;
  return undefined;
}

/** How long a deployment took (or has been running, for one in progress). */
export function deploymentDuration(r: DeploymentRecord, now: Date): number {
  const end = finishedAt(r);
  const start = Date.parse(r.created);
  return (end ? Date.parse(end) : now.getTime()) - start;
}

/** The record that serves traffic now: the newest DEPLOYED one. */
export function liveRecord(records: DeploymentRecord[]): DeploymentRecord | undefined {
  return records.find((r) => r.status === 'DEPLOYED');
}

function note(r: DeploymentRecord): string {
  if (r.status === 'FAILURE') return r.failureReason ?? '';
  if (r.status === 'DEPLOYING') return r.step === 'queued' ? 'queued' : `step ${r.step}`;
  if (r.status === 'UNDEPLOYING') return r.replacedBy ? `draining (replaced by ${r.replacedBy})` : 'being undeployed';
  if (r.replacedBy) return `replaced by ${r.replacedBy}`;
  if (r.redeployOf) return `redeploy of ${r.redeployOf}`;
  return '';
}

/** Columns padded to their widest cell (the last one not), the header row bold. */
export function table(rows: string[][], style: Style): string[] {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows.map((r, i) => {
    const line = r.map((cell, col) => (col === r.length - 1 ? cell : cell.padEnd(widths[col]!))).join('  ').trimEnd();
    return i === 0 ? style.bold(line) : line;
  });
}

export function formatAppStatus(report: AppStatusReport, now: Date, style: Style, maxNoteLength = 100): string[] {
  const { deployments } = report;
  const lines = [style.bold(`${report.namespace}/${report.appName}`)];
  const live = liveRecord(deployments);
  if (live) {
    const since = live.times.switched ?? live.times.finished ?? live.lastModified;
    lines.push(`  running:    version ${style.green(live.version)} since ${formatTimestamp(since)} (${formatAgo(now.getTime() - Date.parse(since))}), deployment ${live.id}`);
  } else {
    lines.push(`  running:    ${style.dim('nothing (no DEPLOYED record)')}`);
  }
  const active = deployments.filter((r) => r.status === 'DEPLOYING').reverse(); // oldest first: queue order
  for (const r of active) {
    const what = r.step === 'queued' ? 'queued:    ' : 'deploying: ';
    lines.push(`  ${what} version ${style.yellow(r.version)}${r.step === 'queued' ? '' : `, step ${r.step}`}, requested ${formatAgo(now.getTime() - Date.parse(r.created))}, deployment ${r.id}`);
  }
  for (const r of deployments.filter((x) => x.status === 'UNDEPLOYING')) {
    lines.push(`  ${r.replacedBy ? 'draining:  ' : 'removing:  '} version ${r.version}, deployment ${r.id}`);
  }
  if (report.descriptor) {
    lines.push(`  descriptor: ${report.descriptor.id} (newVersion ${JSON.stringify(report.descriptor.newVersion)}, modified ${formatTimestamp(report.descriptor.lastModified)})`);
  }
  if (deployments.length === 0) {
    lines.push('', '  no deployments yet');
    return lines;
  }
  const rows = [['DEPLOYMENT', 'VERSION', 'STATUS', 'STARTED', 'DURATION', 'NOTE']];
  for (const r of deployments) {
    const n = note(r);
    rows.push([r.id, r.version, r.status, formatTimestamp(r.created), formatDuration(deploymentDuration(r, now)), n.length > maxNoteLength ? `${n.slice(0, maxNoteLength - 1)}…` : n]);
  }
  const [header, ...body] = table(rows, style);
  lines.push('', `  ${header}`);
  body.forEach((line, i) => {
    const status = deployments[i]!.status;
    lines.push(`  ${line.replace(status, statusColour(style, status)(status))}`);
  });
  return lines;
}

// ---- help ----

export function exitCodeHelp(): string {
  return ['Exit codes:', ...EXIT_CODE_TABLE.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`)].join('\n');
}
