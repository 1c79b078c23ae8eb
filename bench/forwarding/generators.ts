// The traffic generators, all in the client namespace on CPU 0, all sending
// the same frame: UDP 10.0.0.2:4000 -> 192.168.1.33:9, dst MAC = up0, correct
// IP and UDP checksums.
//
//   pace     bench/lab/pace.c: an AF_PACKET socket with PACKET_QDISC_BYPASS;
//            flat out it sends bursts of 256 with sendmmsg. When the device
//            refuses a burst (EAGAIN/ENOBUFS: on veth, the receiving side's
//            queue is full, e.g. the router's CPU behind RPS cannot keep up)
//            it retries, and counts each refusal: the router pushing back.
//            Paced (--rate R) it sleeps between micro-bursts (the zero-loss search).
//   trafgen  netsniff-ng's, flat out through its TX ring (-t 0, one sendto per
//            frame, with RPS: its TX-ring path gives up on EAGAIN). It does not
//            say when the device refused frames, so a run limited by the
//            router's push-back looks generator-bound. Kept for comparison
//            with the runs before 2026-12 (--generator trafgen).
//
// trafgen -b / -t cannot pace a router's rates smoothly on this VM (-b sends
// flat out then sleeps; -t sleeps once per frame): `calibrate` records the
// arrival pattern at web1 of each, through the kernel router.

import { randomInt } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { compileC, onLines, run, sleep, stdoutClosed, stopChild } from '../../lab/lib/process.js';
import { round } from '../lib/program.js';
import type { Ctx } from './context.js';
import { waitQuiet } from './host.js';
import { CLIENT_IP, CLIENT_MAC, frameOf, GEN_CPU, UDP_DPORT, UDP_SPORT, UP0_MAC, VIP, type SizeName } from './modes.js';

export function trafgenConfig(frame: number): string {
  const fill = frame - 14 - 20 - 8;
  return `{ eth(da=${UP0_MAC}, sa=${CLIENT_MAC}, type=0x0800), ipv4(saddr=${CLIENT_IP}, daddr=${VIP}, ttl=64), udp(sport=${UDP_SPORT}, dport=${UDP_DPORT}), fill(0x00, ${fill}) }\n`;
}

export function trafgenCommand(cfg: string, extra: string[] = []): string[] {
  // -P 1: one sender process; --no-sock-mem: leave the host's socket memory sysctls alone;
  // -Q: leave IRQ affinity alone (veth has none). trafgen bypasses the qdisc by default.
  return ['taskset', '-c', String(GEN_CPU), 'trafgen', '-o', 'eth0', '-i', cfg, '-P', '1', '--no-sock-mem', '-Q', ...extra];
}

/** Compile bench/lab/pace.c (cc -O2) into the temp dir once; the file name carries the source's hash. */
export function buildPace(): Promise<string> {
  return compileC('bench-pace', 'bench/lab/pace.c');
}

export interface PaceReport {
  sent: number;
  elapsed_ns: number;
  rate: number;
  target_rate: number;
  /** sends the device refused (EAGAIN/ENOBUFS), each retried */
  errors: number;
  last_error: string;
  resyncs: number;
  stalled_ms: number;
  max_late_us: number;
}

/** The largest burst pace sends with one sendmmsg (its MAX_BURST): its fastest flat-out mode. */
const FLAT_OUT_BURST = 256;

export function paceCommand(binary: string, frame: number, rate: number, opts: { count?: number; seconds?: number; burst?: number }): string[] {
  return [
    'taskset', '-c', String(GEN_CPU), binary, '--if', 'eth0', '--dst-mac', UP0_MAC, '--src-mac', CLIENT_MAC, '--src-ip', CLIENT_IP, '--dst-ip', VIP,
    '--sport', String(UDP_SPORT), '--dport', String(UDP_DPORT), '--frame', String(frame), '--rate', String(Math.round(rate)), '--cpu', String(GEN_CPU),
    ...(opts.count ? ['--count', String(opts.count)] : []), ...(opts.seconds ? ['--seconds', String(opts.seconds)] : []),
    ...(opts.burst ? ['--burst', String(opts.burst)] : []),
  ];
}

