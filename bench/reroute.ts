// Lossless reroutes: a numbered UDP stream through the router while the VIP
// subnet 192.168.1.32/27 moves between web1 and web2, measured three ways in
// fresh labs (lab/lab.sh):
//
//   vipr            vipr forwards; `vipr ctl -` moves the route (one connection,
//                   one `route replace` per line)
//   kernel-route    the Linux kernel forwards; the article's way: `route del -net
//                   192.168.1.32 netmask 255.255.255.224` then `route add ... gw X`
//                   (two processes from a shell, as an operator types them)
//   kernel-replace  the Linux kernel forwards; `ip route replace 192.168.1.32/27 via X`
// and two controls without any reroute, over the same stream length:
//   vipr-steady, kernel-steady
// and the vipr modes again with vipr's main thread (its data plane) at real-time
// priority (SCHED_FIFO 20 on its CPU): vipr-rt, vipr-rt-steady. The kernel forwards in softirq context, i.e.
// ahead of every process on the CPU; vipr is a process, and on a busy machine
// (other work on its CPU) it may not be scheduled for longer than its port's
// buffer lasts. The -rt modes separate that from what reroutes cost.
//
// vipr runs with the lab's config (lab/vipr.yaml; --io pcap|ring overrides its port
// backend, recorded per result as viprIo) minus the servers' health
// checks (--health-checks keeps them): the kernel has none, and on a busy
// machine checks take servers down and move routes in the middle of a
// measurement (the health events column counts them). vipr is pinned to CPU 1,
// the stream to CPU 0.
//
// The measurement itself (stream, sinks, appliers, what is counted) is
// lab/lib/reroute-trial.ts, shared with test/lab/reroute.test.ts. Before the
// modes, a stall probe (udp-stream --stall-probe, --probe seconds) records how
// late a SCHED_FIFO process on each CPU wakes up on this machine.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/reroute.js [--reroutes 1000] [--rate 20000] [--interval 10]
//        [--modes vipr,vipr-rt,kernel-route,kernel-replace,vipr-steady,vipr-rt-steady,kernel-steady]
//        [--warmup 1000] [--lead 1000] [--tail 1000] [--probe 5] [--health-checks] [--io pcap|ring] [--out FILE]
// Writes bench/results/reroute-TIMESTAMP.json (bench/lib/results.ts) and prints a table.
// Needs root (network namespaces), cc, iproute2; net-tools `route` for
// kernel-route (without it: `ip route del` + `ip route add`, the same two steps).

import { type ChildProcess } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import YAML from 'yaml';
import {
  bringLabUp, configWithoutHealthChecks, labConfigPath, labRunDir, labSocketPath, randomPrefix, startViprIn, teardownOnExit, viprEventOf, viprIoOf, waitViprNeighbors,
  type OwnedLab, type TrialLab,
} from '../lab/lib/lab.js';
import { makeRealtime, pinToCpu, stopChild } from '../lab/lib/process.js';
import {
  isRt, isViprMode, lossLocation, measureReroutes, MODES, table, type Mode, type RerouteOptions, type TrialResult,
} from '../lab/lib/reroute-trial.js';
import { buildStream, PORT, stallProbe, VIP, VIP_NET, type StallProbe } from '../lab/lib/stream.js';
import { labBenchRefusal, listArg, numberArg, runIfMain } from './lib/program.js';
import { BenchRun, figure, type Figure } from './lib/results.js';

interface BenchVipr {
  child: ChildProcess;
  routeChanges(): number;
  events(): string[];
  /** the port backend of its config */
  io: string;
}

async function startVipr(lab: OwnedLab, healthChecks: boolean, io?: string): Promise<BenchVipr> {
  let config = healthChecks ? labConfigPath(lab.prefix) : configWithoutHealthChecks(lab.prefix, io);
  if (healthChecks && io) {
    const doc = YAML.parseDocument(readFileSync(config, 'utf8'));
    doc.set('io', io);
    config = `${labRunDir(lab.prefix)}/vipr-io.yaml`;
    writeFileSync(config, doc.toString());
  }
  let routeChanges = 0;
  const events: string[] = [];
  const { child } = await startViprIn(lab, config, (line) => {
    if (line.includes('"route change: ')) routeChanges++;
    const event = viprEventOf(line);
    if (event) events.push(event);
  });
  return { child, routeChanges: () => routeChanges, events: () => events, io: viprIoOf(config) };
}

