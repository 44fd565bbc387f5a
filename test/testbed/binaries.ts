// Builds the control-plane binaries from Go modules (no release downloads are reachable) into a cache
// outside the repository, keyed by the versions (config.ts defaultBinDir, or $CUTOVER_TESTBED_BIN).
// A binary that is present is never rebuilt; a build writes to a temp dir and renames, so a crashed
// build never leaves a half-written binary behind.
import { access, constants, mkdir, rename, rm, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { TESTBED_SRC, VERSIONS, binDir as configuredBinDir } from './config.js';
import { run, runLogged, requireTools } from './commands.js';
import { withLock } from './lock.js';

export interface BinaryPaths {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
}

export interface EnsureOptions {
  /** Defaults to $CUTOVER_TESTBED_BIN or the versioned cache dir. */
  binDir?: string;
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

const execFileP = promisify(execFile);
const K8S_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'] as const;
const BUILD_LOCK_TIMEOUT_MS = 90 * 60_000; // another process may be doing a cold build

function goEnv(): NodeJS.ProcessEnv {
  // local toolchain only (fail fast instead of downloading one), no parent go.work, static binaries,
  // and no inherited GOFLAGS (e.g. -mod=vendor) that would change how the wrapper modules resolve.
  return { ...process.env, GOTOOLCHAIN: 'local', GOWORK: 'off', CGO_ENABLED: '0', GOFLAGS: '' };
}

function k8sLdflags(): string {
  const v = VERSIONS.kubernetes; // v1.36.3
  const minor = v.split('.')[1] ?? '';
  const stamp = (pkg: string) =>
    [`-X ${pkg}.gitVersion=${v}`, `-X ${pkg}.gitMajor=1`, `-X ${pkg}.gitMinor=${minor}`];
  return ['-s', '-w', ...stamp('k8s.io/component-base/version'), '-X k8s.io/component-base/version.gitTreeState=clean',
    ...stamp('k8s.io/client-go/pkg/version')].join(' ');
}

export async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(() => true, () => false);
}

function pathsIn(dir: string): BinaryPaths {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kubectl: join(dir, 'kubectl'),
    kwok: join(dir, 'kwok'),
  };
}

async function checkGo(): Promise<void> {
  await requireTools(['go']);
  const version = ((await run('go', ['env', 'GOVERSION'], { env: goEnv() })) ?? '').trim(); // e.g. go1.26.8
  const m = /^go(\d+)\.(\d+)/.exec(version);
  if (!m || (Number(m[1]) === 1 && Number(m[2]) < 26)) {
    throw new Error(`Go ${version || '(unknown)'} is too old: the test bed's modules need Go >= 1.26`);
  }
}

/** Measured cold build times (docs/testbed.md), for the progress lines. */
const TYPICAL_COLD_BUILD_S = { etcd: 90, kwok: 165, kubernetes: 540 } as const;

interface Target {
  names: string[];
  build(tmp: string, log: string): Promise<void>;
}

const TARGETS: Record<'etcd' | 'kwok' | 'kubernetes', Target> = {
  etcd: {
    names: ['etcd'],
    // The wrapper module pins etcd server v3.6.x (its own go.mod has replace lines, so `go install` refuses it).
    build: (tmp, log) => runLogged('go', ['build', '-trimpath', '-ldflags', '-s -w', '-o', join(tmp, 'etcd'),
      'go.etcd.io/etcd/server/v3'], log, { cwd: join(TESTBED_SRC, 'go', 'etcd'), env: goEnv() }),
  },
  kwok: {
    names: ['kwok'],
    // kwok has no replace lines, so a plain `go install module@version` works (run from tmp: no go.mod there).
    build: (tmp, log) => runLogged('go', ['install', '-trimpath', '-ldflags', '-s -w', `sigs.k8s.io/kwok/cmd/kwok@${VERSIONS.kwok}`],
      log, { cwd: tmp, env: { ...goEnv(), GOBIN: tmp } }),
  },
  kubernetes: {
    names: [...K8S_BINARIES],
    // One `go build` for all four: they share most packages, so this is much faster than four builds.
    build: (tmp, log) => runLogged('go', ['build', '-trimpath', '-ldflags', k8sLdflags(), '-o', `${tmp}/`,
      ...K8S_BINARIES.map((b) => `k8s.io/kubernetes/cmd/${b}`)], log, { cwd: join(TESTBED_SRC, 'go', 'k8s'), env: goEnv() }),
  },
};

