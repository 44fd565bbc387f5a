import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from './etcd.js';
import { startTestCutover, type TestCutover } from './cutover.js';
import { ClusterView, DeployClient } from './deploy.js';
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
  /** A fresh namespace `<prefix>-<random>`, deleted by close(). */
  namespace(prefix: string): Promise<string>;
  close(): Promise<void>;
}

export const FAST_ENGINE_ENV = {
  CUTOVER_DRAIN_SECONDS: '1',
  CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
  CUTOVER_HEALTHCHECK_TIMEOUT_SECONDS: '30',
};

export async function startBedFixture(env: Record<string, string> = {}): Promise<BedFixture> {
  const testbed = await useTestbed();
  const kc = loadKubeConfig(testbed.kubeconfigPath);
  const etcd = await TestEtcd.create();
  const cutover = await startTestCutover(etcd.endpoint, { CUTOVER_KUBECONFIG: testbed.kubeconfigPath, ...FAST_ENGINE_ENV, ...env });
  const namespaces: TestNamespace[] = [];
  return {
    testbed, kc, etcd, cutover,
    api: new DeployClient(cutover.url),
    cluster: new ClusterView(kc),
    async namespace(prefix) {
      const ns = await createTestNamespace(kc, prefix);
      namespaces.push(ns);
      return ns.name;
    },
    async close() {
      await cutover.stop();
      await etcd.destroy();
      await Promise.all(namespaces.map((n) => n.delete()));
      await testbed.release();
    },
  };
}
