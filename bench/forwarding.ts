// Forwarding rate and added latency: vipr (ring and pcap backends) against the
// Linux kernel as the router, in the same topology (lab/lab.sh), with the same
// generator, on the same CPUs.
//
//   client ns ── up0 [router ns: kernel or vipr] lan0 ── switch ── web1 (192.168.1.33 on lo)
//
// Modes (a fresh lab each):
//   kernel     lab.sh up --kernel-router: the kernel forwards (ip_forward=1, same routes).
//              On veth the receiver's work runs on the sender's CPU, so the kernel
//              forwards (and bridges, and runs web1's receive) inside trafgen's
//              send calls on CPU 0, and CPU 1 idles: generator-bound.
//   kernel-rps the same with RPS on the router's up0 and lan0 (rps_cpus = CPU 1): the
//              kernel's forwarding and everything downstream move to CPU 1, the split
//              vipr gets (generator on CPU 0, router on CPU 1)
//   ring       vipr with io: ring (native AF_PACKET backend, the default), ip_forward=0
//   pcap       vipr with io: pcap (libpcap through `cap`), ip_forward=0
//   ring-transit  as ring, with the kernel's own copy of transit frames handled the
//              other way round (packet sockets are taps: the kernel also gets every
//              frame vipr forwards, DESIGN.md pitfalls): if the lab config has
//              `kernelTransit: drop` (vipr drops that copy at ingress with nftables),
//              this runs `kernelTransit: keep` (the kernel parses, routes and drops
//              each one, forwarding being off), and the other way round; with a vipr
//              that has no such setting, the bench adds the drop itself (an nftables
//              netdev ingress rule on up0, after the taps). Flat-out rates only.
// Diagnostic variants (only with --modes): ring-nohc (ring, the servers without
// health checks: what the checks on the daemon's event loop cost in latency and
// under load), ring-nohc-busy (that, plus ring: { busyPoll: true }). Flat out and latency.
//
// Per mode:
//   flat out   trafgen (netsniff-ng) in the client namespace on CPU 0
//              (`taskset -c 0 trafgen -o eth0 -i CFG -P 1 --no-sock-mem -Q`), UDP to
//              192.168.1.33:9 with dst MAC = up0, correct IP/UDP checksums, 64-byte and
//              1500-byte frames (60 / 1514 bytes handed to the device, +4 FCS on a wire;
//              IP length 46 / 1500); counters read after a 1 s ramp over --seconds,
//              repeated --repeat times; median, min and max reported.
//   zero loss  highest offered rate of 64-byte frames with no loss in a --trial-seconds
//              trial (a fixed count of frames), by bisection below what the generator
//              sends flat out through its pacing path (the first trial is at 95 % of
//              that: if it passes, the result is generator-bound, ">="). A trial that
//              loses frames is retried once (a shared box can stall vipr's CPU); a trial
//              in which the generator could not hold 95 % of the rate is retried once
//              and otherwise counts as a failure at that rate (reported).
//              Generator: bench/lab/pace.c (the same frame from an AF_PACKET socket on
//              CPU 0, PACKET_QDISC_BYPASS like trafgen; it sleeps between micro-bursts
//              of at most two 50 µs ticks' worth and reports its own stalls), because
//              trafgen cannot pace these rates smoothly: `-b RATEpps` limits the
//              average only (it sends flat out, then sleeps: runs of 1000+ frames back
//              to back at 30 kpps, i.e. a flat-out test in bursts) and `-t GAP` sleeps
//              once per frame, which caps it far below a router's rate on this VM. The
//              kernel mode records both ("calibration": arrival times at web1 of one
//              second per generator at 30 and 100 kpps). --search-generator trafgen
//              runs the search with `trafgen -b RATEpps -n COUNT` anyway.
//   latency    `ping -i 0.001 -c N -s 56 192.168.1.33` from the client on CPU 0 (after a
//              warm-up), per-packet RTTs: p50, p99 and the p99 added over the kernel's.
//   profile    vipr modes: one more flat-out 64-byte run with the daemon under
//              `node --cpu-prof` and `perf record -C 1` (when perf works): the top
//              functions by self time, the top symbols on vipr's CPU.
//
// vipr's data plane thread runs pinned to CPU 1 (`dataplane: { cpu: 1 }` in a copy of
// the lab's config, lab/vipr.yaml as lab.sh writes it); its health-check thread and
// Node's helper threads run on CPU 0, as an operator with a core kept for vipr would
// have it. (Until 2026-11-24 23:30 the whole process was pinned with `taskset -c 1`.)
// The lab's web servers (stand-ins for machines of their own) are pinned to CPU 0
// in every mode, so the router's CPU runs only the router (since 23:40).
// Delivered frames are counted by an nftables netdev ingress rule
// (`udp dport 9 counter drop`) on web1 and on web2 (the VIP's route fails over
// from web1 to web2 when vipr's health checks call web1 down): a kernel counter
// that costs a rule lookup and spares the servers the UDP input and ICMP
// port-unreachable of a closed port. The daemon's health events during each
// trial are recorded. What the kernel does with its copy when vipr forwards
// comes from the router's /proc/net/snmp (Ip InAddrErrors: dropped because
// forwarding is off; nothing when vipr drops that copy at ingress).
//
// The box is shared: before each trial the bench waits (--quiet-wait, default
// 20 s) until processes outside its labs use < --quiet-threshold % (10) of a CPU
// and no other real-time process runs, and records how quiet it was (and the
// other processes' CPU during the trial); trials that ran without a quiet box
// are flagged and counted in the tables.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/forwarding.js [--seconds 5] [--quick] [--repeat 3] [--trial-seconds 3]
//        [--modes kernel,ring,pcap,ring-transit(,ring-nohc,ring-nohc-busy)] [--ping-count 2000]
//        [--search-steps 8] [--search-generator trafgen|pace] [--quiet-wait 20]
//        [--quiet-threshold 10] [--no-search] [--no-latency] [--no-profile] [--no-calibrate] [--out FILE]
// Writes bench/results/forwarding-YYYY-MM-DD[THHMMSS].json and prints tables.
// Needs root, iproute2, nft, trafgen, ping, taskset, cc; perf is optional.

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  compileC, LAB_SH, numberArg, onLines, readyLine, REPO_ROOT, VIPR_CLI,
} from './lab/common.js';

// ---- where things are ---------------------------------------------------------

const PACE_SRC = join(REPO_ROOT, 'bench/lab/pace.c');

const VIP = '192.168.1.33';
const UDP_DPORT = 9;
const UDP_SPORT = 4000;
const UP0_MAC = '02:00:00:00:00:01';
const CLIENT_MAC = '02:00:00:00:00:02';
const CLIENT_IP = '10.0.0.2';
const GEN_CPU = 0;
const VIPR_CPU = 1;

/** Frame sizes: the bench's name for them, and the bytes handed to the device (no FCS). */
const SIZES = [
  { name: 64, frame: 60 },
  { name: 1500, frame: 1514 },
] as const;
type SizeName = (typeof SIZES)[number]['name'];

type Mode = 'kernel' | 'kernel-rps' | 'ring' | 'pcap' | 'ring-transit' | 'ring-nohc' | 'ring-nohc-busy';
const MODES: readonly Mode[] = ['kernel', 'kernel-rps', 'ring', 'pcap', 'ring-transit', 'ring-nohc', 'ring-nohc-busy'];
/** run unless --modes says otherwise */
const DEFAULT_MODES: readonly Mode[] = ['kernel', 'kernel-rps', 'ring', 'pcap', 'ring-transit'];
const MODE_LABEL: Record<Mode, string> = {
  kernel: 'kernel',
  'kernel-rps': 'kernel, RPS to CPU 1',
  ring: 'vipr ring',
  pcap: 'vipr pcap',
  'ring-transit': 'vipr ring, kernel transit copy the other way', // set per lab
  'ring-nohc': 'vipr ring, no health checks',
  'ring-nohc-busy': 'vipr ring, no h.c., busyPoll',
};
/** the full set (flat out, zero-loss search, latency, profile) for these; the variants measure what they are about */
const MODE_PARTS: Record<Mode, { search: boolean; latency: boolean; profile: boolean }> = {
  kernel: { search: true, latency: true, profile: false },
  'kernel-rps': { search: true, latency: true, profile: false },
  ring: { search: true, latency: true, profile: true },
  pcap: { search: true, latency: true, profile: true },
  'ring-transit': { search: false, latency: false, profile: false },
  'ring-nohc': { search: false, latency: true, profile: false },
  'ring-nohc-busy': { search: false, latency: true, profile: false },
};
const isVipr = (m: Mode) => m !== 'kernel' && m !== 'kernel-rps';

// ---- small process helpers -------------------------------------------------------

interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  /** wall time the command ran, ms, and its midpoint (performance.now) */
  ms: number;
  mid: number;
}

function run(file: string, args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  const t0 = performance.now();
  return new Promise((resolvePromise) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const t1 = performance.now();
      let code = 0;
      if (err) {
        const e = err as Error & { code?: number | string | null; killed?: boolean };
        code = e.killed ? 124 : typeof e.code === 'number' ? e.code : 1;
        if (!stderr && typeof e.code === 'string') stderr = e.message;
      }
      resolvePromise({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), ms: t1 - t0, mid: (t0 + t1) / 2 });
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    child.once('error', () => r());
  });
}

function streamClosed(child: ChildProcess): Promise<unknown> {
  const s = child.stdout;
  return Promise.race([new Promise((r) => (s && !s.readableEnded ? s.once('close', r) : r(undefined))), sleep(1000)]);
}

/** Children started here run in their own process group (detached), so a signal reaches their forks too (trafgen forks). */
const liveChildren = new Set<ChildProcess>();

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* gone */
    }
  }
}

/** `signal` to the child's group, then SIGKILL after graceMs; resolves once it exited. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const done = exited(child);
    signalGroup(child, signal);
    let t: NodeJS.Timeout | undefined;
    const late = await Promise.race([done.then(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(t);
    if (late) {
      signalGroup(child, 'SIGKILL');
      await Promise.race([done, sleep(2000)]);
    }
  }
  liveChildren.delete(child);
}

// ---- labs ----------------------------------------------------------------------

type LabNode = 'client' | 'router' | 'switch' | 'web1' | 'web2';

interface Lab {
  prefix: string;
  mode: Mode;
  /** ring-transit without vipr support: the bench's own nft drop on up0 (its counter is read) */
  benchTransitDrop: boolean;
  ns(node: LabNode): string;
  exec(node: LabNode, cmd: string[], timeoutMs?: number): Promise<ExecResult>;
  spawn(node: LabNode, cmd: string[]): ChildProcess;
  down(): Promise<void>;
}

