import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from './etcd.js';
import { startTestCutover, type TestCutover } from './cutover.js';
import { FAST_ENGINE_ENV } from './bed.js';
import { ClusterView, DeployClient } from './deploy.js';
import { InvariantObserver } from './invariants.js';
import { request } from './http.js';
import { waitFor } from './wait.js';
import { createNamespaceNamed, createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

/** One of the bed's two clusters as a registry entry names it. */
export interface BedCluster {
  name: string;
  environment: string;
  kc: KubeConfig;
  view: ClusterView;
  /** The etcd key scope of its records ("" for the default cluster). */
  scope: string;
}

/**
 * cutover in-process with a cluster registry over the test bed's two clusters (`--clusters 2`), a
 * real etcd, namespaces created on both clusters under one name, and invariant observers on each
 * cluster reading that cluster's records.
 */
export interface ClustersFixture {
  bed: Testbed;
  etcd: TestEtcd;
  cutover: TestCutover;
  api: DeployClient;
  clusters: BedCluster[];
  cluster(name: string): BedCluster;
  /** The same fresh namespace on both clusters, observed on both. */
  namespace(prefix: string): Promise<string>;
  /** Deploys a stored descriptor to a target; the answer's body (a record, or a release with its records). */
  deploy(ns: string, descriptorId: string, target: { cluster?: string; environment?: string }): Promise<any>;
  release(ns: string, id: string): Promise<any>;
  waitForRelease(ns: string, id: string, timeoutMs?: number): Promise<any>;
  close(): Promise<void>;
}

/**
 * A cluster registry file naming the bed's cluster 1 "one" and cluster 2 "two", in the given
 * environments; `dir` (a temp dir holding it) is the caller's to remove.
 */
export function writeBedRegistry(bed: Testbed, environments: { one: string; two: string }): { dir: string; file: string } {
  if (!bed.cluster2) throw new Error('the test bed has one cluster; bring it up with --clusters 2');
  const dir = mkdtempSync(join(tmpdir(), 'cutover-clusters-'));
  const file = join(dir, 'clusters.yaml');
  writeFileSync(file, stringify({
    clusters: [
      { name: 'one', environment: environments.one, kubeconfig: bed.kubeconfigPath },
      { name: 'two', environment: environments.two, kubeconfig: bed.cluster2.kubeconfigPath },
    ],
  }));
  return { dir, file };
}

/** `environments`: the bed's cluster 1 ("one") and cluster 2 ("two") and the environment of each. */
export async function startClustersFixture(environments: { one: string; two: string }, env: Record<string, string> = {}): Promise<ClustersFixture> {
  const bed = await useTestbed({ clusters: 2 });
  if (!bed.cluster2) throw new Error('the test bed has one cluster; bring it up with --clusters 2');
  const { dir, file: registryFile } = writeBedRegistry(bed, environments);
  const etcd = await TestEtcd.create();
  const cutover = await startTestCutover(etcd.endpoint, { ...FAST_ENGINE_ENV, CUTOVER_CLUSTERS_FILE: registryFile, ...env });
  const kc1 = loadKubeConfig(bed.kubeconfigPath);
  const kc2 = loadKubeConfig(bed.cluster2.kubeconfigPath);
  const clusters: BedCluster[] = [
    { name: 'one', environment: environments.one, kc: kc1, view: new ClusterView(kc1), scope: '' },
    { name: 'two', environment: environments.two, kc: kc2, view: new ClusterView(kc2), scope: 'clusters/two/' },
  ];
  const namespaces: TestNamespace[] = [];
  const observers: Array<{ cluster: string; o: InvariantObserver }> = [];
  const api = new DeployClient(cutover.url);
  const fixture: ClustersFixture = {
    bed, etcd, cutover, api, clusters,
    cluster: (name) => clusters.find((c) => c.name === name)!,
    async namespace(prefix) {
      const first = await createTestNamespace(kc1, prefix);
      namespaces.push(first);
      namespaces.push(await createNamespaceNamed(kc2, first.name));
      for (const c of clusters) {
        observers.push({ cluster: c.name, o: await InvariantObserver.start({ kubeConfig: c.kc, namespace: first.name, etcdEndpoint: etcd.endpoint, etcdPrefix: `${cutover.config.etcdPrefix}${c.scope}` }) });
      }
      return first.name;
    },
    async deploy(ns, descriptorId, target) {
      const q = new URLSearchParams({ namespace: ns, descriptorId, ...(target.cluster ? { cluster: target.cluster } : {}), ...(target.environment ? { environment: target.environment } : {}) });
      const res = await request(`${cutover.url}/deployments/?${q}`, { method: 'POST' });
      if (res.status !== 202) throw new Error(`deploy: ${res.status} ${res.text}`);
      return res.body;
    },
    async release(ns, id) {
      const res = await request(`${cutover.url}/releases/${id}/?namespace=${ns}`);
      if (res.status !== 200) throw new Error(`release: ${res.status} ${res.text}`);
      return res.body;
    },
    async waitForRelease(ns, id, timeoutMs = 120_000) {
      return waitFor(`release ${id} to end`, async () => {
        const r = await fixture.release(ns, id);
        return r.status !== 'DEPLOYING' ? r : undefined;
      }, { timeoutMs, intervalMs: 200 });
    },
    async close() {
      const reports = await Promise.all(observers.map(async ({ cluster, o }) => ({ cluster, o, v: await o.stop() })));
      await cutover.stop();
      await etcd.destroy();
      await Promise.all(namespaces.map((n) => n.delete()));
      await bed.release();
      rmSync(dir, { recursive: true, force: true });
      const violations = reports.filter((r) => r.v.length > 0);
      if (violations.length > 0) throw new Error(violations.map((x) => `cluster ${x.cluster}:\n${x.o.report()}`).join('\n\n'));
    },
  };
  return fixture;
}

/** The version the app's stable Service selects in a cluster (undefined: no Service). */
export async function servedVersion(view: ClusterView, ns: string, app: string): Promise<string | undefined> {
  const svc = await view.service(ns, app).catch(() => undefined);
  return (svc as { spec?: { selector?: Record<string, string> } } | undefined)?.spec?.selector?.['version'];
}
