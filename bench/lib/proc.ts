import { readdirSync, readFileSync } from 'node:fs';

/** CPU time and memory of a process from /proc (Linux), for the benchmark tables. */
export interface ProcSample {
  cpuSeconds: number;
  rssMiB: number;
  peakRssMiB: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export function sampleProcess(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { cpuSeconds: (utime + stime) / CLOCK_TICKS, rssMiB: kb('VmRSS') / 1024, peakRssMiB: kb('VmHWM') / 1024 };
}

/** One thread of a process: its name (/proc/<pid>/task/<tid>/comm) and how much it ran. */
export interface ThreadSample {
  tid: number;
  name: string;
  /** CPU time in ns (schedstat: exact, unlike the 10 ms ticks of stat). */
  cpuNs: number;
  /** Times the thread was put on a CPU (schedstat's timeslices): about its wakeups. */
  runs: number;
}

export function sampleThreads(pid: number): ThreadSample[] {
  const threads: ThreadSample[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      // Other threads may share the main thread's name ("node"): tell the main one apart.
      const name = Number(tid) === pid ? `${comm} (main)` : comm;
      const [cpuNs, , runs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
      threads.push({ tid: Number(tid), name, cpuNs: cpuNs!, runs: runs! });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

/**
 * CPU (ms per s) and wakeups (per s) of each thread between two samples, summed by thread name
 * (main thread "node", V8's "V8 DefaultWorke", libuv's "libuv-worker", …), busiest first.
 */
export function threadCpuByName(before: ThreadSample[], after: ThreadSample[], seconds: number): Array<{ name: string; threads: number; cpuMsPerS: number; wakeupsPerS: number }> {
  const earlier = new Map(before.map((t) => [t.tid, t]));
  const byName = new Map<string, { name: string; threads: number; cpuMsPerS: number; wakeupsPerS: number }>();
  for (const t of after) {
    const b = earlier.get(t.tid);
    const e = byName.get(t.name) ?? { name: t.name, threads: 0, cpuMsPerS: 0, wakeupsPerS: 0 };
    e.threads += 1;
    e.cpuMsPerS += (t.cpuNs - (b?.cpuNs ?? 0)) / 1e6 / seconds;
    e.wakeupsPerS += (t.runs - (b?.runs ?? 0)) / seconds;
    byName.set(t.name, e);
  }
  return [...byName.values()].sort((a, b) => b.cpuMsPerS - a.cpuMsPerS);
}
