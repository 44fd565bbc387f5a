/**
 * bench/etcd-retention (issue #12): etcd size and key count after 1,000 blue-green deployments of
 * 10 apps, without retention (CUTOVER_RETAIN_RECORDS = 100000) and with the default (50), each in
 * its own etcd. The real engine, scheduler and stores run in this process on a real etcd (through
 * EtcdStore); the cluster is the in-memory one of the unit tests — deploying to Kubernetes 1,000
 * times would measure Kubernetes, not etcd. Apps run in parallel, each app's deployments in
 * sequence, each waited for until DEPLOYED and the app idle (its housekeeping — the prune — done).
 *
 * Measured per run: keys and key+value bytes under the prefix, per key family (a scan through
 * etcd's HTTP/JSON gateway), etcd's dbSize / dbSizeInUse before and after a compaction to the
 * current revision plus defragment, the wall time of the deployments, the engine's own prune
 * calls (timed), and — on the etcd without retention, after its figures are taken — one prune
 * call on an app at 100 records.
 *
 *   npm run bench:retention [-- --apps 10 --per-app 100 --retain 50]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { cpus, totalmem } from 'node:os';
import { TestEtcd } from '../test/support/etcd.js';
import { EtcdEngine, type PruneCall } from './lib/etcd-engine.js';
import { EtcdGateway, type EtcdStatus, type ScannedKey } from './lib/etcd-gateway.js';
import { keys } from '../src/store/keys.js';
import { percentile } from './lib/measure.js';
import { sampleProcess } from './lib/proc.js';

const { values } = parseArgs({
  options: {
    apps: { type: 'string', default: '10' },
    'per-app': { type: 'string', default: '100' },
    retain: { type: 'string', default: '50' },
  },
});
const APPS = Number(values.apps);
const PER_APP = Number(values['per-app']);
const RETAIN = Number(values.retain);
/** "Retention effectively off": the highest value CUTOVER_RETAIN_RECORDS accepts. */
const RETAIN_OFF = 100_000;
const PREFIX = '/deployer/';
const NAMESPACE = 'bench';
const FAMILIES = ['deployments', 'app-records', 'events', 'health', 'others'] as const;
type Family = (typeof FAMILIES)[number];
/** One-off prune samples (apps / repetitions). */
const PRUNE_SAMPLES = 5;

if (![APPS, PER_APP, RETAIN].every((n) => Number.isInteger(n) && n > 0)) throw new Error('--apps, --per-app and --retain must be positive integers');
const appNames = Array.from({ length: APPS }, (_, i) => `app${String(i).padStart(2, '0')}`);

