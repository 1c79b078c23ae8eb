// Forwarding rate and added latency: vipr beside two anchors measured in the
// same run, each at its limit: the Linux kernel as router with RPS steering
// its work onto the router's CPU, and a minimal C forwarder on the same packet
// API as vipr (bench/lab/cfwd.c). Same topology (lab/lab.sh), same generator,
// same CPUs: the generator on CPU 0, the router on CPU 1.
//
//   client ns ── up0 [router ns: kernel, C forwarder or vipr] lan0 ── switch ── web1 (192.168.1.33 on lo)
//
// Modes (a fresh lab each; bench/forwarding/modes.ts):
//   kernel-rps  the kernel forwards (ip_forward=1, the lab's routes) with RPS on
//               the router's up0 and lan0 (rps_cpus = CPU 1): its forwarding and
//               everything downstream of it on veth run on CPU 1, the split vipr
//               gets. The fair anchor: the headline ratios are against it.
//   cfwd        bench/lab/cfwd.c pinned to CPU 1: AF_PACKET TPACKET_V2 RX rings
//               and sendmmsg as vipr's ring backend, MAC/TTL/checksum rewrite, a
//               static next hop; GRO off and the kernel's transit copy dropped,
//               as vipr's defaults do. The physical anchor of a userspace
//               forwarder on this box and this API.
//   kernel      the kernel without RPS: on veth the receiver's work runs on the
//               sender's CPU, so it forwards inside the generator's sends on
//               CPU 0 while CPU 1 idles. It can never beat the generator: when
//               it delivers all it is offered its figure is reported as "≥" and
//               nothing is divided by it. (Until 2026-12 the headline ratio
//               "1.47× the kernel" was taken against this mode.)
//   ring        vipr with the lab's config (io: ring, the default), data plane on CPU 1
//   ring-busy   ring with ring.busyPoll: true (health checks as in ring: the
//               busy-poll latency is compared with ring, same checks)
//   pcap        vipr with io: pcap
//   ring-transit  ring with kernelTransit the other way round (flat-out rates only)
// Diagnostic variants (only with --modes): ring-nohc and ring-nohc-busy (no
// health checks, without and with busy polling), cfwd-busy (the C forwarder
// spinning instead of poll()).
//
// Per mode:
//   flat out   bench/lab/pace.c flat out (sendmmsg bursts of 256, PACKET_QDISC_BYPASS)
//              in the client namespace on CPU 0, UDP to 192.168.1.33:9 with dst
//              MAC = up0, 64-byte and 1500-byte frames (60 / 1514 bytes handed
//              to the device, +4 FCS on a wire); counters over --seconds after a
//              1 s ramp, --repeat times; median, min and max.
//              Who was the limit (bench/forwarding/measure.ts judge): the router
//              if it lost more than --tolerance of what was offered, or pushed
//              back (the generator's sends refused, EAGAIN: on veth a full
//              receive queue, e.g. CPU 1 behind RPS, slows the sender instead of
//              dropping); else the generator, and then the trial runs again with
//              another generator process on CPU 0 (up to --max-generators) and,
//              if still generator-bound, the figure is a lower bound ("≥").
//              --generator trafgen: trafgen instead (its TX ring; -t 0 with RPS),
//              which does not report push-back.
//   zero loss  highest offered rate of 64-byte frames with no frame lost or
//              refused in a --trial-seconds trial, by bisection below what the
//              paced generator sends flat out (first trial at 95 % of that: if it
//              passes, generator-bound, ">="); pace sleeps between micro-bursts
//              (trafgen -b/-t cannot pace these rates smoothly; the kernel mode
//              records a calibration of both: arrival times at web1).
//   latency    `ping -i 0.001 -c N -s 56 192.168.1.33` from the client on CPU 0
//              (after a warm-up): p50, p99, and the p99 added over the kernel's.
//   profile    vipr modes: one more flat-out 64-byte run under `node --cpu-prof`
//              and `perf record -C 1` (when perf works).
//
// vipr's data plane thread runs pinned to CPU 1 (`dataplane: { cpu: 1 }` in a
// copy of the lab's config); its health-check thread and Node's helper
// threads run on CPU 0. The lab's web servers are pinned to CPU 0 in every
// mode, so the router's CPU runs only the router. Delivered frames are counted
// by an nftables netdev ingress rule (`udp dport 9 counter drop`) on web1 and
// web2. The box is shared: before each trial the bench waits (--quiet-wait)
// until processes outside its labs use < --quiet-threshold % of a CPU and no
// other real-time process runs, and records how quiet it was.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/forwarding.js [--seconds 5] [--repeat 3] [--quick] [--modes kernel,kernel-rps,cfwd,ring,...]
//        [--generator pace|trafgen] [--generators 1] [--max-generators 2] [--tolerance 0.01]
//        [--trial-seconds 3] [--search-steps 8] [--search-generator pace|trafgen] [--ping-count 2000]
//        [--quiet-wait 20] [--quiet-threshold 10] [--no-search] [--no-latency] [--no-profile] [--no-calibrate] [--out FILE]
//   node dist/bench/forwarding.js --report RESULTS.json      (the tables of an earlier run)
// Writes bench/results/forwarding-TIMESTAMP.json (bench/lib/results.ts: the
// figures beside their anchors, and every trial) and prints tables.
// Needs root, iproute2, nft, ping, taskset, cc, ethtool; trafgen for the
// calibration and --generator trafgen; perf is optional.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { teardownOnExit } from '../lab/lib/lab.js';
import { run, sleep } from '../lab/lib/process.js';
import type { Ctx, FlatGenerator } from './forwarding/context.js';
import { buildPace, calibrate, paceCommand, startFlatOut, trafgenCommand, trafgenConfig, flatOutCommand, type SearchGenerator } from './forwarding/generators.js';
import { eventNote, flatOut, pingCommand, pingLatency, quietNote, zeroLossSearch, type FlatTrial } from './forwarding/measure.js';
import { DEFAULT_MODES, GEN_CPU, MODES, ROUTER_CPU, SIZES, SPECS, UDP_DPORT, VIP, type Mode } from './forwarding/modes.js';
import { perfAvailable, profileVipr } from './forwarding/profile.js';
import { forwardingFigures, judgeLegacy, profileText, tables, type ModeResult } from './forwarding/report.js';
import {
  buildCfwd, buildCfwdXdp, fwLabUp, kernelRps, kernelTransitSetting, nft, SINK_RULES, startCfwd, startVipr, stopRouter, TRANSIT_DROP_RULES, CFWD_TRANSIT_RULES,
} from './forwarding/routers.js';
import { labBenchRefusal, listArg, numberArg, runIfMain } from './lib/program.js';
import { BenchRun } from './lib/results.js';

