#!/usr/bin/env node
// The `vipr` command: `vipr run` is the daemon, `vipr ctl` its control client,
// `vipr top` a live view of the control socket's `status`.

import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../daemon/logger.js';
import { ctl, type CtlOptions } from './ctl.js';
import { top } from './top.js';

const DEFAULT_SOCKET = '/run/vipr/vipr.sock';

const program = new Command();
program.name('vipr').description('userspace IPv4 last-hop router for VIPs on loopback').showHelpAfterError();

/** Prints a one-line error and exits non-zero; nothing else. */
function fail(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`vipr: ${message}\n`);
  process.exit(1);
}

program
  .command('run')
  .description('run the router with a config file')
  .requiredOption('-c, --config <file>', 'YAML config file')
  .action(async (options: { config: string }) => {
    const config = await loadConfig(options.config).catch(fail);
    const log = createLogger(config.log.level);
    log.info({ config: options.config, pid: process.pid }, `vipr starting with ${options.config}`);
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
    daemon = await Daemon.start(config, options.config, log).catch((error) => {
      log.error({ err: error }, String(error instanceof Error ? error.message : error));
      log.flush?.();
      fail(error);
    });
    if (stopRequested) await stop(stopRequested);
  });

program
  .command('ctl')
  .description('talk to a running vipr: route show|add|replace|del|revert, server show, neighbor show, stats, status, reload, apply FILE, trace FILE, help')
  .option('-s, --socket <path>', 'control socket', process.env.VIPR_SOCKET ?? DEFAULT_SOCKET)
  .option('-j, --json', 'JSON in and out, for scripts')
  .option('--file <path>', 'trace: the pcapng file the daemon writes (absolute, or a bare name for /var/lib/vipr/traces)')
  .option('--prefix <prefix>', 'trace: frames from or to this prefix')
  .option('--port <name>', 'trace: frames received on this port')
  .option('--drop <reason>', 'trace: frames dropped for this reason, or `any`')
  .option('--count <n>', 'trace: stop after this many frames')
  .option('--seconds <s>', 'trace: stop after this long')
  .argument('<command...>', 'the command, e.g. route replace 192.168.1.32/27 via web2 (or `-` to read commands from stdin)')
  .allowUnknownOption(false)
  .action(async (words: string[], options: CtlOptions) => {
    process.exitCode = await ctl(words, options).catch(fail);
  });

program
  .command('top')
  .description('live status of a running vipr: port and route rates, servers; redrawn every second until q or Ctrl-C')
  .option('-s, --socket <path>', 'control socket', process.env.VIPR_SOCKET ?? DEFAULT_SOCKET)
  .action(async (options: { socket: string }) => {
    process.exitCode = await top(options).catch(fail);
  });

program
  .command('check-config')
  .description('validate a config file and exit')
  .argument('<file>', 'YAML config file')
  .action(async (file: string) => {
    const config = await loadConfig(file).catch(fail);
    process.stdout.write(`${file}: ok (${config.interfaces.length} interfaces, ${config.servers.length} servers, ${config.routes.length} routes)\n`);
  });

program.parseAsync().catch(fail);
