/**
 * The pure half of the invariant observer (test/support/invariants.ts): a model of one namespace
 * that takes timestamped facts — deployment-record changes per etcd revision, Kubernetes object
 * changes, re-list snapshots, watch gaps, clock ticks — and keeps every interval during which
 * invariant I1 or I4 did not hold. No I/O and no timers: time only moves through the `at` of the
 * facts, so tests can step it by hand. The rules and windows are described in docs/testbed.md
 * ("Invariant observer").
 */

export type Invariant = 'I1' | 'I4';

/** Rule names, as they appear in violations and failure messages. */
export const RULES = {
  /** I1: a pointer started pointing at a version that was not ready. */
  switchToUnready: 'switch-to-unready',
  /** I1: a pointer points at a version without a ready endpoint for longer than settleMs. */
  noReadyEndpoints: 'no-ready-endpoints',
  /** I4: more than one DEPLOYED record of an app at one etcd revision. */
  oneDeployedRecord: 'one-deployed-record',
  /** I4: a pointer disagrees with the records for longer than settleMs. */
  trafficFollowsRecord: 'traffic-follows-record',
} as const;

export interface Violation {
  invariant: Invariant;
  rule: string;
  namespace: string;
  app: string;
  since: Date;
  /** Absent while the violation is still going on. */
  until?: Date;
  detail: string;
}

export interface TimelineEntry {
  at: Date;
  /** What the entry is about: a source (records, Service, Pod, …) or `violation`. */
  source: string;
  text: string;
}

// ---- Kubernetes objects, as far as the model reads them ----

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string | Date;
}

export interface KubeObject {
  metadata?: ObjectMeta;
  // The model reads a few fields of spec/status; their shapes differ per kind.
  spec?: any;
  status?: any;
  [field: string]: unknown;
}

const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
const MANAGED_BY_VALUE = 'cutover';
const VERSION_ANNOTATION = 'cutover.io/version';
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * One kind of traffic pointer: an object `{app}` that says which version of the app receives
 * traffic. Adding a kind (e.g. a Gateway API route) is one entry in POINTER_KINDS.
 */
export interface PointerKind {
  /** Kind name; also the source name in facts, stats and the timeline. */
  kind: string;
  /** Where it is listed and watched: API group ('' = core), version, resource (plural). */
  group: string;
  version: string;
  plural: string;
  /** The app this object is the pointer of, or undefined when it is not a pointer. */
  appOf(obj: KubeObject): string | undefined;
  /** The version it points at; null = none. */
  target(obj: KubeObject, app: string): string | null;
}

/** `{app}-{version}` → version; else the object's `cutover.io/version` annotation; else none. */
function versionFromBackend(app: string, backend: unknown, obj: KubeObject): string | null {
  if (typeof backend === 'string' && backend.startsWith(`${app}-`) && backend.length > app.length + 1) return backend.slice(app.length + 1);
  return obj.metadata?.annotations?.[VERSION_ANNOTATION] ?? null;
}

/** The object is named like its app (labels `app`, when present, agree) and cutover manages it. */
function appOfManaged(obj: KubeObject, alsoPersistent: boolean): string | undefined {
  const name = obj.metadata?.name;
  const labels = obj.metadata?.labels ?? {};
  if (!name || (labels['app'] !== undefined && labels['app'] !== name)) return undefined;
  if (labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE || (alsoPersistent && labels['persistent'] === 'true')) return name;
  return undefined;
}

export const SERVICE_POINTER: PointerKind = {
  kind: 'Service', group: '', version: 'v1', plural: 'services',
  // The stable Service `{app}`; versioned Services `{app}-{v}` carry app={app} and so never match.
  appOf: (obj) => appOfManaged(obj, true),
  // A selector without `version` (the first deployment's placeholder) selects no version.
  target: (obj) => {
    const v = obj.spec?.selector?.version;
    return typeof v === 'string' ? v : null;
  },
};

export const INGRESS_POINTER: PointerKind = {
  kind: 'Ingress', group: 'networking.k8s.io', version: 'v1', plural: 'ingresses',
  // `{app}-www-redirect` routes to the stable Service and is named differently: not a pointer.
  appOf: (obj) => appOfManaged(obj, false),
  target: (obj, app) => versionFromBackend(app, obj.spec?.rules?.[0]?.http?.paths?.[0]?.backend?.service?.name, obj),
};

