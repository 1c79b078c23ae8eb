// Failover under a numbered stream: the article's 5 AM page, measured.
//
// Trials of lab/lib/failover-trial.ts (shared with test/lab/failover.test.ts;
// its header says what is measured and how): a 20,000 packets/s numbered UDP
// stream to the VIP 192.168.1.33, carried by web1 with web2 as its backup,
// while web1 fails in one of three ways (link down, HTTP server frozen, all
// its packets dropped), then returns.
//
// Each trial builds a fresh lab (lab/lab.sh) and starts a fresh vipr with the
// lab's config, pinned to CPU 1 at SCHED_FIFO 20 like bench/reroute.ts's
// vipr-rt mode (--no-rt: normal scheduling), so trials share nothing. Kinds
// take turns (link, freeze, drop, link, ...) so a change of machine load
// spreads over all of them. A trial in which a health check of web1 or web2
// failed with nothing wrong (the machine answered later than the check
// timeout; FailoverTrial.disturbances) measured something else: it is run
// again, up to 3 times, and the JSON keeps every attempt. The web servers run
// as lab.sh starts them (normal priority).
//
//   npx tsc -p tsconfig.json
//   node dist/bench/failover.js [--trials 20] [--kinds link,freeze,drop] [--rate 20000]
//        [--lead 1000] [--failure 1000] [--tail 500] [--no-rt] [--out FILE]
//   node dist/bench/failover.js --scenario PREFIX [--vipr-pid PID] [--kind link] [--svg FILE]
//        one trial, with progress lines, in the running lab PREFIX with its
//        vipr (scripts/demo.sh); exit 0 if vipr failed over and back, 3 if it
//        failed over but traffic did not move back, 1 if it did not fail over
// Writes bench/results/failover-TIMESTAMP.json (bench/lib/results.ts) and
// prints a table, with keepalived's default timing and the article's manual
// procedure beside it.
// Needs root (network namespaces), cc, iproute2, nftables (installed with apt
// when missing; iptables is used if it is there and nft is not).

import { type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  ensureFirewall, FAILURE_MARGIN_MS, KIND_TEXT, KINDS, measureFailover, placeVipr, type FailoverOptions, type FailoverSeries, type FailoverTrial, type FailureKind,
} from '../lab/lib/failover-trial.js';
import {
  bringLabUp, labConfigPath, labFor, labSocketPath, randomPrefix, startViprIn, teardownOnExit, waitViprNeighbors,
} from '../lab/lib/lab.js';
import { killNow, REPO_ROOT, stopChild } from '../lab/lib/process.js';
import { buildStream, PORT, VIP, VIP_NET } from '../lab/lib/stream.js';
import { labBenchRefusal, listArg, numberArg, pad, round, runIfMain } from './lib/program.js';
import { BenchRun, figure, type Figure } from './lib/results.js';

const LAB_CONFIG = join(REPO_ROOT, 'lab/vipr.yaml');

// ---- the demo's picture -----------------------------------------------------------------------------

