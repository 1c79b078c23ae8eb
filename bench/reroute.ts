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
// machine checks with a 50 ms timeout take servers down and move routes in the
// middle of a measurement (the health events column counts them).
//
// Every mode paces its reroutes the same way: one line every --interval ms to a
// long-lived applier (vipr ctl -, or a shell in the router namespace) that acks
// each one. The stream (lab/udp-stream.c, compiled here with cc -O2 into the
// temp dir) runs in the client namespace, pinned to CPU 0 at SCHED_FIFO (after a
// stall of its own it sends at most 64 packets back to back, then moves its
// schedule on: a steady stream, never a saved-up burst); vipr is
// pinned to CPU 1. Before each measured stream the same stream runs for --warmup ms
// under another run id (ignored by the sinks), so every router is measured warm.
// lab/udp-sink.mjs in web1 and web2 (on the VIP 192.168.1.33)
// records every sequence number (its event loop at SCHED_FIFO 10, so that the
// receiver is not what loses packets on a busy machine); the shares are merged:
//   lost       = sent - distinct numbers received (web1 + web2)
//   duplicated = received - distinct
//   reordered  = packets lower than the one before them at the same server
//   switches   = how often the receiving server changes along the sequence (the
//                reroutes as the packets saw them)
//   lost at vipr port = kernel up0 rx - vipr up0 rx: frames that arrived while
//                vipr's port buffer was full (vipr not running), i.e. never read
// Before the modes, a stall probe (udp-stream --stall-probe, --probe seconds)
// records how late a SCHED_FIFO process on each CPU wakes up on this machine.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/reroute.js [--reroutes 1000] [--rate 20000] [--interval 10]
//        [--modes vipr,vipr-rt,kernel-route,kernel-replace,vipr-steady,vipr-rt-steady,kernel-steady]
//        [--warmup 1000] [--lead 1000] [--tail 1000] [--probe 5] [--health-checks] [--io pcap|ring] [--out FILE]
// Writes bench/results/reroute-YYYY-MM-DD[THHMMSS].json and prints a table.
// Needs root (network namespaces), cc, iproute2; net-tools `route` for
// kernel-route (without it: `ip route del` + `ip route add`, the same two steps).
//
// The measurement itself (measureReroutes) is also used by test/lab/reroute.test.ts.

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import YAML from 'yaml';
import {
  benchLabUp, compileC, listeningChild, stdoutClosed, exited, labBenchRefusal, numberArg, onLines, REPO_ROOT, run, runIfMain, sleep, startViprIn, stopChild, teardownOnExit, VIPR_CLI,
  type BenchLab, type ExecResult, type LabNode, type TrialLab,
} from './lab/common.js';

export type { ExecResult, LabNode, TrialLab };

// ---- where things are -------------------------------------------------------

const STREAM_SRC = join(REPO_ROOT, 'lab/udp-stream.c');
const SINK = join(REPO_ROOT, 'lab/udp-sink.mjs');

export const VIP = '192.168.1.33';
export const VIP_NET = '192.168.1.32/27';
export const PORT = 9999;
const SERVERS = { web1: '192.168.1.2', web2: '192.168.1.3' } as const;
type Server = keyof typeof SERVERS;

// ---- processes in a lab --------------------------------------------------------