export const HTTPROUTE_POINTER: PointerKind = {
  kind: 'HTTPRoute', group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes',
  appOf: (obj) => appOfManaged(obj, false),
  target: (obj, app) => versionFromBackend(app, obj.spec?.rules?.[0]?.backendRefs?.[0]?.name, obj),
};

/** Every pointer kind the observer knows; a kind the API server does not serve is not watched. */
export const POINTER_KINDS: readonly PointerKind[] = [SERVICE_POINTER, INGRESS_POINTER, HTTPROUTE_POINTER];

/** The evidence kinds (not pointers). */
export const POD = 'Pod';
export const ENDPOINT_SLICE = 'EndpointSlice';
export const RECORDS = 'records';

// ---- facts ----

export interface RecordChange {
  /** Key relative to cutover's prefix, e.g. `deployments/shop/0b6c…`. */
  key: string;
  /** The new value; undefined = the key was deleted. */
  value?: string;
}

export type Fact =
  /** All changes of one etcd revision (a transaction writing two records is one fact). */
  | { type: 'records'; at: number; revision: string; changes: RecordChange[] }
  /** Every key under `deployments/{namespace}/` at one revision (initial list, re-list). */
  | { type: 'records-snapshot'; at: number; revision: string; entries: Array<{ key: string; value: string }> }
  /** A watch event of a Kubernetes object (`kind` = a pointer kind, Pod or EndpointSlice). */
  | { type: 'object'; at: number; kind: string; event: 'upsert' | 'delete'; object: KubeObject }
  /** Every object of a kind in the namespace (initial list, re-list after a watch gap). */
  | { type: 'snapshot'; at: number; kind: string; objects: KubeObject[] }
  /** A source lost its watch: its state may be stale until its next snapshot. */
  | { type: 'gap'; at: number; source: string; reason: string }
  /** Time passed (settle windows end on ticks as well as on facts). */
  | { type: 'tick'; at: number };

// ---- model state ----

export type RecordStatus = 'DEPLOYING' | 'DEPLOYED' | 'UNDEPLOYING' | 'UNDEPLOYED' | 'FAILURE';
const STATUSES = new Set<string>(['DEPLOYING', 'DEPLOYED', 'UNDEPLOYING', 'UNDEPLOYED', 'FAILURE']);
/** Steps in which a record may legitimately have traffic split between versions. */
const SWITCHING_STEPS = new Set(['switching-traffic', 'rolling-back']);

export interface RecordState {
  id: string;
  appName: string;
  version: string;
  status: RecordStatus;
  step: string;
}

interface PointerState {
  kind: string;
  app: string;
  target: string | null;
}

interface PodState {
  app: string | undefined;
  version: string | undefined;
  ready: boolean;
  /** Terminating (deletionTimestamp) or finished (Succeeded/Failed): not counted. */
  gone: boolean;
}

interface SliceState {
  service: string | undefined;
  readyEndpoints: number;
}

interface Condition {
  invariant: Invariant;
  rule: string;
  app: string;
  detail: string;
  /** Sources whose state the condition is computed from: it is confirmed only while they are synced. */
  deps: string[];
  windowMs: number;
}

interface Tracked extends Condition {
  key: string;
  /** When the condition was first seen to hold (this time around). */
  start: number;
  violation?: Violation;
}

interface SwitchSuspicion {
  kind: string;
  app: string;
  version: string;
  at: number;
  /** The pointer left the version (changed or deleted) at this time. */
  leftAt?: number;
  detail: string;
  violation?: Violation;
}

export interface VersionEvidence {
  /** Pods of the version that are not terminating or finished. */
  pods: number;
  readyPods: number;
  /** Endpoints with conditions.ready === true in the EndpointSlices of `{app}-{version}`. */
  readyEndpoints: number;
}

export interface ModelStats {
  /** Facts per source (records, Service, Ingress, Pod, EndpointSlice, …). */
  events: Record<string, number>;
  snapshots: number;
  gaps: number;
  /** Values under deployments/{namespace}/ that were not a readable record. */
  unreadable: number;
  /** Timeline entries dropped because the timeline is bounded. */
  timelineDropped: number;
}

