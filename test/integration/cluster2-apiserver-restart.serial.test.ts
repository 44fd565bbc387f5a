// Cluster 2's API server stopped and started again (the outage helpers a multi-cluster test uses to
// lose one cluster mid-deploy): cluster 1 keeps answering, cluster 2's pods keep serving HTTP, no other
// process of the bed is restarted. Serial (`.serial.`): it makes cluster 2 unhealthy meanwhile.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { Agent, request } from 'undici';
import { apiServerReadyz, restartApiServer } from '../support/faults.js';
import {
  createTestNamespace, deleteNamespace, loadKubeConfig, startCluster2ApiServer, useTestbed, waitForFakePods, waitForReadyPods,
  type TestNamespace, type Testbed,
} from '../testbed/harness.js';
import { loadConfig, paths } from '../testbed/config.js';
import { readState } from '../testbed/state.js';

async function pids(): Promise<Record<string, number>> {
  const state = await readState(paths(loadConfig().dir).state);
  return Object.fromEntries((state?.processes ?? []).map((p) => [p.name, p.pid]));
}

describe('cluster 2 API server outage (test support)', { timeout: 10 * 60_000 }, () => {
  let bed: Testbed;
  let ns: TestNamespace | undefined;
  const http = new Agent({ connect: { timeout: 2_000 }, headersTimeout: 5_000, bodyTimeout: 5_000 });

  before(async () => {
    bed = await useTestbed({ clusters: 2 });
  }, { timeout: 45 * 60_000 });
  after(async () => {
    // Whatever happened above, leave the shared bed with cluster 2's API server.
    await startCluster2ApiServer().catch(() => undefined);
    if (ns) await deleteNamespace(loadKubeConfig(bed.cluster2!.kubeconfigPath), ns.name, 120_000);
    await http.close();
    await bed?.release();
  });

  it('restartApiServer({ cluster: 2 }): only cluster 2 is down, its pods keep answering, then it is back', async () => {
    const c2 = bed.cluster2!;
    const kc2 = loadKubeConfig(c2.kubeconfigPath);
    ns = await createTestNamespace(kc2, 'c2-outage');
    await kc2.makeApiClient(AppsV1Api).createNamespacedDeployment({
      namespace: ns.name,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1, selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'example.invalid/fake:1', ports: [{ containerPort: 8080 }] }] } },
        },
      },
    });
    const [pod] = await waitForReadyPods(kc2, ns.name, 'app=web', 1);
    const ip = pod!.status!.podIP!;
    await waitForFakePods(bed.fakePodsSocket, [ip]);

    const before = await pids();
    const during: Record<string, string | number> = {};
    const r = await restartApiServer({
      cluster: 2, downMs: 3000,
      during: async () => {
        during.c2 = await apiServerReadyz(c2.kubeconfigPath);
        during.c1 = await apiServerReadyz(bed.kubeconfigPath);
        during.pod = (await request(`http://${ip}:8080/`, { dispatcher: http }).then(async (res) => { await res.body.text(); return res.statusCode; }));
      },
    });
    assert.match(String(during.c2), /ECONNREFUSED/, 'cluster 2 API server down');
    assert.equal(during.c1, 'ok', 'cluster 1 API server unaffected');
    assert.equal(during.pod, 200, "cluster 2's pod keeps serving while its API server is down");
    assert.equal(await apiServerReadyz(c2.kubeconfigPath), 'ok');
    assert.ok((await kc2.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns.name })).items.length === 1);
    const now = await pids();
    assert.notEqual(now['c2-kube-apiserver'], before['c2-kube-apiserver']);
    for (const name of Object.keys(before).filter((n) => n !== 'c2-kube-apiserver')) assert.equal(now[name], before[name], `${name} kept its pid`);
    console.log(`# cluster 2 API server restart: stop ${r.stopMs} ms (${r.stoppedBy}), down ${r.downMs} ms, start -> /readyz ok ${r.startMs} ms, outage ${r.outageMs} ms`);
  });
});
