import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEtcdBinary } from '../testbed/binaries.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** What one etcd process needs: its name in the cluster, where it keeps data and logs, its ports. */
export interface EtcdProcessOptions {
  binary: string;
  name: string;
  /** etcd's --data-dir. Kept across stop()/kill() and start(), so a restarted member rejoins. */
  dataDir: string;
  logFile: string;
  clientPort: number;
  peerPort: number;
  /** `name=peerUrl` of every member (--initial-cluster); only read on the first start. */
  initialCluster: string;
  initialClusterToken: string;
  extraArgs?: string[];
}

// Every etcd a test process started, so that a test process that exits without its cleanup
// (a failed before(), process.exit) does not leave an etcd behind, least of all a SIGSTOPped one,
// which would not even react to SIGTERM.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
  });
}

/** Process state from /proc (R, S, T = stopped, Z, …), or undefined when the process is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/**
 * One etcd process, started and signalled by pid: start, stop (SIGTERM), kill (SIGKILL), pause
 * (SIGSTOP) and resume (SIGCONT). The building block of TestEtcd and TestEtcdCluster.
 */
export class EtcdProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private isPaused = false;

  constructor(readonly options: EtcdProcessOptions) {}

  get name(): string {
    return this.options.name;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.options.clientPort}`;
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.options.peerPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Started and not exited (a paused process is running). */
  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get paused(): boolean {
    return this.running && this.isPaused;
  }

  /** Starts etcd and waits until it reports healthy (which, in a cluster, needs a leader). */
  async start(timeoutMs = 20_000): Promise<void> {
    if (this.running) return;
    const o = this.options;
    const logFd = openSync(o.logFile, 'a');
    const child = spawn(o.binary, [
      `--name=${o.name}`, `--data-dir=${o.dataDir}`,
      `--listen-client-urls=${this.endpoint}`, `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${this.peerUrl}`, `--initial-advertise-peer-urls=${this.peerUrl}`,
      `--initial-cluster=${o.initialCluster}`, '--initial-cluster-state=new', `--initial-cluster-token=${o.initialClusterToken}`,
      '--unsafe-no-fsync', '--log-level=warn',
      ...(o.extraArgs ?? []),
    ], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.child = child;
    this.isPaused = false;
    track(child);
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const died = this.exited.then(() => {
      throw new Error(`etcd ${o.name} exited with ${child.exitCode ?? child.signalCode}; see ${o.logFile}`);
    });
    died.catch(() => {});
    await Promise.race([
      died,
      waitFor(`etcd ${o.name} /health`, async () => {
        const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(2000) });
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      }, { timeoutMs }),
    ]);
  }

  /** Stops etcd (SIGTERM, SIGKILL after 5 s) and waits until it is gone; resumes it first if paused. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    // A stopped process keeps SIGTERM pending until it continues: without SIGCONT this would wait
    // for the SIGKILL fallback.
    if (this.isPaused) child.kill('SIGCONT');
    this.isPaused = false;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** kill -9 (works on a paused process too) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    child.kill('SIGKILL');
    this.isPaused = false;
    await this.exited;
  }

  /**
   * SIGSTOP: the process keeps its sockets, so clients see no error — connections simply stop
   * answering (the hard case: only deadlines detect it). Resolves once the kernel reports it stopped.
   */
  async pause(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) throw new Error(`etcd ${this.name} is not running`);
    child.kill('SIGSTOP');
    this.isPaused = true;
    await waitFor(`etcd ${this.name} (pid ${child.pid}) to be stopped`, () => procState(child.pid!) === 'T' || !this.running, { timeoutMs: 2000, intervalMs: 5 });
  }

  /** SIGCONT. */
  async resume(): Promise<void> {
    const child = this.child;
    if (!child || !this.running || !this.isPaused) return;
    child.kill('SIGCONT');
    this.isPaused = false;
    await waitFor(`etcd ${this.name} (pid ${child.pid}) to continue`, () => procState(child.pid!) !== 'T', { timeoutMs: 2000, intervalMs: 5 });
  }

  /** Pauses for `ms`, then resumes (also when the wait is aborted). */
  async pauseFor(ms: number, signal?: AbortSignal): Promise<void> {
    await this.pause();
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    } finally {
      await this.resume();
    }
  }
}

/**
 * A real etcd for a test: its own loopback ports and temporary data dir, stopped by pid.
 * `stop()` + `start()` restarts it on the same ports and data, to test outages; `pause()` /
 * `resume()` / `pauseFor()` freeze it (SIGSTOP / SIGCONT), to test an etcd that hangs.
 */
export class TestEtcd {
  private constructor(private readonly proc: EtcdProcess, readonly dataDir: string) {}

  get endpoint(): string {
    return this.proc.endpoint;
  }

  get clientPort(): number {
    return this.proc.options.clientPort;
  }

  get peerPort(): number {
    return this.proc.options.peerPort;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get paused(): boolean {
    return this.proc.paused;
  }

  static async create(): Promise<TestEtcd> {
    const binary = await ensureEtcdBinary({ log: () => {} });
    const dataDir = await mkdtemp(join(tmpdir(), 'cutover-etcd-'));
    const clientPort = await freePort();
    const peerPort = await freePort();
    const proc = new EtcdProcess({
      binary, name: 'test', dataDir: join(dataDir, 'data'), logFile: join(dataDir, 'etcd.log'), clientPort, peerPort,
      initialCluster: `test=http://127.0.0.1:${peerPort}`, initialClusterToken: 'etcd-cluster',
    });
    const etcd = new TestEtcd(proc, dataDir);
    try {
      await etcd.start();
    } catch (err) {
      await etcd.destroy();
      throw err;
    }
    return etcd;
  }

  async start(): Promise<void> {
    await this.proc.start();
  }

  /** Stops etcd (SIGTERM, then SIGKILL) and waits until the process is gone; works when paused. */
  async stop(): Promise<void> {
    await this.proc.stop();
  }

  /** SIGSTOP: etcd keeps its ports but answers nothing until resume(). */
  async pause(): Promise<void> {
    await this.proc.pause();
  }

  /** SIGCONT after pause(). */
  async resume(): Promise<void> {
    await this.proc.resume();
  }

  /** pause(), wait `ms`, resume() (also when aborted). */
  async pauseFor(ms: number, signal?: AbortSignal): Promise<void> {
    await this.proc.pauseFor(ms, signal);
  }

  /** Stops etcd and removes its data. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
