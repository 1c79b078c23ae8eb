// A fresh lab per mode, and the router in it: the kernel (with or without RPS
// to the router's CPU), the C forwarder (bench/lab/cfwd.c) or vipr with a
// variant of the lab's config. Delivered frames are counted by an nftables
// netdev ingress rule on web1 and web2 (the VIP's route fails over from web1
// to web2 when vipr's health checks call web1 down).

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bringLabUp, labConfigPath, labRunDir, labSocketPath, netnsOf, randomPrefix, startViprIn, viprEventOf, waitViprNeighbors, type LabNode, type OwnedLab, type TrialLab,
} from '../../lab/lib/lab.js';
import { announcedChild, compileC, REPO_ROOT, run, stdoutClosed, stopChild } from '../../lab/lib/process.js';
import { labNetns } from './host.js';
import { CLIENT_MAC, GEN_CPU, ROUTER_CPU, SPECS, UDP_DPORT, WEB1_MAC, type Mode } from './modes.js';

export interface FwLab extends OwnedLab {
  mode: Mode;
  /** ring-transit with a vipr that has no kernelTransit setting: the bench's own nft drop on up0 (its counter is read) */
  benchTransitDrop: boolean;
  /** the lab's network namespaces: processes in them are the bench's, not other work on the box */
  netns: Set<string>;
  ns(node: LabNode): string;
}

/** A fresh lab for `mode`: the kernel forwards in kernel modes; the web servers on the generator's CPU. */
export async function fwLabUp(mode: Mode): Promise<FwLab> {
  const lab = await bringLabUp(randomPrefix(`fw${SPECS[mode].letter}`), { kernelRouter: SPECS[mode].router === 'kernel' });
  try {
    await pinWebServers(lab.prefix);
  } catch (error) {
    await lab.down();
    throw error;
  }
  return { ...lab, mode, benchTransitDrop: false, netns: labNetns(lab.prefix), ns: (node) => netnsOf(lab.prefix, node) };
}

/**
 * The lab's web servers stand for machines of their own: their processes
 * (the HTTP servers answering vipr's health checks) go to the generator's
 * CPU, so that in every mode the router's CPU runs only the router. (Left
 * where the scheduler put them, their answers to 80 checks/s preempted vipr's
 * data plane thread and tripled its p99 latency: 225–691 µs against
 * 88–121 µs pinned, in a same-box check on 2026-11-24.)
 */
async function pinWebServers(prefix: string): Promise<void> {
  for (const web of ['web1', 'web2', 'web3', 'web4']) {
    const pids = await run('ip', ['netns', 'pids', `${prefix}-${web}`]);
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      const r = await run('taskset', ['-a', '-p', '-c', String(GEN_CPU), pid]);
      if (r.code !== 0) throw new Error(`taskset -a -p -c ${GEN_CPU} ${pid} (${web}): ${r.stderr.trim()}`);
    }
  }
}

/** nftables in a lab namespace, from a ruleset text. */
export async function nft(lab: Pick<TrialLab, 'prefix' | 'exec'>, node: LabNode, ruleset: string): Promise<void> {
  const file = join(tmpdir(), `vipr-nft-${lab.prefix}-${node}-${randomInt(1e9)}.nft`);
  writeFileSync(file, ruleset);
  const r = await lab.exec(node, ['nft', '-f', file]);
  rmSync(file, { force: true });
  if (r.code !== 0) throw new Error(`nft in ${lab.prefix}-${node}: ${r.stderr.trim()}`);
}

/** The sinks: count and drop the stream at web1's and web2's eth0 (a rule lookup, no UDP input, no ICMP port unreachable). */
export const SINK_RULES = `table netdev vbench {
  chain sink {
    type filter hook ingress device "eth0" priority 0;
    udp dport ${UDP_DPORT} counter drop
  }
}
`;

/** ring-transit with a vipr that has no kernelTransit setting: drop the kernel's copy of transit frames after the taps. */
export const TRANSIT_DROP_RULES = `table netdev vbench {
  chain transit {
    type filter hook ingress device "up0" priority 0;
    ip daddr 192.168.1.0/24 ip daddr != 192.168.1.1 counter drop
  }
}
`;