// Every etcd this script started, so that a failure or Ctrl-C still stops it (by its pid).
const etcds = new Set<TestEtcd>();
async function stopAll(): Promise<void> {
  await Promise.allSettled([...etcds].map(async (e) => {
    await e.destroy();
    etcds.delete(e);
  }));
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping etcd\n`);
    void stopAll().finally(() => process.exit(130));
  });
}

/** Machine-wide busy CPU seconds (all cores) from /proc/stat. */
function machineBusySeconds(): number {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
}

/** CPU used while the deployments ran, in % of one core: this process (engine + bench), its etcd, everything else. */
interface CpuShare {
  bench: number;
  etcd: number;
  others: number;
}

interface FamilyStats {
  keys: number;
  bytes: number;
}

interface RunResult {
  retain: number;
  deployed: number;
  wallMs: number;
  recordsPerApp: number[];
  families: Record<Family, FamilyStats>;
  others: Map<string, number>;
  total: FamilyStats;
  before: EtcdStatus;
  compacted: EtcdStatus;
  housekeepingPrunes: PruneCall[];
  cpu: CpuShare;
  /** Only on the run without retention. */
  oneOff?: { noop: PruneCall[]; deleting: PruneCall[] };
}

function familyOf(relativeKey: string): { family: Family; top: string } {
  const top = relativeKey.slice(0, relativeKey.indexOf('/') + 1 || undefined);
  const name = top.replace(/\/$/, '');
  return { family: (FAMILIES as readonly string[]).includes(name) && name !== 'others' ? (name as Family) : 'others', top: name };
}

function tally(scanned: ScannedKey[]): Pick<RunResult, 'families' | 'others' | 'total'> {
  const families = Object.fromEntries(FAMILIES.map((f) => [f, { keys: 0, bytes: 0 }])) as Record<Family, FamilyStats>;
  const others = new Map<string, number>();
  const total = { keys: 0, bytes: 0 };
  for (const k of scanned) {
    const { family, top } = familyOf(k.key.slice(PREFIX.length));
    const bytes = k.keyBytes + k.valueBytes;
    families[family].keys++;
    families[family].bytes += bytes;
    total.keys++;
    total.bytes += bytes;
    if (family === 'others') others.set(top, (others.get(top) ?? 0) + 1);
  }
  return { families, others, total };
}

async function runOnce(label: string, retain: number, oneOffPrune: boolean): Promise<RunResult> {
  const etcd = await TestEtcd.create();
  etcds.add(etcd);
  process.stderr.write(`[${label}] etcd pid ${etcd.pid} on ${etcd.endpoint}\n`);
  const engine = new EtcdEngine({ endpoint: etcd.endpoint, prefix: PREFIX, namespace: NAMESPACE, retainRecords: retain });
  const gateway = new EtcdGateway(etcd.endpoint);
  try {
    await engine.start();
    const descriptorIds = await Promise.all(appNames.map((a) => engine.createDescriptor(a)));
    let deployed = 0;
    const cpu0 = { machine: machineBusySeconds(), bench: process.cpuUsage(), etcd: sampleProcess(etcd.pid!).cpuSeconds };
    const started = performance.now();
    const ticker = setInterval(() => {
      process.stderr.write(`[${label}] ${deployed}/${APPS * PER_APP} deployments, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    }, 10_000);
    try {
      await Promise.all(appNames.map(async (app, i) => {
        for (let n = 0; n < PER_APP; n++) {
          await engine.deployAndSettle(descriptorIds[i]!, app);
          deployed++;
        }
      }));
    } finally {
      clearInterval(ticker);
    }
    const wallMs = performance.now() - started;
    const benchS = (() => {
      const u = process.cpuUsage(cpu0.bench);
      return (u.user + u.system) / 1e6;
    })();
    const etcdS = sampleProcess(etcd.pid!).cpuSeconds - cpu0.etcd;
    const machineS = machineBusySeconds() - cpu0.machine;
    const pct = (s: number) => (100 * s) / (wallMs / 1000);
    const cpu: CpuShare = { bench: pct(benchS), etcd: pct(etcdS), others: pct(Math.max(0, machineS - benchS - etcdS)) };
    // Nothing writes from here on: the scheduler is stopped (its lease revoked; it held no keys).
    await engine.stopScheduler();
    if (engine.unreadable.length > 0) throw new Error(`unreadable records: ${engine.unreadable.join(', ')}`);
    const housekeepingPrunes = [...engine.store.pruneCalls];

    const recordsPerApp = await Promise.all(appNames.map(async (a) => (await engine.kv.list(keys.appRecordsOf(NAMESPACE, a))).entries.length));
    const live = (await engine.kv.list(`live/${NAMESPACE}/`)).entries.length;
    if (live !== APPS) throw new Error(`expected ${APPS} live pointers, found ${live}`);
    const counts = tally(await gateway.scan(PREFIX));
    const before = await gateway.status();
    await gateway.compact(before.revision);
    await gateway.defragment();
    const compacted = await gateway.status();
    process.stderr.write(`[${label}] ${deployed} deployments in ${(wallMs / 1000).toFixed(1)} s; ${counts.total.keys} keys; revision ${before.revision}\n`);

    let oneOff: RunResult['oneOff'];
    if (oneOffPrune) {
      // Apps at PER_APP records each. A prune that finds nothing to do (what every housekeeping
      // pass does without retention) and one that deletes all but `retain` (switching retention on).
      const noop: PruneCall[] = [];
      for (let i = 0; i < PRUNE_SAMPLES; i++) {
        await engine.store.prune(NAMESPACE, appNames[0]!, RETAIN_OFF);
        noop.push(engine.store.pruneCalls[engine.store.pruneCalls.length - 1]!);
      }
      const deleting: PruneCall[] = [];
      for (const app of appNames.slice(1, 1 + PRUNE_SAMPLES)) {
        await engine.store.prune(NAMESPACE, app, RETAIN);
        deleting.push(engine.store.pruneCalls[engine.store.pruneCalls.length - 1]!);
      }
      oneOff = { noop, deleting };
    }
    return { retain, deployed, wallMs, recordsPerApp, ...counts, before, compacted, housekeepingPrunes, cpu, oneOff };
  } finally {
    await engine.stop().catch(() => undefined);
    await etcd.destroy();
    etcds.delete(etcd);
  }
}

// ---- formatting -------------------------------------------------------------------------------

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const kib = (b: number) => `${int(b / 1024)} KiB`;
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const ms = (n: number) => (n < 10 ? n.toFixed(2) : n.toFixed(1));
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

function pruneSummary(calls: PruneCall[]): string {
  if (calls.length === 0) return 'none';
  const sorted = calls.map((c) => c.ms).sort((a, b) => a - b);
  const deleted = calls.reduce((s, c) => s + c.deleted, 0);
  return `${int(calls.length)} calls, ${int(deleted)} deleted; p50 ${ms(percentile(sorted, 50))} / p99 ${ms(percentile(sorted, 99))} ms`;
}

const cpuCell = (c: CpuShare) => `${c.bench.toFixed(0)} / ${c.etcd.toFixed(0)} / ${c.others.toFixed(0)}`;

