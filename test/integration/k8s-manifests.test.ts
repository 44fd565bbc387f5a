import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { CoreV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { deleteNamespace, loadKubeConfig, useTestbed, type Testbed } from '../testbed/harness.js';

const k8sDir = fileURLToPath(new URL('../../k8s/', import.meta.url));

function manifests(): Array<{ file: string; object: KubernetesObject }> {
  const out: Array<{ file: string; object: KubernetesObject }> = [];
  for (const file of readdirSync(k8sDir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8'), { version: '1.1' })) {
      assert.deepEqual(doc.errors, [], `${file} parses`);
      const object = doc.toJS() as KubernetesObject | null;
      if (object) out.push({ file, object });
    }
  }
  return out;
}

/** The real API server validates every manifest in k8s/ (server-side dry run: nothing is stored). */
describe('cluster manifests in k8s/', () => {
  let testbed: Testbed;
  let kc: KubeConfig;
  let createdNamespace = false;

  before(async () => {
    testbed = await useTestbed();
    kc = loadKubeConfig(testbed.kubeconfigPath);
  });

  after(async () => {
    if (createdNamespace) await deleteNamespace(kc, 'cutover');
    await testbed?.release();
  });

  it('has the pieces a production installation needs', () => {
    const kinds = manifests().map((m) => m.object.kind).sort();
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Service', 'ServiceAccount']) {
      assert.ok(kinds.includes(kind), `a ${kind}`);
    }
    const deployment = manifests().find((m) => m.object.kind === 'Deployment')!.object as any;
    assert.equal(deployment.spec.replicas, 2);
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.ok(container.resources.requests.memory);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
  });

  it('passes server-side validation of the real API server', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    try {
      await core.readNamespace({ name: 'cutover' });
    } catch {
      // Namespaced objects can only be dry-run in an existing namespace.
      await core.createNamespace({ body: { metadata: { name: 'cutover' } } });
      createdNamespace = true;
    }
    const api = KubernetesObjectApi.makeApiClient(kc);
    for (const { file, object } of manifests()) {
      if (object.kind === 'Namespace') continue;
      try {
        await api.create(object, undefined, 'All');
      } catch (err) {
        const body = (err as { body?: unknown }).body;
        assert.fail(`${file}: ${object.kind} ${object.metadata?.name} rejected: ${typeof body === 'string' ? body : (err as Error).message}`);
      }
    }
  });
});