const liveLabs = new Set<string>();
const tempDirs = new Set<string>();

/** Every child killed, every lab down, every temp dir removed: on exit, on a signal, on a crash. */
function teardownSync(): void {
  for (const c of liveChildren) signalGroup(c, 'SIGKILL');
  liveChildren.clear();
  for (const prefix of liveLabs) {
    try {
      execFileSync('bash', [LAB_SH, 'down', '--prefix', prefix], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* best effort */
    }
  }
  liveLabs.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

async function labUp(mode: Mode): Promise<Lab> {
  const letter = { kernel: 'k', 'kernel-rps': 's', ring: 'r', pcap: 'p', 'ring-transit': 't', 'ring-nohc': 'n', 'ring-nohc-busy': 'b' }[mode];
  const prefix = `fw${letter}${randomInt(36 ** 4).toString(36).padStart(4, '0')}`;
  liveLabs.add(prefix); // before `up`: a half-built lab is removed too
  const up = await run('bash', [LAB_SH, 'up', '--prefix', prefix, ...(isVipr(mode) ? [] : ['--kernel-router'])], 120_000);
  if (up.code !== 0) {
    await run('bash', [LAB_SH, 'down', '--prefix', prefix], 60_000);
    liveLabs.delete(prefix);
    throw new Error(`lab up ${prefix} failed: ${(up.stderr.trim() || up.stdout.trim()).split('\n').pop()}`);
  }
  await pinWebServers(prefix);
  const procs = new Set<ChildProcess>();
  let downing: Promise<void> | undefined;
  const ns = (node: LabNode) => `${prefix}-${node}`;
  return {
    prefix,
    mode,
    benchTransitDrop: false,
    ns,
    exec: (node, cmd, timeoutMs = 30_000) => run('ip', ['netns', 'exec', ns(node), ...cmd], timeoutMs),
    spawn: (node, cmd) => {
      const child = spawn('ip', ['netns', 'exec', ns(node), ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: REPO_ROOT });
      procs.add(child);
      liveChildren.add(child);
      child.once('exit', () => {
        procs.delete(child);
        liveChildren.delete(child);
      });
      child.once('error', () => {
        procs.delete(child);
        liveChildren.delete(child);
      });
      return child;
    },
    down: () =>
      (downing ??= (async () => {
        await Promise.all([...procs].map((p) => stopChild(p, 'SIGTERM', 2000)));
        const d = await run('bash', [LAB_SH, 'down', '--prefix', prefix], 60_000);
        liveLabs.delete(prefix);
        if (d.code !== 0) throw new Error(`lab down ${prefix} failed: ${d.stderr.trim()}`);
      })()),
  };
}

/**
 * The lab's web servers stand for machines of their own: their processes
 * (the HTTP servers answering vipr's health checks) go to the generator's
 * CPU, so that in every mode the router's CPU runs only the router. (Left
 * where the scheduler put them, their answers to 80 checks/s preempted vipr's
 * data plane thread and tripled its p99 latency: 225–691 µs against
 * 88–121 µs pinned, in a same-box check at 23:35.)
 */
async function pinWebServers(prefix: string): Promise<void> {
  for (const web of ['web1', 'web2', 'web3', 'web4']) {
    const pids = await run('ip', ['netns', 'pids', `${prefix}-${web}`]);
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      const r = await run('taskset', ['-a', '-p', '-c', String(GEN_CPU), pid]);
      if (r.code !== 0) throw new Error(`taskset -a -p -c ${GEN_CPU} ${pid} (${web}): ${r.stderr.trim()}`);
    }
  }
}

/** nftables in a lab namespace, from a ruleset text. */
async function nft(lab: Lab, node: LabNode, ruleset: string): Promise<void> {
  const dir = [...tempDirs][0] ?? tmpdir();
  const file = join(dir, `nft-${lab.prefix}-${node}-${randomInt(1e9)}.nft`);
  writeFileSync(file, ruleset);
  const r = await lab.exec(node, ['nft', '-f', file]);
  rmSync(file, { force: true });
  if (r.code !== 0) throw new Error(`nft in ${lab.ns(node)}: ${r.stderr.trim()}`);
}

const SINK_RULES = `table netdev vbench {
  chain sink {
    type filter hook ingress device "eth0" priority 0;
    udp dport ${UDP_DPORT} counter drop
  }
}
`;

const TRANSIT_DROP_RULES = `table netdev vbench {
  chain transit {
    type filter hook ingress device "up0" priority 0;
    ip daddr 192.168.1.0/24 ip daddr != 192.168.1.1 counter drop
  }
}
`;

// ---- the daemon ---------------------------------------------------------------------

interface ViprEvent {
  /** performance.now() when the line arrived */
  t: number;
  msg: string;
}

interface Vipr {
  child: ChildProcess;
  pid: number;
  config: string;
  command: string[];
  logs: string[];
  /** the daemon's `event: ...` log lines (health state changes, failovers, failbacks) */
  events: ViprEvent[];
}

/** The daemon's events between two instants (performance.now()). */
function eventsBetween(vipr: Vipr | undefined, from: number, to: number): string[] {
  return vipr ? vipr.events.filter((e) => e.t >= from && e.t <= to).map((e) => e.msg) : [];
}

/**
 * The daemon's config: a copy of the lab's (lab.sh writes it) with the data
 * plane thread pinned to VIPR_CPU (`dataplane.cpu`), and for the variants
 * io: pcap, no health checks, or ring busy polling.
 */
function configFor(lab: Lab): string {
  const base = `/run/vipr-lab/${lab.prefix}/vipr.yaml`;
  let text = readFileSync(base, 'utf8');
  const change = (re: RegExp, to: string, what: string) => {
    if (!re.test(text)) throw new Error(`${base}: cannot ${what} (the lab config changed?)`);
    text = text.replace(re, to);
  };
  change(/^ {2}# cpu: 1$/m, `  cpu: ${VIPR_CPU}`, 'pin the data plane thread');
  if (lab.mode === 'pcap') change(/^io: ring$/m, 'io: pcap', 'switch io to pcap');
  if (lab.mode === 'ring-nohc' || lab.mode === 'ring-nohc-busy') change(/, checks: \[[^\]]*\] \}/g, ' }', 'remove the health checks');
  if (lab.mode === 'ring-nohc-busy') change(/^io: ring$/m, 'io: ring\nring: { busyPoll: true }', 'turn on busy polling');
  if (lab.mode === 'ring-transit' && !lab.benchTransitDrop) {
    const m = /^kernelTransit: (drop|keep)\s*$/m.exec(text);
    if (!m) throw new Error(`${base}: no kernelTransit line`);
    change(/^kernelTransit: (drop|keep)\s*$/m, `kernelTransit: ${m[1] === 'drop' ? 'keep' : 'drop'}`, 'flip kernelTransit');
  }
  const out = `/run/vipr-lab/${lab.prefix}/vipr-${lab.mode}.yaml`;
  writeFileSync(out, text);
  return out;
}

async function startVipr(lab: Lab, nodeFlags: string[] = []): Promise<Vipr> {
  const config = configFor(lab);
  const command = [process.execPath, ...nodeFlags, VIPR_CLI, 'run', '--config', config];
  const child = lab.spawn('router', command);
  const logs: string[] = [];
  const events: ViprEvent[] = [];
  const ready = readyLine(child, (line) => line.includes('"msg":"ready:'), 20_000);
  const onLine = (line: string) => {
    if (logs.length < 2000) logs.push(line);
    if (line.includes('"msg":"event: ')) {
      try {
        events.push({ t: performance.now(), msg: String((JSON.parse(line) as { msg?: unknown }).msg) });
      } catch {
        events.push({ t: performance.now(), msg: line.slice(0, 300) });
      }
    }
    ready.line(line);
  };
  onLines(child.stdout, onLine);
  onLines(child.stderr, onLine);
  const outcome = await ready.outcome;
  if (outcome !== 'ok') {
    await stopChild(child, 'SIGKILL', 1000);
    throw new Error(`vipr (${lab.mode}) ${outcome === 'exited' ? 'exited' : 'not ready after 20 s'}:\n${logs.slice(-15).join('\n')}`);
  }
  const vipr: Vipr = { child, pid: child.pid!, config, command: ['ip', 'netns', 'exec', lab.ns('router'), ...command], logs, events };
  await waitNeighbors(lab, vipr);
  return vipr;
}

async function ctl(lab: Lab, args: string[]): Promise<ExecResult> {
  return lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', `/run/vipr-lab/${lab.prefix}/vipr.sock`, ...args]);
}

/** vipr has resolved web1 and finds it up (it ARPs for its servers and health-checks them at start). */
async function waitNeighbors(lab: Lab, vipr: Vipr): Promise<void> {
  const end = Date.now() + 15_000;
  let last = '';
  while (Date.now() < end) {
    if (vipr.child.exitCode !== null) throw new Error(`vipr exited:\n${vipr.logs.slice(-10).join('\n')}`);
    const r = await ctl(lab, ['server', 'show']);
    last = r.stdout.trim() || r.stderr.trim();
    try {
      const servers = JSON.parse(r.stdout) as Array<{ name: string; arp?: string; state?: string }>;
      const web1 = servers.find((s) => s.name === 'web1');
      if (web1 && web1.arp === 'reachable' && (web1.state === undefined || web1.state === 'up')) return;
    } catch {
      /* not yet */
    }
    await sleep(200);
  }
  throw new Error(`vipr: web1 not reachable and up after 15 s: ${last.replace(/\s+/g, ' ').slice(0, 500)}`);
}

async function stopVipr(vipr: Vipr | undefined): Promise<void> {
  if (!vipr) return;
  await stopChild(vipr.child, 'SIGTERM', 8000);
  await streamClosed(vipr.child);
}

// ---- counters ---------------------------------------------------------------------------

interface Reading<T> {
  value: T;
  /** performance.now() midpoint of the read */
  t: number;
}

interface Link {
  rx: number;
  tx: number;
  rxDropped: number;
  txDropped: number;
}

async function readLink(lab: Lab, node: LabNode, ifname: string): Promise<Reading<Link>> {
  const r = await run('ip', ['-n', lab.ns(node), '-s', '-j', 'link', 'show', 'dev', ifname], 10_000);
  if (r.code !== 0) throw new Error(`ip -n ${lab.ns(node)} link show ${ifname}: ${r.stderr.trim()}`);
  const [l] = JSON.parse(r.stdout) as Array<{ stats64: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }>;
  return { value: { rx: l.stats64.rx.packets, tx: l.stats64.tx.packets, rxDropped: l.stats64.rx.dropped, txDropped: l.stats64.tx.dropped }, t: r.mid };
}

