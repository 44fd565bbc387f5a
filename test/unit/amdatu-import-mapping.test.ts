import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  cleanOriginalDescriptor, importEvents, mapDeployment, mapDescriptor, mapEnvironmentKey, mapHealth, notLive,
  parseOriginalLog, parseOriginalTime, type MappedDeployment,
} from '../../src/admin/amdatu/mapping.js';
import { readOriginalLayout, valuesAtDepth, type SourceProblem } from '../../src/admin/amdatu/layout.js';
import { parseSourceUrl, SourceError } from '../../src/admin/amdatu/etcd-v2.js';
import type { V2Node } from '../../src/admin/amdatu/etcd-v2.js';

/** The pure parts of `cutover-admin import-amdatu`: the original's values → cutover's. */

const DESCRIPTOR_ID = '0b6f4d5e-8a43-4b7c-9f0e-3d2a1c9b8e71';
const DEPLOYMENT_ID = '5a1e2f3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b';

/** A descriptor as the original stored it (Go field names, RFC3339 local times, its defaults applied). */
function originalDescriptor(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: DESCRIPTOR_ID, created: '2017-10-12T14:03:22+02:00', lastModified: '2017-10-12T14:05:00+02:00',
    deploymentType: 'blue-green', newVersion: '#', appName: 'web', replicas: 2, frontend: 'shop.example.com',
    podspec: {
      containers: [{ name: 'web', image: 'example/web:1', ports: [{ containerPort: 8080, protocol: 'TCP' }], env: [{ name: 'MODE', value: 'prod' }], resources: {}, imagePullPolicy: 'Always' }],
      restartPolicy: 'Always', dnsPolicy: 'ClusterFirst',
    },
    namespace: 'shop', email: 'ops@example.com', password: 'hunter2',
    useHealthCheck: true, healthCheckPath: '/health', healthCheckType: 'probe',
    additionHttpHeaders: [{ Header: 'X-Frame-Options', Value: 'SAME\\ ORIGIN' }],
    ...overrides,
  };
}

/** The descriptor copy inside a deployment: with the env entries the original injected, and its `environment` map. */
function embeddedDescriptor(): Record<string, unknown> {
  const d = originalDescriptor();
  const podspec = d['podspec'] as { containers: Array<Record<string, unknown>> };
  podspec.containers[0]!['env'] = [
    { name: 'MODE', value: 'prod' }, { name: 'APP_NAME', value: 'web' }, { name: 'POD_NAMESPACE', value: 'shop' },
    { name: 'APP_VERSION', value: '7' }, { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    { name: 'DB_URL', value: 'postgres://db' },
  ];
  return { ...d, environment: { DB_URL: 'postgres://db' } };
}

function originalDeployment(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: DEPLOYMENT_ID, created: '2017-10-12T14:10:00+02:00', lastModified: '2017-10-12T14:10:09+02:00',
    version: '7', status: 'DEPLOYED', descriptor: embeddedDescriptor(), OldVersion: '6', ...overrides,
  };
}

const item = (kind: 'descriptors' | 'deployments', value: unknown, id = kind === 'descriptors' ? DESCRIPTOR_ID : DEPLOYMENT_ID) => ({
  key: `/deployer/${kind}/shop/web/${id}`, value: typeof value === 'string' ? value : JSON.stringify(value, null, 2), namespace: 'shop', appName: 'web', id,
});

describe('amdatu import: times', () => {
  it('turns the original\'s RFC3339 local times into UTC ISO times (which sort as strings)', () => {
    assert.equal(parseOriginalTime('2017-10-12T14:03:22+02:00'), '2017-10-12T12:03:22.000Z');
    assert.equal(parseOriginalTime('2017-10-12T14:03:22Z'), '2017-10-12T14:03:22.000Z');
    assert.equal(parseOriginalTime('2017-10-12 14:03:22'), undefined);
    assert.equal(parseOriginalTime(''), undefined);
    assert.equal(parseOriginalTime(1507810000), undefined);
  });
});

