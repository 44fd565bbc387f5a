import type { DeploymentRecord, DeploymentStatus, DeploymentStep, LivePointer } from '../domain/deployment.js';
import type { Descriptor } from '../domain/types.js';
import type { AuditEntry } from '../store/audit.js';
import type { KvEntry, KvStore } from '../store/kv.js';
import { keys } from '../store/keys.js';
import { parseRecord } from '../store/json.js';
import { ALL_NAMESPACES, type Caller } from '../auth/caller.js';

/**
 * The overview of every app a caller may see (the UI's first page and its live updates): one
 * summary per app, built from a few etcd range reads rather than one request per app.
 */

export interface DeploymentSummary {
  id: string;
  version: string;
  status: DeploymentStatus;
  step: DeploymentStep;
  created: string;
  finished?: string;
  failureReason?: string;
  /** Who asked for it (from the audit trail); absent when the entry is gone or not written yet. */
  requestedBy?: string;
}

export interface AppSummary {
  namespace: string;
  appName: string;
  /** The DEPLOYED version traffic goes to, if any. */
  live?: { deploymentId: string; version: string };
  /** The newest deployment record, whatever its status. */
  latest?: DeploymentSummary;
  /** Where the app answers: from the live deployment's descriptor, else the newest descriptor. */
  urls: string[];
  descriptorCount: number;
  /**
   * The highest etcd revision this summary was read from: a client that gets summaries of the
   * same app out of order keeps the one with the higher revision.
   */
  revision: string;
  /** The app no longer has descriptors or records (sent by the live feed only). */
  removed?: boolean;
  /** With several clusters: what runs and what was deployed last in each (docs/clusters.md). */
  clusters?: Array<{ cluster: string; live?: { deploymentId: string; version: string }; latest?: DeploymentSummary }>;
}

/** Another cluster's records, for the overview (the default cluster's are in the root store). */
export interface OverviewCluster {
  cluster: string;
  kv: KvStore;
}

export interface OverviewCaller {
  identity: string;
  auth: string;
  /** "*" (administrator) or the namespaces the caller may use. */
  namespaces: '*' | string[];
}

export interface Overview {
  caller: OverviewCaller;
  namespaces: Array<{ namespace: string; apps: AppSummary[] }>;
  /** Store revision the overview was read at (not older than any summary in it). */
  revision: string;
}

export function describeCaller(caller: Caller): OverviewCaller {
  return {
    identity: caller.identity,
    auth: caller.method,
    namespaces: caller.namespaces === ALL_NAMESPACES ? ALL_NAMESPACES : [...caller.namespaces].sort(),
  };
}

/** Audit entries read per namespace to name who started each deployment (the newest ones). */
const AUDIT_LOOKBACK = 1000;

const maxRevision = (a: string, b: string) => (BigInt(a) >= BigInt(b) ? a : b);

/** `http(s)://host/` of a descriptor's frontend host (https when it names a TLS secret). */
export function urlsOf(descriptor: Pick<Descriptor, 'frontend' | 'tlsSecretName'> | undefined): string[] {
  if (!descriptor?.frontend) return [];
  return [`${descriptor.tlsSecretName ? 'https' : 'http'}://${descriptor.frontend}/`];
}

/** Splits `prefix<ns>/<rest>` keys; entries that do not parse are skipped (reported as unreadable elsewhere). */
function parseEntries(entries: KvEntry[], prefix: string): Array<{ ns: string; rest: string; entry: KvEntry }> {
  return entries.map((entry) => {
    const tail = entry.key.slice(prefix.length);
    const slash = tail.indexOf('/');
    return { ns: tail.slice(0, slash), rest: tail.slice(slash + 1), entry };
  });
}

function tryParse<T>(entry: KvEntry): T | undefined {
  try {
    return parseRecord<T>(entry);
  } catch {
    return undefined;
  }
}

interface AppAccumulator {
  namespace: string;
  appName: string;
  descriptors: Array<{ value: Descriptor; revision: string }>;
  /** Newest record id by `created` (from the per-app index). */
  newest?: { id: string; created: string; revision: string };
  live?: LivePointer & { revision: string };
}

export interface OverviewQuery {
  /** Only these namespaces; undefined: every namespace that has data (administrators). */
  namespaces?: readonly string[];
  /** Only this app (the live feed recomputes one app at a time). */
  appName?: string;
}

/**
 * Reads the summaries. For an administrator without a namespace filter the key space is read
 * across namespaces (three range reads, then one multi-get of the records involved); otherwise
 * per namespace. Unreadable values are left out, as the list routes do.
 */
