import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { orphanReason } from '../../src/deployer/reconciler.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';

const record = (version: string, status: DeploymentRecord['status'], frontend?: string) =>
  ({ version, status, descriptor: { frontend } }) as unknown as DeploymentRecord;
const obj = (labels: Record<string, string>, selector?: Record<string, string>) => ({ metadata: { labels }, spec: { selector } });

describe('orphanReason', () => {
  it('keeps versioned objects of DEPLOYED and UNDEPLOYING (draining) records', () => {
    const records = [record('1', 'UNDEPLOYING'), record('2', 'DEPLOYED'), record('3', 'FAILURE')];
    assert.equal(orphanReason('Deployment', obj({ app: 'a', version: '1' }), records), undefined);
    assert.equal(orphanReason('ReplicationController', obj({ app: 'a', version: '2' }), records), undefined);
    assert.match(orphanReason('Deployment', obj({ app: 'a', version: '3' }), records) ?? '', /version 3/);
    assert.match(orphanReason('Service', obj({ app: 'a', version: '4' }), records) ?? '', /version 4/);
  });

  it('keeps the stable Service while a version is live; a leftover placeholder goes', () => {
    assert.equal(orphanReason('Service', obj({ app: 'a', persistent: 'true' }, { app: 'a', version: '2' }), [record('2', 'DEPLOYED')]), undefined);
    assert.ok(orphanReason('Service', obj({ app: 'a', persistent: 'true' }, { app: 'a', version: '2' }), [record('2', 'UNDEPLOYED')]));
    assert.ok(orphanReason('Service', obj({ app: 'a', persistent: 'true' }, { app: 'a', 'cutover.io/no-version-yet': 'true' }), [record('2', 'DEPLOYED')]));
  });

  it('keeps Ingresses only while a live version serves a frontend', () => {
    assert.equal(orphanReason('Ingress', obj({ app: 'a' }), [record('2', 'DEPLOYED', 'a.example.com')]), undefined);
    assert.ok(orphanReason('Ingress', obj({ app: 'a' }), [record('2', 'DEPLOYED')]));
    assert.ok(orphanReason('Middleware', obj({ app: 'a' }), []));
  });
});