describe('amdatu import: descriptors', () => {
  it('keeps id and times, applies cutover\'s defaults and normalisation, and drops email and password', () => {
    const mapped = mapDescriptor(item('descriptors', originalDescriptor()));
    assert.ok(mapped.ok, !mapped.ok ? mapped.reason : '');
    const d = mapped.value;
    assert.equal(d.id, DESCRIPTOR_ID);
    assert.equal(d.namespace, 'shop');
    assert.equal(d.created, '2017-10-12T12:03:22.000Z');
    assert.equal(d.lastModified, '2017-10-12T12:05:00.000Z');
    assert.equal(d.newVersion, '#');
    assert.equal(d.healthCheckPath, 'health', 'leading "/" removed, as cutover stores it');
    assert.equal(d.controllerKind, undefined, 'no kind: each deployment takes CUTOVER_DEFAULT_CONTROLLER_KIND');
    assert.deepEqual(d.additionHttpHeaders, [{ Header: 'X-Frame-Options', Value: 'SAME ORIGIN' }], 'the original\'s HAProxy escape undone');
    assert.equal('email' in d || 'password' in d, false);
    assert.ok(mapped.notes.some((n) => n.includes('email')), mapped.notes.join('; '));
    assert.deepEqual(d.podspec.containers[0]!.env, [{ name: 'MODE', value: 'prod' }]);
  });

  it('refuses what cutover cannot store or deploy, saying why', () => {
    const notJson = mapDescriptor(item('descriptors', '{"id": '));
    assert.equal(notJson.ok, false);
    assert.match((notJson as { reason: string }).reason, /not a JSON object/);
    const otherId = mapDescriptor(item('descriptors', originalDescriptor({ id: 'something-else' })));
    assert.match((otherId as { reason: string }).reason, /differs from its key/);
    const otherNs = mapDescriptor(item('descriptors', originalDescriptor({ namespace: 'other' })));
    assert.match((otherNs as { reason: string }).reason, /namespace/);
    const noContainers = mapDescriptor(item('descriptors', originalDescriptor({ podspec: { containers: null } })));
    assert.match((noContainers as { reason: string }).reason, /podspec\.containers/);
    const noTimes = mapDescriptor(item('descriptors', originalDescriptor({ created: undefined, lastModified: 'later' })));
    assert.match((noTimes as { reason: string }).reason, /created/);
  });

  it('uses one time for the other when only one is readable, and says so', () => {
    const mapped = mapDescriptor(item('descriptors', originalDescriptor({ created: undefined })));
    assert.ok(mapped.ok);
    assert.equal(mapped.value.created, '2017-10-12T12:05:00.000Z');
    assert.ok(mapped.notes.some((n) => n.includes('"created"')));
  });

  it('strips what the original injected, as its cleanDescriptor did on every read', () => {
    const { descriptor, injected } = cleanOriginalDescriptor(embeddedDescriptor());
    assert.deepEqual(injected, ['DB_URL']);
    assert.equal('environment' in descriptor, false);
    const env = (descriptor['podspec'] as { containers: Array<{ env?: Array<{ name: string }> }> }).containers[0]!.env!;
    assert.deepEqual(env.map((e) => e.name), ['MODE']);
  });
});

describe('amdatu import: logs', () => {
  it('splits the log into lines with their own times; multi-line messages stay one message', () => {
    const text = [
      '2017-10-12T14:10:00+02:00 Deployment id: x',
      '2017-10-12T14:10:01+02:00 {',
      '  "appName": "web"',
      '}',
      '2017-10-12T14:10:09+02:00 Blue-green deployment successful',
      'Undeployed during deployment of 9f8e7d6c-0000-4000-8000-000000000000',
      '',
    ].join('\n');
    const lines = parseOriginalLog(text, { created: '2017-10-12T12:10:00.000Z', replacedAt: '2017-10-12T12:20:00.000Z' });
    assert.deepEqual(lines, [
      { time: '2017-10-12T12:10:00.000Z', message: 'Deployment id: x' },
      { time: '2017-10-12T12:10:01.000Z', message: '{\n  "appName": "web"\n}' },
      { time: '2017-10-12T12:10:09.000Z', message: 'Blue-green deployment successful' },
      { time: '2017-10-12T12:20:00.000Z', message: 'Undeployed during deployment of 9f8e7d6c-0000-4000-8000-000000000000' },
    ]);
  });

  it('gives a leading line without a time the record\'s created time', () => {
    assert.deepEqual(parseOriginalLog('no time here\n', { created: 'C', replacedAt: 'R' }), [{ time: 'C', message: 'no time here' }]);
    assert.deepEqual(parseOriginalLog('', { created: 'C', replacedAt: 'R' }), []);
  });
});

