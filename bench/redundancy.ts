// Redundancy: a pair of vipr routers that survives one of them, measured.
//
// The lab (lab/lab.sh up --routers 2): the client sends through an upstream
// router (BIRD, BGP with BFD 50 ms x 3 to both vipr routers, ECMP `merge
// paths`, L4 hash) to router1 and router2 (vipr + BIRD + keepalived holding the
// servers' gateway 192.168.1.1 by VRRPv3, 50 ms adverts). Under load:
//   - a numbered UDP stream (lab/udp-stream.c, --rate packets/s, --flows
//     source ports so the ECMP hash spreads it over both routers) to the VIP
//     192.168.1.33, which both routers send to web1; a timestamping sink in
//     web1 records every number (the C sink of bench/failover.ts);
//   - --downloads concurrent long TCP downloads from the client to the four
//     VIPs (lab/downloads.mjs: /slow/BYTES/RATE, each lasting BYTES/RATE s),
//     counting connections reset or cut short.
// One router fails, the one holding the VRRP address (the worst case: it
// carries its share of the stream and every download's return traffic):
//   kill      kill -9 of its vipr
//   uplink    its up0 goes down (ip link set up0 down, in its namespace)
//   lanlink   its lan0 goes down
//   session   the upstream's BGP session to it goes down (birdc disable)
//   shutdown  a planned `vipr ctl shutdown`
// and comes back after each trial (vipr started again, link up, session
// enabled), until both routers announce every VIP prefix again.
//
// Per trial (every timestamp CLOCK_MONOTONIC, shared by all namespaces):
//   outage    the longest any flow of the stream went without a packet, minus
//             its packet interval, over the gaps that end after the failure:
//             how long until the failed router's flows came through the other
//   lost      numbers sent but never received (after the failure's start; those
//             lost before it are a stall of the machine, reported apart)
//   tcp       downloads completed, reset, cut short, failed; the longest stall
// Before the trials, with both routers up: each router's share of the stream
// (packets the upstream sent on each router's port while it ran).
//
// The routers run without health checks unless --checks: on this two-CPU box,
// a router that takes all the load after its peer failed answers some checks
// late (50 ms timeout) and moves a VIP to its backup server on that router
// alone; the downloads of that VIP through it then land on a server that does
// not know them and are reset (seen: up to 50 resets in a trial, with nothing
// lost). That is two routers disagreeing on a flow's server, what item 4 of
// issue 11 (flow tables, the same placement on every router) is for, not a
// failover of the pair.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/redundancy.js [--trials 10] [--kinds kill,uplink,lanlink,session,shutdown]
//        [--rate 20000] [--flows 64] [--downloads 100] [--lead 1000] [--after 2000] [--checks] [--out FILE]
// Writes bench/results/redundancy-YYYY-MM-DD[THHMMSS].json and prints a table.
// Needs root, cc, bird2 and keepalived (scripts/setup.sh installs them).
//
// measureTrial(), settle() and the rest are also used by test/lab/pair.test.ts.

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSink } from './failover.js';
import { buildStream, type StreamReport } from './reroute.js';
import {
  benchLabUp, labBenchRefusal, listeningChild, numberArg, onLines, REPO_ROOT, run, runIfMain, sleep, startViprIn, stdoutClosed, stopChild,
  teardownOnExit, VIPR_CLI, type ExecResult, type TrialLab,
} from './lab/common.js';

export const PAIR_VIP = '192.168.1.33';
export const PAIR_PORT = 9999;
export const GATEWAY = '192.168.1.1';
export const VIP_PREFIXES = ['192.168.1.32/27', '192.168.1.64/27', '192.168.1.96/27', '192.168.1.128/27'];
export type RouterName = 'router1' | 'router2';
export const ROUTERS: readonly RouterName[] = ['router1', 'router2'];

export type PairFailure = 'kill' | 'uplink' | 'lanlink' | 'session' | 'shutdown';
export const PAIR_FAILURES: readonly PairFailure[] = ['kill', 'uplink', 'lanlink', 'session', 'shutdown'];
export const FAILURE_TEXT: Record<PairFailure, string> = {
  kill: "kill -9 of the router's vipr",
  uplink: "the router's link to the upstream goes down (up0)",
  lanlink: "the router's link to the servers goes down (lan0)",
  session: "the upstream's BGP session to the router goes down (birdc disable)",
  shutdown: 'planned stop: vipr ctl shutdown',
};