export interface InvariantModelOptions {
  namespace: string;
  /** How long a disagreement (I1 endpoints, I4 traffic) must last to count. Default 1000 ms. */
  settleMs?: number;
  /** After a switch, how long late pod/endpoint events may still show the version ready. Default 500 ms. */
  switchSettleMs?: number;
  /** The pointer kinds that are watched (default: all of POINTER_KINDS). */
  pointerKinds?: readonly PointerKind[];
  /** Bound of the timeline (oldest entries are dropped). Default 20 000. */
  maxTimeline?: number;
}

const key2 = (a: string, b: string) => `${a}\u0000${b}`;

/**
 * The evaluator. Every fact updates the state and then re-evaluates all rules at the fact's time;
 * conditions that hold are tracked with the time they started and become violations once they
 * have held for their window (0 for one-deployed-record) while every source they depend on was
 * synced (watching, not in a gap).
 */
export class InvariantModel {
  readonly namespace: string;
  readonly settleMs: number;
  readonly switchSettleMs: number;
  readonly pointerKinds: readonly PointerKind[];
  private readonly maxTimeline: number;

  private readonly records = new Map<string, RecordState>();
  private recordsRevision = '0';
  private readonly pointers = new Map<string, PointerState>();
  private readonly pods = new Map<string, PodState>();
  private readonly slices = new Map<string, SliceState>();
  /** Source → time it became synced; absent = never synced or in a gap. */
  private readonly syncedSince = new Map<string, number>();
  private readonly everSynced = new Set<string>();
  private readonly tracked = new Map<string, Tracked>();
  private switches: SwitchSuspicion[] = [];
  private readonly done: Violation[] = [];
  private readonly log: TimelineEntry[] = [];
  private readonly evidenceLog = new Map<string, string>();
  private readonly counters: ModelStats = { events: {}, snapshots: 0, gaps: 0, unreadable: 0, timelineDropped: 0 };
  private lastAt = 0;

  constructor(options: InvariantModelOptions) {
    this.namespace = options.namespace;
    this.settleMs = options.settleMs ?? 1000;
    this.switchSettleMs = options.switchSettleMs ?? 500;
    this.pointerKinds = options.pointerKinds ?? POINTER_KINDS;
    this.maxTimeline = options.maxTimeline ?? 20_000;
  }

  /** The sources the model waits for: records, the pointer kinds, Pod and EndpointSlice. */
  get sources(): string[] {
    return [RECORDS, ...this.pointerKinds.map((k) => k.kind), POD, ENDPOINT_SLICE];
  }

  apply(fact: Fact): void {
    this.lastAt = Math.max(this.lastAt, fact.at);
    switch (fact.type) {
      case 'records':
        this.count(RECORDS);
        for (const c of fact.changes) this.applyRecord(fact.at, c.key, c.value, fact.revision);
        this.recordsRevision = fact.revision;
        break;
      case 'records-snapshot':
        this.counters.snapshots++;
        this.applyRecordsSnapshot(fact.at, fact.revision, fact.entries);
        break;
      case 'object':
        this.count(fact.kind);
        this.applyObject(fact.at, fact.kind, fact.event, fact.object, 'watch');
        break;
      case 'snapshot':
        this.counters.snapshots++;
        this.applySnapshot(fact.at, fact.kind, fact.objects);
        break;
      case 'gap':
        this.counters.gaps++;
        if (this.syncedSince.delete(fact.source)) this.note(fact.at, fact.source, `watch gap: ${fact.reason}`);
        break;
      case 'tick':
        break;
    }
    this.evaluate(fact.at);
  }

  /** Every violation so far, oldest first; open ones have no `until`. */
  violations(): Violation[] {
    const open = [...this.tracked.values()].flatMap((t) => (t.violation ? [t.violation] : []));
    const openSwitches = this.switches.flatMap((s) => (s.violation ? [s.violation] : []));
    return [...this.done, ...open, ...openSwitches].map((v) => ({ ...v })).sort((a, b) => a.since.getTime() - b.since.getTime());
  }

  /** Conditions that hold but have not lasted their window yet (for stop(): wait them out). */
  pending(): number {
    return [...this.tracked.values()].filter((t) => !t.violation).length + this.switches.filter((s) => !s.violation).length;
  }

