// vipr's ports as the kernel has them: MAC, MTU, IPv4 addresses and link
// state, read with iproute2 whatever the carrier, and followed while vipr runs.
//
// Why iproute2 and not os.networkInterfaces(): Node lists only interfaces that
// are RUNNING, so a port whose carrier is not reported yet (the first second
// after `ip link set up`, or a cable unplugged at boot) looked as if it had no
// address and vipr refused to start. `ip -j addr show` reports every address
// of every interface, up or down.
//
// Following changes: `ip monitor link address` prints a line for every
// rtnetlink link or IPv4/IPv6 address notification. The lines are only a
// trigger: on any of them (coalesced while a read is under way) the watcher
// reads the whole state again with `ip -j addr show` and hands it over, so a
// missed or garbled notification can never leave vipr with a wrong picture.
// If `ip monitor` dies it is restarted, and a read follows. A slow periodic
// read is a last safety net (rtnetlink drops notifications when its socket
// buffer overflows: ENOBUFS).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import type { PortAddress } from '../dataplane/ports.js';
import { parseAddress } from '../util/ipv4.js';

const execFileAsync = promisify(execFile);

export class InterfaceError extends Error {
  readonly code = 'ESYSTEM';
}

export interface InterfaceState {
  name: string;
  ifindex: number;
  /** "aa:bb:cc:dd:ee:ff"; undefined when the interface is not Ethernet. */
  mac: string | undefined;
  linkType: string;
  mtu: number;
  /** IPv4 addresses in the kernel's order (the first is the primary of its subnet). */
  addresses: PortAddress[];
  /** Administratively up (`ip link set NAME up`). */
  adminUp: boolean;
  /** The driver reports a carrier (LOWER_UP). */
  carrier: boolean;
}

/** Whether the port can carry frames: up, and with a carrier. */
export function linkUp(state: InterfaceState): boolean {
  return state.adminUp && state.carrier;
}

/** The link state in words, for logs and `status`: up, or why not. */
export function describeLink(state: InterfaceState | undefined): string {
  if (state === undefined) return 'absent';
  if (!state.adminUp) return 'down (admin down)';
  if (!state.carrier) return 'down (no carrier)';
  return 'up';
}

interface IpAddrJson {
  ifindex: number;
  ifname: string;
  flags?: string[];
  mtu: number;
  link_type?: string;
  address?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** Parses `ip -j addr show` output into states by interface name. */
export function parseIpAddr(json: string): Map<string, InterfaceState> {
  const states = new Map<string, InterfaceState>();
  let parsed: IpAddrJson[];
  try {
    parsed = JSON.parse(json) as IpAddrJson[];
  } catch (error) {
    throw new InterfaceError(`cannot read interfaces: \`ip -j addr show\` printed no valid JSON (${(error as Error).message})`);
  }
  for (const link of parsed) {
    const flags = link.flags ?? [];
    const linkType = link.link_type ?? 'unknown';
    const mac = linkType === 'ether' && link.address && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(link.address) ? link.address : undefined;
    states.set(link.ifname, {
      name: link.ifname,
      ifindex: link.ifindex,
      mac,
      linkType,
      mtu: link.mtu,
      addresses: (link.addr_info ?? [])
        .filter((a) => a.family === 'inet')
        .map((a) => ({ address: parseAddress(a.local), length: a.prefixlen })),
      adminUp: flags.includes('UP'),
      carrier: flags.includes('LOWER_UP') && !flags.includes('NO-CARRIER'),
    });
  }
  return states;
}

/**
 * Every IPv4 address of the box (every interface, vipr's ports or not), host
 * order, without repeats: what the kernel delivers locally. The AF_XDP
 * backend's program passes frames to these to the kernel.
 */
export function localAddresses(states: Map<string, InterfaceState>): number[] {
  const all = new Set<number>();
  for (const state of states.values()) for (const a of state.addresses) all.add(a.address >>> 0);
  return [...all];
}

/** Every interface of this network namespace, as the kernel has it now. */
export async function readInterfaces(): Promise<Map<string, InterfaceState>> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('ip', ['-j', 'addr', 'show'], { maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new InterfaceError('cannot read interfaces: `ip` (iproute2) is not installed');
    throw new InterfaceError(`cannot read interfaces: ip -j addr show failed (${(e.stderr || e.message).trim().split('\n')[0]})`);
  }
  return parseIpAddr(stdout);
}

export interface InterfaceWatcherOptions {
  /** Called with the whole state after every read that follows a change (and after restarts). */
  onState(states: Map<string, InterfaceState>): void;
  /** Something went wrong (the monitor died, a read failed): one line for the log. */
  onProblem(message: string): void;
  /** Safety-net read period; 30 s by default. */
  resyncMs?: number;
  /** Wait before restarting a monitor that died; 1 s by default. */
  restartMs?: number;
}

export class InterfaceWatcher {
  private monitor: ChildProcess | undefined;
  private reading = false;
  private dirty = false;
  private stopped = true;
  private restartTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: InterfaceWatcherOptions) {}

  /** Starts following changes; reads the state once at once (changes since the caller's own read). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawnMonitor();
    this.resyncTimer = setInterval(() => this.changed(), this.options.resyncMs ?? 30_000);
    this.resyncTimer.unref();
    this.changed();
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.restartTimer = this.resyncTimer = undefined;
    const monitor = this.monitor;
    this.monitor = undefined;
    monitor?.kill('SIGKILL');
  }

  private spawnMonitor(): void {
    const monitor = spawn('ip', ['monitor', 'link', 'address'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.monitor = monitor;
    monitor.stdout!.on('data', () => this.changed());
    let stderr = '';
    monitor.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-500);
    });
    monitor.on('error', (error) => this.options.onProblem(`interface watcher: cannot run \`ip monitor\`: ${error.message}`));
    monitor.on('close', (code, signal) => {
      if (this.monitor !== monitor) return;
      this.monitor = undefined;
      if (this.stopped) return;
      const why = stderr.trim().split('\n').pop() || (signal ? `killed by ${signal}` : `exit ${code}`);
      this.options.onProblem(`interface watcher: \`ip monitor\` ended (${why}); restarting it`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (this.stopped) return;
        this.spawnMonitor();
        this.changed();
      }, this.options.restartMs ?? 1000);
      this.restartTimer.unref();
    });
  }

  /** A change was announced: read the state again (once more after the current read if one is under way). */
  private changed(): void {
    if (this.stopped) return;
    if (this.reading) {
      this.dirty = true;
      return;
    }
    this.reading = true;
    this.dirty = false;
    readInterfaces()
      .then((states) => {
        if (!this.stopped) this.options.onState(states);
      })
      .catch((error: Error) => this.options.onProblem(`interface watcher: ${error.message}`))
      .finally(() => {
        this.reading = false;
        if (this.dirty) this.changed();
      });
  }
}
