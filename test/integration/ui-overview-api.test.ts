import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request, sampleDescriptor } from '../support/http.js';
import { authEnv, authSecrets, bearer, hsToken } from '../support/security.js';
import { waitFor } from '../support/wait.js';
import { SseParser, type SseEvent } from '../../ui/src/lib/sse.js';

/** An open `GET /overview/stream`, collecting its events. */
class EventStream {
  readonly events: SseEvent[] = [];
  private readonly abort = new AbortController();
  readonly done: Promise<void>;
  status = 0;

  constructor(url: string, token: string) {
    this.done = (async () => {
      const res = await fetch(url, { headers: bearer(token), signal: this.abort.signal });
      this.status = res.status;
      if (!res.ok || !res.body) return;
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          this.events.push(...parser.push(value));
        }
      } catch {
        // aborted by close()
      }
    })();
  }

  apps(): Array<{ namespace: string; appName: string }> {
    return this.events.filter((e) => e.event === 'app').map((e) => JSON.parse(e.data));
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done.catch(() => undefined);
  }
}

/** The overview API the UI reads: per caller, and live, without another namespace leaking in. */
describe('overview API', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let admin: string;
  let alice: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets));
    admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    alice = await hsToken(secrets.jwtSecret, { sub: 'alice', namespaces: ['shop', 'empty'] });
    for (const [ns, app] of [['shop', 'cart'], ['billing', 'invoices']]) {
      const res = await request(`${cutover.url}/descriptors/?namespace=${ns}`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: app, frontend: `${app}.example.test`, tlsSecretName: 'tls' }) });
      assert.equal(res.status, 201, res.text);
    }
  });
  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  it('lists every namespace with data for administrators, and only its own (empty ones too) for others', async () => {
    const all = await request(`${cutover.url}/overview`, { headers: bearer(admin) });
    assert.equal(all.status, 200);
    assert.deepEqual(all.body.caller, { identity: 'root', auth: 'jwt', namespaces: '*' });
    assert.deepEqual(all.body.namespaces.map((g: any) => [g.namespace, g.apps.map((a: any) => a.appName)]), [['billing', ['invoices']], ['shop', ['cart']]]);
    const cart = all.body.namespaces[1].apps[0];
    assert.deepEqual(cart.urls, ['https://cart.example.test/']);
    assert.equal(cart.descriptorCount, 1);
    assert.equal(cart.latest, undefined, 'never deployed');

    const own = await request(`${cutover.url}/overview`, { headers: bearer(alice) });
    assert.deepEqual(own.body.caller.namespaces, ['empty', 'shop']);
    assert.deepEqual(own.body.namespaces.map((g: any) => [g.namespace, g.apps.length]), [['empty', 0], ['shop', 1]]);
    assert.equal((await fetch(`${cutover.url}/overview`)).status, 401);
  });

  it('streams a snapshot, then the changed apps of the caller\'s namespaces only', async () => {
    const aliceStream = new EventStream(`${cutover.url}/overview/stream`, alice);
    const adminStream = new EventStream(`${cutover.url}/overview/stream`, admin);
    try {
      await waitFor('both snapshots', () => aliceStream.events.length > 0 && adminStream.events.length > 0);
      assert.equal(aliceStream.status, 200);
      assert.equal(aliceStream.events[0]!.event, 'snapshot');
      assert.deepEqual(JSON.parse(aliceStream.events[0]!.data).namespaces.map((g: any) => g.namespace), ['empty', 'shop']);

      await request(`${cutover.url}/descriptors/?namespace=billing`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'ledger' }) });
      await request(`${cutover.url}/descriptors/?namespace=shop`, { method: 'POST', headers: bearer(admin), json: sampleDescriptor({ appName: 'search' }) });
      await waitFor('the admin to see both new apps', () => ['ledger', 'search'].every((a) => adminStream.apps().some((s) => s.appName === a)));
      await waitFor('alice to see the shop app', () => aliceStream.apps().some((s) => s.appName === 'search'));
      // By now the billing change has been handled (it came first): alice never got it.
      assert.deepEqual(aliceStream.apps().map((s) => s.namespace), aliceStream.apps().map(() => 'shop'));
      assert.equal(aliceStream.apps().some((s) => s.appName === 'ledger'), false);
    } finally {
      await Promise.all([aliceStream.close(), adminStream.close()]);
    }
  });

  it('ends open streams with an "end" event as soon as cutover stops, not at the end of the shutdown grace', async () => {
    const stream = new EventStream(`${cutover.url}/overview/stream`, alice);
    await waitFor('the snapshot', () => stream.events.length > 0);
    const started = Date.now();
    const stopped = cutover.stop();
    await stream.done;
    const endedMs = Date.now() - started;
    await stopped;
    assert.deepEqual(stream.events.at(-1), { event: 'end', data: JSON.stringify({ reason: 'server shutting down' }) });
    // CUTOVER_SHUTDOWN_GRACE_SECONDS is 2 in tests: a stream left open would be cut only then.
    assert.ok(endedMs < 1000, `the stream ended ${endedMs} ms after stop began`);
  });
});
