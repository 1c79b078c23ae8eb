// One reroute measurement in a lab that is up: a numbered UDP stream through
// the router while the VIP subnet 192.168.1.32/27 moves between web1 and web2,
// paced one reroute per interval to a long-lived applier that acks each
// (`vipr ctl -` for vipr; a shell running the article's `route del` + `route
// add`, or `ip route replace`, for the kernel as router). Used by
// bench/reroute.ts (1,000 reroutes, against the kernel) and by
// test/lab/reroute.test.ts (100 reroutes through vipr, nothing lost).
//
// The stream (lab/udp-stream.c) runs in the client namespace, pinned to CPU 0
// at SCHED_FIFO (after a stall of its own it sends at most 64 packets back to
// back, then moves its schedule on: a steady stream, never a saved-up burst).
// Before the measured stream the same stream runs for `warmupMs` under another
// run id (ignored by the sinks), so every router is measured warm.
// lab/udp-sink.mjs in web1 and web2 (on the VIP 192.168.1.33) records every
// sequence number (its event loop at SCHED_FIFO 10, so that the receiver is
// not what loses packets on a busy machine); the shares are merged:
//   lost       = sent - distinct numbers received (web1 + web2)
//   duplicated = received - distinct
//   reordered  = packets lower than the one before them at the same server
//   switches   = how often the receiving server changes along the sequence (the
//                reroutes as the packets saw them)
//   lost at vipr port = kernel up0 rx - vipr up0 rx: frames that arrived while
//                vipr's port buffer was full (vipr not running), i.e. never read
// A stall probe on the other CPU (vipr's) records how long the machine kept a
// real-time process off it during the stream.

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { diffLinks, dropsDelta, linkCounters, viprStats, type LinkCounters } from './counters.js';
import { VIPR_CLI, type TrialLab } from './lab.js';
import { exited, listeningChild, makeRealtime, makeTempDir, onLines, removeTempDir, REPO_ROOT, sleep, stdoutClosed, stopChild } from './process.js';
import { buildStream, PORT, streamCommand, VIP, VIP_NET, type StallProbe, type StreamReport } from './stream.js';

const SINK = join(REPO_ROOT, 'lab/udp-sink.mjs');
const SERVERS = { web1: '192.168.1.2', web2: '192.168.1.3' } as const;
type Server = keyof typeof SERVERS;

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** CPU time counters of the whole host (/proc/stat), to say how busy it was during a run. */
function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

// ---- the sinks ------------------------------------------------------------------

export interface SinkSummary {
  name: string;
  received: number;
  distinct: number;
  duplicates: number;
  reordered: number;
  foreign: number;
  firstSeq: number;
  lastSeq: number;
  minSeq: number;
  maxSeq: number;
  outOfRange: number;
  socketDrops: number | null;
  segments: number;
  latency?: { p50: number | null; p99: number | null; p999: number | null; max: number | null; histogram?: Array<[fromUs: number, toUs: number, count: number]> };
}

