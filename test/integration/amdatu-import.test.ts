import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { TestEtcd } from '../support/etcd.js';
import { OriginalDeployerData, TestEtcdV2, goJson, goRfc3339 } from '../support/etcd-v2.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { request } from '../support/http.js';
import { freePort } from '../support/ports.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { EnvironmentStore } from '../../src/store/environment.js';
import type { ImportReport } from '../../src/admin/amdatu/import.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';

/**
 * `cutover-admin import-amdatu` as an operator runs it: the original's data in a real etcd 3.4 with
 * the v2 API (seeded in its layout, reference §7, with bad and partial records), the command as a
 * child process against cutover's etcd, and the result read through cutover's REST API.
 */

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function runAdmin(args: string[], env: Record<string, string>): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // The way an operator runs it (npm run admin -- …), without npm in between.
    const child = spawn(process.execPath, ['scripts/runtime.mjs', 'node', '--import', 'tsx', 'src/admin/cli.ts', ...args], {
      cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr, ms: Math.round(performance.now() - started) }));
  });
}

// The original's times: local time with an offset, second precision (Go's time.RFC3339).
const T0 = new Date('2017-10-12T12:00:00Z');
const at = (minutes: number, seconds = 0) => new Date(T0.getTime() + minutes * 60_000 + seconds * 1000);
const utc = (d: Date) => d.toISOString();

const ids = {
  descriptorWeb: randomUUID(), descriptorApi: randomUUID(), descriptorBadId: randomUUID(), descriptorInvalid: randomUUID(),
  webV5: randomUUID(), webV6: randomUUID(), webV7: randomUUID(), webFailed: randomUUID(), webStuck: randomUUID(), webLongLog: randomUUID(),
  apiDeployed: randomUUID(), notJson: randomUUID(), partial: randomUUID(), orphan: randomUUID(),
};

/** A descriptor as the original stored it (its defaults applied, Go field names). */
function originalDescriptor(id: string, appName: string, extra: Record<string, unknown> = {}) {
  return {
    id, created: goRfc3339(at(0)), lastModified: goRfc3339(at(1)), deploymentType: 'blue-green', newVersion: '#', appName, replicas: 2,
    podspec: { containers: [{ name: appName, image: `example/${appName}:1`, ports: [{ containerPort: 8080, protocol: 'TCP' }], env: [{ name: 'MODE', value: 'prod' }], resources: {}, imagePullPolicy: 'Always' }], restartPolicy: 'Always', dnsPolicy: 'ClusterFirst' },
    namespace: 'shop', useHealthCheck: true, healthCheckPath: 'health', healthCheckType: 'probe', email: 'ops@example.com', password: 'hunter2',
    ...extra,
  };
}

/** The descriptor copy in a record: with what the original injected into every container, and its `environment` map. */
function embedded(descriptorId: string, appName: string, version: string) {
  const d = originalDescriptor(descriptorId, appName);
  d.podspec.containers[0]!.env = [
    { name: 'MODE', value: 'prod' }, { name: 'APP_NAME', value: appName }, { name: 'POD_NAMESPACE', value: 'shop' }, { name: 'APP_VERSION', value: version },
    { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } } as never, { name: 'DB_URL', value: 'postgres://db/shop' },
  ];
  return { ...d, environment: { DB_URL: 'postgres://db/shop' } };
}

