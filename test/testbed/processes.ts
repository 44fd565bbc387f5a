// Starting and stopping the test bed's long-running processes. They are started detached (own session,
// output to a log file) so they outlive `npm run testbed -- up`; `down` finds them again through the pid
// and kernel start time recorded in state.json, and never signals a pid that now belongs to someone else.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { waitUntil } from './wait.js';

export interface ProcessRecord {
  name: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: tells a recycled pid apart from ours. */
  startTime: string;
  command: string[];
  log: string;
}

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  log: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export async function startDetached(opts: StartOptions): Promise<ProcessRecord> {
  const fd = openSync(opts.log, 'a');
  try {
    const child = spawn(opts.command, opts.args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: opts.cwd,
      env: opts.env ?? process.env,
    });
    // 'spawn' or 'error' (e.g. ENOENT) tells whether exec worked.
    await Promise.race([
      once(child, 'spawn'),
      once(child, 'error').then(([err]) => {
        throw new Error(`cannot start ${opts.name} (${opts.command}): ${(err as Error).message}`);
      }),
    ]);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${opts.name}: no pid`);
    return {
      name: opts.name,
      pid,
      startTime: procStartTime(pid) ?? '',
      command: [opts.command, ...opts.args],
      log: opts.log,
    };
  } finally {
    closeSync(fd);
  }
}

function procStat(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return rest; // rest[0] = state (field 3), rest[19] = starttime (field 22)
  } catch {
    return undefined;
  }
}

function procStartTime(pid: number): string | undefined {
  return procStat(pid)?.[19];
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  const st = procStat(pid);
  return st !== undefined && st[0] !== 'Z' && st[0] !== 'X';
}

/** The recorded process is still running (same pid and same start time). */
export function isRunning(rec: ProcessRecord): boolean {
  if (!isAlive(rec.pid)) return false;
  return rec.startTime === '' || procStartTime(rec.pid) === rec.startTime;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Returns how it ended. */
export async function stopProcess(rec: ProcessRecord, graceMs = 10_000): Promise<'not running' | 'terminated' | 'killed'> {
  if (!isRunning(rec)) return 'not running';
  signal(rec.pid, 'SIGTERM');
  try {
    await waitUntil(`${rec.name} (pid ${rec.pid}) to exit after SIGTERM`, async () => !isRunning(rec) || 'running', {
      timeoutMs: graceMs,
      intervalMs: 50,
    });
    return 'terminated';
  } catch {
    signal(rec.pid, 'SIGKILL');
    await waitUntil(`${rec.name} (pid ${rec.pid}) to exit after SIGKILL`, async () => !isRunning(rec) || 'running', {
      timeoutMs: 5_000,
      intervalMs: 50,
    });
    return 'killed';
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Resident set size in KiB, from /proc (undefined when the process is gone). */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
