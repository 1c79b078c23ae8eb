// What the forwarding bench prints and what it puts in the results file's
// `figures`: every vipr figure beside the anchors measured in the same run
// (the kernel with RPS on the router's CPU, the C forwarder on the same packet
// API), with a ratio only where the anchor was at its limit. A router that
// delivered everything it was offered was limited by the generator: its
// figure is a lower bound ("≥"), and no ratio is taken against it.

import { basename } from 'node:path';
import { median, pad, round } from '../lib/program.js';
import { figure, type Anchor, type Figure, type Quantity } from '../lib/results.js';
import type { Calibration } from './generators.js';
import { judge, type FlatTrial, type PingResult, type Verdict, type ZeroLoss } from './measure.js';
import { SPECS, type Mode, type SizeName } from './modes.js';
import type { ProfileSummary } from './profile.js';
import type { Quiet } from './host.js';

export interface ModeResult {
  mode: Mode;
  label: string;
  lab: string;
  flat: Record<string, FlatTrial[]>;
  zeroLoss?: ZeroLoss;
  latency?: PingResult[];
  profile?: ProfileSummary;
  calibration?: Calibration;
  viprLogWarnings?: string[];
  /** the C forwarder's counters when it stopped */
  cfwd?: unknown;
  /** the lab config's kernelTransit setting ('absent': this vipr has none; the kernel parses every transit frame) */
  kernelTransit?: 'drop' | 'keep' | 'absent';
  commands: Record<string, string[]>;
}

/**
 * Results files written before 2026-12 (trafgen flat out, no verdicts): each
 * trial judged now by the same rule, with push-back unknown (trafgen does not
 * report it), so `--report` shows which of their figures were generator-bound.
 */
export function judgeLegacy(results: ModeResult[], tolerance: number): ModeResult[] {
  for (const r of results) {
    for (const trials of Object.values(r.flat)) {
      for (const t of trials) {
        t.totals.clientTxDropped ??= 0;
        t.generator ??= { generator: 'trafgen', processes: 1, sent: null, refused: null, reports: [] };
        t.limit ??= judge({ offered: t.totals.clientTx, delivered: t.totals.delivered, refused: null, routerCpuBusy: t.cpu?.perCpu?.cpu1?.busy, spins: /busy/.test(r.mode) }, tolerance);
      }
    }
  }
  return results;
}

export const kpps = (x: number | null | undefined): string => (x === null || x === undefined || Number.isNaN(x) ? '-' : (x / 1000).toFixed(1));
const pct = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : '-');

/** A mode's flat-out figure at one size: the median of its trials, and whether most of them were generator-bound. */
export interface FlatFigure {
  med: number;
  min: number;
  max: number;
  offered: number;
  /** most trials delivered all they were offered: `med` is a lower bound */
  generatorBound: boolean;
  /** the median trial's verdict */
  limit: Verdict;
  processes: number;
}

export function flatFigure(r: ModeResult, size: SizeName): FlatFigure | undefined {
  const ts = r.flat[String(size)];
  if (!ts?.length) return undefined;
  const d = ts.map((x) => x.deliveredPps);
  const sorted = [...ts].sort((a, b) => a.deliveredPps - b.deliveredPps);
  const mid = sorted[Math.floor(sorted.length / 2)];
  const bound = ts.filter((t) => t.limit.limit === 'generator').length;
  return {
    med: median(d),
    min: Math.min(...d),
    max: Math.max(...d),
    offered: median(ts.map((x) => x.offeredPps)),
    generatorBound: bound * 2 > ts.length,
    limit: mid.limit,
    processes: Math.max(...ts.map((t) => t.generator.processes)),
  };
}

export function latencyMedian(r: ModeResult): { p50: number; p99: number } | undefined {
  if (!r.latency?.length) return undefined;
  const p50 = r.latency.map((l) => l.p50).filter((x): x is number => x !== null);
  const p99 = r.latency.map((l) => l.p99).filter((x): x is number => x !== null);
  if (!p50.length || !p99.length) return undefined;
  return { p50: median(p50), p99: median(p99) };
}

/** The router a mode runs (results files from before 2026-12 have modes no longer in SPECS, e.g. ring-drop: all vipr). */
const routerOf = (mode: string): 'kernel' | 'cfwd' | 'vipr' => SPECS[mode as Mode]?.router ?? (mode.startsWith('kernel') ? 'kernel' : 'vipr');