  /** When the next window ends (call apply({type:'tick'}) then); undefined = nothing pending. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    const consider = (t: number | undefined) => {
      if (t !== undefined && (next === undefined || t < next)) next = t;
    };
    for (const t of this.tracked.values()) if (!t.violation) consider(this.deadlineOf(t.start, t.deps, t.windowMs));
    for (const s of this.switches) if (!s.violation) consider(this.deadlineOf(s.at, this.switchDeps(s.kind), this.switchSettleMs));
    return next;
  }

  timeline(): TimelineEntry[] {
    return this.log.map((e) => ({ ...e }));
  }

  stats(): ModelStats {
    return { ...this.counters, events: { ...this.counters.events } };
  }

  /** What the model knows about one version (for tests and messages). */
  evidence(app: string, version: string): VersionEvidence {
    let pods = 0;
    let readyPods = 0;
    for (const p of this.pods.values()) {
      if (p.gone || p.app !== app || p.version !== version) continue;
      pods++;
      if (p.ready) readyPods++;
    }
    return { pods, readyPods, readyEndpoints: this.readyEndpoints(`${app}-${version}`) };
  }

  /** Where each pointer of the namespace points (kind/app → version or null). */
  pointerTargets(): Record<string, string | null> {
    return Object.fromEntries([...this.pointers.entries()].map(([k, p]) => [k.replace('\u0000', '/'), p.target]));
  }

  isSynced(source: string): boolean {
    return this.syncedSince.has(source);
  }

  // ---- records ----

  private recordKeyPrefix(): string {
    return `deployments/${this.namespace}/`;
  }

  /** The record at `key`, undefined for a key that is not a record key, null for an unreadable value. */
  private parseRecord(key: string, value: string): RecordState | null | undefined {
    const prefix = this.recordKeyPrefix();
    if (!key.startsWith(prefix) || key.length === prefix.length || key.slice(prefix.length).includes('/')) return undefined;
    try {
      const r = JSON.parse(value) as Record<string, unknown>;
      if (typeof r !== 'object' || r === null) return null;
      const { id, appName, version, status, step } = r;
      if (typeof id !== 'string' || typeof appName !== 'string' || typeof version !== 'string' || typeof status !== 'string' || !STATUSES.has(status) || typeof step !== 'string') return null;
      return { id, appName, version, status: status as RecordStatus, step };
    } catch {
      return null;
    }
  }

  private applyRecord(at: number, key: string, value: string | undefined, revision: string): void {
    if (value === undefined) {
      const before = this.records.get(key);
      if (before && this.records.delete(key)) this.note(at, RECORDS, `${describeRecord(before)} deleted (rev ${revision})`);
      return;
    }
    const parsed = this.parseRecord(key, value);
    if (parsed === undefined) return;
    if (parsed === null) {
      this.counters.unreadable++;
      const before = this.records.get(key);
      this.records.delete(key);
      this.note(at, RECORDS, `unreadable value at ${key} (rev ${revision})${before ? `; ${describeRecord(before)} forgotten` : ''}`);
      return;
    }
    const before = this.records.get(key);
    this.records.set(key, parsed);
    if (!before) this.note(at, RECORDS, `${describeRecord(parsed)} ${parsed.status}/${parsed.step} (new, rev ${revision})`);
    else if (before.status !== parsed.status || before.step !== parsed.step || before.version !== parsed.version || before.appName !== parsed.appName) {
      this.note(at, RECORDS, `${describeRecord(parsed)} ${before.status}/${before.step} → ${parsed.status}/${parsed.step} (rev ${revision})`);
    }
  }

  private applyRecordsSnapshot(at: number, revision: string, entries: Array<{ key: string; value: string }>): void {
    const next = new Map<string, RecordState>();
    for (const e of entries) {
      const parsed = this.parseRecord(e.key, e.value);
      if (parsed === null) this.counters.unreadable++;
      else if (parsed) next.set(e.key, parsed);
    }
    // Report what changed since the state before the gap (nothing on the first list).
    const first = !this.everSynced.has(RECORDS);
    if (!first) {
      for (const [key, before] of this.records) if (!next.has(key)) this.note(at, RECORDS, `${describeRecord(before)} gone (re-list)`);
      for (const [key, r] of next) {
        const before = this.records.get(key);
        if (!before || before.status !== r.status || before.step !== r.step) {
          this.note(at, RECORDS, `${describeRecord(r)} ${before ? `${before.status}/${before.step} → ` : ''}${r.status}/${r.step} (re-list)`);
        }
      }
    }
    this.records.clear();
    for (const [k, v] of next) this.records.set(k, v);
    this.recordsRevision = revision;
    this.markSynced(at, RECORDS, `${first ? 'listed' : 're-listed'} ${next.size} records at rev ${revision}`);
  }