/** The demo's picture: packets/s at web1 and web2 over time, with the failure, failover, recovery and failback marked. */
export function failoverSvg(series: FailoverSeries, title: string): string {
  const width = 900;
  const height = 360;
  const left = 70;
  const right = 20;
  const top = 64;
  const bottom = 50;
  // The last bin is cut short by the end of the stream: leave it out.
  const web1 = series.web1.slice(0, -1);
  const web2 = series.web2.slice(0, -1);
  const n = Math.max(1, web1.length);
  const rate = (c: number) => (c * 1000) / series.binMs;
  const peak = Math.max(1, ...web1.map(rate), ...web2.map(rate));
  const x = (i: number) => left + (i / n) * (width - left - right);
  const y = (v: number) => top + (1 - v / peak) * (height - top - bottom);
  const path = (bins: number[]) => bins.map((c, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(rate(c)).toFixed(1)}`).join(' ');
  const seconds = (n * series.binMs) / 1000;
  const ticks: string[] = [];
  for (let t = 0; t <= seconds; t += 1) {
    const px = x((t * 1000) / series.binMs);
    ticks.push(`<line x1="${px}" y1="${height - bottom}" x2="${px}" y2="${height - bottom + 5}" stroke="#333"/><text x="${px}" y="${height - bottom + 18}" text-anchor="middle">${t} s</text>`);
  }
  for (const v of [0, peak / 2, peak]) {
    ticks.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${Math.round(v / 1000)}k</text><line x1="${left}" y1="${y(v)}" x2="${width - right}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  const marks = Object.entries(series.marks)
    .filter(([, at]) => at !== undefined)
    .map(([name, at], k) => {
      const px = x((at! - series.startMs) / series.binMs);
      return `<line x1="${px}" y1="${top}" x2="${px}" y2="${height - bottom}" stroke="#888" stroke-dasharray="4 3"/>` +
        `<text x="${px + 3}" y="${top + 12 + (k % 2) * 14}" fill="#555">${name}</text>`;
    });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">${title}</text>`,
    ...ticks,
    ...marks,
    `<path d="${path(web1)}" fill="none" stroke="#1f77b4" stroke-width="1.6"/>`,
    `<path d="${path(web2)}" fill="none" stroke="#d62728" stroke-width="1.6"/>`,
    `<text x="${left}" y="44" fill="#1f77b4">■ web1 packets/s</text>`,
    `<text x="${left + 140}" y="44" fill="#d62728">■ web2 packets/s</text>`,
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#333"/>`,
    `<text x="${(left + width) / 2}" y="${height - 10}" text-anchor="middle">time (per-server packets/s in ${series.binMs} ms bins)</text>`,
    '</svg>',
    '',
  ].join('\n');
}


// ---- models: keepalived's defaults and the article's manual procedure -----------------------------

export interface HealthTiming {
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  holdDownMs: number;
}

/** The lab's health timing (lab/vipr.yaml, `health:`; the schema's defaults where it says nothing). */
export function labHealthTiming(file = LAB_CONFIG): HealthTiming {
  const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as { health?: Partial<HealthTiming> };
  const h = doc.health ?? {};
  return { intervalMs: h.intervalMs ?? 2000, timeoutMs: h.timeoutMs ?? 1000, rise: h.rise ?? 2, fall: h.fall ?? 3, holdDownMs: h.holdDownMs ?? 5000 };
}

export interface ModelRow {
  name: string;
  /** seconds from the failure until traffic moves: best, median, worst */
  bestS: number;
  medianS: number;
  worstS: number;
  formula: string;
  assumptions: string;
}

/**
 * vipr's own expectation: checks run at a fixed rate; the first one to start
 * after the failure waits up to one interval, each failing check takes the
 * timeout, and `fall` of them in a row take the server down.
 */
export function viprModel(h: HealthTiming): ModelRow {
  // Checks of one server never overlap: the next starts one interval after the
  // last one started, or when it timed out if that was later.
  const fixed = ((h.fall - 1) * Math.max(h.intervalMs, h.timeoutMs) + h.timeoutMs) / 1000;
  return {
    name: `vipr (this config: interval ${h.intervalMs} ms, timeout ${h.timeoutMs} ms, fall ${h.fall})`,
    bestS: fixed,
    medianS: fixed + h.intervalMs / 2000,
    worstS: fixed + h.intervalMs / 1000,
    formula: 'U(0, interval) + (fall - 1) x max(interval, timeout) + timeout',
    assumptions: 'a check started after the failure times out; checks do not overlap; the route moves in the same tick',
  };
}