const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ---- the routers ---------------------------------------------------------------------------------

/** One router of the pair: its vipr (while it runs) and where its files are. */
export interface PairRouter {
  name: RouterName;
  config: string;
  socket: string;
  vipr?: ChildProcess;
  logs: string[];
}

export function pairRouters(prefix: string): PairRouter[] {
  return ROUTERS.map((name) => ({
    name,
    config: `/run/vipr-lab/${prefix}/${name}/vipr.yaml`,
    socket: `/run/vipr-lab/${prefix}/${name}/vipr.sock`,
    logs: [],
  }));
}

/** Starts the router's vipr (waits for `ready:`). */
export async function startRouter(lab: TrialLab, router: PairRouter, config = router.config): Promise<void> {
  router.logs.length = 0;
  const { child } = await startViprIn(lab, config, (line) => {
    if (router.logs.length < 5000) router.logs.push(line);
  }, router.name);
  router.vipr = child;
}

/** `vipr ctl --socket SOCK ARGS...` in the router's namespace. */
export function routerCtl(lab: TrialLab, router: PairRouter, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
  return lab.exec(router.name, [process.execPath, VIPR_CLI, 'ctl', '--socket', router.socket, ...args], { timeoutMs });
}

/** The router holding the servers' gateway address now, if exactly one does. */
export async function vrrpMaster(lab: TrialLab): Promise<RouterName | undefined> {
  const holders: RouterName[] = [];
  for (const name of ROUTERS) {
    const r = await lab.exec(name, ['ip', '-br', '-4', 'addr', 'show', 'dev', 'lan0']);
    if (r.stdout.includes(`${GATEWAY}/`)) holders.push(name);
  }
  return holders.length === 1 ? holders[0] : undefined;
}

/** For each VIP prefix, the routers the upstream's kernel sends it to (10.0.0.1 = router1, 10.0.0.2 = router2). */
export async function upstreamNextHops(lab: TrialLab): Promise<Record<string, RouterName[]>> {
  const r = await lab.exec('upstream', ['ip', '-j', 'route', 'show', 'proto', 'bird']);
  const out: Record<string, RouterName[]> = Object.fromEntries(VIP_PREFIXES.map((p) => [p, []]));
  try {
    const routes = JSON.parse(r.stdout || '[]') as Array<{ dst: string; gateway?: string; nexthops?: Array<{ gateway: string }> }>;
    for (const route of routes) {
      const gateways = route.nexthops ? route.nexthops.map((n) => n.gateway) : route.gateway ? [route.gateway] : [];
      if (route.dst in out) out[route.dst] = gateways.map((g) => (g === '10.0.0.1' ? 'router1' : 'router2'));
    }
  } catch {
    /* no routes yet */
  }
  return out;
}

/**
 * Until both routers run vipr, the upstream sends every VIP prefix to both,
 * and one router holds the gateway address. Throws after `timeoutMs`.
 */
export async function settle(lab: TrialLab, timeoutMs = 30_000): Promise<RouterName> {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const hops = await upstreamNextHops(lab);
    const master = await vrrpMaster(lab);
    const both = VIP_PREFIXES.every((p) => hops[p].length === 2);
    if (both && master) return master;
    last = `upstream: ${JSON.stringify(hops)}; VRRP master: ${master ?? 'none or both'}`;
    if (Date.now() > end) throw new Error(`the pair did not settle within ${timeoutMs} ms: ${last}`);
    await sleep(100);
  }
}

/** Packets the upstream sent on each router's port (its bridge port towards that router). */
async function upstreamTx(lab: TrialLab): Promise<Record<RouterName, number>> {
  const r = await lab.exec('upstream', ['ip', '-s', '-j', 'link', 'show']);
  const links = JSON.parse(r.stdout) as Array<{ ifname: string; stats64?: { tx: { packets: number } } }>;
  const tx = (name: string) => links.find((l) => l.ifname === name)?.stats64?.tx.packets ?? 0;
  return { router1: tx('p-router1'), router2: tx('p-router2') };
}

// ---- the failures --------------------------------------------------------------------------------

interface Failure {
  command: string;
  inject(): Promise<void>;
  /** Undoes it and waits until the pair has settled again. */
  recover(): Promise<void>;
}

