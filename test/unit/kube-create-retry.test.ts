import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSilentLogger } from '../../src/log.js';
import { KubeClient } from '../../src/kube/client.js';
import { KubeError } from '../../src/kube/errors.js';
import { KubernetesCluster, isOwnCreate } from '../../src/deployer/kubernetes.js';
import type { KubeObject } from '../../src/deployer/cluster.js';

const ID = 'cutover.io/deployment-id';
const sent: KubeObject = { metadata: { name: 'web', namespace: 'ns', labels: { app: 'web' }, annotations: { [ID]: 'd1' } }, spec: {} };

/**
 * A client whose POSTs are answered by `answers` in turn (an error is thrown, anything else returned)
 * and whose GET returns `stored`: the API server behind a create that timed out but was applied.
 */
function clusterWith(answers: Array<unknown>, stored: KubeObject | undefined): { cluster: KubernetesCluster; posts: () => number } {
  let posts = 0;
  const client = Object.create(KubeClient.prototype) as KubeClient;
  Object.assign(client, {
    jsonOrAbsent: async () => stored,
    json: async () => {
      const answer = answers[posts++];
      if (answer instanceof Error) throw answer;
      return answer;
    },
    close: async () => undefined,
  });
  const cluster = new KubernetesCluster({ client, requestTimeoutMs: 1000, retryBudgetMs: 5000, log: createSilentLogger() });
  return { cluster, posts: () => posts };
}

const noAnswer = () => new KubeError('POST: no answer within 1000 ms', 0, 'Unavailable');
const exists = () => new KubeError('POST: 409 AlreadyExists: services "web" already exists', 409, 'AlreadyExists');

describe('KubernetesCluster.create after a create that got no answer', () => {
  it('takes the object its own unanswered create made (same deployment id, labels and annotations)', async () => {
    const { cluster, posts } = clusterWith([noAnswer(), exists()], { ...sent, metadata: { ...sent.metadata, resourceVersion: '7' } });
    try {
      const created = await cluster.create('Service', sent, AbortSignal.timeout(10_000));
      assert.equal(created.metadata?.resourceVersion, '7');
      assert.equal(posts(), 2);
    } finally {
      cluster.close();
    }
  });

  it('still fails when the object that exists belongs to another deployment', async () => {
    const { cluster } = clusterWith([noAnswer(), exists()], { ...sent, metadata: { ...sent.metadata, annotations: { [ID]: 'someone-else' } } });
    try {
      await assert.rejects(cluster.create('Service', sent, AbortSignal.timeout(10_000)), (err: KubeError) => err.status === 409);
    } finally {
      cluster.close();
    }
  });

  it('still fails on AlreadyExists when no earlier attempt was left unanswered', async () => {
    const { cluster, posts } = clusterWith([exists()], sent);
    try {
      await assert.rejects(cluster.create('Service', sent, AbortSignal.timeout(10_000)), (err: KubeError) => err.reason === 'AlreadyExists');
      assert.equal(posts(), 1);
    } finally {
      cluster.close();
    }
  });

  it('isOwnCreate wants a deployment id and every label and annotation sent', () => {
    assert.equal(isOwnCreate(sent, sent), true);
    assert.equal(isOwnCreate({ metadata: { ...sent.metadata, labels: {} } }, sent), false);
    assert.equal(isOwnCreate(sent, { metadata: { name: 'web', labels: { app: 'web' } } }), false);
    assert.equal(isOwnCreate({ metadata: { ...sent.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } as never }, sent), false);
  });
});
