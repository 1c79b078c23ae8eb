// The forwarding bench's measurements of one router: flat-out rate (and who
// was the limit: the router or the generator), the highest zero-loss rate,
// ping latency.

import { loadavg } from 'node:os';
import { dropsDelta, linkDelta } from '../../lab/lib/counters.js';
import { sleep } from '../../lab/lib/process.js';
import { round } from '../lib/program.js';
import type { Ctx } from './context.js';
import { readInner, readOuter, snmpDelta } from './counters.js';
import { generatorCeiling, pacedRun, percentile, startFlatOut, type GeneratorRun, type SearchGenerator } from './generators.js';
import { cpuSnapshot, cpuUse, waitQuiet, type CpuUse, type Quiet } from './host.js';
import { frameOf, GEN_CPU, ROUTER_CPU, SPECS, VIP, type SizeName } from './modes.js';
import { eventsBetween } from './routers.js';

/**
 * Who limited a flat-out trial. The router, if it lost frames (offered at the
 * client's eth0 but not delivered) or pushed back (the generator's sends were
 * refused: on veth, the receiving side's queue was full, which a generator
 * that retries turns into a lower offered rate, not a loss). Otherwise the
 * generator: the router delivered everything it was offered, so its figure is
 * a lower bound ("≥"). Within `tolerance` (a share of what was offered).
 */
export interface Verdict {
  limit: 'router' | 'generator';
  why: string;
}

/** A router CPU this busy (%) had no time left: with a generator that cannot see push-back, the router was the limit. */
const SATURATED_CPU_PERCENT = 95;

const share = (x: number) => `${(100 * x).toFixed(x < 0.01 ? 2 : 1)}%`;

export function judge(
  o: { offered: number; delivered: number; refused: number | null; routerCpuBusy?: number; spins?: boolean },
  tolerance: number,
): Verdict {
  const cpu = o.routerCpuBusy === undefined ? '' : `; CPU ${ROUTER_CPU} ${o.routerCpuBusy}% busy`;
  const lost = o.offered > 0 ? (o.offered - o.delivered) / o.offered : 0;
  const refused = o.refused !== null && o.offered > 0 ? o.refused / o.offered : 0;
  if (lost > tolerance) return { limit: 'router', why: `lost ${share(lost)} of the frames offered${cpu}` };
  if (refused > tolerance) return { limit: 'router', why: `pushed back: the generator's sends were refused ${o.refused} times (${share(refused)} of the frames offered)${cpu}` };
  // A generator that does not report refusals (trafgen) hides push-back; a
  // router CPU that was all busy (and does not spin by design) says it anyway.
  if (o.refused === null && !o.spins && (o.routerCpuBusy ?? 0) >= SATURATED_CPU_PERCENT) {
    return { limit: 'router', why: `delivered all it was offered, but its CPU was saturated: push-back not visible (trafgen)${cpu}` };
  }
  return {
    limit: 'generator',
    why: `delivered ${share(o.delivered / Math.max(1, o.offered))} of the frames offered, ${o.refused === null ? 'push-back not visible (trafgen)' : o.refused ? `refused ${o.refused} times` : 'no push-back'}${cpu}: the generator was the limit`,
  };
}