interface Options {
  seconds: number;
  repeat: number;
  trialSeconds: number;
  searchSteps: number;
  precision: number;
  pingCount: number;
  modes: Mode[];
  search: boolean;
  latency: boolean;
  profile: boolean;
  calibrate: boolean;
  /** the flat-out generator, how many processes to start with, at most */
  generator: FlatGenerator;
  generators: number;
  maxGenerators: number;
  /** share of what was offered that a router may lose (or refuse) and still count as having delivered it all */
  tolerance: number;
  /** the generator of the zero-loss trials */
  searchGenerator: SearchGenerator;
  out?: string;
  /** print the tables of a results file written earlier, and nothing else */
  report?: string;
  quick: boolean;
  /** seconds to wait before each trial for other work on the box to calm down, and the threshold (% of one CPU) */
  quietWait: number;
  quietThreshold: number;
}

async function runMode(mode: Mode, opts: Options, dir: string, log: (s: string) => void): Promise<ModeResult> {
  const spec = SPECS[mode];
  const lab = await fwLabUp(mode);
  const ctx: Ctx = {
    lab,
    dir,
    cfg: { 64: join(dir, 'trafgen-64.cfg'), 1500: join(dir, 'trafgen-1500.cfg') },
    commands: {},
    quietMaxMs: opts.quietWait * 1000,
    quietThreshold: opts.quietThreshold,
    flatGenerator: opts.generator,
    generators: opts.generators,
    maxGenerators: opts.maxGenerators,
    tolerance: opts.tolerance,
  };
  const result: ModeResult = { mode, label: spec.label, lab: lab.prefix, flat: {}, commands: ctx.commands };
  try {
    for (const s of SIZES) writeFileSync(ctx.cfg[s.name], trafgenConfig(s.frame));
    await nft(lab, 'web1', SINK_RULES);
    await nft(lab, 'web2', SINK_RULES);
    ctx.commands['web1 and web2 sink (nft -f)'] = [SINK_RULES];
    if (spec.router === 'vipr') {
      const transit = kernelTransitSetting(lab);
      result.kernelTransit = transit;
      const setting = transit === 'absent' ? 'no kernelTransit setting (the kernel parses every transit frame)' : `kernelTransit: ${transit}`;
      if (spec.vipr?.flipTransit) {
        if (transit === 'absent') {
          lab.benchTransitDrop = true;
          await nft(lab, 'router', TRANSIT_DROP_RULES);
          ctx.commands['router up0 transit drop (nft -f)'] = [TRANSIT_DROP_RULES];
          result.label = 'vipr ring + nft transit drop';
        } else result.label = `vipr ring, kernelTransit: ${transit === 'drop' ? 'keep' : 'drop'}`;
        log(`   = ${result.label} (the lab config: ${setting})`);
      } else log(`   lab config: ${setting}`);
      ctx.router = await startVipr(lab);
      ctx.commands.daemon = ctx.router.command;
    } else if (spec.router === 'cfwd') {
      ctx.router = await startCfwd(lab);
      ctx.commands['router transit drop (nft -f)'] = [CFWD_TRANSIT_RULES];
      ctx.commands.cfwd = ctx.router.command;
    } else {
      if (spec.rps) ctx.commands.rps = await kernelRps(lab);
      await lab.exec('router', ['ping', '-c', '1', '-W', '1', '192.168.1.2']);
    }
    ctx.commands['flat-out generator'] = ['ip', 'netns', 'exec', lab.ns('client'), ...flatOutCommand(ctx, 64, 'PACE')];
    ctx.commands['trafgen CFG 64'] = [trafgenConfig(60).trim()];
    ctx.commands['trafgen CFG 1500'] = [trafgenConfig(1514).trim()];

    // warm-up (JIT, ARP, caches): 1.5 s flat out, not measured
    const warm = await startFlatOut(ctx, 64, ctx.generators);
    await sleep(1500);
    await warm.stop();
    await sleep(300);

    if (opts.calibrate && mode === 'kernel') {
      log('   calibrating the generators: arrival pattern at web1 of trafgen -b, trafgen -t and pace');
      result.calibration = await calibrate(ctx);
      for (const g of result.calibration.generators) {
        log(
          `     ${g.generator.padEnd(32)} ${(g.achievedPps / 1000).toFixed(1).padStart(6)} kpps; frames per ms: max ${g.maxPerMs}, p99 ${g.p99PerMs} ` +
            `(smooth: ${g.requestedPps / 1000}); longest back-to-back run ${g.longestBackToBack}, ${g.framesInRunsOf100} frames in runs >= 100`,
        );
      }
    }

    for (const s of SIZES) {
      const trials: FlatTrial[] = [];
      for (let i = 0; i < opts.repeat; i++) {
        const t = await flatOut(ctx, s.name, opts.seconds);
        trials.push(t);
        const share = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');
        log(
          `   ${s.name} B flat out #${i + 1}: offered ${(t.offeredPps / 1000).toFixed(1)} kpps (${t.generator.processes} ${t.generator.generator}` +
            `${t.generator.refused ? `, refused ${t.generator.refused} times` : ''}), delivered ${(t.deliveredPps / 1000).toFixed(1)} kpps` +
            (t.totals.lostAtViprPort !== undefined ? `, lost at vipr port ${share(t.totals.lostAtViprPort, t.totals.up0Rx)}` : '') +
            `; CPU0 ${t.cpu.perCpu.cpu0?.busy ?? 0}% CPU1 ${t.cpu.perCpu.cpu1?.busy ?? 0}%` +
            (t.cpu.viprPercent !== null ? `, router process ${t.cpu.viprPercent}%` : '') +
            `, other processes ${t.cpu.otherProcessesPercent}%` +
            (t.totals.deliveredAtWeb2 ? `; ${t.totals.deliveredAtWeb2} frames went to web2 (failover)` : '') +
            `; ${t.limit.limit}-bound${t.raisedFrom ? ` (raised from ${t.raisedFrom.map((r) => `${r.processes}: ${(r.deliveredPps / 1000).toFixed(1)} kpps`).join(', ')})` : ''}` +
            eventNote(t.healthEvents) +
            quietNote(t.quiet),
        );
      }
      result.flat[String(s.name)] = trials;
    }

    if (opts.search && spec.parts.search) {
      log(`   zero-loss search, 64 B, ${opts.trialSeconds} s trials, ${opts.searchGenerator === 'trafgen' ? 'trafgen -b RATEpps -n COUNT' : 'bench/lab/pace.c'}`);
      result.zeroLoss = await zeroLossSearch(ctx, opts.searchGenerator, opts.trialSeconds, opts.searchSteps, opts.precision, log);
      const placeholders = (cmd: string[]) => cmd.map((a, i, all) => (all[i - 1] === '--rate' ? 'RATE' : all[i - 1] === '-b' ? 'RATEpps' : all[i - 1] === '--count' || all[i - 1] === '-n' ? 'RATE*TRIAL_SECONDS' : a));
      ctx.commands['zero-loss trial'] = [
        'ip', 'netns', 'exec', lab.ns('client'),
        ...placeholders(opts.searchGenerator === 'trafgen' ? trafgenCommand('CFG64', ['-b', '1pps', '-n', '1']) : paceCommand('PACE', 60, 1, { count: 1 })),
      ];
      log(`   zero loss up to ${result.zeroLoss.pps === null ? '-' : (result.zeroLoss.pps / 1000).toFixed(1)} kpps (${result.zeroLoss.end}; ${result.zeroLoss.generator} paced flat out: ${(result.zeroLoss.generatorMaxPps / 1000).toFixed(1)} kpps)`);
    }

    if (opts.latency && spec.parts.latency) {
      result.latency = [];
      for (let i = 0; i < opts.repeat; i++) {
        const l = await pingLatency(ctx, opts.pingCount);
        result.latency.push(l);
        log(`   ping #${i + 1}: ${l.received}/${l.count} replies, p50 ${l.p50} us, p99 ${l.p99} us, max ${l.max} us, other processes ${l.otherProcessesPercent}%${eventNote(l.healthEvents)}${quietNote(l.quiet)}`);
      }
      ctx.commands.ping = ['ip', 'netns', 'exec', lab.ns('client'), ...pingCommand(opts.pingCount)];
    }

    if (ctx.router?.kind === 'vipr') result.viprLogWarnings = ctx.router.logs.filter((l) => /"level":(40|50|60)/.test(l)).slice(0, 20);
    if (opts.profile && spec.parts.profile) {
      log(`   profiling the daemon (node --cpu-prof${(await perfAvailable()) ? ', perf record -C 1' : ''}) under 64 B flat out`);
      result.profile = await profileVipr(ctx, opts.seconds);
      log(`     delivered ${(result.profile.deliveredPps / 1000).toFixed(1)} kpps while profiled; top: ${result.profile.topSelf.slice(0, 5).map((f) => `${f.fn} ${f.pct}%`).join(', ')}`);
    }
    return result;
  } finally {
    await stopRouter(ctx.router);
    if (ctx.router?.kind === 'cfwd') result.cfwd = ctx.router.final;
    await lab.down();
  }
}

