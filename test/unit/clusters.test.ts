import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, ConfigError } from '../../src/config.js';
import { clusterScope, loadClusterRegistry, registryFrom } from '../../src/clusters/registry.js';
import { Fleet, type FleetMember } from '../../src/clusters/fleet.js';
import { Releases } from '../../src/clusters/releases.js';
import { syncCluster } from '../../src/clusters/sync.js';
import { DeploymentRequests } from '../../src/deployer/requests.js';
import { deployedImages, pinnedDescriptor } from '../../src/deployer/images.js';
import { releaseStatus } from '../../src/domain/release.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import type { Descriptor } from '../../src/domain/types.js';
import { InvalidRequestError, StateConflictError } from '../../src/domain/errors.js';
import { DeploymentStore } from '../../src/store/deployments.js';
import { EtcdDescriptorStore } from '../../src/store/descriptors.js';
import { keys, SHARED_KEY_FAMILIES } from '../../src/store/keys.js';
import { ReleaseStore } from '../../src/store/releases.js';
import { ScopedKv } from '../../src/store/scoped-kv.js';
import { MemoryCluster } from '../support/memory-cluster.js';
import { MemoryKv } from '../support/memory-kv.js';
import { ALL_NAMESPACES, assertMayChangeIn, mayChangeIn, mayUseNamespace, type Caller } from '../../src/auth/caller.js';

const config = loadConfig({});
const DIGEST = `sha256:${'a'.repeat(64)}`;

function descriptor(over: Partial<Descriptor> = {}): Descriptor {
  const at = new Date().toISOString();
  return {
    id: 'd1', namespace: 'shop', appName: 'web', newVersion: '#', created: at, lastModified: at, deploymentType: 'blue-green', replicas: 1,
    podspec: { containers: [{ name: 'web', image: 'registry.test/web:1.0' }] }, redirectWww: false, useCompression: false, useStickySessions: false,
    additionHttpHeaders: [], useHealthCheck: false, ignoreHealthCheck: false, healthCheckType: 'probe', healthCheckPath: '/health', ...over,
  };
}

const REGISTRY = {
  clusters: [
    { name: 'dev', environment: 'dev', kubeconfig: '/k/dev' },
    { name: 'prod-a', environment: 'production', kubeconfig: '/k/a', healthCheckMode: 'proxy' },
    { name: 'prod-b', environment: 'production', kubeconfig: '/k/b' },
  ],
};

/** Three clusters on one in-memory etcd, as src/service.ts wires them (without engines: records are moved by hand). */
async function fleet() {
  const kv = new MemoryKv();
  const registry = registryFrom(REGISTRY, config, 'test');
  const descriptors = new EtcdDescriptorStore(kv);
  await descriptors.create(descriptor());
  const members: Array<FleetMember & { memory: MemoryCluster }> = registry.clusters.map((spec) => {
    const scoped = new ScopedKv(kv, clusterScope(registry, spec.name), SHARED_KEY_FAMILIES);
    const deployments = new DeploymentStore(scoped, () => new Date());
    const memory = new MemoryCluster();
    const requests = new DeploymentRequests({ descriptors, deployments, now: () => new Date(), defaultDeadlineSeconds: 600, defaultControllerKind: 'Deployment', cluster: spec.name });
    return { spec, kv: scoped, cluster: memory, memory, deployments, requests };
  });
  const f = new Fleet(registry, members);
  const releases = new Releases({ fleet: f, kv, store: new ReleaseStore(kv), descriptors, now: () => new Date() });
  /** Moves a record to DEPLOYED and makes it the app's live one, as the engine's switch does. */
  const deployed = async (cluster: string, id: string, images?: DeploymentRecord['images']) => {
    const m = f.member(cluster);
    const found = (await m.deployments.get('shop', id))!;
    const live = await m.deployments.live('shop', 'web');
    await m.deployments.update({ record: { ...found.value, status: 'DEPLOYED', step: 'deployed', ...(images ? { images } : {}) }, expectedRevision: found.revision }, {
      live: { namespace: 'shop', appName: 'web', expectedRevision: live?.revision ?? '0', next: { deploymentId: id, version: found.value.version } },
    });
  };
  const failed = async (cluster: string, id: string) => {
    const m = f.member(cluster);
    const found = (await m.deployments.get('shop', id))!;
    await m.deployments.update({ record: { ...found.value, status: 'FAILURE', step: 'failed', failureReason: 'pods unhealthy' }, expectedRevision: found.revision });
  };
  return { kv, fleet: f, releases, members, deployed, failed };
}

