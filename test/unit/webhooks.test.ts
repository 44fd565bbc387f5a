import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseKeyEncryptionKeys } from '../../src/auth/api-keys.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import type { StoredCloudEvent } from '../../src/domain/webhooks.js';
import { createMemoryLogger } from '../../src/log.js';
import { StoreUnavailableError } from '../../src/store/kv.js';
import { WebhookStore, type DeliveryLogEntry } from '../../src/store/webhooks.js';
import { DeploymentEventMapper, kindOfTransition } from '../../src/webhooks/events.js';
import { WebhookDispatcher, type DeliveryPolicy, type WebhookSender } from '../../src/webhooks/dispatcher.js';
import { WebhookOutbox } from '../../src/webhooks/outbox.js';
import { HttpWebhookSender } from '../../src/webhooks/sender.js';
import { signatureHeaderValue, verifySignature } from '../../src/webhooks/signature.js';
import { WebhookAdmin, WebhookInputError, webhookSecret } from '../../src/webhooks/subscriptions.js';
import { AllowedHosts, validateWebhookUrl, WebhookUrlError } from '../../src/webhooks/url.js';
import { EngineHarness } from '../support/engine-harness.js';
import { MemoryKv } from '../support/memory-kv.js';
import { waitFor } from '../support/wait.js';

