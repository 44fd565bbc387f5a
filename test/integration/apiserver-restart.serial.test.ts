import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api } from '@kubernetes/client-node';
import { apiServerReadyz, restartApiServer } from '../support/faults.js';
import { FaultLog } from '../support/chaos.js';
import { loadKubeConfig, startStoppedComponent, useTestbed, type Testbed } from '../testbed/harness.js';
import { loadConfig, paths } from '../testbed/config.js';
import { readState } from '../testbed/state.js';

async function pids(): Promise<Record<string, number>> {
  const state = await readState(paths(loadConfig().dir).state);
  return Object.fromEntries((state?.processes ?? []).map((p) => [p.name, p.pid]));
}

/**
 * restartApiServer(): the test bed's API server stopped, kept down, started again, and ready
 * through the kubeconfig. Serial (`.serial.`): every other test on the bed would fail meanwhile.
 */
describe('restartApiServer (test support)', () => {
  let testbed: Testbed;

  before(async () => {
    testbed = await useTestbed();
  });
  after(async () => {
    // Whatever happened above, leave the shared bed with an API server.
    await startStoppedComponent('kube-apiserver').catch(() => undefined);
    await testbed?.release();
  });

  it('stops the API server for downMs, starts it again and returns once /readyz answers through the kubeconfig', async () => {
    const core = loadKubeConfig(testbed.kubeconfigPath).makeApiClient(CoreV1Api);
    assert.equal(await apiServerReadyz(testbed.kubeconfigPath), 'ok');
    assert.ok((await core.listNamespace()).items.length > 0);

    const before = await pids();
    const faults = new FaultLog();
    const answersWhileDown: string[] = [];
    const figures = await faults.run('restart API server', 'down 3000 ms', () => restartApiServer({
      downMs: 3000,
      during: async () => {
        answersWhileDown.push(await apiServerReadyz(testbed.kubeconfigPath));
      },
    }));

    assert.equal(answersWhileDown.length, 1);
    assert.match(answersWhileDown[0]!, /ECONNREFUSED/, 'nothing listens while it is down');
    assert.ok(figures.downMs >= 3000 && figures.downMs < 3000 + 2000 + 1000, `down ${figures.downMs} ms for downMs 3000`);
    assert.equal(figures.outageMs, figures.downMs + figures.startMs);
    // Ready means usable: the very next call through a client works.
    assert.equal(await apiServerReadyz(testbed.kubeconfigPath), 'ok');
    assert.ok((await core.listNamespace()).items.length > 0);
    // Only the API server was restarted: every other component kept its process.
    const now = await pids();
    assert.notEqual(now['kube-apiserver'], before['kube-apiserver']);
    for (const name of Object.keys(before).filter((n) => n !== 'kube-apiserver')) assert.equal(now[name], before[name], `${name} kept its pid`);
    console.log(`# API server restart: SIGTERM → exit ${figures.stopMs} ms (${figures.stoppedBy}), down ${figures.downMs} ms, start → /readyz ok ${figures.startMs} ms, outage ${figures.outageMs} ms`);
    console.log(faults.lines().map((l) => `# ${l}`).join('\n'));
  });
});
