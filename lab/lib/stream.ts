// The numbered UDP stream (lab/udp-stream.c) that the reroute and failover
// measurements send through the router, and its stall probe: how long this
// machine keeps a real-time process off a CPU.

import { cpus } from 'node:os';
import { compileC, run } from './process.js';

export const VIP = '192.168.1.33';
export const VIP_NET = '192.168.1.32/27';
export const PORT = 9999;

/** Compile lab/udp-stream.c (cc -O2) into the temp dir once; the file name carries the source's hash. */
export function buildStream(): Promise<string> {
  return compileC('udp-stream', 'lab/udp-stream.c');
}

/** What udp-stream says when it stops (one JSON line). */
export interface StreamReport {
  sent: number;
  errors: number;
  last_error: string;
  elapsed_ns: number;
  rate: number;
  max_late_us: number;
  max_burst: number;
  late_1ms: number;
  /** times the sender was more than 64 packets behind and moved its schedule on, and for how long in all */
  resyncs: number;
  stalled_ms: number;
}

/**
 * The stream's command: `rate` numbered packets/s (UDP payload `size` bytes)
 * to the VIP for at most `seconds`, tagged `runId` (the sinks count only
 * their run's packets), on CPU `cpu` at SCHED_FIFO 50 when there is such a CPU.
 */
export function streamCommand(binary: string, o: { rate: number; runId: number; size?: number; seconds: number; cpu?: number }): string[] {
  const cpu = o.cpu ?? 0;
  return [
    binary, '--dst', VIP, '--port', String(PORT), '--rate', String(o.rate), '--run-id', String(o.runId), '--size', String(o.size ?? 64),
    '--duration', String(o.seconds), ...(cpu < cpus().length ? ['--cpu', String(cpu), '--rt', '50'] : []),
  ];
}

export interface StallProbe {
  cpu: number;
  priority: number;
  probe_s: number;
  wakeups: number;
  max_late_us: number;
  late_1ms: number;
  late_5ms: number;
  late_10ms?: number;
}

/**
 * How long can a SCHED_FIFO process be kept off each CPU here? (udp-stream
 * --stall-probe: wake up every 200 us, record the lateness.) CPU 0 at the
 * generator's priority, CPU 1 at vipr-rt's, at the same time.
 */
export async function stallProbe(seconds: number): Promise<StallProbe[]> {
  const binary = await buildStream();
  const probes = [
    { cpu: 0, priority: 50 },
    { cpu: 1, priority: 20 },
  ].filter((p) => p.cpu < cpus().length);
  return Promise.all(
    probes.map(async (p) => {
      const r = await run(binary, ['--stall-probe', String(seconds), '--cpu', String(p.cpu), '--rt', String(p.priority)], (seconds + 30) * 1000);
      if (r.code !== 0) throw new Error(`stall probe: ${r.stderr.trim()}`);
      return { ...p, ...(JSON.parse(r.stdout) as Omit<StallProbe, 'cpu' | 'priority'>) };
    }),
  );
}