  // ---- Kubernetes objects ----

  private applyObject(at: number, kind: string, event: 'upsert' | 'delete', obj: KubeObject, origin: 'watch' | 'relist'): void {
    const name = obj.metadata?.name;
    if (!name) return;
    const pk = this.pointerKinds.find((k) => k.kind === kind);
    if (pk) this.applyPointer(at, pk, name, event === 'delete' ? undefined : obj, origin);
    else if (kind === POD) this.applyPod(at, name, event === 'delete' ? undefined : obj);
    else if (kind === ENDPOINT_SLICE) this.applySlice(at, name, event === 'delete' ? undefined : obj);
  }

  private applySnapshot(at: number, kind: string, objects: KubeObject[]): void {
    const first = !this.everSynced.has(kind);
    const names = new Set(objects.map((o) => o.metadata?.name).filter((n): n is string => !!n));
    const pk = this.pointerKinds.find((k) => k.kind === kind);
    if (pk) {
      // Diff against the state before the gap: a pointer that moved during the gap is a switch seen late.
      const existing = [...this.pointers.entries()].filter(([, p]) => p.kind === kind);
      for (const [k, p] of existing) if (!names.has(k.split('\u0000')[1]!)) this.applyPointer(at, pk, p.app, undefined, 'relist');
      // Objects that stopped being pointers (labels changed) are dropped by applyPointer itself.
      for (const o of objects) {
        if (first) this.applyPointer(at, pk, o.metadata!.name!, o, 'initial');
        else this.applyPointer(at, pk, o.metadata!.name!, o, 'relist');
      }
    } else if (kind === POD) {
      for (const name of [...this.pods.keys()]) if (!names.has(name)) this.applyPod(at, name, undefined);
      for (const o of objects) if (o.metadata?.name) this.applyPod(at, o.metadata.name, o);
    } else if (kind === ENDPOINT_SLICE) {
      for (const name of [...this.slices.keys()]) if (!names.has(name)) this.applySlice(at, name, undefined);
      for (const o of objects) if (o.metadata?.name) this.applySlice(at, o.metadata.name, o);
    }
    this.markSynced(at, kind, `${first ? 'listed' : 're-listed'} ${objects.length} objects`);
  }

  /**
   * `name` is the object's name; pointers of one kind are keyed by it (the app is the name).
   * origin: 'watch' = a live change (a switch is checked at this instant), 'relist' = a change
   * seen in a re-list after a gap (its instant is unknown: not checked as a switch), 'initial' =
   * the state when the observer started (not a switch).
   */
  private applyPointer(at: number, pk: PointerKind, name: string, obj: KubeObject | undefined, origin: 'watch' | 'relist' | 'initial'): void {
    const key = key2(pk.kind, name);
    const before = this.pointers.get(key);
    const app = obj ? pk.appOf(obj) : undefined;
    if (!obj || app === undefined) {
      if (!before) return;
      this.pointers.delete(key);
      this.pointerLeft(at, before);
      this.note(at, pk.kind, `${pk.kind} ${name} deleted${obj ? ' (no longer a pointer)' : ''} (pointed at ${fmtTarget(before.target)})${origin === 'relist' ? ' (re-list)' : ''}`);
      return;
    }
    const target = pk.target(obj, app);
    if (before && before.target === target) return;
    this.pointers.set(key, { kind: pk.kind, app, target });
    if (before) this.pointerLeft(at, before);
    // A switch seen only in a re-list happened during a gap: its instant was not observed, so it is
    // not checked as a switch (the state rules, evaluated after the re-list, still apply).
    const how = origin === 'relist' ? ' (seen in a re-list: the switch itself was not observed)' : origin === 'initial' ? ' (at start)' : '';
    this.note(at, pk.kind, before
      ? `${pk.kind} ${app} → ${fmtTarget(target)} (was ${fmtTarget(before.target)})${how}`
      : `${pk.kind} ${app} → ${fmtTarget(target)} (created)${how}`);
    if (target !== null && origin === 'watch') this.checkSwitch(at, pk.kind, app, target, before?.target ?? undefined);
  }

  private pointerLeft(at: number, before: PointerState): void {
    for (const s of this.switches) if (s.kind === before.kind && s.app === before.app && s.version === before.target && s.leftAt === undefined) s.leftAt = at;
  }