export async function readOverview(kv: KvStore, query: OverviewQuery, defaultCluster = 'default', others: readonly OverviewCluster[] = []): Promise<{ apps: AppSummary[]; revision: string }> {
  const scopes = query.namespaces === undefined ? [''] : query.namespaces.map((ns) => `${ns}/`);
  const wanted = (appName: string) => query.appName === undefined || appName === query.appName;
  const descriptorsByApp = new Map<string, { namespace: string; appName: string; descriptors: Array<{ value: Descriptor; revision: string }> }>();
  const [descriptorLists, own, ...theirs] = await Promise.all([
    Promise.all(scopes.map((scope) => kv.list(`descriptors/${scope}`))),
    readClusterState(kv, scopes, query),
    ...others.map((o) => readClusterState(o.kv, scopes, query)),
  ]);
  let revision = [own.revision, ...theirs.map((t) => t.revision)].reduce(maxRevision, '0');
  for (const list of descriptorLists) {
    revision = maxRevision(revision, list.revision);
    for (const { ns, entry } of parseEntries(list.entries, 'descriptors/')) {
      const value = tryParse<Descriptor>(entry);
      if (!value || !wanted(value.appName)) continue;
      const key = `${ns}/${value.appName}`;
      let app = descriptorsByApp.get(key);
      if (!app) descriptorsByApp.set(key, app = { namespace: ns, appName: value.appName, descriptors: [] });
      app.descriptors.push({ value, revision: entry.modRevision });
    }
  }
  const appKeys = new Set([...descriptorsByApp.keys(), ...own.apps.keys(), ...theirs.flatMap((t) => [...t.apps.keys()])]);
  const namespaces = [...new Set([...appKeys].map((k) => k.slice(0, k.indexOf('/'))))];
  const requesters = await requestersByDeployment(kv, namespaces, query.appName);

  const summaries = [...appKeys].map((key): AppSummary => {
    const slash = key.indexOf('/');
    const namespace = key.slice(0, slash);
    const appName = key.slice(slash + 1);
    const descriptors = descriptorsByApp.get(key)?.descriptors ?? [];
    const states = [{ cluster: defaultCluster, state: own.apps.get(key) }, ...others.map((o, i) => ({ cluster: o.cluster, state: theirs[i]!.apps.get(key) }))];
    // The default cluster's state first; an app that runs only elsewhere shows that cluster's.
    const main = states.find((x) => x.state?.live) ?? states.find((x) => x.state?.latest);
    const latestRecord = main?.state?.latest;
    const live = main?.state?.live;
    const newestDescriptor = descriptors.reduce<Descriptor | undefined>((best, d) => (!best || d.value.lastModified > best.lastModified ? d.value : best), undefined);
    // The live record's descriptor copy says where traffic goes now; fall back to the newest descriptor.
    const liveDescriptor = live && latestRecord?.value.id === live.deploymentId ? latestRecord.value.descriptor : undefined;
    let summaryRevision = descriptors.reduce((r, d) => maxRevision(r, d.revision), '0');
    for (const { state } of states) {
      if (state?.latest) summaryRevision = maxRevision(summaryRevision, state.latest.revision);
      if (state?.live) summaryRevision = maxRevision(summaryRevision, state.live.revision);
    }
    const summarise = (r: DeploymentRecord): DeploymentSummary => {
      const requestedBy = requesters.get(`${r.namespace}/${r.id}`);
      return {
        id: r.id, version: r.version, status: r.status, step: r.step, created: r.created,
        ...(r.times.finished ? { finished: r.times.finished } : {}),
        ...(r.failureReason ? { failureReason: r.failureReason } : {}),
        ...(requestedBy ? { requestedBy } : {}),
      };
    };
    const r = latestRecord?.value;
    return {
      namespace,
      appName,
      ...(live ? { live: { deploymentId: live.deploymentId, version: live.version } } : {}),
      ...(r ? { latest: summarise(r) } : {}),
      urls: urlsOf(liveDescriptor ?? newestDescriptor ?? r?.descriptor),
      descriptorCount: descriptors.length,
      revision: summaryRevision,
      ...(others.length > 0 ? {
        clusters: states.filter((x) => x.state).map(({ cluster, state }) => ({
          cluster,
          ...(state!.live ? { live: { deploymentId: state!.live.deploymentId, version: state!.live.version } } : {}),
          ...(state!.latest ? { latest: summarise(state!.latest.value) } : {}),
        })),
      } : {}),
    };
  });
  summaries.sort((x, y) => x.namespace.localeCompare(y.namespace) || x.appName.localeCompare(y.appName));
  return { apps: summaries, revision };
}

interface ClusterAppState {
  live?: LivePointer & { revision: string };
  latest?: { value: DeploymentRecord; revision: string };
}

