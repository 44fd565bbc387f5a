import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseKeyEncryptionKeys } from '../../src/auth/api-keys.js';
import type { DeploymentEvent, DeploymentRecord } from '../../src/domain/deployment.js';
import type { StoredCloudEvent } from '../../src/domain/webhooks.js';
import { createMemoryLogger, type Logger } from '../../src/log.js';
import type { Guard, KvOp, KvStore, TxnResult } from '../../src/store/kv.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { outboxItemPut, WebhookStore, type DeliveryLogEntry, type FanoutEntry } from '../../src/store/webhooks.js';
import { RevisionConflictError } from '../../src/domain/errors.js';
import { kindOfTransition, webhookEventsOf } from '../../src/webhooks/events.js';
import { WebhookDispatcher, type DeliveryPolicy, type WebhookSender } from '../../src/webhooks/dispatcher.js';
import { outboxOps, SubscriptionCache, WebhookOutbox } from '../../src/webhooks/outbox.js';
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

/** A DeploymentStore whose changes carry their webhook outbox items, as src/service.ts wires it. */
async function storeWithOutbox(kv: KvStore, logger: Logger, stops: Array<() => Promise<void>>): Promise<DeploymentStore> {
  const cache = new SubscriptionCache(kv, logger);
  await cache.start();
  stops.push(() => cache.close());
  return new DeploymentStore(kv, () => new Date(), { changeOps: new WebhookOutbox({ subscriptions: cache, log: logger }).changeOps });
}

/** Deployment d1 requested (record, queue item, events). */
function requested(store: DeploymentStore) {
  return store.create({
    record: record(), queueItem: { workId: 'd1', kind: 'deploy', deploymentId: 'd1', enqueued: '' },
    events: [{ type: 'log', message: 'requested' }, { type: 'status', status: 'DEPLOYING', step: 'queued' }],
  });
}

