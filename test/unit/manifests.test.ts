import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Descriptor } from '../../src/domain/types.js';
import {
  containerEnv, ingressPort, injectedEnvironmentNames, mainIngress, podPorts, stableService, versionedService, versionedWorkload, wwwRedirectIngress,
  type DeploymentFacts,
} from '../../src/deployer/manifests.js';
import { genericProfile, traefikProfile } from '../../src/deployer/ingress-profiles.js';
import {
  isAmdatuIngress, isAmdatuStableService, isAmdatuVersioned, mayManageIngress, mayManageStableService, mayManageVersioned,
} from '../../src/deployer/labels.js';

function descriptor(overrides: Partial<Descriptor> = {}): Descriptor {
  return {
    id: 'd1', namespace: 'shop', appName: 'web', newVersion: '#', created: '', lastModified: '', deploymentType: 'blue-green',
    replicas: 2, controllerKind: 'Deployment', redirectWww: false, useCompression: false, useStickySessions: false,
    additionHttpHeaders: [], useHealthCheck: true, ignoreHealthCheck: false, healthCheckType: 'probe', healthCheckPath: 'health',
    podspec: { containers: [{ name: 'web', image: 'example/web:1', ports: [{ containerPort: 8080 }], env: [{ name: 'MODE', value: 'prod' }] }] },
    ...overrides,
  };
}

function facts(d: Descriptor = descriptor(), environment = [{ name: 'DB_URL', value: 'postgres://db' }, { name: 'MODE', value: 'global' }]): DeploymentFacts {
  return { descriptor: d, version: '7', deploymentId: 'dep-1', environment };
}

describe('versioned workload', () => {
  it('is an apps/v1 Deployment named {app}-{version} with the contract labels, managed-by and the deployment id', () => {
    const w = versionedWorkload(facts()) as any;
    assert.equal(w.apiVersion, 'apps/v1');
    assert.equal(w.kind, 'Deployment');
    assert.equal(w.metadata.name, 'web-7');
    assert.equal(w.metadata.namespace, 'shop');
    assert.deepEqual(w.metadata.labels, { app: 'web', version: '7', name: 'web-7', 'app.kubernetes.io/managed-by': 'cutover' });
    assert.equal(w.metadata.annotations['cutover.io/deployment-id'], 'dep-1');
    assert.equal(w.spec.replicas, 2);
    assert.deepEqual(w.spec.selector, { matchLabels: { app: 'web', version: '7', name: 'web-7' } });
    assert.equal(w.spec.template.metadata.labels.version, '7');
  });

  it('is a ReplicationController when the descriptor asks for one', () => {
    const w = versionedWorkload(facts(descriptor({ controllerKind: 'ReplicationController' }))) as any;
    assert.equal(w.apiVersion, 'v1');
    assert.equal(w.kind, 'ReplicationController');
    assert.deepEqual(w.spec.selector, { app: 'web', version: '7', name: 'web-7' });
  });

  it('does not modify the descriptor it was built from', () => {
    const d = descriptor();
    const before = JSON.stringify(d);
    versionedWorkload(facts(d));
    assert.equal(JSON.stringify(d), before);
  });
});

