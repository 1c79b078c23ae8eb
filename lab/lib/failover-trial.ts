// One failover trial in a lab that is up: the article's 5 AM page, measured.
// Used by bench/failover.ts (20 trials of each kind, fresh labs) and by
// test/lab/failover.test.ts (the operator's view of the same trial).
//
// A steady numbered UDP stream (lab/udp-stream.c, SCHED_FIFO on CPU 0) goes
// from the client to the VIP 192.168.1.33, whose route 192.168.1.32/27 is
// carried by web1 with web2 as its backup (lab/vipr.yaml). Timestamping sinks
// (lab/failover-sink.c) on 192.168.1.33:9999 in web1 and web2 record every
// number. Then web1 fails in one of three ways:
//
//   link    web1's link goes down: `ip -n P-web1 link set eth0 down`; back: link
//           up and its default route again (as ifup does: a link going down
//           flushes the routes through it, the address's own come back with it)
//   freeze  web1's HTTP server stops (SIGSTOP; back: SIGCONT). The host still
//           forwards and receives: only the health check sees the failure.
//   drop    web1 drops everything on eth0, both ways, ARP included (nft, netdev
//           ingress + egress hooks, in web1's namespace; back: the table is deleted)
//
// vipr moves the route to web2; when web1 is back, and has stayed up for the
// hold-down, the route moves back (failback).
//
// What is measured (every timestamp is CLOCK_MONOTONIC, which all namespaces
// of the host share: the sender stamps each packet, the sinks stamp each
// arrival, this process stamps what it does):
//   failure at  freeze: the moment this process sends SIGSTOP. link, drop: the
//               arrival of web1's last packet before the outage (the failure as
//               the stream saw it), which must lie inside the window of the
//               command that caused it (else the command's start is used)
//   gap         failure -> first packet arriving at web2
//   detect      failure -> vipr's `server web1 up -> down` event (its own clock,
//               ms resolution, mapped onto CLOCK_MONOTONIC)
//   outage      web1's last packet -> web2's first: what the traffic saw (for
//               freeze web1 keeps receiving until the route moves: ~0)
//   lost        sent - distinct numbers received at web1 + web2, split by send time:
//                 before the failure (a stall of the machine, not failover; should be 0)
//                 failover phase: from the failure (minus 20 ms: frames already
//                   queued in the router) until the recovery command
//                 failback phase: from the recovery command to the end
//   duplicates  received - distinct, per phase
//   failback at recovery command -> vipr's failback event (rise + hold-down);
//               first web1 packet after it
//   lost at vipr port  kernel up0 rx - vipr up0 rx over the trial: frames that
//               arrived while vipr's port buffer was full (vipr not running)

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { readLink, viprStats } from './counters.js';
import { labRunDir, VIPR_CLI, type TrialLab } from './lab.js';
import {
  compileC, listeningChild, makeRealtime, makeTempDir, onLines, pinToCpu, removeTempDir, REPO_ROOT, run, sleep, stdoutClosed, stopChild, type ExecResult,
} from './process.js';
import { buildStream, PORT, streamCommand, VIP, VIP_NET, type StreamReport } from './stream.js';

export type FailureKind = 'link' | 'freeze' | 'drop';
export const KINDS: readonly FailureKind[] = ['link', 'freeze', 'drop'];
export const KIND_TEXT: Record<FailureKind, string> = {
  link: "web1's link goes down (ip link set eth0 down)",
  freeze: "web1's HTTP server frozen (SIGSTOP)",
  drop: 'web1 drops everything on eth0 (nft)',
};

/** Frames already queued in the router when the failure hits were sent a little before it. */
export const FAILURE_MARGIN_MS = 20;
/** Real-time priority of the sinks (the generator runs at 50, vipr at 20). */
const SINK_PRIORITY = 10;
/** vipr's event times have ms resolution and are mapped from the wall clock. */
const CLOCK_SLACK_MS = 5;

/** CLOCK_MONOTONIC in ms: the clock of the sender's stamps and the sinks' (process.hrtime is CLOCK_MONOTONIC). */
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ---- timestamping sinks ---------------------------------------------------------------------

/** Compile lab/failover-sink.c (cc -O2) into the temp dir once; the file name carries the source's hash. */
export function buildSink(): Promise<string> {
  return compileC('failover-sink', 'lab/failover-sink.c');
}
/** One sink's record: index = sequence number. */
export interface Share {
  name: string;
  counts: Uint8Array;
  /** first arrival, CLOCK_MONOTONIC ms (0 where nothing arrived) */
  arrivalMs: Float64Array;
  /** the sender's stamp, CLOCK_MONOTONIC ms (0 where nothing arrived) */
  sentMs: Float64Array;
  received: number;
  foreign: number;
  socketDrops: number | null;
}

