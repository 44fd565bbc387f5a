import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KubeError } from '../../src/deployer/cluster.js';
import { EngineHarness } from '../support/engine-harness.js';
import { waitFor } from '../support/wait.js';

/** The HTTPRoute target and convergence in the engine (in memory; gateway.test.ts runs them through Traefik). */
describe('HTTPRoutes and convergence (in memory)', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  const route = () => h.cluster.object('HTTPRoute', 'ns', 'shop');
  const backend = () => route()?.spec?.rules?.[0]?.backendRefs?.[0]?.name;

  it('switches the HTTPRoute backend in one write, records convergence from the controller\'s status, and drains from then', async () => {
    h = await new EngineHarness({ routing: 'httproute' }).start();
    const v1 = await h.settled((await h.deploy()).id);
    assert.equal(v1.status, 'DEPLOYED', v1.failureReason);
    assert.equal(backend(), 'shop-1');
    assert.deepEqual(route()?.spec?.parentRefs, [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'gateways', name: 'shared', sectionName: 'web' }]);
    assert.equal(h.cluster.object('Ingress', 'ns', 'shop'), undefined);
    const v2 = await h.settled((await h.deploy()).id);
    await h.idle();
    const done = await h.record(v2.id);
    assert.equal(backend(), 'shop-2');
    assert.ok(done.times.converged, 'convergence recorded');
    const old = await h.record(v1.id);
    assert.ok(Date.parse(old.times.removed!) >= Date.parse(done.times.converged!), 'the old version was removed after convergence');
  });

  it('a failure mid-switch puts the HTTPRoute back too', async () => {
    h = await new EngineHarness({ routing: 'both' }).start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    let failed = false;
    h.cluster.afterWrite = (op, kind) => {
      if (!failed && op === 'replace' && kind === 'HTTPRoute') {
        failed = true;
        throw new KubeError('replace HTTPRoute: no answer within 10000 ms', 0, 'Unavailable');
      }
    };
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'FAILURE');
    await h.idle();
    assert.equal(backend(), 'shop-1');
    assert.equal(route()?.metadata?.annotations?.['cutover.io/deployment-id'], v1.id);
    assert.equal(h.ingressBackend(), 'shop-1');
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
  });

  it('without a controller\'s word the deployment ends DEPLOYED after the convergence timeout, and the log says what never confirmed', async () => {
    h = await new EngineHarness({ routing: 'httproute', convergenceTimeoutSeconds: 1 }).start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    h.cluster.gatewayController = false;
    const v2 = await h.settled((await h.deploy()).id);
    await h.idle();
    const log = (await h.store.events('ns', v2.id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message).join('\n');
    assert.match(log, /not confirmed within 1 s: HTTPRoute .*drains anyway; deployment successful/);
    assert.equal(v2.status, 'DEPLOYED', 'the writes were accepted: a convergence timeout does not undo the switch');
    const waited = Date.parse(v2.times.converged!) - Date.parse(v2.times.switched!);
    assert.ok(waited >= 1000 && waited < 5000, `DEPLOYED after the convergence timeout (${waited} ms)`);
  });

  it('DEPLOYED means traffic has arrived: until the controller confirms the switch, the record stays DEPLOYING and the old version runs', async () => {
    h = await new EngineHarness({ routing: 'httproute', convergenceTimeoutSeconds: 30 }).start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    h.cluster.gatewayController = false;
    const started = await h.deploy();
    const switched = await waitFor('the switch to be written', async () => {
      const r = await h.record(started.id);
      return r.times.switched ? r : undefined;
    }, { timeoutMs: 10_000, intervalMs: 5 });
    assert.equal(backend(), 'shop-2', 'the route points at the new version');
    assert.equal(switched.status, 'DEPLOYING');
    assert.equal(switched.step, 'switching-traffic');
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED', 'the running version is still the live one, not draining');
    assert.ok(h.cluster.object('Deployment', 'ns', 'shop-1'), 'and its workload runs');
    h.cluster.gatewayCatchesUp();
    const v2 = await h.settled(started.id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    assert.ok(Date.parse(v2.times.converged!) >= Date.parse(v2.times.switched!));
    assert.equal(v2.times.finished, (await h.record(v2.id)).times.finished);
    const log = (await h.store.events('ns', v2.id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    assert.match(log.at(-1)!, /^Traffic has moved to version 2, \d+ ms after the switch: .*HTTPRoute: applied after \d+ ms; deployment successful$/);
  });

  it('an app moved from an Ingress to an HTTPRoute loses its Ingress at the switch', async () => {
    h = await new EngineHarness({ routing: 'ingress' }).start();
    await h.settled((await h.deploy()).id);
    assert.equal(h.ingressBackend(), 'shop-1');
    const v2 = await h.settled((await h.deploy({ routing: 'httproute' })).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    assert.equal(h.cluster.object('Ingress', 'ns', 'shop'), undefined);
    assert.equal(backend(), 'shop-2');
  });
});
