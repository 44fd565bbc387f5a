import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { MemoryKv } from '../support/memory-kv.js';
import { InvariantObserver, RULES, type Violation } from '../support/invariants.js';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { TestEtcd } from '../support/etcd.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { waitFor } from '../support/wait.js';

/**
 * The invariant observer (test/support/invariants.ts). First its watching layer against a fake API
 * server and an in-memory store, which can be restarted, expire their history and lose watches on
 * demand (nothing on the shared test bed is disturbed); then on the real test bed with a real etcd
 * and cutover: normal deployments record nothing, and breaking I1 and I4 by hand is recorded.
 */

const MANAGED = { 'app.kubernetes.io/managed-by': 'cutover' };

// ---- a fake API server: list + watch of a few collections, over plain HTTP on loopback ----

type Obj = { metadata: { name: string; resourceVersion?: string; labels?: Record<string, string>; [k: string]: unknown }; [k: string]: unknown };

class FakeApiServer {
  private rv = 100;
  /** Watches from a resourceVersion below this get 410 Gone. */
  private oldestRv = 0;
  private readonly collections = new Map<string, Map<string, Obj>>();
  private readonly history: Array<{ rv: number; path: string; type: string; object: Obj }> = [];
  private readonly watchers = new Set<{ path: string; res: http.ServerResponse }>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server | undefined;
  port = 0;
  lists = 0;
  watches = 0;

  static readonly PATHS = {
    Service: '/api/v1/namespaces/fake/services',
    Pod: '/api/v1/namespaces/fake/pods',
    Ingress: '/apis/networking.k8s.io/v1/namespaces/fake/ingresses',
    EndpointSlice: '/apis/discovery.k8s.io/v1/namespaces/fake/endpointslices',
  };