function parseCli(argv: string[]): Options {
  const o: Options = {
    seconds: 5,
    repeat: 3,
    trialSeconds: 3,
    searchSteps: 8,
    precision: 0.02,
    pingCount: 2000,
    modes: [...DEFAULT_MODES],
    search: true,
    latency: true,
    profile: true,
    calibrate: true,
    generator: 'pace',
    generators: 1,
    maxGenerators: 2,
    tolerance: 0.01,
    searchGenerator: 'pace',
    quick: false,
    quietWait: 20,
    quietThreshold: 10,
  };
  const set = { seconds: false, repeat: false, trialSeconds: false, pingCount: false, profile: false, quietWait: false, calibrate: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--seconds': o.seconds = numberArg(a, v, 0.5, 600); set.seconds = true; i++; break;
      case '--repeat': o.repeat = Math.round(numberArg(a, v, 1, 50)); set.repeat = true; i++; break;
      case '--trial-seconds': o.trialSeconds = numberArg(a, v, 0.5, 60); set.trialSeconds = true; i++; break;
      case '--ping-count': o.pingCount = Math.round(numberArg(a, v, 10, 100_000)); set.pingCount = true; i++; break;
      case '--search-steps': o.searchSteps = Math.round(numberArg(a, v, 1, 30)); i++; break;
      case '--modes': o.modes = listArg(a, v, MODES); i++; break;
      case '--generator':
        if (v !== 'trafgen' && v !== 'pace') throw new Error('--generator: pace or trafgen');
        o.generator = v;
        i++;
        break;
      case '--generators': o.generators = Math.round(numberArg(a, v, 1, 8)); i++; break;
      case '--max-generators': o.maxGenerators = Math.round(numberArg(a, v, 1, 8)); i++; break;
      case '--tolerance': o.tolerance = numberArg(a, v, 0, 0.5); i++; break;
      case '--quiet-wait': o.quietWait = numberArg(a, v, 0, 3600); set.quietWait = true; i++; break;
      case '--quiet-threshold': o.quietThreshold = numberArg(a, v, 0, 200); i++; break;
      case '--search-generator':
        if (v !== 'trafgen' && v !== 'pace') throw new Error('--search-generator: trafgen or pace');
        o.searchGenerator = v;
        i++;
        break;
      case '--no-search': o.search = false; break;
      case '--no-latency': o.latency = false; break;
      case '--no-profile': o.profile = false; set.profile = true; break;
      case '--profile': o.profile = true; set.profile = true; break;
      case '--no-calibrate': o.calibrate = false; set.calibrate = true; break;
      case '--calibrate': o.calibrate = true; set.calibrate = true; break;
      case '--quick': o.quick = true; break;
      case '--out': o.out = v; i++; break;
      case '--report': o.report = v; i++; break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node dist/bench/forwarding.js [--seconds 5] [--repeat 3] [--quick] [--trial-seconds 3] [--ping-count 2000]\n' +
            `       [--modes ${MODES.join(',')}]\n` +
            '       [--generator pace|trafgen] [--generators 1] [--max-generators 2] [--tolerance 0.01]\n' +
            '       [--search-steps 8] [--search-generator pace|trafgen] [--no-search] [--no-latency] [--no-profile] [--(no-)calibrate]\n' +
            '       [--quiet-wait 20] [--quiet-threshold 10] [--out FILE]\n' +
            '       node dist/bench/forwarding.js --report RESULTS.json   (the tables of an earlier run)\n' +
            `  default modes: ${DEFAULT_MODES.join(',')}\n` +
            '  --tolerance T: a router that lost or refused less than this share of what it was offered delivered it all (generator-bound)\n' +
            '  --max-generators N: a generator-bound flat-out trial runs again with one more generator process on CPU 0, up to N\n' +
            '  --quiet-wait S: before each trial, wait up to S s until processes outside the bench use < --quiet-threshold % of a CPU\n' +
            '                  and no other real-time process runs (the box is shared); the trial runs anyway after S s, flagged\n' +
            '  --quick: 2 s windows, 1 repetition, 2 s search trials (5 steps), 500 pings, no profile, no calibration, quiet-wait 5\n',
        );
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  if (o.maxGenerators < o.generators) o.maxGenerators = o.generators;
  if (o.quick) {
    if (!set.seconds) o.seconds = 2;
    if (!set.repeat) o.repeat = 1;
    if (!set.trialSeconds) o.trialSeconds = 2;
    if (!set.pingCount) o.pingCount = 500;
    if (!set.profile) o.profile = false;
    o.searchSteps = Math.min(o.searchSteps, 5);
    o.precision = 0.05;
    if (!set.calibrate) o.calibrate = false;
    if (!set.quietWait) o.quietWait = 5;
  }
  return o;
}

