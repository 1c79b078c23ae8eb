#!/usr/bin/env node
// The `vipr` command: `vipr run` starts the daemon; more commands join as the control plane grows.

import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../daemon/logger.js';

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
    const daemon = await Daemon.start(config, log).catch((error) => {
      log.error({ err: error }, String(error instanceof Error ? error.message : error));
      log.flush?.();
      fail(error);
    });
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, `${signal}: stopping`);
      daemon.stop();
      log.flush?.();
      setTimeout(() => process.exit(0), 50).unref();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
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
