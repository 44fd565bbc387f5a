import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { startCutover } from './service.js';

/** Process entry point: configuration, signals and exit codes. Everything else is in service.ts. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cutover: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({ level: config.logLevel });
  const cutover = await startCutover(config, log);

  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal }, 'shutting down');
    // A hard stop if graceful shutdown itself hangs, a little after the configured grace period.
    setTimeout(() => {
      log.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, (config.shutdownGraceSeconds + 5) * 1000).unref();
    cutover.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'error during shutdown');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));
}

main().catch((err: unknown) => {
  process.stderr.write(`cutover: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