async function runPace(ctx: Ctx, cmd: string[], timeoutMs: number): Promise<PaceReport> {
  const r = await ctx.lab.exec('client', cmd, { timeoutMs });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || !line) throw new Error(`pace failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(line) as PaceReport;
}

/** trafgen's own summary: "N packets outgoing" and "S sec, U usec on CPU0 (N packets)". */
function parseTrafgenSummary(out: string): { packets: number; seconds: number } | undefined {
  const m = /(\d+) sec, (\d+) usec on CPU\d+ \((\d+) packets\)/.exec(out);
  if (!m) return undefined;
  return { packets: Number(m[3]), seconds: Number(m[1]) + Number(m[2]) / 1e6 };
}

// ---- flat out ------------------------------------------------------------------------------

/** What the flat-out generator processes of one trial said when they stopped. */
export interface GeneratorRun {
  generator: 'pace' | 'trafgen';
  processes: number;
  /** frames they sent (null: a process printed no summary) */
  sent: number | null;
  /** sends the device refused and the generator retried: the router pushing back (null: trafgen, which does not say) */
  refused: number | null;
  reports: unknown[];
}

/** The flat-out command of `processes` generator processes, for the results file. */
export function flatOutCommand(ctx: Ctx, size: SizeName, binary = 'PACE'): string[] {
  if (ctx.flatGenerator === 'trafgen') return trafgenCommand(ctx.cfg[size], ctx.lab.mode === 'kernel-rps' ? ['-t', '0'] : []);
  return paceCommand(binary, frameOf(size), 0, { seconds: 3600, burst: FLAT_OUT_BURST });
}

/** Starts `processes` flat-out generators on CPU 0; `stop` ends them (SIGINT) and collects what they sent. */
export async function startFlatOut(ctx: Ctx, size: SizeName, processes: number): Promise<{ early(): string | undefined; stop(): Promise<GeneratorRun> }> {
  const cmd = flatOutCommand(ctx, size, ctx.flatGenerator === 'pace' ? await buildPace() : undefined);
  const children = Array.from({ length: processes }, () => {
    // trafgen forks its sender: a process group of its own, stopped as one
    const child = ctx.lab.spawn('client', cmd, { detached: true });
    const out: string[] = [];
    let err = '';
    onLines(child.stdout, (l) => out.push(l));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
    return { child, out, err: () => err };
  });
  return {
    early: () => {
      const dead = children.find((c) => c.child.exitCode !== null || c.child.signalCode !== null);
      return dead && `${ctx.flatGenerator} exited early: ${dead.err().trim() || dead.out.join(' ').trim()}`;
    },
    stop: async () => {
      await Promise.all(children.map((c) => stopChild(c.child, 5000, 'SIGINT')));
      await Promise.all(children.map((c) => stdoutClosed(c.child)));
      let sent: number | null = 0;
      let refused: number | null = ctx.flatGenerator === 'pace' ? 0 : null;
      const reports: unknown[] = [];
      for (const c of children) {
        if (ctx.flatGenerator === 'pace') {
          const line = c.out.find((l) => l.startsWith('{'));
          const rep = line ? (JSON.parse(line) as PaceReport) : undefined;
          reports.push(rep ?? c.err());
          sent = rep && sent !== null ? sent + rep.sent : null;
          refused = rep && refused !== null ? refused + rep.errors : null;
        } else {
          const m = /(\d+) packets outgoing/.exec(c.out.join('\n'));
          reports.push(m ? { packets: Number(m[1]) } : c.err());
          sent = m && sent !== null ? sent + Number(m[1]) : null;
        }
      }
      return { generator: ctx.flatGenerator, processes, sent, refused, reports };
    },
  };
}

// ---- paced (the zero-loss search) -------------------------------------------------------------

export type SearchGenerator = 'trafgen' | 'pace';

/** What a paced run sent, how fast, and (pace only) how often the generator itself stalled or the router refused. */
export interface PacedRun {
  sent: number;
  achievedPps: number;
  resyncs: number | null;
  maxLateUs: number | null;
  refused: number | null;
}

/** `count` 64-byte frames at `rate` frames/s: trafgen -b RATEpps -n COUNT (its shaper), or pace --rate. */
export async function pacedRun(ctx: Ctx, gen: SearchGenerator, rate: number, count: number, timeoutMs: number): Promise<PacedRun> {
  if (gen === 'pace') {
    const rep = await runPace(ctx, paceCommand(await buildPace(), 60, rate, { count }), timeoutMs);
    return { sent: rep.sent, achievedPps: rep.rate, resyncs: rep.resyncs, maxLateUs: rep.max_late_us, refused: rep.errors };
  }
  const r = await ctx.lab.exec('client', trafgenCommand(ctx.cfg[64], ['-b', `${Math.round(rate)}pps`, '-n', String(count)]), { timeoutMs });
  const sum = parseTrafgenSummary(r.stdout);
  if (!sum) throw new Error(`trafgen -b ${Math.round(rate)}pps -n ${count} printed no summary (${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  return { sent: sum.packets, achievedPps: sum.packets / Math.max(sum.seconds, 1e-6), resyncs: null, maxLateUs: null, refused: null };
}

/** The most a generator can send through this lab with its pacing machinery, 2 s flat out (the better of two runs). */
export async function generatorCeiling(ctx: Ctx, gen: SearchGenerator): Promise<number> {
  let best = 0;
  for (let k = 0; k < 2; k++) {
    if (gen === 'pace') {
      const c = await runPace(ctx, paceCommand(await buildPace(), 60, 0, { seconds: 2 }), 30_000);
      best = Math.max(best, c.rate);
    } else {
      // a rate no shaper here can reach: it never sleeps, i.e. trafgen's paced (sendto) path flat out
      const child = ctx.lab.spawn('client', trafgenCommand(ctx.cfg[64], ['-b', '20000000pps']), { detached: true });
      let out = '';
      child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
      await sleep(2000);
      await stopChild(child, 5000, 'SIGINT');
      await stdoutClosed(child);
      const sum = parseTrafgenSummary(out);
      if (sum) best = Math.max(best, sum.packets / Math.max(sum.seconds, 1e-6));
    }
    await sleep(300);
  }
  return round(best);
}

// ---- calibration: what each generator's pacing looks like on the wire --------------------------

export interface ArrivalStats {
  generator: string;
  requestedPps: number;
  frames: number;
  /** (frames - 1) / (last arrival - first arrival) */
  achievedPps: number;
  /** the most frames in any 1 ms at web1, and the 99th percentile over the busy milliseconds (a smooth stream at R pps: R/1000) */
  maxPerMs: number;
  p99PerMs: number;
  /** the longest run of frames less than 5 µs apart (back to back), and how many frames were in runs of 100 or more */
  longestBackToBack: number;
  framesInRunsOf100: number;
}

export interface Calibration {
  note: string;
  generators: ArrivalStats[];
}

export function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

/** Arrival times at web1 (tcpdump -tt, µs resolution) of a run of one generator, in the kernel lab. */
async function arrivals(ctx: Ctx, name: string, cmd: string[], requestedPps: number): Promise<ArrivalStats | undefined> {
  const file = join(ctx.dir, `cal-${randomInt(1e9)}.pcap`);
  const cap = ctx.lab.spawn('web1', ['tcpdump', '-i', 'eth0', '-n', '-B', '65536', '-w', file, 'udp', 'dst', 'port', String(UDP_DPORT)]);
  let err = '';
  cap.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
  const t0 = Date.now();
  while (!err.includes('listening on') && Date.now() - t0 < 5000 && cap.exitCode === null) await sleep(50);
  try {
    await ctx.lab.exec('client', cmd, { timeoutMs: 60_000 });
    await sleep(300);
  } finally {
    await stopChild(cap, 3000, 'SIGINT');
  }
  const r = await run('tcpdump', ['-r', file, '-tt', '-n'], 60_000);
  rmSync(file, { force: true });
  const ts = r.stdout.split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0]));
  if (ts.length < 2) return undefined;
  const perMs = new Map<number, number>();
  for (const t of ts) {
    const k = Math.floor(t * 1000);
    perMs.set(k, (perMs.get(k) ?? 0) + 1);
  }
  const counts = [...perMs.values()].sort((a, b) => a - b);
  let streak = 1;
  let longest = 1;
  let inLong = 0;
  for (let i = 1; i <= ts.length; i++) {
    if (i < ts.length && (ts[i] - ts[i - 1]) * 1e6 < 5) streak++;
    else {
      if (streak > longest) longest = streak;
      if (streak >= 100) inLong += streak;
      streak = 1;
    }
  }
  return {
    generator: name,
    requestedPps,
    frames: ts.length,
    achievedPps: round((ts.length - 1) / (ts[ts.length - 1] - ts[0])),
    maxPerMs: counts[counts.length - 1],
    p99PerMs: percentile(counts, 0.99) ?? 0,
    longestBackToBack: longest,
    framesInRunsOf100: inLong,
  };
}