/**
 * keepalived's HTTP_GET checker with its documented defaults (keepalived.conf(5)):
 * delay_loop 60 s ("60 seconds if not specified"), connect_timeout 5 s, retry 1
 * ("Default: 1"), delay_before_retry 3 s for HTTP_GET/SSL_GET in the current
 * man page (1 s for the other checkers; older releases used 1 s and the name
 * nb_get_retry, which many example configs set to 3). A server that times out
 * (link down, blackholed, frozen) is marked down after retry + 1 failed
 * attempts, each waiting connect_timeout, with delay_before_retry between
 * them; the first attempt comes at the next delay_loop tick, U(0, delay_loop)
 * after the failure. IPVS stops using it at once then.
 */
export function keepalivedModels(): ModelRow[] {
  const row = (name: string, delayLoop: number, connectTimeout: number, retry: number, delayBeforeRetry: number, source: string): ModelRow => {
    const fixed = (retry + 1) * connectTimeout + retry * delayBeforeRetry;
    return {
      name,
      bestS: fixed,
      medianS: fixed + delayLoop / 2,
      worstS: fixed + delayLoop,
      formula: `U(0, delay_loop ${delayLoop}) + (retry ${retry} + 1) x connect_timeout ${connectTimeout} + retry ${retry} x delay_before_retry ${delayBeforeRetry}`,
      assumptions: source,
    };
  };
  return [
    row('keepalived HTTP_GET, defaults (current keepalived.conf(5))', 60, 5, 1, 3, 'delay_loop 60 s, connect_timeout 5 s, retry 1, delay_before_retry 3 s (HTTP_GET); a timing-out server'),
    row('keepalived HTTP_GET, older defaults', 60, 5, 1, 1, 'as above with delay_before_retry 1 s (older releases, and every non-HTTP checker)'),
    row('keepalived HTTP_GET, nb_get_retry 3 (older example configs)', 60, 5, 3, 1, 'nb_get_retry 3, delay_before_retry 1 s'),
  ];
}

/**
 * The article's procedure: Big Brother notices (its tests run every 5 minutes
 * by default), pages the administrator at 5 AM, who wakes up, commutes ("isn't
 * a short one") and types two router commands. The human part is an assumption:
 * 15 minutes (awake, close by) to 2 hours.
 */
export function manualModel(): ModelRow {
  return {
    name: 'the article: a page at 5 AM, a commute, two router commands',
    bestS: 15 * 60,
    medianS: 150 + 45 * 60,
    worstS: 300 + 120 * 60,
    formula: 'U(0, monitor poll 300 s) + page + wake up + commute + `no ip route ...; ip route ...`',
    assumptions: 'Big Brother polls every 5 min (its default); human response 15 min .. 2 h (assumed: "the commute ... isn\'t a short one")',
  };
}


// ---- the bench: a fresh lab and vipr per trial -----------------------------------------------------

/** The lab or vipr could not be brought up for a trial: nothing was measured. */
class TrialSetupError extends Error {}
/** A trial that cannot start is tried again, up to this many times (dist/ may be rebuilt under a long run). */
const SETUP_ATTEMPTS = 3;
/** A disturbed trial (see FailoverTrial.disturbances) is run again, up to this many times; the last one counts. */
const DISTURBED_ATTEMPTS = 3;

async function runTrialSetUp(kind: FailureKind, opts: Omit<FailoverOptions, 'kind'>, rt: boolean, onSetupError: (error: string) => void): Promise<FailoverTrial> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runTrial(kind, opts, rt);
    } catch (error) {
      if (!(error instanceof TrialSetupError) || attempt >= SETUP_ATTEMPTS) throw error;
      onSetupError(error.message);
    }
  }
}

async function runTrial(kind: FailureKind, opts: Omit<FailoverOptions, 'kind'>, rt: boolean): Promise<FailoverTrial> {
  const setup = <T>(p: Promise<T>) => p.catch((error: Error) => Promise.reject(new TrialSetupError(error.message)));
  const lab = await setup(bringLabUp(randomPrefix(`fo${kind[0]}`)));
  let vipr: { child: ChildProcess } | undefined;
  try {
    vipr = await setup(startViprIn(lab, labConfigPath(lab.prefix)));
    await placeVipr(vipr.child.pid!, rt, opts.generatorCpu ?? 0);
    const socket = labSocketPath(lab.prefix);
    await setup(waitViprNeighbors(lab, socket));
    return await measureFailover({ lab, socket }, { ...opts, kind });
  } finally {
    if (vipr) await stopChild(vipr.child, 5000);
    await lab.down();
  }
}

