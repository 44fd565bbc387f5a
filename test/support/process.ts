import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Node options for cutover run as a process in tests: forced major garbage collections
 * (gc-pressure.mjs), so that timers and signals lost to the GC show up in the tests — every
 * second by default, every 100 ms where a test asks for it (CUTOVER_TEST_GC_INTERVAL_MS in the
 * process's env; the deadline tests of issue #12 do). A major GC of a cutover process costs about
 * 100 ms of CPU: every 100 ms keeps a core busy per process (measured idle: 20-27 s of CPU in 20 s,
 * against 0.4-0.6 s without), which three replicas on two cores cannot afford in every test.
 */
const CUTOVER_GC_INTERVAL_MS = process.env['CUTOVER_TEST_GC_INTERVAL_MS'] === '0' ? '0' : '1000';

/**
 * What a cutover process runs: the build scripts/test.ts made for this run (CUTOVER_TEST_ENTRY:
 * compiled JavaScript starts with about 2 s less CPU than the TypeScript loader), else the sources.
 */
function entryArgs(): string[] {
  const built = process.env['CUTOVER_TEST_ENTRY'];
  return built ? [built] : ['--import', 'tsx', 'src/main.ts'];
}

export const GC_PRESSURE_ARGS: readonly string[] = ['--expose-gc', '--import', fileURLToPath(new URL('./gc-pressure.mjs', import.meta.url))];

/** cutover as a real process, for tests of signals, restarts and crashes. */
export class CutoverProcess {
  readonly output: string[] = [];
  private child: ChildProcess | undefined;
  private exitCode: Promise<number | null> | undefined;

  private constructor(readonly port: number, private readonly env: Record<string, string>) {}

  static async start(env: Record<string, string>): Promise<CutoverProcess> {
    const port = env['CUTOVER_PORT'] ? Number(env['CUTOVER_PORT']) : await freePort();
    // Authentication off unless the test sets CUTOVER_AUTH itself (the security tests do).
    const p = new CutoverProcess(port, { CUTOVER_AUTH: 'off', ...env, CUTOVER_PORT: String(port) });
    await p.start();
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    const child = spawn(process.execPath, [...GC_PRESSURE_ARGS, ...entryArgs()], {
      cwd: REPO_ROOT,
      env: { ...process.env, CUTOVER_TEST_GC_INTERVAL_MS: CUTOVER_GC_INTERVAL_MS, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exitCode = once(child, 'exit').then(([code]) => code as number | null);
    for (const stream of [child.stdout!, child.stderr!]) {
      let buffered = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        this.output.push(...lines);
      });
    }
    // "cutover listening" is logged once everything, the scheduler included, has started; with a
    // log level above info, answering /healthz is the best sign available.
    const quiet = ['warn', 'error', 'fatal'].includes(this.env['CUTOVER_LOG_LEVEL'] ?? '');
    await waitFor('cutover to start', async () => {
      if (child.exitCode !== null) throw new Error(`cutover exited with ${child.exitCode}: ${this.output.slice(-5).join('\n')}`);
      if (quiet) return (await fetch(`${this.url}/healthz`)).ok;
      return this.logLines().some((l) => l['msg'] === 'cutover listening' && l['pid'] === child.pid);
    }, { timeoutMs: 30_000, intervalMs: 50 });
  }

  /** Resolves with the exit code once the process has exited. */
  exited(): Promise<number | null> {
    return this.exitCode ?? Promise.resolve(null);
  }

  /** kill -9, as a crash: no graceful shutdown, nothing released. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await this.exited();
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /** Stops the process (SIGTERM, SIGKILL after 15 s) and waits for it. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await this.exited();
    clearTimeout(timer);
    return code;
  }

  logLines(): Array<Record<string, unknown>> {
    return this.output.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }
}