export interface Latency {
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

/** Merge the sinks' latency histograms (µs, sender timestamp to sink read). */
export function mergeLatency(summaries: SinkSummary[]): Latency {
  // every sink uses the same buckets: key them by their lower bound
  const h = new Map<number, { to: number; count: number }>();
  let max: number | null = null;
  for (const s of summaries) {
    for (const [from, to, c] of s.latency?.histogram ?? []) {
      const b = h.get(from) ?? { to, count: 0 };
      b.count += c;
      h.set(from, b);
    }
    if (s.latency?.max != null) max = Math.max(max ?? 0, s.latency.max);
  }
  const buckets = [...h.entries()].sort((a, b) => a[0] - b[0]);
  const n = buckets.reduce((a, [, b]) => a + b.count, 0);
  const pct = (q: number): number | null => {
    if (n === 0) return null;
    const want = Math.ceil(q * n);
    let acc = 0;
    for (const [, b] of buckets) {
      acc += b.count;
      if (acc >= want) return b.to;
    }
    return null;
  };
  return { p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max };
}

interface Sink {
  name: Server;
  child: ChildProcess;
  dump: string;
  stop(): Promise<SinkSummary>;
}

async function startSink(lab: TrialLab, name: Server, runId: number, dir: string): Promise<Sink> {
  const dump = join(dir, `${name}.seq`);
  const child = lab.spawn(name, [process.execPath, SINK, '--bind', VIP, '--port', String(PORT), '--run-id', String(runId), '--name', name, '--dump', dump]);
  const { lines, stderr } = await listeningChild(child, `udp-sink in ${name}`);
  // The receiver must not be what loses packets: its event loop at SCHED_FIFO 10
  // (below vipr-rt's 20 and the generator's 50), so other work on a busy machine
  // cannot keep it from reading its socket (what is lost there anyway shows as
  // socketDrops).
  await makeRealtime(child.pid!, 10);
  return {
    name,
    child,
    dump,
    stop: async () => {
      // a busy machine may take a while to schedule it: it has to write its files
      await stopChild(child, 15_000);
      await stdoutClosed(child, 2000);
      const line = lines.find((l) => l.includes('"summary"'));
      if (!line) throw new Error(`udp-sink in ${name} wrote no summary (exit ${child.exitCode ?? child.signalCode}); stderr: ${stderr().trim()}`);
      try {
        return JSON.parse(line) as SinkSummary;
      } catch (error) {
        throw new Error(`udp-sink in ${name}: bad summary (${(error as Error).message}; exit ${child.exitCode ?? child.signalCode}): ${line.slice(0, 200)}...`);
      }
    },
  };
}

// ---- merging the shares -----------------------------------------------------------

export interface Merge {
  sent: number;
  /** packets received by all sinks together (duplicates included) */
  received: number;
  distinct: number;
  lost: number;
  duplicated: number;
  /** numbers received that were never sent (must be 0) */
  unexpected: number;
  /** per server: distinct numbers received */
  shares: Record<string, number>;
  /** how often the receiving server changes along the sequence */
  switches: number;
  /** maximal runs of lost numbers: how many, the longest, and the first few */
  lossBursts: number;
  longestLossBurst: number;
  firstLossBursts: Array<[first: number, length: number]>;
}

/** Merge per-number receive counts (one Uint8Array per server, index = sequence number) against `sent`. */
export function mergeShares(sent: number, shares: Record<string, Uint8Array>): Merge {
  const names = Object.keys(shares);
  const arrays = names.map((n) => shares[n]);
  let received = 0;
  let distinct = 0;
  let unexpected = 0;
  let switches = 0;
  let lossBursts = 0;
  let longest = 0;
  let run = 0;
  let lastOwner = -1;
  const first: Array<[number, number]> = [];
  const perServer = names.map(() => 0);
  const flushRun = (end: number) => {
    if (run === 0) return;
    lossBursts++;
    if (run > longest) longest = run;
    if (first.length < 20) first.push([end - run, run]);
    run = 0;
  };
  for (let seq = 0; seq < sent; seq++) {
    let total = 0;
    let owner = -1;
    for (let k = 0; k < arrays.length; k++) {
      const c = seq < arrays[k].length ? arrays[k][seq] : 0;
      if (c > 0) {
        total += c;
        perServer[k]++;
        if (owner < 0) owner = k;
      }
    }
    if (total === 0) {
      run++;
      continue;
    }
    flushRun(seq);
    received += total;
    distinct++;
    if (lastOwner >= 0 && owner !== lastOwner) switches++;
    lastOwner = owner;
  }
  flushRun(sent);
  for (const a of arrays) for (let seq = sent; seq < a.length; seq++) unexpected += a[seq];
  return {
    sent,
    received: received + unexpected,
    distinct,
    lost: sent - distinct,
    duplicated: received - distinct,
    unexpected,
    shares: Object.fromEntries(names.map((n, k) => [n, perServer[k]])),
    switches,
    lossBursts,
    longestLossBurst: longest,
    firstLossBursts: first,
  };
}

// ---- reroute appliers ---------------------------------------------------------------

export type Mode = 'vipr' | 'vipr-rt' | 'kernel-route' | 'kernel-replace' | 'vipr-steady' | 'vipr-rt-steady' | 'kernel-steady';
export const MODES: readonly Mode[] = ['vipr', 'vipr-rt', 'kernel-route', 'kernel-replace', 'vipr-steady', 'vipr-rt-steady', 'kernel-steady'];
export const isViprMode = (m: Mode) => m.startsWith('vipr');
export const isSteady = (m: Mode) => m.endsWith('-steady');
/** vipr runs at real-time priority in this mode */
export const isRt = (m: Mode) => m.startsWith('vipr-rt');

/** A long-lived process that applies one reroute per stdin line and acks each (ok or failed). */
interface Applier {
  child: ChildProcess;
  /** the line that moves the route to `to` */
  line(to: Server): string;
  /** a line that changes nothing and is acked: the applier is up and connected */
  warmup: string;
  /** turn one output line into acks (may need several lines for one ack) */
  parse(line: string): Array<'ok' | 'failed'>;
  describe: string;
}

function viprApplier(lab: TrialLab, socket: string): Applier {
  const child = lab.spawn('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, '-'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO_ROOT });
  // --json answers are pretty-printed objects: collect lines up to the closing "}".
  let block: string[] = [];
  return {
    child,
    describe: `vipr ctl - : route replace ${VIP_NET} via web1|web2`,
    warmup: 'stats\n',
    line: (to) => `route replace ${VIP_NET} via ${to}\n`,
    parse: (line) => {
      block.push(line);
      if (line !== '}') return [];
      const text = block.join('\n');
      block = [];
      try {
        const answer = JSON.parse(text) as { applied?: number; error?: unknown };
        return [answer.error === undefined ? 'ok' : 'failed'];
      } catch {
        return ['failed'];
      }
    },
  };
}

/** Does the router namespace have net-tools `route`? */
async function hasRouteCommand(lab: TrialLab): Promise<boolean> {
  const r = await lab.exec('router', ['sh', '-c', 'command -v route']);
  return r.code === 0 && r.stdout.trim() !== '';
}

function kernelApplier(lab: TrialLab, kind: 'route' | 'ip-deladd' | 'replace'): Applier {
  // One shell in the router namespace; each command is its own process, as an operator runs it.
  const [net, mask] = ['192.168.1.32', '255.255.255.224'];
  const body =
    kind === 'route'
      ? `route del -net ${net} netmask ${mask} || rc=1; route add -net ${net} netmask ${mask} gw "$gw" || rc=1`
      : kind === 'ip-deladd'
        ? `ip route del ${VIP_NET} || rc=1; ip route add ${VIP_NET} via "$gw" || rc=1`
        : `ip route replace ${VIP_NET} via "$gw" || rc=1`;
  const script = `while read -r gw; do if [ "$gw" = warmup ]; then echo ok; continue; fi; rc=0; ${body}; if [ $rc = 0 ]; then echo ok; else echo failed; fi; done`;
  const child = lab.spawn('router', ['bash', '-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  return {
    child,
    describe:
      kind === 'route'
        ? `route del -net ${net} netmask ${mask}; route add -net ${net} netmask ${mask} gw 192.168.1.2|3`
        : kind === 'ip-deladd'
          ? `ip route del ${VIP_NET}; ip route add ${VIP_NET} via 192.168.1.2|3`
          : `ip route replace ${VIP_NET} via 192.168.1.2|3`,
    warmup: 'warmup\n',
    line: (to) => `${SERVERS[to]}\n`,
    parse: (line) => (line === 'ok' ? ['ok'] : line === 'failed' ? ['failed'] : []),
  };
}

export interface RerouteDrive {
  asked: number;
  ok: number;
  failed: number;
  /** first line written .. last ack, ms */
  spanMs: number;
  /** applied reroutes per second over the span */
  perSecond: number;
  /** worst time from writing a line to its ack (grows when the applier falls behind), ms */
  maxAckMs: number;
  p50AckMs: number;
  applierErrors: string;
  command: string;
}

async function drive(applier: Applier, count: number, intervalMs: number): Promise<RerouteDrive> {
  const { child } = applier;
  const writes: number[] = [];
  const acks: number[] = [];
  let ok = 0;
  let failed = 0;
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => {
    if (stderr.length < 4000) stderr += c;
  });
  let allAcked: (() => void) | undefined;
  let warm: (() => void) | undefined;
  let warming = true;
  onLines(child.stdout, (line) => {
    for (const a of applier.parse(line)) {
      if (warming) {
        warming = false;
        warm?.();
        continue;
      }
      acks.push(performance.now());
      if (a === 'ok') ok++;
      else failed++;
    }
    if (acks.length >= count && allAcked) allAcked();
  });
  const end = exited(child);
  let dead = false;
  void end.then(() => (dead = true));
  const stdin = child.stdin!;
  stdin.on('error', () => undefined);

  // Start pacing once the applier answers (a node client takes a moment to start and connect).
  const warmed = new Promise<void>((r) => (warm = r));
  stdin.write(applier.warmup);
  let wt: NodeJS.Timeout | undefined;
  await Promise.race([warmed, end, new Promise<void>((r) => (wt = setTimeout(r, 20_000)))]);
  clearTimeout(wt);
  if (warming) throw new Error(`reroute applier did not answer its first line (${applier.describe}): ${stderr.trim()}`);

  const t0 = performance.now();
  for (let i = 0; i < count && !dead; i++) {
    await sleep(t0 + i * intervalMs - performance.now());
    writes.push(performance.now());
    stdin.write(applier.line(i % 2 === 0 ? 'web2' : 'web1'));
  }
  let t: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((r) => {
      allAcked = r;
      if (acks.length >= count) r();
    }),
    end,
    new Promise<void>((r) => (t = setTimeout(r, Math.max(30_000, count * intervalMs * 3)))),
  ]);
  clearTimeout(t);
  allAcked = undefined;
  stdin.end();
  await Promise.race([end, sleep(5000)]);
  await stopChild(child, 2000);