function failureOf(kind: PairFailure, lab: TrialLab, router: PairRouter): Failure {
  const ns = `${lab.prefix}-${router.name}`;
  const must = async (p: Promise<ExecResult>, what: string) => {
    const r = await p;
    if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  };
  const restart = async () => {
    if (router.vipr && router.vipr.exitCode === null && router.vipr.signalCode === null) await stopChild(router.vipr, 5000);
    await startRouter(lab, router);
  };
  switch (kind) {
    case 'kill':
      return {
        command: `kill -9 $(pid of vipr in ${ns})`,
        inject: async () => void router.vipr?.kill('SIGKILL'),
        recover: restart,
      };
    case 'shutdown':
      return {
        command: `ip netns exec ${ns} vipr ctl shutdown`,
        inject: () => must(routerCtl(lab, router, ['shutdown'], 30_000), 'vipr ctl shutdown'),
        recover: restart,
      };
    case 'uplink':
    case 'lanlink': {
      const port = kind === 'uplink' ? 'up0' : 'lan0';
      return {
        command: `ip -n ${ns} link set ${port} down`,
        inject: () => must(run('ip', ['-n', ns, 'link', 'set', port, 'down']), `${port} down`),
        recover: () => must(run('ip', ['-n', ns, 'link', 'set', port, 'up']), `${port} up`),
      };
    }
    case 'session': {
      const socket = `/run/vipr-lab/${lab.prefix}/upstream/bird.ctl`;
      return {
        command: `birdc -s upstream/bird.ctl disable ${router.name}`,
        inject: () => must(run('birdc', ['-s', socket, 'disable', router.name]), 'birdc disable'),
        recover: () => must(run('birdc', ['-s', socket, 'enable', router.name]), 'birdc enable'),
      };
    }
  }
}

// ---- the load ------------------------------------------------------------------------------------

interface SinkRecord {
  counts: Uint8Array;
  arrivalMs: Float64Array;
  sentMs: Float64Array;
  socketDrops: number;
}

function readFloat64(file: string): Float64Array {
  if (!existsSync(file)) return new Float64Array(0);
  const bytes = new Uint8Array(readFileSync(file));
  const values = new Float64Array(bytes.buffer, 0, Math.floor(bytes.length / 8));
  for (let i = 0; i < values.length; i++) values[i] /= 1000; // µs -> ms
  return values;
}

async function startSink(lab: TrialLab, runId: number, dir: string): Promise<{ stop(): Promise<SinkRecord> }> {
  const out = join(dir, 'web1');
  const child = lab.spawn('web1', [await buildSink(), PAIR_VIP, String(PAIR_PORT), String(runId), out]);
  const { lines, stderr } = await listeningChild(child, 'the sink in web1');
  return {
    stop: async () => {
      await stopChild(child, 5000);
      await stdoutClosed(child);
      const line = lines.find((l) => l.includes('"summary"'));
      if (!line) throw new Error(`the sink in web1 wrote no summary: ${stderr().trim()}`);
      const summary = JSON.parse(line) as { socketDrops: number | null };
      return {
        counts: existsSync(`${out}.count`) ? new Uint8Array(readFileSync(`${out}.count`)) : new Uint8Array(0),
        arrivalMs: readFloat64(`${out}.arrival`),
        sentMs: readFloat64(`${out}.sent`),
        socketDrops: summary.socketDrops ?? 0,
      };
    },
  };
}

export interface DownloadSummary {
  connections: number;
  completed: number;
  reset: number;
  short: number;
  failed: number;
  unfinished: number;
  bytes: number;
  errors: Record<string, number>;
  maxStallMs: number;
}

async function startDownloads(lab: TrialLab, count: number, bytes: number, rate: number): Promise<{ done: Promise<DownloadSummary>; stop(): Promise<DownloadSummary> }> {
  const child = lab.spawn('client', [process.execPath, join(REPO_ROOT, 'lab/downloads.mjs'), '--count', String(count), '--bytes', String(bytes), '--rate', String(rate)]);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderr += c));
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  let summarize!: (s: DownloadSummary) => void;
  const done = new Promise<DownloadSummary>((r) => (summarize = r));
  onLines(child.stdout, (line) => {
    lines.push(line);
    if (line.includes('"started"')) started();
    if (line.includes('"summary"')) summarize(JSON.parse(line) as DownloadSummary);
  });
  child.once('exit', () => {
    started();
    setTimeout(() => summarize({ connections: count, completed: 0, reset: 0, short: 0, failed: count, unfinished: 0, bytes: 0, errors: { exited: 1, [stderr.trim().slice(0, 200)]: 1 }, maxStallMs: 0 }), 500);
  });
  const timer = setTimeout(() => started(), 30_000);
  await startedP;
  clearTimeout(timer);
  return {
    done,
    stop: async () => {
      child.kill('SIGTERM');
      return done;
    },
  };
}