/** The receiver's check exactly as docs/webhooks.md shows it (written out here, not cutover's own code). */
function documentedVerify(secret: string, header: string | undefined, rawBody: Buffer | string, toleranceSeconds = 300): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  const t = Number(parts['t']);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  const given = Buffer.from(parts['v1'] ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const keks = parseKeyEncryptionKeys(randomBytes(32).toString('hex'));
const fastPolicy: DeliveryPolicy = { retryWindowMs: 60_000, firstBackoffMs: 10, maxBackoffMs: 40, attemptTimeoutMs: 2000 };

interface Received {
  url: string;
  event: StoredCloudEvent;
  headers: Record<string, string>;
  body: string;
}

/** A receiver behind the WebhookSender interface: records what arrives; `answer` decides the status (or throws). */
class FakeReceiver implements WebhookSender {
  readonly received: Received[] = [];
  answer: (r: Received, attempt: number) => Promise<number> | number = () => 204;
  private attempts = 0;

  async send(req: { url: string; headers: Record<string, string>; body: string; signal: AbortSignal }): Promise<{ status: number }> {
    const r: Received = { url: req.url, event: JSON.parse(req.body) as StoredCloudEvent, headers: req.headers, body: req.body };
    this.attempts++;
    const status = await Promise.race([
      Promise.resolve(this.answer(r, this.attempts)),
      new Promise<never>((_, reject) => req.signal.addEventListener('abort', () => reject(req.signal.reason), { once: true })),
    ]);
    this.received.push(r);
    return { status };
  }
}

function setup(kv = new MemoryKv(), receiver = new FakeReceiver(), policy = fastPolicy, replicaId = 'r1') {
  const { logger, records } = createMemoryLogger('debug');
  const store = new WebhookStore(kv);
  const admin = new WebhookAdmin(store, keks, new AllowedHosts([]));
  const dispatcher = new WebhookDispatcher({
    kv, store, sender: receiver, replicaId, leaseTtlSeconds: 10, log: logger, policy, random: () => 0.5,
    secretOf: (s) => webhookSecret(keks, s),
    urlRefusal: () => undefined,
  });
  return { kv, store, admin, dispatcher, receiver, logger, records };
}

function record(fields: Partial<DeploymentRecord> = {}): DeploymentRecord {
  const now = new Date().toISOString();
  return {
    id: 'd1', created: now, lastModified: now, namespace: 'ns', appName: 'shop', version: '2', status: 'DEPLOYING', step: 'queued',
    descriptor: {} as DeploymentRecord['descriptor'], OldVersion: '1', times: {}, ...fields,
  };
}

describe('webhook signatures', () => {
  it('a receiver following the documented recipe accepts the signature, and refuses a changed body, another secret or an old timestamp', () => {
    const body = '{"id":"e1"}';
    const header = signatureHeaderValue('whsec_a', 1_700_000_000, body);
    assert.match(header, /^t=1700000000,v1=[0-9a-f]{64}$/);
    const fresh = signatureHeaderValue('whsec_a', Math.floor(Date.now() / 1000), body);
    assert.equal(documentedVerify('whsec_a', fresh, body), true, 'the documented recipe accepts cutover\'s signature');
    assert.equal(documentedVerify('whsec_a', fresh, `${body} `), false);
    assert.equal(documentedVerify('whsec_a', header, body), false, 'too old for the documented tolerance');
    assert.deepEqual(verifySignature('whsec_a', header, body, 1_700_000_010), { ok: true, timestamp: 1_700_000_000 });
    assert.equal(verifySignature('whsec_a', header, '{"id":"e2"}', 1_700_000_010).ok, false);
    assert.equal(verifySignature('whsec_b', header, body, 1_700_000_010).ok, false);
    assert.match((verifySignature('whsec_a', header, body, 1_700_000_000 + 301) as { reason: string }).reason, /tolerance/);
    assert.equal(verifySignature('whsec_a', undefined, body, 1_700_000_000).ok, false);
    assert.equal(verifySignature('whsec_a', 'v1=zz', body, 1_700_000_000).ok, false);
  });
});

describe('webhook URLs', () => {
  const any = new AllowedHosts([]);
  it('accepts http and https; refuses other schemes, credentials, fragments and garbage with a message saying why', () => {
    assert.equal(validateWebhookUrl('https://hooks.example.com/x?y=1', any), 'https://hooks.example.com/x?y=1');
    assert.equal(validateWebhookUrl('http://127.0.0.1:8080/', any), 'http://127.0.0.1:8080/');
    assert.throws(() => validateWebhookUrl('ftp://hooks.example.com/', any), /http or https, not ftp/);
    assert.throws(() => validateWebhookUrl('file:///etc/passwd', any), WebhookUrlError);
    assert.throws(() => validateWebhookUrl('https://user:pw@hooks.example.com/', any), /user name or password/);
    assert.throws(() => validateWebhookUrl('https://token@hooks.example.com/', any), /user name or password/);
    assert.throws(() => validateWebhookUrl('https://hooks.example.com/#frag', any), /fragment/);
    assert.throws(() => validateWebhookUrl('not a url', any), /absolute URL/);
    assert.throws(() => validateWebhookUrl(42, any), /url is required/);
    assert.throws(() => validateWebhookUrl(`https://h.example.com/${'a'.repeat(2100)}`, any), /longer than 2048/);
  });

  it('with an allow-list: exact hosts and subdomains of "*." patterns only', () => {
    const allowed = new AllowedHosts(['hooks.example.com', '*.ci.example.org', '10.0.0.5']);
    assert.ok(validateWebhookUrl('https://hooks.example.com/a', allowed));
    assert.ok(validateWebhookUrl('https://build.ci.example.org/a', allowed));
    assert.ok(validateWebhookUrl('http://10.0.0.5:9000/', allowed));
    assert.throws(() => validateWebhookUrl('https://ci.example.org/', allowed), /not allowed/);
    assert.throws(() => validateWebhookUrl('http://169.254.169.254/latest/meta-data', allowed), /host 169\.254\.169\.254 is not allowed/);
    assert.throws(() => validateWebhookUrl('https://hooks.example.com.evil.test/', allowed), /not allowed/);
  });
});

describe('webhook events from engine events', () => {
  it('classifies status changes: started, step, succeeded, failed (with reason), undeployed', () => {
    assert.equal(kindOfTransition(record({ step: 'preparing' }), 'DEPLOYING', 'queued'), 'started');
    assert.equal(kindOfTransition(record({ step: 'health-checking' }), 'DEPLOYING', 'waiting-for-pods'), 'step');
    assert.equal(kindOfTransition(record({ status: 'DEPLOYED', step: 'deployed' }), 'DEPLOYING', 'switching-traffic'), 'succeeded');
    assert.equal(kindOfTransition(record({ status: 'FAILURE', step: 'failed' }), 'DEPLOYING', 'rolling-back'), 'failed');
    assert.equal(kindOfTransition(record({ status: 'UNDEPLOYING', step: 'draining' }), 'DEPLOYED', 'deployed'), 'step');
    assert.equal(kindOfTransition(record({ status: 'UNDEPLOYED', step: 'undeployed' }), 'UNDEPLOYING', 'removing'), 'undeployed');
    const mapper = new DeploymentEventMapper(() => 'id');
    const failed = mapper.map({ type: 'transition', record: record({ status: 'FAILURE', step: 'failed', failureReason: 'pods never ready' }), previousStatus: 'DEPLOYING', previousStep: 'waiting-for-pods', at: new Date(), revision: '42' });
    assert.ok(failed && 'kind' in failed);
    assert.equal(failed.event.type, 'io.cutover.deployment.failed');
    assert.equal(failed.event.data.reason, 'pods never ready');
    assert.equal(failed.event.sequence, '00000000000000000042-0');
  });

  it('a switch sorts after the transition its run published before it and before the next write', () => {
    const mapper = new DeploymentEventMapper(() => 'id');
    mapper.map({ type: 'transition', record: record({ step: 'switching-traffic' }), previousStatus: 'DEPLOYING', previousStep: 'health-checking', at: new Date(), revision: '99' });
    const switched = mapper.map({ type: 'switch', namespace: 'ns', appName: 'shop', deploymentId: 'd1', fromVersion: '1', toVersion: '2', overheadMs: 3, at: new Date() });
    assert.ok(switched && 'kind' in switched);
    assert.equal(switched.kind, 'switched');
    assert.ok(switched.event.sequence > '00000000000000000099-0' && switched.event.sequence < '00000000000000000100-0');
    assert.equal(switched.event.data.fromVersion, '1');
    // Unknown run (resumed elsewhere): the outbox has to read the record first.
    assert.ok('needsRevision' in mapper.map({ type: 'switch', namespace: 'ns', appName: 'shop', deploymentId: 'other', fromVersion: '1', toVersion: '2', overheadMs: 3, at: new Date() })!);
  });
});

describe('webhook subscriptions', () => {
  it('stores the secret encrypted, returns it once, and refuses bad input with a message', async () => {
    const { admin, kv } = setup();
    const { webhook, secret } = await admin.create('ns', { url: 'https://hooks.example.com/x', apps: 'shop, Web', events: ['failed', 'succeeded'] }, 'alice');
    assert.match(webhook.id, /^wh_[0-9a-f]{16}$/);
    assert.deepEqual(webhook.apps, ['shop', 'web']);
    assert.deepEqual(webhook.events, ['succeeded', 'failed']);
    assert.match(secret, /^whsec_/);
    const stored = (await kv.get(`webhooks/ns/${webhook.id}`))!.value;
    assert.ok(!stored.includes(secret), 'the secret is not stored in plain text');
    assert.ok(!JSON.stringify(await admin.list('ns')).includes('"secret"'), 'listings never carry the secret');
    await assert.rejects(admin.create('ns', { url: 'https://h.example.com/', events: ['deployed'] }, 'alice'), /unknown event kinds: "deployed"/);
    await assert.rejects(admin.create('ns', { url: 'https://h.example.com/', apps: ['Not An App!'] }, 'alice'), WebhookInputError);
    await assert.rejects(admin.create('ns', { url: 'gopher://h.example.com/' }, 'alice'), /http or https/);
    const noKek = new WebhookAdmin(new WebhookStore(kv), undefined, new AllowedHosts([]));
    await assert.rejects(noKek.create('ns', { url: 'https://h.example.com/' }, 'alice'), /key-encryption key/);
  });
});

describe('webhook delivery (outbox and dispatcher on an in-memory etcd)', () => {
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it('delivers every event of real deployments, in order per deployment, signed so the documented check passes', async () => {
    const h = await new EngineHarness().start();
    stops.push(() => h.stop());
    const { dispatcher, receiver, admin, store } = setup(h.kv);
    const { logger } = createMemoryLogger('debug');
    const outbox = new WebhookOutbox({ store, log: logger, readRecord: (ns, id) => h.store.get(ns, id) });
    h.bus.subscribe((e) => outbox.observe(e));
    const { webhook, secret } = await admin.create('ns', { url: 'https://hooks.example.com/all' }, 'alice');
    await admin.create('ns', { url: 'https://hooks.example.com/failures', events: ['failed'] }, 'alice');
    await admin.create('ns', { url: 'https://hooks.example.com/other-app', apps: ['web'] }, 'alice');
    await dispatcher.start();
    stops.push(() => dispatcher.stop());

    const v1 = await h.settled((await h.deploy()).id);
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED');
    await h.idle();
    await outbox.flush();
    const expectedV2 = ['requested', 'started', 'step', 'step', 'step', 'step', 'switched', 'succeeded'];
    await waitFor('v1 undeployed and every v2 event delivered', () => {
      const v1Types = receiver.received.filter((r) => r.event.subject === v1.id).map((r) => r.event.type);
      return v1Types.at(-1) === 'io.cutover.deployment.undeployed' && receiver.received.filter((r) => r.event.subject === v2.id).length >= expectedV2.length;
    });
    for (const id of [v1.id, v2.id]) {
      const seqs = receiver.received.filter((r) => r.event.subject === id).map((r) => r.event.sequence);
      assert.deepEqual(seqs, [...seqs].sort(), `deployment ${id}: delivered in sequence order`);
    }
    assert.deepEqual(receiver.received.filter((r) => r.event.subject === v2.id).map((r) => r.event.type.replace('io.cutover.deployment.', '')), expectedV2);
    const v1Kinds = receiver.received.filter((r) => r.event.subject === v1.id).map((r) => r.event.type.replace('io.cutover.deployment.', ''));
    assert.deepEqual(v1Kinds.slice(-3), ['step', 'step', 'undeployed'], 'the replaced version: draining, removing, undeployed');
    // Filters: nothing for the "failed only" and the other app's subscriptions.
    assert.ok(receiver.received.every((r) => r.url === 'https://hooks.example.com/all'));
    // The documented check, with the secret returned at creation.
    const now = Math.floor(Date.now() / 1000);
    for (const r of receiver.received) {
      assert.deepEqual(verifySignature(secret, r.headers['x-cutover-signature'], r.body, now).ok, true);
      assert.equal(documentedVerify(secret, r.headers['x-cutover-signature'], r.body), true);
      assert.equal(r.headers['content-type'], 'application/cloudevents+json; charset=utf-8');
      assert.equal(r.event.specversion, '1.0');
    }
    const log = await admin.deliveries('ns', webhook.id, 1000);
    assert.equal(log!.length, receiver.received.length);
    assert.ok(log!.every((e) => e.status === 'delivered' && e.attempts === 1));
  });

  it('retries a receiver that fails for a while, holding back the deployment\'s next event (order kept); the log shows the attempts', async () => {
    const { dispatcher, receiver, admin, store } = setup();
    const { logger } = createMemoryLogger('debug');
    const outbox = new WebhookOutbox({ store, log: logger, readRecord: async () => undefined });
    const { webhook } = await admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    receiver.answer = (_r, attempt) => (attempt <= 3 ? 503 : 200);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    outbox.observe({ type: 'requested', record: record(), revision: '10', at: new Date() });
    outbox.observe({ type: 'transition', record: record({ step: 'preparing' }), previousStatus: 'DEPLOYING', previousStep: 'queued', at: new Date(), revision: '11' });
    await outbox.flush();
    await waitFor('both delivered', () => receiver.received.filter((r) => true).length >= 5);
    assert.deepEqual(receiver.received.map((r) => r.event.type.replace('io.cutover.deployment.', '')), ['requested', 'requested', 'requested', 'requested', 'started']);
    const log = await waitFor('the log to show both delivered', async () => {
      const l = (await admin.deliveries('ns', webhook.id, 10))!;
      return l.length === 2 && l.every((e) => e.status === 'delivered') ? l : undefined;
    });
    const requested = log.find((e) => e.type.endsWith('requested')) as DeliveryLogEntry;
    assert.equal(requested.attempts, 4);
    assert.equal(requested.lastError, undefined);
    assert.equal(requested.lastStatus, 200);
  });

  it('gives up after the retry window: the log says failed with the last error, and the next event is delivered', async () => {
    const { dispatcher, receiver, admin, store } = setup(undefined, undefined, { ...fastPolicy, retryWindowMs: 100 });
    const { logger } = createMemoryLogger('debug');
    const outbox = new WebhookOutbox({ store, log: logger, readRecord: async () => undefined });
    const { webhook } = await admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    receiver.answer = (r) => (r.event.type.endsWith('requested') ? 500 : 204);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    outbox.observe({ type: 'requested', record: record(), revision: '10', at: new Date() });
    outbox.observe({ type: 'transition', record: record({ status: 'FAILURE', step: 'failed', failureReason: 'boom' }), previousStatus: 'DEPLOYING', previousStep: 'queued', at: new Date(), revision: '12' });
    const log = await waitFor('both finished', async () => {
      const l = (await admin.deliveries('ns', webhook.id, 10))!;
      return l.length === 2 && l.every((e) => e.status !== 'pending') ? l : undefined;
    });
    const requested = log.find((e) => e.type.endsWith('requested'))!;
    assert.equal(requested.status, 'failed');
    assert.equal(requested.lastError, 'HTTP 500');
    assert.ok(requested.attempts >= 2);
    const failed = receiver.received.find((r) => r.event.type.endsWith('failed'))!;
    assert.equal(failed.event.data.reason, 'boom');
    assert.equal(log.find((e) => e.type.endsWith('failed'))!.status, 'delivered');
  });

  it('another replica delivers what a replica was delivering when its lease ran out (at least once)', async () => {
    const kv = new MemoryKv();
    const a = setup(kv, new FakeReceiver(), fastPolicy, 'a');
    const b = setup(kv, new FakeReceiver(), fastPolicy, 'b');
    a.receiver.answer = () => new Promise(() => {}); // hangs: replica a is stuck mid-delivery
    const { webhook } = await a.admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    await a.dispatcher.start();
    stops.push(() => a.dispatcher.stop());
    const outbox = new WebhookOutbox({ store: a.store, log: a.logger, readRecord: async () => undefined });
    outbox.observe({ type: 'requested', record: record(), revision: '10', at: new Date() });
    await outbox.flush();
    await waitFor('replica a to own the stream', async () => (await kv.list('webhook-owners/')).entries.length === 1);
    await b.dispatcher.start();
    stops.push(() => b.dispatcher.stop());
    assert.equal(b.receiver.received.length, 0, 'b waits while a holds the stream');
    kv.leases[0]!.lose(); // a's lease: the owner key goes with it
    await waitFor('replica b to deliver', () => b.receiver.received.length === 1);
    assert.equal(b.receiver.received[0]!.event.type, 'io.cutover.deployment.requested');
    await waitFor('the log to say delivered', async () => (await a.admin.deliveries('ns', webhook.id, 10))![0]?.status === 'delivered');
  });

  it('putting events into the outbox never waits on etcd, and a failed write is counted, not raised', async () => {
    const kv = new MemoryKv();
    const { store } = setup(kv);
    let failures = 0;
    const { logger, records } = createMemoryLogger('debug');
    let release!: () => void;
    const blocked = new Promise<void>((r) => {
      release = r;
    });
    const slowStore = Object.assign(Object.create(store) as WebhookStore, {
      list: async () => {
        await blocked;
        throw new StoreUnavailableError('etcd unavailable: test');
      },
    });
    const outbox = new WebhookOutbox({ store: slowStore, log: logger, readRecord: async () => undefined, onEnqueueFailed: () => failures++ });
    const started = performance.now();
    outbox.observe({ type: 'requested', record: record(), revision: '10', at: new Date() });
    assert.ok(performance.now() - started < 5, 'observe returns at once');
    release();
    await outbox.flush();
    assert.equal(failures, 1);
    assert.ok(records.some((r) => /could not be put into the outbox/.test(String(r['msg']))));
  });

  it('the HTTP sender posts to a real local receiver, which verifies the signature with the documented recipe', async () => {
    const secret = 'whsec_test';
    const seen: Array<{ ok: boolean; type: string | undefined }> = [];
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const ok = documentedVerify(secret, req.headers['x-cutover-signature'] as string | undefined, raw);
        seen.push({ ok, type: req.headers['content-type'] });
        res.writeHead(ok ? 204 : 401).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise((r) => server.close(() => r())));
    const sender = new HttpWebhookSender(2000);
    stops.push(() => sender.close());
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const body = '{"id":"1"}';
    const t = Math.floor(Date.now() / 1000);
    const good = await sender.send({ url, body, signal: AbortSignal.timeout(2000), headers: { 'content-type': 'application/cloudevents+json', 'x-cutover-signature': signatureHeaderValue(secret, t, body) } });
    const bad = await sender.send({ url, body, signal: AbortSignal.timeout(2000), headers: { 'x-cutover-signature': signatureHeaderValue('other', t, body) } });
    assert.equal(good.status, 204);
    assert.equal(bad.status, 401);
    assert.deepEqual(seen.map((s) => s.ok), [true, false]);
  });
});