  const lat = acks.map((a, i) => a - writes[i]).filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const spanMs = acks.length ? acks[acks.length - 1] - writes[0] : 0;
  return {
    asked: count,
    ok,
    failed: failed + Math.max(0, writes.length - acks.length) + (count - writes.length),
    spanMs: round(spanMs, 1),
    perSecond: spanMs > 0 ? round((ok * 1000) / spanMs, 1) : 0,
    maxAckMs: round(lat.length ? lat[lat.length - 1] : 0, 2),
    p50AckMs: round(lat.length ? lat[Math.floor(lat.length / 2)] : 0, 2),
    applierErrors: stderr.trim().split('\n').slice(0, 5).join(' | '),
    command: applier.describe,
  };
}

// ---- one measurement --------------------------------------------------------------------

export interface RerouteOptions {
  /** reroutes to apply (ignored for the steady modes, whose stream is as long) */
  reroutes: number;
  /** packets per second */
  rate: number;
  /** one reroute every this many ms */
  intervalMs: number;
  /**
   * before the measured stream, the same stream with another run id (the sinks
   * ignore it) for this long, ms (default 1000): the router forwards it, so the
   * measurement starts warm (vipr's JIT has compiled its data path, caches are
   * filled), as a router that has been running for a while is
   */
  warmupMs?: number;
  /** stream alone before the first reroute, ms */
  leadMs: number;
  /** stream alone after the last ack, ms */
  tailMs: number;
  /** UDP payload bytes (24..1472) */
  size?: number;
  /** CPU for the generator (default 0); vipr goes to the other one */
  generatorCpu?: number;
  /** bench only: run vipr with the lab config's health checks (default: without them, see configWithoutHealthChecks) */
  healthChecks?: boolean;
  /** bench only: vipr's port backend (config `io:`), instead of the lab config's */
  io?: string;
}