async function readNftCounter(lab: Lab, node: LabNode): Promise<Reading<number>> {
  const r = await lab.exec(node, ['nft', 'list', 'table', 'netdev', 'vbench'], 10_000);
  const m = /counter packets (\d+) bytes (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`nft counter in ${lab.ns(node)}: ${r.stderr.trim() || r.stdout.trim()}`);
  return { value: Number(m[1]), t: r.mid };
}

async function readSnmp(lab: Lab): Promise<Record<string, number>> {
  const r = await lab.exec('router', ['cat', '/proc/net/snmp'], 10_000);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  if (lines.length < 2) return {};
  const keys = lines[0].split(/\s+/).slice(1);
  const vals = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]]));
}

interface ViprStats {
  up0Rx: number;
  lan0Tx: number;
  forwarded: number;
  drops: Record<string, number>;
  batches: number;
}

async function readViprStats(lab: Lab): Promise<ViprStats | undefined> {
  const r = await ctl(lab, ['stats']);
  if (r.code !== 0) return undefined;
  try {
    const s = JSON.parse(r.stdout) as { batches: number; drops: Record<string, number>; ports: Record<string, { rxPackets: number; txPackets: number; forwardedPackets: number }> };
    return { up0Rx: s.ports.up0?.rxPackets ?? 0, lan0Tx: s.ports.lan0?.txPackets ?? 0, forwarded: s.ports.lan0?.forwardedPackets ?? 0, drops: s.drops, batches: s.batches };
  } catch {
    return undefined;
  }
}

/** The few counters read at the edges of a measured window (cheap commands only: no node start-up inside the window). */
interface Inner {
  client: Reading<Link>;
  up0: Reading<Link>;
  lan0: Reading<Link>;
  web1: Reading<Link>;
  /** frames counted by the sinks of web1 and web2 together (the VIP's route fails over from web1 to web2) */
  delivered: Reading<number>;
  /** of those, at web2 */
  deliveredWeb2: number;
  routerDrop?: Reading<number>;
}

async function readInner(lab: Lab): Promise<Inner> {
  const [client, up0, lan0, web1, d1, d2, routerDrop] = await Promise.all([
    readLink(lab, 'client', 'eth0'),
    readLink(lab, 'router', 'up0'),
    readLink(lab, 'router', 'lan0'),
    readLink(lab, 'web1', 'eth0'),
    readNftCounter(lab, 'web1'),
    readNftCounter(lab, 'web2'),
    lab.benchTransitDrop ? readNftCounter(lab, 'router') : Promise.resolve(undefined),
  ]);
  const delivered = { value: d1.value + d2.value, t: (d1.t + d2.t) / 2 };
  return { client, up0, lan0, web1, delivered, deliveredWeb2: d2.value, routerDrop };
}

/** Everything, before and after a trial (outside the measured window). */
interface Outer extends Inner {
  snmp: Record<string, number>;
  vipr?: ViprStats;
}

async function readOuter(lab: Lab): Promise<Outer> {
  const [inner, snmp, vipr] = await Promise.all([readInner(lab), readSnmp(lab), isVipr(lab.mode) ? readViprStats(lab) : Promise.resolve(undefined)]);
  return { ...inner, snmp, vipr };
}

// ---- CPU accounting (read in-process: nothing spawned inside a window) ---------------------

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

type CpuLine = { user: number; nice: number; system: number; idle: number; iowait: number; irq: number; softirq: number; steal: number };

function readCpuLines(): Record<string, CpuLine> {
  const out: Record<string, CpuLine> = {};
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = { user: f[0], nice: f[1], system: f[2], idle: f[3], iowait: f[4], irq: f[5], softirq: f[6], steal: f[7] ?? 0 };
  }
  return out;
}

interface ProcInfo {
  ticks: number;
  kthread: boolean;
  ours: boolean;
  /** SCHED_FIFO or SCHED_RR: runs ahead of every normal process (the generator's and vipr's) */
  realtime: boolean;
  comm: string;
}

interface ProcTimes {
  procs: Map<number, ProcInfo>;
}

function scanProcs(ourNetns: Set<string>): ProcTimes {
  const procs = new Map<number, ProcInfo>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // f[0] = state (field 3); flags = field 9 -> f[6]; utime 14 -> f[11]; stime 15 -> f[12]
      const flags = Number(f[6]);
      const ticks = Number(f[11]) + Number(f[12]);
      const policy = Number(f[38]); // field 41
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const kthread = (flags & 0x00200000) !== 0;
      let ours = pid === process.pid;
      if (!kthread && !ours) {
        try {
          ours = ourNetns.has(readlinkSync(`/proc/${pid}/ns/net`));
        } catch {
          /* gone or no access */
        }
      }
      procs.set(pid, { ticks, kthread, ours, realtime: policy === 1 || policy === 2, comm });
    } catch {
      /* exited meanwhile */
    }
  }
  return { procs };
}

function procTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

interface CpuSnapshot {
  t: number;
  lines: Record<string, CpuLine>;
  scan: ProcTimes;
  vipr?: number;
}

function cpuSnapshot(ourNetns: Set<string>, viprPid?: number): CpuSnapshot {
  return { t: performance.now(), lines: readCpuLines(), scan: scanProcs(ourNetns), vipr: viprPid ? procTicks(viprPid) : undefined };
}

interface CpuUse {
  /** per CPU: busy % and its parts (user, system, softirq; % of that CPU) */
  perCpu: Record<string, { busy: number; user: number; system: number; softirq: number; steal: number }>;
  /** vipr's process: % of one CPU */
  viprPercent: number | null;
  /** processes outside this bench's labs (other work on the box): % of one CPU */
  otherProcessesPercent: number;
  /** kernel threads (ksoftirqd, kworkers; anyone's): % of one CPU */
  kernelThreadsPercent: number;
}

function cpuUse(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const perCpu: CpuUse['perCpu'] = {};
  for (const k of Object.keys(b.lines)) {
    if (k === 'cpu' || !a.lines[k]) continue;
    const x = a.lines[k];
    const y = b.lines[k];
    const d = (f: keyof CpuLine) => y[f] - x[f];
    const total = (Object.keys(y) as Array<keyof CpuLine>).reduce((s, f) => s + d(f), 0) || 1;
    const pct = (v: number) => round((100 * v) / total, 1);
    perCpu[k] = { busy: pct(total - d('idle') - d('iowait')), user: pct(d('user') + d('nice')), system: pct(d('system')), softirq: pct(d('softirq') + d('irq')), steal: pct(d('steal')) };
  }
  const seconds = (b.t - a.t) / 1000;
  const pctOfCpu = (ticks: number) => round((100 * ticks) / CLK_TCK / Math.max(seconds, 1e-3), 1);
  let other = 0;
  let kthreads = 0;
  for (const [pid, p] of b.scan.procs) {
    if (p.ours) continue;
    const before = a.scan.procs.get(pid);
    const d = p.ticks - (before?.ticks ?? 0);
    if (d <= 0) continue;
    if (p.kthread) kthreads += d;
    else other += d;
  }
  return {
    perCpu,
    viprPercent: a.vipr !== undefined && b.vipr !== undefined ? pctOfCpu(b.vipr - a.vipr) : null,
    otherProcessesPercent: pctOfCpu(other),
    kernelThreadsPercent: pctOfCpu(kthreads),
  };
}

interface Quiet {
  /** ms waited for the box to calm down before the trial */
  waitedMs: number;
  /** other processes' CPU (% of one CPU) over the last look */
  otherPercent: number;
  /** other real-time processes that ran during the last look (they preempt the generator and vipr) */
  otherRealtime: string[];
  quiet: boolean;
}

/**
 * Wait (up to maxMs) until processes outside this bench's labs use less than
 * thresholdPercent of a CPU over a 0.5 s look and no other real-time process
 * ran: the box is shared, and other work on CPU 0 or 1 changes what is measured.
 * Kernel threads are not counted. Runs the trial anyway after maxMs (flagged).
 */
async function waitQuiet(netns: Set<string>, maxMs: number, thresholdPercent: number): Promise<Quiet> {
  const t0 = Date.now();
  for (;;) {
    const a = { t: performance.now(), scan: scanProcs(netns) };
    await sleep(500);
    const b = { t: performance.now(), scan: scanProcs(netns) };
    let other = 0;
    const rt = new Set<string>();
    for (const [pid, p] of b.scan.procs) {
      if (p.ours || p.kthread) continue;
      const d = p.ticks - (a.scan.procs.get(pid)?.ticks ?? 0);
      if (d <= 0) continue;
      other += d;
      if (p.realtime) rt.add(`${pid}:${p.comm}`);
    }
    const otherPercent = round((100 * other) / CLK_TCK / ((b.t - a.t) / 1000), 1);
    const quiet = otherPercent < thresholdPercent && rt.size === 0;
    const waitedMs = Date.now() - t0;
    if (quiet || waitedMs >= maxMs) return { waitedMs, otherPercent, otherRealtime: [...rt], quiet };
  }
}

function labNetns(lab: Lab): Set<string> {
  const out = new Set<string>();
  for (const n of ['client', 'router', 'switch', 'web1', 'web2', 'web3', 'web4']) {
    try {
      out.add(`net:[${statSync(`/run/netns/${lab.prefix}-${n}`).ino}]`);
    } catch {
      /* not there */
    }
  }
  return out;
}

// ---- generators ------------------------------------------------------------------------

function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function trafgenConfig(frame: number): string {
  const fill = frame - 14 - 20 - 8;
  return `{ eth(da=${UP0_MAC}, sa=${CLIENT_MAC}, type=0x0800), ipv4(saddr=${CLIENT_IP}, daddr=${VIP}, ttl=64), udp(sport=${UDP_SPORT}, dport=${UDP_DPORT}), fill(0x00, ${fill}) }\n`;
}

function trafgenCommand(cfg: string, extra: string[] = []): string[] {
  // -P 1: one sender process; --no-sock-mem: leave the host's socket memory sysctls alone;
  // -Q: leave IRQ affinity alone (veth has none). trafgen bypasses the qdisc by default.
  return ['taskset', '-c', String(GEN_CPU), 'trafgen', '-o', 'eth0', '-i', cfg, '-P', '1', '--no-sock-mem', '-Q', ...extra];
}

/**
 * trafgen flat out. Its TX-ring path gives up on EAGAIN ("Flushing TX_RING
 * failed"), which a veth returns as backpressure when the receiving CPU's
 * backlog is full; that happens with RPS (kernel-rps), so that mode sends with
 * `-t 0` (one sendto per frame, no gap: trafgen's own flat-out slow path, which
 * carries on), the others with the TX ring.
 */
