// The raw result file every bench writes (bench/results/BENCH-TIMESTAMP.json):
// the command, the commit (and what was changed on top of it), the machine,
// how loaded it was, the dates, the bench's own raw data, and its headline
// figures, each beside its anchor from the same run. bench/summary.ts builds
// the summary table at the top of bench/README.md from the `figures` of these
// files, so the table never says what no raw file holds.
//
// An anchor is the figure of what vipr is compared with (the kernel as router
// with RPS, a minimal C forwarder, another LPM), measured in the same run. A
// ratio is taken only against an anchor that was at its limit: a baseline
// that delivered everything it was offered was limited by the traffic
// generator, so its figure is a lower bound ("≥") and a ratio against it says
// nothing.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, hostname, loadavg, release, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from '../../lab/lib/process.js';
import { round } from './program.js';

export const RESULTS_DIR = join(REPO_ROOT, 'bench/results');
export const RESULT_SCHEMA = 'vipr-bench/1';

/** A figure, and whether it is the thing itself or a bound on it. */
export interface Quantity {
  /** what was measured: 'vipr, io: ring (default config)', 'Linux kernel, RPS to CPU 1' */
  label: string;
  value: number | null;
  /** 'at-least': the measurement could not reach the limit (e.g. the generator could offer no more) */
  bound: 'exact' | 'at-least' | 'at-most';
}

export interface Anchor extends Quantity {
  /** the anchor reached its own limit in this run (only then is a ratio taken) */
  atLimit: boolean;
  /** how that was judged: 'lost 14% of what was offered, CPU 1 100% busy', 'delivered all it was offered: generator-bound' */
  why: string;
}

export interface Figure {
  /** stable key: the summary keeps the newest figure per id */
  id: string;
  /** what is measured, in words */
  measure: string;
  unit: string;
  better: 'higher' | 'lower';
  vipr: Quantity;
  anchor?: Anchor;
  /** vipr ÷ anchor; null when there is no anchor at its limit */
  ratio?: { value: number; bound: Quantity['bound'] } | null;
  /** the goal, e.g. '≥ 1.0× the kernel', '≤ 200 MB' */
  target?: string;
  /** a short note for the summary (what vipr's figure is, or why there is no ratio) */
  note?: string;
}

/** vipr ÷ anchor, with its bound; null without an anchor, or when the anchor was not at its limit. */
export function ratioOf(vipr: Quantity, anchor: Anchor | undefined): Figure['ratio'] {
  if (!anchor || !anchor.atLimit || anchor.bound !== 'exact' || vipr.value === null || anchor.value === null || anchor.value === 0) return null;
  return { value: round(vipr.value / anchor.value, 3), bound: vipr.bound };
}

/**
 * A figure with its ratio filled in (`ratio: false`: no ratio, where one
 * means nothing, e.g. packets lost: 0 against 55,593).
 */
export function figure(f: Omit<Figure, 'ratio'>, opts: { ratio?: boolean } = {}): Figure {
  return { ...f, ratio: opts.ratio === false ? null : ratioOf(f.vipr, f.anchor) };
}

/** Host CPU time (/proc/stat, ticks) and this process's with its waited-for children (/proc/self/stat). */
function cpuTicks(): { hostBusy: number; hostTotal: number; self: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const hostTotal = f.reduce((a, b) => a + b, 0);
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const g = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  // utime, stime, cutime, cstime: fields 14-17, i.e. g[11..14]
  return { hostBusy: hostTotal - (f[3] ?? 0) - (f[4] ?? 0), hostTotal, self: g[11] + g[12] + g[13] + g[14] };
}

/** How busy the machine was over a run: what else ran while the bench measured. */
export interface Load {
  loadavgAtStart: number[];
  loadavgAtEnd: number[];
  /** all CPUs, anyone's work, % of the machine */
  hostBusyPercent: number;
  /** this process and the children it waited for, % of one CPU */
  benchPercentOfOneCpu: number;
  /** the rest (other work on the box; for lab benches also their daemons and labs), % of one CPU */
  othersPercentOfOneCpu: number;
}

