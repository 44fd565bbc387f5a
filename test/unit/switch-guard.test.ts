import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EngineHarness } from '../support/engine-harness.js';

/**
 * The I1 guard right before the switch when the endpoint controller lags (as it does for tens of
 * seconds after an API-server restart): the wait is bounded by the health-check timeout (2 s in
 * the harness), and evidence older than one health-check interval (20 ms) is checked again.
 */
describe('switch guard: EndpointSlices that lag behind the pods', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  async function logOf(id: string): Promise<string> {
    return (await h.store.events('ns', id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message).join('\n');
  }

  /** shop-2's endpoints are published `lagMs` after the guard first asks for them (never, for Infinity). */
  function lagV2Endpoints(lagMs: number, onFirstAsk: () => void = () => {}): void {
    let firstAsked: number | undefined;
    h.cluster.publishedEndpoints = (service, ready) => {
      if (service !== 'shop-2') return ready;
      if (firstAsked === undefined) {
        firstAsked = Date.now();
        onFirstAsk();
      }
      return Date.now() - firstAsked >= lagMs ? ready : [];
    };
  }

  it('published after a while: every pod is checked again before the switch, then v2 goes live', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    let endpointsAt = Number.POSITIVE_INFINITY;
    const checksAfter: string[] = [];
    h.health = (t) => {
      if (Date.now() >= endpointsAt) checksAfter.push(t.podName);
      return true;
    };
    lagV2Endpoints(300, () => { endpointsAt = Date.now() + 300; });
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    const log = await logOf(v2.id);
    assert.match(log, /The EndpointSlices listed every pod after 0\.\d s; checking the pods' health again before the switch/);
    assert.equal(new Set(checksAfter).size, 2, `both pods checked again once the endpoints were there (${checksAfter.join(', ')})`);
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
  });

  it('waits on the EndpointSlice watch, not by listing: v2 goes live without a single list of its slices', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    const lists: string[] = [];
    h.cluster.fault = (operation, kind, name) => {
      if (operation === 'list' && kind === 'EndpointSlice') lists.push(name);
    };
    lagV2Endpoints(150);
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'DEPLOYED', v2.failureReason);
    assert.deepEqual(lists.filter((name) => name === 'shop-2'), [], 'the guard learnt of the endpoints from the watch');
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '2' });
  });

  it('a pod that turns unhealthy while the endpoints lag: no switch, the running version untouched', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    let sick = false;
    h.health = (t) => (sick && t.podName.startsWith('shop-2') ? 'HTTP 503' : true);
    lagV2Endpoints(300, () => { sick = true; });
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'FAILURE');
    assert.match(v2.failureReason ?? '', /not healthy within 2 s/);
    await h.idle();
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
    assert.equal(h.ingressBackend(), 'shop-1');
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1']);
  });

  it('never published: FAILURE at the health-check timeout naming the addresses; the log said what it waited for', async () => {
    h = await new EngineHarness().start();
    await h.settled((await h.deploy()).id);
    await h.idle();
    lagV2Endpoints(Number.POSITIVE_INFINITY);
    const v2 = await h.settled((await h.deploy()).id);
    assert.equal(v2.status, 'FAILURE');
    assert.match(v2.failureReason ?? '', /^the EndpointSlices of Service shop-2 did not list \S+, \S+ as ready within the health-check timeout \(2 s\); traffic was not switched$/);
    assert.match(await logOf(v2.id), /Waiting for the EndpointSlices of Service shop-2 to list \S+, \S+ as ready \(the endpoint controller has not published them yet\)/);
    await h.idle();
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
  });
});