  get openWatches(): number {
    return this.watchers.size;
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'fake' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
      currentContext: 'fake',
    });
    return kc;
  }

  async up(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Like a crash: connections are cut, new ones refused until up(). */
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.watchers.clear();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
  }

  /** Ends every watch cleanly (as the API server does at a watch's timeout). */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forgets the event history: a watch from an older resourceVersion gets 410 Gone. */
  expireHistory(): void {
    this.oldestRv = ++this.rv; // (as if something else changed meanwhile)
    this.history.length = 0;
  }

  upsert(kind: keyof typeof FakeApiServer.PATHS, object: Obj): void {
    const path = FakeApiServer.PATHS[kind];
    const coll = this.collections.get(path) ?? new Map<string, Obj>();
    this.collections.set(path, coll);
    const type = coll.has(object.metadata.name) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.rv);
    coll.set(object.metadata.name, stored);
    this.emit(path, type, stored);
  }

  remove(kind: keyof typeof FakeApiServer.PATHS, name: string): void {
    const path = FakeApiServer.PATHS[kind];
    const stored = this.collections.get(path)?.get(name);
    if (!stored) return;
    this.collections.get(path)!.delete(name);
    const deleted = { ...structuredClone(stored), metadata: { ...stored.metadata, resourceVersion: String(++this.rv) } };
    this.emit(path, 'DELETED', deleted);
  }

  private emit(path: string, type: string, object: Obj): void {
    this.history.push({ rv: this.rv, path, type, object });
    for (const w of this.watchers) if (w.path === path) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const discovery: Record<string, string[]> = {
      '/api/v1': ['services', 'pods'],
      '/apis/networking.k8s.io/v1': ['ingresses'],
      '/apis/discovery.k8s.io/v1': ['endpointslices'],
    };
    if (discovery[url.pathname]) return json(200, { kind: 'APIResourceList', resources: discovery[url.pathname]!.map((name) => ({ name })) });
    if (!Object.values(FakeApiServer.PATHS).includes(url.pathname)) return json(404, { kind: 'Status', code: 404 });
    const path = url.pathname;
    if (url.searchParams.get('watch') !== 'true') {
      this.lists++;
      return json(200, { metadata: { resourceVersion: String(this.rv) }, items: [...(this.collections.get(path)?.values() ?? [])] });
    }
    this.watches++;
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    if (from < this.oldestRv) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: `too old resource version: ${from}` } })}\n`);
      return;
    }
    for (const h of this.history) if (h.path === path && h.rv > from) res.write(`${JSON.stringify({ type: h.type, object: h.object })}\n`);
    const w = { path, res };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

// ---- the shared in-memory KvStore; one transaction per call, as the engine writes ----

function commit(kv: MemoryKv, ops: Array<{ key: string; value?: string }>): void {
  void kv.transact([], ops.map((op) => (op.value === undefined ? { type: 'delete' as const, key: op.key } : { type: 'put' as const, key: op.key, value: op.value })));
}

// ---- fixtures of the fake cluster ----

const stable = (version: string): Obj => ({ metadata: { name: 'shop', labels: { app: 'shop', name: 'shop', persistent: 'true', ...MANAGED } }, spec: { selector: { app: 'shop', version } } });
const ingress = (version: string): Obj => ({
  metadata: { name: 'shop', labels: { app: 'shop', ...MANAGED } },
  spec: { rules: [{ host: 'shop.example.test', http: { paths: [{ path: '/', backend: { service: { name: `shop-${version}`, port: { number: 8080 } } } }] } }] },
});
const readyPod = (version: string, i: number): Obj => ({
  metadata: { name: `shop-${version}-${i}`, labels: { app: 'shop', version, name: `shop-${version}` } },
  status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
});
const readySlice = (version: string, ready: number): Obj => ({
  metadata: { name: `shop-${version}-x`, labels: { 'kubernetes.io/service-name': `shop-${version}` } },
  endpoints: Array.from({ length: ready }, (_, i) => ({ addresses: [`198.18.0.${i + 1}`], conditions: { ready: true } })),
});
const recordOf = (id: string, version: string, status: string, step: string) => ({
  key: `deployments/fake/${id}`, value: JSON.stringify({ id, appName: 'shop', namespace: 'fake', version, status, step }),
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const brief = (vs: Violation[]) => vs.map((v) => `${v.invariant} ${v.rule} ${v.detail}${v.until ? '' : ' (open)'}`).join('\n');

describe('invariant observer: watch layer (fake API server, in-memory store)', () => {
  it('follows list + watch, survives an API-server restart, a 410 and a lost etcd watch, and records what happened meanwhile', async () => {
    const api = new FakeApiServer();
    await api.up();
    const kv = new MemoryKv();
    api.upsert('Service', stable('1'));
    api.upsert('Ingress', ingress('1'));
    api.upsert('Pod', readyPod('1', 0));
    api.upsert('Pod', readyPod('1', 1));
    api.upsert('EndpointSlice', readySlice('1', 2));
    commit(kv, [recordOf('r1', '1', 'DEPLOYED', 'deployed')]);

    const observer = await InvariantObserver.start({ kubeConfig: api.kubeConfig(), namespace: 'fake', kv, settleMs: 300, switchSettleMs: 200, maxBackoffMs: 200 });
    try {
      assert.deepEqual(observer.stats().watched, ['records', 'Service', 'Ingress', 'Pod', 'EndpointSlice'], 'HTTPRoute is not served, so not watched');
      await waitFor('every watch to be open', () => api.openWatches === 4, { timeoutMs: 5000 });

      // A blue-green switch as cutover does it, seen through the watches: no violation.
      api.upsert('Pod', readyPod('2', 0));
      api.upsert('EndpointSlice', readySlice('2', 1));
      commit(kv, [recordOf('r2', '2', 'DEPLOYING', 'switching-traffic')]);
      await sleep(50);
      api.upsert('Service', stable('2'));
      api.upsert('Ingress', ingress('2'));
      await sleep(50);
      commit(kv, [recordOf('r2', '2', 'DEPLOYED', 'deployed'), recordOf('r1', '1', 'UNDEPLOYING', 'draining')]);
      await waitFor('the observer to see the switch', () => observer.timelineText().some((l) => l.includes('Ingress shop → 2 (was 1)')), { timeoutMs: 5000 });
      await sleep(500);
      assert.deepEqual(observer.violations(), [], observer.report());

      // The API server goes away; while it is down the Service is pointed at a version without pods.
      await api.down();
      await sleep(300);
      api.upsert('Service', stable('9'));
      await sleep(700); // longer than settleMs: a gap must not produce a violation on stale state …
      assert.deepEqual(observer.violations(), [], observer.report());
      await api.up();
      // … and must not hide the one that happened meanwhile: after the re-list it is evaluated again.
      const i1 = await observer.waitForViolation({ rule: RULES.noReadyEndpoints }, 10_000);
      assert.match(i1.detail, /Service shop points at version 9 while version 9 has 0 pods/);
      await observer.waitForViolation({ rule: RULES.trafficFollowsRecord }, 5000);
      assert.ok(observer.timelineText().some((l) => l.includes('Service shop → 9 (was 2) (seen in a re-list')), observer.report());
      assert.ok(observer.stats().gaps >= 4, `every Kubernetes source had a gap: ${JSON.stringify(observer.stats())}`);
      assert.ok(observer.stats().relists >= 4, JSON.stringify(observer.stats()));
      api.upsert('Service', stable('2'));
      await waitFor('the violations to end', () => observer.violations().every((v) => v.until), { timeoutMs: 5000 });
      await waitFor('every watch to be open again', () => api.openWatches === 4, { timeoutMs: 5000 });

      // A clean end of every watch is resumed from the last resourceVersion (no re-list) …
      const before = observer.stats();
      api.endWatches();
      await waitFor('the watches to be resumed', () => observer.stats().rewatches >= before.rewatches + 4 && api.openWatches === 4, { timeoutMs: 5000 });
      assert.equal(observer.stats().relists, before.relists);
      // … unless the history is gone (410): then it re-lists, and goes on watching.
      api.expireHistory();
      api.endWatches();
      await waitFor('the 410 re-lists', () => observer.stats().relists >= before.relists + 4 && api.openWatches === 4, { timeoutMs: 5000 });
      api.upsert('Pod', readyPod('2', 1));
      await waitFor('events after the re-list', () => observer.timelineText().some((l) => l.includes('shop v2: 2/2 pods ready')), { timeoutMs: 5000 });

      // The etcd watch ends for good (e.g. compaction): re-listed, and a second DEPLOYED record is still seen.
      kv.breakWatches(new Error('mvcc: required revision has been compacted'));
      await waitFor('the records watch to be back', () => kv.activeWatches === 1, { timeoutMs: 5000 });
      const count = observer.violations().length;
      commit(kv, [recordOf('r3', '3', 'DEPLOYED', 'deployed')]);
      const i4 = await observer.waitForViolation({ rule: RULES.oneDeployedRecord }, 5000);
      assert.match(i4.detail, /2 DEPLOYED records/);
      assert.equal(observer.violations().length, count + 1, brief(observer.violations()));
      commit(kv, [{ key: 'deployments/fake/r3' }]);
      await waitFor('the I4 violation to end', () => observer.violations().every((v) => v.until), { timeoutMs: 5000 });
    } finally {
      await observer.stop();
      await api.down();
    }
    assert.equal(api.openWatches, 0);
    assert.equal(kv.activeWatches, 0, 'stop() closes the etcd watch');
    assert.equal(observer.stats().internalErrors, 0);
    assert.throws(() => observer.assertNone(), (err: Error) => {
      assert.match(err.message, /3 violation\(s\)/);
      assert.match(err.message, /I1 no-ready-endpoints \[fake\/shop\]/);
      assert.match(err.message, /timeline \(/);
      assert.match(err.message, /\[Service\] Service shop → 9/);
      return true;
    });
  });
});

// ---- the real test bed, a real etcd and cutover ----

describe('invariant observer on the test bed', { concurrency: 2 }, () => {
  let bed: BedFixture;

  before(async () => {
    bed = await startBedFixture();
  });

  after(async () => {
    await bed?.close();
  });

  const observe = (namespace: string) => InvariantObserver.start({
    kubeConfig: bed.kc, namespace, etcdEndpoint: bed.etcd.endpoint, etcdPrefix: bed.cutover.config.etcdPrefix,
  });

  it('records no violation during two normal blue-green deployments', async () => {
    const ns = await bed.namespace('inv-ok');
    const observer = await observe(ns);
    try {
      const first = await bed.api.deploy(ns, { frontend: 'shop.example.test' });
      assert.equal(first.status, 'DEPLOYED', first.failureReason);
      const second = await bed.api.deploy(ns, { frontend: 'shop.example.test' });
      assert.equal(second.status, 'DEPLOYED', second.failureReason);
      await bed.api.waitForStatus(ns, first.id, new Set(['UNDEPLOYED']), 30_000);
      await bed.cluster.waitForWorkloads(ns, 'shop', ['shop-2']);
    } finally {
      await observer.stop();
    }
    // It really watched: both switches and the record changes are in its timeline.
    const text = observer.timelineText().join('\n');
    for (const expected of [/Service shop → 1 \(was none\)/, /Service shop → 2 \(was 1\)/, /Ingress shop → 1 \(created\)/, /Ingress shop → 2 \(was 1\)/, /v1, DEPLOYED\).*→ DEPLOYED\/deployed/, /v2, DEPLOYED\).*→ DEPLOYED\/deployed/, /v1, UNDEPLOYED\).*→ UNDEPLOYED\/undeployed/]) {
      assert.match(text, expected);
    }
    assert.ok((observer.stats().events['EndpointSlice'] ?? 0) > 0, JSON.stringify(observer.stats()));
    observer.assertNone();
  });

  it('records I1 and I4 when the stable Service is pointed at a version without pods, and I4 for a second DEPLOYED record', async () => {
    const ns = await bed.namespace('inv-break');
    const live = await bed.api.deploy(ns, { frontend: 'shop.example.test' });
    assert.equal(live.status, 'DEPLOYED', live.failureReason);
    const observer = await observe(ns);
    try {
      const core = bed.kc.makeApiClient(CoreV1Api);
      const pointAt = async (version: string) => {
        const svc = await core.readNamespacedService({ name: 'shop', namespace: ns });
        svc.spec!.selector = { app: 'shop', version };
        await core.replaceNamespacedService({ name: 'shop', namespace: ns, body: svc });
      };
      await sleep(300);
      assert.deepEqual(observer.violations(), [], observer.report());

      // I1 (at the switch, and no ready endpoints) and I4 (traffic on a version no record has).
      await pointAt('9');
      const atSwitch = await observer.waitForViolation({ invariant: 'I1', rule: RULES.switchToUnready });
      assert.match(atSwitch.detail, /Service shop switched to version 9 \(from 1\) while version 9 has 0 pods \(0 ready\) and 0 ready endpoints/);
      await observer.waitForViolation({ invariant: 'I1', rule: RULES.noReadyEndpoints });
      const traffic = await observer.waitForViolation({ invariant: 'I4', rule: RULES.trafficFollowsRecord });
      assert.match(traffic.detail, /Service shop points at 9, but the DEPLOYED record is record \w+ \(shop v1, DEPLOYED\)/);
      await pointAt('1');
      await waitFor('the violations to end', () => observer.violations().every((v) => v.until), { timeoutMs: 10_000 });

      // I4: a second DEPLOYED record of the app, written straight into cutover's etcd data.
      const id = randomUUID();
      const key = `deployments/${ns}/${id}`;
      const forged = { ...(await bed.api.get(ns, live.id)), id, version: '7', status: 'DEPLOYED', step: 'deployed' };
      await bed.cutover.kv.transact([], [{ type: 'put', key, value: JSON.stringify(forged) }]);
      const twice = await observer.waitForViolation({ invariant: 'I4', rule: RULES.oneDeployedRecord });
      assert.match(twice.detail, /2 DEPLOYED records at etcd revision \d+/);
      await bed.cutover.kv.transact([], [{ type: 'delete', key }]);
      await waitFor('the I4 violation to end', () => observer.violations().every((v) => v.until), { timeoutMs: 10_000 });
    } finally {
      await observer.stop();
    }
    const found = observer.violations();
    assert.deepEqual(found.map((v) => `${v.invariant} ${v.rule} ${v.app}`).sort(), [
      `I1 ${RULES.noReadyEndpoints} shop`, `I1 ${RULES.switchToUnready} shop`, `I4 ${RULES.oneDeployedRecord} shop`, `I4 ${RULES.trafficFollowsRecord} shop`,
    ], observer.report());
    for (const v of found) {
      assert.equal(v.namespace, ns);
      assert.ok(v.until && v.until >= v.since, 'every interval is closed');
    }
    assert.throws(() => observer.assertNone(), /4 violation\(s\)/);
  });

  it('keeps watching the records through a paused and a restarted etcd', async () => {
    // An etcd of its own (the fixture's etcd serves cutover for the other tests).
    const etcd = await TestEtcd.create();
    const prefix = `/observer-${randomUUID().slice(0, 8)}/`;
    const writer = new EtcdStore({ endpoints: [etcd.endpoint], prefix, timeoutMs: 2000 });
    const ns = await bed.namespace('inv-etcd');
    const observer = await InvariantObserver.start({ kubeConfig: bed.kc, namespace: ns, etcdEndpoint: etcd.endpoint, etcdPrefix: prefix });
    const put = (id: string, version: string, status: string) => writer.transact([], [{
      type: 'put', key: `deployments/${ns}/${id}`, value: JSON.stringify({ id, appName: 'shop', namespace: ns, version, status, step: status === 'DEPLOYED' ? 'deployed' : 'undeployed' }),
    }]);
    try {
      await put('a', '1', 'DEPLOYED');
      await waitFor('the observer to see the record', () => observer.stats().events['records'] === 1, { timeoutMs: 5000 });
      process.kill(etcd.pid!, 'SIGSTOP');
      try {
        await sleep(3000);
      } finally {
        process.kill(etcd.pid!, 'SIGCONT');
      }
      await etcd.stop();
      await sleep(500);
      await etcd.start();
      await waitFor('etcd to take writes again', async () => (await put('b', '2', 'UNDEPLOYED'), true), { timeoutMs: 15_000 });
      assert.deepEqual(observer.violations(), [], observer.report());
      await put('c', '3', 'DEPLOYED');
      const twice = await observer.waitForViolation({ rule: RULES.oneDeployedRecord }, 15_000);
      assert.match(twice.detail, /record a .*record c /);
      await put('c', '3', 'UNDEPLOYED');
      await waitFor('the violation to end', () => observer.violations().every((v) => v.until), { timeoutMs: 10_000 });
    } finally {
      await observer.stop();
      await writer.close();
      await etcd.destroy();
    }
    assert.equal(observer.violations().length, 1, observer.report());
    assert.equal(observer.stats().internalErrors, 0);
  });
});