/** Pin every thread of a process to one CPU (taskset -a -p -c). Returns false if that failed (e.g. a 1-CPU box). */
export async function pinToCpu(pid: number, cpu: number): Promise<boolean> {
  if (cpu >= cpus().length) return false;
  const r = await run('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], 10_000);
  return r.code === 0;
}

/**
 * Run a process's main thread (the one whose id is the pid: node's event loop,
 * i.e. vipr's data plane) at SCHED_FIFO `priority` (chrt -f -p). Only that one:
 * V8's compiler and GC helper threads at the same FIFO priority on the same CPU
 * would keep the event loop off it for as long as they run.
 */
export async function makeRealtime(pid: number, priority = 20): Promise<boolean> {
  const r = await run('chrt', ['-f', '-p', String(priority), String(pid)], 10_000);
  return r.code === 0;
}

/** CPU time counters of the whole host (/proc/stat), to say how busy it was during a run. */
function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

// ---- the stream generator -------------------------------------------------------


/** Compile lab/udp-stream.c (cc -O2) into the temp dir once; the file name carries the source's hash. */
export function buildStream(): Promise<string> {
  return compileC('udp-stream', 'lab/udp-stream.c', readFileSync(STREAM_SRC));
}

export interface StreamReport {
  sent: number;
  errors: number;
  last_error: string;
  elapsed_ns: number;
  rate: number;
  max_late_us: number;
  max_burst: number;
  late_1ms: number;
  /** times the sender was more than 64 packets behind and moved its schedule on, and for how long in all */
  resyncs: number;
  stalled_ms: number;
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

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---- counters, to say where a loss happened ---------------------------------------------

type LinkCounters = Record<string, { rx: number; tx: number; rxDropped: number; txDropped: number }>;

async function linkCounters(lab: TrialLab): Promise<LinkCounters> {
  const out: LinkCounters = {};
  const nodes: Array<[LabNode, string[]]> = [
    ['client', ['eth0']],
    ['router', ['up0', 'lan0']],
    ['web1', ['eth0']],
    ['web2', ['eth0']],
  ];
  await Promise.all(
    nodes.map(async ([node, ifs]) => {
      const r = await lab.exec(node, ['ip', '-s', '-j', 'link', 'show']);
      if (r.code !== 0) return;
      const links = JSON.parse(r.stdout) as Array<{ ifname: string; stats64?: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }>;
      for (const l of links) {
        if (!ifs.includes(l.ifname) || !l.stats64) continue;
        out[`${node}.${l.ifname}`] = { rx: l.stats64.rx.packets, tx: l.stats64.tx.packets, rxDropped: l.stats64.rx.dropped, txDropped: l.stats64.tx.dropped };
      }
    }),
  );
  return out;
}

interface ViprCounters {
  up0Rx: number;
  lan0Tx: number;
  forwarded: number;
  drops: Record<string, number>;
}

async function viprCounters(lab: TrialLab, socket: string): Promise<ViprCounters | undefined> {
  const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'stats']);
  if (r.code !== 0) return undefined;
  try {
    const s = JSON.parse(r.stdout) as { drops: Record<string, number>; ports: Record<string, { rxPackets: number; txPackets: number; forwardedPackets: number }> };
    return { up0Rx: s.ports.up0?.rxPackets ?? 0, lan0Tx: s.ports.lan0?.txPackets ?? 0, forwarded: s.ports.lan0?.forwardedPackets ?? 0, drops: s.drops };
  } catch {
    return undefined;
  }
}

function diffLinks(a: LinkCounters, b: LinkCounters): LinkCounters {
  const d: LinkCounters = {};
  for (const k of Object.keys(b)) {
    const x = a[k];
    if (!x) continue;
    d[k] = { rx: b[k].rx - x.rx, tx: b[k].tx - x.tx, rxDropped: b[k].rxDropped - x.rxDropped, txDropped: b[k].txDropped - x.txDropped };
  }
  return d;
}