// ---- report ---------------------------------------------------------------------------------------

export interface KindSummary {
  kind: FailureKind;
  trials: number;
  failedOver: number;
  failedBack: number;
  gapMs: { median: number | null; worst: number | null; best: number | null };
  detectMs: { median: number | null; worst: number | null };
  outageMs: { median: number | null; worst: number | null };
  lost: { median: number | null; worst: number | null };
  duplicated: number;
  lostBeforeFailure: number;
  failbackAtMs: { median: number | null; worst: number | null };
  failbackLost: { total: number; worst: number | null; trialsWithLoss: number };
  failbackDuplicated: number;
  lostAtViprPort: number;
  sinkSocketDrops: number;
  otherEvents: number;
  /** trials that were still disturbed after DISTURBED_ATTEMPTS (they are in the statistics) */
  disturbed: number;
}

export function summarize(kind: FailureKind, trials: FailoverTrial[]): KindSummary {
  const nums = (f: (t: FailoverTrial) => number | null) => trials.map(f).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const med = (xs: number[]) => (xs.length ? round(xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2, 1) : null);
  const gap = nums((t) => t.gapMs);
  const detect = nums((t) => t.detectMs);
  const outage = nums((t) => t.outageMs);
  const lost = nums((t) => t.failover.lost);
  const fb = nums((t) => t.failbackAtMs);
  const fbLost = nums((t) => t.failback.lost);
  return {
    kind,
    trials: trials.length,
    failedOver: trials.filter((t) => t.failoverEvent !== null && t.gapMs !== null).length,
    failedBack: trials.filter((t) => t.failbackEvent !== null && t.firstWeb1AfterMs !== null).length,
    gapMs: { median: med(gap), worst: gap.at(-1) ?? null, best: gap[0] ?? null },
    detectMs: { median: med(detect), worst: detect.at(-1) ?? null },
    outageMs: { median: med(outage), worst: outage.at(-1) ?? null },
    lost: { median: med(lost), worst: lost.at(-1) ?? null },
    duplicated: trials.reduce((n, t) => n + t.failover.duplicated + t.failback.duplicated + t.total.unexpected, 0),
    lostBeforeFailure: trials.reduce((n, t) => n + t.lostBeforeFailure, 0),
    failbackAtMs: { median: med(fb), worst: fb.at(-1) ?? null },
    failbackLost: { total: fbLost.reduce((a, b) => a + b, 0), worst: fbLost.at(-1) ?? null, trialsWithLoss: fbLost.filter((x) => x > 0).length },
    failbackDuplicated: trials.reduce((n, t) => n + t.failback.duplicated, 0),
    lostAtViprPort: trials.reduce((n, t) => n + (t.lostAtViprPort ?? 0), 0),
    sinkSocketDrops: trials.reduce((n, t) => n + t.sinkSocketDrops, 0),
    disturbed: trials.filter((t) => t.disturbances.length > 0).length,
    otherEvents: trials.reduce((n, t) => n + t.otherEvents.length, 0),
  };
}

const fmt = (x: number | null, digits = 0) => (x === null ? '-' : x.toFixed(digits));

