import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DeploymentRecord, PodHealth } from '../../src/domain/deployment.js';
import { CliError } from '../../src/cli/errors.js';
import { ExitCode } from '../../src/cli/exit-codes.js';
import {
  colourWanted, exitCodeHelp, formatAppStatus, formatDuration, formatError, formatPodHealth, makeStyle, plainLine,
} from '../../src/cli/format.js';
import { PlainProgress, SilentProgress, TtyProgress } from '../../src/cli/progress.js';

function sink(isTTY = false) {
  const chunks: string[] = [];
  return { out: { write: (s: string) => chunks.push(s), isTTY, columns: 100 }, text: () => chunks.join('') };
}

const ANSI = /\x1b\[/;
const T0 = '2026-05-04T10:15:00.000Z';

function record(overrides: Partial<DeploymentRecord>): DeploymentRecord {
  return {
    id: 'id', created: T0, lastModified: T0, namespace: 'shop', appName: 'web', version: '1', status: 'DEPLOYED', step: 'deployed',
    descriptor: {} as DeploymentRecord['descriptor'], OldVersion: '', times: {}, ...overrides,
  };
}

const pod = (name: string, healthy: boolean, reason = ''): PodHealth => ({
  podName: name, healthy, statusCode: healthy ? 200 : 503, body: '', reason, latencyMs: 3.4, checkedAt: '2026-05-04T10:15:03.000Z', value: '',
});

describe('cli: output formatting', () => {
  it('writes CI (non-TTY) progress as timestamped, tagged lines without escape codes', () => {
    const { out, text } = sink(false);
    const p = new PlainProgress(out, () => new Date('2026-05-04T10:14:59.000Z'));
    p.info('deployment 3f6c of shop/web version 7 started', 'deploy');
    p.step('2026-05-04T10:15:00.004Z', 'DEPLOYING', 'queued');
    p.log('2026-05-04T10:15:00.051Z', 'Deployment started on replica cutover-1');
    p.health([pod('web-7-a', true), pod('web-7-b', false, 'body has "healthy": false')]);
    p.health([pod('web-7-a', true), pod('web-7-b', false, 'body has "healthy": false')]); // unchanged: nothing new
    p.health([pod('web-7-a', true), pod('web-7-b', true)]);
    p.step('2026-05-04T10:15:04.000Z', 'DEPLOYED', 'deployed');
    p.finish(true, 'DEPLOYED shop/web version 7 in 4.0s');
    assert.deepEqual(text().split('\n'), [
      '2026-05-04T10:14:59.000Z deploy   deployment 3f6c of shop/web version 7 started',
      '2026-05-04T10:15:00.004Z step     queued',
      '2026-05-04T10:15:00.051Z log      Deployment started on replica cutover-1',
      '2026-05-04T10:15:03.000Z health   pod web-7-a healthy (HTTP 200, 3 ms)',
      '2026-05-04T10:15:03.000Z health   pod web-7-b not healthy (HTTP 503, 3 ms): body has "healthy": false',
      '2026-05-04T10:15:03.000Z health   pod web-7-b healthy (HTTP 200, 3 ms)',
      '2026-05-04T10:15:04.000Z step     deployed (DEPLOYED)',
      '2026-05-04T10:14:59.000Z result   DEPLOYED shop/web version 7 in 4.0s',
      '',
    ]);
    assert.doesNotMatch(text(), ANSI);
  });

  it('in --json mode writes nothing to stdout, and notices to stderr', () => {
    const err = sink(false);
    const p = new SilentProgress(err.out, () => new Date(T0));
    p.info('x');
    p.log(T0, 'y');
    p.notice('log stream closed (1001); resuming after event 12');
    assert.equal(err.text(), `${T0} notice   log stream closed (1001); resuming after event 12\n`);
  });

  it('on a terminal draws a task list and a spinner with colours', () => {
    const { out, text } = sink(true);
    let now = 0;
    const p = new TtyProgress(out, makeStyle(true), () => now);
    p.step(T0, 'DEPLOYING', 'waiting-for-pods');
    now = 1500;
    p.step('2026-05-04T10:15:01.500Z', 'DEPLOYING', 'health-checking');
    p.health([pod('web-1-a', true)]);
    p.finish(true, 'DEPLOYED shop/web version 1');
    const shown = text();
    assert.match(shown, ANSI);
    assert.match(shown, /✔\x1b\[39m waiting-for-pods \x1b\[2m1\.5s/);
    assert.match(shown, /1\/1 pods healthy/);
    assert.match(shown, /DEPLOYED shop\/web version 1\x1b\[22m\n$/);
  });

  it('uses colour only on a terminal without NO_COLOR or TERM=dumb', () => {
    assert.equal(colourWanted(true, {}, true), true);
    assert.equal(colourWanted(false, {}, true), false);
    assert.equal(colourWanted(true, { NO_COLOR: '1' }, true), false);
    assert.equal(colourWanted(true, { TERM: 'dumb' }, true), false);
    assert.equal(colourWanted(true, {}, false), false, '--no-color');
  });

  it('formats durations and plain lines', () => {
    assert.equal(formatDuration(850), '850ms');
    assert.equal(formatDuration(4200), '4.2s');
    assert.equal(formatDuration(65_000), '1m05s');
    assert.equal(formatDuration(7_380_000), '2h03m');
    assert.equal(plainLine(T0, 'log', 'x'), `${T0} log      x`);
    assert.equal(formatPodHealth(pod('p', false, 'timeout')), 'pod p not healthy (HTTP 503, 3 ms): timeout');
  });

  it('reports an error with every field problem and a hint', () => {
    const err = new CliError(ExitCode.invalidInput, 'the descriptor in app.yaml was refused', {
      problems: [{ path: 'replicas', message: '"replicas" must be greater than or equal to 0' }, { path: 'podspec.containers.0.image', message: 'is required' }],
      hint: 'fix the fields named above',
    });
    assert.deepEqual(formatError(err, makeStyle(false)), [
      'error: the descriptor in app.yaml was refused',
      '  replicas: "replicas" must be greater than or equal to 0',
      '  podspec.containers.0.image: is required',
      'hint: fix the fields named above',
    ]);
  });

  it('shows what runs, what deploys and the last deployments of an app', () => {
    const now = new Date('2026-05-04T11:15:00.000Z');
    const lines = formatAppStatus({
      namespace: 'shop', appName: 'web',
      descriptor: { id: 'd1', newVersion: '#', lastModified: '2026-05-04T10:00:00.000Z' },
      deployments: [
        record({ id: 'dep-4', version: '4', status: 'DEPLOYING', step: 'health-checking', created: '2026-05-04T11:14:50.000Z' }),
        record({ id: 'dep-3', version: '3', status: 'FAILURE', step: 'failed', failureReason: 'new version not healthy within 3 s', times: { finished: '2026-05-04T10:50:05.000Z' }, created: '2026-05-04T10:50:00.000Z' }),
        record({ id: 'dep-2', version: '2', status: 'DEPLOYED', times: { switched: '2026-05-04T10:15:04.000Z', finished: '2026-05-04T10:15:04.000Z' } }),
        record({ id: 'dep-1', version: '1', status: 'UNDEPLOYED', replacedBy: 'dep-2', times: { finished: '2026-05-04T09:00:02.500Z' }, created: '2026-05-04T09:00:00.000Z' }),
      ],
    }, now, makeStyle(false));
    assert.equal(lines[0], 'shop/web');
    assert.equal(lines[1], '  running:    version 2 since 2026-05-04 10:15:04Z (59m ago), deployment dep-2');
    assert.equal(lines[2], '  deploying:  version 4, step health-checking, requested 10s ago, deployment dep-4');
    assert.match(lines[3]!, /descriptor: d1 \(newVersion "#"/);
    const table = lines.slice(5);
    assert.match(table[0]!, /^ {2}DEPLOYMENT\s+VERSION\s+STATUS\s+STARTED\s+DURATION\s+NOTE$/);
    assert.match(table[1]!, /dep-4\s+4\s+DEPLOYING\s+2026-05-04 11:14:50Z\s+10\.0s\s+step health-checking/);
    assert.match(table[2]!, /dep-3\s+3\s+FAILURE .* 5\.0s\s+new version not healthy within 3 s/);
    assert.match(table[4]!, /dep-1\s+1\s+UNDEPLOYED .* 2\.5s\s+replaced by dep-2/);
  });

  it('lists every exit code in the help', () => {
    const help = exitCodeHelp();
    for (const code of [0, 1, 2, 3, 4, 5, 6, 7]) assert.match(help, new RegExp(`^\\s+${code}  `, 'm'));
  });
});