async function seed(original: OriginalDeployerData): Promise<void> {
  await original.descriptor(originalDescriptor(ids.descriptorWeb, 'web', { frontend: 'shop.example.com' }));
  await original.descriptor(originalDescriptor(ids.descriptorApi, 'api'));
  // Key and content disagree.
  await original.etcd.put(`/deployer/descriptors/shop/web/${ids.descriptorBadId}`, goJson({ ...originalDescriptor(ids.descriptorBadId, 'web'), id: 'not-the-key-id' }));
  await original.descriptor({ ...originalDescriptor(ids.descriptorInvalid, 'web'), podspec: { containers: [] } }); // nothing to deploy

  const record = (id: string, appName: string, version: string, status: string, created: Date, lastModified: Date, extra: Record<string, unknown> = {}) =>
    original.deployment({ id, created: goRfc3339(created), lastModified: goRfc3339(lastModified), version, status, descriptor: embedded(appName === 'web' ? ids.descriptorWeb : ids.descriptorApi, appName, version), ...extra });

  // web: v5 replaced by v6, v6 replaced by v7 (live), a failed v8, a stuck "#" deployment, and one with a long log.
  await record(ids.webV5, 'web', '5', 'UNDEPLOYED', at(10), at(20, 9));
  await original.log('shop', ids.webV5, [{ at: at(10), message: `Deployment id: ${ids.webV5}` }, { at: at(10, 9), message: 'Blue-green deployment successful' }, { raw: `Undeployed during deployment of ${ids.webV6}` }]);
  await record(ids.webV6, 'web', '6', 'UNDEPLOYED', at(20), at(30, 9), { OldVersion: '5' });
  await original.log('shop', ids.webV6, [{ at: at(20), message: `Deployment id: ${ids.webV6}` }, { raw: `Undeployed during deployment of ${ids.webV7}` }]);
  await record(ids.webV7, 'web', '7', 'DEPLOYED', at(30), at(30, 9), { OldVersion: '6' });
  await original.log('shop', ids.webV7, [
    { at: at(30), message: `Deployment id: ${ids.webV7}` },
    { at: at(30, 1), message: '{\n  "appName": "web",\n  "newVersion": "#"\n}' },
    { at: at(30, 9), message: 'Blue-green deployment successful' },
  ]);
  await original.health('shop', ids.webV7, 'web-7-abcde', '{"healthy": true, "version": "7"}');
  await original.health('shop', ids.webV7, 'web-7-fghij', '{"healthy": true}');
  await record(ids.webFailed, 'web', '8', 'FAILURE', at(40), at(41));
  await original.log('shop', ids.webFailed, [{ at: at(40), message: 'Timeout waiting for pods to become healthy' }]);
  await original.health('shop', ids.webFailed, 'web-8-xxxxx', '{"probehealthcheck": "failed: dial tcp 10.0.0.8:9999: connect: connection refused"}');
  await record(ids.webStuck, 'web', '000', 'DEPLOYING', at(50), at(50));
  await original.log('shop', ids.webStuck, [{ at: at(50), message: `Deployment id: ${ids.webStuck}` }]);
  await record(ids.webLongLog, 'web', '4', 'FAILURE', at(5), at(9));
  await original.log('shop', ids.webLongLog, Array.from({ length: 200 }, (_, i) => ({ at: at(5, i % 60), message: 'Deployment not healthy yet, retrying in 1 second' })));

  // api: DEPLOYED in the original, but cutover already has a live api of its own (set up in before()).
  await record(ids.apiDeployed, 'api', '3', 'DEPLOYED', at(60), at(60, 5));

  // Bad and partial data.
  await original.etcd.put(`/deployer/deployments/shop/web/${ids.partial}`, JSON.stringify({ id: ids.partial, created: goRfc3339(at(70)), version: '9', status: 'DEPLOYED' }));
  await original.etcd.put(`/deployer/deployments/shop/web/${ids.notJson}`, '{"id": "truncated');
  await original.etcd.put('/deployer/deployments/shop/stray-value', 'x');
  await original.log('shop', ids.orphan, [{ at: at(80), message: 'a log whose record was deleted' }]);
  await original.health('shop', ids.orphan, 'web-9-zzzzz', '{"healthy": true}');

  await original.environment('db-url', 'postgres://db/shop');
  await original.environment('FEATURE_X', 'on');
  await original.environment('shared-key', 'from-the-original');
  await original.environment('same-key', 'same');
  await original.environment('9lives', 'not a variable name');
  await original.etcd.mkdir('/deployer/environment/nested');
}