function flatOutCommand(ctx: Ctx, size: SizeName): string[] {
  return trafgenCommand(ctx.cfg[size], ctx.lab.mode === 'kernel-rps' ? ['-t', '0'] : []);
}

/** Compile bench/lab/pace.c (cc -O2) into the temp dir once; the file name carries the source's hash. */
function buildPace(): Promise<string> {
  return compileC('bench-pace', 'bench/lab/pace.c', readFileSync(PACE_SRC));
}

interface PaceReport {
  sent: number;
  elapsed_ns: number;
  rate: number;
  target_rate: number;
  errors: number;
  last_error: string;
  resyncs: number;
  stalled_ms: number;
  max_late_us: number;
}

function paceCommand(binary: string, frame: number, rate: number, opts: { count?: number; seconds?: number }): string[] {
  return [
    'taskset', '-c', String(GEN_CPU), binary, '--if', 'eth0', '--dst-mac', UP0_MAC, '--src-mac', CLIENT_MAC, '--src-ip', CLIENT_IP, '--dst-ip', VIP,
    '--sport', String(UDP_SPORT), '--dport', String(UDP_DPORT), '--frame', String(frame), '--rate', String(Math.round(rate)), '--cpu', String(GEN_CPU),
    ...(opts.count ? ['--count', String(opts.count)] : []), ...(opts.seconds ? ['--seconds', String(opts.seconds)] : []),
  ];
}

async function runPace(lab: Lab, cmd: string[], timeoutMs: number): Promise<PaceReport> {
  const r = await lab.exec('client', cmd, timeoutMs);
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || !line) throw new Error(`pace failed (${r.code}): ${r.stderr.trim()}`);
  return JSON.parse(line) as PaceReport;
}

type SearchGenerator = 'trafgen' | 'pace';

/** What a paced run sent, how fast, and (pace only) how often the generator itself stalled. */
interface PacedRun {
  sent: number;
  achievedPps: number;
  resyncs: number | null;
  maxLateUs: number | null;
}

/** trafgen's own summary: "N packets outgoing" and "S sec, U usec on CPU0 (N packets)". */
function parseTrafgenSummary(out: string): { packets: number; seconds: number } | undefined {
  const m = /(\d+) sec, (\d+) usec on CPU\d+ \((\d+) packets\)/.exec(out);
  if (!m) return undefined;
  return { packets: Number(m[3]), seconds: Number(m[1]) + Number(m[2]) / 1e6 };
}

/** `count` 64-byte frames at `rate` frames/s: trafgen -b RATEpps -n COUNT (its shaper), or pace --rate. */
async function pacedRun(ctx: Ctx, gen: SearchGenerator, rate: number, count: number, timeoutMs: number): Promise<PacedRun> {
  if (gen === 'pace') {
    const rep = await runPace(ctx.lab, paceCommand(await buildPace(), 60, rate, { count }), timeoutMs);
    return { sent: rep.sent, achievedPps: rep.rate, resyncs: rep.resyncs, maxLateUs: rep.max_late_us };
  }
  const r = await ctx.lab.exec('client', trafgenCommand(ctx.cfg[64], ['-b', `${Math.round(rate)}pps`, '-n', String(count)]), timeoutMs);
  const sum = parseTrafgenSummary(r.stdout);
  if (!sum) throw new Error(`trafgen -b ${Math.round(rate)}pps -n ${count} printed no summary (${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
  return { sent: sum.packets, achievedPps: sum.packets / Math.max(sum.seconds, 1e-6), resyncs: null, maxLateUs: null };
}

/** The most a generator can send through this lab with its pacing machinery, 2 s flat out (the better of two runs). */
async function generatorCeiling(ctx: Ctx, gen: SearchGenerator): Promise<number> {
  let best = 0;
  for (let k = 0; k < 2; k++) {
    if (gen === 'pace') {
      const c = await runPace(ctx.lab, paceCommand(await buildPace(), 60, 0, { seconds: 2 }), 30_000);
      best = Math.max(best, c.rate);
    } else {
      // a rate no shaper here can reach: it never sleeps, i.e. trafgen's paced (sendto) path flat out
      const child = ctx.lab.spawn('client', trafgenCommand(ctx.cfg[64], ['-b', '20000000pps']));
      let out = '';
      child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
      await sleep(2000);
      await stopChild(child, 'SIGINT', 5000);
      await streamClosed(child);
      const sum = parseTrafgenSummary(out);
      if (sum) best = Math.max(best, sum.packets / Math.max(sum.seconds, 1e-6));
    }
    await sleep(300);
  }
  return round(best);
}

// ---- the measurements ---------------------------------------------------------------------

interface Ctx {
  lab: Lab;
  vipr?: Vipr;
  dir: string;
  netns: Set<string>;
  cfg: Record<SizeName, string>;
  commands: Record<string, string[]>;
  quietMaxMs: number;
  quietThreshold: number;
}

interface FlatTrial {
  size: SizeName;
  windowSeconds: number;
  /** frames/s over the window */
  offeredPps: number;
  routerRxPps: number;
  deliveredPps: number;
  deliveredMbps: number;
  /** the whole run, ramp and drain included (frames) */
  totals: {
    clientTx: number;
    up0Rx: number;
    up0RxDropped: number;
    lan0Tx: number;
    web1Rx: number;
    delivered: number;
    /** of those, at web2 (the VIP's backup: vipr moved the route) */
    deliveredAtWeb2: number;
    trafgenReported: number | null;
    /** vipr modes: frames vipr read on up0, forwarded to lan0, and its drops */
    viprRx?: number;
    viprForwarded?: number;
    viprDrops?: Record<string, number>;
    /** kernel up0 rx - vipr up0 rx: never read by vipr (its socket buffer / ring was full) */
    lostAtViprPort?: number;
    /** ring-drop: frames the nft rule on up0 dropped after the taps */
    transitDroppedByNft?: number;
  };
  /** router's kernel IP counters over the run (Ip: InReceives, InAddrErrors, ForwDatagrams, ...) */
  routerKernel: Record<string, number>;
  cpu: CpuUse;
  loadavg1: number;
  /** how quiet the box was before the trial (and how long we waited for it) */
  quiet: Quiet;
  /** vipr modes: the daemon's health/failover events during the trial */
  healthEvents: string[];
}

function linkDelta(a: Reading<Link>, b: Reading<Link>) {
  return { rx: b.value.rx - a.value.rx, tx: b.value.tx - a.value.tx, rxDropped: b.value.rxDropped - a.value.rxDropped, txDropped: b.value.txDropped - a.value.txDropped, seconds: (b.t - a.t) / 1000 };
}

function snmpDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const keys = ['InReceives', 'InHdrErrors', 'InAddrErrors', 'ForwDatagrams', 'InDiscards', 'InDelivers', 'OutRequests', 'OutDiscards', 'OutNoRoutes'];
  return Object.fromEntries(keys.filter((k) => k in b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}

function dropsDelta(a?: Record<string, number>, b?: Record<string, number>): Record<string, number> {
  if (!a || !b) return {};
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => v !== 0));
}

/** trafgen flat out for rampMs + seconds; counters over the `seconds` window. */
async function flatOut(ctx: Ctx, size: SizeName, seconds: number): Promise<FlatTrial> {
  const { lab } = ctx;
  const quiet = await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const A = await readOuter(lab);
  const tStart = performance.now();
  const gen = lab.spawn('client', flatOutCommand(ctx, size));
  let out = '';
  let err = '';
  gen.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
  gen.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
  try {
    await sleep(1000);
    if (gen.exitCode !== null) throw new Error(`trafgen exited early: ${err.trim() || out.trim()}`);
    const cpuB = cpuSnapshot(ctx.netns, ctx.vipr?.pid);
    const B = await readInner(lab);
    await sleep(seconds * 1000);
    const C = await readInner(lab);
    const cpuC = cpuSnapshot(ctx.netns, ctx.vipr?.pid);
    const load1 = loadavg()[0];
    await stopChild(gen, 'SIGINT', 5000);
    await streamClosed(gen);
    await sleep(300);
    const D = await readOuter(lab);
    const m = /(\d+) packets outgoing/.exec(out);
    const frame = SIZES.find((s) => s.name === size)!.frame;
    const dDel = C.delivered.value - B.delivered.value;
    const dDelS = (C.delivered.t - B.delivered.t) / 1000;
    const client = linkDelta(B.client, C.client);
    const up0 = linkDelta(B.up0, C.up0);
    const totals: FlatTrial['totals'] = {
      clientTx: D.client.value.tx - A.client.value.tx,
      up0Rx: D.up0.value.rx - A.up0.value.rx,
      up0RxDropped: D.up0.value.rxDropped - A.up0.value.rxDropped,
      lan0Tx: D.lan0.value.tx - A.lan0.value.tx,
      web1Rx: D.web1.value.rx - A.web1.value.rx,
      delivered: D.delivered.value - A.delivered.value,
      deliveredAtWeb2: D.deliveredWeb2 - A.deliveredWeb2,
      trafgenReported: m ? Number(m[1]) : null,
    };
    if (A.vipr && D.vipr) {
      totals.viprRx = D.vipr.up0Rx - A.vipr.up0Rx;
      totals.viprForwarded = D.vipr.forwarded - A.vipr.forwarded;
      totals.viprDrops = dropsDelta(A.vipr.drops, D.vipr.drops);
      totals.lostAtViprPort = Math.max(0, totals.up0Rx - totals.viprRx);
    }
    if (A.routerDrop && D.routerDrop) totals.transitDroppedByNft = D.routerDrop.value - A.routerDrop.value;
    return {
      size,
      windowSeconds: round(dDelS, 3),
      offeredPps: round(client.tx / client.seconds),
      routerRxPps: round(up0.rx / up0.seconds),
      deliveredPps: round(dDel / dDelS),
      deliveredMbps: round(((dDel / dDelS) * (frame + 4) * 8) / 1e6, 1),
      totals,
      routerKernel: snmpDelta(A.snmp, D.snmp),
      cpu: cpuUse(cpuB, cpuC),
      loadavg1: round(load1, 2),
      quiet,
      healthEvents: eventsBetween(ctx.vipr, tStart, performance.now()),
    };
  } finally {
    await stopChild(gen, 'SIGKILL', 1000);
  }
}

interface PacedTrial {
  targetPps: number;
  achievedPps: number;
  sent: number;
  delivered: number;
  lost: number;
  /** the generator held >= 95 % of the target */
  generatorHeld: boolean;
  /** pace only: how often the generator was late by more than two ticks, and the worst, µs */
  resyncs: number | null;
  generatorMaxLateUs: number | null;
  lostAtViprPort?: number;
  viprDrops?: Record<string, number>;
  otherProcessesPercent: number;
  viprPercent: number | null;
  quiet: Quiet;
  deliveredAtWeb2: number;
  healthEvents: string[];
}

async function pacedTrial(ctx: Ctx, gen: SearchGenerator, rate: number, seconds: number): Promise<PacedTrial> {
  const { lab } = ctx;
  const count = Math.max(1, Math.round(rate * seconds));
  const quiet = await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const A = await readOuter(lab);
  const tStart = performance.now();
  const cpuA = cpuSnapshot(ctx.netns, ctx.vipr?.pid);
  const rep = await pacedRun(ctx, gen, rate, count, (seconds * 4 + 20) * 1000);
  const cpuB = cpuSnapshot(ctx.netns, ctx.vipr?.pid);
  await sleep(300);
  const D = await readOuter(lab);
  const delivered = D.delivered.value - A.delivered.value;
  const use = cpuUse(cpuA, cpuB);
  const t: PacedTrial = {
    targetPps: Math.round(rate),
    achievedPps: round(rep.achievedPps),
    sent: rep.sent,
    delivered,
    lost: rep.sent - delivered,
    generatorHeld: rep.achievedPps >= 0.95 * rate,
    resyncs: rep.resyncs,
    generatorMaxLateUs: rep.maxLateUs,
    otherProcessesPercent: use.otherProcessesPercent,
    viprPercent: use.viprPercent,
    quiet,
    deliveredAtWeb2: D.deliveredWeb2 - A.deliveredWeb2,
    healthEvents: eventsBetween(ctx.vipr, tStart, performance.now()),
  };
  if (A.vipr && D.vipr) {
    t.lostAtViprPort = Math.max(0, D.up0.value.rx - A.up0.value.rx - (D.vipr.up0Rx - A.vipr.up0Rx));
    t.viprDrops = dropsDelta(A.vipr.drops, D.vipr.drops);
  }
  return t;
}

interface ZeroLoss {
  /** highest target rate with a zero-loss trial (frames/s), and what the generator achieved there */
  pps: number | null;
  achievedPps: number | null;
  /** why the search stopped: 'converged' | 'generator-bound' | 'max-steps' */
  end: string;
  /** the generator used for the trials, and what it sends flat out through its pacing path in this lab: the ceiling of the search */
  generator: SearchGenerator;
  generatorMaxPps: number;
  trialSeconds: number;
  trials: PacedTrial[];
}

async function zeroLossSearch(ctx: Ctx, gen: SearchGenerator, trialSeconds: number, maxSteps: number, precision: number, log: (s: string) => void): Promise<ZeroLoss> {
  await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const generatorMaxPps = await generatorCeiling(ctx, gen);
  const trials: PacedTrial[] = [];
  /** pass: zero loss at a held rate; loss: frames lost; generator: the generator could not hold the rate (twice) */
  const attempt = async (rate: number): Promise<'pass' | 'loss' | 'generator'> => {
    let outcome: 'loss' | 'generator' = 'generator';
    for (let k = 0; k < 2; k++) {
      const t = await pacedTrial(ctx, gen, rate, trialSeconds);
      trials.push(t);
      log(
        `     ${(rate / 1000).toFixed(1)} kpps: sent ${t.sent} (${(t.achievedPps / 1000).toFixed(1)} kpps), lost ${t.lost}` +
          (t.lostAtViprPort ? ` (${t.lostAtViprPort} at vipr's port)` : '') +
          (t.resyncs ? `, generator stalls ${t.resyncs} (max ${((t.generatorMaxLateUs ?? 0) / 1000).toFixed(1)} ms)` : '') +
          `, others ${t.otherProcessesPercent}% CPU` +
          eventNote(t.healthEvents) +
          quietNote(t.quiet),
      );
      if (t.generatorHeld && t.lost === 0) return 'pass';
      if (t.generatorHeld) outcome = 'loss'; // a held rate with loss counts as loss even if the retry stalls
    }
    return outcome;
  };
  let lo = 0;
  let hi = generatorMaxPps;
  let best: PacedTrial | undefined;
  let generatorLimited = false;
  let end = 'max-steps';
  // first: just under the generator's ceiling
  const top = Math.floor(generatorMaxPps * 0.95);
  const first = await attempt(top);
  if (first === 'pass') {
    best = trials[trials.length - 1];
    end = 'generator-bound';
  } else {
    if (first === 'generator') generatorLimited = true;
    hi = top;
    for (let step = 0; step < maxSteps; step++) {
      const mid = Math.round((lo + hi) / 2);
      const r = await attempt(mid);
      if (r === 'pass') {
        lo = mid;
        best = trials[trials.length - 1];
      } else {
        if (r === 'generator') generatorLimited = true;
        hi = mid;
      }
      if (hi - lo <= precision * generatorMaxPps) {
        end = 'converged';
        break;
      }
    }
    if (generatorLimited) end += ' (generator could not hold some rates)';
  }
  return { pps: best ? best.targetPps : null, achievedPps: best ? best.achievedPps : null, end, generator: gen, generatorMaxPps, trialSeconds, trials };
}

