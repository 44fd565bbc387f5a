import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validateDescriptor } from '../../src/domain/descriptor-schema.js';
import { normaliseAppName, normaliseVersion, versionedName } from '../../src/domain/names.js';

const container = { name: 'web', image: 'example/web:1', ports: [{ containerPort: 8080 }] };
const minimal = { appName: 'web', podspec: { containers: [container] } };

function problems(input: unknown): Record<string, string> {
  const r = validateDescriptor(input);
  assert.equal(r.ok, false, 'expected the descriptor to be invalid');
  return Object.fromEntries((r as { problems: Array<{ path: string; message: string }> }).problems.map((p) => [p.path, p.message]));
}

function valid(input: unknown) {
  const r = validateDescriptor(input);
  assert.ok(r.ok, `expected a valid descriptor, got ${JSON.stringify(!r.ok && r.problems)}`);
  return r.value;
}

describe('names', () => {
  it('normalises app names and versions like the original deployer', () => {
    assert.equal(normaliseAppName('My.App_Name'), 'my-app-name');
    assert.equal(normaliseVersion('1.2.0'), '1-2-0');
    assert.equal(normaliseVersion('RC_1'), 'rc-1');
    assert.equal(normaliseVersion('#'), '#');
    assert.equal(versionedName('shop', '12'), 'shop-12');
  });
});

describe('descriptor defaults', () => {
  it('fills every default', () => {
    const d = valid(minimal);
    assert.equal(d.newVersion, '#');
    assert.equal(d.replicas, 1);
    assert.equal(d.deploymentType, 'blue-green');
    assert.equal(d.controllerKind, undefined, 'resolved per deployment from CUTOVER_DEFAULT_CONTROLLER_KIND');
    assert.equal(d.healthCheckType, 'probe');
    assert.equal(d.healthCheckPath, 'health');
    assert.equal(d.useHealthCheck, false);
    assert.equal(d.ignoreHealthCheck, false);
    assert.deepEqual(d.additionHttpHeaders, []);
  });

  it('normalises appName, version (1.2.0 → 1-2-0), health-check type and path', () => {
    const d = valid({ ...minimal, appName: 'Shop.Front_End', newVersion: '1.2.0', healthCheckType: 'SIMPLE', healthCheckPath: '/status/health' });
    assert.equal(d.appName, 'shop-front-end');
    assert.equal(d.newVersion, '1-2-0');
    assert.equal(d.healthCheckType, 'simple');
    assert.equal(d.healthCheckPath, 'status/health');
  });

  it('accepts legacy fields, never keeps email/password, and merges top-level imagePullSecrets into the podspec', () => {
    const d = valid({
      ...minimal, email: 'x@y.z', password: 'secret', environment: { A: 'b' }, webhooks: [{ key: 'k1', description: 'ci' }],
      deployedVersion: '3', deploymentTs: '2017', useExternalHealthCheck: false, readinessPort: 9999,
      imagePullSecrets: [{ name: 'registry' }],
    }) as Record<string, unknown>;
    assert.equal('email' in d, false);
    assert.equal('password' in d, false);
    assert.equal('environment' in d, false);
    assert.equal('imagePullSecrets' in d, false);
    assert.deepEqual((d['podspec'] as { imagePullSecrets: unknown }).imagePullSecrets, [{ name: 'registry' }]);
    assert.deepEqual(d['webhooks'], [{ key: 'k1', description: 'ci' }]);
  });

  it('unescapes the HAProxy-era "\\ " in header values', () => {
    const d = valid({ ...minimal, additionHttpHeaders: [{ Header: 'X-Frame-Options', Value: 'allow\\ from' }] });
    assert.deepEqual(d.additionHttpHeaders, [{ Header: 'X-Frame-Options', Value: 'allow from' }]);
  });
});

describe('descriptor validation', () => {
  it('rejects a non-object', () => {
    assert.ok('' in problems([1]));
    assert.ok('' in problems(null));
  });

  it('reports unknown top-level fields by name', () => {
    const p = problems({ ...minimal, replica: 2, imagePullSecret: [] });
    assert.match(p['replica']!, /"replica" is not allowed/);
    assert.match(p['imagePullSecret']!, /not allowed/);
  });

  it('requires containers with names and images', () => {
    assert.ok(problems({ appName: 'a' })['podspec']);
    assert.ok(problems({ appName: 'a', podspec: { containers: [] } })['podspec.containers']);
    const p = problems({ appName: 'a', podspec: { containers: [{ image: '' }] } });
    assert.ok(p['podspec.containers.0.name']);
    assert.ok(p['podspec.containers.0.image']);
    assert.match(problems({ appName: 'a', podspec: { containers: [container, { ...container }] } })['podspec.containers.1']!, /unique container names/);
  });

  it('keeps {appName}-{version} a valid Service name of at most 63 characters', () => {
    valid({ ...minimal, appName: 'a'.repeat(56) }); // 56 + "-" + 6 reserved digits = 63
    assert.match(problems({ ...minimal, appName: 'a'.repeat(57) })['appName']!, /63/);
    valid({ ...minimal, appName: 'a'.repeat(50), newVersion: '1.2.3.4' });
    assert.ok(problems({ ...minimal, appName: 'a'.repeat(55), newVersion: '10.20.30' })['appName']);
    assert.ok(problems({ ...minimal, appName: '1app' })['appName'], 'a Service name starts with a letter');
    assert.ok(problems({ ...minimal, newVersion: '1.0-' })['newVersion']);
    assert.ok(problems({ ...minimal, newVersion: 'v 1' })['newVersion']);
  });

  it('checks replicas 1..1000, health-check type and port', () => {
    // Zero pods would count as "all ready" and traffic would switch to nothing (invariant I1).
    assert.match(problems({ ...minimal, replicas: 0 })['replicas'] ?? '', /greater than or equal to 1/);
    valid({ ...minimal, replicas: 1 });
    valid({ ...minimal, replicas: 1000 });
    assert.ok(problems({ ...minimal, replicas: 1001 })['replicas']);
    assert.ok(problems({ ...minimal, replicas: 1.5 })['replicas']);
    assert.ok(problems({ ...minimal, healthCheckType: 'tcp' })['healthCheckType']);
    assert.ok(problems({ ...minimal, healthCheckPort: 0 })['healthCheckPort']);
    assert.ok(problems({ ...minimal, healthCheckPort: 65536 })['healthCheckPort']);
    valid({ ...minimal, healthCheckPort: 65535 });
  });

  it('wants frontend as a bare host name', () => {
    valid({ ...minimal, frontend: 'shop.example.com' });
    valid({ ...minimal, frontend: '*.example.com' });
    for (const bad of ['https://shop.example.com', 'shop.example.com:8443', 'shop.example.com/path', 'shop example.com', '-x.com']) {
      assert.ok(problems({ ...minimal, frontend: bad })['frontend'], bad);
    }
  });

  it('refuses header names and values that could split a response', () => {
    const p = problems({ ...minimal, additionHttpHeaders: [{ Header: 'X-A\r\nSet-Cookie', Value: 'v' }, { Header: 'X-B', Value: 'a\r\nb' }] });
    assert.ok(p['additionHttpHeaders.0.Header']);
    assert.match(p['additionHttpHeaders.1.Value']!, /CR, LF/);
  });

  it('reports every problem at once', () => {
    const p = problems({ appName: '', replicas: -1, frontend: 'http://x', podspec: { containers: [{}] }, bogus: true });
    assert.deepEqual(Object.keys(p).sort(), ['appName', 'bogus', 'frontend', 'podspec.containers.0.image', 'podspec.containers.0.name', 'replicas']);
  });
});
