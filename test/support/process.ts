import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Node options for cutover run as a process in tests: a major garbage collection every 100 ms
 * (gc-pressure.mjs, CUTOVER_TEST_GC_INTERVAL_MS below), so that timers and signals lost to the GC
 * show up in the tests. Test files themselves collect every 500 ms (they are heavier: in-process
 * cutovers, clients, the observer).
 */
const CUTOVER_GC_INTERVAL_MS = process.env['CUTOVER_TEST_GC_INTERVAL_MS'] === '0' ? '0' : '100';
export const GC_PRESSURE_ARGS: readonly string[] = ['--expose-gc', '--import', fileURLToPath(new URL('./gc-pressure.mjs', import.meta.url))];

/** cutover as a real process (src/main.ts via tsx), for tests of signals, restarts and crashes. */
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
    const child = spawn(process.execPath, [...GC_PRESSURE_ARGS, '--import', 'tsx', 'src/main.ts'], {
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