// ---- one trial -----------------------------------------------------------------------------------

export interface TrialOptions {
  kind: PairFailure;
  rate: number;
  flows: number;
  downloads: number;
  /** Each download's size and speed: it lasts bytes/downloadRate seconds. */
  downloadBytes: number;
  downloadRate: number;
  leadMs: number;
  afterMs: number;
}

export interface PairTrial {
  kind: PairFailure;
  router: RouterName;
  command: string;
  ok: boolean;
  problems: string[];
  sent: number;
  /** after the failure's start (minus 20 ms: frames already on their way) */
  lost: number;
  lostBeforeFailure: number;
  duplicates: number;
  /** flows (of `flows`) that lost a packet after the failure */
  flowsHit: number;
  /** the longest a flow went without a packet, over gaps ending after the failure, minus its packet interval, ms */
  outageMs: number;
  /** the same before the failure: how much the machine alone stalls the stream */
  stallBeforeMs: number;
  tcp: DownloadSummary;
  sinkSocketDrops: number;
  stream: StreamReport;
  hostLoad1: number;
}

export interface PairContext {
  lab: TrialLab;
  routers: PairRouter[];
  progress?: (line: string) => void;
}

/** One trial; the failed router is back and the pair settled when it returns (also after an error). */
export async function measureTrial(ctx: PairContext, opts: TrialOptions): Promise<PairTrial> {
  const { lab } = ctx;
  const say = (line: string) => ctx.progress?.(line);
  const masterName = await settle(lab);
  const router = ctx.routers.find((r) => r.name === masterName)!;
  const failure = failureOf(opts.kind, lab, router);
  const dir = mkdtempSync(join(tmpdir(), `vipr-redundancy-${lab.prefix}-`));
  const runId = randomInt(1, 0x7fffffff);
  const problems: string[] = [];
  let injected = false;
  let gen: ChildProcess | undefined;
  try {
    const sink = await startSink(lab, runId, dir);
    const downloads = await startDownloads(lab, opts.downloads, opts.downloadBytes, opts.downloadRate);
    const seconds = Math.ceil((opts.leadMs + opts.afterMs) / 1000) + 30;
    gen = lab.spawn('client', [await buildStream(), '--dst', PAIR_VIP, '--port', String(PAIR_PORT), '--rate', String(opts.rate), '--run-id', String(runId), '--flows', String(opts.flows), '--duration', String(seconds)]);
    const genLines: string[] = [];
    onLines(gen.stdout, (l) => genLines.push(l));
    say(`${opts.kind}: ${opts.rate} packets/s in ${opts.flows} flows and ${opts.downloads} downloads; ${masterName} holds ${GATEWAY}`);
    await sleep(opts.leadMs);
    const failureAt = monoMs();
    injected = true;
    await failure.inject();
    say(`${opts.kind}: ${failure.command}`);
    await sleep(Math.max(0, failureAt + opts.afterMs - monoMs()));
    await stopChild(gen, 5000, 'SIGTERM');
    await stdoutClosed(gen);
    const genLine = genLines.find((l) => l.startsWith('{'));
    if (!genLine) throw new Error('udp-stream printed no report');
    const stream = JSON.parse(genLine) as StreamReport;
    await sleep(300);
    const record = await sink.stop();
    const load = loadavg()[0];
    const tcp = await Promise.race([downloads.done, sleep((opts.downloadBytes / opts.downloadRate) * 1000 + 30_000).then(() => downloads.stop())]);
    const a = analyse(record, stream.sent, opts.flows, opts.rate, failureAt);
    if (record.socketDrops > 0) problems.push(`the sink dropped ${record.socketDrops} packets (socket buffer full): counted as lost`);
    if (tcp.reset > 0) problems.push(`${tcp.reset} TCP connection(s) reset`);
    if (tcp.short + tcp.failed + tcp.unfinished > 0) problems.push(`${tcp.short} download(s) cut short, ${tcp.failed} failed, ${tcp.unfinished} unfinished`);
    return {
      kind: opts.kind, router: router.name, command: failure.command, ok: problems.length === 0, problems,
      sent: stream.sent, ...a, tcp, sinkSocketDrops: record.socketDrops, stream, hostLoad1: round(load, 2),
    };
  } finally {
    if (gen && gen.exitCode === null) await stopChild(gen, 2000);
    rmSync(dir, { recursive: true, force: true });
    if (injected) {
      await failure.recover();
      await settle(lab, 60_000);
    }
  }
}