interface Sink {
  name: string;
  child: ChildProcess;
  stop(): Promise<Share>;
}

function readFloat64(file: string, scale: number): Float64Array {
  if (!existsSync(file)) return new Float64Array(0);
  const bytes = new Uint8Array(readFileSync(file)); // a copy: aligned for Float64Array
  const values = new Float64Array(bytes.buffer, 0, Math.floor(bytes.length / 8));
  for (let i = 0; i < values.length; i++) values[i] *= scale;
  return values;
}

async function startSink(lab: TrialLab, name: 'web1' | 'web2', runId: number, dir: string): Promise<Sink> {
  const out = join(dir, name);
  const child = lab.spawn(name, [await buildSink(), VIP, String(PORT), String(runId), out]);
  const { lines, stderr } = await listeningChild(child, `failover sink in ${name}`);
  // The sinks are the instrument: at SCHED_FIFO 10 (below vipr's 20 and the
  // generator's 50) a busy machine cannot starve them until their socket
  // buffer overflows, which would count as packets lost.
  if (!(await makeRealtime(child.pid!, SINK_PRIORITY))) {
    await stopChild(child, 500);
    throw new Error(`could not make the failover sink in ${name} SCHED_FIFO (chrt)`);
  }
  return {
    name,
    child,
    stop: async () => {
      await stopChild(child, 5000);
      await stdoutClosed(child);
      const line = lines.find((l) => l.includes('"summary"'));
      if (!line) throw new Error(`failover sink in ${name} wrote no summary; stderr: ${stderr().trim()}`);
      const s = JSON.parse(line) as { received: number; foreign: number; socketDrops: number | null };
      return {
        name,
        counts: existsSync(`${out}.count`) ? new Uint8Array(readFileSync(`${out}.count`)) : new Uint8Array(0),
        arrivalMs: readFloat64(`${out}.arrival`, 1e-3),
        sentMs: readFloat64(`${out}.sent`, 1e-3),
        received: s.received,
        foreign: s.foreign,
        socketDrops: s.socketDrops,
      };
    },
  };
}

// ---- vipr's events, as `vipr ctl --json events` streams them -----------------------------------

/** A vipr event (src/health/events.ts ViprEvent) and when it happened on CLOCK_MONOTONIC. */
export interface SeenEvent {
  type: string;
  server?: string;
  oldState?: string;
  newState?: string;
  reason: string;
  routesMoved: Array<{ prefix: string; from: string | null; to: string | null }>;
  time: string;
  /** vipr's own time of the event (ms resolution), mapped onto CLOCK_MONOTONIC ms */
  atMs: number;
  /** as the text form of `vipr ctl events` prints it */
  text: string;
}

export function eventText(e: Pick<SeenEvent, 'type' | 'server' | 'oldState' | 'newState' | 'reason' | 'routesMoved'>): string {
  const what = e.type === 'server' ? `server ${e.server} ${e.oldState} -> ${e.newState}` : `${e.type}${e.server ? ` ${e.server}` : ''}`;
  const moved = e.routesMoved.map((m) => `${m.prefix} ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`).join(', ');
  return `${what}  (${e.reason})${moved ? `  routes: ${moved}` : ''}`;
}

export interface EventFollower {
  events: SeenEvent[];
  /** Resolves with the first event (from index `from` on) that matches, or undefined after `timeoutMs`. */
  waitFor(match: (e: SeenEvent) => boolean, timeoutMs: number, from?: number): Promise<SeenEvent | undefined>;
  stop(): Promise<void>;
}

/** Wall clock minus CLOCK_MONOTONIC, ms: maps vipr's event times (Date) onto the monotonic clock. */
function wallMinusMono(): number {
  const a = monoMs();
  const wall = Date.now();
  const b = monoMs();
  return wall - (a + b) / 2;
}

/**
 * Follow `vipr ctl --json events` in the router namespace. The control socket
 * does not acknowledge a subscription, so this waits until the client is
 * connected (`ss -x` shows it on the socket) and a little longer.
 */
