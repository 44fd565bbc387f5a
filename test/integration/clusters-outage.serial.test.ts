// One cluster's API server stops in the middle of an environment deploy: the other cluster's
// deployment goes on and ends DEPLOYED while the outage lasts; the stopped cluster's deployment
// pauses, then ends once its API server is back — within its deadline, its running version never
// harmed. Serial: it stops cluster 2's API server of the shared bed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fakeAppDescriptor } from '../support/deploy.js';
import { restartApiServer } from '../support/faults.js';
import { servedVersion, startClustersFixture, type ClustersFixture } from '../support/clusters.js';
import { startCluster2ApiServer } from '../testbed/harness.js';
import { waitFor } from '../support/wait.js';

describe('a cluster\'s API server stopped mid-deploy', { timeout: 10 * 60_000 }, () => {
  let f: ClustersFixture;
  before(async () => {
    f = await startClustersFixture({ one: 'production', two: 'production' }, { CUTOVER_KUBE_REQUEST_TIMEOUT_MS: '2000' });
  }, { timeout: 45 * 60_000 });
  after(async () => {
    await startCluster2ApiServer().catch(() => undefined);
    await f?.close();
  });

  it('the other cluster finishes meanwhile; the stopped one resumes and ends, its running version untouched', async () => {
    const ns = await f.namespace('c2down');
    const descriptorId = await f.api.createDescriptor(ns, fakeAppDescriptor(ns, { appName: 'web', replicas: 2, deadlineSeconds: 180 }));
    const first = await f.waitForRelease(ns, (await f.deploy(ns, descriptorId, { environment: 'production' })).id);
    assert.equal(first.status, 'DEPLOYED');

    const second = await f.deploy(ns, descriptorId, { environment: 'production' });
    const [one, two] = second.deployments.map((d: any) => d.deploymentId);
    await f.api.waitForStatus(ns, two, new Set(['DEPLOYING']));
    await waitFor('cluster two\'s deployment under way', async () => {
      const r = await f.api.get(ns, two);
      return ['creating-resources', 'waiting-for-pods', 'health-checking'].includes(r.step) || r.status !== 'DEPLOYING' ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 20 });

    let oneWhileDown: any;
    let twoWhileDown: any;
    const outage = await restartApiServer({
      cluster: 2, downMs: 1000,
      during: async () => {
        oneWhileDown = await f.api.waitForStatus(ns, one, undefined, 90_000);
        twoWhileDown = await f.api.get(ns, two);
      },
    });
    assert.equal(oneWhileDown.status, 'DEPLOYED', 'cluster one finished while cluster two\'s API server was down');
    assert.equal(await servedVersion(f.cluster('one').view, ns, 'web'), second.version);

    const end = await f.waitForRelease(ns, second.id, 200_000);
    const twoEnd = await f.api.get(ns, two);
    const log = await f.api.logs(ns, two);
    assert.ok(['DEPLOYED', 'FAILURE'].includes(twoEnd.status), twoEnd.status);
    // Every deployment ends within its deadline + 1 minute (I3).
    assert.ok(Date.parse(twoEnd.times.finished ?? twoEnd.lastModified) <= Date.parse(twoEnd.deadline) + 60_000, log);
    if (twoEnd.status === 'DEPLOYED') {
      assert.equal(end.status, 'DEPLOYED');
      assert.equal(await servedVersion(f.cluster('two').view, ns, 'web'), second.version);
    } else {
      // Failed before its switch: cluster two still serves the first version.
      assert.equal(await servedVersion(f.cluster('two').view, ns, 'web'), first.version, log);
    }
    console.log(`cluster two's API server down ${outage.outageMs} ms; cluster two's deployment was ${twoWhileDown.status}/${twoWhileDown.step} during it and ended ${twoEnd.status}`);
  });
});
