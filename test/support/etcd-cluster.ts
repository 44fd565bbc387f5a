import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/store/etcd.js';
import { ensureEtcdBinary } from '../testbed/binaries.js';
import { EtcdProcess } from './etcd.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

/** What `/v3/maintenance/status` (etcd's HTTP/JSON gateway) answers; uint64s come as strings. */
interface MemberStatus {
  header?: { member_id?: string; raft_term?: string };
  leader?: string;
}

export interface TestEtcdClusterOptions {
  /** Number of members (default 3). */
  size?: number;
  /** Extra etcd flags for every member (e.g. `--heartbeat-interval=50`). */
  extraArgs?: string[];
}

/**
 * A real etcd cluster for a test: N members (default 3) on free loopback ports, each with its own
 * data dir, all in one temporary dir. Members are killed (SIGKILL), stopped, paused and restarted
 * by index; a restarted member keeps its data dir and ports and rejoins the cluster.
 *
 * Clients must list all `endpoints` (EtcdStore picks one at random per call and does not discover
 * members); for cutover: `CUTOVER_ETCD_ENDPOINTS=cluster.endpoints.join(',')`.
 */
export class TestEtcdCluster {
  private constructor(readonly members: EtcdProcess[], readonly dir: string) {}

  static async create(options: TestEtcdClusterOptions = {}): Promise<TestEtcdCluster> {
    const size = options.size ?? 3;
    const binary = await ensureEtcdBinary({ log: () => {} });
    const dir = await mkdtemp(join(tmpdir(), 'cutover-etcd-cluster-'));
    const ports: Array<{ client: number; peer: number }> = [];
    // freePort() one after another: two concurrent calls could be handed the same port.
    for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initialCluster = ports.map((p, i) => `m${i}=http://127.0.0.1:${p.peer}`).join(',');
    const token = `cutover-test-${randomUUID().slice(0, 8)}`;
    const members: EtcdProcess[] = [];
    for (let i = 0; i < size; i++) {
      await mkdir(join(dir, `m${i}`));
      members.push(new EtcdProcess({
        binary, name: `m${i}`, dataDir: join(dir, `m${i}`, 'data'), logFile: join(dir, `m${i}`, 'etcd.log'),
        clientPort: ports[i]!.client, peerPort: ports[i]!.peer, initialCluster, initialClusterToken: token,
        ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
      }));
    }
    const cluster = new TestEtcdCluster(members, dir);
    try {
      // Concurrently: a member only becomes healthy once a quorum is up and has elected a leader.
      await Promise.all(members.map((m) => m.start(30_000)));
      await cluster.waitForLeader();
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  get size(): number {
    return this.members.length;
  }

  /** Client URLs of all members, in member order. */
  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  member(i: number): EtcdProcess {
    const m = this.members[i];
    if (!m) throw new Error(`no member ${i} (the cluster has ${this.size})`);
    return m;
  }

  /** Raw status of member i (1 s timeout; a paused or dead member throws). */
  async status(i: number): Promise<{ memberId: string; leaderId: string; raftTerm: string }> {
    const res = await fetch(`${this.member(i).endpoint}/v3/maintenance/status`, {
      method: 'POST', body: '{}', headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) throw new Error(`member ${i}: HTTP ${res.status}`);
    const s = (await res.json()) as MemberStatus;
    return { memberId: String(s.header?.member_id ?? ''), leaderId: String(s.leader ?? '0'), raftTerm: String(s.header?.raft_term ?? '') };
  }

  /**
   * Index of the member that leads, when every running (not paused) member that answers names
   * the same leader and that leader is one of them; otherwise undefined (election in progress).
   */
  async leader(): Promise<number | undefined> {
    const candidates = this.members.map((m, i) => ({ m, i })).filter(({ m }) => m.running && !m.paused);
    const answers = (await Promise.all(candidates.map(async ({ i }) => ({ i, s: await this.status(i).catch(() => undefined) }))))
      .filter((a): a is { i: number; s: Awaited<ReturnType<TestEtcdCluster['status']>> } => a.s !== undefined);
    if (answers.length === 0) return undefined;
    const leaderIds = new Set(answers.map((a) => a.s.leaderId));
    if (leaderIds.size !== 1) return undefined;
    const [leaderId] = leaderIds;
    if (leaderId === '0') return undefined;
    return answers.find((a) => a.s.memberId === leaderId)?.i;
  }

  /** Waits until the running members agree on a leader (see leader()); returns its index. */
  async waitForLeader(timeoutMs = 20_000): Promise<number> {
    return waitFor('the etcd cluster to agree on a leader', async () => {
      const l = await this.leader();
      return l === undefined ? undefined : { l };
    }, { timeoutMs, intervalMs: 50 }).then((r) => r.l);
  }

  /** SIGKILL member i and wait until it is gone. */
  async killMember(i: number): Promise<void> {
    await this.member(i).kill();
  }

  /** SIGKILL the current leader; returns its index. */
  async killLeader(): Promise<number> {
    const i = await this.waitForLeader();
    await this.killMember(i);
    return i;
  }

  /** Starts a killed/stopped member again with its data dir and ports; it rejoins the cluster. */
  async restartMember(i: number, timeoutMs = 30_000): Promise<void> {
    await this.member(i).start(timeoutMs);
  }

  /** Stops every member (resuming paused ones first) and removes all data. */
  async destroy(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs `fn` with EtcdStore's choice of endpoint made deterministic: every call, and every watch
 * it opens, goes to the LAST endpoint of the store's list. Lets a test put a watch or a lease on a
 * chosen member, e.g. the leader it is about to kill — otherwise the store picks a random endpoint
 * per call and the test may never exercise a failover. Process-wide (`EtcdStore.deterministicOrder`):
 * run no other etcd calls meanwhile. `settleMs` keeps the order a little longer after `fn`
 * resolves. A watch reconnects wherever the store's choice falls; a lease's keepalives are single
 * calls, each to the member the store picks at that moment.
 */
export async function onLastEndpoint<T>(fn: () => Promise<T>, settleMs = 200): Promise<T> {
  EtcdStore.deterministicOrder = true;
  try {
    const result = await fn();
    await new Promise((r) => setTimeout(r, settleMs));
    return result;
  } finally {
    EtcdStore.deterministicOrder = false;
  }
}
