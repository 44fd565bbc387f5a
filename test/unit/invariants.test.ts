import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  ENDPOINT_SLICE, HTTPROUTE_POINTER, INGRESS_POINTER, InvariantModel, POD, RECORDS, RULES, SERVICE_POINTER,
  type Fact, type KubeObject, type Violation,
} from '../support/invariant-model.js';

/**
 * The invariant observer's pure model (test/support/invariant-model.ts): facts in, violation
 * intervals out, time stepped by hand. One test per rule; the watching layer is tested against a
 * fake API server and the real test bed in test/integration/invariants-observer.test.ts.
 */

const NS = 'inv';
const MANAGED = { 'app.kubernetes.io/managed-by': 'cutover' };
const SETTLE = 1000;
const SWITCH_SETTLE = 500;

function stableService(app: string, version: string | null): KubeObject {
  return {
    metadata: { name: app, namespace: NS, labels: { app, name: app, persistent: 'true', ...MANAGED } },
    spec: { selector: version === null ? { app, 'cutover.io/no-version-yet': 'true' } : { app, version } },
  };
}

function versionedService(app: string, version: string): KubeObject {
  return { metadata: { name: `${app}-${version}`, labels: { app, version, name: `${app}-${version}`, ...MANAGED } }, spec: { selector: { app, version } } };
}

function ingress(app: string, version: string, name = app): KubeObject {
  return {
    metadata: { name, labels: { app, ...MANAGED }, annotations: { 'cutover.io/version': version } },
    spec: { rules: [{ host: `${app}.example.test`, http: { paths: [{ path: '/', backend: { service: { name: name === app ? `${app}-${version}` : app, port: { number: 8080 } } } }] } }] },
  };
}