describe('import-amdatu: the original\'s etcd v2 data into cutover', () => {
  let v2: TestEtcdV2;
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let env: Record<string, string>;
  let cutoversOwnApi: string;
  const prefix = `/test-import-${randomUUID().slice(0, 8)}/`;
  const dataPrefixes = ['descriptors/', 'deployments/', 'app-records/', 'live/', 'events/', 'health/', 'versions/', 'environment/', 'imports/'];
  /** Every key of cutover's data with its revision: equal snapshots mean nothing was written. */
  const snapshot = async () => (await Promise.all(dataPrefixes.map((p) => cutover.kv.list(p)))).flatMap((r) => r.entries.map((e) => `${e.key}@${e.modRevision}`));
  const get = <T = unknown>(path: string) => request<T>(`${cutover.url}${path}`);
  const reportOf = (run: Run): ImportReport => {
    assert.doesNotThrow(() => JSON.parse(run.stdout), `stdout is the JSON report: ${run.stdout.slice(0, 500)} / ${run.stderr}`);
    return JSON.parse(run.stdout) as ImportReport;
  };
  const itemOf = (report: ImportReport, keyEnd: string) => {
    const found = report.items.find((i) => i.key.endsWith(keyEnd));
    assert.ok(found, `no report item for …${keyEnd}`);
    return found;
  };
  let firstRun: Run;

  before(async () => {
    [v2, etcd] = await Promise.all([TestEtcdV2.create(), TestEtcd.create()]);
    cutover = await startTestCutover(etcd.endpoint, { CUTOVER_ETCD_PREFIX: prefix });
    env = { CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_ETCD_PREFIX: prefix };
    await seed(new OriginalDeployerData(v2));
    // cutover's own state before the import: a live api, and environment values.
    cutoversOwnApi = randomUUID();
    assert.deepEqual((await get('/deployments?namespace=shop')).body, []);
    await new DeploymentStore(cutover.kv).importRecord({
      record: {
        id: cutoversOwnApi, created: '2026-01-01T00:00:00.000Z', lastModified: '2026-01-01T00:00:10.000Z', namespace: 'shop', appName: 'api', version: '12',
        status: 'DEPLOYED', step: 'deployed', OldVersion: '', times: {},
        descriptor: { id: randomUUID(), namespace: 'shop', appName: 'api', newVersion: '#', created: '2026-01-01T00:00:00.000Z', lastModified: '2026-01-01T00:00:00.000Z', deploymentType: 'blue-green', replicas: 1, controllerKind: 'Deployment', podspec: { containers: [{ name: 'api', image: 'x' }] }, redirectWww: false, useCompression: false, useStickySessions: false, additionHttpHeaders: [], useHealthCheck: false, ignoreHealthCheck: false, healthCheckType: 'probe', healthCheckPath: 'health' },
      },
      events: [], health: [], source: 'test-setup', mark: { from: 'test', at: '2026-01-01T00:00:00.000Z' }, live: true,
    });
    const environment = new EnvironmentStore(cutover.kv);
    await environment.set('shared-key', 'cutovers-own');
    await environment.set('same-key', 'same');
  });

  after(async () => {
    await cutover?.stop();
    await Promise.all([v2?.destroy(), etcd?.destroy()]);
  });

  it('--dry-run reports what it would import and writes nothing', async () => {
    const before = await snapshot();
    const run = await runAdmin(['import-amdatu', '--from', v2.endpoint, '--dry-run', '--json'], env);
    assert.equal(run.code, 3, `bad items make exit code 3: ${run.stderr}`);
    const report = reportOf(run);
    assert.equal(report.dryRun, true);
    assert.equal(report.etcdVersion?.startsWith('3.4.'), true);
    assert.equal(itemOf(report, ids.webV7).outcome, 'imported');
    assert.ok(report.counts.imported >= 10, JSON.stringify(report.counts));
    assert.deepEqual(await snapshot(), before, 'a dry run writes nothing');
    assert.deepEqual((await get('/descriptors?namespace=shop')).body, []);
  });

  it('imports descriptors, records with logs and health data, and environment values; reports bad ones', async () => {
    firstRun = await runAdmin(['import-amdatu', '--from', v2.endpoint, '--json'], env);
    assert.equal(firstRun.code, 3, firstRun.stderr);
    assert.equal(firstRun.stderr, '');
    const report = reportOf(firstRun);
    const outcome = (keyEnd: string) => itemOf(report, keyEnd).outcome;
    for (const id of [ids.descriptorWeb, ids.descriptorApi, ids.webV5, ids.webV6, ids.webV7, ids.webFailed, ids.webStuck, ids.webLongLog, ids.apiDeployed]) {
      assert.equal(outcome(id), 'imported', id);
    }
    for (const key of ['/environment/db-url', '/environment/FEATURE_X']) assert.equal(outcome(key), 'imported', key);
    // Bad and partial items are reported with their reason, never dropped silently.
    assert.match(itemOf(report, ids.descriptorBadId).detail ?? '', /differs from its key/);
    assert.match(itemOf(report, ids.descriptorInvalid).detail ?? '', /podspec\.containers/);
    assert.match(itemOf(report, ids.partial).detail ?? '', /no "descriptor"/);
    assert.match(itemOf(report, ids.notJson).detail ?? '', /not a JSON object/);
    assert.equal(outcome('/deployer/deployments/shop/stray-value'), 'bad');
    assert.equal(outcome('/environment/9lives'), 'bad');
    assert.match(itemOf(report, '/environment/nested').detail ?? '', /directory/);
    assert.match(itemOf(report, '/environment/shared-key').detail ?? '', /SHARED_KEY: cutover already has a different value/);
    assert.equal(outcome('/environment/same-key'), 'already-imported');
    assert.equal(itemOf(report, `/logs/shop/${ids.orphan}`).outcome, 'skipped');
    assert.equal(itemOf(report, `/healthcheckdata/shop/${ids.orphan}/web-9-zzzzz`).outcome, 'skipped');
    assert.deepEqual(report.counts, { imported: 11, 'already-imported': 1, skipped: 4, bad: 6 });
    assert.ok(!firstRun.stdout.includes('from-the-original') && !firstRun.stdout.includes('postgres://'), 'values are never shown');
    assert.ok(report.warnings.some((w) => w.includes(`cutover already has a live deployment ${cutoversOwnApi}`)), report.warnings.join('\n'));
  });

  it('the imported data reads through the REST API as the original served it', async () => {
    const descriptors = (await get<Array<{ id: string; appName: string; created: string; email?: string }>>('/descriptors?namespace=shop')).body;
    assert.deepEqual(descriptors.map((d) => d.id).sort(), [ids.descriptorWeb, ids.descriptorApi].sort());
    const web = descriptors.find((d) => d.id === ids.descriptorWeb)!;
    assert.equal(web.created, utc(at(0)), 'times in UTC ISO');
    assert.equal(web.email, undefined, 'the original\'s plain-text credentials are not carried over');

    const records = (await get<DeploymentRecord[]>('/deployments?namespace=shop&appname=web')).body;
    const byId = new Map(records.map((r) => [r.id, r]));
    assert.equal(records.length, 6);
    const v7 = byId.get(ids.webV7)!;
    assert.equal(v7.status, 'DEPLOYED');
    assert.equal(v7.version, '7');
    assert.equal(v7.OldVersion, '6');
    assert.equal(v7.importedFrom, 'amdatu');
    assert.deepEqual(v7.injectedEnvironment, ['DB_URL']);
    assert.deepEqual(v7.descriptor.podspec.containers[0]!.env, [{ name: 'MODE', value: 'prod' }], 'injected entries stripped, as the original did on read');
    assert.equal(byId.get(ids.webV5)?.status, 'UNDEPLOYED');
    assert.equal(byId.get(ids.webV5)?.replacedBy, ids.webV6);
    assert.equal(byId.get(ids.webFailed)?.status, 'FAILURE');
    const stuck = byId.get(ids.webStuck)!;
    assert.equal(stuck.status, 'FAILURE', 'a record stuck in DEPLOYING is not work cutover would pick up');
    assert.equal(stuck.originalStatus, 'DEPLOYING');
    assert.equal(stuck.version, '000');
    assert.equal((await new DeploymentStore(cutover.kv).live('shop', 'web'))?.deploymentId, ids.webV7, 'the original\'s DEPLOYED record is web\'s live one');

    const log = await get(`/deployments/${ids.webV7}/logs?namespace=shop`);
    assert.equal(log.status, 200);
    const lines = log.text.split('\n');
    assert.match(lines[0]!, /^\S+ Imported from the Amdatu deployer \(etcd v2 key \/deployer\/deployments\/shop\/web\/[0-9a-f-]+\); its status there: DEPLOYED$/);
    assert.equal(lines[1], `${utc(at(30))} Deployment id: ${ids.webV7}`);
    assert.equal(lines.slice(2, 6).join('\n'), `${utc(at(30, 1))} {\n  "appName": "web",\n  "newVersion": "#"\n}`, 'a multi-line message stays whole');
    assert.equal(lines[6], `${utc(at(30, 9))} Blue-green deployment successful`);
    const v5Log = (await get(`/deployments/${ids.webV5}/logs?namespace=shop`)).text;
    assert.ok(v5Log.includes(`${utc(at(20, 9))} Undeployed during deployment of ${ids.webV6}`), v5Log);
    const longLog = (await get(`/deployments/${ids.webLongLog}/logs?namespace=shop`)).text;
    assert.equal(longLog.split('\n').filter((l) => l.endsWith('retrying in 1 second')).length, 200, 'a log longer than one etcd transaction arrives whole');

    const health = (await get<Array<{ podName: string; value: string; healthy: boolean }>>(`/deployments/${ids.webV7}/healthcheckdata?namespace=shop`)).body;
    assert.deepEqual(health.map((h) => [h.podName, h.value, h.healthy]), [['web-7-abcde', '{"healthy": true, "version": "7"}', true], ['web-7-fghij', '{"healthy": true}', true]]);
    const failedHealth = (await get<Array<{ healthy: boolean; reason: string }>>(`/deployments/${ids.webFailed}/healthcheckdata?namespace=shop`)).body;
    assert.equal(failedHealth[0]?.healthy, false);

    const api = (await get<DeploymentRecord[]>('/deployments?namespace=shop&appname=api')).body;
    const importedApi = api.find((r) => r.id === ids.apiDeployed)!;
    assert.equal(importedApi.status, 'UNDEPLOYED', 'cutover\'s own live api is never replaced');
    assert.equal(importedApi.originalStatus, 'DEPLOYED');
    assert.equal((await new DeploymentStore(cutover.kv).live('shop', 'api'))?.deploymentId, cutoversOwnApi);

    const environment = (await get<Array<{ key: string; name: string; value: string }>>('/environment')).body;
    assert.deepEqual(environment.map((e) => `${e.name}=${e.value}`), ['DB_URL=postgres://db/shop', 'FEATURE_X=on', 'SAME_KEY=same', 'SHARED_KEY=cutovers-own']);
  });

  it('a second run imports nothing, writes nothing, and says so', async () => {
    const before = await snapshot();
    const run = await runAdmin(['import-amdatu', '--from', v2.endpoint], env);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stdout, /^summary: nothing new to import: 0 imported, 12 already there, 4 skipped, 6 bad/m);
    assert.match(run.stdout, new RegExp(`^already there\\s+deployment\\s+/deployer/deployments/shop/web/${ids.webV7}\\s+imported `, 'm'));
    assert.match(run.stdout, new RegExp(`^ {2}shop/web: live ${ids.webV7} \\(version 7\\), unchanged; "#" counter stays 8$`, 'm'));
    assert.deepEqual(await snapshot(), before);
  });

  it('"#" continues after the highest imported version', async () => {
    const res = await request<DeploymentRecord>(`${cutover.url}/deployments?namespace=shop&descriptorId=${ids.descriptorWeb}`, { method: 'POST' });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.body.version, '9', 'the original reached 8 (a failed deployment also used its number)');
  });

  it('fails clearly, without a stack trace, on a bad --from, an unreachable etcd, or an etcd without the v2 API', async () => {
    const closedPort = await freePort();
    const cases: Array<[string[], number, RegExp]> = [
      [['import-amdatu'], 2, /import-amdatu needs --from/],
      [['import-amdatu', '--from', 'etcd:2379'], 1, /--from must be an http:\/\/ or https:\/\/ URL/],
      [['import-amdatu', '--from', `http://127.0.0.1:${closedPort}`], 1, /cannot read http:\/\/127\.0\.0\.1:\d+\/version: connection refused/],
      [['import-amdatu', '--from', etcd.endpoint], 1, /does not serve etcd's v2 API .*--enable-v2=true/],
    ];
    const results = await Promise.all(cases.map(([args]) => runAdmin(args, env)));
    results.forEach((run, i) => {
      const [args, code, message] = cases[i]!;
      assert.equal(run.code, code, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
    });
  });

  it('takes seconds, not minutes, for this data set', (t) => {
    // A figure for docs: the whole command, Node and tsx start included.
    assert.ok(firstRun.ms < 60_000, `import took ${firstRun.ms} ms`);
    t.diagnostic(`import-amdatu: ${firstRun.ms} ms for ${reportOf(firstRun).items.length} items (${reportOf(firstRun).durationMs} ms importing)`);
  });
});