export interface TrialResult {
  mode: Mode;
  /** vipr modes: the port backend (pcap, ring); null for the kernel */
  viprIo: string | null;
  lab: string;
  runId: number;
  stream: StreamReport;
  merge: Merge;
  reordered: number;
  /** one-way delay, µs (sender timestamp to the sink reading it; upper bounds of the sinks' histogram buckets) */
  latencyUs: Latency;
  sinks: SinkSummary[];
  reroutes: RerouteDrive | null;
  /** the route's target after the run matches the parity of the reroutes done */
  finalRoute: { expected: Server; actual: string; ok: boolean };
  /** link counters over the run (packets), and vipr's own (vipr modes) */
  links: LinkCounters;
  vipr?: { up0Rx: number; lan0Tx: number; forwarded: number; drops: Record<string, number>; routeChangesLogged?: number };
  /**
   * vipr modes: health events vipr logged during the run (a server going down
   * moves or withdraws its routes: not a reroute of ours, and it may drop packets)
   */
  healthEvents: string[];
  /**
   * vipr modes: frames the kernel counted in on up0 that vipr never read (its
   * port's buffer was full while it was not running): kernel up0 rx - vipr up0 rx.
   * lostElsewhere = lost - lostAtViprPort: what was lost after vipr read it (or,
   * for the kernel, anywhere). null for the kernel modes.
   */
  lostAtViprPort: number | null;
  lostElsewhere: number;
  /**
   * A stall probe on the other CPU (vipr's) during the stream, at SCHED_FIFO 90:
   * how long the machine kept any process off that CPU (kernel or hypervisor),
   * whatever ran there. null on a 1-CPU machine.
   */
  stallProbe: StallProbe | null;
  /** share of all CPUs busy (anyone's work, this run's included) from the stream's start to its end, % */
  hostBusyPercent: number;
  /** 1-minute load average at the end of the stream */
  loadavg1: number;
  durationMs: number;
}

