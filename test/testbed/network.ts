// The pod network: a network namespace that owns every pod IP (198.18.0.0/16 is "local" on its loopback,
// so one server listening on 0.0.0.0 answers for all pod IPs), joined to the host by a veth pair.
// Our host routes carry protocol number 199, which is how `down` recognises them even with no state file.
import { NETWORK } from './config.js';
import { run } from './commands.js';

/** Routing protocol number that marks the test bed's host routes (`ip route show proto 199`). */
export const ROUTE_PROTO = '199';

export interface NetworkNames {
  netns: string;
  vethHost: string;
  vethPeer: string;
}

const ip = (args: string[]) => run('ip', args);
const gone = (stderr: string) =>
  /Cannot find device|No such process|No such file|does not exist|not found/i.test(stderr);

export async function setupNetwork(n: NetworkNames): Promise<void> {
  await assertRangeFree();
  await ip(['netns', 'add', n.netns]);
  await ip(['link', 'add', n.vethHost, 'type', 'veth', 'peer', 'name', n.vethPeer, 'netns', n.netns]);
  await ip(['addr', 'add', `${NETWORK.hostAddress}/${NETWORK.linkPrefix}`, 'dev', n.vethHost]);
  await ip(['link', 'set', n.vethHost, 'up']);
  await ip(['-n', n.netns, 'addr', 'add', `${NETWORK.netnsAddress}/${NETWORK.linkPrefix}`, 'dev', n.vethPeer]);
  await ip(['-n', n.netns, 'link', 'set', n.vethPeer, 'up']);
  await ip(['-n', n.netns, 'link', 'set', 'lo', 'up']);
  // "AnyIP": every pod IP is a local address inside the namespace.
  await ip(['-n', n.netns, 'route', 'add', 'local', NETWORK.podCidr, 'dev', 'lo']);
  // The guard first, so there is never a moment where the range could leak through the default route.
  await ip(['route', 'add', 'unreachable', NETWORK.guardCidr, 'proto', ROUTE_PROTO]);
  await ip(['route', 'add', NETWORK.podCidr, 'via', NETWORK.netnsAddress, 'dev', n.vethHost, 'proto', ROUTE_PROTO]);
}

/** Fails with a clear message when another set-up (not ours) already routes the pod range. */
async function assertRangeFree(): Promise<void> {
  const foreign = (await ip(['-4', 'route', 'show', 'match', '198.18.0.1']))
    ?.split('\n')
    .filter((l) => l.trim() && !l.startsWith('default') && !l.includes(`proto ${ROUTE_PROTO}`));
  if (foreign?.length) {
    throw new Error(`198.18.0.0/15 is already routed on this host (${foreign.join('; ')}); ` +
      'another test bed or tool uses the range');
  }
}

/** Removes everything with our names; each step tolerates "already gone", so it also cleans up after a crash. */
export async function teardownNetwork(n: NetworkNames): Promise<string[]> {
  const removed: string[] = [];
  const routes = (await ip(['-4', 'route', 'show', 'proto', ROUTE_PROTO])) ?? '';
  for (const line of routes.split('\n').map((l) => l.trim()).filter(Boolean)) {
    // `show proto N` omits the proto field; adding it back makes the delete match only our route.
    const ok = await run('ip', ['route', 'del', ...line.split(/\s+/), 'proto', ROUTE_PROTO], { allowFailure: gone });
    if (ok !== null) removed.push(`route ${line}`);
  }
  if ((await run('ip', ['link', 'del', n.vethHost], { allowFailure: gone })) !== null) removed.push(`veth ${n.vethHost}`);
  if ((await run('ip', ['netns', 'del', n.netns], { allowFailure: gone })) !== null) removed.push(`netns ${n.netns}`);
  return removed;
}

export async function netnsExists(name: string): Promise<boolean> {
  const out = (await ip(['netns', 'list'])) ?? '';
  return out.split('\n').some((l) => l.split(' ')[0] === name);
}

/** Pids of processes inside our namespace: only the fake-pods server should ever be there. */
export async function netnsPids(name: string): Promise<number[]> {
  if (!(await netnsExists(name))) return [];
  const out = (await run('ip', ['netns', 'pids', name], { allowFailure: gone })) ?? '';
  return out.split('\n').map((l) => Number(l.trim())).filter((p) => p > 0);
}

/**
 * A further pod range (cluster 2's) on a running bed: local inside the namespace (so the fake-pods
 * server answers on it too) and routed to the namespace from the host, with our route protocol (a full
 * `down` removes it with the rest). Idempotent.
 */
export async function addPodRange(n: NetworkNames, cidr: string): Promise<void> {
  const inNetns = (await ip(['-n', n.netns, 'route', 'show', 'table', 'local', 'type', 'local', cidr])) ?? '';
  if (!inNetns.trim()) await ip(['-n', n.netns, 'route', 'add', 'local', cidr, 'dev', 'lo']);
  const onHost = (await ip(['route', 'show', cidr, 'proto', ROUTE_PROTO])) ?? '';
  if (!onHost.trim()) await ip(['route', 'add', cidr, 'via', NETWORK.netnsAddress, 'dev', n.vethHost, 'proto', ROUTE_PROTO]);
}

/** Undoes addPodRange (tolerates "already gone"); returns what it removed. */
export async function removePodRange(n: NetworkNames, cidr: string): Promise<string[]> {
  const removed: string[] = [];
  if ((await run('ip', ['route', 'del', cidr, 'via', NETWORK.netnsAddress, 'dev', n.vethHost, 'proto', ROUTE_PROTO], { allowFailure: gone })) !== null) {
    removed.push(`route ${cidr} via ${NETWORK.netnsAddress}`);
  }
  if (await netnsExists(n.netns) &&
    (await run('ip', ['-n', n.netns, 'route', 'del', 'local', cidr, 'dev', 'lo', 'table', 'local'], { allowFailure: gone })) !== null) {
    removed.push(`local route ${cidr} in netns ${n.netns}`);
  }
  return removed;
}