export interface FlatTrial {
  size: SizeName;
  windowSeconds: number;
  /** frames/s over the window, at the client's eth0 (what left the generator), at up0 and at the sinks */
  offeredPps: number;
  routerRxPps: number;
  deliveredPps: number;
  deliveredMbps: number;
  /** the whole run, ramp and drain included (frames) */
  totals: {
    clientTx: number;
    /** frames the client's veth dropped (tx_dropped), and up0's rx_dropped */
    clientTxDropped: number;
    up0Rx: number;
    up0RxDropped: number;
    lan0Tx: number;
    web1Rx: number;
    delivered: number;
    /** of those, at web2 (the VIP's backup: vipr moved the route) */
    deliveredAtWeb2: number;
    /** vipr modes: frames vipr read on up0, forwarded to lan0, and its drops */
    viprRx?: number;
    viprForwarded?: number;
    viprDrops?: Record<string, number>;
    /** kernel up0 rx - vipr up0 rx: never read by vipr (its socket buffer / ring was full) */
    lostAtViprPort?: number;
    /** ring-transit without vipr support: frames the bench's nft rule on up0 dropped after the taps */
    transitDroppedByNft?: number;
  };
  /** the generator processes and what they said */
  generator: GeneratorRun;
  /** who was the limit (see Verdict) */
  limit: Verdict;
  /** the same trial with fewer generator processes, when it was generator-bound (the offered rate was raised) */
  raisedFrom?: Array<{ processes: number; offeredPps: number; deliveredPps: number; limit: Verdict }>;
  /** router's kernel IP counters over the run (Ip: InReceives, InAddrErrors, ForwDatagrams, ...) */
  routerKernel: Record<string, number>;
  cpu: CpuUse;
  loadavg1: number;
  /** how quiet the box was before the trial (and how long we waited for it) */
  quiet: Quiet;
  /** vipr modes: the daemon's health/failover events during the trial */
  healthEvents: string[];
}