export function summaryTable(summaries: KindSummary[]): string {
  const head = ['failure of web1', 'trials', 'failed over', 'gap ms median', 'gap ms worst', 'detect ms median', 'lost median', 'lost worst', 'dup', 'failback s median', 'failback lost (total / worst)', 'lost at vipr port', 'sink drops', 'lost before failure', 'other servers\' events'];
  const rows = summaries.map((s) => [
    KIND_TEXT[s.kind],
    String(s.trials),
    `${s.failedOver}/${s.trials}`,
    fmt(s.gapMs.median, 1),
    fmt(s.gapMs.worst, 1),
    fmt(s.detectMs.median, 1),
    fmt(s.lost.median),
    fmt(s.lost.worst),
    String(s.duplicated),
    s.failbackAtMs.median === null ? '-' : (s.failbackAtMs.median / 1000).toFixed(2),
    `${s.failbackLost.total} / ${fmt(s.failbackLost.worst)}`,
    String(s.lostAtViprPort),
    String(s.sinkSocketDrops),
    String(s.lostBeforeFailure),
    String(s.otherEvents),
  ]);
  return pad([head, ...rows]);
}

export function modelTable(rows: ModelRow[], rate: number): string {
  const human = (s: number) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : s < 120 ? `${s.toFixed(s < 10 ? 2 : 0)} s` : s < 7200 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`);
  const packets = (s: number) => {
    const n = s * rate;
    return n < 1e4 ? n.toFixed(0) : n < 1e6 ? `${(n / 1e3).toFixed(0)} k` : `${(n / 1e6).toFixed(1)} M`;
  };
  const head = ['time to move traffic off web1', 'best', 'median', 'worst', `lost at ${rate} pps (median / worst)`];
  return pad([head, ...rows.map((r) => [r.name, human(r.bestS), human(r.medianS), human(r.worstS), `${packets(r.medianS)} / ${packets(r.worstS)}`])]);
}

/**
 * The headline per kind of failure: the median gap, beside what the config's
 * health timing allows at best (vipr's model: the checks' own limit), and the
 * packets lost moving back (target 0).
 */
function figures(summaries: KindSummary[], model: ModelRow, rate: number): Figure[] {
  const out: Figure[] = [];
  for (const s of summaries) {
    if (s.gapMs.median === null) continue;
    out.push(figure({
      id: `failover.gap.${s.kind}`,
      measure: `failover gap, median of ${s.trials}: ${KIND_TEXT[s.kind]}`,
      unit: 'ms',
      better: 'lower',
      vipr: { label: `vipr, lab config (${s.failedOver}/${s.trials} failed over; worst ${s.gapMs.worst} ms)`, value: s.gapMs.median, bound: 'exact' },
      anchor: {
        label: `the health timing's own median: ${model.formula}`,
        value: round(model.medianS * 1000, 1),
        bound: 'exact',
        atLimit: true,
        why: 'computed from the config the trials ran with: no checker can see the failure sooner',
      },
      note: `lost median ${s.lost.median} at ${rate.toLocaleString('en')} packets/s`,
    }));
  }
  const back = summaries.reduce((n, s) => n + s.failbackLost.total, 0);
  const trials = summaries.reduce((n, s) => n + s.trials, 0);
  if (trials > 0) {
    out.push(figure({
      id: 'failover.failback-lost',
      measure: `packets lost moving back to web1 after the hold-down, ${trials} trials`,
      unit: 'packets',
      better: 'lower',
      vipr: { label: 'vipr, all kinds of failure', value: back, bound: 'exact' },
      target: '0',
    }));
  }
  return out;
}