/** MemoryKv that remembers every transaction it was given. */
class SpyKv extends MemoryKv {
  readonly txns: Array<{ guards: Guard[]; ops: KvOp[] }> = [];
  override async transact(guards: Guard[], ops: KvOp[]): Promise<TxnResult> {
    this.txns.push({ guards, ops });
    return super.transact(guards, ops);
  }
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

describe('webhook events of stored record changes', () => {
  const T = '2026-01-01T00:00:10.000Z';
  const status = (seq: number, st: DeploymentRecord['status'], step: DeploymentRecord['step']): DeploymentEvent => ({ seq, time: T, type: 'status', status: st, step });
  const line = (seq: number): DeploymentEvent => ({ seq, time: T, type: 'log', message: 'x' });

  it('classifies status changes: started, step, succeeded, failed (with reason), undeployed', () => {
    assert.equal(kindOfTransition(record({ step: 'preparing' }), 'DEPLOYING', 'queued'), 'started');
    assert.equal(kindOfTransition(record({ step: 'health-checking' }), 'DEPLOYING', 'waiting-for-pods'), 'step');
    assert.equal(kindOfTransition(record({ status: 'DEPLOYED', step: 'deployed' }), 'DEPLOYING', 'switching-traffic'), 'succeeded');
    assert.equal(kindOfTransition(record({ status: 'FAILURE', step: 'failed' }), 'DEPLOYING', 'rolling-back'), 'failed');
    assert.equal(kindOfTransition(record({ status: 'UNDEPLOYING', step: 'draining' }), 'DEPLOYED', 'deployed'), 'step');
    assert.equal(kindOfTransition(record({ status: 'UNDEPLOYED', step: 'undeployed' }), 'UNDEPLOYING', 'removing'), 'undeployed');
    const [failed, ...rest] = webhookEventsOf({
      created: false, record: record({ status: 'FAILURE', step: 'failed', failureReason: 'pods never ready', created: '2026-01-01T00:00:00.000Z' }),
      previous: record({ step: 'waiting-for-pods' }), events: [line(41), status(42, 'FAILURE', 'failed')],
    });
    assert.equal(rest.length, 0);
    assert.equal(failed!.event.type, 'io.cutover.deployment.failed');
    assert.equal(failed!.event.data.reason, 'pods never ready');
    assert.equal(failed!.event.data.previousStep, 'waiting-for-pods');
    assert.equal(failed!.event.data.durationMs, 10_000);
    assert.equal(failed!.event.time, T, 'the time the store gave the change\'s events');
    assert.equal(failed!.event.sequence, '00000000000000000042-0', 'the status event\'s number in the deployment\'s log');
  });

  it('a new record is "requested"; lines alone and repeated states mean nothing; ids are the same for the same event', () => {
    const created = webhookEventsOf({ record: record(), created: true, events: [line(1), status(2, 'DEPLOYING', 'queued'), line(3)] });
    assert.deepEqual(created.map((e) => [e.kind, e.event.sequence]), [['requested', '00000000000000000002-0']]);
    assert.equal(webhookEventsOf({ record: record(), created: true, events: [line(1), status(2, 'DEPLOYING', 'queued')] })[0]!.event.id, created[0]!.event.id);
    assert.match(created[0]!.event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(webhookEventsOf({ record: record({ id: 'd2' }), created: true, events: [status(2, 'DEPLOYING', 'queued')] })[0]!.event.id, created[0]!.event.id);
    assert.deepEqual(webhookEventsOf({ created: false, record: record({ step: 'preparing' }), previous: record({ step: 'preparing' }), events: [line(7)] }), []);
    // A change that does not say what it replaced cannot be described: nothing (never "requested").
    assert.deepEqual(webhookEventsOf({ created: false, record: record({ step: 'preparing' }), events: [status(3, 'DEPLOYING', 'preparing')] }), []);
    // A run resuming a deployment re-stores its step without changing it: no second "step".
    assert.deepEqual(webhookEventsOf({ created: false, record: record({ step: 'waiting-for-pods', owner: 'r2' }), previous: record({ step: 'waiting-for-pods', owner: 'r1' }), events: [line(9)] }), []);
  });

  it('"switched" when times.switched is first stored: after the step before it, before an outcome stored with it', () => {
    const switching = record({ step: 'switching-traffic', OldVersion: '1' });
    const [switched, ...none] = webhookEventsOf({ created: false, record: { ...switching, times: { switched: T } }, previous: switching, events: [line(20), line(21)] });
    assert.equal(none.length, 0);
    assert.equal(switched!.kind, 'switched');
    assert.equal(switched!.event.sequence, '00000000000000000021-0');
    assert.equal(switched!.event.data.fromVersion, '1');
    assert.equal(switched!.event.data.step, 'switching-traffic');
    // Resumed after a crash between the switch and its write: the outcome stores times.switched too.
    const both = webhookEventsOf({ created: false, record: { ...switching, status: 'DEPLOYED', step: 'deployed', times: { switched: T } }, previous: switching, events: [line(30), status(31, 'DEPLOYED', 'deployed')] });
    assert.deepEqual(both.map((e) => [e.kind, e.event.sequence]), [['switched', '00000000000000000031-0'], ['succeeded', '00000000000000000031-1']]);
    // Set already: nothing again.
    assert.deepEqual(webhookEventsOf({ created: false, record: { ...switching, times: { switched: T } }, previous: { ...switching, times: { switched: T } }, events: [line(40)] }), []);
  });

  it('outbox writes: one item per matching subscription when they fit, else one fan-out entry per event, else counted as dropped', () => {
    const subs = Array.from({ length: 50 }, (_, i) => ({ id: `wh_${String(i).padStart(16, '0')}`, namespace: 'ns', ...(i === 0 ? { events: ['failed' as const] } : {}), ...(i === 1 ? { apps: ['other'] } : {}) }));
    const changes = [
      { created: false, record: record({ status: 'DEPLOYED', step: 'deployed', times: { switched: T } }), previous: record({ step: 'switching-traffic' }), events: [status(12, 'DEPLOYED', 'deployed')] },
      { created: false, record: record({ id: 'd0', status: 'UNDEPLOYING', step: 'draining' }), previous: record({ id: 'd0', status: 'DEPLOYED', step: 'deployed' }), events: [status(5, 'UNDEPLOYING', 'draining')] },
    ];
    const direct = outboxOps(changes, () => subs, 1000);
    assert.equal(direct.fannedOut, false);
    assert.equal(direct.ops.length, 3 * 48, 'switched, succeeded and the old one\'s step, each to the 48 matching subscriptions');
    assert.ok(direct.ops.every((op) => op.type === 'put' && op.key.startsWith('webhook-outbox/ns/')));
    assert.ok(direct.ops.some((op) => op.type === 'put' && op.key === 'webhook-outbox/ns/wh_0000000000000002/d1/00000000000000000012-1'));
    const fanned = outboxOps(changes, () => subs, 100);
    assert.equal(fanned.fannedOut, true);
    assert.deepEqual(fanned.ops.map((op) => op.type === 'put' && op.key), ['webhook-fanout/ns/d1/00000000000000000012-0', 'webhook-fanout/ns/d1/00000000000000000012-1', 'webhook-fanout/ns/d0/00000000000000000005-0']);
    assert.equal((JSON.parse((fanned.ops[0] as { value: string }).value) as FanoutEntry).subscriptions.length, 48);
    assert.equal(fanned.enqueued.get('succeeded'), 48);
    const squeezed = outboxOps(changes, () => subs, 2);
    assert.equal(squeezed.ops.length, 2);
    assert.equal(squeezed.dropped.get('step'), 48);
    assert.deepEqual(outboxOps(changes, () => [], 1000).ops, []);
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
    const kv = new MemoryKv();
    const { logger } = createMemoryLogger('debug');
    const cache = new SubscriptionCache(kv, logger);
    await cache.start();
    stops.push(() => cache.close());
    const outbox = new WebhookOutbox({ subscriptions: cache, log: logger });
    const h = await new EngineHarness({ kv, changeOps: outbox.changeOps }).start();
    stops.push(() => h.stop());
    const { dispatcher, receiver, admin } = setup(h.kv);
    const { webhook, secret } = await admin.create('ns', { url: 'https://hooks.example.com/all' }, 'alice');
    await admin.create('ns', { url: 'https://hooks.example.com/failures', events: ['failed'] }, 'alice');
    await admin.create('ns', { url: 'https://hooks.example.com/other-app', apps: ['web'] }, 'alice');
    await waitFor('the cache to see the subscriptions', () => cache.of('ns').length === 3);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());

    const v1 = await h.settled((await h.deploy()).id);
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED');
    await h.idle();
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
    // The sequence is the status event's number in the deployment's own log.
    const log = (await h.store.events('ns', v2.id)).events;
    for (const r of receiver.received.filter((x) => x.event.subject === v2.id && !x.event.type.endsWith('switched'))) {
      const seq = Number(r.event.sequence.split('-')[0]);
      assert.equal(log.find((e) => e.seq === seq)?.type, 'status', `${r.event.type} names a status event`);
    }
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
    const deliveries = await admin.deliveries('ns', webhook.id, 1000);
    assert.equal(deliveries!.length, receiver.received.length);
    assert.ok(deliveries!.every((e) => e.status === 'delivered' && e.attempts === 1));
  });

  it('the outbox items are written in the change\'s own transaction (nothing written when the change is refused), within etcd\'s limit', async () => {
    const kv = new SpyKv();
    const { admin, logger } = setup(kv);
    for (let i = 0; i < 50; i++) await admin.create('ns', { url: `https://hooks.example.com/${i}` }, 'alice');
    const cache = new SubscriptionCache(kv, logger);
    await cache.start();
    stops.push(() => cache.close());
    const counted = new Map<string, number>();
    const outbox = new WebhookOutbox({ subscriptions: cache, log: logger, onEnqueued: (k, n) => counted.set(k, (counted.get(k) ?? 0) + n) });
    const store = new DeploymentStore(kv, () => new Date(), { changeOps: outbox.changeOps });
    const created = await store.create({ record: record(), queueItem: { workId: 'd1', kind: 'deploy', deploymentId: 'd1', enqueued: '' }, events: [{ type: 'log', message: 'requested' }, { type: 'status', status: 'DEPLOYING', step: 'queued' }] });
    const createTxn = kv.txns.at(-1)!;
    assert.ok(createTxn.ops.some((op) => op.type === 'put' && op.key === 'deployments/ns/d1'));
    assert.equal(createTxn.ops.filter((op) => op.type === 'put' && op.key.startsWith('webhook-outbox/')).length, 50, 'with the record, in one transaction');
    assert.equal(counted.get('requested'), 50);
    // A refused change (stale revision) writes nothing, and counts nothing.
    await assert.rejects(store.update({ record: record({ step: 'preparing' }), previous: record(), expectedRevision: '1', events: [{ type: 'status', status: 'DEPLOYING', step: 'preparing' }] }), RevisionConflictError);
    assert.equal(await kv.count('webhook-outbox/'), 50);
    assert.equal(counted.get('started'), undefined);
    // The switch with its outcome and the replaced record's drain: too many items (3 × 50) for one transaction: fan-out entries instead.
    const old = await store.create({ record: record({ id: 'd0', status: 'DEPLOYED', step: 'deployed' }), queueItem: { workId: 'd0', kind: 'deploy', deploymentId: 'd0', enqueued: '' }, events: [] });
    const switching = record({ step: 'switching-traffic' });
    await store.commit([
      { record: { ...switching, status: 'DEPLOYED', step: 'deployed', times: { switched: new Date().toISOString() } }, previous: switching, expectedRevision: created.revision, events: [{ type: 'log', message: 'deployed' }, { type: 'status', status: 'DEPLOYED', step: 'deployed' }] },
      { record: record({ id: 'd0', status: 'UNDEPLOYING', step: 'draining' }), previous: old.value, expectedRevision: old.revision, events: [{ type: 'status', status: 'UNDEPLOYING', step: 'draining' }] },
    ]);
    const big = kv.txns.at(-1)!;
    assert.ok(big.ops.length <= 128 && big.guards.length <= 128, `${big.ops.length} operations, ${big.guards.length} comparisons`);
    assert.deepEqual(big.ops.filter((op) => op.type === 'put' && op.key.startsWith('webhook-fanout/')).length, 3);
    assert.equal(counted.get('succeeded'), 50);
    console.log(`# transaction sizes (operations/comparisons): create with 50 subscriptions ${createTxn.ops.length}/${createTxn.guards.length}; switch+outcome+drain with 50 subscriptions (fan-out) ${big.ops.length}/${big.guards.length}`);
  });

  it('fan-out entries become outbox items before anything later of their deployment is delivered, in order', async () => {
    const kv = new MemoryKv();
    const { dispatcher, receiver, admin, logger } = setup(kv);
    const cache = new SubscriptionCache(kv, logger);
    await cache.start();
    stops.push(() => cache.close());
    await admin.create('ns', { url: 'https://hooks.example.com/a' }, 'alice');
    await admin.create('ns', { url: 'https://hooks.example.com/b' }, 'alice');
    await waitFor('the cache', () => cache.of('ns').length === 2);
    const outbox = new WebhookOutbox({ subscriptions: cache, log: logger });
    let squeeze = false;
    // Room for one operation: two items do not fit, one fan-out entry does.
    const store = new DeploymentStore(kv, () => new Date(), { changeOps: (c, room) => outbox.changeOps(c, squeeze ? 1 : room) });
    let cur = await store.create({ record: record(), queueItem: { workId: 'd1', kind: 'deploy', deploymentId: 'd1', enqueued: '' }, events: [{ type: 'status', status: 'DEPLOYING', step: 'queued' }] });
    const steps: Array<DeploymentRecord['step']> = ['preparing', 'creating-resources', 'waiting-for-pods'];
    for (const [i, step] of steps.entries()) {
      squeeze = i === 1;
      const next = record({ step });
      cur = await store.update({ record: next, previous: cur.value, expectedRevision: cur.revision, events: [{ type: 'status', status: 'DEPLOYING', step }] });
    }
    assert.equal(await kv.count('webhook-fanout/'), 1);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    await waitFor('all four delivered to both', () => receiver.received.length >= 8);
    for (const url of ['https://hooks.example.com/a', 'https://hooks.example.com/b']) {
      assert.deepEqual(receiver.received.filter((r) => r.url === url).map((r) => `${r.event.type.replace('io.cutover.deployment.', '')}:${r.event.data.step}`),
        ['requested:queued', 'started:preparing', 'step:creating-resources', 'step:waiting-for-pods'], url);
    }
    assert.equal(await kv.count('webhook-fanout/'), 0);
  });

  it('retries a receiver that fails for a while, holding back the deployment\'s next event (order kept); the log shows the attempts', async () => {
    const { dispatcher, receiver, admin, kv, logger } = setup();
    const { webhook } = await admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    const store = await storeWithOutbox(kv, logger, stops);
    receiver.answer = (_r, attempt) => (attempt <= 3 ? 503 : 200);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    const created = await requested(store);
    await store.update({ record: record({ step: 'preparing' }), previous: created.value, expectedRevision: created.revision, events: [{ type: 'status', status: 'DEPLOYING', step: 'preparing' }] });
    await waitFor('both delivered', () => receiver.received.length >= 5);
    assert.deepEqual(receiver.received.map((r) => r.event.type.replace('io.cutover.deployment.', '')), ['requested', 'requested', 'requested', 'requested', 'started']);
    const log = await waitFor('the log to show both delivered', async () => {
      const l = (await admin.deliveries('ns', webhook.id, 10))!;
      return l.length === 2 && l.every((e) => e.status === 'delivered') ? l : undefined;
    });
    const first = log.find((e) => e.type.endsWith('requested')) as DeliveryLogEntry;
    assert.equal(first.attempts, 4);
    assert.equal(first.lastError, undefined);
    assert.equal(first.lastStatus, 200);
  });

  it('gives up after the retry window: the log says failed with the last error, and the next event is delivered', async () => {
    const { dispatcher, receiver, admin, kv, logger } = setup(undefined, undefined, { ...fastPolicy, retryWindowMs: 100 });
    const { webhook } = await admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    const store = await storeWithOutbox(kv, logger, stops);
    receiver.answer = (r) => (r.event.type.endsWith('requested') ? 500 : 204);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    const created = await requested(store);
    await store.update({ record: record({ status: 'FAILURE', step: 'failed', failureReason: 'boom' }), previous: created.value, expectedRevision: created.revision, events: [{ type: 'status', status: 'FAILURE', step: 'failed' }] });
    const log = await waitFor('both finished', async () => {
      const l = (await admin.deliveries('ns', webhook.id, 10))!;
      return l.length === 2 && l.every((e) => e.status !== 'pending') ? l : undefined;
    });
    const first = log.find((e) => e.type.endsWith('requested'))!;
    assert.equal(first.status, 'failed');
    assert.equal(first.lastError, 'HTTP 500');
    assert.ok(first.attempts >= 2);
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
    await requested(await storeWithOutbox(kv, a.logger, stops));
    await waitFor('replica a to own the stream', async () => (await kv.list('webhook-owners/')).entries.length === 1);
    await b.dispatcher.start();
    stops.push(() => b.dispatcher.stop());
    assert.equal(b.receiver.received.length, 0, 'b waits while a holds the stream');
    kv.leases[0]!.lose(); // a's lease: the owner key goes with it
    await waitFor('replica b to deliver', () => b.receiver.received.length === 1);
    assert.equal(b.receiver.received[0]!.event.type, 'io.cutover.deployment.requested');
    await waitFor('the log to say delivered', async () => (await a.admin.deliveries('ns', webhook.id, 10))![0]?.status === 'delivered');
  });

  it('a failure computing the webhook events never fails the change: it is stored, the failure logged', async () => {
    const kv = new MemoryKv();
    const { logger, records } = createMemoryLogger('debug');
    const outbox = new WebhookOutbox({ subscriptions: { of: () => { throw new Error('broken cache'); } }, log: logger });
    const store = new DeploymentStore(kv, () => new Date(), { changeOps: outbox.changeOps });
    const created = await requested(store);
    assert.equal(created.value.id, 'd1');
    assert.ok(await kv.get('deployments/ns/d1'));
    assert.ok(records.some((r) => /could not be computed/.test(String(r['msg']))));
  });

  it('items of a subscription removed while a change wrote them are dropped, not left behind', async () => {
    const { dispatcher, receiver, admin, kv, store: webhooks } = setup();
    const { webhook } = await admin.create('ns', { url: 'https://hooks.example.com/' }, 'alice');
    // As if a change had written an item with a cache that still had the subscription, after its removal.
    await admin.remove('ns', webhook.id);
    const events = webhookEventsOf({ record: record(), created: true, events: [{ seq: 1, time: new Date().toISOString(), type: 'status', status: 'DEPLOYING', step: 'queued' }] });
    const op = outboxItemPut('ns', webhook.id, { event: events[0]!.event, kind: 'requested', enqueued: events[0]!.event.time, attempts: 0 });
    await kv.transact([], [op]);
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    await waitFor('the stray item removed', async () => (await kv.count('webhook-outbox/')) === 0);
    assert.equal(receiver.received.length, 0);
    void webhooks;
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
