import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deletionReason, type AppEvidence, type ObservedObject } from '../../src/deployer/reconciler.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';

const record = (id: string, version: string, status: DeploymentRecord['status']) => ({ id, version, status }) as unknown as DeploymentRecord;
const workload = (version: string, deploymentId?: string): ObservedObject => ({ kind: 'Deployment', name: `a-${version}`, version, deploymentId });
const stable = (deploymentId?: string): ObservedObject => ({ kind: 'Service', name: 'a', version: undefined, deploymentId });
const evidence = (records: DeploymentRecord[], pointed: Array<string | undefined> = [], liveVersion?: string): AppEvidence => ({
  records, pointers: pointed.map((version) => ({ version, deploymentId: undefined })), liveVersion,
});

describe('the reconciler deletes on evidence only (deletionReason)', () => {
  it('removes the objects of a record that says it is finished', () => {
    const e = evidence([record('d3', '3', 'FAILURE'), record('d4', '4', 'UNDEPLOYED'), record('d5', '5', 'DEPLOYED')], ['5'], '5');
    assert.equal(deletionReason(workload('3', 'd3'), e).delete, true);
    assert.equal(deletionReason(workload('4', 'd4'), e).delete, true);
  });

  it('never removes what traffic points at, or the live version, whatever its record says', () => {
    const e = evidence([record('d3', '3', 'FAILURE')], ['3']);
    assert.equal(deletionReason(workload('3', 'd3'), e).delete, false, 'a traffic target points at version 3');
    assert.equal(deletionReason(workload('3', 'd3'), evidence([record('d3', '3', 'FAILURE')], [], '3')).delete, false, 'the live pointer says 3');
  });

  it('keeps objects of records in progress or live', () => {
    for (const status of ['DEPLOYING', 'DEPLOYED', 'UNDEPLOYING'] as const) {
      assert.equal(deletionReason(workload('3', 'd3'), evidence([record('d3', '3', status)])).delete, false, status);
    }
  });

  it('reports, but never removes, objects no record speaks for (no action on absence of evidence)', () => {
    const noRecord = deletionReason(workload('7', 'gone'), evidence([]));
    assert.equal(noRecord.delete, false);
    assert.match(!noRecord.delete ? noRecord.unaccounted ?? '' : '', /no record/);
    const noId = deletionReason(workload('7'), evidence([]));
    assert.equal(noId.delete, false);
    assert.match(!noId.delete ? noId.unaccounted ?? '' : '', /no deployment id/);
  });

  it('removes traffic objects of a finished deployment only when nothing of the app is live or in progress', () => {
    assert.equal(deletionReason(stable('d1'), evidence([record('d1', '1', 'FAILURE')])).delete, true, 'a failed first deployment\'s placeholder');
    assert.equal(deletionReason(stable('d1'), evidence([record('d1', '1', 'FAILURE'), record('d2', '2', 'DEPLOYED')], ['2'], '2')).delete, false);
    assert.equal(deletionReason(stable('d1'), evidence([record('d1', '1', 'UNDEPLOYED'), record('d2', '2', 'DEPLOYING')])).delete, false);
  });
});