  /** I1 at the switch: the version must be ready at the instant the pointer starts pointing at it. */
  private checkSwitch(at: number, kind: string, app: string, version: string, from: string | null | undefined): void {
    const ev = this.evidence(app, version);
    if (isReady(ev)) return;
    const fromText = from === undefined ? 'created' : `from ${fmtTarget(from)}`;
    this.switches.push({
      kind, app, version, at,
      detail: `${kind} ${app} switched to version ${version} (${fromText}) while ${describeEvidence(app, version, ev)}`,
    });
  }

  private applyPod(at: number, name: string, obj: KubeObject | undefined): void {
    const before = this.pods.get(name);
    if (!obj) {
      if (!before) return;
      this.pods.delete(name);
      this.noteEvidence(at, before.app, before.version);
      return;
    }
    const labels = obj.metadata?.labels ?? {};
    const phase = obj.status?.phase;
    const state: PodState = {
      app: labels['app'], version: labels['version'],
      ready: Array.isArray(obj.status?.conditions) && obj.status.conditions.some((c: { type?: string; status?: string }) => c?.type === 'Ready' && c?.status === 'True'),
      gone: !!obj.metadata?.deletionTimestamp || phase === 'Succeeded' || phase === 'Failed',
    };
    this.pods.set(name, state);
    if (before && (before.app !== state.app || before.version !== state.version)) this.noteEvidence(at, before.app, before.version);
    this.noteEvidence(at, state.app, state.version);
  }

  private applySlice(at: number, name: string, obj: KubeObject | undefined): void {
    const before = this.slices.get(name);
    if (!obj) {
      if (!before) return;
      this.slices.delete(name);
      this.noteEndpoints(at, before.service);
      return;
    }
    const endpoints = Array.isArray(obj['endpoints']) ? (obj['endpoints'] as Array<{ conditions?: { ready?: boolean } }>) : [];
    const state: SliceState = {
      service: obj.metadata?.labels?.[SERVICE_NAME_LABEL],
      readyEndpoints: endpoints.filter((e) => e?.conditions?.ready === true).length,
    };
    this.slices.set(name, state);
    if (before && before.service !== state.service) this.noteEndpoints(at, before.service);
    this.noteEndpoints(at, state.service);
  }

  private readyEndpoints(service: string): number {
    let n = 0;
    for (const s of this.slices.values()) if (s.service === service) n += s.readyEndpoints;
    return n;
  }

  // ---- evaluation ----

  private markSynced(at: number, source: string, text: string): void {
    this.syncedSince.set(source, at);
    this.everSynced.add(source);
    this.note(at, source, text);
  }

  private synced(deps: string[]): boolean {
    return deps.every((d) => this.syncedSince.has(d));
  }

  /**
   * A condition counts from when it started or from when its sources were last (re-)synced,
   * whichever is later: what happened during a watch gap is unknown, so a gap never makes a
   * condition look older than what was observed after it.
   */
  private effectiveStart(start: number, deps: string[]): number {
    let s = start;
    for (const d of deps) s = Math.max(s, this.syncedSince.get(d) ?? Infinity);
    return s;
  }

  private deadlineOf(start: number, deps: string[], windowMs: number): number | undefined {
    if (!this.synced(deps)) return undefined;
    return this.effectiveStart(start, deps) + windowMs;
  }

  private switchDeps(kind: string): string[] {
    return [kind, POD, ENDPOINT_SLICE];
  }

  private evaluate(at: number): void {
    const current = this.conditions();
    for (const [key, t] of this.tracked) {
      if (current.has(key)) continue;
      this.tracked.delete(key);
      if (t.violation) this.close(at, t.violation);
    }
    for (const [key, c] of current) {
      let t = this.tracked.get(key);
      if (!t) {
        t = { ...c, key, start: at };
        this.tracked.set(key, t);
      }
      if (t.violation) continue;
      t.detail = c.detail;
      const deadline = this.deadlineOf(t.start, t.deps, t.windowMs);
      if (deadline !== undefined && at >= deadline) {
        t.violation = this.open(this.effectiveStart(t.start, t.deps), t);
      }
    }
    this.evaluateSwitches(at);
  }