export async function followEvents(lab: TrialLab, socket: string): Promise<EventFollower> {
  const child = lab.spawn('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'events'], { cwd: REPO_ROOT });
  const events: SeenEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderr += c));
  onLines(child.stdout, (line) => {
    try {
      const e = JSON.parse(line) as Omit<SeenEvent, 'atMs' | 'text'>;
      if (typeof e.type !== 'string') return;
      events.push({ ...e, atMs: Date.parse(e.time) - wallMinusMono(), text: eventText(e) });
      for (const w of waiters) w();
    } catch {
      /* not an event */
    }
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`vipr ctl events exited: ${stderr.trim()}`);
    const r = await lab.exec('router', ['ss', '-xpn']);
    if (child.pid && r.stdout.split('\n').some((l) => l.includes(`pid=${child.pid},`))) break;
    if (Date.now() > deadline) {
      await stopChild(child, 1000);
      throw new Error(`vipr ctl events did not connect to ${socket} within 10 s: ${stderr.trim()}`);
    }
    await sleep(50);
  }
  await sleep(100); // the `events` line goes out right after connecting
  return {
    events,
    waitFor: (match, timeoutMs, from = 0) =>
      new Promise((resolvePromise) => {
        const check = () => {
          const e = events.slice(from).find(match);
          if (e) finish(e);
        };
        let timer: NodeJS.Timeout | undefined;
        const finish = (e: SeenEvent | undefined) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolvePromise(e);
        };
        timer = setTimeout(() => finish(undefined), timeoutMs);
        waiters.add(check);
        check();
      }),
    stop: async () => {
      await stopChild(child, 2000);
      await stdoutClosed(child, 500);
    },
  };
}

// ---- the three failures -------------------------------------------------------------------------

interface Window {
  startMs: number;
  endMs: number;
  command: string;
}

export interface Failure {
  kind: FailureKind;
  inject(): Promise<Window>;
  recover(): Promise<Window>;
  /** Undo whatever is still in effect (after an error); never throws. */
  cleanup(): Promise<void>;
}

async function timed(command: string, fn: () => Promise<void> | void): Promise<Window> {
  const startMs = monoMs();
  await fn();
  return { startMs, endMs: monoMs(), command };
}

async function must(r: Promise<ExecResult>, what: string): Promise<void> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what} failed (${x.code}): ${(x.stderr || x.stdout).trim()}`);
}

/** The pid of the lab's web server `name` (lab.sh writes it), checked to be that web server. */
export function webServerPid(prefix: string, name: string): number {
  const pid = Number(readFileSync(`${labRunDir(prefix)}/${name}.pid`, 'utf8').trim());
  const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
  if (!Number.isInteger(pid) || !cmdline.includes('webserver.mjs') || !cmdline.includes(name)) {
    throw new Error(`${labRunDir(prefix)}/${name}.pid (${pid}) is not the lab's web server ${name}`);
  }
  return pid;
}

let firewall: Promise<'nft' | 'iptables'> | undefined;

/** nft (or iptables) for the drop failure; installs nftables with apt when neither is there. */
export function ensureFirewall(): Promise<'nft' | 'iptables'> {
  firewall ??= (async () => {
    const has = async (cmd: string) => (await run('sh', ['-c', `command -v ${cmd}`])).code === 0;
    if (await has('nft')) return 'nft';
    if (await has('iptables')) return 'iptables';
    let r = await run('apt-get', ['install', '-y', '-q', 'nftables'], 300_000);
    if (r.code !== 0) {
      await run('apt-get', ['update', '-q'], 300_000);
      r = await run('apt-get', ['install', '-y', '-q', 'nftables'], 300_000);
    }
    if (r.code !== 0 || !(await has('nft'))) throw new Error(`cannot install nftables: ${r.stderr.trim().split('\n').pop()}`);
    return 'nft';
  })();
  firewall.catch(() => (firewall = undefined));
  return firewall;
}

const NFT_TABLE = 'viprfail';
/** Everything on eth0, both ways, ARP included: netdev hooks run before and after the IP stack. */
const NFT_RULES = `table netdev ${NFT_TABLE} {
  chain in { type filter hook ingress device eth0 priority 0; policy drop; }
  chain out { type filter hook egress device eth0 priority 0; policy drop; }
}
`;