describe('environment injection', () => {
  it('puts identity variables first, then environment-wide values the container does not set, then its own', () => {
    const env = containerEnv(descriptor().podspec.containers[0]!, facts());
    assert.deepEqual(env.map((e) => e.name), ['APP_NAME', 'POD_NAMESPACE', 'APP_VERSION', 'POD_NAME', 'DB_URL', 'MODE']);
    assert.equal(env.find((e) => e.name === 'APP_VERSION')!.value, '7');
    assert.equal(env.find((e) => e.name === 'POD_NAMESPACE')!.value, 'shop');
    assert.equal(env.find((e) => e.name === 'POD_NAME')!.valueFrom!.fieldRef!.fieldPath, 'metadata.name');
    assert.equal(env.find((e) => e.name === 'MODE')!.value, 'prod', "the descriptor's own value wins over the environment-wide one");
  });

  it('never lets a container override the identity variables', () => {
    const d = descriptor({ podspec: { containers: [{ name: 'c', image: 'i', env: [{ name: 'APP_VERSION', value: 'fake' }] }] } });
    const env = containerEnv(d.podspec.containers[0]!, facts(d, []));
    assert.deepEqual(env.filter((e) => e.name === 'APP_VERSION').map((e) => e.value), ['7']);
  });

  it('injects into every container and reports the injected names', () => {
    const d = descriptor({ podspec: { containers: [{ name: 'a', image: 'i' }, { name: 'b', image: 'i', env: [{ name: 'DB_URL', value: 'x' }] }] } });
    const w = versionedWorkload(facts(d)) as any;
    for (const c of w.spec.template.spec.containers) assert.ok(c.env.some((e: { name: string }) => e.name === 'APP_NAME'));
    assert.deepEqual(injectedEnvironmentNames(facts(d)), ['DB_URL', 'MODE']);
  });
});

describe('services', () => {
  it('versioned Service selects the version and exposes the container ports by number', () => {
    const s = versionedService(facts()) as any;
    assert.equal(s.metadata.name, 'web-7');
    assert.deepEqual(s.spec.selector, { app: 'web', version: '7', name: 'web-7' });
    assert.deepEqual(s.spec.ports, [{ name: undefined, port: 8080, protocol: 'TCP', targetPort: 8080 }]);
  });

  it('names ports when there are several and targets named ports by name on the stable Service', () => {
    const d = descriptor({ podspec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 8080, name: 'http' }, { containerPort: 9999 }] }] } });
    assert.deepEqual((versionedService(facts(d)) as any).spec.ports.map((p: any) => p.name), ['http', 'port-9999']);
    const stable = stableService(d, '7') as any;
    assert.equal(stable.metadata.name, 'web');
    assert.deepEqual(stable.metadata.labels, { app: 'web', name: 'web', persistent: 'true', 'app.kubernetes.io/managed-by': 'cutover' });
    assert.deepEqual(stable.spec.selector, { app: 'web', version: '7' });
    assert.deepEqual(stable.spec.ports.map((p: any) => p.targetPort), ['http', 9999]);
  });

  it('has no Services for pods without ports (workers)', () => {
    const d = descriptor({ podspec: { containers: [{ name: 'worker', image: 'i' }] } });
    assert.equal(versionedService(facts(d)), undefined);
    assert.equal(stableService(d, '7'), undefined);
    assert.deepEqual(podPorts(d.podspec), []);
  });
});

describe('ingresses', () => {
  it('routes the frontend to the versioned Service on the first port not named healthcheck', () => {
    const d = descriptor({
      frontend: 'shop.example.com',
      podspec: { containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 9999, name: 'healthcheck' }, { containerPort: 8080, name: 'http' }] }] },
    });
    assert.equal(ingressPort(d.podspec), 8080);
    const ing = mainIngress({ descriptor: d, version: '7', ingressClassName: 'traefik', tlsSecretName: 'shop-tls' }) as any;
    assert.equal(ing.apiVersion, 'networking.k8s.io/v1');
    assert.equal(ing.metadata.name, 'web');
    assert.equal(ing.spec.ingressClassName, 'traefik');
    assert.deepEqual(ing.spec.tls, [{ hosts: ['shop.example.com'], secretName: 'shop-tls' }]);
    assert.equal(ing.spec.rules[0].host, 'shop.example.com');
    assert.deepEqual(ing.spec.rules[0].http.paths[0].backend, { service: { name: 'web-7', port: { number: 8080 } } });
  });

  it('has no TLS section without a secret, and no Ingress without a frontend', () => {
    const d = descriptor({ frontend: 'shop.example.com' });
    assert.equal((mainIngress({ descriptor: d, version: '7' }) as any).spec.tls, undefined);
    assert.equal(mainIngress({ descriptor: descriptor(), version: '7' }), undefined);
  });

  it('builds the www redirect Ingress only when asked, pointing at the stable Service', () => {
    const d = descriptor({ frontend: 'shop.example.com', redirectWww: true });
    const www = wwwRedirectIngress({ descriptor: d, version: '7' }) as any;
    assert.equal(www.metadata.name, 'web-www-redirect');
    assert.equal(www.spec.rules[0].host, 'www.shop.example.com');
    assert.equal(www.spec.rules[0].http.paths[0].backend.service.name, 'web');
    assert.equal(wwwRedirectIngress({ descriptor: descriptor({ frontend: 'shop.example.com' }), version: '7' }), undefined);
  });
});

