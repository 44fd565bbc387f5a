import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import { Readable } from 'node:stream';
import { runCli } from '../../src/cli/program.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { DeployClient, FINAL, fakeAppDescriptor } from '../support/deploy.js';
import { FAST_ENGINE_ENV } from '../support/bed.js';
import { request } from '../support/http.js';
import { Replicas } from '../support/replicas.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { waitFor } from '../support/wait.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

interface Arrival {
  at: number;
  event: { id: string; type: string; subject: string; sequence: string; time: string; data: Record<string, unknown> };
  signatureOk: boolean;
}

/** The receiver's check exactly as docs/webhooks.md shows it. */
function documentedVerify(secret: string, header: string | undefined, rawBody: Buffer, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  const t = Number(parts['t']);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  const given = Buffer.from(parts['v1'] ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** A webhook receiver on 127.0.0.1: verifies every request, records it, answers as `respond` says. */
class Receiver {
  readonly arrivals: Arrival[] = [];
  secret = '';
  respond: (a: Arrival, res: ServerResponse) => void = (_a, res) => void res.writeHead(204).end();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Receiver> {
    let self: Receiver | undefined;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const arrival: Arrival = { at: Date.now(), event: JSON.parse(raw.toString('utf8')), signatureOk: documentedVerify(self!.secret, req.headers['x-cutover-signature'] as string, raw) };
        self!.arrivals.push(arrival);
        self!.respond(arrival, res);
      });
    });
    self = new Receiver(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return self;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  of(deploymentId: string): Arrival[] {
    return this.arrivals.filter((a) => a.event.subject === deploymentId);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

const kinds = (arrivals: Arrival[]) => arrivals.map((a) => a.event.type.replace('io.cutover.deployment.', ''));
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function subscribe(base: string, ns: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<{ id: string; secret: string }> {
  const res = await request(`${base}/webhooks?namespace=${ns}`, { method: 'POST', json: body, headers });
  assert.equal(res.status, 201, res.text);
  return { id: res.body.webhook.id, secret: res.body.secret };
}

describe('webhooks API (no cluster needed)', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1,*.hooks.example.com' }));
  });
  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('refuses bad URLs with 400 and a message saying why; manages subscriptions for callers of the namespace only; never shows the secret again', async () => {
    const shop = bearer(await hsToken(secrets.jwtSecret, { sub: 'dev', namespaces: 'shop' }));
    const base = cutover.url;
    for (const [url, message] of [
      ['ftp://127.0.0.1/x', /http or https, not ftp/],
      ['http://user:pw@127.0.0.1/x', /user name or password/],
      ['http://169.254.169.254/latest/meta-data/', /host 169\.254\.169\.254 is not allowed for webhooks \(CUTOVER_WEBHOOK_ALLOWED_HOSTS/],
      ['http://10.0.0.1:8080/', /not allowed/],
      ['not a url', /absolute URL/],
    ] as const) {
      const res = await request(`${base}/webhooks?namespace=shop`, { method: 'POST', json: { url }, headers: shop });
      assert.equal(res.status, 400, `${url}: ${res.text}`);
      assert.equal(res.body.error, 'bad_request');
      assert.match(res.body.message, message);
    }
    const unknownField = await request(`${base}/webhooks?namespace=shop`, { method: 'POST', json: { url: 'http://127.0.0.1/', secret: 'mine' }, headers: shop });
    assert.equal(unknownField.status, 400);
    assert.match(unknownField.body.message, /unknown fields: secret/);
    const badEvent = await request(`${base}/webhooks?namespace=shop`, { method: 'POST', json: { url: 'http://127.0.0.1/', events: ['deployed'] }, headers: shop });
    assert.equal(badEvent.status, 400);
    assert.match(badEvent.body.message, /unknown event kinds: "deployed" \(known: requested, started, step, switched, succeeded, failed, undeployed\)/);

    const created = await subscribe(base, 'shop', { url: 'https://ci.hooks.example.com/x', apps: ['web'], events: ['succeeded', 'failed'] }, shop);
    assert.match(created.secret, /^whsec_/);
    const listed = await request(`${base}/webhooks?namespace=shop`, { headers: shop });
    assert.equal(listed.status, 200);
    assert.equal(listed.body.length, 1);
    assert.ok(!listed.text.includes(created.secret) && !listed.text.includes('"secret"'));
    const one = await request(`${base}/webhooks/${created.id}?namespace=shop`, { headers: shop });
    assert.deepEqual(one.body.events, ['succeeded', 'failed']);
    assert.deepEqual((await request(`${base}/webhooks/${created.id}/deliveries?namespace=shop`, { headers: shop })).body, []);

    // Another namespace's caller: 403 before anything is read; an unknown id: 404.
    const other = bearer(await hsToken(secrets.jwtSecret, { sub: 'intruder', namespaces: 'other' }));
    assert.equal((await request(`${base}/webhooks?namespace=shop`, { headers: other })).status, 403);
    assert.equal((await request(`${base}/webhooks/${created.id}?namespace=shop`, { method: 'DELETE', headers: other })).status, 403);
    assert.equal((await request(`${base}/webhooks/wh_0000000000000000?namespace=shop`, { headers: shop })).status, 404);
    assert.equal((await request(`${base}/webhooks/${created.id}?namespace=other`, { headers: other })).status, 404, 'ids are per namespace');
    assert.equal((await request(`${base}/webhooks/${created.id}?namespace=shop`, { method: 'DELETE', headers: shop })).status, 204);
    assert.equal((await request(`${base}/webhooks/${created.id}?namespace=shop`, { headers: shop })).status, 404);
    // Audited.
    const audit = await request(`${base}/audit?namespace=shop`, { headers: shop });
    assert.ok((audit.body as Array<{ action: string }>).some((e) => e.action === 'webhook.create'));
    assert.ok((audit.body as Array<{ action: string }>).some((e) => e.action === 'webhook.delete'));
  });

  it('the CLI adds, lists, shows deliveries of and removes webhooks; a refused URL exits 3 with the server\'s reason', async () => {
    const env = { CUTOVER_URL: cutover.url, CUTOVER_TOKEN: await hsToken(secrets.jwtSecret, { sub: 'dev', namespaces: 'shop' }) };
    const added = await cli(['webhooks', 'add', 'shop', 'http://127.0.0.1:9/hook', '--event', 'succeeded,failed', '--app', 'web', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    const doc = JSON.parse(added.stdout) as { webhook: { id: string; events: string[]; apps: string[] }; secret: string };
    assert.deepEqual(doc.webhook.events, ['succeeded', 'failed']);
    assert.deepEqual(doc.webhook.apps, ['web']);
    assert.match(doc.secret, /^whsec_/);
    const listed = await cli(['webhooks', 'list', 'shop'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${doc.webhook.id}\\s+web\\s+succeeded,failed\\s+http://127\\.0\\.0\\.1:9/hook`));
    assert.ok(!listed.stdout.includes(doc.secret));
    const deliveries = await cli(['webhooks', 'deliveries', 'shop', doc.webhook.id], env);
    assert.equal(deliveries.code, 0, deliveries.stderr);
    assert.match(deliveries.stdout, /no deliveries yet/);
    const refused = await cli(['webhooks', 'add', 'shop', 'http://user:pw@127.0.0.1/hook'], env);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /user name or password/);
    assert.equal((await cli(['webhooks', 'remove', 'shop', doc.webhook.id], env)).code, 0);
    const again = await cli(['webhooks', 'remove', 'shop', doc.webhook.id], env);
    assert.equal(again.code, 7, again.stderr);
  });
});

async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) },
    stdin: Readable.from([]), env, now: () => new Date(),
  });
  return { code, stdout, stderr };
}

