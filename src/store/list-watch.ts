import { sleep } from '../lib/deadline.js';
import type { KvEntry, KvStore, WatchEvent, WatchHandle } from './kv.js';

export interface ListAndWatchOptions {
  kv: KvStore;
  prefix: string;
  /** What is watched, for the warning when it cannot be (yet). */
  what: string;
  log: { warn(fields: Record<string, unknown>, message: string): void };
  /** Every entry under the prefix, on the first list and after each re-list. */
  onList(entries: KvEntry[]): void;
  onEvents(events: WatchEvent[]): void;
}

/**
 * Lists `prefix`, then watches it from the list's revision, so no change falls in between; when
 * the watch ends for good (e.g. its revision was compacted), lists and watches again. Retries with
 * backoff (250 ms … 5 s) while etcd does not answer. Resolves once the first watch runs.
 */
export async function listAndWatch(o: ListAndWatchOptions): Promise<WatchHandle> {
  let closed = false;
  let current: WatchHandle | undefined;
  const run = async (): Promise<void> => {
    let backoff = 250;
    while (!closed) {
      try {
        const { entries, revision } = await o.kv.list(o.prefix);
        o.onList(entries);
        const handle = await o.kv.watch(o.prefix, String(BigInt(revision) + 1n), {
          onEvents: (events) => o.onEvents(events),
          onError: (err) => {
            o.log.warn({ err: err.message, prefix: o.prefix }, `${o.what}: watch ended; listing and watching again`);
            current = undefined;
            void handle.close();
            void sleep(backoff).then(run);
          },
        });
        if (closed) {
          await handle.close();
          return;
        }
        current = handle;
        return;
      } catch (err) {
        o.log.warn({ err: (err as Error).message, prefix: o.prefix, retryInMs: backoff }, `${o.what}: cannot watch yet; retrying`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  };
  await run();
  return {
    close: async () => {
      closed = true;
      await current?.close();
    },
  };
}
