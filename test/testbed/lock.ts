// A cross-process lock (mkdir is atomic) with stale-owner detection, so two test files or a test and
// the CLI never bring the bed up or down at the same time, and two builds never race for one cache dir.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitUntil } from './wait.js';
import { isAlive } from './processes.js';

export async function withLock<T>(lockDir: string, what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await waitUntil(`lock ${lockDir} (${what})`, async () => {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'owner'), `${process.pid}\n`);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number((await readFile(join(lockDir, 'owner'), 'utf8').catch(() => '')).trim());
      // An owner that died (or never wrote its pid) leaves the lock behind: take it over. The pid file
      // is written right after mkdir, so only steal when the dir has been ownerless for a while.
      if (owner > 0 ? !isAlive(owner) : await olderThan(lockDir, 5_000)) {
        await rm(lockDir, { recursive: true, force: true });
        return `removed stale lock of pid ${owner || 'unknown'}`;
      }
      return `held by pid ${owner || 'unknown'}`;
    }
  }, { timeoutMs, intervalMs: 250 });
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function olderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return true;
  }
}