describe('amdatu import: health data', () => {
  const at = '2017-10-12T12:10:09.000Z';
  it('keeps the original value and judges it as the original did', () => {
    const probe = mapHealth('web-7-abcde', '{"healthy": true, "details": "ok"}', at);
    assert.equal(probe.healthy, true);
    assert.equal(probe.value, '{"healthy": true, "details": "ok"}');
    assert.equal(probe.checkedAt, at);
    assert.match(probe.reason, /imported from the Amdatu deployer/);
    assert.equal(mapHealth('p', '{"healthy": false}', at).healthy, false);
    assert.equal(mapHealth('p', 'not json', at).healthy, false);
    assert.equal(mapHealth('p', '{"simplehealthcheck": "http get success"}', at).healthy, true);
    assert.equal(mapHealth('p', '{"simplehealthcheck": "http get statuscode != 200"}', at).healthy, false);
    const failed = mapHealth('p', '{"probehealthcheck": "failed: dial tcp 10.0.0.7:9999: connection refused"}', at);
    assert.equal(failed.healthy, false);
    assert.match(failed.reason, /connection refused/);
  });
});

describe('amdatu import: deployment records', () => {
  const log = { key: `/deployer/logs/shop/${DEPLOYMENT_ID}`, value: '2017-10-12T14:10:00+02:00 Deployment id: x\n' };

  it('maps a DEPLOYED record with its log and health data, marked as imported', () => {
    const mapped = mapDeployment(item('deployments', originalDeployment()), log, [{ podName: 'web-7-abcde', value: '{"healthy":true}' }]);
    assert.ok(mapped.ok, !mapped.ok ? mapped.reason : '');
    const { record } = mapped.value;
    assert.equal(record.id, DEPLOYMENT_ID);
    assert.equal(record.status, 'DEPLOYED');
    assert.equal(record.step, 'deployed');
    assert.equal(record.version, '7');
    assert.equal(record.OldVersion, '6');
    assert.equal(record.importedFrom, 'amdatu');
    assert.equal(record.originalStatus, undefined, 'only set when the status changed');
    assert.equal(record.created, '2017-10-12T12:10:00.000Z');
    assert.deepEqual(record.injectedEnvironment, ['DB_URL']);
    assert.deepEqual(record.descriptor.podspec.containers[0]!.env, [{ name: 'MODE', value: 'prod' }], 'injected entries stripped');
    assert.equal(record.descriptor.id, DESCRIPTOR_ID);
    assert.equal(mapped.value.numericVersion, 7);
    assert.equal(mapped.value.log.length, 1);
    assert.equal(mapped.value.health[0]?.healthy, true);
  });

  it('imports records stuck in DEPLOYING or UNDEPLOYING as FAILURE, keeping what they were', () => {
    for (const status of ['DEPLOYING', 'UNDEPLOYING']) {
      const mapped = mapDeployment(item('deployments', originalDeployment({ status, version: '000' })), log, []);
      assert.ok(mapped.ok);
      assert.equal(mapped.value.record.status, 'FAILURE');
      assert.equal(mapped.value.record.originalStatus, status);
      assert.match(mapped.value.record.failureReason ?? '', new RegExp(`was ${status}`));
      assert.equal(mapped.value.numericVersion, 0, '"000" (a "#" deployment not yet resolved) counts as 0');
    }
  });

  it('notes a missing log and reads the replacing deployment from the original\'s log line', () => {
    const noLog = mapDeployment(item('deployments', originalDeployment({ status: 'UNDEPLOYED' })), undefined, []);
    assert.ok(noLog.ok);
    assert.ok(noLog.notes.some((n) => n.includes('no log')));
    const replaced = mapDeployment(item('deployments', originalDeployment({ status: 'UNDEPLOYED' })), { key: 'k', value: `${log.value}Undeployed during deployment of abc-123\n` }, []);
    assert.ok(replaced.ok);
    assert.equal(replaced.value.record.replacedBy, 'abc-123');
  });

  it('reports partial and bad records with the reason', () => {
    const reasonOf = (value: unknown) => {
      const mapped = mapDeployment(item('deployments', value), log, []);
      assert.equal(mapped.ok, false);
      return (mapped as { reason: string }).reason;
    };
    assert.match(reasonOf('garbage'), /not a JSON object/);
    assert.match(reasonOf(originalDeployment({ descriptor: undefined })), /no "descriptor"/);
    assert.match(reasonOf(originalDeployment({ status: 'WEIRD' })), /no known "status"/);
    assert.match(reasonOf(originalDeployment({ version: undefined })), /no usable "version"/);
    assert.match(reasonOf(originalDeployment({ created: 'x', lastModified: undefined })), /created/);
    assert.match(reasonOf(originalDeployment({ descriptor: { ...embeddedDescriptor(), podspec: { containers: [] } } })), /descriptor copy/);
  });

  it('a DEPLOYED record that cannot be live becomes UNDEPLOYED, and its first log line says so', () => {
    const mapped = mapDeployment(item('deployments', originalDeployment()), log, []);
    assert.ok(mapped.ok);
    const demoted: MappedDeployment = notLive(mapped.value);
    assert.equal(demoted.record.status, 'UNDEPLOYED');
    assert.equal(demoted.record.originalStatus, 'DEPLOYED');
    const events = importEvents(demoted, '2026-01-01T00:00:00.000Z', 'cutover already has a live deployment');
    assert.equal(events[0]?.type, 'log');
    assert.equal(events[0]?.time, '2026-01-01T00:00:00.000Z');
    assert.match((events[0] as { message: string }).message, /^Imported from the Amdatu deployer \(etcd v2 key \/deployer\/deployments\/shop\/web\/.*status there: DEPLOYED; imported as UNDEPLOYED: cutover already/);
    assert.deepEqual(events[events.length - 1], { type: 'status', time: demoted.record.lastModified, status: 'UNDEPLOYED', step: 'undeployed' });
    assert.equal(events.length, 3);
  });
});

describe('amdatu import: environment values', () => {
  it('accepts the keys the /environment API accepts', () => {
    const ok = mapEnvironmentKey('db-url', 'x');
    assert.ok(ok.ok);
    assert.deepEqual(ok.value, { key: 'db-url', variable: 'DB_URL' });
    assert.equal(mapEnvironmentKey('9lives', 'x').ok, false);
    assert.equal(mapEnvironmentKey('has space', 'x').ok, false);
    assert.equal(mapEnvironmentKey('big', 'x'.repeat(64 * 1024 + 1)).ok, false);
  });
});

describe('amdatu import: the original\'s layout', () => {
  const dir = (key: string, nodes: V2Node[]): V2Node => ({ key, dir: true, nodes });
  const value = (key: string, v: string): V2Node => ({ key, value: v });

  it('sorts keys into kinds and reports what is not in the original\'s shape', () => {
    const data = readOriginalLayout({
      deployments: dir('/deployer/deployments', [
        dir('/deployer/deployments/shop', [
          dir('/deployer/deployments/shop/web', [value('/deployer/deployments/shop/web/id1', '{}'), dir('/deployer/deployments/shop/web/odd', [])]),
          value('/deployer/deployments/shop/stray', 'x'),
          dir('/deployer/deployments/shop/empty', []),
        ]),
      ]),
      logs: dir('/deployer/logs', [dir('/deployer/logs/shop', [value('/deployer/logs/shop/id1', 'log')])]),
      health: dir('/deployer/healthcheckdata', [dir('/deployer/healthcheckdata/shop', [dir('/deployer/healthcheckdata/shop/id1', [value('/deployer/healthcheckdata/shop/id1/pod-a', 'h')])])]),
      environment: dir('/deployer/environment', [value('/deployer/environment/db-url', 'v'), dir('/deployer/environment/nested', [])]),
    });
    assert.deepEqual(data.deployments.map((d) => [d.namespace, d.appName, d.id]), [['shop', 'web', 'id1']]);
    assert.equal(data.logs.get('shop/id1')?.value, 'log');
    assert.deepEqual(data.health.get('shop/id1')?.map((h) => h.podName), ['pod-a']);
    assert.deepEqual(data.environment.map((e) => e.name), ['db-url']);
    assert.deepEqual(data.environmentDirectories, ['/deployer/environment/nested']);
    assert.deepEqual(data.problems.map((p) => p.key).sort(), ['/deployer/deployments/shop/stray', '/deployer/deployments/shop/web/odd']);
    assert.deepEqual(data.descriptors, []);
  });

  it('treats a missing tree as empty and a value in place of a tree as a problem', () => {
    const problems: SourceProblem[] = [];
    assert.deepEqual(valuesAtDepth(undefined, 3, problems), []);
    assert.deepEqual(valuesAtDepth(value('/deployer/logs', 'x'), 2, problems), []);
    assert.equal(problems.length, 1);
  });
});

describe('amdatu import: --from', () => {
  it('accepts http(s) endpoints and explains what is wrong with anything else', () => {
    assert.equal(parseSourceUrl('http://etcd:2379').origin, 'http://etcd:2379');
    assert.equal(parseSourceUrl('https://etcd.example.com:2379/').protocol, 'https:');
    for (const bad of ['etcd:2379', 'not a url', 'ftp://etcd', 'http://u:p@etcd:2379', 'http://etcd:2379/?x=1']) {
      assert.throws(() => parseSourceUrl(bad), SourceError, bad);
    }
  });
});
