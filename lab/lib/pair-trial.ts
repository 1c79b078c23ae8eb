// A pair of vipr routers in the lab (lab/lab.sh up --routers 2) under load:
// the routers, the failures, the load (a numbered UDP stream and long TCP
// downloads) and one measured trial. Shared by bench/redundancy.ts (the
// figures) and test/lab/pair.test.ts (the behaviour).

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSink } from './failover-trial.js';
import { bringLabUp, startViprIn, teardownOnExit, VIPR_CLI, type TrialLab } from './lab.js';
import { listeningChild, onLines, REPO_ROOT, run, sleep, stdoutClosed, stopChild, type ExecResult } from './process.js';
import { buildStream, type StreamReport } from './stream.js';

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
  }, [], router.name);
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