export async function makeFailure(kind: FailureKind, lab: TrialLab, server = 'web1'): Promise<Failure> {
  const ns = `${lab.prefix}-${server}`;
  switch (kind) {
    case 'link':
      return {
        kind,
        inject: () => timed(`ip -n ${ns} link set eth0 down`, () => must(run('ip', ['-n', ns, 'link', 'set', 'eth0', 'down']), 'link down')),
        recover: () =>
          timed(`ip -n ${ns} link set eth0 up; ip -n ${ns} route replace default via 192.168.1.1 dev eth0`, async () => {
            await must(run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']), 'link up');
            // Taking the link down flushed the default route through it; ifup would add it again.
            await must(run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', '192.168.1.1', 'dev', 'eth0']), 'default route');
          }),
        cleanup: async () => {
          await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
          await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', '192.168.1.1', 'dev', 'eth0']);
        },
      };
    case 'freeze': {
      const pid = webServerPid(lab.prefix, server);
      return {
        kind,
        inject: () => timed(`kill -STOP ${pid}  (${server}'s web server)`, () => void process.kill(pid, 'SIGSTOP')),
        recover: () => timed(`kill -CONT ${pid}`, () => void process.kill(pid, 'SIGCONT')),
        cleanup: async () => {
          try {
            process.kill(pid, 'SIGCONT');
          } catch {
            /* gone */
          }
        },
      };
    }
    case 'drop': {
      const tool = await ensureFirewall();
      if (tool === 'nft') {
        const rules = join(makeTempDir('vipr-failover-nft-'), 'drop.nft');
        writeFileSync(rules, NFT_RULES);
        const del = () => run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'netdev', NFT_TABLE]);
        return {
          kind,
          inject: () => timed(`ip netns exec ${ns} nft -f drop.nft  (netdev ingress+egress on eth0: drop)`, () => must(run('ip', ['netns', 'exec', ns, 'nft', '-f', rules]), 'nft -f')),
          recover: () => timed(`ip netns exec ${ns} nft delete table netdev ${NFT_TABLE}`, () => must(del(), 'nft delete table')),
          cleanup: async () => {
            await del();
            removeTempDir(dirname(rules));
          },
        };
      }
      // iptables: IP only (ARP still answered); the nearest it gets to "everything".
      const rule = (op: '-I' | '-D', chain: 'INPUT' | 'OUTPUT') => run('ip', ['netns', 'exec', ns, 'iptables', '-w', op, chain, chain === 'INPUT' ? '-i' : '-o', 'eth0', '-j', 'DROP']);
      return {
        kind,
        inject: () => timed(`iptables -I INPUT -i eth0 -j DROP; -I OUTPUT -o eth0 -j DROP (in ${ns})`, async () => {
          await must(rule('-I', 'INPUT'), 'iptables -I INPUT');
          await must(rule('-I', 'OUTPUT'), 'iptables -I OUTPUT');
        }),
        recover: () => timed(`iptables -D INPUT/OUTPUT ... (in ${ns})`, async () => {
          await must(rule('-D', 'INPUT'), 'iptables -D INPUT');
          await must(rule('-D', 'OUTPUT'), 'iptables -D OUTPUT');
        }),
        cleanup: async () => {
          await rule('-D', 'INPUT');
          await rule('-D', 'OUTPUT');
        },
      };
    }
  }
}

// ---- counters: frames vipr never read ----------------------------------------------------------

async function up0Counters(lab: TrialLab, socket: string): Promise<{ kernelRx: number; viprRx: number } | undefined> {
  const [link, vipr] = await Promise.all([readLink(lab.prefix, 'router', 'up0').catch(() => undefined), viprStats(lab, socket)]);
  return link && vipr ? { kernelRx: link.value.rx, viprRx: vipr.up0Rx } : undefined;
}

// ---- one trial ------------------------------------------------------------------------------------

export interface FailoverOptions {
  kind: FailureKind;
  /** packets per second */
  rate: number;
  /** stream alone before the failure, ms */
  leadMs: number;
  /** how long the failure lasts at least (from the failure), ms; it lasts until vipr failed over in any case */
  failureMs: number;
  /** stream after the failback, ms */
  tailMs: number;
  /** the config's hold-down, ms (how long to wait for the failback) */
  holdDownMs: number;
  /** give up waiting for the failover after this long, ms */
  failoverTimeoutMs?: number;
  /** UDP payload bytes (default 64) */
  size?: number;
  /** CPU for the generator (default 0) */
  generatorCpu?: number;
}

export interface FailoverContext {
  lab: TrialLab;
  /** vipr's control socket */
  socket: string;
  /** progress lines (the demo prints them) */
  progress?: (line: string) => void;
  /** runs while web1 is down and the route is on web2 (before the recovery) */
  duringFailure?: () => Promise<void>;
  /** runs after the failback event (before the tail of the stream) */
  afterFailback?: () => Promise<void>;
}

