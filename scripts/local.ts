/**
 * `npm start`: runs cutover on this machine with everything it needs: a local etcd for its data
 * (built from Go modules on first run, data kept in .local/etcd) and the local Kubernetes test bed
 * to deploy to (docs/testbed.md). Ctrl-C stops what it started; nothing is left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startCutover } from '../src/service.js';
import { ensureEtcdBinary } from '../test/testbed/binaries.js';
import { loadKubeConfig } from '../test/testbed/kube.js';
import { runDemo } from './demo.js';
import { down as testbedDown, up as testbedUp } from '../test/testbed/testbed.js';
import { TRAEFIK } from '../test/testbed/traefik.js';
import { ensureUiBuilt } from './build-ui.js';

const root = fileURLToPath(new URL('../', import.meta.url));
const say = (line: string) => process.stderr.write(`cutover-local: ${line}\n`);

async function etcdAnswers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function startLocalEtcd(endpoint: string): Promise<ChildProcess | undefined> {
  if (await etcdAnswers(endpoint)) {
    say(`using the etcd already answering at ${endpoint}`);
    return undefined;
  }
  const url = new URL(endpoint);
  if (!['127.0.0.1', 'localhost'].includes(url.hostname)) {
    throw new Error(`etcd at ${endpoint} does not answer, and only a loopback etcd can be started here`);
  }
  say('making sure an etcd binary is available (built from Go modules on first run, a minute or two)…');
  const binary = await ensureEtcdBinary({ log: (l) => say(l) });
  const dir = join(root, '.local', 'etcd');
  mkdirSync(dir, { recursive: true });
  const clientPort = Number(url.port || 2379);
  const peer = `http://127.0.0.1:${clientPort + 1}`;
  const logFd = openSync(join(dir, 'etcd.log'), 'a');
  const child = spawn(binary, [
    '--name=cutover-local', `--data-dir=${join(dir, 'data')}`,
    `--listen-client-urls=http://127.0.0.1:${clientPort}`, `--advertise-client-urls=http://127.0.0.1:${clientPort}`,
    `--listen-peer-urls=${peer}`, `--initial-advertise-peer-urls=${peer}`, `--initial-cluster=cutover-local=${peer}`,
    // Old revisions are compacted hourly (docs/store.md: without it etcd grows until its quota).
    '--auto-compaction-retention=1', '--log-level=warn',
  ], { stdio: ['ignore', logFd, logFd], detached: true }); // own process group: Ctrl-C reaches us, and we stop etcd last
  closeSync(logFd);
  const deadline = Date.now() + 30_000;
  while (!(await etcdAnswers(endpoint))) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}; see ${join(dir, 'etcd.log')}`);
    if (Date.now() > deadline) throw new Error(`etcd did not become healthy within 30 s; see ${join(dir, 'etcd.log')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  say(`etcd ${endpoint} started (pid ${child.pid}, data in .local/etcd)`);
  return child;
}

async function main(): Promise<void> {
  let config;
  try {
    // The local quickstart runs without authentication unless CUTOVER_AUTH is set (cutover logs a warning).
    config = loadConfig({ CUTOVER_AUTH: 'off', ...process.env });
  } catch (err) {
    if (err instanceof ConfigError) {
      say(err.message);
      process.exit(2);
    }
    throw err;
  }
  // The web UI is served from dist/ui: build it when missing or older than ui/ (well under a second).
  const ui = await ensureUiBuilt();
  if (ui.rebuilt) say(`built the web UI into dist/ui (${ui.ms} ms)`);
  const etcdEndpoint = config.etcdEndpoints[0]!;
  const etcd = await startLocalEtcd(etcdEndpoint);
  let bedStarted = false;
  let gatewayUrl: string | undefined;
  if (!config.kubeconfig) {
    say('bringing up the local Kubernetes test bed (the first run builds it from Go modules: about 10 minutes)…');
    const bed = await testbedUp({ log: (l) => say(`testbed: ${l}`) });
    bedStarted = !bed.alreadyUp;
    config.kubeconfig = bed.state.kubeconfig;
    say(`deploying to the test bed (kubeconfig ${bed.state.kubeconfig})`);
    const traefik = bed.state.traefik;
    if (traefik) {
      // Route through the bed's Traefik, unless the environment says otherwise.
      gatewayUrl = traefik.url;
      config.ingressClassName ??= TRAEFIK.ingressClass;
      if (!process.env['CUTOVER_INGRESS_PROFILE']) config.ingressProfile = 'traefik';
      config.gateway ??= `${TRAEFIK.gatewayNamespace}/${TRAEFIK.gatewayName}/${TRAEFIK.listenerName}`;
      config.versionHeader ??= 'X-Cutover-Version';
      config.trafficProbeUrl ??= traefik.url;
      say(`routing through Traefik at ${traefik.url} (IngressClass ${TRAEFIK.ingressClass}, Gateway ${config.gateway})`);
    }
  }
  // The demo keeps the terminal for the story; cutover's JSON log goes to a file.
  const demo = process.argv.includes('--demo');
  const logFile = join(root, '.local', 'cutover.log');
  mkdirSync(join(root, '.local'), { recursive: true });
  const log = createLogger({ level: config.logLevel, ...(demo ? { stream: createWriteStream(logFile, { flags: 'a' }) } : {}) });
  if (demo) say(`cutover's log: ${logFile}`);
  const cutover = await startCutover(config, log);
  say(`cutover is running at ${cutover.url}`);
  if (demo) {
    await runDemo(cutover.url, loadKubeConfig(config.kubeconfig ?? process.env['KUBECONFIG'] ?? ''), say, gatewayUrl).catch((err: Error) => say(`demo failed: ${err.message}`));
  }
  say('');
  say(`web UI:   ${cutover.url}/ui/`);
  say(`API:      ${cutover.url}/deployments/?namespace=demo   (all routes: README.md)`);
  say(`API docs: ${cutover.url}/docs`);
  say(`metrics:  ${cutover.url}/metrics`);
  say(`logs:     ws://${cutover.url.replace(/^http:\/\//, '')}/stream/deployments/<id>/logs?namespace=demo`);
  if (gatewayUrl) say(`traffic:  curl -H 'Host: hello.demo.test' ${gatewayUrl}/   (the demo app through Traefik)`);
  say('stop everything with Ctrl-C (cutover, its etcd, and the test bed if this run started it)');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await cutover.stop();
    if (etcd && etcd.exitCode === null && etcd.signalCode === null) {
      const gone = new Promise((r) => etcd.once('exit', r));
      etcd.kill('SIGTERM');
      await gone;
    }
    if (bedStarted) await testbedDown({ log: (l) => say(`testbed: ${l}`) });
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  say(`failed: ${(err as Error).message}`);
  process.exit(1);
});
