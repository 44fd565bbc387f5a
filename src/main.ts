import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './log.js';
import { startCutover, type Cutover } from './service.js';

/** Process entry point: configuration, signals and exit codes. Everything else is in service.ts. */
async function main(): Promise<void> {
  let config: Config;
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

  // Handlers first: a SIGTERM that arrives while starting must still mean a graceful stop.
  let cutover: Cutover | undefined;
  let signalled: string | undefined;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = signal;
    log.info({ signal }, 'shutting down');
    // A hard stop if graceful shutdown itself hangs, a little after the configured grace period.
    setTimeout(() => {
      log.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, (config.shutdownGraceSeconds + 5) * 1000).unref();
    if (cutover) stopAndExit(cutover);
  };
  const stopAndExit = (c: Cutover) => {
    c.stop().then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'error during shutdown');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled promise rejection'));

  try {
    cutover = await startCutover(config, log);
  } catch (err) {
    // Settings that are only wrong together (e.g. auth on with nothing to authenticate with) are found at start.
    if (err instanceof ConfigError || (err instanceof Error && /no Kubernetes cluster configured|has no current cluster/.test(err.message))) {
      process.stderr.write(`cutover: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (signalled) stopAndExit(cutover);
}

main().catch((err: unknown) => {
  process.stderr.write(`cutover: failed to start: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
