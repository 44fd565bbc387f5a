// state.json in the work dir: what `up` created, so `down` and `status` can find it again.
// Written after every step (atomically, serialised), so a crash mid-`up` still leaves a usable record.
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { BinaryPaths } from './binaries.js';
import type { Cluster2Ports, TestbedConfig } from './config.js';
import type { NetworkNames } from './network.js';
import type { ProcessRecord } from './processes.js';
import type { TraefikState } from './traefik.js';

export interface TestbedState {
  version: 1;
  createdAt: string;
  /** Fully up (nodes Ready, default ServiceAccount present). */
  ready: boolean;
  /** Started by the test harness (useTestbed), which then tears it down when its last user releases it. */
  ownedByHarness: boolean;
  config: TestbedConfig;
  bins: BinaryPaths;
  apiserverUrl: string;
  kubeconfig: string;
  envFile: string;
  fakePodsSocket: string;
  network?: NetworkNames;
  processes: ProcessRecord[];
  nodes: string[];
  /** Added by `up` (also to a bed that was up before Traefik was part of it). */
  traefik?: TraefikState;
  /** Milliseconds per `up` step, for docs/testbed.md. */
  timings: Record<string, number>;
  /** The second cluster (`up --clusters 2`); its processes are in `processes` too (names `c2-…`). */
  cluster2?: Cluster2State;
}

export interface Cluster2State {
  name: 'cluster-2';
  /** Fully up (nodes Ready, default ServiceAccount present, fake-pods controller following it). */
  ready: boolean;
  createdAt: string;
  /** `.testbed/cluster-2/` */
  dir: string;
  apiserverUrl: string;
  /** Admin kubeconfig (own CA, certificates inlined). */
  kubeconfig: string;
  pki: string;
  ports: Cluster2Ports;
  podCidr: string;
  serviceCidr: string;
  etcdPrefix: string;
  nodes: string[];
  timings: Record<string, number>;
}

export async function readState(file: string): Promise<TestbedState | undefined> {
  try {
    const s = JSON.parse(await readFile(file, 'utf8')) as TestbedState;
    return s.version === 1 ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Serialises writes of one state object; every write stores its latest content. */
export class StateWriter {
  private queue: Promise<void> = Promise.resolve();
  constructor(private readonly file: string, readonly state: TestbedState) {}

  save(): Promise<void> {
    this.queue = this.queue.then(async () => {
      const tmp = `${this.file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(this.state, null, 2) + '\n');
      await rename(tmp, this.file);
    });
    return this.queue;
  }
}
