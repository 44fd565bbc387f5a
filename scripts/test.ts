/**
 * `npm test`: the whole suite on this machine — type check, build of the test bed's binaries when
 * missing, the test bed brought up (and taken down again if this run started it), every test file
 * under test/, and a summary. Exits non-zero on any failure, and also when no test ran.
 *
 *   npm test                         # everything
 *   npm test -- test/unit/x.test.ts  # only these files (the test bed is still brought up)
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, mkdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { down, up } from '../test/testbed/testbed.js';
import { ensureUiBuilt } from './build-ui.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const say = (line: string) => process.stdout.write(`\n=== ${line}\n`);

function findTests(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (entry.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out.sort();
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: 'inherit', env });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

interface Summary {
  tests: number;
  pass: number;
  fail: number;
  cancelled: number;
  skipped: number;
  todo: number;
}

function readTapSummary(path: string): Summary {
  const text = readFileSync(path, 'utf8');
  const value = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { tests: value('tests'), pass: value('pass'), fail: value('fail'), cancelled: value('cancelled'), skipped: value('skipped'), todo: value('todo') };
}

/** Every test file runs with a major garbage collection every 2 s, cutover processes every 1 s (100 ms where a test asks; test/support/gc-pressure.mjs). */
const GC_PRESSURE = ['--expose-gc', '--import', './test/support/gc-pressure.mjs'];

async function main(): Promise<number> {
  // The first line of every run says which Node runs the tests (the one pinned in package.json).
  say(`node ${process.version} (${process.execPath}) on ${process.platform}-${process.arch}`);
  const requested = process.argv.slice(2).filter((a) => a.endsWith('.ts'));
  const files = requested.length > 0 ? requested : findTests(join(root, 'test'));
  if (files.length === 0) {
    process.stderr.write('no test files found\n');
    return 1;
  }

  say('type check (tsc --noEmit)');
  const tsc = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit']);
  if (tsc !== 0) {
    process.stderr.write('type check failed\n');
    return tsc;
  }
  // The web UI has its own settings (DOM, JSX): a second project.
  const tscUi = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'ui']);
  if (tscUi !== 0) {
    process.stderr.write('type check of the web UI failed\n');
    return tscUi;
  }

  // cutover processes in tests run this build (test/support/process.ts): less CPU per start than tsx.
  say('build for the tests (tsc -p tsconfig.build.json → .local/test-dist)');
  const outDir = join(root, '.local', 'test-dist');
  const build = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir]);
  if (build !== 0) {
    process.stderr.write('build failed\n');
    return build;
  }
  process.env['CUTOVER_TEST_ENTRY'] = join(outDir, 'src', 'main.js');
  // The UI tests and every cutover serve dist/ui: built when missing or older than ui/.
  const ui = await ensureUiBuilt();
  say(ui.rebuilt ? `web UI built into dist/ui (${ui.ms} ms)` : 'web UI is up to date (dist/ui)');

  say('test bed (builds Kubernetes, etcd and kwok from Go modules on first use; see docs/testbed.md)');
  // Two clusters: the multi-cluster tests need the second one (added to a running bed that lacks it).
  const bed = await up({ clusters: 2, log: (line: string) => process.stdout.write(`testbed: ${line}\n`) });
  let code = 1;
  let summary: Summary | undefined;
  try {
    say(`running ${files.length} test files`);
    // Outside .testbed/: a test bed `down` removes that directory.
    const resultsDir = join(root, '.local');
    mkdirSync(resultsDir, { recursive: true });
    const tap = join(resultsDir, 'test-results.tap');
    // Files named *.serial.test.ts disturb the shared test bed (outages): they run alone, last.
    const parallel = files.filter((f) => !f.endsWith('.serial.test.ts'));
    const serial = files.filter((f) => f.endsWith('.serial.test.ts'));
    const runFiles = async (list: string[], concurrency: number, tapFile: string): Promise<{ code: number; summary: Summary }> => {
      // node:test passes these options on to the process of each test file.
      const code = await run(process.execPath, [
        ...GC_PRESSURE, '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`,
        '--test-reporter=spec', '--test-reporter-destination=stdout',
        '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
        ...list,
      ]);
      return { code, summary: readTapSummary(tapFile) };
    };
    const results = [];
    if (parallel.length > 0) results.push(await runFiles(parallel, 2, tap));
    if (serial.length > 0) {
      say(`running ${serial.length} serial test file(s) alone`);
      results.push(await runFiles(serial, 1, tap.replace(/\.tap$/, '-serial.tap')));
    }
    summary = results.map((r) => r.summary).reduce((a, b) => ({
      tests: a.tests + b.tests, pass: a.pass + b.pass, fail: a.fail + b.fail, cancelled: a.cancelled + b.cancelled, skipped: a.skipped + b.skipped, todo: a.todo + b.todo,
    }));
    code = results.some((r) => r.code !== 0) || summary.tests === 0 || summary.fail > 0 || summary.cancelled > 0 ? 1 : 0;
  } finally {
    if (!bed.alreadyUp) {
      say('test bed down (this run brought it up)');
      await down({ log: (line: string) => process.stdout.write(`testbed: ${line}\n`) }).catch((err: Error) => {
        process.stderr.write(`testbed down failed: ${err.message}\n`);
        code = 1;
      });
    }
  }
  // The summary comes last, so it is what a CI log ends with.
  say('summary');
  if (!summary || summary.tests === 0) {
    process.stdout.write('no test ran: failing the run\n');
    return 1;
  }
  process.stdout.write([
    `# files ${files.length}`, `# tests ${summary.tests}`, `# pass ${summary.pass}`, `# fail ${summary.fail}`,
    `# cancelled ${summary.cancelled}`, `# skipped ${summary.skipped}`, `# todo ${summary.todo}`,
    code === 0 ? 'RESULT: all tests passed' : 'RESULT: FAILED', '',
  ].join('\n'));
  return code;
}

main().then((code) => process.exit(code), (err: Error) => {
  process.stderr.write(`npm test: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