/** One cluster's live pointers and newest records per app: two range reads per scope, then one multi-get. */
async function readClusterState(kv: KvStore, scopes: string[], query: OverviewQuery): Promise<{ apps: Map<string, ClusterAppState>; revision: string }> {
  const wanted = (appName: string) => query.appName === undefined || appName === query.appName;
  const newest = new Map<string, { id: string; created: string; revision: string }>();
  const apps = new Map<string, ClusterAppState>();
  let revision = '0';
  await Promise.all(scopes.map(async (scope) => {
    const appScope = scope !== '' && query.appName !== undefined ? `${scope}${query.appName}/` : scope;
    const [index, live] = await Promise.all([
      kv.list(`app-records/${appScope}`),
      // One key per app: a namespace's pointers are a small read (an app name may prefix another, hence not `live/ns/app`).
      kv.list(`live/${scope}`),
    ]);
    revision = [index.revision, live.revision].reduce(maxRevision, revision);
    for (const { ns, rest, entry } of parseEntries(index.entries, 'app-records/')) {
      const [appName, id] = rest.split('/');
      if (!appName || !id || !wanted(appName)) continue;
      const key = `${ns}/${appName}`;
      const seen = newest.get(key);
      // The index value is the record's `created`; ties (same millisecond) go to the later write.
      if (!seen || entry.value > seen.created || (entry.value === seen.created && BigInt(entry.createRevision) > BigInt(seen.revision))) {
        newest.set(key, { id, created: entry.value, revision: entry.createRevision });
      }
    }
    for (const { ns, rest, entry } of parseEntries(live.entries, 'live/')) {
      const value = tryParse<LivePointer>(entry);
      if (!value || !wanted(rest)) continue;
      apps.set(`${ns}/${rest}`, { ...apps.get(`${ns}/${rest}`), live: { ...value, revision: entry.modRevision } });
    }
  }));
  const wantedRecords = [...newest.entries()];
  const found = wantedRecords.length > 0 ? await kv.getMany(wantedRecords.map(([key, n]) => keys.deployment(key.slice(0, key.indexOf('/')), n.id))) : [];
  found.forEach((entry, i) => {
    const value = entry && tryParse<DeploymentRecord>(entry);
    if (!entry || !value) return;
    const key = wantedRecords[i]![0];
    apps.set(key, { ...apps.get(key), latest: { value, revision: entry.modRevision } });
  });
  return { apps, revision };
}

/** deployment (`ns/id`) → identity of whoever started it, from the newest audit entries. */
async function requestersByDeployment(kv: KvStore, namespaces: string[], appName: string | undefined): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await Promise.all(namespaces.map(async (ns) => {
    const { entries } = await kv.list(keys.auditOf(ns), { sortBy: 'create', order: 'desc', limit: appName === undefined ? AUDIT_LOOKBACK : 200 });
    for (const e of entries) {
      const entry = tryParse<AuditEntry>(e);
      const id = entry?.target?.deploymentId;
      if (!entry || !id || entry.outcome !== 'success' || entry.method === 'DELETE') continue;
      // Newest first: the first success naming a deployment is the call that created it.
      if (!out.has(`${ns}/${id}`)) out.set(`${ns}/${id}`, entry.actor.identity);
    }
  }));
  return out;
}

/** The default cluster's name and the other clusters' records (absent: one cluster). */
export interface OverviewClusters {
  defaultCluster?: string;
  others?: readonly OverviewCluster[];
}

/** Groups summaries by namespace; a caller's granted namespaces appear even when empty. */
export function groupByNamespace(apps: AppSummary[], alsoNamespaces: readonly string[] = []): Overview['namespaces'] {
  const groups = new Map<string, AppSummary[]>();
  for (const ns of alsoNamespaces) groups.set(ns, []);
  for (const app of apps) {
    let list = groups.get(app.namespace);
    if (!list) groups.set(app.namespace, list = []);
    list.push(app);
  }
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([namespace, list]) => ({ namespace, apps: list }));
}

/** The overview a caller may see: every namespace for administrators, else its own. */
export async function overviewFor(kv: KvStore, caller: Caller, clusters: OverviewClusters = {}): Promise<Overview> {
  // An environment-scoped grant ("shop@staging") lets the caller see the namespace.
  const granted = caller.namespaces === ALL_NAMESPACES ? undefined : [...new Set([...caller.namespaces].map((g) => g.split('@')[0]!))].sort();
  const { apps, revision } = await readOverview(kv, granted === undefined ? {} : { namespaces: granted }, clusters.defaultCluster, clusters.others);
  return { caller: describeCaller(caller), namespaces: groupByNamespace(apps, granted ?? []), revision };
}