/**
 * For the C forwarder: the rule vipr installs with `kernelTransit: drop`
 * (src/daemon/system.ts dropKernelTransit), so the kernel does not parse and
 * route its copy of every transit frame (packet sockets are taps) for either.
 */
export const CFWD_TRANSIT_RULES = `table netdev cfwd_transit {
  chain port0 {
    type filter hook ingress device "up0" priority 0;
    meta pkttype host ip daddr != { 10.0.0.1, 192.168.1.1 } drop
  }
  chain port1 {
    type filter hook ingress device "lan0" priority 0;
    meta pkttype host ip daddr != { 10.0.0.1, 192.168.1.1 } drop
  }
}
`;

/** kernelTransit in the lab's vipr config, as lab.sh wrote it ('absent': this vipr has none; the kernel parses every transit frame). */
export function kernelTransitSetting(lab: FwLab): 'drop' | 'keep' | 'absent' {
  const m = /^kernelTransit: (drop|keep)\s*$/m.exec(readFileSync(labConfigPath(lab.prefix), 'utf8'));
  return m ? (m[1] as 'drop' | 'keep') : 'absent';
}

// ---- the kernel ----------------------------------------------------------------------

/** RPS: the router's receive processing (and everything downstream of it on veth) moves to the router's CPU. */
export async function kernelRps(lab: FwLab): Promise<string[]> {
  const mask = (1 << ROUTER_CPU).toString(16);
  for (const dev of ['up0', 'lan0']) {
    const r = await lab.exec('router', ['sh', '-c', `echo ${mask} > /sys/class/net/${dev}/queues/rx-0/rps_cpus && cat /sys/class/net/${dev}/queues/rx-0/rps_cpus`]);
    if (r.code !== 0) throw new Error(`RPS on ${dev}: ${r.stderr.trim()}`);
  }
  return ['ip', 'netns', 'exec', lab.ns('router'), 'sh', '-c', `echo ${mask} > /sys/class/net/{up0,lan0}/queues/rx-0/rps_cpus`];
}

// ---- a forwarder process on the router's CPU: vipr or the C forwarder ------------------

export interface RouterProcess {
  kind: 'vipr' | 'cfwd';
  child: ChildProcess;
  pid: number;
  command: string[];
  logs: string[];
  /** vipr's `event: ...` log lines (health state changes, failovers), with when they came (performance.now()) */
  events: Array<{ t: number; msg: string }>;
  /** vipr: its config file */
  config?: string;
  /** cfwd: its counters, printed when it stops */
  final?: unknown;
}

/** The daemon's events between two instants (performance.now()). */
export function eventsBetween(router: RouterProcess | undefined, from: number, to: number): string[] {
  return router ? router.events.filter((e) => e.t >= from && e.t <= to).map((e) => e.msg) : [];
}

/**
 * vipr's config: a copy of the lab's (lab.sh writes it) with the data plane
 * thread pinned to the router's CPU (`dataplane.cpu`), and for the variants
 * io: pcap, no health checks, ring busy polling, kernelTransit flipped.
 */
function viprConfig(lab: FwLab): string {
  const base = labConfigPath(lab.prefix);
  const variant = SPECS[lab.mode].vipr ?? {};
  let text = readFileSync(base, 'utf8');
  const change = (re: RegExp, to: string, what: string) => {
    if (!re.test(text)) throw new Error(`${base}: cannot ${what} (the lab config changed?)`);
    text = text.replace(re, to);
  };
  const workers = variant.workers ?? 1;
  // Two workers on this 2-core box: the second shares the generator's CPU (reported as such).
  change(/^ {2}# cpu: 1$/m, workers === 2 ? `  cpu: [${ROUTER_CPU}, ${GEN_CPU}]` : `  cpu: ${ROUTER_CPU}`, 'pin the data plane');
  if (variant.workers !== undefined) change(/^ {2}workers: \d+$/m, `  workers: ${workers}`, 'set dataplane.workers');
  if (variant.io === 'pcap') change(/^io: ring$/m, 'io: pcap', 'switch io to pcap');
  if (variant.io === 'xdp') change(/^io: ring$/m, 'io: xdp', 'switch io to xdp');
  if (variant.noChecks) change(/, checks: \[[^\]]*\] \}/g, ' }', 'remove the health checks');
  if (variant.busyPoll) change(/^io: ring$/m, 'io: ring\nring: { busyPoll: true }', 'turn on busy polling');
  if (variant.flipTransit && !lab.benchTransitDrop) {
    const m = /^kernelTransit: (drop|keep)\s*$/m.exec(text);
    if (!m) throw new Error(`${base}: no kernelTransit line`);
    change(/^kernelTransit: (drop|keep)\s*$/m, `kernelTransit: ${m[1] === 'drop' ? 'keep' : 'drop'}`, 'flip kernelTransit');
  }
  const out = `${labRunDir(lab.prefix)}/vipr-${lab.mode}.yaml`;
  writeFileSync(out, text);
  return out;
}

