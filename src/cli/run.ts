// `vipr run`: the daemon in the foreground until SIGTERM or SIGINT; SIGHUP
// reloads the config. Loaded only for `vipr run` (see main.ts).

import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../daemon/logger.js';

/** Starts the daemon; `fail` prints a one-line error and exits. */
export async function run(configPath: string, fail: (error: unknown) => never): Promise<void> {
  const config = await loadConfig(configPath).catch(fail);
  const log = createLogger(config.log.level);
  log.info({ config: configPath, pid: process.pid }, `vipr starting with ${configPath}`);
  // Signals are handled from the first moment: one that arrives while the
  // daemon is still starting stops it as soon as it is up.
  let daemon: Daemon | undefined;
  let stopRequested: string | undefined;
  const stop = async (signal: string) => {
    if (stopRequested && daemon === undefined) return;
    stopRequested ??= signal;
    if (!daemon) return;
    const running = daemon;
    daemon = undefined;
    log.info({ signal }, `${signal}: stopping`);
    await running.stop();
    log.flush?.();
    setTimeout(() => process.exit(0), 50).unref();
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!daemon) return;
    log.info('SIGHUP: reloading the config');
    daemon.reload().catch((error: Error) => log.error(error.message));
  });
  daemon = await Daemon.start(config, configPath, log).catch((error) => {
    log.error({ err: error }, String(error instanceof Error ? error.message : error));
    log.flush?.();
    fail(error);
  });
  if (stopRequested) await stop(stopRequested);
}
