import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GateAttempt } from '../../src/gates/types.js';
import { EngineHarness } from '../support/engine-harness.js';
import { maxDeployedPerRevision } from '../support/record-history.js';

/** Pre-switch gates and post-switch checks (issue #17) on the engine harness; gates.test.ts in test/integration runs them on the test bed. */
describe('gates', () => {
  let h: EngineHarness;
  afterEach(async () => h?.stop());

  const log = async (id: string) => (await h.store.events('ns', id)).events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
  const gate = (name: string) => ({ name, url: `http://127.0.0.1:9/${name}`, timeoutSeconds: 1, retries: 2 });
  const pass: GateAttempt = { outcome: 'pass', reason: 'looks good', latencyMs: 1 };

  it('a failing pre-switch gate fails the deployment like a failed health check: the running version untouched, the new one removed', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const before = { svc: h.cluster.object('Service', 'ns', 'shop'), ing: h.cluster.object('Ingress', 'ns', 'shop'), wl: h.cluster.object('Deployment', 'ns', 'shop-1') };
    h.gate = (g) => (g.name === 'smoke' ? { outcome: 'fail', reason: 'checkout returns 500', latencyMs: 3 } : pass);
    const v2 = await h.settled((await h.deploy({ preSwitchGates: [gate('smoke'), gate('load')] })).id);
    assert.equal(v2.status, 'FAILURE');
    assert.equal(v2.failureReason, 'pre-switch gate "smoke" failed: checkout returns 500');
    await h.idle();
    assert.deepEqual(h.cluster.object('Service', 'ns', 'shop'), before.svc, 'stable Service untouched');
    assert.deepEqual(h.cluster.object('Ingress', 'ns', 'shop'), before.ing, 'Ingress untouched');
    assert.deepEqual(h.cluster.object('Deployment', 'ns', 'shop-1'), before.wl, 'running workload untouched');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1'], 'the new version is removed');
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
    const smoke = h.gateCalls.find((c) => c.gate.name === 'smoke')!.request;
    assert.deepEqual({ ...smoke }, { phase: 'pre-switch', namespace: 'ns', appName: 'shop', deploymentId: v2.id, version: '2', previousVersion: '1', frontend: 'shop.example.test', attempt: 1 });
    const lines = await log(v2.id);
    assert.ok(lines.includes('Pre-switch gate "smoke": failed: checkout returns 500'), lines.join('\n'));
    const steps = (await h.store.events('ns', v2.id)).events.filter((e) => e.type === 'status').map((e) => (e as { step: string }).step);
    assert.ok(steps.includes('gating') && steps.indexOf('gating') < steps.indexOf('rolling-back') && !steps.includes('switching-traffic'), steps.join(','));
  });

  it('passing gates let the deployment through; a deployment without gates asks none and records no gating step', async () => {
    h = await new EngineHarness().start();
    const plain = await h.settled((await h.deploy()).id);
    assert.equal(plain.status, 'DEPLOYED');
    assert.equal(h.gateCalls.length, 0);
    assert.ok(!(await h.store.events('ns', plain.id)).events.some((e) => e.type === 'status' && e.step === 'gating'));
    await h.idle();
    const gated = await h.settled((await h.deploy({ preSwitchGates: [gate('a'), gate('b')] })).id);
    assert.equal(gated.status, 'DEPLOYED', gated.failureReason);
    assert.ok(gated.times.gated && gated.times.switched && gated.times.gated <= gated.times.switched, 'the gates passed before the switch');
    assert.deepEqual(h.gateCalls.map((c) => c.gate.name).sort(), ['a', 'b']);
  });

  it('retries a gate that gives no verdict, up to its retries; a definite "pass": false is never retried', async () => {
    h = await new EngineHarness().start();
    let calls = 0;
    h.gate = () => (++calls <= 2 ? { outcome: 'error', reason: 'timed out after 1000 ms', latencyMs: 1000 } : pass);
    const ok = await h.settled((await h.deploy({ preSwitchGates: [gate('flaky')] })).id);
    assert.equal(ok.status, 'DEPLOYED', ok.failureReason);
    assert.equal(calls, 3, 'two attempts without a verdict, then a pass');
    assert.deepEqual(h.gateCalls.map((c) => c.request.attempt), [1, 2, 3]);
    assert.ok((await log(ok.id)).includes('Pre-switch gate "flaky": attempt 1 of 3 gave no verdict (timed out after 1000 ms); asking again in 20 ms'));
    await h.idle();

    h.gateCalls.length = 0;
    h.gate = () => ({ outcome: 'error', reason: 'HTTP 503', statusCode: 503, latencyMs: 2 });
    const exhausted = await h.settled((await h.deploy({ preSwitchGates: [{ ...gate('down'), retries: 1 }] })).id);
    assert.equal(exhausted.status, 'FAILURE');
    assert.equal(exhausted.failureReason, 'pre-switch gate "down" failed: no verdict after 2 attempts (last: HTTP 503)');
    assert.equal(h.gateCalls.length, 2);
    await h.idle();

    h.gateCalls.length = 0;
    h.gate = () => ({ outcome: 'fail', reason: 'no', latencyMs: 1 });
    const refused = await h.settled((await h.deploy({ preSwitchGates: [{ ...gate('strict'), retries: 5 }] })).id);
    assert.equal(refused.status, 'FAILURE');
    assert.equal(h.gateCalls.length, 1, 'a verdict is final');
  });

  it('a cancel while a gate is being asked stops the deployment before its switch', async () => {
    h = await new EngineHarness().start();
    let asked!: () => void;
    const reached = new Promise<void>((r) => { asked = r; });
    h.gate = (_g, _r, signal) => new Promise((_resolve, reject) => {
      asked();
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
    const v = await h.deploy({ preSwitchGates: [gate('slow')] });
    await reached;
    await h.cancel(v.id, 'bob');
    const done = await h.settled(v.id);
    assert.equal(done.failureReason, 'cancelled by bob');
    await h.idle();
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), []);
  });

  it('a failing post-switch check rolls back automatically: traffic back on the replaced version, never two DEPLOYED records (I4), the new version removed', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    h.gate = (_g, r) => (r.phase === 'post-switch' ? { outcome: 'fail', reason: 'error rate 12% > 1%', latencyMs: 5 } : pass);
    const v2 = await h.deploy({ drainSeconds: 60, postSwitchChecks: [gate('error-rate')] });
    const done = await h.settled(v2.id, new Set(['FAILURE']));
    assert.equal(done.failureReason, 'post-switch check "error-rate" failed: error rate 12% > 1%; rolled back to version 1');
    assert.equal(done.rolledBack?.automatic, true);
    assert.equal(done.rolledBack?.to, v1.id);
    assert.ok(done.times.switched && done.times.rolledBack, 'it was switched to, then rolled back');
    await h.idle();
    const restored = await h.record(v1.id);
    assert.equal(restored.status, 'DEPLOYED');
    assert.equal(restored.restoredFrom, v2.id);
    assert.equal(restored.replacedBy, undefined);
    assert.deepEqual(JSON.parse((await h.kv.get('live/ns/shop'))!.value), { deploymentId: v1.id, version: '1' });
    assert.deepEqual(h.stableSelector(), { app: 'shop', version: '1' });
    assert.equal(h.ingressBackend(), 'shop-1');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-1'], 'the new version is removed, the old one kept');
    assert.equal(maxDeployedPerRevision(h.kv.history, 'ns'), 1, 'never two DEPLOYED records at one etcd revision (I4)');
    // v1 DEPLOYED again, v2 no longer DEPLOYED and the live pointer moved: one transaction.
    const back = h.kv.history.find((e) => e.key === `deployments/ns/${v1.id}` && JSON.parse(e.value || '{}').restoredFrom === v2.id);
    const v2Off = h.kv.history.find((e) => e.key === `deployments/ns/${v2.id}` && JSON.parse(e.value || '{}').status === 'UNDEPLOYING');
    assert.ok(back && v2Off);
    assert.equal(back.revision, v2Off.revision);
    assert.ok(h.kv.history.some((e) => e.key === 'live/ns/shop' && e.revision === back.revision && JSON.parse(e.value).deploymentId === v1.id), 'the live pointer moved in the same transaction');
    assert.equal(h.gateCalls.find((c) => c.request.phase === 'post-switch')?.request.previousVersion, '1');
  });

  it('passing post-switch checks: the drain goes on and the replaced version is removed after it', async () => {
    h = await new EngineHarness().start();
    const v1 = await h.settled((await h.deploy()).id);
    await h.idle();
    const v2 = await h.settled((await h.deploy({ postSwitchChecks: [gate('error-rate')] })).id);
    await h.idle();
    assert.equal((await h.record(v2.id)).status, 'DEPLOYED');
    assert.ok((await h.record(v2.id)).times.checked);
    assert.equal((await h.record(v1.id)).status, 'UNDEPLOYED');
    assert.deepEqual(h.cluster.names('Deployment', 'ns'), ['shop-2']);
  });

  it('a first deployment has nothing to go back to: its post-switch checks are not asked, and the log says so', async () => {
    h = await new EngineHarness().start();
    h.gate = () => ({ outcome: 'fail', reason: 'would fail', latencyMs: 1 });
    const v1 = await h.settled((await h.deploy({ postSwitchChecks: [gate('error-rate')] })).id);
    await h.idle();
    assert.equal((await h.record(v1.id)).status, 'DEPLOYED');
    assert.equal(h.gateCalls.length, 0);
    assert.ok((await log(v1.id)).includes('Post-switch checks not asked: no earlier version runs that traffic could go back to'));
  });
});