async function version(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, 5000);
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? '';
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`forwarding: ${(error as Error).message}\n`);
    return 2;
  }
  if (opts.report) {
    const doc = JSON.parse(readFileSync(opts.report, 'utf8')) as { results: ModeResult[] };
    const results = judgeLegacy(doc.results, opts.tolerance);
    process.stdout.write(`${tables(results)}\n\n${profileText(results)}\n`);
    return 0;
  }
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`forwarding: ${refusal}\n`);
    return 2;
  }
  const tools = ['nft', 'taskset', 'ping', 'cc', 'ethtool', ...(opts.generator === 'trafgen' || opts.searchGenerator === 'trafgen' || opts.calibrate ? ['trafgen'] : [])];
  for (const tool of tools) {
    if ((await run('sh', ['-c', `command -v ${tool}`], 5000)).code !== 0) {
      process.stderr.write(`forwarding: ${tool} not found\n`);
      return 2;
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'vipr-fwbench-'));
  teardownOnExit('forwarding', () => rmSync(dir, { recursive: true, force: true }));
  await buildPace();
  if (opts.modes.some((m) => SPECS[m].router === 'cfwd' && !SPECS[m].xdp)) await buildCfwd();
  if (opts.modes.some((m) => SPECS[m].xdp)) await buildCfwdXdp();

  const bench = new BenchRun('forwarding');
  const log = (s: string) => process.stdout.write(`${s}\n`);
  log(
    `forwarding bench: ${opts.generator} on CPU ${GEN_CPU} -> router -> web1, UDP to ${VIP}:${UDP_DPORT}; router on CPU ${ROUTER_CPU}; ` +
      `${opts.seconds} s windows x${opts.repeat}; ${cpus().length} CPUs, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
  );
  const results: ModeResult[] = [];
  const failures: Array<{ mode: Mode; error: string }> = [];
  for (const mode of opts.modes) {
    log(`-- ${SPECS[mode].label}`);
    try {
      results.push(await runMode(mode, opts, dir, log));
    } catch (error) {
      failures.push({ mode, error: (error as Error).message });
      log(`   FAILED: ${(error as Error).message}`);
    }
  }
  const table = results.length ? tables(results) : '(no results)';
  const prof = profileText(results);
  log(`\n${table}\n`);
  if (prof) log(`${prof}\n`);
  for (const r of results) {
    if (r.viprLogWarnings?.length) log(`${r.label}: daemon warnings: ${r.viprLogWarnings.slice(0, 3).join(' | ')}`);
  }
  const figures = forwardingFigures(results);
  for (const f of figures) {
    const v = `${f.vipr.bound === 'at-least' ? '≥ ' : ''}${f.vipr.value}`;
    const a = f.anchor ? `${f.anchor.bound === 'at-least' ? '≥ ' : ''}${f.anchor.value}${f.anchor.atLimit ? '' : ' (not at its limit)'}` : '-';
    log(`figure ${f.id}: vipr ${v} ${f.unit}, anchor ${a}, ratio ${f.ratio ? `${f.ratio.bound === 'at-least' ? '≥ ' : ''}${f.ratio.value}` : '-'}`);
  }

  const file = await bench.write(figures, {
    options: opts,
    tools: { trafgen: await version('trafgen', ['-v']) },
    method: {
      topology: 'lab/lab.sh: client eth0 10.0.0.2 -> router up0 10.0.0.1 / lan0 192.168.1.1 -> switch (bridge) -> web1 192.168.1.2 (VIP 192.168.1.33 on lo); fresh lab per mode',
      generator: `${opts.generator === 'pace' ? 'bench/lab/pace.c flat out (sendmmsg bursts of 256, PACKET_QDISC_BYPASS)' : 'trafgen -P 1 (TX ring; -t 0 with RPS)'} in the client namespace on CPU ${GEN_CPU}; frames of 60 and 1514 bytes without FCS ("64 B" and "1500 B"), UDP 10.0.0.2:4000 -> ${VIP}:${UDP_DPORT}`,
      router: `kernel: ip_forward=1 with the lab's routes (kernel-rps: plus rps_cpus = CPU ${ROUTER_CPU} on up0 and lan0); cfwd: bench/lab/cfwd.c on CPU ${ROUTER_CPU}, GRO off, the kernel's transit copy dropped (nft); vipr: ip_forward=0, data plane on CPU ${ROUTER_CPU} with the lab config (or a copy: io: pcap, kernelTransit flipped, no health checks, ring busyPoll)`,
      counting: `delivered = nft netdev ingress rules on web1 and web2 eth0 (udp dport ${UDP_DPORT} counter drop); rates over a --seconds window after a 1 s ramp; the limit judged on counts over the whole run: lost = client eth0 tx - delivered, refused = the generator's refused sends + client eth0 tx_dropped (tolerance ${opts.tolerance})`,
      zeroLoss: `bisection over the offered rate, 64-byte frames, fixed count per trial (${opts.trialSeconds} s worth), generator ${opts.searchGenerator === 'trafgen' ? 'trafgen -b RATEpps -n COUNT' : 'bench/lab/pace.c'} on CPU 0; first trial at 95 % of the generator's paced flat-out rate; a trial with loss or refused sends is retried once; a trial the generator could not hold (< 95 % of the rate, twice) counts as a failure`,
      latency: 'ping -i 0.001 -s 56 from the client on CPU 0 after a 200-ping warm-up; per-packet RTTs',
      noise: "otherProcessesPercent = CPU time of processes outside this bench's lab namespaces during the window, % of one CPU (the box is shared)",
    },
    results,
    failures,
    table,
    profile: prof,
  }, opts.out);
  log(`results: ${file}`);
  return failures.length ? 1 : 0;
}

runIfMain(import.meta.url, 'forwarding', main);
