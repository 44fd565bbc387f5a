import { describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { CutoverMetrics, outcomeOf } from '../../src/metrics/metrics.js';
import type { DeploymentRecord } from '../../src/domain/deployment.js';

const rec = (o: Partial<DeploymentRecord>) => ({ namespace: 'ns', appName: 'app', created: '2026-01-01T00:00:00Z', times: {}, ...o }) as DeploymentRecord;

describe('metrics', () => {
  it('maps status changes to outcomes', () => {
    assert.equal(outcomeOf(rec({ status: 'DEPLOYED' }), 'DEPLOYING'), 'succeeded');
    assert.equal(outcomeOf(rec({ status: 'FAILURE', failureReason: 'not healthy' }), 'DEPLOYING'), 'failed');
    assert.equal(outcomeOf(rec({ status: 'FAILURE', failureReason: 'deadline passed …; rolled back' }), 'DEPLOYING'), 'rolled_back');
    assert.equal(outcomeOf(rec({ status: 'UNDEPLOYING', replacedBy: 'x' }), 'DEPLOYED'), 'replaced');
    assert.equal(outcomeOf(rec({ status: 'UNDEPLOYED' }), 'UNDEPLOYING'), 'undeployed');
    assert.equal(outcomeOf(rec({ status: 'UNDEPLOYED', replacedBy: 'x' }), 'UNDEPLOYING'), undefined, 'a drained version was already counted as replaced');
    assert.equal(outcomeOf(rec({ status: 'DEPLOYING' }), 'DEPLOYING'), undefined);
  });

  it('records step durations of a successful deployment from its step times', async () => {
    const m = new CutoverMetrics();
    m.observe({
      type: 'transition', previousStatus: 'DEPLOYING', previousStep: 'switching-traffic', at: new Date(),
      record: rec({ status: 'DEPLOYED', times: { resourcesCreated: '2026-01-01T00:00:01Z', podsReady: '2026-01-01T00:00:04Z', healthy: '2026-01-01T00:00:05Z', switched: '2026-01-01T00:00:05.100Z', finished: '2026-01-01T00:00:05.2Z' } }),
    });
    const text = (await m.render()).body;
    assert.match(text, /cutover_deployments_total\{namespace="ns",app="app",outcome="succeeded",cluster="default"\} 1/);
    assert.match(text, /cutover_deployment_step_duration_seconds_sum\{step="waiting_for_pods"\} 3\b/);
    assert.match(text, /cutover_deployment_step_duration_seconds_sum\{step="switching_traffic"\} 0\.1\b/);
    assert.match(text, /cutover_deployment_duration_seconds_sum\{outcome="succeeded",cluster="default"\} 5\.2\b/);
  });
});

describe('docs/metrics.md', () => {
  it('lists every metric cutover registers', async () => {
    const doc = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
    const names = (await new CutoverMetrics().registry.getMetricsAsJSON()).map((m) => m.name);
    const own = names.filter((n) => !/^cutover_(process|nodejs)_/.test(n));
    assert.ok(own.length >= 12);
    for (const name of own) assert.ok(doc.includes(`\`${name}\``), `${name} is not documented in docs/metrics.md`);
  });
});

describe('event-loop delay while work runs', () => {
  it('is measured only between work-started and work-finished, and a blocked loop shows in p99 and max', async () => {
    const m = new CutoverMetrics();
    const scrape = async () => (await m.render()).body;
    assert.match(await scrape(), /^cutover_work_event_loop_delay_max_seconds 0$/m);
    m.observe({ type: 'work-started', kind: 'deploy', namespace: 'ns', appName: 'app', deploymentId: 'd', at: new Date() } as never);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const until = Date.now() + 120;
    while (Date.now() < until) { /* block the loop */ }
    await new Promise((resolve) => setTimeout(resolve, 30));
    m.observe({ type: 'work-finished', kind: 'deploy', namespace: 'ns', appName: 'app', deploymentId: 'd', at: new Date() } as never);
    const text = await scrape();
    const max = Number(/^cutover_work_event_loop_delay_max_seconds (\S+)$/m.exec(text)![1]);
    assert.ok(max >= 0.1, `max ${max}`);
    assert.match(await scrape(), /^cutover_work_event_loop_delay_max_seconds 0$/m, 'a scrape starts a new window');
  });
});

describe('an idle process with cutover\'s metrics', () => {
  it('is not woken by them: no event-loop sampler runs while no work does', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
    // One timer an hour away keeps the child alive without waking it.
    const script = `import { CutoverMetrics } from './src/metrics/metrics.ts';
      const m = new CutoverMetrics(); await m.render(); setInterval(() => {}, 3_600_000); console.log('ready');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      child.stdout.setEncoding('utf8');
      const [line] = await once(child.stdout, 'data') as [string];
      assert.match(line, /ready/);
      // schedstat's third field counts the times the main thread was put on a CPU: its wakeups.
      const runs = () => Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/schedstat`, 'utf8').trim().split(' ')[2]);
      await new Promise((resolve) => setTimeout(resolve, 500)); // the start-up's tail (module loading, the first GC)
      const before = runs();
      // An observation window, not a wait for a condition: a 1 s sampler would wake it 4 times in
      // it. V8's own memory reducer may wake it once (a delayed task every 8 s), and a busy machine
      // may cut that one run in two.
      await new Promise((resolve) => setTimeout(resolve, 4_000));
      const woken = runs() - before;
      assert.ok(woken <= 2, `the main thread woke ${woken} times in 4 s of idle`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill();
        await once(child, 'exit');
      }
    }
  });
});