interface Latency {
  count: number;
  received: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
  min: number | null;
}

function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

type PingResult = Latency & { otherProcessesPercent: number; quiet: Quiet; healthEvents: string[] };

async function pingLatency(ctx: Ctx, count: number): Promise<PingResult> {
  const { lab } = ctx;
  await lab.exec('client', ['taskset', '-c', String(GEN_CPU), 'ping', '-q', '-c', '200', '-i', '0.002', '-W', '1', VIP], 30_000);
  const quiet = await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const tStart = performance.now();
  const cpuA = cpuSnapshot(ctx.netns, ctx.vipr?.pid);
  const r = await lab.exec('client', ['taskset', '-c', String(GEN_CPU), 'ping', '-i', '0.001', '-c', String(count), '-s', '56', '-W', '1', VIP], count * 20 + 30_000);
  const use = cpuUse(cpuA, cpuSnapshot(ctx.netns, ctx.vipr?.pid));
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
  const p = (q: number) => {
    const v = percentile(rtts, q);
    return v === null ? null : round(v);
  };
  return {
    count,
    received: rtts.length,
    p50: p(0.5),
    p90: p(0.9),
    p99: p(0.99),
    p999: p(0.999),
    max: rtts.length ? round(rtts[rtts.length - 1]) : null,
    min: rtts.length ? round(rtts[0]) : null,
    mean: rtts.length ? round(rtts.reduce((a, b) => a + b, 0) / rtts.length, 1) : null,
    otherProcessesPercent: use.otherProcessesPercent,
    quiet,
    healthEvents: eventsBetween(ctx.vipr, tStart, performance.now()),
  };
}

// ---- profiling the daemon under load ---------------------------------------------------------------

interface ProfileSummary {
  seconds: number;
  deliveredPps: number;
  viprPercent: number | null;
  otherProcessesPercent: number;
  quiet: Quiet;
  healthEvents: string[];
  /** frames over the profiled run: kernel up0 rx, read by vipr, forwarded by vipr, vipr's drops */
  up0Rx: number;
  viprRx: number | null;
  viprForwarded: number | null;
  viprDrops: Record<string, number>;
  /** samples of the profile inside the loaded window (0: the window could not be matched; the whole profile is summarized) */
  samplesInWindow: number;
  /** node --cpu-prof: functions by self time (% of the samples in the loaded window) */
  topSelf: Array<{ pct: number; fn: string; where: string }>;
  /** self time by source file */
  byFile: Array<{ pct: number; file: string }>;
  /** perf record -C 1: share of CPU 1 samples by process (pid:comm), and the top symbols within vipr's process (% of its samples) */
  perf?: { viprPid: number; viprByDso: Array<{ pct: number; dso: string }>; byProcess: Array<{ pct: number; process: string }>; viprSymbols: Array<{ pct: number; dso: string; sym: string }> } | { error: string };
}

/** CLOCK_MONOTONIC in microseconds: the clock V8's profiler stamps its samples with (on Linux). */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/**
 * Self time by function from a .cpuprofile, counting only samples taken in
 * [fromUs, toUs] (CLOCK_MONOTONIC): the loaded window, not start-up and idle set-up.
 */
function summarizeCpuProfile(file: string, fromUs: number, toUs: number): Pick<ProfileSummary, 'topSelf' | 'byFile' | 'samplesInWindow'> {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }>;
    startTime: number;
    samples?: number[];
    timeDeltas?: number[];
  };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let inWindow = 0;
  if (prof.samples && prof.timeDeltas && prof.samples.length === prof.timeDeltas.length) {
    // sample i is taken at startTime + sum(timeDeltas[0..i]); its weight is the time to the next sample
    let t = prof.startTime;
    for (let i = 0; i < prof.samples.length; i++) {
      t += prof.timeDeltas[i];
      if (t < fromUs || t > toUs) continue;
      inWindow++;
      const dt = prof.timeDeltas[i + 1] ?? 0;
      self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + Math.max(0, dt));
    }
  }
  if (inWindow === 0) {
    // no timestamps in the window (a clock mismatch): the whole profile
    for (const n of prof.nodes) self.set(n.id, n.hitCount ?? 0);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const fnAgg = new Map<string, { pct: number; fn: string; where: string }>();
  const fileAgg = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const file = url ? url.replace(/^file:\/\//, '').replace(REPO_ROOT + '/', '') : '';
    const where = file ? `${file}:${lineNumber + 1}` : '';
    const fn = functionName || (file ? '(anonymous)' : '(native)');
    const key = `${fn} ${where}`;
    const e = fnAgg.get(key) ?? { pct: 0, fn, where };
    e.pct += (100 * t) / total;
    fnAgg.set(key, e);
    const fk = file || fn;
    fileAgg.set(fk, (fileAgg.get(fk) ?? 0) + (100 * t) / total);
  }
  return {
    samplesInWindow: inWindow,
    topSelf: [...fnAgg.values()].sort((a, b) => b.pct - a.pct).slice(0, 20).map((e) => ({ ...e, pct: round(e.pct, 1) })),
    byFile: [...fileAgg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([file, pct]) => ({ file, pct: round(pct, 1) })),
  };
}

async function perfAvailable(): Promise<boolean> {
  const r = await run('perf', ['--version'], 5000);
  return r.code === 0;
}

function parsePerfReport(text: string): Array<string[]> {
  return text
    .split('\n')
    .filter((l) => /^\s+\d+\.\d+%/.test(l))
    .map((l) => l.trim().split(/\s{2,}/));
}