export interface PhaseCount {
  sent: number;
  lost: number;
  duplicated: number;
}

export interface FailoverTrial {
  kind: FailureKind;
  lab: string;
  runId: number;
  /** nothing went wrong (failover, failback, counting) */
  ok: boolean;
  problems: string[];
  /** health events of web1 or web2 that no failure of ours caused: the measurement is not clean */
  disturbances: string[];
  stream: StreamReport;
  failureCommand: string;
  /** how long the failure command took, ms */
  failureCommandMs: number;
  failureAtFrom: 'signal' | 'last packet at web1' | 'command start';
  /** failure -> first packet at web2, ms */
  gapMs: number | null;
  /** failure -> vipr's down event, ms */
  detectMs: number | null;
  /** web1's last packet before the failover -> web2's first, ms */
  outageMs: number | null;
  failoverEvent: string | null;
  /** packets sent before the failure that were lost (a stall of the machine, not the failover) */
  lostBeforeFailure: number;
  failover: PhaseCount;
  recoveryCommand: string;
  /** failure -> recovery command, ms */
  recoveryAtMs: number;
  /** recovery -> vipr's `web1 down -> up`, ms */
  upAfterMs: number | null;
  /** recovery -> vipr's failback event, ms */
  failbackAtMs: number | null;
  /** recovery -> first packet at web1 again, ms */
  firstWeb1AfterMs: number | null;
  failbackEvent: string | null;
  failback: PhaseCount;
  /** Packets per 20 ms bin at each server (the demo draws them). */
  series?: FailoverSeries;
  total: PhaseCount & { received: number; distinct: number; unexpected: number; shares: Record<string, number>; switches: number };
  /** frames the kernel counted in on up0 that vipr never read (its port buffer was full): a stall, not a failover */
  lostAtViprPort: number | null;
  sinkSocketDrops: number;
  /** every event vipr published during the trial, as `vipr ctl events` prints them */
  events: string[];
  /** events about other servers than web1 (a check that failed under load) */
  otherEvents: string[];
  hostLoad1: number;
  durationMs: number;
}

/**
 * One failover trial in a lab that is up, with vipr running on `ctx.socket`
 * and 192.168.1.32/27 on web1 with both web1 and web2 up and resolved. Every
 * process started here is stopped, and the failure undone, before it returns
 * (also on failure).
 */
