import { AsyncLocalStorage } from 'node:async_hooks';

const urgentScope = new AsyncLocalStorage<true>();

/**
 * Runs `fn` with the calls it makes marked urgent: the cluster's bounded reads and the store's
 * pool of etcd connections let them go ahead of calls waiting their turn. For the switch of a
 * deployment that is ready, while other deployments start (each with a round of reads and writes).
 */
export function urgent<T>(fn: () => Promise<T>): Promise<T> {
  return urgentScope.run(true, fn);
}

/** Whether the calling code runs inside urgent(). */
export function isUrgent(): boolean {
  return urgentScope.getStore() === true;
}