  private evaluateSwitches(at: number): void {
    const keep: SwitchSuspicion[] = [];
    for (const s of this.switches) {
      const ready = isReady(this.evidence(s.app, s.version));
      if (!s.violation) {
        // Evidence that arrives late (the watch streams of different kinds are not ordered) clears it.
        if (ready) continue;
        // A gap in a source before the window ended may have hidden that evidence: unprovable, dropped.
        const gap = this.switchDeps(s.kind).find((d) => (this.syncedSince.get(d) ?? Infinity) > s.at);
        if (gap !== undefined) {
          this.note(at, 'violation', `not checked: ${s.kind} ${s.app} switch to version ${s.version} (a watch gap in ${gap} before its window ended)`);
          continue;
        }
        const deadline = this.deadlineOf(s.at, this.switchDeps(s.kind), this.switchSettleMs);
        if (deadline === undefined || at < deadline) {
          keep.push(s);
          continue;
        }
        s.violation = this.open(s.at, {
          invariant: 'I1', rule: RULES.switchToUnready, app: s.app,
          detail: `${s.detail}; still not ready ${this.switchSettleMs} ms later`,
        });
      }
      if (s.leftAt !== undefined || ready) {
        this.close(s.leftAt ?? at, s.violation);
        continue;
      }
      keep.push(s);
    }
    this.switches = keep;
  }

  private conditions(): Map<string, Condition> {
    const out = new Map<string, Condition>();
    const apps = new Set<string>();
    for (const r of this.records.values()) apps.add(r.appName);
    for (const p of this.pointers.values()) apps.add(p.app);
    for (const app of [...apps].sort()) {
      const records = [...this.records.values()].filter((r) => r.appName === app);
      const pointers = [...this.pointers.values()].filter((p) => p.app === app);
      this.checkOneDeployed(out, app, records);
      for (const p of pointers) {
        this.checkEndpoints(out, app, p);
        this.checkTraffic(out, app, p, records);
      }
    }
    return out;
  }

  /** I4: at no etcd revision more than one DEPLOYED record of an app (exact: no window). */
  private checkOneDeployed(out: Map<string, Condition>, app: string, records: RecordState[]): void {
    const deployed = records.filter((r) => r.status === 'DEPLOYED');
    if (deployed.length <= 1) return;
    out.set(`I4/${RULES.oneDeployedRecord}/${app}`, {
      invariant: 'I4', rule: RULES.oneDeployedRecord, app, deps: [RECORDS], windowMs: 0,
      detail: `${deployed.length} DEPLOYED records at etcd revision ${this.recordsRevision}: ${deployed.map(describeRecord).join(', ')}`,
    });
  }

  /** I1 continuous: a version a pointer points at has at least one ready endpoint (after settleMs). */
  private checkEndpoints(out: Map<string, Condition>, app: string, p: PointerState): void {
    if (p.target === null) return;
    const ev = this.evidence(app, p.target);
    if (ev.readyEndpoints >= 1) return;
    out.set(`I1/${RULES.noReadyEndpoints}/${p.kind}/${app}/${p.target}`, {
      invariant: 'I1', rule: RULES.noReadyEndpoints, app, deps: [p.kind, ENDPOINT_SLICE], windowMs: this.settleMs,
      detail: `${p.kind} ${app} points at version ${p.target} while ${describeEvidence(app, p.target, ev)}`,
    });
  }

  /**
   * I4 traffic = live record (after settleMs). With a DEPLOYED record D and no record switching
   * traffic (steps switching-traffic, rolling-back), every pointer points at D's version. While a
   * record switches, a pointer may point at D's version or at a switching record's version. With no
   * D, a pointer points at none, or at the version of a switching DEPLOYING record or of an
   * UNDEPLOYING record.
   */
  private checkTraffic(out: Map<string, Condition>, app: string, p: PointerState, records: RecordState[]): void {
    const deployed = records.filter((r) => r.status === 'DEPLOYED');
    const switching = records.filter((r) => SWITCHING_STEPS.has(r.step));
    let allowed: boolean;
    let why: string;
    if (deployed.length > 0) {
      allowed = p.target !== null && (deployed.some((d) => d.version === p.target) || switching.some((r) => r.version === p.target));
      why = `the DEPLOYED record is ${deployed.map(describeRecord).join(', ')}${switching.length ? ` and ${switching.map(describeRecord).join(', ')} is switching traffic` : ', and no record is switching traffic'}`;
    } else {
      const live = records.filter((r) => r.status === 'UNDEPLOYING' || (r.status === 'DEPLOYING' && SWITCHING_STEPS.has(r.step)));
      allowed = p.target === null || live.some((r) => r.version === p.target);
      why = `there is no DEPLOYED record${live.length ? `; switching or UNDEPLOYING: ${live.map(describeRecord).join(', ')}` : ', and none is switching traffic or UNDEPLOYING'}`;
    }
    if (allowed) return;
    out.set(`I4/${RULES.trafficFollowsRecord}/${p.kind}/${app}/${fmtTarget(p.target)}`, {
      invariant: 'I4', rule: RULES.trafficFollowsRecord, app, deps: [RECORDS, p.kind], windowMs: this.settleMs,
      detail: `${p.kind} ${app} points at ${fmtTarget(p.target)}, but ${why}`,
    });
  }

