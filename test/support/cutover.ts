import { randomUUID } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config.js';
import { createMemoryLogger, type Logger } from '../../src/log.js';
import { startCutover, type Cutover } from '../../src/service.js';

export interface TestCutover extends Cutover {
  config: Config;
  records: Array<Record<string, unknown>>;
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
    ...env,
  });
  const { logger, records } = createMemoryLogger('debug');
  const cutover = await startCutover(config, logger as Logger);
  return Object.assign(cutover, { config, records });
}
