import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord } from '../../src/domain/deployment.js';
import { chooseRollbackTarget } from '../../src/cli/commands/rollback.js';
import { CliError } from '../../src/cli/errors.js';
import { ExitCode } from '../../src/cli/exit-codes.js';

let n = 0;
function rec(version: string, status: DeploymentRecord['status'], extra: Partial<DeploymentRecord> = {}): DeploymentRecord {
  n++;
  return {
    id: `d${version}-${n}`, created: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString(), lastModified: '', namespace: 'shop', appName: 'web',
    version, status, step: 'deployed', descriptor: {} as DeploymentRecord['descriptor'], OldVersion: '', times: {}, ...extra,
  };
}

describe('cli: which version a rollback redeploys', () => {
  it('takes the version the live one replaced, skipping failures in between', () => {
    const v1 = rec('1', 'UNDEPLOYED', { times: { switched: 'x' }, replacedBy: 'd2' });
    const v2 = rec('2', 'UNDEPLOYED', { times: { switched: 'x' } });
    const v3 = rec('3', 'FAILURE');
    const v4 = rec('4', 'DEPLOYED', { times: { switched: 'x' }, replaces: v2.id });
    const records = [v4, v3, v2, v1]; // newest first, as the API lists them
    assert.equal(chooseRollbackTarget(records).target, v2);
    assert.equal(chooseRollbackTarget(records).live, v4);
  });

  it('without a replaces link, takes the newest other version that went live before the live one', () => {
    const v1 = rec('1', 'UNDEPLOYED', { replacedBy: 'x' });
    const v2 = rec('2', 'FAILURE');
    const v3 = rec('3', 'DEPLOYED');
    assert.equal(chooseRollbackTarget([v3, v2, v1]).target, v1);
  });

  it('with --to, takes the newest record of that version that was live; never one that only failed', () => {
    const a = rec('5', 'UNDEPLOYED', { times: { switched: 'x' } });
    const failed = rec('6', 'FAILURE');
    const live = rec('7', 'DEPLOYED');
    assert.equal(chooseRollbackTarget([live, failed, a], '5').target, a);
    assert.throws(() => chooseRollbackTarget([live, failed, a], '6'), (e: CliError) => e.exitCode === ExitCode.notFound && /never went live/.test(e.message));
    assert.throws(() => chooseRollbackTarget([live, failed, a], '99'), (e: CliError) => e.exitCode === ExitCode.notFound);
    assert.equal(chooseRollbackTarget([live, failed, a], '7').target, undefined, 'the live version: nothing to do');
  });

  it('has nothing to roll back to when only one version ever went live', () => {
    assert.throws(() => chooseRollbackTarget([rec('1', 'DEPLOYED'), rec('0', 'FAILURE')]), (e: CliError) => e.exitCode === ExitCode.notFound && /only one that went live/.test(e.message));
  });
});
