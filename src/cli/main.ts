#!/usr/bin/env node
// The `vipr` command: `vipr run` is the daemon, `vipr ctl` its control client,
// `vipr top` a live view of the control socket's `status`.
//
// Each subcommand loads its own modules when it runs: `vipr ctl` is a small
// socket client and starts a few tens of ms after a bare `node` would
// (bench/ctl-latency.ts); only `vipr run` loads the daemon, its logger,
// metrics, config schema and the native port addon.
// test/unit/cli-imports.test.ts keeps it that way.

import { Command } from 'commander';
import type { CtlOptions } from './ctl.js';

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
    const { run } = await import('./run.js');
    await run(options.config, fail);
  });

program
  .command('ctl')
  .description('talk to a running vipr: route show|add|replace|del|revert, server show, neighbor show, stats, status, reload, shutdown, apply FILE, trace FILE, help')
  .option('-s, --socket <path>', 'control socket', process.env.VIPR_SOCKET ?? DEFAULT_SOCKET)
  .option('-j, --json', 'JSON in and out, for scripts')
  .option('--file <path>', 'trace: the pcapng file the daemon writes, a bare name (it goes in the trace directory beside the state file: /var/lib/vipr/traces)')
  .option('--prefix <prefix>', 'trace: frames from or to this prefix')
  .option('--port <name>', 'trace: frames received on this port')
  .option('--drop <reason>', 'trace: frames dropped for this reason, or `any`')
  .option('--count <n>', 'trace: stop after this many frames')
  .option('--seconds <s>', 'trace: stop after this long')
  .argument('<command...>', 'the command, e.g. route replace 192.168.1.32/27 via web2 (or `-` to read commands from stdin)')
  .allowUnknownOption(false)
  .action(async (words: string[], options: CtlOptions) => {
    const { ctl } = await import('./ctl.js');
    process.exitCode = await ctl(words, options).catch(fail);
  });

program
  .command('top')
  .description('live status of a running vipr: port and route rates, servers; redrawn every second until q or Ctrl-C')
  .option('-s, --socket <path>', 'control socket', process.env.VIPR_SOCKET ?? DEFAULT_SOCKET)
  .action(async (options: { socket: string }) => {
    const { top } = await import('./top.js');
    process.exitCode = await top(options).catch(fail);
  });

program
  .command('check-config')
  .description('validate a config file and exit')
  .argument('<file>', 'YAML config file')
  .action(async (file: string) => {
    const { loadConfig } = await import('../config/load.js');
    const config = await loadConfig(file).catch(fail);
    process.stdout.write(`${file}: ok (${config.interfaces.length} interfaces, ${config.servers.length} servers, ${config.routes.length} routes)\n`);
  });

program.parseAsync().catch(fail);