function pod(app: string, version: string, i: number, ready = true, terminating = false): KubeObject {
  return {
    metadata: { name: `${app}-${version}-pod${i}`, labels: { app, version, name: `${app}-${version}` }, ...(terminating ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

function slice(app: string, version: string, ready: number, notReady = 0): KubeObject {
  const endpoints = [
    ...Array.from({ length: ready }, (_, i) => ({ addresses: [`198.18.0.${i + 1}`], conditions: { ready: true } })),
    ...Array.from({ length: notReady }, (_, i) => ({ addresses: [`198.18.1.${i + 1}`], conditions: { ready: false } })),
  ];
  return { metadata: { name: `${app}-${version}-abcde`, labels: { 'kubernetes.io/service-name': `${app}-${version}` } }, endpoints };
}

function record(id: string, app: string, version: string, status: string, step: string): { key: string; value: string } {
  return { key: `deployments/${NS}/${id}`, value: JSON.stringify({ id, appName: app, version, status, step, namespace: NS }) };
}

/** A model with every source listed at t=0: shop v1 live (2 ready pods, 2 ready endpoints). */
function liveV1(extra: { records?: Array<{ key: string; value: string }>; objects?: Partial<Record<string, KubeObject[]>> } = {}): InvariantModel {
  const m = new InvariantModel({ namespace: NS, settleMs: SETTLE, switchSettleMs: SWITCH_SETTLE });
  m.apply({ type: 'records-snapshot', at: 0, revision: '10', entries: extra.records ?? [record('r1', 'shop', '1', 'DEPLOYED', 'deployed')] });
  const objects: Record<string, KubeObject[]> = {
    Service: [stableService('shop', '1'), versionedService('shop', '1')],
    Ingress: [ingress('shop', '1')],
    HTTPRoute: [],
    [POD]: [pod('shop', '1', 0), pod('shop', '1', 1)],
    [ENDPOINT_SLICE]: [slice('shop', '1', 2)],
    ...extra.objects,
  };
  for (const [kind, list] of Object.entries(objects)) m.apply({ type: 'snapshot', at: 0, kind, objects: list! });
  return m;
}

/** v2's workload next to v1: pods ready, endpoints ready (or not). */
function addV2(m: InvariantModel, at: number, readyEndpoints = 2): void {
  m.apply({ type: 'object', at, kind: POD, event: 'upsert', object: pod('shop', '2', 0) });
  m.apply({ type: 'object', at, kind: POD, event: 'upsert', object: pod('shop', '2', 1) });
  m.apply({ type: 'object', at, kind: 'Service', event: 'upsert', object: versionedService('shop', '2') });
  m.apply({ type: 'object', at, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '2', readyEndpoints, 2 - readyEndpoints) });
}

function put(m: InvariantModel, at: number, revision: number, ...records: Array<{ key: string; value: string }>): void {
  m.apply({ type: 'records', at, revision: String(revision), changes: records });
}

function point(m: InvariantModel, at: number, kind: 'Service' | 'Ingress', version: string | null): void {
  m.apply({ type: 'object', at, kind, event: 'upsert', object: kind === 'Service' ? stableService('shop', version) : ingress('shop', version!) });
}

const tick = (m: InvariantModel, at: number) => m.apply({ type: 'tick', at });
const ofRule = (m: InvariantModel, rule: string): Violation[] => m.violations().filter((v) => v.rule === rule);

describe('invariant model', () => {
  it('steady state: a live version with traffic on it is no violation', () => {
    const m = liveV1();
    tick(m, 10_000);
    assert.deepEqual(m.violations(), []);
    assert.deepEqual(m.pointerTargets(), { 'Service/shop': '1', 'Ingress/shop': '1' });
    assert.deepEqual(m.evidence('shop', '1'), { pods: 2, readyPods: 2, readyEndpoints: 2 });
  });

  it('I1 at the switch: a pointer switched to a version without a ready endpoint', () => {
    const m = liveV1();
    addV2(m, 100, 0); // pods Ready, but no endpoint of shop-2 is ready
    put(m, 200, 11, record('r2', 'shop', '2', 'DEPLOYING', 'switching-traffic'));
    point(m, 1000, 'Service', '2');
    tick(m, 1000 + SWITCH_SETTLE - 1);
    assert.deepEqual(ofRule(m, RULES.switchToUnready), [], 'not before switchSettleMs');
    tick(m, 1000 + SWITCH_SETTLE + 100);
    const [v, ...rest] = ofRule(m, RULES.switchToUnready);
    assert.equal(rest.length, 0);
    assert.equal(v?.invariant, 'I1');
    assert.equal(v?.app, 'shop');
    assert.equal(v?.namespace, NS);
    assert.equal(v?.since.getTime(), 1000, 'since = the instant of the switch');
    assert.equal(v?.until, undefined, 'still open: the version is still not ready');
    assert.match(v!.detail, /Service shop switched to version 2 \(from 1\) while version 2 has 2 pods \(2 ready\) and 0 ready endpoints/);
    // A switch to a version with no pods at all counts the same (Ingress, created).
    m.apply({ type: 'object', at: 2000, kind: 'Ingress', event: 'upsert', object: ingress('shop', '7') });
    tick(m, 2000 + SWITCH_SETTLE);
    assert.equal(ofRule(m, RULES.switchToUnready).length, 2);
    // The version becomes ready: the first interval ends.
    m.apply({ type: 'object', at: 3000, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '2', 2) });
    assert.equal(ofRule(m, RULES.switchToUnready).find((x) => x.detail.includes('Service'))?.until?.getTime(), 3000);
  });

  it('I1 continuous: endpoints of the pointed-at version gone for longer than settleMs', () => {
    const m = liveV1();
    m.apply({ type: 'object', at: 1000, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '1', 0, 2) });
    tick(m, 1000 + SETTLE - 1);
    assert.deepEqual(m.violations(), [], 'not before settleMs');
    tick(m, 1000 + SETTLE + 1);
    // Both pointers (Service and Ingress) point at v1: one interval each.
    const found = ofRule(m, RULES.noReadyEndpoints);
    assert.equal(found.length, 2, JSON.stringify(found));
    for (const v of found) {
      assert.equal(v.invariant, 'I1');
      assert.equal(v.since.getTime(), 1000);
      assert.equal(v.until, undefined);
    }
    // Many facts while it lasts are still one interval each; it ends when an endpoint is ready again.
    for (let t = 2100; t < 4000; t += 100) tick(m, t);
    m.apply({ type: 'object', at: 4000, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '1', 1, 1) });
    assert.deepEqual(ofRule(m, RULES.noReadyEndpoints).map((v) => [v.since.getTime(), v.until?.getTime()]), [[1000, 4000], [1000, 4000]]);
    // A shorter outage (< settleMs) is not a violation.
    m.apply({ type: 'object', at: 5000, kind: ENDPOINT_SLICE, event: 'delete', object: slice('shop', '1', 0) });
    m.apply({ type: 'object', at: 5000 + SETTLE - 10, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '1', 2) });
    tick(m, 9000);
    assert.equal(ofRule(m, RULES.noReadyEndpoints).length, 2);
  });

  it('I4: two DEPLOYED records at one etcd revision, with no window; one transaction that hands over is fine', () => {
    const m = liveV1();
    addV2(m, 100);
    // The legal hand-over: v2 DEPLOYED and v1 UNDEPLOYING in one transaction (one revision).
    point(m, 200, 'Service', '2');
    point(m, 210, 'Ingress', '2');
    put(m, 300, 11, record('r2', 'shop', '2', 'DEPLOYED', 'deployed'), record('r1', 'shop', '1', 'UNDEPLOYING', 'draining'));
    tick(m, 5000);
    assert.deepEqual(m.violations(), []);
    // A third record written DEPLOYED on its own: two DEPLOYED records from that revision on.
    put(m, 6000, 12, record('r3', 'shop', '3', 'DEPLOYED', 'deployed'));
    const [v] = ofRule(m, RULES.oneDeployedRecord);
    assert.ok(v, 'recorded at once, without waiting for a tick');
    assert.equal(v.invariant, 'I4');
    assert.equal(v.since.getTime(), 6000);
    assert.match(v.detail, /2 DEPLOYED records at etcd revision 12: record r2 \(shop v2, DEPLOYED\), record r3 \(shop v3, DEPLOYED\)/);
    put(m, 6001, 13, record('r3', 'shop', '3', 'UNDEPLOYED', 'undeployed'));
    assert.equal(ofRule(m, RULES.oneDeployedRecord)[0]?.until?.getTime(), 6001, 'ends at the next revision');
  });

  it('I4: the Service on v2 while the DEPLOYED record is v1 and nothing switches: after settleMs, not before', () => {
    const m = liveV1();
    addV2(m, 100); // v2 is ready, so I1 holds: only I4 is broken
    point(m, 1000, 'Service', '2');
    tick(m, 1000 + SETTLE - 1);
    assert.deepEqual(m.violations(), [], 'not before settleMs');
    tick(m, 1000 + SETTLE + 1);
    const [v, ...rest] = m.violations();
    assert.equal(rest.length, 0, JSON.stringify(m.violations()));
    assert.equal(v?.invariant, 'I4');
    assert.equal(v?.rule, RULES.trafficFollowsRecord);
    assert.equal(v?.since.getTime(), 1000);
    assert.match(v!.detail, /Service shop points at 2, but the DEPLOYED record is record r1 \(shop v1, DEPLOYED\), and no record is switching traffic/);
    point(m, 3000, 'Service', '1');
    assert.equal(m.violations()[0]?.until?.getTime(), 3000);
  });

  it('I4: a record in switching-traffic makes a mixed state legal, and a hand-over within settleMs is fine', () => {
    const m = liveV1();
    addV2(m, 100);
    put(m, 200, 11, record('r2', 'shop', '2', 'DEPLOYING', 'switching-traffic'));
    point(m, 300, 'Service', '2'); // Service on v2, Ingress still on v1, D = v1
    tick(m, 5000);
    point(m, 5000, 'Ingress', '2');
    tick(m, 9000);
    assert.deepEqual(m.violations(), [], 'mixed and fully switched are legal while a record is switching traffic');
    // The switching record fails and rolls back: still legal while rolling back.
    put(m, 9100, 12, record('r2', 'shop', '2', 'DEPLOYING', 'rolling-back'));
    point(m, 9200, 'Service', '1');
    tick(m, 15_000);
    assert.deepEqual(m.violations(), []);
    // Without a switching record, the Ingress left on v2 is a violation after settleMs.
    put(m, 15_000, 13, record('r2', 'shop', '2', 'FAILURE', 'failed'));
    tick(m, 15_000 + SETTLE + 1);
    assert.deepEqual(m.violations().map((v) => [v.invariant, v.rule, v.since.getTime()]), [['I4', RULES.trafficFollowsRecord, 15_000]]);
  });

  it('I1 at the switch: endpoints that turn ready within switchSettleMs clear the suspicion', () => {
    const m = liveV1();
    addV2(m, 100, 0);
    put(m, 200, 11, record('r2', 'shop', '2', 'DEPLOYING', 'switching-traffic'));
    point(m, 1000, 'Service', '2');
    // The EndpointSlice event arrives after the Service event (streams of different kinds are not ordered).
    m.apply({ type: 'object', at: 1000 + SWITCH_SETTLE - 50, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '2', 2) });
    tick(m, 10_000);
    assert.deepEqual(m.violations(), []);
    // A terminating pod of the version does not count against it, a not-ready one does.
    m.apply({ type: 'object', at: 10_000, kind: POD, event: 'upsert', object: pod('shop', '1', 0, false, true) });
    m.apply({ type: 'object', at: 10_000, kind: POD, event: 'upsert', object: pod('shop', '1', 1, false) });
    point(m, 10_100, 'Service', '1');
    tick(m, 12_000);
    assert.equal(ofRule(m, RULES.switchToUnready).length, 1);
    assert.match(ofRule(m, RULES.switchToUnready)[0]!.detail, /version 1 has 1 pods \(0 ready\)/);
  });

  it('a watch gap never confirms a violation on stale state, and the re-list snapshot replaces the stale state', () => {
    const m = liveV1();
    // The last slice event before the gap shows shop-1 without ready endpoints …
    m.apply({ type: 'object', at: 1000, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '1', 0, 2) });
    m.apply({ type: 'gap', at: 1100, source: ENDPOINT_SLICE, reason: 'connection reset' });
    assert.equal(m.isSynced(ENDPOINT_SLICE), false);
    assert.equal(m.nextDeadline(), undefined, 'nothing is confirmed while a source is in a gap');
    tick(m, 6000);
    assert.deepEqual(m.violations(), [], 'state seen before the gap is not trusted while the gap lasts');
    // … and the re-list shows it recovered meanwhile; a pod and a slice that vanished in the gap are dropped.
    m.apply({ type: 'snapshot', at: 6000, kind: ENDPOINT_SLICE, objects: [slice('shop', '1', 2)] });
    m.apply({ type: 'gap', at: 6000, source: POD, reason: 'watch ended' });
    m.apply({ type: 'snapshot', at: 6100, kind: POD, objects: [pod('shop', '1', 0)] });
    tick(m, 20_000);
    assert.deepEqual(m.violations(), []);
    assert.deepEqual(m.evidence('shop', '1'), { pods: 1, readyPods: 1, readyEndpoints: 2 });
    assert.equal(m.stats().gaps, 2);
  });

  it('after a re-list the model evaluates again: a pointer moved during the gap is not hidden', () => {
    const m = liveV1();
    m.apply({ type: 'gap', at: 1000, source: 'Service', reason: 'API server restarting' });
    tick(m, 4000);
    // The Service moved to version 9 (no pods) during the gap; the re-list shows it.
    m.apply({ type: 'snapshot', at: 4000, kind: 'Service', objects: [stableService('shop', '9'), versionedService('shop', '1')] });
    tick(m, 4000 + SETTLE - 1);
    assert.deepEqual(m.violations(), [], 'held for settleMs after the re-list, not before');
    tick(m, 4000 + SETTLE);
    assert.deepEqual(m.violations().map((v) => v.rule).sort(), [RULES.noReadyEndpoints, RULES.trafficFollowsRecord]);
    for (const v of m.violations()) assert.equal(v.since.getTime(), 4000, 'counted from the re-list, not from before the gap');
    // The switch itself happened in the gap: its instant was not observed, so it is not judged as one.
    assert.deepEqual(ofRule(m, RULES.switchToUnready), []);
    assert.ok(m.timeline().some((e) => e.text === 'Service shop → 9 (was 1) (seen in a re-list: the switch itself was not observed)'));
  });

  it('a watch gap inside the switch window drops the switch check (the clearing evidence may have been lost)', () => {
    const m = liveV1();
    addV2(m, 100, 0);
    put(m, 200, 11, record('r2', 'shop', '2', 'DEPLOYING', 'switching-traffic'));
    point(m, 1000, 'Service', '2');
    m.apply({ type: 'gap', at: 1100, source: ENDPOINT_SLICE, reason: 'connection reset' });
    m.apply({ type: 'snapshot', at: 1300, kind: ENDPOINT_SLICE, objects: [slice('shop', '1', 2), slice('shop', '2', 0, 2)] });
    tick(m, 1300 + SETTLE);
    assert.deepEqual(ofRule(m, RULES.switchToUnready), []);
    // What still holds after the re-list is recorded by the state rule, from the re-list on.
    assert.deepEqual(m.violations().map((v) => [v.rule, v.since.getTime()]), [[RULES.noReadyEndpoints, 1300]]);
  });

  it('a condition that started before a gap counts from the re-list', () => {
    const m = liveV1();
    addV2(m, 100);
    point(m, 1000, 'Service', '2'); // I4 disagreement starts …
    m.apply({ type: 'gap', at: 1500, source: RECORDS, reason: 'compacted' }); // … and the records watch is lost before settleMs
    tick(m, 3000);
    assert.deepEqual(m.violations(), []);
    m.apply({ type: 'records-snapshot', at: 3000, revision: '20', entries: [record('r1', 'shop', '1', 'DEPLOYED', 'deployed')] });
    tick(m, 3000 + SETTLE - 1);
    assert.deepEqual(m.violations(), [], 'needs settleMs observed after the re-list');
    tick(m, 3000 + SETTLE);
    assert.deepEqual(m.violations().map((v) => [v.rule, v.since.getTime()]), [[RULES.trafficFollowsRecord, 3000]]);
  });

  it('records: non-record keys are ignored, unreadable values are counted and forgotten', () => {
    const m = liveV1();
    m.apply({
      type: 'records', at: 100, revision: '11', changes: [
        { key: `deployments/${NS}/r1/extra`, value: 'not a record key' },
        { key: `deployments/other-ns/x`, value: '{}' },
        { key: `deployments/${NS}/bad`, value: '{not json' },
        { key: `deployments/${NS}/half`, value: JSON.stringify({ id: 'half', appName: 'shop', status: 'DEPLOYED' }) },
      ],
    });
    assert.equal(m.stats().unreadable, 2);
    put(m, 200, 12, { key: `deployments/${NS}/r1`, value: 'garbage' });
    assert.equal(m.stats().unreadable, 3);
    tick(m, 5000);
    // r1 is no longer readable: no DEPLOYED record, so traffic on v1 disagrees with the records.
    assert.deepEqual(m.violations().map((v) => v.rule), [RULES.trafficFollowsRecord, RULES.trafficFollowsRecord]);
  });

  it('undeploy and first deployment: pointers of an UNDEPLOYING or switching record, and the placeholder, are legal', () => {
    const m = liveV1({ records: [], objects: { Service: [], Ingress: [], [POD]: [], [ENDPOINT_SLICE]: [] } });
    put(m, 100, 11, record('r1', 'shop', '1', 'DEPLOYING', 'creating-resources'));
    point(m, 150, 'Service', null); // placeholder: selects no version
    addV1(m, 200);
    put(m, 300, 12, record('r1', 'shop', '1', 'DEPLOYING', 'switching-traffic'));
    point(m, 400, 'Service', '1');
    m.apply({ type: 'object', at: 450, kind: 'Ingress', event: 'upsert', object: ingress('shop', '1') });
    put(m, 500, 13, record('r1', 'shop', '1', 'DEPLOYED', 'deployed'));
    tick(m, 3000);
    put(m, 3000, 14, record('r1', 'shop', '1', 'UNDEPLOYING', 'removing'));
    tick(m, 6000);
    m.apply({ type: 'object', at: 6000, kind: 'Ingress', event: 'delete', object: ingress('shop', '1') });
    m.apply({ type: 'object', at: 6000, kind: 'Service', event: 'delete', object: stableService('shop', '1') });
    m.apply({ type: 'object', at: 6100, kind: ENDPOINT_SLICE, event: 'delete', object: slice('shop', '1', 0) });
    put(m, 6200, 15, record('r1', 'shop', '1', 'UNDEPLOYED', 'undeployed'));
    tick(m, 20_000);
    assert.deepEqual(m.violations(), [], m.timeline().map((e) => e.text).join('\n'));
  });

  it('pointer kinds: what counts as a pointer, and where it points', () => {
    assert.equal(SERVICE_POINTER.appOf(stableService('shop', '1')), 'shop');
    assert.equal(SERVICE_POINTER.target(stableService('shop', '1'), 'shop'), '1');
    assert.equal(SERVICE_POINTER.target(stableService('shop', null), 'shop'), null, 'the placeholder points at none');
    assert.equal(SERVICE_POINTER.appOf(versionedService('shop', '1')), undefined, 'a versioned Service is not a pointer');
    assert.equal(SERVICE_POINTER.appOf({ metadata: { name: 'shop', labels: { app: 'shop', persistent: 'true' } } }), 'shop', 'an Amdatu stable Service counts');
    assert.equal(SERVICE_POINTER.appOf({ metadata: { name: 'shop', labels: { app: 'shop' } } }), undefined, 'someone else\'s Service does not');
    assert.equal(INGRESS_POINTER.appOf(ingress('shop', '1')), 'shop');
    assert.equal(INGRESS_POINTER.target(ingress('shop', '3-1'), 'shop'), '3-1');
    assert.equal(INGRESS_POINTER.appOf(ingress('shop', '1', 'shop-www-redirect')), undefined, 'the www redirect routes to the stable Service');
    const byAnnotation: KubeObject = { metadata: { name: 'shop', labels: MANAGED, annotations: { 'cutover.io/version': '4' } }, spec: { rules: [{ http: { paths: [{ backend: { service: { name: 'elsewhere' } } }] } }] } };
    assert.equal(INGRESS_POINTER.target(byAnnotation, 'shop'), '4');
    assert.equal(INGRESS_POINTER.appOf({ metadata: { name: 'shop', labels: { app: 'shop' } } }), undefined, 'not managed by cutover');
    const route: KubeObject = { metadata: { name: 'shop', labels: { app: 'shop', ...MANAGED } }, spec: { rules: [{ backendRefs: [{ name: 'shop-5', port: 8080 }] }] } };
    assert.equal(HTTPROUTE_POINTER.appOf(route), 'shop');
    assert.equal(HTTPROUTE_POINTER.target(route, 'shop'), '5');
  });

  it('keeps a timeline of pointer and record changes', () => {
    const m = liveV1();
    addV2(m, 100);
    put(m, 200, 11, record('r2', 'shop', '2', 'DEPLOYING', 'switching-traffic'));
    point(m, 300, 'Service', '2');
    const texts = m.timeline().map((e) => `${e.source}: ${e.text}`);
    assert.ok(texts.includes('Service: Service shop → 2 (was 1)'), texts.join('\n'));
    assert.ok(texts.includes('records: record r2 (shop v2, DEPLOYING) DEPLOYING/switching-traffic (new, rev 11)'), texts.join('\n'));
    assert.ok(texts.includes('Pod: shop v2: 2/2 pods ready'), texts.join('\n'));
    assert.ok(texts.includes('EndpointSlice: EndpointSlices of shop-2: 2 ready endpoints'), texts.join('\n'));
    assert.equal(m.stats().events['Service'], 2);
  });
});

function addV1(m: InvariantModel, at: number): void {
  const facts: Fact[] = [
    { type: 'object', at, kind: POD, event: 'upsert', object: pod('shop', '1', 0) },
    { type: 'object', at, kind: 'Service', event: 'upsert', object: versionedService('shop', '1') },
    { type: 'object', at, kind: ENDPOINT_SLICE, event: 'upsert', object: slice('shop', '1', 1) },
  ];
  for (const f of facts) m.apply(f);
}
