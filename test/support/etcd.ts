import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEtcdBinary } from '../testbed/binaries.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/**
 * A real etcd for a test: its own loopback ports and temporary data dir, stopped by pid.
 * `stop()` + `start()` restarts it on the same ports and data, to test outages.
 */
export class TestEtcd {
  private child: ChildProcess | undefined;
  private constructor(
    private readonly binary: string,
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  static async create(): Promise<TestEtcd> {
    const binary = await ensureEtcdBinary({ log: () => {} });
    const dataDir = await mkdtemp(join(tmpdir(), 'cutover-etcd-'));
    const etcd = new TestEtcd(binary, dataDir, await freePort(), await freePort());
    await etcd.start();
    return etcd;
  }

  async start(): Promise<void> {
    if (this.child) return;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const logFd = openSync(join(this.dataDir, 'etcd.log'), 'a');
    const child = spawn(this.binary, [
      '--name=test', `--data-dir=${join(this.dataDir, 'data')}`,
      `--listen-client-urls=${this.endpoint}`, `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=test=${peer}`,
      '--unsafe-no-fsync', '--log-level=warn',
    ], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.child = child;
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`etcd exited with ${code}; see ${this.dataDir}/etcd.log`))));
    exited.catch(() => {});
    await Promise.race([
      exited,
      waitFor('etcd /health', async () => {
        const res = await fetch(`${this.endpoint}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      }, { timeoutMs: 20_000 }),
    ]);
  }

  /** Stops etcd (SIGTERM, then SIGKILL) and waits until the process is gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(timer);
  }

  /** Stops etcd and removes its data. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