describe('cluster registry', () => {
  it('without a file: one cluster "default" from the single-cluster settings, at the root layout', () => {
    const r = loadClusterRegistry(loadConfig({ CUTOVER_KUBECONFIG: '/k/c', CUTOVER_HEALTHCHECK_MODE: 'proxy' }));
    assert.equal(r.fromFile, false);
    assert.deepEqual(r.clusters.map((c) => [c.name, c.environment, c.kubeconfig, c.healthCheckMode]), [['default', 'default', '/k/c', 'proxy']]);
    assert.equal(clusterScope(r, 'default'), '');
  });

  it('reads YAML, applies server-wide defaults per cluster, and names the first cluster default', () => {
    const yaml = 'clusters:\n  - name: a\n    environment: staging\n    kubeconfig: /k/a\n  - {name: b, environment: production, inCluster: true, ingressClassName: nginx}\n';
    const r = loadClusterRegistry(loadConfig({ CUTOVER_CLUSTERS_FILE: '/etc/c.yaml', CUTOVER_INGRESS_CLASS: 'traefik' }), () => yaml);
    assert.equal(r.defaultCluster, 'a');
    assert.deepEqual(r.environments, ['staging', 'production']);
    assert.equal(r.clusters[0]!.ingressClassName, 'traefik');
    assert.equal(r.clusters[1]!.ingressClassName, 'nginx');
    assert.equal(clusterScope(r, 'b'), 'clusters/b/');
  });

  it('refuses a bad registry with every problem named', () => {
    assert.throws(() => registryFrom({ clusters: [{ name: 'a', environment: 'x' }] }, config, 'F'), /clusters\[0\]" needs exactly one of "kubeconfig"/);
    const bad = { defaultCluster: 'nope', clusters: [{ name: 'A_b', environment: 'x', kubeconfig: '/k' }, { name: 'c', environment: 'y', kubeconfig: '/k', inCluster: true }] };
    assert.throws(() => registryFrom(bad, config, 'F'), (err: ConfigError) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      assert.match(text, /F: "clusters\[0\]\.name" .*DNS label/);
      assert.match(text, /clusters\[1\]" needs exactly one of/);
      return true;
    });
    assert.throws(() => registryFrom({ clusters: [{ name: 'a', environment: 'e', kubeconfig: '/k' }, { name: 'a', environment: 'e', kubeconfig: '/k' }] }, config, 'F'), /unique/);
    assert.throws(() => registryFrom({ defaultCluster: 'z', clusters: [{ name: 'a', environment: 'e', kubeconfig: '/k' }] }, config, 'F'), /defaultCluster "z" is not one of the clusters/);
    assert.throws(() => loadClusterRegistry(loadConfig({ CUTOVER_CLUSTERS_FILE: '/nope' }), () => { throw Object.assign(new Error('x'), { code: 'ENOENT' }); }), /cannot be read \(ENOENT\)/);
  });
});

describe('ScopedKv', () => {
  it('keeps a cluster\'s keys under its scope and passes shared families through', async () => {
    const kv = new MemoryKv();
    const b = new ScopedKv(kv, 'clusters/b/', SHARED_KEY_FAMILIES);
    await b.transact([], [{ type: 'put', key: 'live/shop/web', value: '{}' }, { type: 'put', key: 'versions/shop/web', value: '3' }]);
    assert.ok(await kv.get('clusters/b/live/shop/web'));
    assert.equal(await kv.get('live/shop/web'), undefined);
    assert.equal((await kv.get('versions/shop/web'))?.value, '3');
    const listed = await b.list('live/');
    assert.deepEqual(listed.entries.map((e) => e.key), ['live/shop/web']);
    assert.equal((await b.get('versions/shop/web'))?.value, '3');
    const root = new ScopedKv(kv, '', SHARED_KEY_FAMILIES);
    assert.equal((await root.list('live/')).entries.length, 0, 'the default cluster does not see another cluster\'s records');
  });
});

describe('releases across clusters', () => {
  it('an environment deploy creates one record per cluster in its own scope, one version, one release', async () => {
    const { releases, fleet: f, kv } = await fleet();
    const { release, records } = await releases.deployDescriptor('shop', 'd1', { environment: 'production' }, 'alice');
    assert.ok(release);
    assert.deepEqual(records.map((r) => r.cluster), ['prod-a', 'prod-b']);
    assert.deepEqual(new Set(records.map((r) => r.version)), new Set(['1']));
    assert.ok(records.every((r) => r.release === release.id));
    assert.equal(release.status, 'DEPLOYING');
    assert.ok(await kv.get(`clusters/prod-a/deployments/shop/${records[0]!.id}`));
    assert.ok(await kv.get(`clusters/prod-b/queue/shop/web/${records[1]!.id}`));
    assert.equal((await f.locate('shop', records[1]!.id))?.member.spec.name, 'prod-b');
    assert.equal((await kv.get(keys.versionCounter('shop', 'web')))?.value, '1');
    // A second deploy to another cluster continues the numbering: versions are unique across clusters.
    const next = await releases.deployDescriptor('shop', 'd1', { cluster: 'dev' }, 'alice');
    assert.equal(next.records[0]!.version, '2');
    assert.equal(next.release?.environment, 'dev');
  });

  it('names unknown clusters and environments, and a cluster outside the named environment, as bad requests', async () => {
    const { releases } = await fleet();
    await assert.rejects(releases.deployDescriptor('shop', 'd1', { cluster: 'nope' }, 'a'), (e: Error) => e instanceof InvalidRequestError && /unknown cluster "nope"; the clusters are: dev, prod-a, prod-b/.test(e.message));
    await assert.rejects(releases.deployDescriptor('shop', 'd1', { environment: 'qa' }, 'a'), /unknown environment "qa"; the environments are: dev, production/);
    await assert.rejects(releases.deployDescriptor('shop', 'd1', { cluster: 'dev', environment: 'production' }, 'a'), /belongs to environment "dev"/);
  });

  it('is DEPLOYED only when every cluster is; one failure makes it FAILURE without touching the other', async () => {
    const { releases, deployed, failed, fleet: f } = await fleet();
    const { release, records } = await releases.deployDescriptor('shop', 'd1', { environment: 'production' }, 'alice');
    await deployed('prod-a', records[0]!.id);
    assert.equal((await releases.get('shop', release!.id)).status, 'DEPLOYING');
    await failed('prod-b', records[1]!.id);
    const view = await releases.get('shop', release!.id);
    assert.equal(view.status, 'FAILURE');
    assert.deepEqual(view.deployments.map((d) => d.status), ['DEPLOYED', 'FAILURE']);
    assert.equal((await f.member('prod-a').deployments.live('shop', 'web'))?.deploymentId, records[0]!.id);
    assert.equal(releaseStatus([undefined]), 'FAILURE');
  });

  it('promotes a DEPLOYED release: same version, images pinned to their digests; refuses one that is not DEPLOYED', async () => {
    const { releases, deployed, failed, fleet: f } = await fleet();
    const dev = await releases.deployDescriptor('shop', 'd1', { environment: 'dev' }, 'alice');
    await assert.rejects(releases.promote('shop', dev.release!.id, 'production', 'bob'), (e: Error) => e instanceof StateConflictError && /is DEPLOYING in dev/.test(e.message));
    await deployed('dev', dev.records[0]!.id, [{ container: 'web', image: 'registry.test/web:1.0', digest: DIGEST }]);
    const promoted = await releases.promote('shop', dev.release!.id, 'production', 'bob');
    assert.equal(promoted.environment, 'production');
    assert.deepEqual(promoted.promotedFrom, { release: dev.release!.id, environment: 'dev' });
    assert.deepEqual(promoted.deployments.map((d) => d.cluster), ['prod-a', 'prod-b']);
    const copy = (await f.member('prod-a').deployments.get('shop', promoted.deployments[0]!.deploymentId))!.value;
    assert.equal(copy.version, dev.records[0]!.version);
    assert.equal(copy.descriptor.podspec.containers[0]!.image, `registry.test/web:1.0@${DIGEST}`);
    // Already running on prod-a: a second promotion deploys only where it is missing.
    await deployed('prod-a', promoted.deployments[0]!.deploymentId);
    await failed('prod-b', promoted.deployments[1]!.deploymentId);
    const again = await releases.promote('shop', dev.release!.id, 'production', 'bob');
    assert.deepEqual(again.deployments.map((d) => [d.cluster, d.status]), [['prod-b', 'DEPLOYING'], ['prod-a', 'DEPLOYED']]);
    await deployed('prod-b', again.deployments[0]!.deploymentId);
    await assert.rejects(releases.promote('shop', dev.release!.id, 'production', 'bob'), /runs on every cluster of production already/);
    await assert.rejects(releases.promote('shop', dev.release!.id, 'dev', 'bob'), /already in environment dev/);
  });
});

describe('rebuilding a cluster (sync)', () => {
  it('lists the live apps whose objects are missing, queues a same-version rebuild, and leaves an app with queued work alone', async () => {
    const { releases, deployed, fleet: f } = await fleet();
    const { records } = await releases.deployDescriptor('shop', 'd1', { cluster: 'prod-b' }, 'alice');
    await deployed('prod-b', records[0]!.id);
    const member = f.member('prod-b');
    // No engine here: the deploy's own queue item is still there, so the app counts as busy.
    assert.equal((await syncCluster(member, { dryRun: true, by: 'ops' })).items[0]!.action, 'busy');
    await member.deployments.dequeue('shop', 'web', records[0]!.id);
    const dry = await syncCluster(member, { dryRun: true, by: 'ops' });
    assert.deepEqual(dry.items.map((i) => [i.appName, i.action, i.missing]), [['web', 'rebuild', ['Deployment web-1', 'Service web']]]);
    assert.equal((await member.deployments.queue('shop', 'web')).length, 0, 'a dry run queues nothing');
    const run = await syncCluster(member, { dryRun: false, by: 'ops' });
    const rebuild = (await member.deployments.get('shop', run.items[0]!.rebuildId!))!.value;
    assert.equal(rebuild.version, '1');
    assert.equal(rebuild.restores, records[0]!.id);
    const second = await syncCluster(member, { dryRun: false, by: 'ops' });
    assert.equal(second.items[0]!.action, 'busy', 'a second sync does not queue another rebuild');
    const elsewhere = await syncCluster(f.member('prod-a'), { dryRun: true, by: 'ops' });
    assert.deepEqual(elsewhere.items, []);
  });
});

describe('rebuilding a cluster (sync), continued', () => {
  it('leaves an app whose workload and stable Service are there alone', async () => {
    const { releases, deployed, fleet: f, members } = await fleet();
    const { records } = await releases.deployDescriptor('shop', 'd1', { cluster: 'prod-a' }, 'alice');
    await deployed('prod-a', records[0]!.id);
    const member = f.member('prod-a');
    await member.deployments.dequeue('shop', 'web', records[0]!.id);
    const memory = members.find((m) => m.spec.name === 'prod-a')!.memory;
    await memory.create('Deployment', { metadata: { name: 'web-1', namespace: 'shop' }, spec: {} });
    assert.deepEqual((await syncCluster(member, { dryRun: true, by: 'ops' })).items.map((i) => [i.action, i.missing]), [['rebuild', ['Service web']]]);
    await memory.create('Service', { metadata: { name: 'web', namespace: 'shop' }, spec: {} });
    const report = await syncCluster(member, { dryRun: false, by: 'ops' });
    assert.deepEqual(report.items.map((i) => [i.action, i.rebuildId]), [['in-sync', undefined]]);
    assert.equal((await member.deployments.queue('shop', 'web')).length, 0, 'nothing queued');
  });
});

describe('deployed images', () => {
  it('takes the digest the kubelet reported when all pods agree, and pins a promotion\'s copy to it', () => {
    const d = descriptor();
    const one = { imageIds: { web: `docker-pullable://registry.test/web@${DIGEST}` } };
    assert.deepEqual(deployedImages(d, [one, one]), [{ container: 'web', image: 'registry.test/web:1.0', digest: DIGEST }]);
    const other = { imageIds: { web: `registry.test/web@sha256:${'b'.repeat(64)}` } };
    assert.deepEqual(deployedImages(d, [one, other]), [{ container: 'web', image: 'registry.test/web:1.0' }], 'pods that disagree pin nothing');
    assert.deepEqual(deployedImages(d, [{}]), [{ container: 'web', image: 'registry.test/web:1.0' }]);
    assert.equal(pinnedDescriptor(d, undefined), d);
    assert.equal(pinnedDescriptor(d, [{ container: 'web', image: 'registry.test/web:1.0', digest: DIGEST }]).podspec.containers[0]!.image, `registry.test/web:1.0@${DIGEST}`);
  });
});

describe('environment-scoped grants', () => {
  const caller = (...grants: string[]): Caller => ({ identity: 'ci', method: 'api-key', namespaces: new Set(grants) });

  it('"shop@staging" reads shop everywhere and changes it only in staging; "shop" changes it everywhere', () => {
    assert.equal(mayUseNamespace(caller('shop@staging'), 'shop'), true);
    assert.equal(mayUseNamespace(caller('shop@staging'), 'shopping'), false);
    assert.equal(mayChangeIn(caller('shop@staging'), 'shop', 'staging'), true);
    assert.equal(mayChangeIn(caller('shop@staging'), 'shop', 'production'), false);
    assert.equal(mayChangeIn(caller('shop'), 'shop', 'production'), true);
    assert.equal(mayChangeIn({ identity: 'admin', method: 'jwt', namespaces: ALL_NAMESPACES }, 'any', 'production'), true);
    assert.throws(() => assertMayChangeIn(caller('shop@staging'), 'shop', 'production'), /ci may not change namespace shop in environment production/);
    assert.doesNotThrow(() => assertMayChangeIn(undefined, 'shop', 'production'), 'authentication off: no caller, no check');
  });

  it('a release to an environment is refused before anything is written when the caller may not change it there', async () => {
    const { releases, kv } = await fleet();
    const before = (await kv.list('')).entries.length;
    await assert.rejects(releases.deployDescriptor('shop', 'd1', { environment: 'production' }, 'ci', (env) => assertMayChangeIn(caller('shop@dev'), 'shop', env)), /may not change namespace shop in environment production/);
    assert.equal((await kv.list('')).entries.length, before);
  });
});
