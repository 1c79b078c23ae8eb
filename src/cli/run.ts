// `vipr run`: the daemon in the foreground until SIGTERM or SIGINT; SIGHUP
// reloads the config. Loaded only for `vipr run` (see main.ts).

import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../daemon/logger.js';
import { capabilityMask, describeCapabilities, dropPrivileges, keptCapabilities, readCredentials } from '../daemon/privileges.js';

/** Starts the daemon; `fail` prints a one-line error and exits. */
export async function run(configPath: string, fail: (error: unknown) => never): Promise<void> {
  const config = await loadConfig(configPath).catch(fail);
  // Started as root, this returns only in the re-run image, with two capabilities (four for AF_XDP; src/daemon/privileges.ts).
  const privileges = await dropPrivileges(config, config.state.file, config.control.socket).catch(fail);
  const log = createLogger(config.log.level);
  log.info({ config: configPath, pid: process.pid }, `vipr starting with ${configPath}`);
  const credentials = await readCredentials();
  const kept = keptCapabilities(config);
  const capabilities = describeCapabilities(credentials.effective, kept);
  if (privileges === 'dropped') {
    log.info({ uid: credentials.uid, gid: credentials.gid, capabilities }, `started as root; running as uid ${credentials.uid} with capabilities ${capabilities} only`);
  } else if ((credentials.effective & ~capabilityMask(kept)) !== 0n) {
    log.warn({ uid: credentials.uid, capabilities }, `running with capabilities ${capabilities}: vipr needs only ${kept.join(', ')}`);
  }
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
    await running.drain(signal); // a router of a pair gives its prefixes and address away first
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
  daemon.onStopRequest = (reason) => void stop(reason);
  if (stopRequested) await stop(stopRequested);
}
