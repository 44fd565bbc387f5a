import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyseSwitches, describeRequest, LoadGenerator, percentile, type LoadRecording, switchRecord, type SwitchRecord } from '../../bench/lib/load.js';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { fakeAppDescriptor } from '../support/deploy.js';
import { waitFor } from '../support/wait.js';
import { useTestbed } from '../testbed/harness.js';

/**
 * "The whole point of blue-green is that users never notice the switch" (issue #13). With real
 * traffic through the test bed's Traefik at a steady 50 requests/s (open loop), one app (2
 * replicas) is deployed 5 times in a row, once behind an Ingress and once behind an HTTPRoute:
 * not one request may fail (non-2xx or no answer, nothing retried), every deployment ends
 * DEPLOYED, no request sent after a deployment's convergence (times.converged) is answered by a
 * version it replaced, and the invariant observer sees no violation. Load runs from before the
 * first switch until the last replaced version is removed.
 */
const RATE = 50;
const SWITCHES = 5;
const DRAIN_SECONDS = 2;

describe('traffic through a real gateway across blue-green switches', () => {
  let bed: BedFixture;
  let traefikUrl: string;

  before(async () => {
    const probe = await useTestbed();
    const t = probe.traefik;
    await probe.release();
    traefikUrl = t.url;
    bed = await startBedFixture({
      CUTOVER_ROUTING: 'httproute', CUTOVER_GATEWAY: `${t.gateway.namespace}/${t.gateway.name}/${t.gateway.sectionName}`,
      CUTOVER_INGRESS_CLASS: t.ingressClass, CUTOVER_INGRESS_PROFILE: 'traefik',
      CUTOVER_VERSION_HEADER: 'X-Cutover-Version', CUTOVER_TRAFFIC_PROBE_URL: t.url,
      CUTOVER_DRAIN_SECONDS: String(DRAIN_SECONDS),
    }, { observe: true });
  });

  after(async () => {
    await bed?.close();
  });

  for (const routing of ['ingress', 'httproute'] as const) {
    it(`${routing}: ${SWITCHES} switches under ${RATE} req/s lose no request, and nothing old answers after convergence`, { timeout: 100_000 }, async () => {
      const ns = await bed.namespace(`load-${routing}`);
      const host = `${ns}.example.test`;
      const descriptorId = await bed.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'shop', replicas: 2, frontend: host, routing }));
      const deploy = async () => {
        const started = await bed.api.startDeployment(ns, descriptorId);
        const d = await bed.api.waitForStatus(ns, started.body.id as string);
        assert.equal(d.status, 'DEPLOYED', `version ${d.version}: ${d.failureReason}`);
        return d;
      };
      const converged = (id: string) => waitFor(`deployment ${id} to converge`, async () => {
        const d = await bed.api.get(ns, id);
        return d.times.converged ? d : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });

      const first = await converged((await deploy()).id);
      const generator = await new LoadGenerator({ url: traefikUrl, host, rate: RATE }).start();
      const ids: string[] = [first.id];
      let load: LoadRecording;
      try {
        await new Promise((r) => setTimeout(r, 1000));
        for (let i = 0; i < SWITCHES; i++) ids.push((await deploy()).id);
        const last = await converged(ids[ids.length - 1]!);
        await bed.cluster.waitForWorkloads(ns, 'shop', [`shop-${last.version}`], 30_000);
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        load = await generator.stop();
      }

      const records = await Promise.all(ids.map((id) => bed.api.get(ns, id)));
      const deployments: SwitchRecord[] = records.map((r, i) => switchRecord(r, i > 0 ? records[i - 1] : undefined));
      const a = analyseSwitches(load, deployments, DRAIN_SECONDS);
      const g = load.stats();
      const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
      console.log(`# ${routing}: ${a.requests} requests at ${g.achievedRate.toFixed(1)}/s (target ${RATE}; generator lag p99 ${g.lagP99Ms.toFixed(1)} ms, ${g.connections} connections, ${g.cpuSeconds.toFixed(2)} s CPU),`
        + ` ${a.failed.length} failed, old version after DEPLOYED ${a.oldAfterDeployed.length} / after converged ${a.oldAfterConverged.length},`
        + ` switch → converged ${a.convergenceMs.join(', ')} ms, latency p50/p99 during switches ${p(a.duringSwitches, 50)}/${p(a.duringSwitches, 99)} ms,`
        + ` between ${p(a.betweenSwitches, 50)}/${p(a.betweenSwitches, 99)} ms`);
      for (const r of a.failed.slice(0, 20)) console.log(`#   failed ${describeRequest(r)}`);
      for (const r of a.oldAfterConverged.slice(0, 20)) console.log(`#   old after converged ${describeRequest(r)}`);

      assert.equal(records.length, SWITCHES + 1);
      for (const r of records) assert.equal(r.status, r.id === ids[ids.length - 1] ? 'DEPLOYED' : 'UNDEPLOYED', `${r.version}: ${r.status} ${r.failureReason ?? ''}`);
      for (const d of deployments.slice(1)) {
        assert.ok(d.converged && d.switched && d.converged >= d.switched, `version ${d.version} has times.converged after times.switched`);
      }
      assert.ok(a.requests >= RATE * 10, `the load ran (${a.requests} requests)`);
      assert.deepEqual(a.failed.map(describeRequest), [], 'no request failed');
      assert.deepEqual(a.oldAfterConverged.map(describeRequest), [], 'no request sent after a convergence was answered by a replaced version');
      assert.equal(a.mismatched, 0, 'the version header and the answering pod agree');
      // Every version that was live answered (the load saw each switch).
      const answered = new Set(Array.from({ length: load.count }, (_, i) => load.versionsOf(i).body));
      for (const r of records) assert.ok(answered.has(r.version), `version ${r.version} answered requests`);
    });
  }
});