export interface MeasureContext {
  mode: Mode;
  lab: TrialLab;
  /** vipr modes: the daemon's control socket */
  socket?: string;
  /** vipr modes: how many `route change` log lines the daemon wrote so far (read after the run) */
  routeChangesLogged?: () => number;
  /** vipr modes: the daemon's `event: ...` log messages so far (health state changes, failovers) */
  viprEvents?: () => string[];
  /** vipr modes: its port backend (config `io:`), for the record */
  viprIo?: string;
}

/**
 * Run one measurement in a lab that is up (and, for vipr modes, has vipr running):
 * sinks in web1 and web2, the stream from the client, reroutes paced by the
 * applier of the mode; then merge. The route 192.168.1.32/27 must point at web1.
 * Every process started here is stopped before it returns (also on failure).
 */
export async function measureReroutes(ctx: MeasureContext, opts: RerouteOptions): Promise<TrialResult> {
  const { mode, lab } = ctx;
  if (isViprMode(mode) && !ctx.socket) throw new Error(`${mode}: the vipr control socket is required`);
  const binary = await buildStream();
  const runId = randomInt(1, 0x7fffffff);
  const dir = makeTempDir(`vipr-reroute-${lab.prefix}-`);
  const started: ChildProcess[] = [];
  const sinks: Sink[] = [];
  const t0 = Date.now();
  try {
    // kernel-route: the article's net-tools `route`, or the same two steps with ip
    let kernelKind: 'route' | 'ip-deladd' | 'replace' = 'replace';
    if (mode === 'kernel-route') kernelKind = (await hasRouteCommand(lab)) ? 'route' : 'ip-deladd';

    for (const s of ['web1', 'web2'] as const) sinks.push(await startSink(lab, s, runId, dir));

    const cpu = opts.generatorCpu ?? 0;
    const warmupMs = opts.warmupMs ?? 1000;
    if (warmupMs > 0) {
      const warm = await lab.exec('client', streamCommand(binary, { rate: opts.rate, runId: runId + 1, size: opts.size, seconds: warmupMs / 1000, cpu }), {
        timeoutMs: warmupMs + 30_000,
      });
      if (warm.code !== 0) throw new Error(`udp-stream (warm-up) failed: ${warm.stderr.trim() || warm.stdout.trim()}`);
      await sleep(300);
    }
    const before = await linkCounters(lab.prefix);
    const viprBefore = ctx.socket ? await viprStats(lab, ctx.socket) : undefined;

    // an upper bound only: the stream is stopped with SIGTERM once the reroutes are done
    const safetySec = Math.ceil((opts.leadMs + opts.tailMs + opts.reroutes * opts.intervalMs * 4) / 1000) + 60;
    const genArgs = streamCommand(binary, { rate: opts.rate, runId, size: opts.size, seconds: safetySec, cpu });
    // the stall probe on vipr's CPU, for as long as the stream runs
    const probeCpu = cpu === 0 ? 1 : 0;
    let probe: ChildProcess | undefined;
    const probeLines: string[] = [];
    if (probeCpu < cpus().length) {
      // (in the router namespace only so that the lab tracks it and kills it on every way out)
      probe = lab.spawn('router', [binary, '--stall-probe', String(safetySec), '--cpu', String(probeCpu), '--rt', '90']);
      started.push(probe);
      onLines(probe.stdout, (l) => probeLines.push(l));
    }
    const eventsBefore = ctx.viprEvents?.().length ?? 0;
    const cpuStart = cpuTimes();
    const gen = lab.spawn('client', genArgs);
    started.push(gen);
    const genLines: string[] = [];
    let genErr = '';
    onLines(gen.stdout, (l) => genLines.push(l));
    gen.stderr?.setEncoding('utf8');
    gen.stderr?.on('data', (c: string) => (genErr += c));
    const genEnd = exited(gen);

    await sleep(opts.leadMs);
    if (gen.exitCode !== null || gen.signalCode !== null) throw new Error(`udp-stream exited early: ${genErr.trim()}`);

    let reroutes: RerouteDrive | null = null;
    if (isSteady(mode)) {
      await sleep(opts.reroutes * opts.intervalMs);
    } else {
      const applier = isViprMode(mode) ? viprApplier(lab, ctx.socket!) : kernelApplier(lab, kernelKind);
      started.push(applier.child);
      reroutes = await drive(applier, opts.reroutes, opts.intervalMs);
    }
    await sleep(opts.tailMs);
    const cpuEnd = cpuTimes();
    const healthEvents = ctx.viprEvents?.().slice(eventsBefore) ?? [];
    const loadavg1 = loadavg()[0];
    await stopChild(gen, 5000);
    await genEnd;
    await stdoutClosed(gen);
    let stallProbe: StallProbe | null = null;
    if (probe) {
      await stopChild(probe, 3000);
      await stdoutClosed(probe);
      const line = probeLines.find((l) => l.startsWith('{'));
      if (line) stallProbe = { cpu: probeCpu, priority: 90, ...(JSON.parse(line) as Omit<StallProbe, 'cpu' | 'priority'>) };
    }
    const genLine = genLines.find((l) => l.startsWith('{'));
    if (!genLine) throw new Error(`udp-stream printed no report: ${genErr.trim()}`);
    const stream = JSON.parse(genLine) as StreamReport;

    // let the last packets arrive, then stop the sinks
    await sleep(500);
    const summaries: SinkSummary[] = [];
    for (const s of sinks) summaries.push(await s.stop());
    const after = await linkCounters(lab.prefix);
    const viprAfter = ctx.socket ? await viprStats(lab, ctx.socket) : undefined;

    const shares: Record<string, Uint8Array> = {};
    for (const s of sinks) shares[s.name] = existsSync(s.dump) ? new Uint8Array(readFileSync(s.dump)) : new Uint8Array(0);
    const merge = mergeShares(stream.sent, shares);
    const links = diffLinks(before, after);
    const lostAtViprPort =
      viprBefore && viprAfter && links['router.up0'] ? Math.max(0, links['router.up0'].rx - (viprAfter.up0Rx - viprBefore.up0Rx)) : null;

    // where does the route point now?
    const done = reroutes?.ok ?? 0;
    const expected: Server = done % 2 === 0 ? 'web1' : 'web2';
    let actual = '';
    if (isViprMode(mode)) {
      const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--socket', ctx.socket!, 'route', 'show', VIP_NET]);
      actual = r.stdout.split('\n').find((l) => l.startsWith(VIP_NET)) ?? r.stderr.trim();
    } else {
      const r = await lab.exec('router', ['ip', 'route', 'show', VIP_NET]);
      actual = r.stdout.trim() || r.stderr.trim();
    }
    const ok = isViprMode(mode) ? new RegExp(`\\b${expected}\\b`).test(actual) : actual.includes(`via ${SERVERS[expected]} `);

    return {
      mode,
      viprIo: isViprMode(mode) ? (ctx.viprIo ?? null) : null,
      lab: lab.prefix,
      runId,
      stream,
      merge,
      reordered: summaries.reduce((n, s) => n + s.reordered, 0),
      latencyUs: mergeLatency(summaries),
      sinks: summaries.map((s) => ({ ...s, latency: s.latency ? { ...s.latency, histogram: undefined } : undefined })),
      reroutes,
      finalRoute: { expected, actual: actual.replace(/\s+/g, ' ').trim(), ok },
      links,
      healthEvents,
      stallProbe,
      lostAtViprPort,
      // (the port may also have dropped a frame that was not the stream's, e.g. ARP)
      lostElsewhere: Math.max(0, merge.lost - (lostAtViprPort ?? 0)),
      vipr:
        viprBefore && viprAfter
          ? {
              up0Rx: viprAfter.up0Rx - viprBefore.up0Rx,
              lan0Tx: viprAfter.lan0Tx - viprBefore.lan0Tx,
              forwarded: viprAfter.forwarded - viprBefore.forwarded,
              drops: dropsDelta(viprBefore.drops, viprAfter.drops),
              routeChangesLogged: ctx.routeChangesLogged?.(),
            }
          : undefined,
      hostBusyPercent: round((100 * (cpuEnd.busy - cpuStart.busy)) / Math.max(1, cpuEnd.total - cpuStart.total), 1),
      loadavg1: round(loadavg1, 2),
      durationMs: Date.now() - t0,
    };
  } finally {
    await Promise.all([...started, ...sinks.map((s) => s.child)].map((c) => stopChild(c, 2000)));
    removeTempDir(dir);
  }
}

