import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/**
 * An etcd with the v2 API, as the Amdatu deployer used it: Debian's `etcd-server` package (etcd
 * 3.4; .ci/run installs it) started with --enable-v2=true on free loopback ports, with its own data
 * dir in a temporary directory; stopped by pid, data removed. (cutover's own TestEtcd is 3.6,
 * which has no v2 API.) Plus writers of the original's layout (reference §7) for seeding it.
 */

const BINARY = process.env['CUTOVER_TEST_ETCD_V2_BINARY'] ?? '/usr/bin/etcd';

const started = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  started.add(child);
  child.once('exit', () => started.delete(child));
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test process that exits without its cleanup must not leave an etcd behind.
  process.once('exit', () => {
    for (const c of started) c.kill('SIGKILL');
  });
}

export class TestEtcdV2 {
  private exited: Promise<void>;

  private constructor(private readonly child: ChildProcess, readonly dir: string, readonly clientPort: number) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  static async create(): Promise<TestEtcdV2> {
    if (!existsSync(BINARY)) {
      throw new Error(`${BINARY} not found: the etcd v2 tests need Debian's etcd-server (apt-get install --no-install-recommends etcd-server; .ci/run does)`);
    }
    const dir = await mkdtemp(join(tmpdir(), 'cutover-etcd-v2-'));
    const clientPort = await freePort();
    const peerPort = await freePort();
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const logFd = openSync(join(dir, 'etcd.log'), 'a');
    const child = spawn(BINARY, [
      '--name=v2', `--data-dir=${join(dir, 'data')}`,
      `--listen-client-urls=${client}`, `--advertise-client-urls=${client}`,
      `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=v2=${peer}`,
      '--enable-v2=true', '--log-level=warn',
    ], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    track(child);
    const etcd = new TestEtcdV2(child, dir, clientPort);
    try {
      const died = etcd.exited.then(() => {
        throw new Error(`etcd v2 exited with ${child.exitCode ?? child.signalCode}; see ${join(dir, 'etcd.log')}`);
      });
      died.catch(() => {});
      await Promise.race([died, waitFor('etcd v2 /health', async () => {
        const res = await fetch(`${client}/health`, { signal: AbortSignal.timeout(2000) });
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      }, { timeoutMs: 20_000 })]);
    } catch (err) {
      await etcd.destroy();
      throw err;
    }
    return etcd;
  }

  /** PUT /v2/keys{key} (creates directories on the way, as the original's client did). */
  async put(key: string, value: string): Promise<void> {
    const res = await fetch(`${this.endpoint}/v2/keys${key}`, { method: 'PUT', body: new URLSearchParams({ value }) });
    if (!res.ok) throw new Error(`etcd v2 PUT ${key}: ${res.status} ${await res.text()}`);
  }

  async get(key: string): Promise<string | undefined> {
    const res = await fetch(`${this.endpoint}/v2/keys${key}`);
    if (res.status === 404) return undefined;
    return ((await res.json()) as { node: { value?: string } }).node.value;
  }

  async mkdir(key: string): Promise<void> {
    const res = await fetch(`${this.endpoint}/v2/keys${key}`, { method: 'PUT', body: new URLSearchParams({ dir: 'true' }) });
    if (!res.ok) throw new Error(`etcd v2 mkdir ${key}: ${res.status} ${await res.text()}`);
  }

  /** Stops etcd by its pid (SIGTERM, SIGKILL after 5 s) and removes its directory. */
  async destroy(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * JSON as the original's `storeJson` wrote it: Go's json.MarshalIndent(v, "", "  "), which also
 * escapes <, > and & (and U+2028/U+2029) inside strings.
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value, null, 2)
    .replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** A time as Go's time.RFC3339 formats it in a zone `offsetMinutes` east of UTC (the original used local time). */
export function goRfc3339(at: Date, offsetMinutes = 120): string {
  const local = new Date(at.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19);
  if (offsetMinutes === 0) return `${local}Z`;
  const sign = offsetMinutes > 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** Writes data in the Amdatu deployer's layout (reference §7.1), the way its code wrote it. */
export class OriginalDeployerData {
  constructor(readonly etcd: TestEtcdV2) {}

  /** /deployer/descriptors/{ns}/{appName}/{id} */
  async descriptor(d: { id: string; namespace: string; appName: string } & Record<string, unknown>): Promise<string> {
    const key = `/deployer/descriptors/${d.namespace}/${d.appName}/${d.id}`;
    await this.etcd.put(key, goJson(d));
    return key;
  }

  /** /deployer/deployments/{ns}/{appName}/{id}: `OldVersion` is always written (it has no json tag). */
  async deployment(r: { id: string; descriptor: { namespace: string; appName: string } } & Record<string, unknown>): Promise<string> {
    const key = `/deployer/deployments/${r.descriptor.namespace}/${r.descriptor.appName}/${r.id}`;
    await this.etcd.put(key, goJson({ OldVersion: '', ...r }));
    return key;
  }

  /** /deployer/logs/{ns}/{id}: the whole log as one value, `<RFC3339> <message>\n` per line (§7.4). */
  async log(namespace: string, id: string, lines: Array<{ at: Date; message: string } | { raw: string }>): Promise<void> {
    const text = lines.map((l) => ('raw' in l ? `${l.raw}\n` : `${goRfc3339(l.at)} ${l.message}\n`)).join('');
    await this.etcd.put(`/deployer/logs/${namespace}/${id}`, text);
  }

  /** /deployer/healthcheckdata/{ns}/{id}/{pod}: the latest answer, as a plain string (§9). */
  async health(namespace: string, id: string, pod: string, value: string): Promise<void> {
    await this.etcd.put(`/deployer/healthcheckdata/${namespace}/${id}/${pod}`, value);
  }

  /** /deployer/environment/{NAME} */
  async environment(name: string, value: string): Promise<void> {
    await this.etcd.put(`/deployer/environment/${name}`, value);
  }
}
