import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from './etcd.js';
import { startTestCutover, type TestCutover } from './cutover.js';
import { ClusterView, DeployClient } from './deploy.js';
import { InvariantObserver } from './invariants.js';
import { createTestNamespace, loadKubeConfig, useTestbed, type Testbed, type TestNamespace } from '../testbed/harness.js';

/**
 * What most test-bed suites start with: the test bed, a real etcd, cutover in-process deploying
 * to the bed (fast drains and health-check retries), and namespaces cleaned up at the end.
 */
export interface BedFixture {
  testbed: Testbed;
  kc: KubeConfig;
  etcd: TestEtcd;
  cutover: TestCutover;
  api: DeployClient;
  cluster: ClusterView;
  /**
   * A fresh namespace `<prefix>-<random>`, deleted by close(). With `observe` (the fixture's
   * default), an invariant observer watches it from the start; close() fails on any violation.
   */
  namespace(prefix: string, options?: { observe?: boolean }): Promise<string>;
  /** Watches `namespace` with an invariant observer reading the records under another cutover's `etcdPrefix` (checked by close()). */
  observe(namespace: string, etcdPrefix: string): Promise<void>;
  close(): Promise<void>;
}

export const FAST_ENGINE_ENV = {
  CUTOVER_DRAIN_SECONDS: '1',
  CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
  CUTOVER_HEALTHCHECK_TIMEOUT_SECONDS: '30',
};

export async function startBedFixture(env: Record<string, string> = {}, options: { observe?: boolean } = {}): Promise<BedFixture> {
  const testbed = await useTestbed();
  const kc = loadKubeConfig(testbed.kubeconfigPath);
  const etcd = await TestEtcd.create();
  const cutover = await startTestCutover(etcd.endpoint, { CUTOVER_KUBECONFIG: testbed.kubeconfigPath, ...FAST_ENGINE_ENV, ...env });
  const namespaces: TestNamespace[] = [];
  const observers: InvariantObserver[] = [];
  return {
    testbed, kc, etcd, cutover,
    api: new DeployClient(cutover.url),
    cluster: new ClusterView(kc),
    async namespace(prefix, nsOptions = {}) {
      const ns = await createTestNamespace(kc, prefix);
      namespaces.push(ns);
      if (nsOptions.observe ?? options.observe ?? false) {
        observers.push(await InvariantObserver.start({ kubeConfig: kc, namespace: ns.name, etcdEndpoint: etcd.endpoint, etcdPrefix: cutover.config.etcdPrefix }));
      }
      return ns.name;
    },
    async observe(namespace, etcdPrefix) {
      observers.push(await InvariantObserver.start({ kubeConfig: kc, namespace, etcdEndpoint: etcd.endpoint, etcdPrefix }));
    },
    async close() {
      // Invariants I1 and I4 held at every instant in every observed namespace.
      const violations = (await Promise.all(observers.map(async (o) => ({ o, v: await o.stop() })))).filter((x) => x.v.length > 0);
      await cutover.stop();
      await etcd.destroy();
      await Promise.all(namespaces.map((n) => n.delete()));
      await testbed.release();
      if (violations.length > 0) throw new Error(violations.map((x) => x.o.report()).join('\n\n'));
    },
  };
}