/** A mode's name in the tables, with what happens to the kernel's copy of transit frames. */
function displayLabel(r: ModeResult): string {
  if (routerOf(r.mode) !== 'vipr' || r.mode === 'ring-transit') return r.label;
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

/** The anchors, when they ran: the kernel with RPS (the fair one, the headline), the C forwarder, the plain kernel. */
const ANCHOR_MODES = ['kernel-rps', 'cfwd', 'kernel'] as const;

/** The zero-loss figure of a mode: the rate the generator offered in the best zero-loss trial; a lower bound when the search never found the router's limit. */
function zeroLossOf(r: ModeResult | undefined): { value: number | null; generatorBound: boolean } {
  const z = r?.zeroLoss;
  return { value: z?.achievedPps ?? null, generatorBound: z?.end === 'generator-bound' };
}

/** "1.23" or "≥ 1.23" or "-": a ratio against an anchor only when the anchor was at its limit. */
function ratioText(x: number | null | undefined, xBound: boolean, anchor: number | null | undefined, anchorBound: boolean): string {
  if (x == null || anchor == null || !anchor) return '-';
  if (anchorBound) return 'n/a';
  return `${xBound ? '≥ ' : ''}${(x / anchor).toFixed(2)}`;
}

export function tables(results: ModeResult[]): string {
  const by = (m: Mode) => results.find((r) => r.mode === m);
  const kernel = by('kernel');
  const kLat = kernel && latencyMedian(kernel);
  const anchors = ANCHOR_MODES.filter((m) => m !== 'kernel' && by(m));
  const cell = (f: FlatFigure | undefined) => (f ? `${f.generatorBound ? '≥ ' : ''}${kpps(f.med)} (${kpps(f.min)}-${kpps(f.max)})` : '-');
  const head = [
    'mode',
    '64 B offered kpps',
    '64 B delivered kpps (min-max)',
    ...anchors.map((a) => `x ${a}`),
    '1500 B offered kpps',
    '1500 B delivered kpps (min-max)',
    ...anchors.map((a) => `x ${a}`),
    '64 B zero-loss kpps',
    ...anchors.map((a) => `x ${a}`),
    'RTT p50 us',
    'RTT p99 us',
    'p99 added us',
  ];
  const rows = results.map((r) => {
    const f64 = flatFigure(r, 64);
    const f1500 = flatFigure(r, 1500);
    const z = zeroLossOf(r);
    const lat = latencyMedian(r);
    const vs = (size: SizeName, own: FlatFigure | undefined) =>
      anchors.map((a) => {
        const f = flatFigure(by(a)!, size);
        return ratioText(own?.med, own?.generatorBound ?? false, f?.med, f?.generatorBound ?? true);
      });
    return [
      displayLabel(r),
      kpps(f64?.offered),
      cell(f64),
      ...vs(64, f64),
      kpps(f1500?.offered),
      cell(f1500),
      ...vs(1500, f1500),
      r.zeroLoss ? (z.value === null ? 'none found' : `${z.generatorBound ? '≥ ' : ''}${kpps(z.value)}`) : '-',
      ...anchors.map((a) => {
        const za = zeroLossOf(by(a));
        return r.zeroLoss ? ratioText(z.value, z.generatorBound, za.value, za.generatorBound) : '-';
      }),
      lat ? String(lat.p50) : '-',
      lat ? String(lat.p99) : '-',
      lat && kLat ? String(round(lat.p99 - kLat.p99)) : '-',
    ];
  });
  const main = pad([head, ...rows], '   ');

  // who was the limit, and where the frames went (64 B flat out, the median trial by delivered rate)
  const head2 = ['mode (64 B flat out, median trial)', 'limit', 'generators', 'offered kpps', 'router up0 rx kpps', 'read by vipr', 'lost at vipr port', 'refused sends', 'kernel IP drops / up0 rx', 'kernel fwd', 'CPU0 busy %', 'CPU1 busy %', 'router process CPU %', 'other procs CPU %', 'load1', 'trials not quiet', 'servers down (all trials)'];
  const rows2 = results.map((r) => {
    const ts = r.flat['64'] ?? [];
    if (!ts.length) return [displayLabel(r), ...head2.slice(1).map(() => '-')];
    const sorted = [...ts].sort((a, b) => a.deliveredPps - b.deliveredPps);
    const t = sorted[Math.floor(sorted.length / 2)];
    const k = t.routerKernel;
    return [
      displayLabel(r),
      t.limit.limit,
      `${t.generator.processes} ${t.generator.generator}`,
      kpps(t.offeredPps),
      kpps(t.routerRxPps),
      t.totals.viprRx !== undefined ? pct(t.totals.viprRx, t.totals.up0Rx) : '-',
      t.totals.lostAtViprPort !== undefined ? pct(t.totals.lostAtViprPort, t.totals.up0Rx) : '-',
      t.generator.refused === null ? '?' : String(t.generator.refused + t.totals.clientTxDropped),
      pct((k.InAddrErrors ?? 0) + (k.InDiscards ?? 0), t.totals.up0Rx),
      pct(k.ForwDatagrams ?? 0, t.totals.up0Rx),
      String(t.cpu.perCpu.cpu0?.busy ?? '-'),
      String(t.cpu.perCpu.cpu1?.busy ?? '-'),
      t.cpu.viprPercent === null ? '-' : String(t.cpu.viprPercent),
      String(t.cpu.otherProcessesPercent),
      String(t.loadavg1),
      noisy(r),
      routerOf(r.mode) === 'vipr' ? String(serversDown(r)) : '-',
    ];
  });
  const why = results.map((r) => {
    const f = flatFigure(r, 64);
    return f ? `  ${displayLabel(r)}: ${f.limit.limit}-bound: ${f.limit.why}` : '';
  }).filter(Boolean);
  return `${main}\n\n${pad([head2, ...rows2], '   ')}\n\nwho was the limit, 64 B (median trial):\n${why.join('\n')}\n` +
    '  ≥: the router delivered all it was offered (the generator was the limit); no ratio is taken against such a figure (n/a).';
}

export function profileText(results: ModeResult[]): string {
  const out: string[] = [];
  for (const r of results) {
    const p = r.profile;
    if (!p) continue;
    out.push(
      `${r.label}: profiled under 64 B flat out, ${p.seconds} s, delivered ${kpps(p.deliveredPps)} kpps, vipr ${p.viprPercent ?? '-'}% of CPU 1, ` +
        `other processes ${p.otherProcessesPercent}%; vipr read ${p.viprRx ?? '-'} of ${p.up0Rx} frames on up0, forwarded ${p.viprForwarded ?? '-'}` +
        (Object.keys(p.viprDrops ?? {}).length ? `, drops ${JSON.stringify(p.viprDrops)}` : ''),
    );
    if (p.healthEvents?.length) out.push(`  health events while profiled (${p.healthEvents.length}): ${p.healthEvents.slice(0, 4).join(' | ')}`);
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

// ---- the figures of the results file -----------------------------------------------------------------

const KERNEL_NOTE = "the kernel's forwarding runs inside the generator's sends on CPU 0 (veth): it can never be faster than the generator";

function flatQuantity(r: ModeResult, f: FlatFigure): Quantity {
  return { label: `${r.label}${f.processes > 1 ? ` (${f.processes} generator processes)` : ''}`, value: round(f.med / 1000, 1), bound: f.generatorBound ? 'at-least' : 'exact' };
}

function flatAnchor(r: ModeResult, f: FlatFigure): Anchor {
  return {
    ...flatQuantity(r, f),
    atLimit: !f.generatorBound,
    why: `${f.limit.limit}-bound: ${f.limit.why}${r.mode === 'kernel' ? `; ${KERNEL_NOTE}` : ''}`,
  };
}

/**
 * The headline figures of a run: vipr (io: ring, the default config) beside
 * each anchor that ran, per frame size; the zero-loss rate; the p99 latency
 * vipr adds over the kernel beside what the C forwarder adds; busy polling
 * against the same config without it.
 */
export function forwardingFigures(results: ModeResult[]): Figure[] {
  const by = (m: Mode) => results.find((r) => r.mode === m);
  const vipr = by('ring');
  const out: Figure[] = [];
  if (!vipr) return out;
  for (const size of [64, 1500] as const) {
    const v = flatFigure(vipr, size);
    if (!v) continue;
    for (const a of ANCHOR_MODES) {
      const anchor = by(a);
      const f = anchor && flatFigure(anchor, size);
      if (!anchor || !f) continue;
      out.push(figure({
        id: `forwarding.flat.${size}.vs-${a}`,
        measure: `${size}-byte frames forwarded, flat out (generator CPU 0, router CPU 1) — against ${SPECS[a].label}`,
        unit: 'kpps',
        better: 'higher',
        vipr: flatQuantity(vipr, v),
        anchor: flatAnchor(anchor, f),
        target: a === 'kernel-rps' ? '≥ 1.0× the kernel' : a === 'cfwd' ? '≥ 0.85× the C forwarder on the same API' : undefined,
        note: `vipr ${v.limit.limit}-bound: ${v.limit.why}`,
      }));
    }
  }
  // vipr against vipr: AF_XDP against the ring (the issue's ≥ 1.15×), the redesign's workers against the main thread,
  // two workers against one; AF_XDP against the C forwarder on AF_XDP.
  const pairs: { v: Mode; a: Mode; target?: string }[] = [
    { v: 'xdp', a: 'ring', target: '≥ 1.15× io: ring' },
    { v: 'xdp', a: 'cfwd-xdp', target: '≥ 0.85× the C forwarder on the same API' },
    { v: 'ring', a: 'ring-inline' },
    { v: 'ring-w2', a: 'ring' },
  ];
  for (const { v: vm, a: am, target } of pairs) {
    const vr = by(vm);
    const ar = by(am);
    const vf = vr && flatFigure(vr, 64);
    const af = ar && flatFigure(ar, 64);
    if (!vr || !ar || !vf || !af) continue;
    out.push(figure({
      id: `forwarding.flat.64.${vm}.vs-${am}`,
      measure: `64-byte frames forwarded, flat out — ${SPECS[vm].label} against ${SPECS[am].label}`,
      unit: 'kpps',
      better: 'higher',
      vipr: flatQuantity(vr, vf),
      anchor: flatAnchor(ar, af),
      target,
      note: `${vf.limit.limit}-bound: ${vf.limit.why}`,
    }));
  }
  const vz = zeroLossOf(vipr);
  if (vipr.zeroLoss && vz.value !== null) {
    for (const a of ['kernel-rps', 'cfwd'] as const) {
      const az = zeroLossOf(by(a));
      if (!by(a)?.zeroLoss || az.value === null) continue;
      out.push(figure({
        id: `forwarding.zero-loss.64.vs-${a}`,
        measure: `highest 64-byte rate with no frame lost or refused (paced) — against ${SPECS[a].label}`,
        unit: 'kpps',
        better: 'higher',
        vipr: { label: vipr.label, value: round(vz.value / 1000, 1), bound: vz.generatorBound ? 'at-least' : 'exact' },
        anchor: {
          label: SPECS[a].label,
          value: round(az.value / 1000, 1),
          bound: az.generatorBound ? 'at-least' : 'exact',
          atLimit: !az.generatorBound,
          why: az.generatorBound ? 'no loss just under what the paced generator can send: generator-bound' : `search ${by(a)!.zeroLoss!.end}: frames lost or refused above it`,
        },
      }));
    }
  }
  const kernel = by('kernel');
  const kLat = kernel && latencyMedian(kernel);
  const added = (r: ModeResult | undefined) => {
    const l = r && latencyMedian(r);
    return l && kLat ? round(l.p99 - kLat.p99) : null;
  };
  const latencyFigure = (id: string, measure: string, v: ModeResult | undefined, a: ModeResult | undefined, why: string, target?: string) => {
    const x = added(v);
    const y = added(a);
    if (!v || !a || x === null || y === null) return;
    out.push(figure({
      id,
      measure,
      unit: 'µs',
      better: 'lower',
      vipr: { label: v.label, value: x, bound: 'exact' },
      anchor: { label: a.label, value: y, bound: 'exact', atLimit: true, why },
      target,
      note: `p99 RTT of ping -i 0.001 through the router minus the kernel's in the same run (${kLat!.p99} µs)`,
    }, { ratio: y > 0 }));
  };
  latencyFigure('forwarding.latency.p99-added', 'p99 latency added over the kernel, default config', vipr, by('cfwd'),
    'a forwarder that sleeps in poll() on the same rings: the floor of this packet API', '≤ 50 µs');
  latencyFigure('forwarding.latency.busy-poll', 'p99 latency added over the kernel with ring.busyPoll (health checks as in the default config)', by('ring-busy'), vipr,
    'the same config without busy polling, same run');
  latencyFigure('forwarding.latency.busy-poll.no-checks', 'p99 latency added over the kernel with ring.busyPoll, no health checks', by('ring-nohc-busy'), by('ring-nohc'),
    'the same config (no health checks) without busy polling, same run');
  return out;
}