function analyse(record: SinkRecord, sent: number, flows: number, rate: number, failureAt: number) {
  const { counts, arrivalMs, sentMs } = record;
  let firstSeq = -1;
  for (let i = 0; i < counts.length; i++) if (counts[i] > 0) { firstSeq = i; break; }
  const sentAt = (seq: number) => (counts[seq] > 0 ? sentMs[seq] : firstSeq >= 0 ? sentMs[firstSeq] + ((seq - firstSeq) * 1000) / rate : 0);
  let lost = 0;
  let lostBefore = 0;
  let duplicates = 0;
  const hit = new Set<number>();
  for (let seq = 0; seq < sent; seq++) {
    const c = seq < counts.length ? counts[seq] : 0;
    if (c > 1) duplicates += c - 1;
    if (c > 0) continue;
    if (sentAt(seq) < failureAt - 20) lostBefore++;
    else {
      lost++;
      hit.add(seq % flows);
    }
  }
  const interval = (1000 * flows) / rate;
  let outage = 0;
  let before = 0;
  for (let f = 0; f < flows; f++) {
    let previous = -1;
    for (let seq = f; seq < Math.min(sent, counts.length); seq += flows) {
      if (counts[seq] === 0) continue;
      if (previous >= 0) {
        const gap = arrivalMs[seq] - arrivalMs[previous] - interval;
        if (arrivalMs[seq] >= failureAt) outage = Math.max(outage, gap);
        else before = Math.max(before, gap);
      }
      previous = seq;
    }
  }
  return { lost, lostBeforeFailure: lostBefore, duplicates, flowsHit: hit.size, outageMs: round(Math.max(0, outage)), stallBeforeMs: round(Math.max(0, before)) };
}

/** Each router's share of a stream while both are up: what the upstream sent on each router's port. */
export async function measureSpread(ctx: PairContext, opts: { rate: number; flows: number; seconds: number }): Promise<Record<RouterName, number>> {
  const { lab } = ctx;
  await settle(lab);
  const before = await upstreamTx(lab);
  const gen = lab.spawn('client', [await buildStream(), '--dst', PAIR_VIP, '--port', String(PAIR_PORT), '--rate', String(opts.rate), '--run-id', '1', '--flows', String(opts.flows), '--duration', String(opts.seconds)]);
  await new Promise((r) => gen.once('exit', r));
  const after = await upstreamTx(lab);
  const d1 = after.router1 - before.router1;
  const d2 = after.router2 - before.router2;
  return { router1: round(d1 / (d1 + d2), 3), router2: round(d2 / (d1 + d2), 3) };
}