  private open(since: number, c: { invariant: Invariant; rule: string; app: string; detail: string }): Violation {
    const v: Violation = { invariant: c.invariant, rule: c.rule, namespace: this.namespace, app: c.app, since: new Date(since), detail: c.detail };
    this.note(this.lastAt, 'violation', `VIOLATION ${v.invariant} ${v.rule} (${v.app}) since ${fmtTime(since)}: ${v.detail}`);
    return v;
  }

  private close(until: number, v: Violation): void {
    v.until = new Date(Math.max(until, v.since.getTime()));
    this.done.push(v);
    this.note(this.lastAt, 'violation', `ended: ${v.invariant} ${v.rule} (${v.app}) after ${v.until.getTime() - v.since.getTime()} ms`);
  }

  // ---- timeline ----

  private count(source: string): void {
    this.counters.events[source] = (this.counters.events[source] ?? 0) + 1;
  }

  private note(at: number, source: string, text: string): void {
    this.log.push({ at: new Date(at), source, text });
    if (this.log.length > this.maxTimeline) {
      this.log.shift();
      this.counters.timelineDropped++;
    }
  }

  private noteEvidence(at: number, app: string | undefined, version: string | undefined): void {
    if (app === undefined || version === undefined) return;
    const ev = this.evidence(app, version);
    const text = `${app} v${version}: ${ev.readyPods}/${ev.pods} pods ready`;
    const k = key2('pods', `${app}-${version}`);
    if (this.evidenceLog.get(k) === text) return;
    this.evidenceLog.set(k, text);
    this.note(at, POD, text);
  }

  private noteEndpoints(at: number, service: string | undefined): void {
    if (service === undefined) return;
    const text = `EndpointSlices of ${service}: ${this.readyEndpoints(service)} ready endpoints`;
    const k = key2('slices', service);
    if (this.evidenceLog.get(k) === text) return;
    this.evidenceLog.set(k, text);
    this.note(at, ENDPOINT_SLICE, text);
  }
}

export function isReady(ev: VersionEvidence): boolean {
  return ev.pods >= 1 && ev.readyPods === ev.pods && ev.readyEndpoints >= 1;
}

function describeEvidence(app: string, version: string, ev: VersionEvidence): string {
  return `version ${version} has ${ev.pods} pods (${ev.readyPods} ready) and ${ev.readyEndpoints} ready endpoints in the EndpointSlices of ${app}-${version}`;
}

function describeRecord(r: RecordState): string {
  return `record ${r.id.slice(0, 8)} (${r.appName} v${r.version}, ${r.status})`;
}

function fmtTarget(t: string | null): string {
  return t === null ? 'none' : t;
}

function fmtTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Timeline lines relative to `origin` (ms), e.g. `+12.345s Service shop → 2 (was 1)`. */
export function formatTimeline(entries: TimelineEntry[], origin: number): string[] {
  return entries.map((e) => `${fmtOffset(e.at.getTime() - origin)} [${e.source}] ${e.text}`);
}

export function fmtOffset(ms: number): string {
  return `${ms < 0 ? '-' : '+'}${(Math.abs(ms) / 1000).toFixed(3)}s`;
}

/** A violation in one line, times relative to `origin`. */
export function formatViolation(v: Violation, origin: number): string {
  const until = v.until ? `until ${fmtOffset(v.until.getTime() - origin)} (${v.until.getTime() - v.since.getTime()} ms)` : 'still open';
  return `${v.invariant} ${v.rule} [${v.namespace}/${v.app}] since ${fmtOffset(v.since.getTime() - origin)} ${until}: ${v.detail}`;
}
