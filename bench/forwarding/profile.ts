// Where vipr's time goes under 64-byte flat out: one more run with the
// daemon under `node --cpu-prof` and `perf record -C 1` (when perf works): the
// top functions by self time, the top symbols on the router's CPU.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dropsDelta } from '../../lab/lib/counters.js';
import { asGroup, exited, REPO_ROOT, run, sleep, stopChild } from '../../lab/lib/process.js';
import { round } from '../lib/program.js';
import type { Ctx } from './context.js';
import { readInner, readOuter } from './counters.js';
import { startFlatOut } from './generators.js';
import { cpuSnapshot, cpuUse, waitQuiet, type Quiet } from './host.js';
import { ROUTER_CPU } from './modes.js';
import { eventsBetween, startVipr, stopRouter } from './routers.js';

export interface ProfileSummary {
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

export async function perfAvailable(): Promise<boolean> {
  const r = await run('perf', ['--version'], 5000);
  return r.code === 0;
}

function parsePerfReport(text: string): Array<string[]> {
  return text
    .split('\n')
    .filter((l) => /^\s+\d+\.\d+%/.test(l))
    .map((l) => l.trim().split(/\s{2,}/));
}

export async function profileVipr(ctx: Ctx, seconds: number): Promise<ProfileSummary> {
  const { lab } = ctx;
  const profDir = join(ctx.dir, `cpuprof-${lab.prefix}`);
  mkdirSync(profDir, { recursive: true });
  await stopRouter(ctx.router);
  ctx.router = await startVipr(lab, ['--cpu-prof', '--cpu-prof-dir', profDir]);
  const viprPid = ctx.router.pid;
  ctx.commands[`${lab.mode} profiled daemon`] = ctx.router.command;
  // warm up, then the profiled run
  const warm = await startFlatOut(ctx, 64, ctx.generators);
  await sleep(1000);
  await warm.stop();
  const usePerf = await perfAvailable();
  const quiet = await waitQuiet(lab.netns, ctx.quietMaxMs, ctx.quietThreshold);
  const perfFile = join(ctx.dir, `perf-${lab.prefix}.data`);
  const O1 = await readOuter(lab);
  const tStart = performance.now();
  const fromUs = monotonicUs();
  const A = await readInner(lab);
  const cpuA = cpuSnapshot(lab.netns, ctx.router.pid);
  const gen = await startFlatOut(ctx, 64, ctx.generators);
  let perfChild: ChildProcess | undefined;
  await sleep(500);
  if (usePerf) {
    perfChild = asGroup(spawn('perf', ['record', '-C', String(ROUTER_CPU), '-F', '999', '-o', perfFile, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
  }
  await sleep(seconds * 1000);
  const B = await readInner(lab);
  const cpuB = cpuSnapshot(lab.netns, ctx.router.pid);
  const toUs = monotonicUs();
  await gen.stop();
  await sleep(300);
  const O2 = await readOuter(lab);
  if (perfChild) {
    await Promise.race([exited(perfChild), sleep(10_000)]);
    await stopChild(perfChild, 5000, 'SIGINT');
  }
  const profiled = ctx.router;
  await stopRouter(ctx.router); // writes the .cpuprofile
  ctx.router = undefined;
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

