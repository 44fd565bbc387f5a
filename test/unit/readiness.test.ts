import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { evaluatePods, podFailure } from '../../src/deployer/readiness.js';

function pod(name: string, opts: { ready?: boolean; phase?: string; ip?: string; waiting?: string; restarts?: number; unschedulable?: boolean; deleting?: boolean } = {}): V1Pod {
  const ready = opts.ready ?? true;
  return {
    metadata: { name, uid: name, ...(opts.deleting ? { deletionTimestamp: new Date() } : {}) },
    status: {
      phase: opts.phase ?? (ready ? 'Running' : 'Pending'),
      podIP: opts.ip ?? (ready ? `198.18.0.${name.length}` : undefined),
      conditions: [
        { type: 'Ready', status: ready ? 'True' : 'False' },
        ...(opts.unschedulable ? [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/2 nodes are available' }] : []),
      ],
      containerStatuses: opts.waiting
        ? [{ name: 'app', image: 'i', imageID: '', ready: false, restartCount: opts.restarts ?? 0, state: { waiting: { reason: opts.waiting } } }]
        : [],
    },
  } as V1Pod;
}

describe('pod readiness', () => {
  it('is ready when every live pod is Ready with an IP and there are enough', () => {
    const v = evaluatePods([pod('a'), pod('b')], 2);
    assert.equal(v.state, 'ready');
    assert.deepEqual(v.state === 'ready' && v.pods.map((p) => p.name), ['a', 'b']);
  });

  it('waits while pods are missing or not ready, saying how many are ready', () => {
    const v = evaluatePods([pod('a'), pod('b', { ready: false })], 2);
    assert.equal(v.state, 'waiting');
    assert.match(v.state === 'waiting' ? v.detail : '', /^1\/2 pods ready/);
    assert.equal(evaluatePods([pod('a')], 2).state, 'waiting');
  });

  it('ignores pods that are being deleted', () => {
    assert.equal(evaluatePods([pod('a'), pod('b'), pod('old', { ready: false, deleting: true })], 2).state, 'ready');
  });

  it('is ready at once for zero replicas', () => {
    assert.equal(evaluatePods([], 0).state, 'ready');
  });

  it('fails fast on CrashLoopBackOff, image pull errors and unschedulable pods', () => {
    for (const reason of ['CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'CreateContainerConfigError']) {
      const v = evaluatePods([pod('a'), pod('b', { ready: false, phase: 'Running', waiting: reason, restarts: 3 })], 2);
      assert.equal(v.state, 'failed', reason);
      assert.match(v.state === 'failed' ? v.reason : '', new RegExp(`pod b: container app is in ${reason}`));
    }
    assert.match(podFailure(pod('c', { ready: false, unschedulable: true })) ?? '', /unschedulable: 0\/2 nodes/);
    assert.equal(podFailure(pod('d', { ready: false, waiting: 'ContainerCreating' })), undefined);
  });
});
