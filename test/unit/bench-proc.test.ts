import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sampleThreads, threadCpuByName, type ThreadSample } from '../../bench/lib/proc.js';

describe('bench/lib/proc: CPU by thread', () => {
  it('reads every thread of a process, the main one marked', () => {
    const threads = sampleThreads(process.pid);
    const main = threads.filter((t) => t.tid === process.pid);
    assert.equal(main.length, 1);
    assert.match(main[0]!.name, / \(main\)$/);
    assert.ok(main[0]!.cpuNs > 0 && main[0]!.runs > 0);
    assert.ok(threads.length > 1, 'V8 and libuv threads too');
  });

  it('sums the growth per thread name, a thread started in between from zero, busiest first', () => {
    const before: ThreadSample[] = [
      { tid: 1, name: 'node (main)', cpuNs: 5e6, runs: 10 },
      { tid: 2, name: 'V8Worker', cpuNs: 1e6, runs: 4 },
      { tid: 3, name: 'V8Worker', cpuNs: 1e6, runs: 4 },
    ];
    const after: ThreadSample[] = [
      { tid: 1, name: 'node (main)', cpuNs: 25e6, runs: 30 },
      { tid: 2, name: 'V8Worker', cpuNs: 3e6, runs: 6 },
      { tid: 3, name: 'V8Worker', cpuNs: 1e6, runs: 4 },
      { tid: 4, name: 'V8Worker', cpuNs: 2e6, runs: 2 },
    ];
    assert.deepEqual(threadCpuByName(before, after, 10), [
      { name: 'node (main)', threads: 1, cpuMsPerS: 2, wakeupsPerS: 2 },
      { name: 'V8Worker', threads: 3, cpuMsPerS: 0.4, wakeupsPerS: 0.4 },
    ]);
  });
});