async function ensureTargets(which: (keyof typeof TARGETS)[], opts: EnsureOptions): Promise<BinaryPaths> {
  const dir = opts.binDir ?? configuredBinDir();
  const say = opts.log ?? ((l: string) => process.stderr.write(`testbed: ${l}\n`));
  const missing = async () => {
    const out: (keyof typeof TARGETS)[] = [];
    for (const t of which) {
      for (const n of TARGETS[t].names) if (!(await executable(join(dir, n)))) { out.push(t); break; }
    }
    return out;
  };
  if ((await missing()).length === 0) return pathsIn(dir);

  await mkdir(dir, { recursive: true });
  await checkGo();
  await withLock(join(dir, '.build.lock'), 'build', BUILD_LOCK_TIMEOUT_MS, async () => {
    const log = join(dir, '.build.log');
    for (const t of await missing()) { // re-check: another process may have built it while we waited
      const tmp = join(dir, `.build-${process.pid}-${t}`);
      await rm(tmp, { recursive: true, force: true });
      await mkdir(tmp, { recursive: true });
      say(`building ${TARGETS[t].names.join(', ')} (${t === 'kubernetes' ? VERSIONS.kubernetes : VERSIONS[t]}); ` +
        `a cold build takes minutes, see ${log}`);
      const started = Date.now();
      // A cold build is silent for minutes: say every 30 s that it is still going, against the usual time.
      const ticker = setInterval(() => {
        say(`still building ${t}: ${Math.round((Date.now() - started) / 1000)} s so far (a cold build usually takes about ${TYPICAL_COLD_BUILD_S[t]} s on 2 cores)`);
      }, 30_000);
      try {
        await TARGETS[t].build(tmp, log);
        for (const n of TARGETS[t].names) await rename(join(tmp, n), join(dir, n));
      } finally {
        clearInterval(ticker);
        await rm(tmp, { recursive: true, force: true });
      }
      const secs = Math.round((Date.now() - started) / 1000);
      await appendFile(log, `# built ${TARGETS[t].names.join(', ')} in ${secs} s\n`);
      say(`built ${TARGETS[t].names.join(', ')} in ${secs} s`);
    }
  });
  return pathsIn(dir);
}

/** All test-bed binaries, building whatever is missing. */
export async function ensureBinaries(opts: EnsureOptions = {}): Promise<BinaryPaths> {
  return ensureTargets(['etcd', 'kwok', 'kubernetes'], opts);
}

/** Only etcd (e.g. for cutover's own etcd in the app's tests): returns the path of the binary. */
export async function ensureEtcdBinary(opts: EnsureOptions = {}): Promise<string> {
  return (await ensureTargets(['etcd'], opts)).etcd;
}

/**
 * Directory of a Go module in the module cache (downloaded through the Go module proxy if needed).
 * The files there are read-only: copy before editing.
 */
export async function goModuleDir(path: string, version: string): Promise<string> {
  await requireTools(['go']);
  // On failure `go mod download -json` exits 1 with the reason in the JSON on stdout (e.g. the proxy's 403).
  const out = await execFileP('go', ['mod', 'download', '-json', `${path}@${version}`], { env: goEnv(), cwd: '/' })
    .then((r) => r.stdout, (err: { stdout?: string; stderr?: string; message: string }) => err.stdout || err.stderr || err.message);
  let info: { Dir?: string; Error?: string } = {};
  try { info = JSON.parse(out) as typeof info; } catch { info = { Error: out.trim() }; }
  if (!info.Dir) throw new Error(`go mod download ${path}@${version} failed: ${info.Error ?? 'no Dir in its answer'}`);
  return info.Dir;
}

/** Directory of the kwok module (default stage files live in kustomize/stage/); downloads it if needed. */
export async function kwokModuleDir(): Promise<string> {
  return goModuleDir('sigs.k8s.io/kwok', VERSIONS.kwok);
}
