/**
 * Promise.all that waits for every promise to settle (none is left running behind a failure) and
 * then fails with the first failure in the given order — not whichever failed first in time.
 */
export async function settledInOrder<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