/** One flat-out run with `processes` generators: a 1 s ramp, then counters over `seconds`. */
async function flatOutOnce(ctx: Ctx, size: SizeName, seconds: number, processes: number): Promise<FlatTrial> {
  const { lab } = ctx;
  const quiet = await waitQuiet(lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const A = await readOuter(lab);
  const tStart = performance.now();
  const gen = await startFlatOut(ctx, size, processes);
  let stopped: GeneratorRun | undefined;
  try {
    await sleep(1000);
    const early = gen.early();
    if (early) throw new Error(early);
    const cpuB = cpuSnapshot(lab.netns, ctx.router?.pid);
    const B = await readInner(lab);
    await sleep(seconds * 1000);
    const C = await readInner(lab);
    const cpuC = cpuSnapshot(lab.netns, ctx.router?.pid);
    const load1 = loadavg()[0];
    stopped = await gen.stop();
    await sleep(300);
    const D = await readOuter(lab);
    const dDel = C.delivered.value - B.delivered.value;
    const dDelS = (C.delivered.t - B.delivered.t) / 1000;
    const client = linkDelta(B.client.value, C.client.value);
    const up0 = linkDelta(B.up0.value, C.up0.value);
    const totals: FlatTrial['totals'] = {
      clientTx: D.client.value.tx - A.client.value.tx,
      clientTxDropped: D.client.value.txDropped - A.client.value.txDropped,
      up0Rx: D.up0.value.rx - A.up0.value.rx,
      up0RxDropped: D.up0.value.rxDropped - A.up0.value.rxDropped,
      lan0Tx: D.lan0.value.tx - A.lan0.value.tx,
      web1Rx: D.web1.value.rx - A.web1.value.rx,
      delivered: D.delivered.value - A.delivered.value,
      deliveredAtWeb2: D.deliveredWeb2 - A.deliveredWeb2,
    };
    if (A.vipr && D.vipr) {
      totals.viprRx = D.vipr.up0Rx - A.vipr.up0Rx;
      totals.viprForwarded = D.vipr.forwarded - A.vipr.forwarded;
      totals.viprDrops = dropsDelta(A.vipr.drops, D.vipr.drops);
      totals.lostAtViprPort = Math.max(0, totals.up0Rx - totals.viprRx);
    }
    if (A.routerDrop && D.routerDrop) totals.transitDroppedByNft = D.routerDrop.value - A.routerDrop.value;
    const cpu = cpuUse(cpuB, cpuC);
    const refused = stopped.refused === null ? null : stopped.refused + totals.clientTxDropped;
    return {
      size,
      windowSeconds: round(dDelS, 3),
      offeredPps: round(client.tx / ((C.client.t - B.client.t) / 1000)),
      routerRxPps: round(up0.rx / ((C.up0.t - B.up0.t) / 1000)),
      deliveredPps: round(dDel / dDelS),
      deliveredMbps: round(((dDel / dDelS) * (frameOf(size) + 4) * 8) / 1e6, 1),
      totals,
      generator: stopped,
      limit: judge({ offered: totals.clientTx, delivered: totals.delivered, refused, routerCpuBusy: cpu.perCpu[`cpu${ROUTER_CPU}`]?.busy, spins: SPECS[lab.mode].busyPoll || SPECS[lab.mode].vipr?.busyPoll }, ctx.tolerance),
      routerKernel: snmpDelta(A.snmp, D.snmp),
      cpu,
      loadavg1: round(load1, 2),
      quiet,
      healthEvents: eventsBetween(ctx.router, tStart, performance.now()),
    };
  } finally {
    if (!stopped) await gen.stop();
  }
}

/**
 * Flat out for a 1 s ramp plus `seconds`. When the router delivered all it
 * was offered (generator-bound), the trial is run again with one more
 * generator process on CPU 0, up to ctx.maxGenerators: the figure kept is the
 * last one, the earlier ones are in `raisedFrom`.
 */
export async function flatOut(ctx: Ctx, size: SizeName, seconds: number): Promise<FlatTrial> {
  const earlier: NonNullable<FlatTrial['raisedFrom']> = [];
  for (let processes = ctx.generators; ; processes++) {
    const t = await flatOutOnce(ctx, size, seconds, processes);
    if (t.limit.limit === 'router' || processes >= ctx.maxGenerators) {
      if (earlier.length) t.raisedFrom = earlier;
      return t;
    }
    earlier.push({ processes, offeredPps: t.offeredPps, deliveredPps: t.deliveredPps, limit: t.limit });
  }
}

// ---- the zero-loss search -------------------------------------------------------------------------

export interface PacedTrial {
  targetPps: number;
  achievedPps: number;
  sent: number;
  delivered: number;
  lost: number;
  /** sends the router refused (pace's retries): on a wire those frames would be lost */
  refused: number | null;
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
  const quiet = await waitQuiet(lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const A = await readOuter(lab);
  const tStart = performance.now();
  const cpuA = cpuSnapshot(lab.netns, ctx.router?.pid);
  const rep = await pacedRun(ctx, gen, rate, count, (seconds * 4 + 20) * 1000);
  const cpuB = cpuSnapshot(lab.netns, ctx.router?.pid);
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
    refused: rep.refused === null ? null : rep.refused + (D.client.value.txDropped - A.client.value.txDropped),
    generatorHeld: rep.achievedPps >= 0.95 * rate,
    resyncs: rep.resyncs,
    generatorMaxLateUs: rep.maxLateUs,
    otherProcessesPercent: use.otherProcessesPercent,
    viprPercent: use.viprPercent,
    quiet,
    deliveredAtWeb2: D.deliveredWeb2 - A.deliveredWeb2,
    healthEvents: eventsBetween(ctx.router, tStart, performance.now()),
  };
  if (A.vipr && D.vipr) {
    t.lostAtViprPort = Math.max(0, D.up0.value.rx - A.up0.value.rx - (D.vipr.up0Rx - A.vipr.up0Rx));
    t.viprDrops = dropsDelta(A.vipr.drops, D.vipr.drops);
  }
  return t;
}

export interface ZeroLoss {
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

/**
 * Bisection over the offered rate, 64-byte frames, a fixed count per trial.
 * The first trial is at 95 % of what the generator sends flat out through its
 * pacing path: if it passes, the result is generator-bound (">="). A trial
 * that loses frames, or in which the router refused sends, is retried once (a
 * shared box can stall the router's CPU); one in which the generator could not
 * hold 95 % of the rate is retried once and otherwise counts as a failure at
 * that rate.
 */
export async function zeroLossSearch(ctx: Ctx, gen: SearchGenerator, trialSeconds: number, maxSteps: number, precision: number, log: (s: string) => void): Promise<ZeroLoss> {
  await waitQuiet(ctx.lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const generatorMaxPps = await generatorCeiling(ctx, gen);
  const trials: PacedTrial[] = [];
  /** pass: zero loss at a held rate; loss: frames lost or refused; generator: the generator could not hold the rate (twice) */
  const attempt = async (rate: number): Promise<'pass' | 'loss' | 'generator'> => {
    let outcome: 'loss' | 'generator' = 'generator';
    for (let k = 0; k < 2; k++) {
      const t = await pacedTrial(ctx, gen, rate, trialSeconds);
      trials.push(t);
      log(
        `     ${(rate / 1000).toFixed(1)} kpps: sent ${t.sent} (${(t.achievedPps / 1000).toFixed(1)} kpps), lost ${t.lost}` +
          (t.refused ? `, refused ${t.refused}` : '') +
          (t.lostAtViprPort ? ` (${t.lostAtViprPort} at vipr's port)` : '') +
          (t.resyncs ? `, generator stalls ${t.resyncs} (max ${((t.generatorMaxLateUs ?? 0) / 1000).toFixed(1)} ms)` : '') +
          `, others ${t.otherProcessesPercent}% CPU` +
          eventNote(t.healthEvents) +
          quietNote(t.quiet),
      );
      const clean = t.lost === 0 && !t.refused;
      if (t.generatorHeld && clean) return 'pass';
      // a held rate with loss counts as loss even if the retry stalls; refused sends are the router's doing either way
      if ((t.generatorHeld && !clean) || t.refused) outcome = 'loss';
    }
    return outcome;
  };
  let lo = 0;
  let hi = generatorMaxPps;
  let best: PacedTrial | undefined;
  let generatorLimited = false;
  let end = 'max-steps';
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

// ---- latency ------------------------------------------------------------------------------------

export interface PingResult {
  count: number;
  received: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
  min: number | null;
  otherProcessesPercent: number;
  quiet: Quiet;
  healthEvents: string[];
}

/** `ping -i 0.001 -c COUNT` from the client on CPU 0 after a 200-ping warm-up: RTT percentiles, µs. */
export async function pingLatency(ctx: Ctx, count: number): Promise<PingResult> {
  const { lab } = ctx;
  await lab.exec('client', ['taskset', '-c', String(GEN_CPU), 'ping', '-q', '-c', '200', '-i', '0.002', '-W', '1', VIP], { timeoutMs: 30_000 });
  const quiet = await waitQuiet(lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const tStart = performance.now();
  const cpuA = cpuSnapshot(lab.netns, ctx.router?.pid);
  const r = await lab.exec('client', pingCommand(count), { timeoutMs: count * 20 + 30_000 });
  const use = cpuUse(cpuA, cpuSnapshot(lab.netns, ctx.router?.pid));
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
    healthEvents: eventsBetween(ctx.router, tStart, performance.now()),
  };
}

export const pingCommand = (count: number): string[] => ['taskset', '-c', String(GEN_CPU), 'ping', '-i', '0.001', '-c', String(count), '-s', '56', '-W', '1', VIP];

// ---- notes for the progress lines ------------------------------------------------------------------

/** A short note on how quiet the box was before a trial. */
export const quietNote = (q: Quiet): string =>
  q.quiet
    ? q.waitedMs > 1000
      ? ` [waited ${(q.waitedMs / 1000).toFixed(0)} s for quiet]`
      : ''
    : ` [NOT quiet after ${(q.waitedMs / 1000).toFixed(0)} s: others ${q.otherPercent}%${q.otherRealtime.length ? `, real-time ${q.otherRealtime.slice(0, 3).join(' ')}` : ''}]`;

/** The daemon's health events during a trial, briefly. */
export const eventNote = (events: string[]): string => {
  if (!events.length) return '';
  const downs = events.filter((e) => / -> down/.test(e)).length;
  return `; ${events.length} health events (${downs} servers down: ${events[0].replace(/^event: /, '').slice(0, 90)}${events.length > 1 ? ' ...' : ''})`;
};