function printTable(off: RunResult, on: RunResult): void {
  const total = APPS * PER_APP;
  const fam = (r: RunResult, f: Family) => `${int(r.families[f].keys)} keys, ${kib(r.families[f].bytes)}`;
  const othersNames = [...new Set([...off.others.keys(), ...on.others.keys()])].sort().join(', ');
  const perApp = (r: RunResult) => {
    const min = Math.min(...r.recordsPerApp);
    const max = Math.max(...r.recordsPerApp);
    return min === max ? String(min) : `${min}–${max}`;
  };
  const o = off.oneOff!;
  const oneOffCell = (label: string, calls: PruneCall[]) => (calls.length === 0 ? 'n/a' : calls.length === 1
    ? `${label}: ${calls[0]!.deleted} deleted, ${ms(calls[0]!.ms)} ms`
    : `${label}: ${calls[0]!.deleted} deleted, ${ms(median(calls.map((c) => c.ms)))} ms (${ms(Math.min(...calls.map((c) => c.ms)))}–${ms(Math.max(...calls.map((c) => c.ms)))})`);
  const rows: string[][] = [
    ['deployments DEPLOYED', `${int(off.deployed)} / ${int(total)}`, `${int(on.deployed)} / ${int(total)}`],
    [`wall time of the ${int(total)} deployments`, `${(off.wallMs / 1000).toFixed(1)} s (${(off.deployed / (off.wallMs / 1000)).toFixed(1)}/s)`, `${(on.wallMs / 1000).toFixed(1)} s (${(on.deployed / (on.wallMs / 1000)).toFixed(1)}/s)`],
    ['CPU, % of a core: bench / etcd / others', cpuCell(off.cpu), cpuCell(on.cpu)],
    ['records per app at the end', perApp(off), perApp(on)],
    [`keys under ${PREFIX}`, int(off.total.keys), int(on.total.keys)],
    ['· deployments/', fam(off, 'deployments'), fam(on, 'deployments')],
    ['· app-records/', fam(off, 'app-records'), fam(on, 'app-records')],
    ['· events/', fam(off, 'events'), fam(on, 'events')],
    ['· health/', fam(off, 'health'), fam(on, 'health')],
    [`· others (${othersNames})`, fam(off, 'others'), fam(on, 'others')],
    ['key + value bytes', mib(off.total.bytes), mib(on.total.bytes)],
    ['etcd revision (write transactions)', int(off.before.revision), int(on.before.revision)],
    ['dbSize / dbSizeInUse', `${mib(off.before.dbSize)} / ${mib(off.before.dbSizeInUse)}`, `${mib(on.before.dbSize)} / ${mib(on.before.dbSizeInUse)}`],
    ['… after compaction + defragment', `${mib(off.compacted.dbSize)} / ${mib(off.compacted.dbSizeInUse)}`, `${mib(on.compacted.dbSize)} / ${mib(on.compacted.dbSizeInUse)}`],
    ['prune calls in housekeeping', pruneSummary(off.housekeepingPrunes), pruneSummary(on.housekeepingPrunes)],
    [`one prune call, app at ${PER_APP} records¹`, oneOffCell(`keep ${int(RETAIN_OFF)}`, o.noop), oneOffCell(`keep ${RETAIN}`, o.deleting)],
  ];
  const header = ['', `retention off (${int(RETAIN_OFF)})`, `retention ${RETAIN}${RETAIN === 50 ? ' (default)' : ''}`];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\netcd size after ${int(total)} blue-green deployments of ${APPS} apps (${PER_APP} each, 2 replicas, drain 0 s), before and after retention`);
  console.log(`real engine, scheduler and etcd; in-memory cluster (deploying to Kubernetes ${int(total)} times would measure Kubernetes, not etcd)`);
  console.log(`machine: ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}\n`);
  console.log(fmt(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(fmt(r));
  console.log(`\n¹ both on the etcd without retention, after its figures above were taken: median (min–max) of ${o.noop.length} calls on one app, and of ${o.deleting.length} apps`);

  // Per record, from the run without retention (every record and its events are still there).
  const recs = off.families.deployments.keys;
  const perRecord = (f: Family) => `${(off.families[f].keys / recs).toFixed(1)} keys, ${int(off.families[f].bytes / recs)} B`;
  console.log(`\nper deployment record (retention off): record ${int(off.families.deployments.bytes / recs)} B; events ${perRecord('events')}; health ${perRecord('health')}; `
    + `index ${perRecord('app-records')}; in all ${((off.total.keys - off.families.others.keys) / recs).toFixed(1)} keys, ${int((off.total.bytes - off.families.others.bytes) / recs)} B`);
  console.log(`write transactions per deployment: ${(off.before.revision / total).toFixed(1)} (off), ${(on.before.revision / total).toFixed(1)} (retention ${RETAIN}); `
    + `history (dbSizeInUse before − after compaction): ${mib(off.before.dbSizeInUse - off.compacted.dbSizeInUse)} (off), ${mib(on.before.dbSizeInUse - on.compacted.dbSizeInUse)} (retention ${RETAIN})`);
}

try {
  const off = await runOnce('retention off', RETAIN_OFF, true);
  const on = await runOnce(`retention ${RETAIN}`, RETAIN, false);
  printTable(off, on);
} catch (err) {
  process.stderr.write(`bench:retention failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