export async function measureFailover(ctx: FailoverContext, opts: FailoverOptions): Promise<FailoverTrial> {
  const { lab } = ctx;
  const t0 = monoMs();
  const say = (line: string) => ctx.progress?.(`[${((monoMs() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const binary = await buildStream();
  const runId = randomInt(1, 0x7fffffff);
  const dir = makeTempDir(`vipr-failover-${lab.prefix}-`);
  const started: ChildProcess[] = [];
  const sinks: Sink[] = [];
  let follower: EventFollower | undefined;
  const failure = await makeFailure(opts.kind, lab);
  let injected = false;
  let recovered = false;
  const problems: string[] = [];
  try {
    follower = await followEvents(lab, ctx.socket);
    for (const s of ['web1', 'web2'] as const) sinks.push(await startSink(lab, s, runId, dir));
    const before = await up0Counters(lab, ctx.socket);

    const cpu = opts.generatorCpu ?? 0;
    const safetySec = Math.ceil((opts.leadMs + opts.failureMs + opts.holdDownMs + opts.tailMs + 30_000) / 1000);
    const gen = lab.spawn('client', streamCommand(binary, { rate: opts.rate, runId, size: opts.size, seconds: safetySec, cpu }));
    started.push(gen);
    const genLines: string[] = [];
    let genErr = '';
    onLines(gen.stdout, (l) => genLines.push(l));
    gen.stderr?.setEncoding('utf8');
    gen.stderr?.on('data', (c: string) => (genErr += c));
    say(`phase 1: ${opts.rate} packets/s to ${VIP} (route ${VIP_NET} via web1, backup web2); sinks in web1 and web2`);

    await sleep(opts.leadMs);
    if (gen.exitCode !== null || gen.signalCode !== null) throw new Error(`udp-stream exited early: ${genErr.trim()}`);

    // ---- the failure
    say(`phase 2: ${KIND_TEXT[opts.kind]}: ${failureCommandText(opts.kind, lab.prefix)}`);
    injected = true;
    const fail = await failure.inject();
    // vipr's own time says whether an event came after the failure (a slow client may deliver it late)
    const isWeb1Down = (e: SeenEvent) => e.type === 'server' && e.server === 'web1' && e.newState === 'down' && e.atMs >= fail.startMs - CLOCK_SLACK_MS;
    const down = await follower.waitFor(isWeb1Down, opts.failoverTimeoutMs ?? 5000);
    if (down) say(`vipr: ${down.text}  (${(down.atMs - fail.startMs).toFixed(0)} ms after the failure command started)`);
    else problems.push(`no failover: vipr did not take web1 down within ${opts.failoverTimeoutMs ?? 5000} ms`);
    await sleep(Math.max(fail.startMs + opts.failureMs, (down?.atMs ?? 0) + 200) - monoMs());
    if (ctx.duringFailure) await ctx.duringFailure();

    // ---- the recovery
    const eventsAtRecovery = follower.events.length;
    say(`phase 3: web1 returns: ${recoveryCommandText(opts.kind, lab.prefix)}`);
    const rec = await failure.recover();
    recovered = true;
    const isWeb1Up = (e: SeenEvent) => e.type === 'server' && e.server === 'web1' && e.newState === 'up';
    const isFailback = (e: SeenEvent) => e.type === 'failback' && e.routesMoved.some((m) => m.prefix === VIP_NET && m.to === 'web1');
    const up = await follower.waitFor(isWeb1Up, 10_000, eventsAtRecovery);
    if (up) say(`vipr: ${up.text}; hold-down ${opts.holdDownMs} ms before the route moves back`);
    const back = await follower.waitFor(isFailback, opts.holdDownMs + 10_000, eventsAtRecovery);
    if (back) say(`vipr: ${back.text}  (${((back.atMs - rec.startMs) / 1000).toFixed(2)} s after web1 returned)`);
    else problems.push(`no failback within ${opts.holdDownMs + 10_000} ms of the recovery`);
    if (ctx.afterFailback) await ctx.afterFailback();
    await sleep(opts.tailMs);

    // ---- stop and count
    const load1 = loadavg()[0];
    await stopChild(gen, 5000);
    await stdoutClosed(gen);
    const genLine = genLines.find((l) => l.startsWith('{'));
    if (!genLine) throw new Error(`udp-stream printed no report: ${genErr.trim()}`);
    const stream = JSON.parse(genLine) as StreamReport;
    await sleep(300); // the last packets in flight
    const shares: Share[] = [];
    for (const s of sinks) shares.push(await s.stop());
    const after = await up0Counters(lab, ctx.socket);
    say(`stream stopped: ${stream.sent} packets sent; counting`);

    const a = analyse(stream.sent, shares[0], shares[1], opts.kind, fail, rec);
    problems.push(...a.problems);
    const events = follower.events;
    const otherEvents = events.filter((e) => e.server !== undefined && e.server !== 'web1').map((e) => e.text);
    // Health checks that failed without a failure of ours (a busy machine answering
    // later than the 50 ms timeout) disturb what is measured: say so.
    const disturbances = [...a.disturbances];
    for (const e of events) {
      if ((e.server === 'web1' || e.server === 'web2') && e.atMs < fail.startMs - CLOCK_SLACK_MS) disturbances.push(`before the failure: ${e.text}`);
      else if (e.server === 'web2' && e.type === 'server' && e.newState === 'down') disturbances.push(`the backup failed its checks: ${e.text}`);
      else if (e.server === 'web1' && e.type === 'server' && e.newState === 'down' && up && e.atMs > up.atMs) disturbances.push(`web1 failed its checks again after it returned: ${e.text}`);
    }
    const sinkDrops = shares.reduce((n, s) => n + (s.socketDrops ?? 0), 0);
    if (sinkDrops > 0) problems.push(`the sinks dropped ${sinkDrops} packets (socket buffer full: not scheduled in time); counted as lost`);
    if (stream.errors > 0) problems.push(`udp-stream: ${stream.errors} send errors (${stream.last_error})`);
    return {
      kind: opts.kind,
      lab: lab.prefix,
      runId,
      ok: problems.length === 0,
      problems,
      disturbances,
      stream,
      failureCommand: fail.command,
      failureCommandMs: round(fail.endMs - fail.startMs, 2),
      failureAtFrom: a.failureAtFrom,
      gapMs: a.gapMs,
      detectMs: down ? round(down.atMs - a.failureAt, 1) : null,
      outageMs: a.outageMs,
      failoverEvent: down?.text ?? null,
      lostBeforeFailure: a.lostBeforeFailure,
      failover: a.failover,
      recoveryCommand: rec.command,
      recoveryAtMs: round(rec.startMs - a.failureAt, 1),
      upAfterMs: up ? round(up.atMs - rec.startMs, 1) : null,
      failbackAtMs: back ? round(back.atMs - rec.startMs, 1) : null,
      firstWeb1AfterMs: a.firstWeb1AfterMs,
      failbackEvent: back?.text ?? null,
      failback: a.failback,
      series: seriesOf(shares[0], shares[1], stream.sent, {
        failure: a.failureAt, failover: down?.atMs, recovery: rec.startMs, failback: back?.atMs,
      }),
      total: a.total,
      lostAtViprPort: before && after ? Math.max(0, after.kernelRx - before.kernelRx - (after.viprRx - before.viprRx)) : null,
      sinkSocketDrops: sinkDrops,
      events: events.map((e) => `${e.time}  ${e.text}`),
      otherEvents,
      hostLoad1: round(load1, 2),
      durationMs: Math.round(monoMs() - t0),
    };
  } finally {
    if (injected && !recovered) await failure.cleanup();
    else if (opts.kind === 'drop') await failure.cleanup(); // removes the rules file
    await Promise.all([...started, ...sinks.map((s) => s.child)].map((c) => stopChild(c, 2000)));
    await follower?.stop();
    removeTempDir(dir);
  }
}

function failureCommandText(kind: FailureKind, prefix: string): string {
  return kind === 'link' ? `ip -n ${prefix}-web1 link set eth0 down` : kind === 'freeze' ? "kill -STOP <web1's web server>" : `nft in ${prefix}-web1: drop everything on eth0`;
}

function recoveryCommandText(kind: FailureKind, prefix: string): string {
  return kind === 'link'
    ? `ip -n ${prefix}-web1 link set eth0 up (and its default route again)`
    : kind === 'freeze'
      ? "kill -CONT <web1's web server>"
      : `nft delete table netdev ${NFT_TABLE} in ${prefix}-web1`;
}

interface Analysis {
  failureAt: number;
  failureAtFrom: FailoverTrial['failureAtFrom'];
  gapMs: number | null;
  outageMs: number | null;
  firstWeb1AfterMs: number | null;
  lostBeforeFailure: number;
  failover: PhaseCount;
  failback: PhaseCount;
  total: FailoverTrial['total'];
  problems: string[];
  disturbances: string[];
}

export interface FailoverSeries {
  binMs: number;
  /** CLOCK_MONOTONIC ms of the first bin. */
  startMs: number;
  web1: number[];
  web2: number[];
  marks: Record<'failure' | 'failover' | 'recovery' | 'failback', number | undefined>;
}

/** Arrivals per 20 ms bin at each server, from the sinks' timestamps. */
function seriesOf(web1: Share, web2: Share, sent: number, marks: FailoverSeries['marks']): FailoverSeries {
  const binMs = 20;
  let start = Infinity;
  let end = -Infinity;
  for (const share of [web1, web2]) {
    for (let seq = 0; seq < Math.min(sent, share.counts.length); seq++) {
      if (!share.counts[seq]) continue;
      start = Math.min(start, share.arrivalMs[seq]);
      end = Math.max(end, share.arrivalMs[seq]);
    }
  }
  if (!Number.isFinite(start)) return { binMs, startMs: 0, web1: [], web2: [], marks };
  const bins = Math.floor((end - start) / binMs) + 1;
  const count = (share: Share) => {
    const out = new Array<number>(bins).fill(0);
    for (let seq = 0; seq < Math.min(sent, share.counts.length); seq++) {
      if (share.counts[seq]) out[Math.floor((share.arrivalMs[seq] - start) / binMs)]++;
    }
    return out;
  };
  return { binMs, startMs: start, web1: count(web1), web2: count(web2), marks };
}

/** Merge the two sinks' records against the stream and split them into phases by send time. */
export function analyse(sent: number, web1: Share, web2: Share, kind: FailureKind, fail: Window, rec: Window): Analysis {
  const problems: string[] = [];
  const disturbances: string[] = [];
  const at = (s: Share, seq: number) => (seq < s.counts.length ? s.counts[seq] : 0);
  // web2's first packet, and web1's last one before it
  let firstWeb2 = Infinity;
  for (let seq = 0; seq < Math.min(sent, web2.counts.length); seq++) if (web2.counts[seq] && web2.arrivalMs[seq] < firstWeb2) firstWeb2 = web2.arrivalMs[seq];
  let lastWeb1 = -Infinity;
  for (let seq = 0; seq < Math.min(sent, web1.counts.length); seq++) {
    const t = web1.arrivalMs[seq];
    if (web1.counts[seq] && t <= firstWeb2 && t > lastWeb1) lastWeb1 = t;
  }
  let firstWeb1After = Infinity;
  for (let seq = 0; seq < Math.min(sent, web1.counts.length); seq++) {
    const t = web1.arrivalMs[seq];
    if (web1.counts[seq] && t >= rec.startMs && t < firstWeb1After) firstWeb1After = t;
  }

  let failureAt = fail.startMs;
  let failureAtFrom: FailoverTrial['failureAtFrom'] = kind === 'freeze' ? 'signal' : 'command start';
  // The last packet web1 got is the failure as the stream saw it, if the command can have caused it.
  if (kind !== 'freeze' && Number.isFinite(lastWeb1) && lastWeb1 >= fail.startMs - 2 && lastWeb1 <= fail.endMs + 2) {
    failureAt = lastWeb1;
    failureAtFrom = 'last packet at web1';
  }
  if (!Number.isFinite(firstWeb2)) problems.push('no packet ever reached web2');
  else if (firstWeb2 < fail.startMs) disturbances.push(`web2 got packets before the failure (${(fail.startMs - firstWeb2).toFixed(1)} ms before)`);
  if (!Number.isFinite(firstWeb1After)) problems.push('web1 got no packet after it returned');

  // Phases by send time: the sender's stamps of the packets that arrived; a lost
  // packet belongs to the phase of the packet before it (the stream is in order).
  const failoverFrom = failureAt - FAILURE_MARGIN_MS;
  const phase = [
    { sent: 0, lost: 0, duplicated: 0 },
    { sent: 0, lost: 0, duplicated: 0 },
    { sent: 0, lost: 0, duplicated: 0 },
  ];
  let current = 0;
  let received = 0;
  let distinct = 0;
  let switches = 0;
  let owner = -1;
  const shares = { web1: 0, web2: 0 };
  for (let seq = 0; seq < sent; seq++) {
    const c1 = at(web1, seq);
    const c2 = at(web2, seq);
    if (c1 + c2 > 0) {
      const stamp = c1 ? web1.sentMs[seq] : web2.sentMs[seq];
      current = stamp < failoverFrom ? 0 : stamp < rec.startMs ? 1 : 2;
      const now = c1 ? 0 : 1;
      if (owner >= 0 && now !== owner) switches++;
      owner = now;
      if (c1) shares.web1++;
      if (c2) shares.web2++;
      received += c1 + c2;
      distinct++;
      phase[current].duplicated += c1 + c2 - 1;
    } else {
      phase[current].lost++;
    }
    phase[current].sent++;
  }
  let unexpected = 0;
  for (const s of [web1, web2]) for (let seq = sent; seq < s.counts.length; seq++) unexpected += s.counts[seq];
  if (unexpected > 0) problems.push(`${unexpected} packets with numbers never sent`);
  return {
    failureAt,
    failureAtFrom,
    gapMs: Number.isFinite(firstWeb2) ? round(firstWeb2 - failureAt, 1) : null,
    outageMs: Number.isFinite(firstWeb2) && Number.isFinite(lastWeb1) ? round(firstWeb2 - lastWeb1, 2) : null,
    firstWeb1AfterMs: Number.isFinite(firstWeb1After) ? round(firstWeb1After - rec.startMs, 1) : null,
    lostBeforeFailure: phase[0].lost,
    failover: phase[1],
    failback: phase[2],
    total: { sent, received, distinct, lost: sent - distinct, duplicated: received - distinct, unexpected, shares, switches },
    problems,
    disturbances,
  };
}

/** Pin vipr to the CPU the generator does not use, and (rt) make it SCHED_FIFO 20, as bench/reroute.ts's vipr-rt. */
export async function placeVipr(pid: number, rt: boolean, generatorCpu = 0): Promise<string> {
  const cpu = generatorCpu === 0 ? 1 : 0;
  const pinned = await pinToCpu(pid, cpu);
  const fifo = rt ? await makeRealtime(pid) : false;
  if (rt && !fifo) throw new Error('could not make vipr SCHED_FIFO (chrt)');
  return `${pinned ? `CPU ${cpu}` : 'any CPU'}, ${fifo ? 'SCHED_FIFO 20' : 'normal scheduling'}`;
}