/** vipr in the router namespace, its data plane on the router's CPU; ready once it has resolved web1 and finds it up. */
export async function startVipr(lab: FwLab, nodeFlags: string[] = []): Promise<RouterProcess> {
  const config = viprConfig(lab);
  const events: RouterProcess['events'] = [];
  const started = await startViprIn(lab, config, (line) => {
    const msg = viprEventOf(line);
    if (msg) events.push({ t: performance.now(), msg });
  }, nodeFlags);
  const router: RouterProcess = { kind: 'vipr', child: started.child, pid: started.child.pid!, command: started.command, logs: started.logs, events, config };
  try {
    await waitViprNeighbors(lab, labSocketPath(lab.prefix), ['web1']);
  } catch (error) {
    await stopRouter(router);
    throw error;
  }
  return router;
}

/** Compile bench/lab/cfwd.c (cc -O2) into the temp dir once. */
export function buildCfwd(): Promise<string> {
  return compileC('bench-cfwd', 'bench/lab/cfwd.c');
}

/** Compile bench/lab/cfwd-xdp.c (libxdp, libbpf) once. */
export function buildCfwdXdp(): Promise<string> {
  return compileC('bench-cfwd-xdp', 'bench/lab/cfwd-xdp.c', { libraries: ['-lxdp', '-lbpf'] });
}

/** vipr's own XDP program, as the native build leaves it: the C forwarder on AF_XDP runs it too. */
const XDP_OBJECT = join(REPO_ROOT, 'native-bindings/build/Release/vipr_xdp.bpf.o');

/**
 * The C forwarder on the router's CPU: frames from up0 go to web1's MAC on
 * lan0, frames from lan0 to the client's on up0 (so ping replies come back);
 * GRO off on both ports and the kernel's transit copy dropped, as vipr does
 * with its default config (offloads: disable, kernelTransit: drop).
 */
export async function startCfwd(lab: FwLab): Promise<RouterProcess> {
  for (const dev of ['up0', 'lan0']) await lab.exec('router', ['ethtool', '-K', dev, 'gro', 'off']);
  await nft(lab, 'router', CFWD_TRANSIT_RULES);
  const spec = SPECS[lab.mode];
  const binary = spec.xdp ? [await buildCfwdXdp(), '--xdp-object', XDP_OBJECT] : [await buildCfwd()];
  const command = [
    'taskset', '-c', String(ROUTER_CPU), ...binary, '--port', `up0=${CLIENT_MAC}`, '--port', `lan0=${WEB1_MAC}`, ...(spec.busyPoll ? ['--busy-poll'] : []),
  ];
  const child = lab.spawn('router', command);
  const { lines } = await announcedChild(child, 'cfwd', (line) => line.includes('"event":"ready"'), 10_000);
  // resolve nothing: the next hops are static; warm the kernel's ARP for ping's replies
  await lab.exec('client', ['ping', '-c', '1', '-W', '1', '192.168.1.33']);
  return { kind: 'cfwd', child, pid: child.pid!, command: ['ip', 'netns', 'exec', lab.ns('router'), ...command], logs: lines, events: [] };
}

/** Stops the forwarder (SIGTERM, 8 s before SIGKILL); the C forwarder's last line has its counters. */
export async function stopRouter(router: RouterProcess | undefined): Promise<void> {
  if (!router) return;
  await stopChild(router.child, 8000);
  await stdoutClosed(router.child);
  if (router.kind === 'cfwd') {
    const last = router.logs.filter((l) => l.includes('"event":"stopped"')).pop();
    if (last) router.final = JSON.parse(last);
  }
}