/** The kernel router resolves web1 and web2 before the stream, like vipr does at start. */
async function warmKernelNeighbors(lab: TrialLab): Promise<void> {
  await lab.exec('router', ['ping', '-c', '1', '-W', '1', '192.168.1.2']);
  await lab.exec('router', ['ping', '-c', '1', '-W', '1', '192.168.1.3']);
}

async function runMode(mode: Mode, opts: RerouteOptions): Promise<TrialResult> {
  const lab = await bringLabUp(randomPrefix(`rr${isViprMode(mode) ? 'v' : 'k'}`), { kernelRouter: !isViprMode(mode) });
  let vipr: BenchVipr | undefined;
  try {
    const socket = labSocketPath(lab.prefix);
    if (isViprMode(mode)) {
      vipr = await startVipr(lab, opts.healthChecks ?? false, opts.io);
      const cpu = (opts.generatorCpu ?? 0) === 0 ? 1 : 0;
      if (!(await pinToCpu(vipr.child.pid!, cpu))) process.stderr.write(`reroute: could not pin vipr to CPU ${cpu}\n`);
      if (isRt(mode) && !(await makeRealtime(vipr.child.pid!))) throw new Error('could not make vipr SCHED_FIFO (chrt)');
      await waitViprNeighbors(lab, socket);
    } else {
      await warmKernelNeighbors(lab);
    }
    return await measureReroutes(
      { mode, lab, socket: vipr ? socket : undefined, routeChangesLogged: vipr?.routeChanges, viprEvents: vipr?.events, viprIo: vipr?.io },
      opts,
    );
  } finally {
    if (vipr) await stopChild(vipr.child, 5000);
    await lab.down();
  }
}

/** The headline: packets vipr lost while rerouting, beside the article's two commands on the kernel, same run. */
function figures(results: TrialResult[], opts: RerouteOptions): Figure[] {
  const vipr = results.find((r) => r.mode === 'vipr') ?? results.find((r) => r.mode === 'vipr-rt');
  const article = results.find((r) => r.mode === 'kernel-route');
  if (!vipr || !vipr.reroutes) return [];
  const label = (r: TrialResult) => `${r.mode}${r.viprIo ? ` (io: ${r.viprIo})` : ''}: ${r.reroutes?.ok ?? 0} reroutes, ${r.stream.sent.toLocaleString('en')} packets sent`;
  return [
    figure(
      {
        id: 'reroute.lost',
        measure: `packets lost while ${VIP_NET} moves ${opts.reroutes} times under ${opts.rate.toLocaleString('en')} packets/s`,
        unit: 'packets',
        better: 'lower',
        vipr: { label: label(vipr), value: vipr.merge.lost, bound: 'exact' },
        anchor: article && {
          label: `Linux, the article's way (route del; route add): ${label(article)}`,
          value: article.merge.lost,
          bound: 'exact',
          atLimit: true,
          why: 'the procedure the article describes, paced as vipr\'s reroutes',
        },
        target: '0 lost',
        note: `duplicated ${vipr.merge.duplicated}, reordered ${vipr.reordered}`,
      },
      { ratio: false },
    ),
  ];
}

function parseCli(argv: string[]): { opts: RerouteOptions; modes: Mode[]; out?: string; probeSeconds: number } {
  let probeSeconds = 5;
  const opts: RerouteOptions = { reroutes: 1000, rate: 20000, intervalMs: 10, warmupMs: 1000, leadMs: 1000, tailMs: 1000, size: 64 };
  let modes: Mode[] = [...MODES];
  let out: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--reroutes': opts.reroutes = Math.round(numberArg(a, v, 0, 1e6)); i++; break;
      case '--rate': opts.rate = numberArg(a, v, 1, 1e7); i++; break;
      case '--interval': opts.intervalMs = numberArg(a, v, 0, 60_000); i++; break;
      case '--warmup': opts.warmupMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--lead': opts.leadMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--tail': opts.tailMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--size': opts.size = Math.round(numberArg(a, v, 24, 1472)); i++; break;
      case '--out': out = v; i++; break;
      case '--health-checks': opts.healthChecks = true; break;
      case '--io':
        if (v !== 'pcap' && v !== 'ring') throw new Error('--io must be pcap or ring');
        opts.io = v;
        i++;
        break;
      case '--probe': probeSeconds = numberArg(a, v, 0, 600); i++; break;
      case '--modes': modes = listArg(a, v, MODES); i++; break;
      case '-h':
      case '--help':
        process.stdout.write('usage: node dist/bench/reroute.js [--reroutes 1000] [--rate 20000] [--interval 10] [--warmup 1000] [--lead 1000] [--tail 1000]\n' +
          `       [--size 64] [--modes ${MODES.join(',')}] [--probe 5] [--health-checks] [--io pcap|ring] [--out FILE]\n`);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  return { opts, modes, out, probeSeconds };
}