/**
 * How each generator's pacing looks on the wire: one second at 30 and 100 kpps
 * through the kernel router, arrival times captured at web1. trafgen -b shapes
 * an average (it sends flat out, then sleeps); trafgen -t sleeps once per packet
 * (accurate, but the sleep bounds its rate); pace sleeps between micro-bursts.
 */
export async function calibrate(ctx: Ctx): Promise<Calibration> {
  const out: Calibration = {
    note: 'arrival pattern at web1 (tcpdump) of 1 s of 64-byte frames per generator and rate, through the kernel router; a smooth stream at R pps has R/1000 frames per ms',
    generators: [],
  };
  const binary = await buildPace();
  for (const rate of [30_000, 100_000]) {
    const n = rate;
    const gapUs = Math.max(1, Math.round(1e6 / rate));
    const gens: Array<[string, string[]]> = [
      [`trafgen -b ${rate}pps -n ${n}`, trafgenCommand(ctx.cfg[64], ['-b', `${rate}pps`, '-n', String(n)])],
      [`trafgen -t ${gapUs}us -n ${n}`, trafgenCommand(ctx.cfg[64], ['-t', `${gapUs}us`, '-n', String(n)])],
      [`pace --rate ${rate} --count ${n}`, paceCommand(binary, 60, rate, { count: n })],
    ];
    for (const [name, cmd] of gens) {
      await waitQuiet(ctx.lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
      const a = await arrivals(ctx, name, cmd, rate);
      if (a) out.generators.push(a);
    }
  }
  return out;
}