/** One line saying where packets went missing, from the counters (packets of the run plus a few ARP frames). */
export function lossLocation(r: TrialResult): string {
  const l = r.links;
  const parts: string[] = [];
  const cTx = l['client.eth0']?.tx;
  const rRx = l['router.up0']?.rx;
  const lTx = l['router.lan0']?.tx;
  const wRx = (l['web1.eth0']?.rx ?? 0) + (l['web2.eth0']?.rx ?? 0);
  if (cTx !== undefined) parts.push(`client tx ${cTx}`);
  if (rRx !== undefined) parts.push(`router up0 rx ${rRx}`);
  if (r.vipr) parts.push(`vipr rx ${r.vipr.up0Rx}, forwarded ${r.vipr.forwarded}${Object.keys(r.vipr.drops).length ? ` drops ${JSON.stringify(r.vipr.drops)}` : ''}`);
  if (lTx !== undefined) parts.push(`router lan0 tx ${lTx}`);
  parts.push(`web1+web2 eth0 rx ${wRx}`);
  const sockDrops = r.sinks.reduce((n, s) => n + (s.socketDrops ?? 0), 0);
  parts.push(`sink socket drops ${sockDrops}`);
  return parts.join(', ');
}

// ---- a short report ---------------------------------------------------------------------------

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