async function main(): Promise<number> {
  let cli: ReturnType<typeof parseCli>;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`reroute: ${(error as Error).message}\n`);
    return 2;
  }
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`reroute: ${refusal}\n`);
    return 2;
  }
  teardownOnExit('reroute');

  const { opts, modes } = cli;
  await buildStream();
  const bench = new BenchRun('reroute');
  process.stdout.write(
    `reroute bench: ${opts.reroutes} reroutes of ${VIP_NET} between web1 and web2, one every ${opts.intervalMs} ms, ` +
      `under a ${opts.rate} pps UDP stream (${opts.size} B payload) to ${VIP}:${PORT}; vipr ${opts.healthChecks ? 'with' : 'without'} health checks, io ${opts.io ?? 'as in lab/vipr.yaml'}; ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  let probes: StallProbe[] = [];
  if (cli.probeSeconds > 0) {
    probes = await stallProbe(cli.probeSeconds);
    process.stdout.write(
      `stall probe (${cli.probeSeconds} s, SCHED_FIFO, wake-up every 200 us): ` +
        probes.map((p) => `CPU ${p.cpu} prio ${p.priority}: max ${(p.max_late_us / 1000).toFixed(1)} ms late, ${p.late_1ms} wake-ups > 1 ms, ${p.late_5ms} > 5 ms`).join('; ') +
        '\n',
    );
  }
  const results: TrialResult[] = [];
  const failures: Array<{ mode: Mode; error: string }> = [];
  for (const mode of modes) {
    process.stdout.write(`-- ${mode} ... `);
    try {
      const r = await runMode(mode, opts);
      results.push(r);
      process.stdout.write(
        `sent ${r.stream.sent}, lost ${r.merge.lost}, duplicated ${r.merge.duplicated}, reordered ${r.reordered}` +
          (r.reroutes ? `, reroutes ${r.reroutes.ok}/${r.reroutes.asked} (${r.reroutes.command})` : '') +
          (r.finalRoute.ok ? '' : `; final route NOT as expected (${r.finalRoute.expected}): ${r.finalRoute.actual}`) +
          (r.healthEvents.length ? `\n   vipr health events during the run: ${r.healthEvents.slice(0, 6).join(' | ')}` : '') +
          `\n   counters: ${lossLocation(r)}\n`,
      );
    } catch (error) {
      failures.push({ mode, error: (error as Error).message });
      process.stdout.write(`FAILED: ${(error as Error).message}\n`);
    }
  }
  const text = results.length ? table(results) : '(no results)';
  process.stdout.write(`\n${text}\n`);

  const file = await bench.write(figures(results, opts), {
    options: opts,
    stallProbe: probes,
    method:
      'udp-stream (lab/udp-stream.c, SCHED_FIFO on CPU 0) in the client namespace -> router -> udp-sink (lab/udp-sink.mjs) on 192.168.1.33:9999 in web1 and web2; ' +
      'reroutes paced one per interval to a long-lived applier that acks each; vipr pinned to CPU 1 (vipr-rt*: its main thread SCHED_FIFO 20); ' +
      'a warm-up stream (other run id) before each measured one; fresh lab per mode (lab/lib/reroute-trial.ts). ' +
      'hostBusyPercent: all CPUs, anyone\'s work (other users of the machine included) during the stream.',
    results,
    failures,
    table: results.length ? text : '',
  }, cli.out);
  process.stdout.write(`\nresults: ${file}\n`);
  return failures.length ? 1 : 0;
}

runIfMain(import.meta.url, 'reroute', main);