export interface Commit {
  commit: string;
  /** files changed on top of the commit (the bench measures the working tree's dist/) */
  uncommitted: string[];
  /** a hash of dist/src/**.js: which build ran */
  distSrcSha256: string;
}

/**
 * Which vipr was measured: the commit, what was changed on top of it, a hash
 * of the build. Synchronous: an in-memory bench blocks the event loop for
 * minutes, and an asynchronous git would time out behind it.
 */
export function commitInfo(): Commit {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return '';
    }
  };
  const commit = git(['rev-parse', '--short', 'HEAD']).trim();
  const status = git(['status', '--porcelain', '--', 'src', 'native-bindings/src', 'lab', 'bench', 'test/fixtures']);
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      const f = join(dir, name);
      if (statSync(f).isDirectory()) walk(f);
      else if (name.endsWith('.js')) hash.update(name).update(readFileSync(f));
    }
  };
  walk(join(REPO_ROOT, 'dist/src'));
  return { commit, uncommitted: status.split('\n').map((l) => l.trim()).filter(Boolean), distSrcSha256: hash.digest('hex').slice(0, 16) };
}

export function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    hostname: hostname(),
    cpus: cpus().length,
    cpuModel: (cpuinfo.match(/^model name\s*:\s*(.*)$/m) ?? [])[1] ?? cpus()[0]?.model ?? '',
    hypervisor: /\bhypervisor\b/.test(cpuinfo),
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
  };
}

/** A bench run under way: started now; `write` puts the result file down. */
export class BenchRun {
  readonly startedAt = new Date();
  private readonly loadAtStart = loadavg().map((x) => round(x, 2));
  private readonly ticksAtStart = cpuTicks();
  private readonly commitAtStart = commitInfo();

  constructor(readonly bench: string) {}

  /** The command as it was typed (node's flags included). */
  command(): string {
    const script = process.argv[1] ? relative(REPO_ROOT, process.argv[1]) : '';
    return ['node', ...process.execArgv, script, ...process.argv.slice(2)].join(' ');
  }

  load(): Load {
    const now = cpuTicks();
    const ticksPerSecond = 100; // USER_HZ on Linux
    const seconds = Math.max(1e-3, (Date.now() - this.startedAt.getTime()) / 1000);
    const bench = (100 * (now.self - this.ticksAtStart.self)) / ticksPerSecond / seconds;
    const host = (100 * (now.hostBusy - this.ticksAtStart.hostBusy)) / Math.max(1, now.hostTotal - this.ticksAtStart.hostTotal);
    return {
      loadavgAtStart: this.loadAtStart,
      loadavgAtEnd: loadavg().map((x) => round(x, 2)),
      hostBusyPercent: round(host, 1),
      benchPercentOfOneCpu: round(bench, 1),
      othersPercentOfOneCpu: round(Math.max(0, (host * cpus().length) - bench), 1),
    };
  }

  /**
   * Writes bench/results/BENCH-YYYY-MM-DDTHHMMSS.json (or `out`): the envelope,
   * the figures and the bench's raw data. Returns the path.
   */
  async write(figures: Figure[], raw: Record<string, unknown>, out?: string): Promise<string> {
    const file = resolve(out ?? join(RESULTS_DIR, `${this.bench}-${this.startedAt.toISOString().slice(0, 19).replace(/:/g, '')}.json`));
    mkdirSync(dirname(file), { recursive: true });
    const commitAtEnd = commitInfo();
    const atStart = this.commitAtStart;
    const doc = {
      schema: RESULT_SCHEMA,
      bench: this.bench,
      command: this.command(),
      startedAt: this.startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      ...atStart,
      ...(commitAtEnd.distSrcSha256 !== atStart.distSrcSha256 ? { distSrcSha256AtEnd: commitAtEnd.distSrcSha256, note: 'dist/src changed during the run' } : {}),
      machine: machine(),
      load: this.load(),
      figures,
      ...raw,
    };
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    return file;
  }
}
