import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubeConfig } from '@kubernetes/client-node';
import { TestEtcd } from '../support/etcd.js';
import { startTestCutover, type TestCutover } from '../support/cutover.js';
import { CutoverProcess } from '../support/process.js';
import { startBedFixture, type BedFixture } from '../support/bed.js';
import { ClusterView, fakeAppDescriptor, type AppSpec } from '../support/deploy.js';
import { request } from '../support/http.js';
import { freePort } from '../support/ports.js';
import { authEnv, authSecrets, createKey, hsToken, type ApiKey } from '../support/security.js';
import { waitFor } from '../support/wait.js';
import { ExitCode } from '../../src/cli/exit-codes.js';

/**
 * The real `cutover` CLI (src/cli/main.ts, as a child process) against a real cutover on the
 * test bed: the exit codes a pipeline relies on, and what it prints.
 */

const REPO_ROOT = new URL('../../', import.meta.url).pathname;
const files = mkdtempSync(join(tmpdir(), 'cutover-cli-test-'));
after(() => rmSync(files, { recursive: true, force: true }));

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunningCli {
  /** Output so far. */
  stdout(): string;
  /** Ctrl-C. */
  interrupt(): void;
  done: Promise<CliRun>;
}

/** Starts `node --import tsx src/cli/main.ts ARGS` (or another entry) without waiting for it. */
function startCli(args: string[], env: Record<string, string>, options: { entry?: string[]; stdin?: string; killAfterMs?: number } = {}): RunningCli {
  const child = spawn(process.execPath, [...(options.entry ?? ['--import', 'tsx', 'src/cli/main.ts']), ...args], {
    cwd: REPO_ROOT,
    // No TTY and no inherited credentials: plain lines, and only what the test gives.
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.end(options.stdin ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 180_000);
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  return { stdout: () => stdout, interrupt: () => child.kill('SIGINT'), done };
}

function writeDescriptor(name: string, descriptor: Record<string, unknown>): string {
  const path = join(files, `${name}-${randomUUID().slice(0, 6)}.yaml`);
  writeFileSync(path, stringify(descriptor));
  return path;
}

/** The log messages of the CLI's plain output ("<time> log      <message>"), in order. */
function loggedMessages(stdout: string): string[] {
  return stdout.split('\n').flatMap((l) => {
    const m = /^\S+Z log {6}(.*)$/.exec(l);
    return m ? [m[1]!] : [];
  });
}

const serverLogMessages = (text: string) => text.split('\n').filter(Boolean).map((l) => l.slice(l.indexOf(' ') + 1));

describe('cutover CLI on the test bed', { concurrency: 4 }, () => {
  let bed: BedFixture;
  let kc: KubeConfig;
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let cluster: ClusterView;
  const namespace = (prefix: string) => bed.namespace(prefix);

  before(async () => {
    bed = await startBedFixture();
    ({ kc, etcd, cutover, cluster } = bed);
  });

  after(async () => {
    await bed?.close();
  });

  const cli = (args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) =>
    startCli(args, { CUTOVER_URL: cutover.url, ...options.env }, options.stdin !== undefined ? { stdin: options.stdin } : {}).done;

  // One app through its life: each step builds on the one before, so they run in order.
  describe('a pipeline on one app, step by step', { concurrency: 1 }, () => {
    let ns: string;
    let appFile: string;
    let firstId: string;
    let secondId: string;
    const spec: AppSpec = { appName: 'shop', replicas: 2 };

    before(async () => {
      ns = await namespace('cli-pipeline');
      appFile = writeDescriptor('shop', fakeAppDescriptor(ns, spec));
    });

    it('deploy -f app.yaml --wait exits 0 and shows the steps, the health of each pod and the log', async () => {
      const r = await cli(['deploy', `${ns}/shop`, '-f', appFile, '--wait']);
      assert.equal(r.code, ExitCode.success, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`apply +${ns}/shop: created descriptor `));
      const started = new RegExp(`deploy +deployment (\\S+) of ${ns}/shop version 1 started`).exec(r.stdout);
      assert.ok(started, r.stdout);
      firstId = started[1]!;
      assert.match(r.stdout, new RegExp(`deploy +Location: ${cutover.url}/deployments/${firstId}/\\?namespace=${ns}`));
      const steps = [...r.stdout.matchAll(/^\S+Z step +(\S+)/gm)].map((m) => m[1]);
      assert.deepEqual(steps, ['queued', 'preparing', 'creating-resources', 'waiting-for-pods', 'health-checking', 'switching-traffic', 'deployed']);
      assert.equal([...r.stdout.matchAll(/^\S+Z health +pod shop-1-\S+ healthy \(HTTP 200/gm)].length, 2, 'one health line per pod');
      assert.match(r.stdout, new RegExp(`result +DEPLOYED ${ns}/shop version 1 in `));
      // Every line of the server's log, exactly once and in order.
      const serverLog = (await request(`${cutover.url}/deployments/${firstId}/logs?namespace=${ns}`)).text;
      assert.deepEqual(loggedMessages(r.stdout), serverLogMessages(serverLog));
      assert.deepEqual(await cluster.workloads(ns, 'shop'), ['shop-1']);
    });

    it('apply twice prints "unchanged" and stores nothing; a change prints the field diff', async () => {
      const before = (await request(`${cutover.url}/descriptors/?namespace=${ns}&appname=shop`)).body[0];
      for (let i = 0; i < 2; i++) {
        const r = await cli(['apply', '-f', appFile]);
        assert.equal(r.code, ExitCode.success, r.stderr);
        assert.match(r.stdout, new RegExp(`${ns}/shop: unchanged \\(descriptor ${before.id}\\)`));
      }
      assert.equal((await request(`${cutover.url}/descriptors/${before.id}/?namespace=${ns}`)).body.lastModified, before.lastModified, 'no write');

      const changed = writeDescriptor('shop-v2', fakeAppDescriptor(ns, { ...spec, replicas: 3, drainSeconds: 2 }));
      const r = await cli(['apply', '-f', changed]);
      assert.equal(r.code, ExitCode.success, r.stderr);
      assert.match(r.stdout, /updated descriptor .*: 1 added, 1 changed/);
      assert.match(r.stdout, /^ {2}\+ drainSeconds: 2$/m);
      assert.match(r.stdout, /^ {2}~ replicas: 2 → 3$/m);
      const list = (await request(`${cutover.url}/descriptors/?namespace=${ns}&appname=shop`)).body;
      assert.equal(list.length, 1, 'updated in place, not a second descriptor');
      assert.equal(list[0].replicas, 3);
    });

    it('deploy --wait --json prints one JSON document with the final record', async () => {
      const r = await cli(['deploy', `${ns}/shop`, '--wait', '--json']);
      assert.equal(r.code, ExitCode.success, r.stderr);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.ok, true);
      assert.equal(doc.outcome, 'DEPLOYED');
      assert.equal(doc.deployment.status, 'DEPLOYED');
      assert.equal(doc.deployment.version, '2');
      assert.equal(doc.deployment.replaces, firstId);
      assert.ok(doc.logTail.some((l: string) => /deployment successful/.test(l)));
      secondId = doc.deployment.id;
      await waitFor('version 1 to be drained', async () => (await request(`${cutover.url}/deployments/${firstId}/?namespace=${ns}`)).body.status === 'UNDEPLOYED', { timeoutMs: 30_000 });
    });

    it('status shows what runs and the last deployments with outcome and duration', async () => {
      const r = await cli(['status', `${ns}/shop`]);
      assert.equal(r.code, ExitCode.success, r.stderr);
      assert.match(r.stdout, new RegExp(`running: +version 2 since .*deployment ${secondId}`));
      assert.match(r.stdout, new RegExp(`${secondId} +2 +DEPLOYED +\\S+ \\S+ +\\d`));
      assert.match(r.stdout, new RegExp(`${firstId} +1 +UNDEPLOYED .* replaced by ${secondId}`));
      const json = JSON.parse((await cli(['status', `${ns}/shop`, '--json', '--last', '1'])).stdout);
      assert.equal(json.running.version, '2');
      assert.equal(json.deployments.length, 1);
    });

    it('logs prints the log; logs -f of a finished deployment prints the same and exits 0', async () => {
      const serverLog = (await request(`${cutover.url}/deployments/${secondId}/logs?namespace=${ns}`)).text;
      const plain = await cli(['logs', secondId, '-n', ns]);
      assert.equal(plain.code, ExitCode.success, plain.stderr);
      assert.equal(plain.stdout, serverLog);
      const followed = await cli(['logs', `${ns}/${secondId}`, '-f']);
      assert.equal(followed.code, ExitCode.success, followed.stderr);
      assert.equal(followed.stdout, serverLog);
      const missing = await cli(['logs', randomUUID(), '-n', ns]);
      assert.equal(missing.code, ExitCode.notFound);
    });

    it('rollback --wait redeploys the version that ran before and exits 0', async () => {
      const r = await cli(['rollback', `${ns}/shop`, '--wait']);
      assert.equal(r.code, ExitCode.success, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`version 2 runs now \\(deployment ${secondId}\\); redeploying the descriptor of version 1 \\(deployment ${firstId}`));
      assert.match(r.stdout, /version 1's descriptor is deployed as version 3/);
      assert.match(r.stdout, new RegExp(`result +DEPLOYED ${ns}/shop version 3`));
      const live = (await request(`${cutover.url}/deployments/?namespace=${ns}&appname=shop`)).body.find((d: any) => d.status === 'DEPLOYED');
      assert.equal(live.redeployOf, firstId);
      assert.equal(live.descriptor.replicas, 2, 'the descriptor copy of version 1, not the updated descriptor');
    });

    it('undeploy --wait removes the live version and exits 0; again, there is nothing to undeploy', async () => {
      await waitFor('version 2 to be drained', async () => (await request(`${cutover.url}/deployments/${secondId}/?namespace=${ns}`)).body.status === 'UNDEPLOYED', { timeoutMs: 30_000 });
      const r = await cli(['undeploy', `${ns}/shop`, '--wait']);
      assert.equal(r.code, ExitCode.success, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, new RegExp(`result +UNDEPLOYED ${ns}/shop version 3`));
      await cluster.waitForWorkloads(ns, 'shop', []);
      const again = await cli(['undeploy', `${ns}/shop`]);
      assert.equal(again.code, ExitCode.success);
      assert.match(again.stdout, /nothing to undeploy/);
    });
  });

  it('an unhealthy version exits 1 and prints the reason and the last log lines', async () => {
    const ns = await namespace('cli-unhealthy');
    const file = writeDescriptor('unhealthy', fakeAppDescriptor(ns, { appName: 'sick', health: 'probe-false', healthCheckTimeout: 8 }));
    const r = await cli(['deploy', `${ns}/sick`, '-f', file, '--wait']);
    assert.equal(r.code, ExitCode.deploymentFailed, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`error: FAILURE ${ns}/sick version 1: new version not healthy within 8 s`));
    assert.match(r.stderr, /last \d+ log lines:\n(.*\n)*.*Deployment failed: new version not healthy/);
    assert.match(r.stderr, /hint: the whole log: cutover logs \S+ -n /);
    assert.match(r.stdout, /health +pod sick-1-\S+ not healthy \(HTTP 200, \d+ ms\): body has "healthy": false/);
  });

  it('a wait longer than --timeout exits 5 and says the deployment goes on', async () => {
    const ns = await namespace('cli-timeout');
    const file = writeDescriptor('slow', fakeAppDescriptor(ns, { appName: 'slow', podBehaviour: 'never-ready', healthCheckTimeout: 60, deadlineSeconds: 60 }));
    const started = Date.now();
    const r = await cli(['deploy', `${ns}/slow`, '-f', file, '--wait', '--timeout', '5s']);
    assert.equal(r.code, ExitCode.timeout, `${r.stdout}\n${r.stderr}`);
    assert.ok(Date.now() - started < 20_000);
    // Where it got to in 5 s depends on the machine's load; that it is still going on does not.
    assert.match(r.stderr, /timed out after 5\.0s: deployment \S+ is still DEPLOYING \(step [a-z-]+\)/);
    assert.match(r.stderr, /goes on on the server/);

    // Ctrl-C while waiting (here for a deployment queued behind that one): 130, and where to look.
    const waiting = startCli(['deploy', `${ns}/slow`, '--wait'], { CUTOVER_URL: cutover.url });
    await waitFor('the CLI to wait', () => /step +queued/.test(waiting.stdout()), { timeoutMs: 20_000, intervalMs: 50 });
    waiting.interrupt();
    const interrupted = await waiting.done;
    assert.equal(interrupted.code, ExitCode.interrupted);
    assert.match(interrupted.stderr, /interrupted: stopped waiting; deployment \S+ goes on on the server: cutover logs \S+ -n cli-timeout-/);
  });

  it('env set, list and unset through the REST endpoints (administrators)', async () => {
    const name = `CLI_TEST_${randomUUID().slice(0, 6).toUpperCase()}`;
    assert.equal((await cli(['env', 'set', name, 'v 1'])).code, ExitCode.success);
    const list = await cli(['env', 'list', '--json']);
    assert.equal(list.code, ExitCode.success, list.stderr);
    assert.ok(JSON.parse(list.stdout).environment.some((e: { name: string; value: string }) => e.name === name && e.value === 'v 1'));
    assert.equal((await cli(['env', 'unset', name])).code, ExitCode.success);
    assert.equal((await cli(['env', 'unset', name])).code, ExitCode.notFound);
  });

  it('refused input exits 3 with every problem and its field path; an unknown app exits 7', async () => {
    const ns = await namespace('cli-invalid');
    const r = await cli(['apply', '-f', '-'], { stdin: stringify({ namespace: ns, appName: 'Bad App!', replicas: -1, podspec: { containers: [{ name: 'app' }] } }) });
    assert.equal(r.code, ExitCode.invalidInput, r.stderr);
    assert.match(r.stderr, /the descriptor in stdin was refused; nothing was applied/);
    for (const path of ['appName', 'replicas', 'podspec.containers.0.image']) assert.match(r.stderr, new RegExp(`^ {2}${path.replace(/\./g, '\\.')}: `, 'm'));
    assert.equal((await request(`${cutover.url}/descriptors/?namespace=${ns}`)).body.length, 0);

    const unknown = await cli(['deploy', `${ns}/ghost`, '--wait']);
    assert.equal(unknown.code, ExitCode.notFound);
    assert.match(unknown.stderr, /has no descriptor/);
    assert.match(unknown.stderr, /cutover apply -f/);
  });

  it('usage errors exit 2; an unreachable cutover exits 6 after retrying within --timeout', async () => {
    const usage = await cli(['deploy', 'not-an-app-ref']);
    assert.equal(usage.code, ExitCode.usage);
    const closed = await freePort();
    const started = Date.now();
    const r = await cli(['status', 'shop/web', '--url', `http://127.0.0.1:${closed}`, '--timeout', '3s']);
    assert.equal(r.code, ExitCode.unavailable, r.stderr);
    assert.ok(Date.now() - started < 15_000);
    assert.match(r.stdout, /notice +listing the deployments of shop\/web: ECONNREFUSED; retrying in/);
    assert.match(r.stderr, /cutover unreachable: ECONNREFUSED \(retried for \d s\)/);
    assert.match(r.stderr, /check --url/);
  });

  it('cutover stopped mid-wait and restarted: the CLI resumes and reports the true outcome, no line lost or repeated', async () => {
    const ns = await namespace('cli-restart');
    const proc = await CutoverProcess.start({
      CUTOVER_ETCD_ENDPOINTS: etcd.endpoint,
      CUTOVER_ETCD_PREFIX: `/cli-restart-${randomUUID().slice(0, 8)}/`,
      CUTOVER_KUBECONFIG: bed.testbed.kubeconfigPath,
      CUTOVER_DRAIN_SECONDS: '1',
      CUTOVER_HEALTHCHECK_INTERVAL_MS: '200',
      CUTOVER_SHUTDOWN_GRACE_SECONDS: '2',
      // Holds the deployment before its health check long enough to stop cutover there.
      CUTOVER_FAILPOINTS: 'before-health-check=pause:4000',
    });
    try {
      const file = writeDescriptor('restart', fakeAppDescriptor(ns, { appName: 'phoenix' }));
      const running = startCli(['deploy', `${ns}/phoenix`, '-f', file, '--wait', '--timeout', '150s'], { CUTOVER_URL: proc.url });
      await waitFor('the CLI to show the pods ready', () => /All 2 pods are ready/.test(running.stdout()), { timeoutMs: 60_000, intervalMs: 50 });
      assert.equal(await proc.stop(), 0, 'cutover stops cleanly mid-deployment');
      await new Promise((resolve) => setTimeout(resolve, 1500)); // the CLI meets a dead port for a while
      await proc.start();
      const r = await running.done;
      assert.equal(r.code, ExitCode.success, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /notice +log stream closed \(1001 server shutting down; resume with from=\d+\)/);
      assert.match(r.stdout, new RegExp(`result +DEPLOYED ${ns}/phoenix version 1`));
      const id = /deployment (\S+) of \S+ version 1 started/.exec(r.stdout)![1]!;
      const serverLog = (await request(`${proc.url}/deployments/${id}/logs?namespace=${ns}`)).text;
      assert.match(serverLog, /Resuming deployment/, 'the deployment really was interrupted and resumed');
      assert.deepEqual(loggedMessages(r.stdout), serverLogMessages(serverLog), 'every log line exactly once, in order');
    } finally {
      await proc.stop();
    }
  });

  it('the built CLI (tsc output with its shebang) runs, and imports nothing of the server', async () => {
    const out = join(REPO_ROOT, '.local', `cli-build-${randomUUID().slice(0, 8)}`);
    const tsconfig = join(out, 'tsconfig.json');
    try {
      // The build of npm run build, restricted to the CLI's import graph (a few seconds, and the
      // shared dist/ of other work is left alone).
      mkdirSync(out, { recursive: true });
      writeFileSync(tsconfig, JSON.stringify({ extends: '../../tsconfig.build.json', compilerOptions: { outDir: './out', rootDir: '../..', sourceMap: false }, include: ['../../src/cli/**/*.ts'] }));
      const tsc = await startCli(['-p', tsconfig], {}, { entry: [join(REPO_ROOT, 'node_modules/typescript/bin/tsc')] }).done;
      assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
      const main = join(out, 'out/src/cli/main.js');
      assert.match(readFileSync(main, 'utf8'), /^#!\/usr\/bin\/env node\n/);
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
      assert.equal(pkg.bin.cutover, 'dist/src/cli/main.js');
      const emitted = readdirSync(join(out, 'out/src'));
      assert.deepEqual(emitted.sort(), ['auth', 'cli', 'domain', 'lib'], 'only the CLI, the shared domain types, request signing and the deadline primitives');
      const version = await startCli(['--version'], {}, { entry: [main] }).done;
      assert.equal(version.code, 0);
      assert.equal(version.stdout.trim(), pkg.version);
      const status = await startCli(['status', 'nobody/nothing'], { CUTOVER_URL: cutover.url }, { entry: [main] }).done;
      assert.equal(status.code, ExitCode.notFound, status.stderr);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('cutover CLI with authentication on', () => {
  const secrets = authSecrets();
  let etcd: TestEtcd;
  let cutover: TestCutover;
  let key: ApiKey;
  let shopToken: string;

  before(async () => {
    etcd = await TestEtcd.create();
    cutover = await startTestCutover(etcd.endpoint, authEnv(secrets, { CUTOVER_AUTH_FAILURES_PER_MINUTE: '100000' }));
    const admin = await hsToken(secrets.jwtSecret, { sub: 'root', namespaces: '*' });
    key = await createKey(cutover.url, admin, 'shop', ['shop']);
    shopToken = await hsToken(secrets.jwtSecret, { sub: 'ci', namespaces: ['shop'] });
  });

  after(async () => {
    await cutover?.stop();
    await etcd?.destroy();
  });

  const cli = (args: string[], env: Record<string, string>, stdin?: string) =>
    startCli(args, { CUTOVER_URL: cutover.url, ...env }, stdin !== undefined ? { stdin } : {}).done;

  it('signs requests with the API key: apply, status and the log websocket work', async () => {
    const env = { CUTOVER_KEY_ID: key.id, CUTOVER_KEY_SECRET: key.secret };
    const applied = await cli(['apply', '-f', '-'], env, stringify(fakeAppDescriptor('shop', { appName: 'signed' })));
    assert.equal(applied.code, ExitCode.success, applied.stderr);
    assert.match(applied.stdout, /shop\/signed: created descriptor/);
    // No cluster here: the deployment stays in "preparing"; the wait proves the signed upgrade was accepted.
    const deploy = await cli(['deploy', 'shop/signed', '--wait', '--timeout', '3s'], env);
    assert.equal(deploy.code, ExitCode.timeout, deploy.stderr);
    assert.match(deploy.stdout, /log +Deployment \S+ of signed version 1 requested/, 'log lines arrived over the signed websocket');
    const status = await cli(['status', 'shop/signed', '--json'], env);
    assert.equal(status.code, ExitCode.success, status.stderr);
    assert.equal(JSON.parse(status.stdout).deployments.length, 1);
  });

  it('exits 4 for a wrong secret, a namespace the key may not use, a bad token and no credentials', async () => {
    const wrong = await cli(['status', 'shop/signed'], { CUTOVER_KEY_ID: key.id, CUTOVER_KEY_SECRET: `${key.secret}x` });
    assert.equal(wrong.code, ExitCode.auth, wrong.stderr);
    assert.match(wrong.stderr, /unknown API key or wrong signature/);
    assert.match(wrong.stderr, /hint: authentication failed: check --key-id\/--key-secret .* clock/);

    const secretFile = join(files, 'secret');
    writeFileSync(secretFile, `${key.secret}\n`);
    const otherNs = await cli(['status', 'payments/api'], { CUTOVER_KEY_ID: key.id, CUTOVER_KEY_SECRET_FILE: secretFile });
    assert.equal(otherNs.code, ExitCode.auth, otherNs.stderr);
    assert.match(otherNs.stderr, /may not use namespace payments/);
    assert.match(otherNs.stderr, /hint: the credentials may not use namespace payments/);

    const expired = await hsToken(secrets.jwtSecret, { namespaces: ['shop'], expiresIn: -60 });
    const badToken = await cli(['status', 'shop/signed', '--token', expired], {});
    assert.equal(badToken.code, ExitCode.auth, badToken.stderr);

    const none = await cli(['status', 'shop/signed'], {});
    assert.equal(none.code, ExitCode.auth);
    assert.match(none.stderr, /authentication required/);
  });

  it('sends a bearer token', async () => {
    const r = await cli(['status', 'shop/signed'], { CUTOVER_TOKEN: shopToken });
    assert.equal(r.code, ExitCode.success, r.stderr);
    assert.match(r.stdout, /shop\/signed/);
  });
});
