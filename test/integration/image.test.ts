import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { TestEtcd } from '../support/etcd.js';
import { unreachableKubeconfig } from '../support/cutover.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import { ensureUiBuilt } from '../../scripts/build-ui.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/**
 * Our machines cannot run `docker build`, so this checks that the Dockerfile uses exactly the
 * scripts CI runs, and that the build it describes produces a cutover that starts and stops.
 */
describe('container image', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; engines: { node: string }; cutover: { runtime: string } };
  /** Every npm script runs through the runtime bootstrap; in the image, node already is the pinned one. */
  const BOOTSTRAP = 'node scripts/runtime.mjs ';
  const withoutBootstrap = (script: string): string => {
    assert.ok(script.startsWith(BOOTSTRAP), `"${script}" runs through ${BOOTSTRAP.trim()}`);
    return script.slice(BOOTSTRAP.length);
  };
  const stages = dockerfile.split(/^FROM /m).slice(1);

  it('builds with dev dependencies and runs with production dependencies only, as a non-root user', () => {
    assert.equal(stages.length, 2, 'two stages');
    const [build, runtime] = stages as [string, string];
    assert.match(build, /^RUN npm ci --no-audit --no-fund$/m);
    assert.match(build, /^RUN npm run build$/m);
    assert.match(runtime, /^RUN npm ci --omit=dev/m);
    assert.match(runtime, /^COPY --from=build \/app\/dist \.\/dist$/m);
    assert.match(runtime, /^USER node$/m);
    assert.match(runtime, /CUTOVER_HOST=0\.0\.0\.0/);
    assert.match(runtime, /^HEALTHCHECK[\s\S]*\/healthz/m);
    assert.match(runtime, /^STOPSIGNAL SIGTERM$/m);
    // Exactly the Node that package.json pins, which development and CI run on (scripts/runtime.mjs).
    for (const s of stages) assert.equal(/^(\S+)/.exec(s)?.[1], `node:${pkg.cutover.runtime}-bookworm-slim`, 'the Node pinned in package.json');
    assert.match(pkg.engines.node, new RegExp(`^>=${pkg.cutover.runtime.split('.')[0]}\\.`), 'engines.node starts at the pinned major');
  });

  it('uses the same build and start commands as package.json and CI', () => {
    assert.equal(withoutBootstrap(pkg.scripts['build']!), 'tsc -p tsconfig.build.json && node scripts/runtime.mjs node --import tsx scripts/build-ui.ts --force');
    // `npm run build` in the build stage needs the bootstrap and the web UI's sources and build script in the image.
    assert.match(stages[0]!, /^COPY scripts\/runtime\.mjs \.\/scripts\/$/m);
    assert.match(stages[0]!, /^COPY scripts\/build-ui\.ts \.\/scripts\/$/m);
    assert.match(stages[0]!, /^COPY ui \.\/ui$/m);
    const cmd = /^CMD (\[.*\])$/m.exec(dockerfile)?.[1];
    assert.deepEqual(JSON.parse(cmd ?? '[]'), withoutBootstrap(pkg.scripts['serve']!).split(' '));
    assert.match(readFileSync(join(root, '.ci/run'), 'utf8'), /^node scripts\/runtime\.mjs npm ci --no-audit --no-fund$/m);
  });

  describe('the built service', () => {
    let etcd: TestEtcd;
    let outDir: string;
    before(async () => {
      etcd = await TestEtcd.create();
      // Inside the repository, so the compiled files resolve node_modules as in the image.
      mkdirSync(join(root, '.local'), { recursive: true });
      outDir = mkdtempSync(join(root, '.local', 'build-'));
      // The build of the Dockerfile, into a scratch directory instead of dist/.
      await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir], { cwd: root });
      // …and the web UI, into dist/ui (npm test has built it already; this is for a file run on its own).
      await ensureUiBuilt();
    });
    after(async () => {
      await etcd?.destroy();
      if (outDir) rmSync(outDir, { recursive: true, force: true });
    });

    it('starts as `npm run serve` (and the image) start it, answers /healthz, and exits 0 on SIGTERM', async () => {
      const port = await freePort();
      // node's flags from the start command: ["node", ...flags, "dist/src/main.js"]
      const flags = withoutBootstrap(pkg.scripts['serve']!).split(' ').slice(1, -1);
      const child = spawn(process.execPath, [...flags, join(outDir, 'src/main.js')], {
        cwd: root,
        env: { ...process.env, CUTOVER_PORT: String(port), CUTOVER_ETCD_ENDPOINTS: etcd.endpoint, CUTOVER_KUBECONFIG: unreachableKubeconfig(), CUTOVER_AUTH: 'off' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const exited = once(child, 'exit');
      try {
        await waitFor('the built cutover to answer /healthz', async () => {
          if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${output}`);
          return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
        }, { timeoutMs: 20_000, intervalMs: 100 });
        // The web UI is served by the built service too (from dist/ui, which the image copies).
        const ui = await fetch(`http://127.0.0.1:${port}/ui/`);
        assert.equal(ui.status, 200);
        assert.match(await ui.text(), /<div id="app">/);
        const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
        console.log(`# compiled cutover RSS after start: ${Math.round(rssKiB / 1024)} MiB`);
        child.kill('SIGTERM');
        const [code] = await exited;
        assert.equal(code, 0, output);
        assert.match(output, /"msg":"cutover stopped"/);
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
      }
    });
  });
});