/** Real deployments on the test bed, cutover as real processes, receivers on 127.0.0.1. */
describe('webhooks on the test bed', { concurrency: 1 }, () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  const namespaces: TestNamespace[] = [];
  const receivers: Receiver[] = [];
  const kek = randomBytes(32).toString('base64');

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
    etcd = await TestEtcd.create();
  });
  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await etcd?.destroy();
    await Promise.all(namespaces.map((n) => n.delete()));
    await testbed?.release();
  });

  const env = (extra: Record<string, string> = {}) => ({
    CUTOVER_ETCD_ENDPOINTS: etcd.endpoint,
    CUTOVER_KUBECONFIG: testbed.kubeconfigPath,
    CUTOVER_KEY_ENCRYPTION_KEY: kek,
    CUTOVER_SHUTDOWN_GRACE_SECONDS: '5',
    CUTOVER_WEBHOOK_FIRST_RETRY_MS: '200',
    CUTOVER_WEBHOOK_MAX_RETRY_INTERVAL_SECONDS: '1',
    ...FAST_ENGINE_ENV,
    ...extra,
  });
  async function namespace(prefix: string): Promise<string> {
    const ns = await createTestNamespace(kc, prefix);
    namespaces.push(ns);
    return ns.name;
  }
  async function receiver(): Promise<Receiver> {
    const r = await Receiver.start();
    receivers.push(r);
    return r;
  }

  it('every event of two deployments arrives signed and in order; a receiver failing for a while gets them all, in order, after retries', async () => {
    const ns = await namespace('hooks-order');
    const replicas = await Replicas.start(1, env());
    try {
      const api = replicas.client(0);
      const good = await receiver();
      const flaky = await receiver();
      good.secret = (await subscribe(api.base, ns, { url: good.url })).secret;
      const flakyHook = await subscribe(api.base, ns, { url: flaky.url, description: 'fails for 3 s' });
      flaky.secret = flakyHook.secret;
      const failingUntil = Date.now() + 3000;
      flaky.respond = (_a, res) => void res.writeHead(Date.now() < failingUntil ? 503 : 200).end();

      const v1 = await api.deploy(ns, { replicas: 1 });
      const v2 = await api.deploy(ns, { replicas: 1 });
      assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
      const expectedV2 = ['requested', 'started', 'step', 'step', 'step', 'step', 'switched', 'succeeded'];
      for (const r of [good, flaky]) {
        // The flaky receiver: every event accepted once it answers 200 (refused arrivals do not count;
        // a deployment that ends within the failing window has all its events still to be retried).
        const arrived = () => (r === good ? r.of(v2.id).length : new Set(r.of(v2.id).filter((a) => a.at >= failingUntil).map((a) => a.event.id)).size);
        await waitFor('every event at the receiver', () => arrived() >= expectedV2.length
          && kinds(r.of(v1.id)).includes('undeployed'), { timeoutMs: 60_000, intervalMs: 100 });
      }
      // The good receiver: each event once, in order, every signature verified with the documented recipe.
      assert.deepEqual(kinds(good.of(v2.id)), expectedV2);
      assert.deepEqual(kinds(good.of(v1.id)).slice(-3), ['step', 'step', 'undeployed']);
      assert.ok(good.arrivals.every((a) => a.signatureOk), 'every signature verifies');
      for (const id of [v1.id, v2.id]) {
        const seqs = good.of(id).map((a) => a.event.sequence);
        assert.deepEqual(seqs, [...seqs].sort(), 'delivered in sequence order');
      }
      assert.equal((good.of(v2.id).find((a) => a.event.type.endsWith('switched'))!.event.data)['fromVersion'], v1.version);
      // The flaky receiver: refused at first; then the same events, none skipped, first-success order = sequence order.
      const accepted = flaky.of(v2.id).filter((a) => a.at >= failingUntil);
      const firstAccepted = [...new Map(accepted.map((a) => [a.event.id, a])).values()];
      assert.deepEqual(kinds(firstAccepted), expectedV2);
      const log = (await request(`${api.base}/webhooks/${flakyHook.id}/deliveries?namespace=${ns}&limit=1000`)).body as Array<{ status: string; attempts: number; lastError?: string; deploymentId: string }>;
      const v2Log = log.filter((e) => e.deploymentId === v2.id);
      assert.ok(v2Log.every((e) => e.status === 'delivered'), JSON.stringify(v2Log));
      assert.ok(log.some((e) => e.attempts > 1), 'some deliveries needed retries');
      // Latency from the event to the receiver (good receiver, loopback).
      const latencies = good.arrivals.map((a) => a.at - Date.parse(a.event.time)).sort((a, b) => a - b);
      console.log(`# webhook latency event→receiver (loopback, n=${latencies.length}): p50=${percentile(latencies, 50)} ms p99=${percentile(latencies, 99)} ms max=${latencies.at(-1)} ms`);
      const metrics = (await request(`${api.base}/metrics`)).text;
      assert.match(metrics, /cutover_webhook_deliveries_total\{type="succeeded",outcome="delivered"\} [1-9]/);
      assert.match(metrics, /cutover_webhook_attempt_failures_total\{type="[a-z]+"\} [1-9]/);
    } finally {
      await replicas.stopAll();
    }
  });

  it('a slow receiver does not slow the deployment', async () => {
    const ns = await namespace('hooks-slow');
    const replicas = await Replicas.start(1, env({ CUTOVER_WEBHOOK_TIMEOUT_SECONDS: '30' }));
    try {
      const api = replicas.client(0);
      const slow = await receiver();
      slow.secret = (await subscribe(api.base, ns, { url: slow.url, apps: ['slow'] })).secret;
      slow.respond = (_a, res) => void setTimeout(() => res.writeHead(204).end(), 3000);
      const duration = (d: { created: string; times: { finished?: string } }) => Date.parse(d.times.finished!) - Date.parse(d.created);
      // Alternately, so drift of the test bed's speed hits both alike.
      const plain: number[] = [];
      const withSlow: number[] = [];
      for (let i = 0; i < 2; i++) {
        const p = await api.deploy(ns, { appName: 'plain', replicas: 1 });
        assert.equal(p.status, 'DEPLOYED', p.failureReason);
        plain.push(duration(p));
        const s = await api.deploy(ns, { appName: 'slow', replicas: 1 });
        assert.equal(s.status, 'DEPLOYED', s.failureReason);
        withSlow.push(duration(s));
        // Done while the receiver was still working through its events: delivery did not hold it up.
        assert.ok(slow.of(s.id).length < 8, `deployment ${i + 1} ended with ${slow.of(s.id).length} of its events delivered`);
      }
      console.log(`# deployment duration without webhooks: ${plain.join(', ')} ms; with a receiver taking 3 s per event: ${withSlow.join(', ')} ms`);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      assert.ok(mean(withSlow) < mean(plain) * 1.5 + 1500, `with a slow receiver ${mean(withSlow)} ms vs ${mean(plain)} ms without`);
    } finally {
      await replicas.stopAll();
    }
  });

  it('kill -9 of the deploying replica right after it committed a transition: every event arrives, at least once, in order (sent again when the victim was delivering it)', async () => {
    const ns = await namespace('hooks-kill');
    const replicas = await Replicas.start(2, env({ CUTOVER_LEASE_TTL_SECONDS: '3' }));
    const kv = new EtcdStore({ endpoints: [etcd.endpoint], prefix: replicas.prefix, timeoutMs: 3000 });
    let watch: { close(): Promise<void> } | undefined;
    try {
      const api = replicas.client(0);
      const r = await receiver();
      const hook = await subscribe(api.base, ns, { url: r.url });
      r.secret = hook.secret;
      // Until the kill, no delivery is answered: one event is in flight on some replica, the rest wait in the outbox.
      let hang = true;
      const hanging: ServerResponse[] = [];
      r.respond = (_a, res) => {
        if (hang) hanging.push(res);
        else res.writeHead(204).end();
      };
      const descriptorId = await api.createDescriptor(ns, fakeAppDescriptor(ns, { replicas: 1 }));
      // Watch the records of the namespace; the instant a record put says its run started (step
      // "preparing", its owner named), kill -9 that owner — from the watch callback, before any
      // further round trip. The `started` event exists only in that transaction: a run that resumes
      // the deployment does not change its step again, so nothing would publish it a second time.
      let killed: { replica: string; at: number; revision: string } | undefined;
      const { revision } = await kv.list(`deployments/${ns}/`);
      watch = await kv.watch(`deployments/${ns}/`, String(BigInt(revision) + 1n), {
        onEvents: (events) => {
          for (const e of events) {
            if (killed || e.type !== 'put') continue;
            const rec = JSON.parse(e.value) as { step: string; owner?: string };
            if (rec.step !== 'preparing' || !rec.owner) continue;
            const victim = replicas.all.find((_p, i) => `replica-${i}` === rec.owner)!;
            void victim.kill(); // SIGKILL is sent synchronously here
            killed = { replica: rec.owner, at: Date.now(), revision: e.modRevision };
          }
        },
        onError: () => undefined,
      });
      const id = (await api.startDeployment(ns, descriptorId)).body.id as string;
      await waitFor('the owner killed right after storing "started"', () => killed, { timeoutMs: 60_000, intervalMs: 5 });
      const survivor = replicas.all.find((_p, i) => `replica-${i}` !== killed!.replica)!;
      // By construction: the outbox item of that transition was created by the transition's own transaction.
      const events = (await kv.list(`events/${ns}/${id}/`)).entries;
      const started = events.find((e) => (JSON.parse(e.value) as { step?: string }).step === 'preparing')!;
      const seq = (JSON.parse(started.value) as { seq: number }).seq;
      const item = await kv.get(`webhook-outbox/${ns}/${hook.id}/${id}/${String(seq).padStart(20, '0')}-0`);
      assert.ok(item, 'the "started" item is in the outbox at the moment of the kill');
      assert.equal(item.createRevision, started.createRevision, 'written in the transaction that stored the transition');
      assert.equal(started.createRevision, killed!.revision, 'the record put the watch saw');
      // Was the victim also the one delivering (the event in flight then has to be sent again)?
      const owners = (await kv.list('webhook-owners/')).entries.map((e) => (JSON.parse(e.value) as { replica: string }).replica);
      const victimWasDelivering = owners.includes(killed!.replica);
      const inFlight = r.arrivals.filter((a) => a.at < killed!.at).map((a) => a.event.id);
      console.log(`# kill -9 of ${killed!.replica} at the record put of "started" (revision ${killed!.revision}); outbox item created at revision ${item.createRevision}; the victim was ${victimWasDelivering ? '' : 'not '}delivering`);

      hang = false;
      for (const res of hanging.splice(0)) if (!res.destroyed) res.writeHead(204).end(); // the survivor's attempt in flight, if it had one
      const deployed = await new DeployClient(survivor.url).waitForStatus(ns, id, FINAL, 120_000);
      assert.equal(deployed.status, 'DEPLOYED', deployed.failureReason);
      const expected = ['requested', 'started', 'step', 'step', 'step', 'step', 'switched', 'succeeded'];
      await waitFor('every event delivered', () => new Set(r.of(id).map((a) => a.event.id)).size >= expected.length, { timeoutMs: 60_000 });
      // At least once: unique by id, in the order of their first arrival = sequence order.
      const unique = [...new Map(r.of(id).map((a) => [a.event.id, a])).values()];
      assert.deepEqual(kinds(unique), expected);
      const seqs = unique.map((a) => a.event.sequence);
      assert.deepEqual(seqs, [...seqs].sort(), 'delivered in sequence order');
      assert.ok(r.arrivals.every((a) => a.signatureOk));
      const again = r.of(id).length - unique.length;
      // An event the victim had sent before it died (unanswered: the receiver hangs until the kill) is sent again.
      if (victimWasDelivering && inFlight.length > 0) {
        assert.ok(r.of(id).some((a) => a.at >= killed!.at && inFlight.includes(a.event.id)), `the event in flight at the kill (${inFlight.join(', ')}) was sent again by the survivor`);
      }
      const afterKill = r.of(id).filter((a) => a.at >= killed!.at);
      console.log(`# after the kill: ${afterKill.length} arrivals, ${again} of them repeats (at least once; ${inFlight.length} in flight at the kill); first arrival ${afterKill[0] ? afterKill[0].at - killed!.at : -1} ms after the kill (lease TTL 3 s)`);
      const log = (await request(`${survivor.url}/webhooks/${hook.id}/deliveries?namespace=${ns}&limit=100`)).body as Array<{ eventId: string; status: string; deploymentId: string }>;
      assert.ok(unique.every((a) => log.find((e) => e.eventId === a.event.id)?.status === 'delivered'), JSON.stringify(log));
    } finally {
      await watch?.close();
      await kv.close();
      await replicas.stopAll();
    }
  });
});
