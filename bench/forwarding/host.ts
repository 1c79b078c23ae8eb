// What else runs on the box while the forwarding bench measures, read in
// process (nothing spawned inside a measured window): per-CPU busy time from
// /proc/stat, the CPU time of every process outside the bench's labs, and a
// wait for the box to be quiet before each trial (it is shared).

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { sleep } from '../../lab/lib/process.js';
import { round } from '../lib/program.js';

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

export function scanProcs(ourNetns: Set<string>): ProcTimes {
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

export function procTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

export interface CpuSnapshot {
  t: number;
  lines: Record<string, CpuLine>;
  scan: ProcTimes;
  vipr?: number;
}

export function cpuSnapshot(ourNetns: Set<string>, viprPid?: number): CpuSnapshot {
  return { t: performance.now(), lines: readCpuLines(), scan: scanProcs(ourNetns), vipr: viprPid ? procTicks(viprPid) : undefined };
}

export interface CpuUse {
  /** per CPU: busy % and its parts (user, system, softirq; % of that CPU) */
  perCpu: Record<string, { busy: number; user: number; system: number; softirq: number; steal: number }>;
  /** vipr's process: % of one CPU */
  viprPercent: number | null;
  /** processes outside this bench's labs (other work on the box): % of one CPU */
  otherProcessesPercent: number;
  /** kernel threads (ksoftirqd, kworkers; anyone's): % of one CPU */
  kernelThreadsPercent: number;
}

export function cpuUse(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
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

export interface Quiet {
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
export async function waitQuiet(netns: Set<string>, maxMs: number, thresholdPercent: number): Promise<Quiet> {
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

/** The network namespaces of a lab (their inode names, as /proc/PID/ns/net shows them): processes in them are the bench's. */
export function labNetns(prefix: string): Set<string> {
  const out = new Set<string>();
  for (const n of ['client', 'router', 'switch', 'web1', 'web2', 'web3', 'web4']) {
    try {
      out.add(`net:[${statSync(`/run/netns/${prefix}-${n}`).ino}]`);
    } catch {
      /* not there */
    }
  }
  return out;
}

