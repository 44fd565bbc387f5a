/**
 * `npm run bench`: every benchmark of issue #18's comparison, one after another, each printing
 * its tables: deploy (sequential and 20 parallel), parallel ("wide", 200 apps), the log websocket
 * (A, B and C: 10,000 watchers), the sequential update of one app (updates: compiled cutover,
 * `npm run build` first) and — when ARGO_ROLLOUTS_BIN is set — the same update through Argo Rollouts. AMDATU_DEPLOYER_URL (an original Amdatu deployer on the same test bed) is passed
 * on: bench/parallel.ts then runs its scenarios against it too, side by side. A bench that fails
 * is reported and the others still run; the exit code is non-zero if any failed.
 *
 *   CUTOVER_TESTBED_DIR=… npm run bench [-- --only parallel,logstream] [-- --apps 200]
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { cpus, loadavg, totalmem } from 'node:os';

const { values } = parseArgs({ options: { only: { type: 'string' }, apps: { type: 'string', default: '200' } } });
const benches: Array<{ name: string; file: string; args: string[] }> = [
  { name: 'deploy', file: 'bench/deploy.ts', args: [] },
  { name: 'parallel', file: 'bench/parallel.ts', args: ['--apps', values.apps] },
  { name: 'logstream', file: 'bench/logstream.ts', args: ['--scenarios', 'A,B,C', '--client-threads', '2'] },
  // The same sequential update through cutover and (ARGO_ROLLOUTS_BIN) Argo Rollouts, one table each.
  { name: 'updates', file: 'bench/updates.ts', args: ['--updates', '20'] },
  { name: 'argo', file: 'bench/argo.ts', args: ['--apps', values.apps] },
];
const only = values.only ? new Set(values.only.split(',')) : undefined;
console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB; load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log(`ARGO_ROLLOUTS_BIN ${process.env['ARGO_ROLLOUTS_BIN'] ? 'set' : 'not set (Argo Rollouts skipped)'}; AMDATU_DEPLOYER_URL ${process.env['AMDATU_DEPLOYER_URL'] ? 'set' : 'not set (cutover only)'}`);
const failed: string[] = [];
for (const b of benches) {
  if (only && !only.has(b.name)) continue;
  console.log(`\n## ${b.name}\n`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', b.file, ...b.args], { stdio: 'inherit' });
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
  });
  if (code !== 0) failed.push(`${b.name} (exit ${code})`);
}
console.log(failed.length ? `\nfailed: ${failed.join(', ')}` : '\nall benches ran');
process.exit(failed.length ? 1 : 0);