// ---- the bench -----------------------------------------------------------------------------------

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<number> {
  const refusal = labBenchRefusal();
  if (refusal) throw new Error(refusal);
  const argv = process.argv.slice(2);
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const trials = numberArg('--trials', arg('--trials') ?? '10', 1, 1000);
  const kinds = (arg('--kinds') ?? PAIR_FAILURES.join(',')).split(',') as PairFailure[];
  for (const k of kinds) if (!PAIR_FAILURES.includes(k)) throw new Error(`--kinds: unknown ${k} (${PAIR_FAILURES.join(',')})`);
  const opts = {
    rate: numberArg('--rate', arg('--rate') ?? '20000', 1, 1_000_000),
    flows: numberArg('--flows', arg('--flows') ?? '64', 1, 1024),
    downloads: numberArg('--downloads', arg('--downloads') ?? '100', 0, 1000),
    downloadBytes: numberArg('--download-bytes', arg('--download-bytes') ?? '200000', 1, 1e9),
    downloadRate: numberArg('--download-rate', arg('--download-rate') ?? '25000', 1, 1e9),
    leadMs: numberArg('--lead', arg('--lead') ?? '1000', 0, 60_000),
    afterMs: numberArg('--after', arg('--after') ?? '2000', 100, 60_000),
  };
  teardownOnExit('redundancy');
  const prefix = `r${randomInt(36 ** 5).toString(36).padStart(5, '0')}`;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`redundancy: lab ${prefix} (lab.sh up --routers 2)`);
  const lab = await benchLabUp(prefix, ['--routers', '2']);
  const routers = pairRouters(prefix);
  if (!argv.includes('--checks')) {
    for (const router of routers) writeFileSync(router.config, readFileSync(router.config, 'utf8').replace(/, checks: \[[^\]]*\]/g, ''));
  }
  const ctx: PairContext = { lab, routers, progress: (line) => log(`  ${line}`) };
  const results: PairTrial[] = [];
  let spread: Record<RouterName, number> | undefined;
  try {
    // router1 first, so that it takes the VRRP address; then router2.
    await startRouter(lab, routers[0]);
    await sleep(500);
    await startRouter(lab, routers[1]);
    await settle(lab);
    spread = await measureSpread(ctx, { rate: opts.rate, flows: opts.flows, seconds: 3 });
    log(`both up: router1 ${(spread.router1 * 100).toFixed(1)} %, router2 ${(spread.router2 * 100).toFixed(1)} % of the stream`);
    for (let t = 0; t < trials; t++) {
      for (const kind of kinds) {
        const trial = await measureTrial(ctx, { ...opts, kind });
        results.push(trial);
        log(`  -> outage ${trial.outageMs} ms, lost ${trial.lost} (${trial.flowsHit} flows), tcp reset ${trial.tcp.reset} short ${trial.tcp.short} failed ${trial.tcp.failed}, stall ${trial.tcp.maxStallMs} ms${trial.problems.length ? `; ${trial.problems.join('; ')}` : ''}`);
      }
    }
  } finally {
    await lab.down();
  }
  const summary = kinds.map((kind) => {
    const of = results.filter((r) => r.kind === kind);
    return {
      kind, text: FAILURE_TEXT[kind], trials: of.length,
      outageMedianMs: median(of.map((r) => r.outageMs)), outageMaxMs: Math.max(...of.map((r) => r.outageMs)),
      lostMedian: median(of.map((r) => r.lost)), lostMax: Math.max(...of.map((r) => r.lost)),
      tcpReset: of.reduce((n, r) => n + r.tcp.reset, 0), tcpShortOrFailed: of.reduce((n, r) => n + r.tcp.short + r.tcp.failed + r.tcp.unfinished, 0),
      tcpMaxStallMs: Math.max(...of.map((r) => r.tcp.maxStallMs)),
    };
  });
  process.stdout.write(`\n${'failure'.padEnd(10)} ${'trials'.padStart(6)} ${'outage p50'.padStart(11)} ${'max'.padStart(7)} ${'lost p50'.padStart(9)} ${'max'.padStart(6)} ${'tcp reset'.padStart(9)} ${'short'.padStart(6)}\n`);
  for (const s of summary) {
    process.stdout.write(`${s.kind.padEnd(10)} ${String(s.trials).padStart(6)} ${String(s.outageMedianMs).padStart(9)}ms ${String(s.outageMaxMs).padStart(5)}ms ${String(s.lostMedian).padStart(9)} ${String(s.lostMax).padStart(6)} ${String(s.tcpReset).padStart(9)} ${String(s.tcpShortOrFailed).padStart(6)}\n`);
  }
  if (spread) process.stdout.write(`both routers up: router1 ${(spread.router1 * 100).toFixed(1)} %, router2 ${(spread.router2 * 100).toFixed(1)} % of the stream\n`);
  const stamp = new Date().toISOString();
  const dir = join(REPO_ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  let out = arg('--out') ?? join(dir, `redundancy-${stamp.slice(0, 10)}.json`);
  if (!arg('--out') && existsSync(out)) out = join(dir, `redundancy-${stamp.slice(0, 10)}T${stamp.slice(11, 19).replace(/:/g, '')}.json`);
  writeFileSync(resolve(out), `${JSON.stringify({ date: stamp, command: `node dist/bench/redundancy.js ${argv.join(' ')}`.trim(), options: { ...opts, trials, kinds, checks: argv.includes('--checks') }, hostLoad1: loadavg()[0], spread, summary, trials: results }, null, 2)}\n`);
  process.stdout.write(`results: ${out}\n`);
  return 0;
}

runIfMain(import.meta.url, 'redundancy', main);
