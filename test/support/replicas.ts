import { randomUUID } from 'node:crypto';
import { CutoverProcess } from './process.js';
import { DeployClient } from './deploy.js';
import { request } from './http.js';
import { waitFor } from './wait.js';

/**
 * Several cutover replicas as real processes on one etcd and one cluster, for crash, takeover and
 * concurrency tests. They share one key prefix, so they share all data.
 */
export class Replicas {
  readonly all: CutoverProcess[] = [];

  private constructor(readonly prefix: string, private readonly baseEnv: Record<string, string>) {}

  static async start(count: number, env: Record<string, string>, perReplica: (i: number) => Record<string, string> = () => ({})): Promise<Replicas> {
    const r = new Replicas(`/rel-${randomUUID().slice(0, 8)}/`, env);
    for (let i = 0; i < count; i++) await r.add(perReplica(i));
    return r;
  }

  async add(extra: Record<string, string> = {}): Promise<CutoverProcess> {
    const p = await CutoverProcess.start({
      ...this.baseEnv, CUTOVER_ETCD_PREFIX: this.prefix, CUTOVER_REPLICA_ID: `replica-${this.all.length}`, ...extra,
    });
    this.all.push(p);
    return p;
  }

  client(i: number): DeployClient {
    return new DeployClient(this.all[i]!.url);
  }

  running(): CutoverProcess[] {
    return this.all.filter((p) => p.running);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.all.map((p) => p.stop()));
  }
}

/** The first time an event after `since` says a replica other than `killed` picked the work up. */
export async function takeoverTime(base: string, namespace: string, deploymentId: string, killed: string, since: number, timeoutMs = 60_000): Promise<number> {
  return waitFor(`a replica other than ${killed} to resume deployment ${deploymentId}`, async () => {
    const events = (await request(`${base}/deployments/${deploymentId}/events?namespace=${namespace}`)).body as Array<{ time: string; type: string; message?: string }>;
    const resumed = events.find((e) => e.type === 'log' && Date.parse(e.time) >= since && /Resuming|Deadline passed/.test(e.message ?? '') && !(e.message ?? '').includes(`on replica ${killed}`));
    return resumed ? Date.parse(resumed.time) - since : undefined;
  }, { timeoutMs, intervalMs: 100 });
}