function parseCli(argv: string[]) {
  const o = {
    trials: 20,
    kinds: [...KINDS] as FailureKind[],
    rate: 20_000,
    leadMs: 1000,
    failureMs: 1000,
    tailMs: 500,
    rt: true,
    out: undefined as string | undefined,
    scenario: undefined as string | undefined,
    viprPid: undefined as number | undefined,
    svg: undefined as string | undefined,
    kind: 'link' as FailureKind,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--trials': o.trials = Math.round(numberArg(a, v, 1, 10_000)); i++; break;
      case '--rate': o.rate = numberArg(a, v, 1000, 1e6); i++; break;
      case '--lead': o.leadMs = numberArg(a, v, 200, 600_000); i++; break;
      case '--failure': o.failureMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--tail': o.tailMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--no-rt': o.rt = false; break;
      case '--out': o.out = v; i++; break;
      case '--scenario': o.scenario = v; i++; break;
      case '--svg': o.svg = v; i++; break;
      case '--vipr-pid': o.viprPid = Math.round(numberArg(a, v, 1, 2 ** 31)); i++; break;
      case '--kind':
        if (!KINDS.includes(v as FailureKind)) throw new Error(`--kind: one of ${KINDS.join(', ')}`);
        o.kind = v as FailureKind;
        i++;
        break;
      case '--kinds': o.kinds = listArg(a, v, KINDS); i++; break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node dist/bench/failover.js [--trials 20] [--kinds link,freeze,drop] [--rate 20000] [--lead 1000] [--failure 1000] [--tail 500] [--no-rt] [--out FILE]\n' +
            '       node dist/bench/failover.js --scenario PREFIX [--vipr-pid PID] [--kind link]   (one trial in a running lab, for scripts/demo.sh)\n',
        );
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

/** One trial in a lab someone else runs (scripts/demo.sh): progress lines, then a short report. Exit 0: failed over and back; 3: over only; 1: no failover. */
async function scenario(cli: ReturnType<typeof parseCli>): Promise<number> {
  const prefix = cli.scenario!;
  const socket = labSocketPath(prefix);
  if (!existsSync(socket)) throw new Error(`no vipr control socket at ${socket} (is the lab ${prefix} up with vipr running?)`);
  const procs = new Set<ChildProcess>();
  const lab = labFor(prefix, procs);
  const stopAll = () => procs.forEach(killNow);
  process.on('exit', stopAll);
  // Ctrl-C in the demo: stop what this started (the demo's trap removes the lab).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopAll();
      process.exit(130);
    });
  }
  const h = labHealthTiming(labConfigPath(prefix));
  const out = (line: string) => process.stdout.write(`  ${line}\n`);
  if (cli.viprPid) out(`vipr (pid ${cli.viprPid}) runs on ${await placeVipr(cli.viprPid, cli.rt)}, the stream on CPU 0: as in bench/failover.ts`);
  await waitViprNeighbors(lab, socket);
  const t = await measureFailover(
    { lab, socket, progress: out },
    { kind: cli.kind, rate: cli.rate, leadMs: cli.leadMs, failureMs: cli.failureMs, tailMs: cli.tailMs, holdDownMs: h.holdDownMs },
  );
  const manual = manualModel();
  const ka = keepalivedModels()[0];
  const rate = cli.rate;
  process.stdout.write('\n');
  const rows: Array<[string, string]> = [
    ['failure', `${KIND_TEXT[t.kind]}`],
    ['gap', t.gapMs === null ? 'no packet reached web2' : `${t.gapMs.toFixed(1)} ms from the failure to the first packet at web2 (vipr decided after ${fmt(t.detectMs, 1)} ms)`],
    ['lost', `${t.failover.lost} of ${t.failover.sent} packets while failing over (${t.failover.duplicated} duplicated)`],
    ['failback at', t.failbackAtMs === null ? 'did not happen' : `${(t.failbackAtMs / 1000).toFixed(2)} s after web1 returned (up after ${fmt(t.upAfterMs, 0)} ms, then the ${h.holdDownMs} ms hold-down)`],
    ['lost in failback', `${t.failback.lost} of ${t.failback.sent} packets (${t.failback.duplicated} duplicated)`],
    ['in all', `${t.total.sent} sent, ${t.total.distinct} arrived (web1 ${t.total.shares.web1}, web2 ${t.total.shares.web2}), ${t.total.lost} lost${t.lostBeforeFailure ? ` (${t.lostBeforeFailure} before the failure: a stall, not the failover)` : ''}`],
    ['keepalived', `its HTTP_GET defaults take ${Math.round(ka.bestS)}..${Math.round(ka.worstS)} s (${ka.formula}): ${(ka.medianS * rate / 1e6).toFixed(1)} M packets at this rate, median`],
    ['the article', `a page at 5 AM and a commute: ${manual.bestS / 60}..${Math.round(manual.worstS / 60)} min, ${(manual.medianS * rate / 1e6).toFixed(0)} M packets at this rate, median`],
  ];
  process.stdout.write('report:\n');
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(17)} ${v}\n`);
  if (t.problems.length) process.stdout.write(`  problems: ${t.problems.join('; ')}\n`);
  if (cli.svg && t.series) {
    const title = `vipr, the 5 AM page: ${KIND_TEXT[t.kind].replace(/ \(.*\)$/, '')}; gap ${t.gapMs === null ? '-' : t.gapMs.toFixed(0)} ms, ${t.failover.lost} lost; failback lost ${t.failback.lost}`;
    writeFileSync(cli.svg, failoverSvg(t.series, title));
    process.stdout.write(`  picture           ${cli.svg} (per-server packets/s around the failure and the failback)\n`);
  }
  if (t.failoverEvent === null || t.gapMs === null) return 1;
  return t.failbackEvent !== null && t.firstWeb1AfterMs !== null ? 0 : 3;
}

async function main(): Promise<number> {
  let cli: ReturnType<typeof parseCli>;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`failover: ${(error as Error).message}\n`);
    return 2;
  }
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`failover: ${refusal}\n`);
    return 2;
  }
  if (cli.scenario) return scenario(cli);

  teardownOnExit('failover');
  await buildStream();
  if (cli.kinds.includes('drop')) await ensureFirewall();
  const h = labHealthTiming();
  const bench = new BenchRun('failover');
  const load = loadavg();
  process.stdout.write(
    `failover bench: ${cli.trials} trials of each of ${cli.kinds.join(', ')}; ${cli.rate} packets/s to ${VIP}:${PORT} (route ${VIP_NET} via web1, backup web2); ` +
      `health: interval ${h.intervalMs} ms, timeout ${h.timeoutMs} ms, fall ${h.fall}, rise ${h.rise}, hold-down ${h.holdDownMs} ms; ` +
      `vipr ${cli.rt ? 'SCHED_FIFO 20 on CPU 1' : 'normal scheduling on CPU 1'}; ${cpus().length} CPUs, load ${load.map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  const opts = { rate: cli.rate, leadMs: cli.leadMs, failureMs: cli.failureMs, tailMs: cli.tailMs, holdDownMs: h.holdDownMs };
  const results: Record<FailureKind, FailoverTrial[]> = { link: [], freeze: [], drop: [] };
  const failures: Array<{ kind: FailureKind; trial: number; error: string }> = [];
  const setupRetries: Array<{ kind: FailureKind; trial: number; error: string }> = [];
  const disturbed: Array<{ kind: FailureKind; trial: number; attempt: number; disturbances: string[]; result: FailoverTrial }> = [];
  for (let i = 1; i <= cli.trials; i++) {
    for (const kind of cli.kinds) {
      process.stdout.write(`-- ${kind} ${i}/${cli.trials} ... `);
      try {
        let t: FailoverTrial | undefined;
        for (let attempt = 1; ; attempt++) {
          t = await runTrialSetUp(kind, opts, cli.rt, (error) => {
            setupRetries.push({ kind, trial: i, error });
            process.stdout.write(`(setup failed, again: ${error.split('\n')[0]}) `);
          });
          if (t.disturbances.length === 0 || attempt >= DISTURBED_ATTEMPTS) break;
          // A health check of web1 or web2 failed with nothing wrong (the machine
          // answered later than the timeout): that trial measured something else.
          disturbed.push({ kind, trial: i, attempt, disturbances: t.disturbances, result: t });
          process.stdout.write(`(disturbed: ${t.disturbances[0]}; again) `);
        }
        results[kind].push(t);
        process.stdout.write(
          `gap ${fmt(t.gapMs, 1)} ms (detect ${fmt(t.detectMs, 1)}), lost ${t.failover.lost}, dup ${t.failover.duplicated + t.failback.duplicated}; ` +
            `failback at ${t.failbackAtMs === null ? '-' : (t.failbackAtMs / 1000).toFixed(2)} s, lost ${t.failback.lost}` +
            (t.lostAtViprPort ? `; ${t.lostAtViprPort} lost at vipr's port` : '') +
            (t.lostBeforeFailure ? `; ${t.lostBeforeFailure} lost before the failure` : '') +
            (t.problems.length ? `; PROBLEMS: ${t.problems.join('; ')}` : '') +
            (t.disturbances.length ? `; STILL DISTURBED: ${t.disturbances.join(' | ')}` : '') +
            (t.otherEvents.length ? `; other servers' events: ${t.otherEvents.length}` : '') +
            '\n',
        );
      } catch (error) {
        failures.push({ kind, trial: i, error: (error as Error).message });
        process.stdout.write(`FAILED: ${(error as Error).message}\n`);
      }
    }
  }
  const summaries = cli.kinds.map((k) => summarize(k, results[k]));
  const models = [viprModel(h), ...keepalivedModels(), manualModel()];
  const text =
    `${summaryTable(summaries)}\n\n` +
    `run again because a health check of web1 or web2 failed with nothing wrong (a busy machine answering after the ${h.timeoutMs} ms timeout): ` +
    `${cli.kinds.map((k) => `${k} ${disturbed.filter((d) => d.kind === k).length}`).join(', ')} attempts` +
    `${summaries.some((x) => x.disturbed) ? `; still disturbed after ${DISTURBED_ATTEMPTS} attempts (kept): ${summaries.map((x) => `${x.kind} ${x.disturbed}`).join(', ')}` : ''}. ` +
    `other servers' false failures seen: ${summaries.map((x) => `${x.kind} ${x.otherEvents}`).join(', ')} events.\n` +
    `gap: failure -> first packet at web2 (link, drop: the failure is web1's last packet; freeze: the SIGSTOP). ` +
    `lost: failover phase (failure - ${FAILURE_MARGIN_MS} ms .. recovery). failback: recovery -> vipr's failback event; its loss counts packets sent after the recovery.\n\n` +
    `${modelTable(models, cli.rate)}\n` +
    models.map((m) => `  ${m.name}: ${m.formula}; ${m.assumptions}`).join('\n');
  process.stdout.write(`\n${text}\n`);

  const file = await bench.write(figures(summaries, viprModel(h), cli.rate), {
    options: { ...opts, trials: cli.trials, kinds: cli.kinds, viprScheduling: cli.rt ? 'SCHED_FIFO 20, CPU 1' : 'normal, CPU 1', generator: 'SCHED_FIFO 50, CPU 0' },
    health: h,
    method:
      'Fresh lab (lab/lab.sh) and fresh vipr per trial; udp-stream (lab/udp-stream.c) in the client namespace -> vipr -> timestamping sinks on 192.168.1.33:9999 in web1 and web2. ' +
      'All times CLOCK_MONOTONIC (shared by every namespace): sender stamps, sink arrival stamps, this process. ' +
      'failure at: freeze = SIGSTOP sent; link/drop = arrival of web1\'s last packet, checked to lie inside the failure command\'s window. ' +
      'gap = first arrival at web2 - failure; detect = vipr\'s down event (its ms wall clock mapped to CLOCK_MONOTONIC) - failure; ' +
      `lost = sent - distinct received (web1 + web2), by send stamp: failover phase = [failure - ${FAILURE_MARGIN_MS} ms, recovery command), failback phase = [recovery command, end). ` +
      'lost at vipr port = kernel up0 rx - vipr up0 rx (frames vipr never read: its port buffer overflowed while it did not run).',
    summaries,
    models,
    table: text,
    trials: results,
    failures,
    setupRetries,
    disturbedAttempts: disturbed,
  }, cli.out);
  process.stdout.write(`\nresults: ${file}\n`);
  return failures.length ? 1 : 0;
}

runIfMain(import.meta.url, 'failover', main);
