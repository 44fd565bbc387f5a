// The runtime bootstrap: every npm script runs through this file, so that cutover, its tests and
// its tools always run on the Node version pinned in package.json ("cutover": {"runtime": …}),
// whatever Node started npm. Plain Node ESM without dependencies: it must run on any Node >= 18.
//
//   node scripts/runtime.mjs node --import tsx scripts/local.ts   # a command under the pinned Node
//   node scripts/runtime.mjs npm ci --no-audit --no-fund          # npm itself under the pinned Node
//   node scripts/runtime.mjs                                      # only install what is missing
//
// 1. The pinned Node: when the running Node is not of the pinned major (or is older than the
//    engines.node lower bound), the registry's `node-<platform>-<arch>` package of exactly the pinned
//    version is installed once into ${XDG_CACHE_HOME:-~/.cache}/cutover-runtime/node-v<version>/
//    (outside the repository, shared by every clone). The install goes into a temp dir that is
//    renamed into place, under a lock, so a crash or two concurrent first runs never leave half a
//    Node behind.
// 2. npm dependencies: `npm ci` when node_modules is missing or older than package-lock.json,
//    with npm's own cli running under the pinned Node (package.json engines + engine-strict).
// 3. The command: run with the pinned Node's bin dir first on PATH (then node_modules/.bin), so
//    `node`, `npx`, `#!/usr/bin/env node` scripts and children spawned with process.execPath all
//    get the pinned Node. stdio is inherited; SIGINT, SIGTERM and SIGHUP are passed on to the
//    command, except a terminal's Ctrl-C or hang-up, which reaches it directly (it stays in our
//    process group). A signal sent to the whole group reaches it twice, so handlers must tolerate a
//    repeated signal, as cutover's do. The exit code, or the signal that ended it, is ours.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants as osConstants, homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const say = (line) => process.stderr.write(`cutover-runtime: ${line}\n`);

/** The one place the runtime version is pinned: package.json "cutover": {"runtime": "24.22.3"}. */
const VERSION = pkg.cutover?.runtime;
if (!/^\d+\.\d+\.\d+$/.test(VERSION ?? '')) fail('package.json has no "cutover": {"runtime": "X.Y.Z"}');
const MAJOR = Number(VERSION.split('.')[0]);

const LOCK_TIMEOUT_MS = 15 * 60_000;
const STALE_OWNERLESS_LOCK_MS = 10_000;
const PROGRESS_EVERY_MS = 10_000;
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function fail(message) {
  say(message);
  process.exit(1);
}

function versionParts(v) {
  return v.replace(/^v/, '').split('.').map(Number);
}