describe('ingress profiles', () => {
  const rich = descriptor({
    frontend: 'shop.example.com', redirectWww: true, useCompression: true, useStickySessions: true,
    additionHttpHeaders: [{ Header: 'X-Frame-Options', Value: 'DENY' }],
  });

  it('traefik: sticky cookie on the Services, Middlewares for compression, headers and the www redirect', () => {
    const t = traefikProfile.decorate(rich);
    assert.equal(t.serviceAnnotations['traefik.ingress.kubernetes.io/service.sticky.cookie'], 'true');
    assert.equal(t.ingressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'], 'shop-web-compress@kubernetescrd,shop-web-headers@kubernetescrd');
    assert.equal(t.wwwIngressAnnotations['traefik.ingress.kubernetes.io/router.middlewares'], 'shop-web-www-redirect@kubernetescrd');
    const byName = Object.fromEntries(t.extraObjects.map((o: any) => [o.metadata.name, o]));
    assert.deepEqual(byName['web-compress'].spec, { compress: {} });
    assert.deepEqual(byName['web-headers'].spec, { headers: { customResponseHeaders: { 'X-Frame-Options': 'DENY' } } });
    const redirect = byName['web-www-redirect'].spec.redirectRegex;
    assert.ok(new RegExp(redirect.regex).test('https://www.shop.example.com/a?b'));
    assert.ok(!new RegExp(redirect.regex).test('https://www.shopXexample.com/'));
    assert.equal(redirect.permanent, true);
    for (const o of t.extraObjects) assert.equal((o as any).metadata.labels['app.kubernetes.io/managed-by'], 'cutover');
  });

  it('generic: no annotations, and a note naming what it cannot express', () => {
    const g = genericProfile.decorate(rich);
    assert.deepEqual(g.ingressAnnotations, {});
    assert.deepEqual(g.extraObjects, []);
    assert.match(g.notes.join(' '), /useStickySessions, useCompression, additionHttpHeaders, redirectWww/);
    assert.deepEqual(genericProfile.decorate(descriptor()).notes, []);
  });
});

describe('what cutover may touch', () => {
  it('manages its own objects and the Amdatu deployer\'s, never others that share the app label', () => {
    assert.ok(mayManageVersioned({ name: 'web-7', labels: { app: 'web', version: '7', name: 'web-7', 'app.kubernetes.io/managed-by': 'cutover' } }, 'web'));
    assert.ok(isAmdatuVersioned({ name: 'web-3', labels: { app: 'web', version: '3', name: 'web-3' } }, 'web'));
    assert.ok(!mayManageVersioned({ name: 'web-cache', labels: { app: 'web' } }, 'web'));
    assert.ok(!mayManageVersioned({ name: 'web-7', labels: { app: 'other', version: '7', name: 'other-7', 'app.kubernetes.io/managed-by': 'cutover' } }, 'web'));
    assert.ok(isAmdatuStableService({ name: 'web', labels: { app: 'web', name: 'web', persistent: 'true' } }, 'web'));
    assert.ok(!mayManageStableService({ name: 'web', labels: { app: 'web' } }, 'web'));
    assert.ok(isAmdatuIngress({ name: 'web', annotations: { 'kubernetes.io/ingress.class': 'nginx' } }, 'web'));
    assert.ok(!mayManageIngress({ name: 'web', annotations: {} }, 'web'));
  });
});