async function profileVipr(ctx: Ctx, seconds: number): Promise<ProfileSummary> {
  const { lab } = ctx;
  const profDir = join(ctx.dir, `cpuprof-${lab.prefix}`);
  mkdirSync(profDir, { recursive: true });
  await stopVipr(ctx.vipr);
  ctx.vipr = await startVipr(lab, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  const viprPid = ctx.vipr.pid;
  ctx.commands[`${lab.mode} profiled daemon`] = ctx.vipr.command;
  // warm up, then the profiled run
  const warm = lab.spawn('client', trafgenCommand(ctx.cfg[64]));
  await sleep(1000);
  await stopChild(warm, 'SIGINT', 5000);
  const usePerf = await perfAvailable();
  const quiet = await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const perfFile = join(ctx.dir, `perf-${lab.prefix}.data`);
  const O1 = await readOuter(lab);
  const tStart = performance.now();
  const fromUs = monotonicUs();
  const A = await readInner(lab);
  const cpuA = cpuSnapshot(ctx.netns, ctx.vipr.pid);
  const gen = lab.spawn('client', trafgenCommand(ctx.cfg[64]));
  let perfChild: ChildProcess | undefined;
  await sleep(500);
  if (usePerf) {
    perfChild = spawn('perf', ['record', '-C', String(VIPR_CPU), '-F', '999', '-o', perfFile, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    liveChildren.add(perfChild);
  }
  await sleep(seconds * 1000);
  const B = await readInner(lab);
  const cpuB = cpuSnapshot(ctx.netns, ctx.vipr.pid);
  const toUs = monotonicUs();
  await stopChild(gen, 'SIGINT', 5000);
  await sleep(300);
  const O2 = await readOuter(lab);
  if (perfChild) {
    await Promise.race([exited(perfChild), sleep(10_000)]);
    await stopChild(perfChild, 'SIGINT', 5000);
  }
  const profiled = ctx.vipr;
  await stopVipr(ctx.vipr); // writes the .cpuprofile
  ctx.vipr = undefined;
  const use = cpuUse(cpuA, cpuB);
  const files = existsSync(profDir) ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
  const summary: ProfileSummary = {
    seconds,
    deliveredPps: round((B.delivered.value - A.delivered.value) / ((B.delivered.t - A.delivered.t) / 1000)),
    viprPercent: use.viprPercent,
    otherProcessesPercent: use.otherProcessesPercent,
    quiet,
    healthEvents: eventsBetween(profiled, tStart, performance.now()),
    up0Rx: O2.up0.value.rx - O1.up0.value.rx,
    viprRx: O1.vipr && O2.vipr ? O2.vipr.up0Rx - O1.vipr.up0Rx : null,
    viprForwarded: O1.vipr && O2.vipr ? O2.vipr.forwarded - O1.vipr.forwarded : null,
    viprDrops: dropsDelta(O1.vipr?.drops, O2.vipr?.drops),
    ...(files.length ? summarizeCpuProfile(join(profDir, files[0]), fromUs + 500_000, toUs) : { topSelf: [], byFile: [], samplesInWindow: 0 }),
  };
  if (usePerf && existsSync(perfFile)) {
    const byPid = await run('perf', ['report', '-i', perfFile, '--stdio', '--no-children', '--sort', 'pid', '--percent-limit', '1'], 60_000);
    const bySym = await run('perf', ['report', '-i', perfFile, '--stdio', '--no-children', '--pid', String(viprPid), '--percentage', 'relative', '--sort', 'dso,sym', '--percent-limit', '0.5'], 60_000);
    const byDso = await run('perf', ['report', '-i', perfFile, '--stdio', '--no-children', '--pid', String(viprPid), '--percentage', 'relative', '--sort', 'dso', '--percent-limit', '0.5'], 60_000);
    if (byPid.code === 0 && bySym.code === 0) {
      summary.perf = {
        viprPid,
        viprByDso: parsePerfReport(byDso.stdout).map(([pct, dso]) => ({ pct: Number(pct.replace('%', '')), dso: dso ?? '' })),
        byProcess: parsePerfReport(byPid.stdout).map(([pct, proc]) => ({ pct: Number(pct.replace('%', '')), process: proc ?? '' })),
        viprSymbols: parsePerfReport(bySym.stdout)
          .slice(0, 30)
          .map(([pct, dso, sym]) => ({ pct: Number(pct.replace('%', '')), dso: dso ?? '', sym: (sym ?? '').replace(/^\[[.k]\]\s*/, '') })),
      };
    } else summary.perf = { error: (byPid.stderr || bySym.stderr).trim().slice(0, 300) };
    rmSync(perfFile, { force: true });
  } else if (!usePerf) summary.perf = { error: 'perf not available' };
  return summary;
}

// ---- one mode, start to end ----------------------------------------------------------------

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

interface ModeResult {
  mode: Mode;
  label: string;
  lab: string;
  flat: Record<string, FlatTrial[]>;
  zeroLoss?: ZeroLoss;
  latency?: PingResult[];
  profile?: ProfileSummary;
  calibration?: Calibration;
  viprLogWarnings?: string[];
  /** the lab config's kernelTransit setting ('absent': this vipr has none; the kernel parses every transit frame) */
  kernelTransit?: 'drop' | 'keep' | 'absent';
  commands: Record<string, string[]>;
}

/** kernelTransit in the lab's vipr config, as lab.sh wrote it. */
function kernelTransitSetting(lab: Lab): 'drop' | 'keep' | 'absent' {
  const m = /^kernelTransit: (drop|keep)\s*$/m.exec(readFileSync(`/run/vipr-lab/${lab.prefix}/vipr.yaml`, 'utf8'));
  return m ? (m[1] as 'drop' | 'keep') : 'absent';
}

interface ArrivalStats {
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

interface Calibration {
  note: string;
  generators: ArrivalStats[];
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
    await ctx.lab.exec('client', cmd, 60_000);
    await sleep(300);
  } finally {
    await stopChild(cap, 'SIGINT', 3000);
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
async function calibrate(ctx: Ctx): Promise<Calibration> {
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
      await waitQuiet(ctx.netns, ctx.quietMaxMs, ctx.quietThreshold);
      const a = await arrivals(ctx, name, cmd, rate);
      if (a) out.generators.push(a);
    }
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function runMode(mode: Mode, opts: Options, dir: string, log: (s: string) => void): Promise<ModeResult> {
  const lab = await labUp(mode);
  const ctx: Ctx = {
    lab,
    dir,
    netns: labNetns(lab),
    cfg: { 64: '', 1500: '' },
    commands: {},
    quietMaxMs: opts.quietWait * 1000,
    quietThreshold: opts.quietThreshold,
  };
  const result: ModeResult = { mode, label: MODE_LABEL[mode], lab: lab.prefix, flat: {}, commands: ctx.commands };
  try {
    for (const s of SIZES) {
      const file = join(dir, `trafgen-${s.name}.cfg`);
      writeFileSync(file, trafgenConfig(s.frame));
      ctx.cfg[s.name] = file;
    }
    await nft(lab, 'web1', SINK_RULES);
    await nft(lab, 'web2', SINK_RULES);
    ctx.commands['web1 and web2 sink (nft -f)'] = [SINK_RULES];
    const transit = kernelTransitSetting(lab);
    result.kernelTransit = transit;
    if (isVipr(mode) && mode !== 'ring-transit') log(`   lab config: ${transit === 'absent' ? 'no kernelTransit setting (the kernel parses every transit frame)' : `kernelTransit: ${transit}`}`);
    if (mode === 'ring-transit') {
      if (transit === 'absent') {
        lab.benchTransitDrop = true;
        await nft(lab, 'router', TRANSIT_DROP_RULES);
        ctx.commands['router up0 transit drop (nft -f)'] = [TRANSIT_DROP_RULES];
        result.label = 'vipr ring + nft transit drop';
      } else result.label = `vipr ring, kernelTransit: ${transit === 'drop' ? 'keep' : 'drop'}`;
      log(`   = ${result.label} (the lab config: ${transit === 'absent' ? 'no kernelTransit setting' : `kernelTransit: ${transit}`})`);
    }
    if (isVipr(mode)) {
      ctx.vipr = await startVipr(lab);
      ctx.commands.daemon = ctx.vipr.command;
    } else {
      if (mode === 'kernel-rps') {
        // RPS: the router's receive processing (and everything downstream of it on veth) moves to CPU 1
        const mask = (1 << VIPR_CPU).toString(16);
        for (const dev of ['up0', 'lan0']) {
          const r = await lab.exec('router', ['sh', '-c', `echo ${mask} > /sys/class/net/${dev}/queues/rx-0/rps_cpus && cat /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
          if (r.code !== 0) throw new Error(`RPS on ${dev}: ${r.stderr.trim()}`);
        }
        ctx.commands.rps = ['ip', 'netns', 'exec', lab.ns('router'), 'sh', '-c', `echo ${mask} > /sys/class/net/{up0,lan0}/queues/rx-0/rps_cpus`];
      }
      await lab.exec('router', ['ping', '-c', '1', '-W', '1', '192.168.1.2']);
    }
    ctx.commands.trafgen = ['ip', 'netns', 'exec', lab.ns('client'), ...trafgenCommand('CFG', mode === 'kernel-rps' ? ['-t', '0'] : [])];
    ctx.commands['trafgen CFG 64'] = [trafgenConfig(60).trim()];
    ctx.commands['trafgen CFG 1500'] = [trafgenConfig(1514).trim()];

    // warm-up (JIT, ARP, caches): 1.5 s flat out, not measured
    const warm = lab.spawn('client', flatOutCommand(ctx, 64));
    await sleep(1500);
    await stopChild(warm, 'SIGINT', 5000);
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
        const c0 = t.cpu.perCpu.cpu0?.busy ?? 0;
        const c1 = t.cpu.perCpu.cpu1?.busy ?? 0;
        log(
          `   ${s.name} B flat out #${i + 1}: offered ${(t.offeredPps / 1000).toFixed(1)} kpps, delivered ${(t.deliveredPps / 1000).toFixed(1)} kpps` +
            (t.totals.lostAtViprPort !== undefined ? `, lost at vipr port ${pct(t.totals.lostAtViprPort, t.totals.up0Rx)}` : '') +
            `; CPU0 ${c0}% CPU1 ${c1}%` +
            (t.cpu.viprPercent !== null ? `, vipr ${t.cpu.viprPercent}%` : '') +
            `, other processes ${t.cpu.otherProcessesPercent}%` +
            (t.totals.deliveredAtWeb2 ? `; ${t.totals.deliveredAtWeb2} frames went to web2 (failover)` : '') +
            eventNote(t.healthEvents) +
            quietNote(t.quiet),
        );
      }
      result.flat[String(s.name)] = trials;
    }

    if (opts.search && MODE_PARTS[mode].search) {
      log(`   zero-loss search, 64 B, ${opts.trialSeconds} s trials, ${opts.searchGenerator === 'trafgen' ? 'trafgen -b RATEpps -n COUNT' : 'bench/lab/pace.c'}`);
      result.zeroLoss = await zeroLossSearch(ctx, opts.searchGenerator, opts.trialSeconds, opts.searchSteps, opts.precision, log);
      const placeholders = (cmd: string[]) => cmd.map((a, i, all) => (all[i - 1] === '--rate' ? 'RATE' : all[i - 1] === '-b' ? 'RATEpps' : all[i - 1] === '--count' || all[i - 1] === '-n' ? 'RATE*TRIAL_SECONDS' : a));
      ctx.commands['zero-loss trial'] = [
        'ip', 'netns', 'exec', lab.ns('client'),
        ...placeholders(opts.searchGenerator === 'trafgen' ? trafgenCommand('CFG64', ['-b', '1pps', '-n', '1']) : paceCommand('PACE', 60, 1, { count: 1 })),
      ];
      log(`   zero loss up to ${result.zeroLoss.pps === null ? '-' : (result.zeroLoss.pps / 1000).toFixed(1)} kpps (${result.zeroLoss.end}; ${result.zeroLoss.generator} paced flat out: ${(result.zeroLoss.generatorMaxPps / 1000).toFixed(1)} kpps)`);
    }

    if (opts.latency && MODE_PARTS[mode].latency) {
      result.latency = [];
      for (let i = 0; i < opts.repeat; i++) {
        const l = await pingLatency(ctx, opts.pingCount);
        result.latency.push(l);
        log(`   ping #${i + 1}: ${l.received}/${l.count} replies, p50 ${l.p50} us, p99 ${l.p99} us, max ${l.max} us, other processes ${l.otherProcessesPercent}%${eventNote(l.healthEvents)}${quietNote(l.quiet)}`);
      }
      ctx.commands.ping = ['ip', 'netns', 'exec', lab.ns('client'), 'taskset', '-c', String(GEN_CPU), 'ping', '-i', '0.001', '-c', String(opts.pingCount), '-s', '56', '-W', '1', VIP];
    }

    if (ctx.vipr) {
      result.viprLogWarnings = ctx.vipr.logs.filter((l) => /"level":(40|50|60)/.test(l)).slice(0, 20);
    }
    if (opts.profile && MODE_PARTS[mode].profile) {
      log(`   profiling the daemon (node --cpu-prof${(await perfAvailable()) ? ', perf record -C 1' : ''}) under 64 B flat out`);
      result.profile = await profileVipr(ctx, opts.seconds);
      log(`     delivered ${(result.profile.deliveredPps / 1000).toFixed(1)} kpps while profiled; top: ${result.profile.topSelf.slice(0, 5).map((f) => `${f.fn} ${f.pct}%`).join(', ')}`);
    }
    return result;
  } finally {
    await stopVipr(ctx.vipr);
    await lab.down();
  }
}

/** A short note on how quiet the box was before a trial. */
const quietNote = (q: Quiet) =>
  q.quiet
    ? q.waitedMs > 1000
      ? ` [waited ${(q.waitedMs / 1000).toFixed(0)} s for quiet]`
      : ''
    : ` [NOT quiet after ${(q.waitedMs / 1000).toFixed(0)} s: others ${q.otherPercent}%${q.otherRealtime.length ? `, real-time ${q.otherRealtime.slice(0, 3).join(' ')}` : ''}]`;

/** The daemon's health events during a trial, briefly. */
const eventNote = (events: string[]) => {
  if (!events.length) return '';
  const downs = events.filter((e) => / -> down/.test(e)).length;
  return `; ${events.length} health events (${downs} servers down: ${events[0].replace(/^event: /, '').slice(0, 90)}${events.length > 1 ? ' ...' : ''})`;
};

const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');

// ---- report -----------------------------------------------------------------------------------------

function pad(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('   ')).join('\n');
}

const kpps = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? '-' : (x / 1000).toFixed(1));

function flatMedian(r: ModeResult, size: SizeName): { med: number; min: number; max: number; offered: number } | undefined {
  const t = r.flat[String(size)];
  if (!t?.length) return undefined;
  const d = t.map((x) => x.deliveredPps);
  return { med: median(d), min: Math.min(...d), max: Math.max(...d), offered: median(t.map((x) => x.offeredPps)) };
}

function latencyMedian(r: ModeResult): { p50: number; p99: number } | undefined {
  if (!r.latency?.length) return undefined;
  const p50 = r.latency.map((l) => l.p50).filter((x): x is number => x !== null);
  const p99 = r.latency.map((l) => l.p99).filter((x): x is number => x !== null);
  if (!p50.length || !p99.length) return undefined;
  return { p50: median(p50), p99: median(p99) };
}

/** A mode's name in the tables, with what happens to the kernel's copy of transit frames. */
function displayLabel(r: ModeResult): string {
  if (!isVipr(r.mode) || r.mode === 'ring-transit') return r.label;
  return `${r.label}${r.kernelTransit === 'drop' ? ' (kernelTransit: drop)' : r.kernelTransit === 'keep' ? ' (kernelTransit: keep)' : ''}`;
}

/** health events "server X up -> down" the daemon logged during the trials of a mode */
function serversDown(r: ModeResult): number {
  const all = [
    ...Object.values(r.flat).flatMap((ts) => ts.flatMap((t) => t.healthEvents)),
    ...(r.zeroLoss?.trials.flatMap((t) => t.healthEvents) ?? []),
    ...(r.latency?.flatMap((l) => l.healthEvents) ?? []),
  ];
  return all.filter((e) => / -> down/.test(e)).length;
}

/** trials of a mode that ran without a quiet box, of all its trials */
function noisy(r: ModeResult): string {
  const qs: Quiet[] = [
    ...Object.values(r.flat).flatMap((ts) => ts.map((t) => t.quiet)),
    ...(r.zeroLoss?.trials.map((t) => t.quiet) ?? []),
    ...(r.latency?.map((l) => l.quiet) ?? []),
  ];
  return `${qs.filter((q) => !q.quiet).length}/${qs.length}`;
}

function tables(results: ModeResult[]): string {
  const kernel = results.find((r) => r.mode === 'kernel');
  const ratio = (x: number | undefined | null, k: number | undefined | null) => (x == null || k == null || !k ? '-' : (x / k).toFixed(2));
  const range = (m?: { med: number; min: number; max: number }) => (m ? `${kpps(m.med)} (${kpps(m.min)}-${kpps(m.max)})` : '-');
  const k64 = kernel && flatMedian(kernel, 64);
  const k1500 = kernel && flatMedian(kernel, 1500);
  const kLat = kernel && latencyMedian(kernel);
  // zero loss: the rate the generator actually offered in the best zero-loss trial (a little under its target)
  const kZero = kernel?.zeroLoss?.achievedPps ?? null;
  const rps = results.find((r) => r.mode === 'kernel-rps');
  const r64 = rps && flatMedian(rps, 64);
  const rZero = rps?.zeroLoss?.achievedPps ?? null;
  const head = [
    'mode',
    '64 B offered kpps',
    '64 B delivered kpps (min-max)',
    'x kernel',
    ...(rps ? ['x kernel-rps'] : []),
    '1500 B offered kpps',
    '1500 B delivered kpps (min-max)',
    'x kernel',
    '64 B zero-loss kpps (offered)',
    'x kernel',
    ...(rps ? ['x kernel-rps'] : []),
    'RTT p50 us',
    'RTT p99 us',
    'p99 added us',
  ];
  const rows = results.map((r) => {
    const f64 = flatMedian(r, 64);
    const f1500 = flatMedian(r, 1500);
    const lat = latencyMedian(r);
    const z = r.zeroLoss;
    // generator-bound: no loss just under what the generator can send at all, so at least this
    const zText = z ? (z.achievedPps === null ? 'none found' : `${z.end === 'generator-bound' ? '>= ' : ''}${kpps(z.achievedPps)}`) : '-';
    return [
      displayLabel(r),
      kpps(f64?.offered),
      range(f64),
      ratio(f64?.med, k64?.med),
      ...(rps ? [ratio(f64?.med, r64?.med)] : []),
      kpps(f1500?.offered),
      range(f1500),
      ratio(f1500?.med, k1500?.med),
      zText,
      ratio(z?.achievedPps, kZero),
      ...(rps ? [ratio(z?.achievedPps, rZero)] : []),
      lat ? String(lat.p50) : '-',
      lat ? String(lat.p99) : '-',
      lat && kLat ? (r.mode === 'kernel' ? '0' : String(round(lat.p99 - kLat.p99))) : '-',
    ];
  });
  const main = pad([head, ...rows]);

  // where the frames went, 64 B flat out (the median trial by delivered rate)
  const head2 = ['mode (64 B flat out, median trial)', 'offered kpps', 'router up0 rx kpps', 'vipr read', 'lost at vipr port', 'kernel IP drops / up0 rx', 'kernel fwd', 'CPU0 busy %', 'CPU1 busy %', 'vipr CPU %', 'other procs CPU %', 'load1', 'trials not quiet', 'servers down (all trials)'];
  const rows2 = results.map((r) => {
    const ts = r.flat['64'] ?? [];
    if (!ts.length) return [displayLabel(r), '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'];
    const sorted = [...ts].sort((a, b) => a.deliveredPps - b.deliveredPps);
    const t = sorted[Math.floor(sorted.length / 2)];
    const k = t.routerKernel;
    return [
      displayLabel(r),
      kpps(t.offeredPps),
      kpps(t.routerRxPps),
      t.totals.viprRx !== undefined ? pct(t.totals.viprRx, t.totals.up0Rx) : '-',
      t.totals.lostAtViprPort !== undefined ? pct(t.totals.lostAtViprPort, t.totals.up0Rx) : '-',
      pct((k.InAddrErrors ?? 0) + (k.InDiscards ?? 0), t.totals.up0Rx),
      pct(k.ForwDatagrams ?? 0, t.totals.up0Rx),
      String(t.cpu.perCpu.cpu0?.busy ?? '-'),
      String(t.cpu.perCpu.cpu1?.busy ?? '-'),
      t.cpu.viprPercent === null ? '-' : String(t.cpu.viprPercent),
      String(t.cpu.otherProcessesPercent),
      String(t.loadavg1),
      `${noisy(r)}`,
      isVipr(r.mode) ? String(serversDown(r)) : '-',
    ];
  });
  return `${main}\n\n${pad([head2, ...rows2])}`;
}

function profileText(results: ModeResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const p = r.profile;
    if (!p) continue;
    out.push(
      `${r.label}: profiled under 64 B flat out, ${p.seconds} s, delivered ${kpps(p.deliveredPps)} kpps, vipr ${p.viprPercent ?? '-'}% of CPU 1, ` +
        `other processes ${p.otherProcessesPercent}%; vipr read ${p.viprRx ?? '-'} of ${p.up0Rx} frames on up0, forwarded ${p.viprForwarded ?? '-'}` +
        (Object.keys(p.viprDrops).length ? `, drops ${JSON.stringify(p.viprDrops)}` : ''),
    );
    if (p.healthEvents.length) out.push(`  health events while profiled (${p.healthEvents.length}): ${p.healthEvents.slice(0, 4).join(' | ')}`);
    out.push(`  node --cpu-prof, self time (${p.samplesInWindow} samples in the loaded window):`);
    for (const f of p.topSelf.slice(0, 12)) out.push(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}`);
    out.push('  by file: ' + p.byFile.slice(0, 8).map((f) => `${basename(f.file)} ${f.pct}%`).join(', '));
    if (p.perf && 'byProcess' in p.perf) {
      const vp = p.perf.viprPid;
      out.push('  perf record -C 1, CPU 1 by process: ' + p.perf.byProcess.map((c) => `${c.process}${c.process.startsWith(`${vp}:`) ? ' (vipr)' : ''} ${c.pct}%`).join(', '));
      out.push('  vipr\'s samples by object: ' + p.perf.viprByDso.map((d) => `${d.dso} ${d.pct}%`).join(', '));
      out.push(`  top symbols in vipr's process (pid ${vp}; % of its samples on CPU 1; kernel work it does in system calls and softirqs included):`);
      for (const s of p.perf.viprSymbols.slice(0, 18)) out.push(`    ${s.pct.toFixed(1).padStart(5)}%  ${s.dso.padEnd(22)} ${s.sym}`);
    } else if (p.perf) out.push(`  perf: ${(p.perf as { error: string }).error}`);
  }
  return out.join('\n');
}

// ---- main ---------------------------------------------------------------------------------------------

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
      case '--modes': {
        const ms = (v ?? '').split(',').map((m) => m.trim()).filter(Boolean) as Mode[];
        const bad = ms.filter((m) => !MODES.includes(m));
        if (bad.length || !ms.length) throw new Error(`--modes: unknown ${bad.join(', ') || '(none)'}; known: ${MODES.join(', ')}`);
        o.modes = ms;
        i++;
        break;
      }
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
          'usage: node dist/bench/forwarding.js [--seconds 5] [--quick] [--repeat 3] [--trial-seconds 3] [--ping-count 2000]\n' +
            `       [--modes ${MODES.join(',')}] [--search-steps 8] [--no-search] [--no-latency] [--no-profile] [--(no-)calibrate]\n` +
            '       [--quiet-wait 20] [--quiet-threshold 10] [--search-generator trafgen|pace] [--out FILE]\n' +
            '       node dist/bench/forwarding.js --report RESULTS.json   (the tables of an earlier run)\n' +
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

/** Which vipr was measured: the commit, files changed since (the daemon runs from the working tree's dist/), a hash of dist/src. */
async function viprBuild(): Promise<{ commit: string; uncommitted: string[]; distSrcSha256: string }> {
  const commit = (await run('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], 5000)).stdout.trim();
  const status = await run('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--', 'src', 'native-bindings/src', 'lab/vipr.yaml', 'lab/lab.sh'], 10_000);
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const f = join(dir, name);
      if (statSync(f).isDirectory()) walk(f);
      else if (name.endsWith('.js')) hash.update(name).update(readFileSync(f));
    }
  };
  walk(join(REPO_ROOT, 'dist/src'));
  return { commit, uncommitted: status.stdout.split('\n').map((l) => l.trim()).filter(Boolean), distSrcSha256: hash.digest('hex').slice(0, 16) };
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
    process.stdout.write(`${tables(doc.results)}\n\n${profileText(doc.results)}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('forwarding: must run as root (network namespaces)\n');
    return 2;
  }
  if (!existsSync(VIPR_CLI)) {
    process.stderr.write(`forwarding: ${VIPR_CLI} missing; build first: npx tsc -p tsconfig.json\n`);
    return 2;
  }
  for (const tool of ['trafgen', 'nft', 'taskset', 'ping', 'cc']) {
    const r = await run('sh', ['-c', `command -v ${tool}`], 5000);
    if (r.code !== 0) {
      process.stderr.write(`forwarding: ${tool} not found\n`);
      return 2;
    }
  }
  process.on('exit', teardownSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nforwarding: ${sig}: stopping everything, removing the labs\n`);
      teardownSync();
      process.exit(130);
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'vipr-fwbench-'));
  tempDirs.add(dir);
  await buildPace();

  const startedAt = new Date();
  const log = (s: string) => process.stdout.write(`${s}\n`);
  const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? cpus()[0]?.model ?? '';
  const host = {
    nproc: cpus().length,
    cpuModel,
    hypervisor: /\bhypervisor\b/.test(readFileSync('/proc/cpuinfo', 'utf8')),
    kernel: release(),
    node: process.version,
    trafgen: await version('trafgen', ['-v']),
    loadavgAtStart: loadavg().map((x) => round(x, 2)),
    loadavgAtEnd: [] as number[],
    vipr: await viprBuild(),
    viprAtEnd: undefined as Awaited<ReturnType<typeof viprBuild>> | undefined,
  };
  log(
    `forwarding bench: trafgen on CPU ${GEN_CPU} -> router -> web1, UDP to ${VIP}:${UDP_DPORT}; vipr on CPU ${VIPR_CPU}; ` +
      `${opts.seconds} s windows x${opts.repeat}; ${host.nproc} CPUs (${host.cpuModel}), kernel ${host.kernel}, node ${host.node}, load ${host.loadavgAtStart.join(' ')}`,
  );
  log(`vipr: commit ${host.vipr.commit}${host.vipr.uncommitted.length ? ` + uncommitted ${host.vipr.uncommitted.join(', ')}` : ''}; dist/src sha256 ${host.vipr.distSrcSha256}`);
  const results: ModeResult[] = [];
  const failures: Array<{ mode: Mode; error: string }> = [];
  for (const mode of opts.modes) {
    log(`-- ${MODE_LABEL[mode]}`);
    try {
      results.push(await runMode(mode, opts, dir, log));
    } catch (error) {
      failures.push({ mode, error: (error as Error).message });
      log(`   FAILED: ${(error as Error).message}`);
    }
  }
  host.loadavgAtEnd = loadavg().map((x) => round(x, 2));
  const buildAtEnd = await viprBuild();
  if (buildAtEnd.distSrcSha256 !== host.vipr.distSrcSha256) {
    log(`NOTE: dist/src changed during the run (sha256 ${host.vipr.distSrcSha256} -> ${buildAtEnd.distSrcSha256}): later modes ran another vipr build`);
  }
  host.viprAtEnd = buildAtEnd;
  const table = results.length ? tables(results) : '(no results)';
  const prof = profileText(results);
  log(`\n${table}\n`);
  if (prof) log(`${prof}\n`);
  for (const r of results) {
    if (r.viprLogWarnings?.length) log(`${r.label}: daemon warnings: ${r.viprLogWarnings.slice(0, 3).join(' | ')}`);
  }

  const stamp = startedAt.toISOString().slice(0, 10);
  let file = opts.out ?? join(REPO_ROOT, 'bench/results', `forwarding-${stamp}.json`);
  if (!opts.out && existsSync(file)) file = join(REPO_ROOT, 'bench/results', `forwarding-${startedAt.toISOString().slice(0, 19).replace(/:/g, '')}.json`);
  mkdirSync(dirname(resolve(file)), { recursive: true });
  const doc = {
    bench: 'forwarding',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    host,
    options: opts,
    method: {
      topology: 'lab/lab.sh: client eth0 10.0.0.2 -> router up0 10.0.0.1 / lan0 192.168.1.1 -> switch (bridge) -> web1 192.168.1.2 (VIP 192.168.1.33 on lo); fresh lab per mode',
      generator: `trafgen in the client namespace pinned to CPU ${GEN_CPU} (-P 1), flat out; frames of 60 and 1514 bytes without FCS ("64 B" and "1500 B"), dst MAC ${UP0_MAC}, UDP ${CLIENT_IP}:${UDP_SPORT} -> ${VIP}:${UDP_DPORT}, checksums by trafgen's ipv4()/udp()`,
      router: `kernel: ip_forward=1 with the lab's routes (kernel-rps: plus rps_cpus = CPU ${VIPR_CPU} on up0 and lan0, and trafgen -t 0 since its TX ring aborts on the veth backpressure RPS causes); vipr: ip_forward=0, daemon pinned to CPU ${VIPR_CPU} with the lab config (or a copy: io: pcap, kernelTransit flipped, no health checks, ring busyPoll)`,
      counting: `delivered = nft netdev ingress rules on web1 and web2 eth0 (udp dport ${UDP_DPORT} counter drop; web2 is the VIP's failover target); rates over a --seconds window after a 1 s ramp; counts over the whole run for where frames were lost (vipr: kernel up0 rx - vipr up0 rx = never read by vipr)`,
      zeroLoss: `bisection over the offered rate, 64-byte frames, fixed count per trial (${opts.trialSeconds} s worth), generator ${opts.searchGenerator === 'trafgen' ? 'trafgen -b RATEpps -n COUNT on CPU 0' : 'bench/lab/pace.c on CPU 0'}; first trial at 95 % of the generator's paced flat-out rate; a lossy trial is retried once; a trial the generator could not hold (< 95 % of the rate, twice) counts as a failure`,
      latency: 'ping -i 0.001 -s 56 from the client on CPU 0 after a 200-ping warm-up; per-packet RTTs',
      noise: 'otherProcessesPercent = CPU time of processes outside this bench\'s lab namespaces during the window, % of one CPU (the box is shared)',
    },
    results,
    failures,
    table,
    profile: prof,
  };
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  log(`results: ${file}`);
  return failures.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => {
      teardownSync();
      process.exit(code);
    },
    (error) => {
      process.stderr.write(`forwarding: ${(error as Error).stack ?? error}\n`);
      teardownSync();
      process.exit(1);
    },
  );
}
