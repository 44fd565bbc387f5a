/**
 * Builds the web UI (ui/) into dist/ui/ with esbuild: one hashed JS bundle, one hashed CSS
 * file, and index.html naming them (no inline script, so the UI's CSP can forbid it).
 *
 *   npm run build            # the service and the UI
 *   npm run build:ui         # the UI only
 *
 * `ensureUiBuilt()` (used by npm test, npm start and npm run demo) rebuilds only when the inputs
 * changed: a hash of every file under ui/ and the versions of esbuild and preact is kept in
 * dist/ui/build.json. The build goes to a temporary directory that replaces dist/ui in one rename,
 * so a running cutover never sees half a build.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));
const UI_SOURCE = join(root, 'ui');
export const UI_OUT = join(root, 'dist', 'ui');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  }).sort();
}

const versionOf = (pkg: string) => (JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;

/** What the build depends on: the sources and the tool versions. */
export function uiInputHash(): string {
  const hash = createHash('sha256');
  hash.update(`esbuild ${versionOf('esbuild')} preact ${versionOf('preact')} script ${readFileSync(fileURLToPath(import.meta.url), 'utf8')}\n`);
  for (const file of filesUnder(UI_SOURCE)) hash.update(`${relative(UI_SOURCE, file)}\n`).update(readFileSync(file));
  return hash.digest('hex');
}

const PAGE = (script: string, style: string) => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light">
  <title>cutover</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/ui/assets/${style}">
  <script type="module" src="/ui/assets/${script}"></script>
</head>
<body>
  <noscript>The cutover UI needs JavaScript. The REST API is described at <a href="/docs">/docs</a>.</noscript>
  <div id="app"></div>
</body>
</html>
`;

export interface UiBuildResult {
  rebuilt: boolean;
  files: Array<{ name: string; bytes: number }>;
  ms: number;
}

export async function buildUi(): Promise<UiBuildResult> {
  const started = Date.now();
  const inputHash = uiInputHash();
  const staging = `${UI_OUT}.tmp-${process.pid}-${Date.now()}`;
  rmSync(staging, { recursive: true, force: true });
  try {
    const result = await build({
      entryPoints: [join(UI_SOURCE, 'src', 'main.tsx')],
      outdir: join(staging, 'assets'),
      entryNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      bundle: true,
      minify: true,
      format: 'esm',
      target: ['es2022'],
      platform: 'browser',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      tsconfig: join(UI_SOURCE, 'tsconfig.json'),
      legalComments: 'none',
      metafile: true,
      logLevel: 'warning',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
    const script = outputs.find((f) => f.endsWith('.js'));
    const style = outputs.find((f) => f.endsWith('.css'));
    if (!script || !style) throw new Error(`the UI build made no script or style: ${outputs.join(', ')}`);
    writeFileSync(join(staging, 'index.html'), PAGE(script, style));
    const files = filesUnder(staging).map((f) => ({ name: relative(staging, f), bytes: statSync(f).size }));
    writeFileSync(join(staging, 'build.json'), `${JSON.stringify({ inputHash, files }, null, 2)}\n`);
    mkdirSync(join(root, 'dist'), { recursive: true });
    // Replace in as few steps as possible: move the old build aside, the new one in, then delete the old.
    const old = `${UI_OUT}.old-${process.pid}-${Date.now()}`;
    if (existsSync(UI_OUT)) renameSync(UI_OUT, old);
    renameSync(staging, UI_OUT);
    rmSync(old, { recursive: true, force: true });
    return { rebuilt: true, files, ms: Date.now() - started };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Builds the UI unless dist/ui already holds a build of exactly these inputs. */
export async function ensureUiBuilt(): Promise<UiBuildResult> {
  try {
    const built = JSON.parse(readFileSync(join(UI_OUT, 'build.json'), 'utf8')) as { inputHash?: string; files?: UiBuildResult['files'] };
    if (built.inputHash === uiInputHash() && existsSync(join(UI_OUT, 'index.html'))) return { rebuilt: false, files: built.files ?? [], ms: 0 };
  } catch {
    // no build yet, or an unreadable one: build
  }
  return buildUi();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const force = process.argv.includes('--force');
  (force ? buildUi() : ensureUiBuilt()).then((r) => {
    const total = r.files.reduce((n, f) => n + f.bytes, 0);
    process.stdout.write(r.rebuilt
      ? `web UI built into dist/ui in ${r.ms} ms: ${r.files.map((f) => `${f.name} ${f.bytes} B`).join(', ')} (${total} B)\n`
      : 'web UI is up to date (dist/ui)\n');
  }, (err: Error) => {
    process.stderr.write(`web UI build failed: ${err.message}\n`);
    process.exit(1);
  });
}
