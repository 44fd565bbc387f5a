import { request as httpsRequest, type RequestOptions } from 'node:https';
import { loadKubeConfig, restartComponent } from '../testbed/harness.js';
import { cluster2Paths, loadConfig, paths } from '../testbed/config.js';
import { waitFor } from './wait.js';

/**
 * Faults of the shared test bed. They disturb every test using the bed at the same time: call them
 * only from `*.serial.test.ts` files, which the runner (scripts/test.ts) runs alone.
 */

export interface ApiServerRestart {
  /** From SIGTERM until the old process was gone (it stops listening at once). */
  stopMs: number;
  /** How it ended: SIGTERM, or SIGKILL after `graceMs`. */
  stoppedBy: 'terminated' | 'killed';
  /** From SIGTERM until the new process was started: `downMs`, or longer if the exit or `during` took longer. */
  downMs: number;
  /** From the start until `/readyz` answered `ok` through the kubeconfig. */
  startMs: number;
  /** From SIGTERM until it answered again: what clients saw. */
  outageMs: number;
}

export interface RestartOptions {
  /** How long the API server is down, from SIGTERM until it is started again (default 0: as soon as it exited). */
  downMs?: number;
  /**
   * SIGKILL after this long (default 2 s). kube-apiserver closes its listener at SIGTERM but then
   * waits up to its request timeout (60 s) for open connections (the watches of the controller
   * manager, scheduler, kwok) before it exits; for clients it is down either way.
   */
  graceMs?: number;
  /** Runs while it is down (e.g. to check what cutover answers meanwhile); the restart waits for it. */
  during?: () => Promise<void>;
  /** Kubeconfig to check readiness through (default: the admin kubeconfig of that cluster). */
  kubeconfigPath?: string;
  /** Which cluster's API server (default 1; 2 needs a bed with a second cluster: `up --clusters 2`). */
  cluster?: 1 | 2;
  /** Default: quiet. */
  log?: (line: string) => void;
  /** Deadline of the readiness check through the kubeconfig, after the bed's own (default 90 s). */
  readyTimeoutMs?: number;
}

/**
 * Stops the test bed's kube-apiserver (SIGTERM, SIGKILL after `graceMs`, by its recorded pid), keeps it down for `downMs`,
 * starts it again with the same flags and waits until `/readyz` answers `ok` through the
 * kubeconfig — as a client such as cutover sees it. The test-bed lock is held from the stop until
 * the API server is ready again (restartComponent), so another test process's `useTestbed()`
 * waits rather than finding an unhealthy bed and rebuilding it; `during` must therefore not call
 * `useTestbed()`. The API server is started again even when `during` throws. Serial tests only.
 */
export async function restartApiServer(options: RestartOptions = {}): Promise<ApiServerRestart> {
  const cluster2 = options.cluster === 2;
  const kubeconfigPath = options.kubeconfigPath ?? (cluster2 ? cluster2Paths(loadConfig().dir).kubeconfig : paths(loadConfig().dir).kubeconfig);
  const r = await restartComponent(cluster2 ? 'c2-kube-apiserver' : 'kube-apiserver', {
    log: options.log ?? (() => {}),
    graceMs: options.graceMs ?? 2000,
    ...(options.downMs !== undefined ? { downMs: options.downMs } : {}),
    ...(options.during ? { during: options.during } : {}),
  });
  // restartComponent waited for the bed's own readiness check (admin certificate); this is the
  // view through the kubeconfig, normally ready at once.
  const t1 = Date.now();
  await waitForApiServer(kubeconfigPath, options.readyTimeoutMs ?? 90_000);
  const startMs = r.startMs + (Date.now() - t1);
  return { stopMs: r.stopMs, stoppedBy: r.stoppedBy, downMs: r.downMs, startMs, outageMs: r.downMs + startMs };
}

/** GET `/readyz` through the kubeconfig: "ok", or the error (refused, HTTP status, timeout). */
export async function apiServerReadyz(kubeconfigPath: string, timeoutMs = 2000): Promise<string> {
  const kc = loadKubeConfig(kubeconfigPath);
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error(`${kubeconfigPath} has no current cluster`);
  const opts: RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  return new Promise<string>((resolve) => {
    const req = httpsRequest(new URL('/readyz', server), { ...opts, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(res.statusCode === 200 ? body.trim() : `HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}`));
      res.on('error', (err) => resolve(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve(err.message));
    req.end();
  });
}

/** Waits until `/readyz` through the kubeconfig answers `ok`. */
export async function waitForApiServer(kubeconfigPath: string, timeoutMs = 90_000): Promise<void> {
  let last = '';
  await waitFor('the API server to answer /readyz ok', async () => {
    last = await apiServerReadyz(kubeconfigPath);
    return last === 'ok';
  }, { timeoutMs, intervalMs: 100 }).catch((err: Error) => {
    throw new Error(`${err.message} (last answer: ${last})`);
  });
}