/** Temp dirs of measurements under way, removed also when the process exits early (signal, crash). */
const tempDirs = new Set<string>();
let tempDirHook = false;
function removeTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
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
  const dir = mkdtempSync(join(tmpdir(), `vipr-reroute-${lab.prefix}-`));
  tempDirs.add(dir);
  if (!tempDirHook) {
    tempDirHook = true;
    process.on('exit', removeTempDirs);
  }
  const started: ChildProcess[] = [];
  const sinks: Sink[] = [];
  const t0 = Date.now();
  try {
    // kernel-route: the article's net-tools `route`, or the same two steps with ip
    let kernelKind: 'route' | 'ip-deladd' | 'replace' = 'replace';
    if (mode === 'kernel-route') kernelKind = (await hasRouteCommand(lab)) ? 'route' : 'ip-deladd';

    for (const s of ['web1', 'web2'] as const) sinks.push(await startSink(lab, s, runId, dir));

    const cpu = opts.generatorCpu ?? 0;
    const pin = cpu < cpus().length ? ['--cpu', String(cpu), '--rt', '50'] : [];
    const warmupMs = opts.warmupMs ?? 1000;
    if (warmupMs > 0) {
      const warm = await lab.exec(
        'client',
        [binary, '--dst', VIP, '--port', String(PORT), '--rate', String(opts.rate), '--run-id', String(runId + 1), '--size', String(opts.size ?? 64), '--duration', String(warmupMs / 1000), ...pin],
        { timeoutMs: warmupMs + 30_000 },
      );
      if (warm.code !== 0) throw new Error(`udp-stream (warm-up) failed: ${warm.stderr.trim() || warm.stdout.trim()}`);
      await sleep(300);
    }
    const before = await linkCounters(lab);
    const viprBefore = ctx.socket ? await viprCounters(lab, ctx.socket) : undefined;

    const genArgs = [binary, '--dst', VIP, '--port', String(PORT), '--rate', String(opts.rate), '--run-id', String(runId), '--size', String(opts.size ?? 64)];
    // an upper bound only: the stream is stopped with SIGTERM once the reroutes are done
    const safetySec = Math.ceil((opts.leadMs + opts.tailMs + opts.reroutes * opts.intervalMs * 4) / 1000) + 60;
    genArgs.push('--duration', String(safetySec));
    genArgs.push(...pin);
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
    await stopChild(gen, 5000, 'SIGTERM');
    await genEnd;
    await Promise.race([new Promise((r) => (gen.stdout && !gen.stdout.readableEnded ? gen.stdout.once('close', r) : r(undefined))), sleep(1000)]);
    let stallProbe: StallProbe | null = null;
    if (probe) {
      await stopChild(probe, 3000, 'SIGTERM');
      await Promise.race([new Promise((r) => (probe!.stdout && !probe!.stdout.readableEnded ? probe!.stdout.once('close', r) : r(undefined))), sleep(1000)]);
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
    const after = await linkCounters(lab);
    const viprAfter = ctx.socket ? await viprCounters(lab, ctx.socket) : undefined;

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
              drops: Object.fromEntries(Object.entries(viprAfter.drops).map(([k, v]) => [k, v - (viprBefore.drops[k] ?? 0)]).filter(([, v]) => v !== 0)),
              routeChangesLogged: ctx.routeChangesLogged?.(),
            }
          : undefined,
      hostBusyPercent: round((100 * (cpuEnd.busy - cpuStart.busy)) / Math.max(1, cpuEnd.total - cpuStart.total), 1),
      loadavg1: round(loadavg1, 2),
      durationMs: Date.now() - t0,
    };
  } finally {
    await Promise.all([...started, ...sinks.map((s) => s.child)].map((c) => stopChild(c, 2000)));
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
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

// ---- the bench: fresh labs, vipr started here -----------------------------------------------

interface BenchVipr {
  child: ChildProcess;
  logs: string[];
  routeChanges(): number;
  events(): string[];
  /** the port backend of its config */
  io: string;
}

async function benchStartVipr(lab: BenchLab, healthChecks: boolean, io?: string): Promise<BenchVipr> {
  let config = healthChecks ? `/run/vipr-lab/${lab.prefix}/vipr.yaml` : configWithoutHealthChecks(lab.prefix, io);
  if (healthChecks && io) {
    const doc = YAML.parseDocument(readFileSync(config, 'utf8'));
    doc.set('io', io);
    config = `/run/vipr-lab/${lab.prefix}/vipr-io.yaml`;
    writeFileSync(config, doc.toString());
  }
  let routeChanges = 0;
  const events: string[] = [];
  const { child, logs } = await startViprIn(lab, config, (line) => {
    if (line.includes('"route change: ')) routeChanges++;
    if (line.includes('"msg":"event: ')) {
      try {
        events.push(String((JSON.parse(line) as { msg?: unknown }).msg));
      } catch {
        events.push(line);
      }
    }
  });
  return { child, logs, routeChanges: () => routeChanges, events: () => events, io: viprIoOf(config) };
}

export interface StallProbe {
  cpu: number;
  priority: number;
  probe_s: number;
  wakeups: number;
  max_late_us: number;
  late_1ms: number;
  late_5ms: number;
  late_10ms?: number;
}

/**
 * How long can a SCHED_FIFO process be kept off each CPU here? (udp-stream
 * --stall-probe: wake up every 200 us, record the lateness.) CPU 0 at the
 * generator's priority, CPU 1 at vipr-rt's, at the same time.
 */
export async function stallProbe(seconds: number): Promise<StallProbe[]> {
  const binary = await buildStream();
  const probes = [
    { cpu: 0, priority: 50 },
    { cpu: 1, priority: 20 },
  ].filter((p) => p.cpu < cpus().length);
  return Promise.all(
    probes.map(async (p) => {
      const r = await run(binary, ['--stall-probe', String(seconds), '--cpu', String(p.cpu), '--rt', String(p.priority)], (seconds + 30) * 1000);
      if (r.code !== 0) throw new Error(`stall probe: ${r.stderr.trim()}`);
      return { ...p, ...(JSON.parse(r.stdout) as Omit<StallProbe, 'cpu' | 'priority'>) };
    }),
  );
}

/**
 * The lab's vipr.yaml without the servers' health checks, written next to it
 * (/run/vipr-lab/P/vipr-nochecks.yaml; gone with the lab). The kernel has no
 * health checks; with them, a machine too busy to answer an HTTP check within
 * lab/vipr.yaml's 50 ms takes servers down and withdraws or moves their routes
 * in the middle of the measurement. Servers without checks are always up.
 */
export function configWithoutHealthChecks(prefix: string, io?: string): string {
  const dir = `/run/vipr-lab/${prefix}`;
  const doc = YAML.parseDocument(readFileSync(join(dir, 'vipr.yaml'), 'utf8'));
  if (io) doc.set('io', io);
  const servers = doc.get('servers');
  if (YAML.isMap(servers)) {
    for (const pair of servers.items) {
      const name = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      doc.deleteIn(['servers', name, 'checks']);
    }
  }
  const out = join(dir, 'vipr-nochecks.yaml');
  writeFileSync(out, `# ${dir}/vipr.yaml without the servers' health checks${io ? `, io: ${io}` : ''} (bench/reroute.ts)\n${doc.toString()}`);
  return out;
}

/** The port backend (`io:`) a vipr config file selects ('pcap' when it does not say). */
export function viprIoOf(configPath: string): string {
  const io = YAML.parse(readFileSync(configPath, 'utf8'))?.io;
  return typeof io === 'string' ? io : 'pcap';
}

/**
 * Before the stream: vipr has resolved web1 and web2 (it ARPs for its servers
 * at start) and, where it health-checks them, finds them up. Throws after 15 s
 * with what `server show` says.
 */
export async function waitViprNeighbors(lab: TrialLab, socket: string): Promise<void> {
  const end = Date.now() + 15_000;
  let last = '';
  while (Date.now() < end) {
    const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'server', 'show']);
    last = r.stdout.trim() || r.stderr.trim();
    try {
      const servers = JSON.parse(r.stdout) as Array<{ name: string; arp?: string; state?: string }>;
      const ready = (n: string) => {
        const s = servers.find((x) => x.name === n);
        return s !== undefined && s.arp === 'reachable' && (s.state === undefined || s.state === 'up');
      };
      if (ready('web1') && ready('web2')) return;
    } catch {
      /* not yet */
    }
    await sleep(200);
  }
  throw new Error(`vipr: web1 and web2 not reachable and up after 15 s: ${last.replace(/\s+/g, ' ').slice(0, 800)}`);
}