function atLeast(v, min) {
  const a = versionParts(v);
  const b = versionParts(min);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** The running Node will do when it has the pinned major and meets engines.node's `>=` bound. */
function currentNodeFits() {
  const current = process.versions.node;
  if (versionParts(current)[0] !== MAJOR) return false;
  const lower = /(?:^|\s)>=\s*v?(\d+(?:\.\d+){0,2})/.exec(pkg.engines?.node ?? '')?.[1];
  return !lower || atLeast(current, lower);
}

function cacheHome() {
  const xdg = process.env.XDG_CACHE_HOME;
  return xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache');
}

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** mkdir is atomic: the lock is a directory with its owner's pid in it. A dead owner's lock is taken over. */
async function withLock(lockDir, what, fn) {
  const started = Date.now();
  let lastNote = 0;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'owner'), `${process.pid}\n`);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      let owner = 0;
      try {
        owner = Number(readFileSync(join(lockDir, 'owner'), 'utf8').trim());
      } catch {}
      let age = 0;
      try {
        age = Date.now() - statSync(lockDir).mtimeMs;
      } catch {}
      if (owner > 0 ? !alive(owner) : age > STALE_OWNERLESS_LOCK_MS) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - started > LOCK_TIMEOUT_MS) throw new Error(`${what}: lock ${lockDir} still held by pid ${owner || 'unknown'}`);
      if (Date.now() - lastNote >= PROGRESS_EVERY_MS) {
        say(`waiting for pid ${owner || 'unknown'}, which is installing ${what}…`);
        lastNote = Date.now();
      }
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** npm's own cli script (run with whichever Node we choose), or undefined. */
function npmCli() {
  const candidates = [];
  const fromNpm = process.env.npm_execpath; // set when we run from an npm script
  if (fromNpm && /npm-cli\.js$/.test(fromNpm)) candidates.push(fromNpm);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const bin = join(dir, 'npm');
    if (!existsSync(bin)) continue;
    try {
      const real = realpathSync(bin); // /usr/bin/npm -> /usr/lib/node_modules/npm/bin/npm-cli.js
      candidates.push(real.endsWith('.js') ? real : join(dirname(real), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'));
    } catch {}
  }
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js'));
  return candidates.find((c) => existsSync(c));
}

/** Runs npm (`npmArgs`) under `node`; with its output shown unless `quiet`. */
function runNpm(node, npmArgs, options = {}) {
  const cli = npmCli();
  if (!cli) fail('npm was not found (looked at $npm_execpath, npm on PATH, and next to this Node)');
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, ...npmArgs], { cwd: options.cwd ?? root, env: options.env ?? process.env, stdio: options.quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    // Stopped while npm runs: stop npm too, instead of leaving it writing behind our back.
    const forward = (signal) => {
      if (signal === 'SIGTERM' || !inTerminalForeground()) child.kill(signal); // see runCommand
    };
    for (const s of FORWARDED_SIGNALS) process.on(s, forward);
    const done = () => {
      for (const s of FORWARDED_SIGNALS) process.off(s, forward);
    };
    child.once('error', (err) => (done(), reject(err)));
    child.once('exit', (code, signal) => {
      done();
      if (signal) reject(new Error(`npm ${npmArgs[0]} was stopped by ${signal}`));
      else resolve({ code: code ?? 1, output });
    });
  });
}

function platformPackage() {
  const platform = { linux: 'linux', darwin: 'darwin' }[process.platform];
  if (!platform) fail(`no pinned Node for ${process.platform}: install Node ${VERSION} yourself and run with it`);
  return `node-${platform}-${process.arch}`;
}

