import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { createMemoryLogger, type Logger } from '../../src/log.js';
import { startCutover, type Cutover } from '../../src/service.js';

export interface TestCutover extends Cutover {
  config: Config;
  records: Array<Record<string, unknown>>;
}

/**
 * A kubeconfig whose API server cannot be reached (a closed loopback port): for tests of the
 * parts of cutover that do not need a cluster.
 */
export function unreachableKubeconfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cutover-kc-'));
  const path = join(dir, 'kubeconfig');
  writeFileSync(path, [
    'apiVersion: v1', 'kind: Config', 'current-context: none',
    'clusters: [{name: none, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
    'users: [{name: none, user: {token: none}}]',
    'contexts: [{name: none, context: {cluster: none, user: none}}]', '',
  ].join('\n'));
  return path;
}

/**
 * Runs cutover in-process on a free port against the given etcd, under a prefix of its own so
 * tests sharing an etcd cannot see each other's data.
 */
export async function startTestCutover(etcdEndpoint: string, env: Record<string, string> = {}): Promise<TestCutover> {
  const config = loadConfig({
    CUTOVER_PORT: '0',
    CUTOVER_ETCD_ENDPOINTS: etcdEndpoint,
    CUTOVER_ETCD_PREFIX: `/test-${randomUUID().slice(0, 8)}/`,
    CUTOVER_SHUTDOWN_GRACE_SECONDS: '2',
    CUTOVER_KUBECONFIG: env['CUTOVER_KUBECONFIG'] ?? unreachableKubeconfig(),
    // Authentication off unless the test sets CUTOVER_AUTH itself (the security tests do).
    CUTOVER_AUTH: 'off',
    ...env,
  });
  const { logger, records } = createMemoryLogger('debug');
  const cutover = await startCutover(config, logger as Logger);
  return Object.assign(cutover, { config, records });
}