const ms = (us: number | null) => (us === null ? '-' : (us / 1000).toFixed(2));

export function table(results: TrialResult[]): string {
  const head = ['mode', 'sent', 'received', 'lost', 'lost at vipr port', 'duplicated', 'reordered', 'reroutes done', 'reroute span s', 'reroutes/s', 'max ack ms', 'switches seen', 'stream s', 'stream pps', 'loss bursts (longest)', 'p99 / max latency ms', 'sender max stall ms', 'CPU 1 stalls > 10 ms (max ms)', 'health events', 'host busy %'];
  const rows = results.map((r) => [
    r.viprIo ? `${r.mode} (${r.viprIo})` : r.mode,
    String(r.stream.sent),
    String(r.merge.received),
    String(r.merge.lost),
    r.lostAtViprPort === null ? '-' : String(r.lostAtViprPort),
    String(r.merge.duplicated),
    String(r.reordered),
    r.reroutes ? `${r.reroutes.ok}/${r.reroutes.asked}` : '-',
    r.reroutes ? (r.reroutes.spanMs / 1000).toFixed(2) : '-',
    r.reroutes ? r.reroutes.perSecond.toFixed(0) : '-',
    r.reroutes ? r.reroutes.maxAckMs.toFixed(1) : '-',
    String(r.merge.switches),
    (r.stream.elapsed_ns / 1e9).toFixed(2),
    r.stream.rate.toFixed(0),
    r.merge.lossBursts ? `${r.merge.lossBursts} (${r.merge.longestLossBurst})` : '0',
    `${ms(r.latencyUs.p99)} / ${ms(r.latencyUs.max)}`,
    (r.stream.max_late_us / 1000).toFixed(1),
    r.stallProbe ? `${r.stallProbe.late_10ms ?? '?'} (${(r.stallProbe.max_late_us / 1000).toFixed(1)})` : '-',
    isViprMode(r.mode) ? String(r.healthEvents.length) : '-',
    r.hostBusyPercent.toFixed(0),
  ]);
  return pad([head, ...rows]);
}