/** The kernel router resolves web1 and web2 before the stream, like vipr does at start. */
async function warmKernelNeighbors(lab: TrialLab): Promise<void> {
  await lab.exec('router', ['ping', '-c', '1', '-W', '1', SERVERS.web1]);
  await lab.exec('router', ['ping', '-c', '1', '-W', '1', SERVERS.web2]);
}

async function runMode(mode: Mode, opts: RerouteOptions): Promise<TrialResult> {
  const prefix = `rr${mode.startsWith('vipr') ? 'v' : 'k'}${randomInt(36 ** 4).toString(36).padStart(4, '0')}`;
  const lab = await benchLabUp(prefix, isViprMode(mode) ? [] : ['--kernel-router']);
  let vipr: BenchVipr | undefined;
  try {
    const socket = `/run/vipr-lab/${prefix}/vipr.sock`;
    if (isViprMode(mode)) {
      vipr = await benchStartVipr(lab, opts.healthChecks ?? false, opts.io);
      const vcpu = (opts.generatorCpu ?? 0) === 0 ? 1 : 0;
      if (!(await pinToCpu(vipr.child.pid!, vcpu))) process.stderr.write(`reroute: could not pin vipr to CPU ${vcpu}\n`);
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

// ---- report -----------------------------------------------------------------------------------

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
      case '--modes': {
        modes = (v ?? '').split(',').map((m) => m.trim()).filter(Boolean) as Mode[];
        const bad = modes.filter((m) => !MODES.includes(m));
        if (bad.length || modes.length === 0) throw new Error(`--modes: unknown ${bad.join(', ') || '(none)'}; known: ${MODES.join(', ')}`);
        i++;
        break;
      }
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
  const startedAt = new Date();
  const load = loadavg();
  process.stdout.write(
    `reroute bench: ${opts.reroutes} reroutes of ${VIP_NET} between web1 and web2, one every ${opts.intervalMs} ms, ` +
      `under a ${opts.rate} pps UDP stream (${opts.size} B payload) to ${VIP}:${PORT}; vipr ${opts.healthChecks ? 'with' : 'without'} health checks, io ${opts.io ?? 'as in lab/vipr.yaml'}; ${cpus().length} CPUs, load ${load.map((x) => x.toFixed(2)).join(' ')}\n`,
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
  process.stdout.write(`\n${results.length ? table(results) : '(no results)'}\n`);

  const stamp = startedAt.toISOString().slice(0, 10);
  let file = cli.out ?? join(REPO_ROOT, 'bench/results', `reroute-${stamp}.json`);
  if (!cli.out && existsSync(file)) file = join(REPO_ROOT, 'bench/results', `reroute-${startedAt.toISOString().slice(0, 19).replace(/:/g, '')}.json`);
  mkdirSync(dirname(resolve(file)), { recursive: true });
  const doc = {
    bench: 'reroute',
    startedAt: startedAt.toISOString(),
    host: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgAtStart: load, node: process.version, stallProbe: probes },
    options: opts,
    method:
      'udp-stream (lab/udp-stream.c, SCHED_FIFO on CPU 0) in the client namespace -> router -> udp-sink (lab/udp-sink.mjs) on 192.168.1.33:9999 in web1 and web2; ' +
      'reroutes paced one per interval to a long-lived applier that acks each; vipr pinned to CPU 1 (vipr-rt*: its main thread SCHED_FIFO 20); ' +
      'a warm-up stream (other run id) before each measured one; fresh lab per mode. ' +
      'hostBusyPercent: all CPUs, anyone\'s work (other users of the machine included) during the stream.',
    results,
    failures,
    table: results.length ? table(results) : '',
  };
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  process.stdout.write(`\nresults: ${file}\n`);
  return failures.length ? 1 : 0;
}

runIfMain(import.meta.url, 'reroute', main);
