import type { V1Pod } from '@kubernetes/client-node';

/**
 * Decides from the pods of a new version whether it is ready, still starting, or failed for a
 * reason that waiting will not fix (so the deployment fails at once instead of at its deadline).
 */

export type PodsVerdict =
  | { state: 'ready'; pods: ReadyPod[] }
  | { state: 'waiting'; ready: number; expected: number; detail: string }
  | { state: 'failed'; reason: string };

export interface ReadyPod {
  name: string;
  ip: string;
  /** Container name → the image id the kubelet reported (with the digest it pulled). */
  imageIds?: Record<string, string>;
}

/** Container waiting reasons that do not resolve by themselves. */
const FATAL_WAITING_REASONS = new Set([
  'CrashLoopBackOff', 'ImagePullBackOff', 'ErrImagePull', 'InvalidImageName', 'ErrImageNeverPull',
  'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError',
]);

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** Why this pod cannot become ready, or undefined when it still may. */
export function podFailure(pod: V1Pod): string | undefined {
  const name = pod.metadata?.name ?? '?';
  const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
  for (const cs of statuses) {
    const waiting = cs.state?.waiting;
    if (waiting?.reason && FATAL_WAITING_REASONS.has(waiting.reason)) {
      const restarts = cs.restartCount ? `, ${cs.restartCount} restarts` : '';
      return `pod ${name}: container ${cs.name} is in ${waiting.reason}${restarts}${waiting.message ? `: ${waiting.message}` : ''}`;
    }
  }
  const scheduled = (pod.status?.conditions ?? []).find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False' && scheduled.reason === 'Unschedulable') {
    return `pod ${name} is unschedulable${scheduled.message ? `: ${scheduled.message}` : ''}`;
  }
  if (pod.status?.phase === 'Failed') return `pod ${name} failed${pod.status.reason ? `: ${pod.status.reason}` : ''}${pod.status.message ? ` (${pod.status.message})` : ''}`;
  return undefined;
}

export function evaluatePods(pods: V1Pod[], expected: number): PodsVerdict {
  const live = pods.filter((p) => !p.metadata?.deletionTimestamp);
  for (const pod of live) {
    const failure = podFailure(pod);
    if (failure) return { state: 'failed', reason: failure };
  }
  const ready = live.filter(isPodReady).filter((p) => p.status?.podIP);
  if (ready.length >= expected && live.length === ready.length) {
    return {
      state: 'ready',
      pods: ready.map((p) => ({
        name: p.metadata?.name ?? '', ip: p.status?.podIP ?? '',
        imageIds: Object.fromEntries((p.status?.containerStatuses ?? []).filter((c) => c.imageID).map((c) => [c.name, c.imageID!])),
      })).sort((a, b) => a.name.localeCompare(b.name)),
    };
  }
  const notReady = live.filter((p) => !isPodReady(p)).map((p) => `${p.metadata?.name ?? '?'} ${p.status?.phase ?? 'Pending'}`);
  return {
    state: 'waiting',
    ready: ready.length,
    expected,
    detail: `${ready.length}/${expected} pods ready${notReady.length ? ` (${notReady.slice(0, 3).join(', ')}${notReady.length > 3 ? ', …' : ''})` : ''}`,
  };
}
