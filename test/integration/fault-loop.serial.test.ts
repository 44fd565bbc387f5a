import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from '../support/etcd.js';
import { TestEtcdCluster } from '../support/etcd-cluster.js';
import { ClusterView, DeployClient, FINAL, fakeAppDescriptor, type AppSpec } from '../support/deploy.js';
import { Replicas } from '../support/replicas.js';
import { request } from '../support/http.js';
import { waitFor } from '../support/wait.js';
import { FaultLog, seededRandom, type Random } from '../support/chaos.js';
import { restartApiServer } from '../support/faults.js';
import { InvariantObserver } from '../support/invariants.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

/**
 * The fault loop (issue #12): many deployments on several replicas while things break, watched
 * from outside by the invariant observer (I1, I4 at every instant). Serial: it restarts the shared
 * API server. Prints one line per run; docs/reliability.md quotes them.
 */

interface Submitted {
  id: string;
  app: string;
  kind: 'normal' | 'same-version' | 'never-healthy';
}

interface LoopResult {
  deployments: number;
  kills: number;
  violations: number;
  stuck: number;
  orphans: number;
  unexpected: string[];
  takeovers: number[];
}

describe('fault loop', { concurrency: 1 }, () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let cluster: ClusterView;
  const namespaces: TestNamespace[] = [];

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    cluster = new ClusterView(kc);
  });

  after(async () => {
    await Promise.all(namespaces.map((n) => n.delete()));
    await testbed?.release();
  });

  const baseEnv = (endpoints: string) => ({
    CUTOVER_ETCD_ENDPOINTS: endpoints,
    CUTOVER_KUBECONFIG: testbed.kubeconfigPath,
    CUTOVER_DRAIN_SECONDS: '1',
    CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
    CUTOVER_SHUTDOWN_GRACE_SECONDS: '5',
    CUTOVER_LEASE_TTL_SECONDS: '3',
    CUTOVER_LOG_LEVEL: 'warn',
  });

  /** Submits a deployment of `app` to a random running replica. */
  async function submit(replicas: Replicas, random: Random, ns: string, app: string, spec: AppSpec): Promise<string> {
    return waitFor(`a replica to accept a deployment of ${app}`, async () => {
      const alive = replicas.running();
      const target = alive[random.int(0, alive.length - 1)]!;
      const descriptor = await request(`${target.url}/descriptors/?namespace=${ns}`, { method: 'POST', json: fakeAppDescriptor(ns, { appName: app, replicas: 1, ...spec }) });
      if (descriptor.status !== 201) return undefined;
      const res = await request(`${target.url}/deployments/?namespace=${ns}&descriptorId=${descriptor.body.id}`, { method: 'POST' });
      return res.status === 202 ? (res.body.id as string) : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  }

  function anyClient(replicas: Replicas): DeployClient {
    return new DeployClient(replicas.running()[0]!.url);
  }

  /** Status of a record, or undefined while no replica can answer (etcd paused, say). */
  async function status(replicas: Replicas, ns: string, id: string): Promise<any> {
    for (const p of replicas.running()) {
      const res = await request(`${p.url}/deployments/${id}/?namespace=${ns}`).catch(() => undefined);
      if (res?.status === 200) return res.body;
    }
    return undefined;
  }

  async function waitForStep(replicas: Replicas, ns: string, id: string, steps: Set<string>, timeoutMs = 30_000): Promise<boolean> {
    return waitFor(`deployment ${id} to reach ${[...steps].join('|')}`, async () => {
      const r = await status(replicas, ns, id);
      return r && (steps.has(r.step) || steps.has(r.status) || FINAL.has(r.status)) ? true : undefined;
    }, { timeoutMs, intervalMs: 50 }).catch(() => false);
  }

  async function liveVersion(replicas: Replicas, ns: string, app: string): Promise<string | undefined> {
    const list = (await request(`${anyClient(replicas).base}/deployments/?namespace=${ns}&appname=${app}`)).body as Array<{ status: string; version: string }>;
    return list.find((d) => d.status === 'DEPLOYED')?.version;
  }

  /** Runs the checks every fault loop ends with; returns its figures. */
  async function settle(replicas: Replicas, ns: string, submitted: Submitted[], apps: string[], observer: InvariantObserver, log: FaultLog): Promise<LoopResult> {
    // Every deployment must end: count the ones that do not within the time, rather than throwing at the first.
    const finals = new Map<string, any>();
    await waitFor('every deployment to reach a final status', async () => {
      for (const s of submitted) {
        if (finals.has(s.id)) continue;
        const r = await status(replicas, ns, s.id);
        if (r && FINAL.has(r.status)) finals.set(s.id, r);
      }
      return finals.size === submitted.length ? true : undefined;
    }, { timeoutMs: 240_000, intervalMs: 500 }).catch(() => undefined);
    const stuck = submitted.filter((s) => !finals.has(s.id)).length;
    const unexpected: string[] = [];
    for (const s of submitted) {
      const r = finals.get(s.id);
      if (!r) continue;
      if (s.kind === 'normal' && r.status === 'FAILURE') unexpected.push(`${s.app} ${r.version}: ${r.failureReason}`);
      if (s.kind === 'same-version' && !(r.status === 'FAILURE' && /already running/.test(r.failureReason ?? ''))) unexpected.push(`same-version ${s.app} ${r.version} ended ${r.status}`);
      // Ends failed by its own 4 s health-check timeout: "not healthy", or "not ready" when the
      // API-server restart falls in its wait for pods (seen once: down 4.6 s from 2 s after it).
      if (s.kind === 'never-healthy' && !(r.status === 'FAILURE' && /^new version not (healthy|ready) within 4 s/.test(r.failureReason ?? ''))) unexpected.push(`never-healthy ${s.app} ${r.version} ended ${r.status}: ${r.failureReason}`);
    }
    // Each app ends with exactly one live version: one workload, its pods ready, the stable Service on it.
    let orphans = 0;
    for (const app of apps) {
      const live = await waitFor(`one live version of ${app}`, async () => liveVersion(replicas, ns, app), { timeoutMs: 60_000, intervalMs: 500 });
      await cluster.waitForWorkloads(ns, app, [`${app}-${live}`], 60_000).catch(() => undefined);
      orphans += (await cluster.workloads(ns, app)).filter((w) => w !== `${app}-${live}`).length;
      assert.deepEqual((await cluster.service(ns, app))?.spec?.selector, { app, version: live }, `${app}: the stable Service selects the live version`);
    }
    // Takeover: from a kill to the first "Resuming …" by another replica of work the killed one
    // held. The kill must fall within the previous holder's run of the record (after its "started"
    // or "Resuming" line): a handover for another reason (its lease lost while etcd was paused) is
    // not a kill's takeover, whatever kill of that replica name came earlier.
    const takeovers: number[] = [];
    const kills = log.records.filter((r) => r.action === 'kill -9').map((r) => ({ replica: r.detail, at: Date.now() - log.now() + r.at }));
    for (const s of submitted) {
      const events = (await request(`${anyClient(replicas).base}/deployments/${s.id}/events?namespace=${ns}`)).body as Array<{ time: string; message?: string }>;
      const heldSince = new Map<string, number>();
      for (const e of events) {
        const at = Date.parse(e.time);
        const run = /(?:started|Resuming .*) on replica (replica-\d+)/.exec(e.message ?? '');
        const m = /Resuming .* on replica (replica-\d+) \(replica (replica-\d+) stopped/.exec(e.message ?? '');
        if (m) {
          const since = heldSince.get(m[2]!) ?? Number.NEGATIVE_INFINITY;
          const killedAt = kills.filter((k) => k.replica === m[2] && k.at >= since && k.at <= at).map((k) => k.at).pop();
          if (killedAt !== undefined) takeovers.push(at - killedAt);
        }
        if (run) heldSince.set(run[1]!, at);
      }
    }
    const violations = (await observer.stop()).length;
    return { deployments: submitted.length, kills: log.counts()['kill -9'] ?? 0, violations, stuck, orphans, unexpected, takeovers };
  }

  function report(name: string, r: LoopResult, log: FaultLog): void {
    const t = [...r.takeovers].sort((a, b) => a - b);
    const counts = Object.entries(log.counts()).map(([k, v]) => `${k.replace(/ /g, '')}=${v}`).join(' ');
    console.log(`# fault loop (${name}): deployments=${r.deployments} ${counts} violations=${r.violations} stuck=${r.stuck} orphans=${r.orphans} unexpected=${r.unexpected.length}`
      + ` takeover p50=${t.length ? t[Math.floor(t.length / 2)] : '-'} ms max=${t.length ? t[t.length - 1] : '-'} ms (n=${t.length})`);
    for (const line of log.lines()) console.log(`#   ${line}`);
    for (const u of r.unexpected) console.log(`#   unexpected: ${u}`);
  }

  it('single etcd: 50 deployments with replica kills, etcd paused around the switch, an API-server restart, same-version redeploys, a corrupt record and never-healthy pods', async () => {
    const created = await createTestNamespace(kc, 'fault-loop');
    namespaces.push(created);
    const ns = created.name;
    const etcd = await TestEtcd.create();
    const replicas = await Replicas.start(3, baseEnv(etcd.endpoint));
    const observer = await InvariantObserver.start({ kubeConfig: kc, namespace: ns, etcdEndpoint: etcd.endpoint, etcdPrefix: replicas.prefix });
    const random = seededRandom(Number(process.env['CUTOVER_CHAOS_SEED'] ?? 42));
    const log = new FaultLog();
    const apps = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
    const submitted: Submitted[] = [];
    try {
      const faults = ['kill', 'etcd-pause-before-switch', 'kill', 'api-restart', 'etcd-pause-after-switch', 'kill', 'corrupt-record', 'kill', 'kill', 'kill'];
      for (let i = 0; i < 50; i++) {
        const app = apps[i % apps.length]!;
        if (i === 7 || i === 23) {
          // The running version again: refused, nothing touched.
          await waitFor(`${app}'s earlier work to end`, async () => (await Promise.all(submitted.filter((s) => s.app === app).map((s) => status(replicas, ns, s.id)))).every((r) => r && FINAL.has(r.status)), { timeoutMs: 120_000, intervalMs: 200 });
          const live = await liveVersion(replicas, ns, app);
          if (live) {
            submitted.push({ id: await submit(replicas, random, ns, app, { newVersion: live }), app, kind: 'same-version' });
            log.note('same-version', `${app} ${live}`);
          }
        } else if (i === 12 || i === 33) {
          submitted.push({ id: await submit(replicas, random, ns, app, { health: 'unhealthy', healthCheckTimeout: 4 }), app, kind: 'never-healthy' });
          log.note('never-healthy', app);
        }
        const id = await submit(replicas, random, ns, app, {});
        submitted.push({ id, app, kind: 'normal' });
        if (i % 5 !== 4) continue;
        const fault = faults[Math.floor(i / 5)]!;
        if (fault === 'kill') {
          const index = random.int(0, replicas.all.length - 1);
          const victim = replicas.all[index]!;
          log.note('kill -9', `replica-${index}`);
          await victim.kill();
          await victim.start();
        } else if (fault === 'etcd-pause-before-switch') {
          await waitForStep(replicas, ns, id, new Set(['health-checking']));
          await log.run('etcd pause', 'before the switch, 3 s', () => etcd.pauseFor(3000));
        } else if (fault === 'etcd-pause-after-switch') {
          await waitForStep(replicas, ns, id, new Set(['DEPLOYED']));
          await log.run('etcd pause', 'after the switch, 3 s', () => etcd.pauseFor(3000));
        } else if (fault === 'api-restart') {
          await waitForStep(replicas, ns, id, new Set(['creating-resources', 'waiting-for-pods', 'health-checking']));
          await log.run('api-server restart', 'mid-deploy, down 2 s', () => restartApiServer({ downMs: 2000 }));
        } else if (fault === 'corrupt-record') {
          const finished = (await request(`${anyClient(replicas).base}/deployments/?namespace=${ns}&appname=${app}`)).body as Array<{ id: string; status: string }>;
          const victim = finished.find((d) => d.status === 'UNDEPLOYED');
          if (victim) {
            await etcdPut(replicas, etcd.endpoint, `deployments/${ns}/${victim.id}`, '{"status": "DEPLOYED", broken');
            submitted.splice(submitted.findIndex((s) => s.id === victim.id), 1); // no longer readable
            log.note('corrupt record', `${app} ${victim.id}`);
          }
        }
      }
      const result = await settle(replicas, ns, submitted, apps, observer, log);
      report('single etcd', result, log);
      assert.deepEqual(observer.violations(), [], observer.report());
      assert.equal(result.violations, 0);
      assert.equal(result.stuck, 0);
      assert.equal(result.orphans, 0);
      assert.deepEqual(result.unexpected, []);
      assert.ok(result.kills >= 5);
    } finally {
      await observer.stop();
      await replicas.stopAll();
      await etcd.destroy();
    }
  });

  it('3-member etcd cluster: 20 deployments with the etcd leader killed mid-deploy', async () => {
    const created = await createTestNamespace(kc, 'fault-loop-cluster');
    namespaces.push(created);
    const ns = created.name;
    const etcd = await TestEtcdCluster.create({ size: 3 });
    const replicas = await Replicas.start(3, baseEnv(etcd.endpoints.join(',')));
    const observer = await InvariantObserver.start({ kubeConfig: kc, namespace: ns, etcdEndpoint: etcd.endpoints, etcdPrefix: replicas.prefix });
    const random = seededRandom(Number(process.env['CUTOVER_CHAOS_SEED'] ?? 7));
    const log = new FaultLog();
    const apps = ['alpha', 'bravo', 'charlie', 'delta'];
    const submitted: Submitted[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const app = apps[i % apps.length]!;
        const id = await submit(replicas, random, ns, app, {});
        submitted.push({ id, app, kind: 'normal' });
        if (i === 4 || i === 12) {
          await waitForStep(replicas, ns, id, new Set(['waiting-for-pods', 'health-checking']));
          const leader = await etcd.killLeader();
          log.note('etcd leader killed', `m${leader}`);
          await new Promise((r) => setTimeout(r, 3000));
          await etcd.restartMember(leader);
        } else if (i === 8) {
          const index = random.int(0, replicas.all.length - 1);
          const victim = replicas.all[index]!;
          log.note('kill -9', `replica-${index}`);
          await victim.kill();
          await victim.start();
        }
      }
      const result = await settle(replicas, ns, submitted, apps, observer, log);
      report('3-member etcd', result, log);
      assert.deepEqual(observer.violations(), [], observer.report());
      assert.equal(result.stuck, 0);
      assert.equal(result.orphans, 0);
      assert.deepEqual(result.unexpected, []);
    } finally {
      await observer.stop();
      await replicas.stopAll();
      await etcd.destroy();
    }
  });
});

/** Writes one key under the replicas' prefix, straight into etcd (to corrupt a record). */
async function etcdPut(replicas: Replicas, endpoint: string, key: string, value: string): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const res = await fetch(`${endpoint}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(`${replicas.prefix}${key}`), value: b64(value) }) });
  assert.equal(res.status, 200, await res.text());
}