/** The pinned Node, installed into the versioned cache dir when missing. Returns its binary. */
async function ensureRuntime() {
  const base = join(cacheHome(), 'cutover-runtime');
  const dir = join(base, `node-v${VERSION}`);
  const node = join(dir, 'bin', 'node');
  if (executable(node)) return node;
  mkdirSync(base, { recursive: true });
  return withLock(join(base, `node-v${VERSION}.lock`), `Node ${VERSION}`, async () => {
    if (executable(node)) return node; // installed by whoever held the lock
    const name = platformPackage();
    const started = Date.now();
    say(`installing Node ${VERSION} (npm package ${name}, about 190 MB) into ${dir} (once per machine)…`);
    // Only the lock holder writes temp dirs: any left over are from an install that was killed.
    for (const entry of readdirSync(base)) {
      if (!entry.startsWith(`.tmp-node-v${VERSION}-`)) continue;
      try {
        rmSync(join(base, entry), { recursive: true, force: true, maxRetries: 3 });
      } catch {} // still being written by a killed install's npm: removed by a later run
    }
    const tmp = mkdtempSync(join(base, `.tmp-node-v${VERSION}-`));
    const ticker = setInterval(() => say(`still installing Node ${VERSION}… ${Math.round((Date.now() - started) / 1000)} s`), PROGRESS_EVERY_MS);
    try {
      writeFileSync(join(tmp, 'package.json'), '{"private": true}\n');
      // Outside the repository, so cutover's .npmrc and engines do not apply; no scripts (there are none).
      const res = await runNpm(process.execPath, ['install', `${name}@${VERSION}`, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: tmp, quiet: true });
      if (res.code !== 0) throw new Error(`npm install ${name}@${VERSION} failed (exit ${res.code}):\n${res.output.trim()}`);
      const unpacked = join(tmp, 'node_modules', name);
      const got = spawnSync(join(unpacked, 'bin', 'node'), ['--version'], { encoding: 'utf8' });
      if (got.stdout?.trim() !== `v${VERSION}`) throw new Error(`the installed ${name} says ${JSON.stringify(got.stdout?.trim() ?? got.error?.message)}, not v${VERSION}`);
      try {
        renameSync(unpacked, dir);
      } catch (err) {
        // Someone without our lock (e.g. a clone with an older copy of this script) got there first.
        if (!['EEXIST', 'ENOTEMPTY'].includes(err.code) || !executable(node)) throw err;
      }
    } finally {
      clearInterval(ticker);
      rmSync(tmp, { recursive: true, force: true });
    }
    say(`Node ${VERSION} installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return node;
  });
}

/** `npm ci` under `node` when node_modules is missing or older than package-lock.json. */
async function ensureDependencies(node, env) {
  const marker = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  say(`installing npm dependencies (npm ci, on Node ${node === process.execPath ? process.versions.node : VERSION})…`);
  const res = await runNpm(node, ['ci', '--no-audit', '--no-fund'], { env });
  if (res.code !== 0) fail(`npm ci failed (exit ${res.code})`);
}

function childEnv(node) {
  const bin = dirname(node);
  const path = [bin, join(root, 'node_modules', '.bin'), ...(process.env.PATH ?? '').split(delimiter).filter((p) => p && p !== bin)];
  // npm exports the Node that runs it as $NODE and $npm_node_execpath: point them at ours too.
  return { ...process.env, PATH: path.join(delimiter), NODE: node, npm_node_execpath: node };
}

/** Whether we run in the foreground process group of a terminal (Linux: /proc/self/stat). */
function inTerminalForeground() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // pid (comm) state ppid pgrp session tty_nr tpgid …; comm may contain spaces and parentheses.
    const [, , pgrp, , ttyNr, tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return ttyNr !== 0 && tpgid === pgrp;
  } catch {
    return false;
  }
}

function runCommand(node, env, [command, ...args]) {
  // `node` is the pinned binary itself; `npm` is npm's cli script under it; anything else via PATH.
  let file = command;
  let argv = args;
  if (command === 'node') file = node;
  else if (command === 'npm') {
    const cli = npmCli();
    if (!cli) fail('npm was not found (looked at $npm_execpath, npm on PATH, and next to this Node)');
    file = node;
    argv = [cli, ...args];
  }
  // The command stays in our process group (and so in a terminal's foreground group: it may read
  // the terminal, e.g. `cutover apply -f -`).
  const child = spawn(file, argv, { cwd: process.cwd(), env, stdio: 'inherit' });
  const forward = (signal) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    // A terminal's Ctrl-C (or hang-up) goes to its whole foreground process group, the command
    // included: passing it on as well would deliver it twice.
    if (signal !== 'SIGTERM' && inTerminalForeground()) return;
    child.kill(signal);
  };
  for (const s of FORWARDED_SIGNALS) process.on(s, forward);
  child.once('error', (err) => fail(`cannot run ${command}: ${err.message}`));
  child.once('exit', (code, signal) => {
    for (const s of FORWARDED_SIGNALS) process.off(s, forward);
    if (signal) {
      // Die of the same signal, so whoever started us sees what happened to the command.
      // (Should that signal be ignored here, exit as a shell would report it.)
      process.kill(process.pid, signal);
      setTimeout(() => process.exit(128 + (osConstants.signals[signal] ?? 1)), 100);
      return;
    }
    process.exit(code ?? 1);
  });
}

async function main() {
  const node = currentNodeFits() ? process.execPath : await ensureRuntime();
  const env = childEnv(node);
  const command = process.argv.slice(2);
  // `npm …` manages the dependencies itself (`npm ci` on a clean clone must not run twice).
  if (command[0] !== 'npm') await ensureDependencies(node, env);
  if (command.length > 0) runCommand(node, env, command);
}

main().catch((err) => fail(err instanceof Error && !/^npm /.test(err.message) ? err.stack : String(err?.message ?? err)));
