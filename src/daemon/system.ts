// What the daemon asks of the Linux box it runs on: interface addresses and
// MTUs, the kernel's forwarding switches, and NIC offloads.

import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { PortDescription } from '../dataplane/ports.js';
import { loadNative } from '../io/ring-port.js';
import { linkUp, type InterfaceState } from './interfaces.js';

const execFileAsync = promisify(execFile);

export class SystemError extends Error {
  readonly code = 'ESYSTEM';
}

export function parseMac(text: string): Uint8Array {
  return Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
}

/**
 * The data plane's description of a port from the kernel's state of its
 * interface (src/daemon/interfaces.ts). Throws a one-line SystemError when it
 * cannot be a vipr port. A port that is down is fine: it forwards once its
 * link comes up.
 */
export function describePort(name: string, state: InterfaceState | undefined, mtuOverride?: number): PortDescription {
  if (state === undefined) throw new SystemError(`interface ${name} does not exist (see \`ip link\`)`);
  if (state.mac === undefined) {
    throw new SystemError(`interface ${name} is not Ethernet (link type ${state.linkType}): vipr ports must be Ethernet`);
  }
  if (state.addresses.length === 0) {
    throw new SystemError(`interface ${name} has no IPv4 address: vipr needs one per port to ARP from and to send ICMP errors from (\`ip addr add ADDRESS/LENGTH dev ${name}\`)`);
  }
  return { name, mac: parseMac(state.mac), mtu: mtuOverride ?? state.mtu, addresses: state.addresses, up: linkUp(state) };
}


const forwardingPath = (name: string) => `/proc/sys/net/ipv4/conf/${name}/forwarding`;

/** Interfaces (of `names`) on which the kernel forwards IPv4. */
export async function kernelForwardingOn(names: readonly string[]): Promise<string[]> {
  const on: string[] = [];
  for (const name of names) {
    const value = (await readFile(forwardingPath(name), 'utf8').catch(() => '0')).trim();
    if (value !== '0') on.push(name);
  }
  return on;
}

export async function disableKernelForwarding(names: readonly string[]): Promise<void> {
  for (const name of names) await writeFile(forwardingPath(name), '0\n');
}

/**
 * Turns GRO and LRO off: with them on, the kernel hands a packet socket
 * merged super-frames no wire carries (see docs/ARCHITECTURE.md, pitfalls of packet sockets). Returns what
 * it changed, in ethtool's words; features the driver fixes are left alone.
 */
export async function disableReceiveOffloads(name: string): Promise<string[]> {
  const changed: string[] = [];
  let features: string;
  try {
    features = (await execFileAsync('ethtool', ['-k', name])).stdout;
  } catch (error) {
    throw new SystemError(`interface ${name}: cannot read offloads with ethtool (${(error as Error).message.split('\n')[0]}); install ethtool or set offloads: keep`);
  }
  for (const [feature, short] of [['generic-receive-offload', 'gro'], ['large-receive-offload', 'lro']] as const) {
    const line = features.split('\n').find((l) => l.startsWith(`${feature}:`)) ?? '';
    if (!/: on/.test(line) || /\[fixed\]/.test(line)) continue;
    await execFileAsync('ethtool', ['-K', name, short, 'off']);
    changed.push(`${short} off`);
  }
  return changed;
}

/** The interface's driver as `ethtool -i` names it (veth, i40e, ...); undefined when ethtool cannot say. */
export async function driverOf(name: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('ethtool', ['-i', name]);
    return /^driver: (\S+)/m.exec(stdout)?.[1];
  } catch {
    return undefined;
  }
}

const TRANSIT_TABLE = 'vipr_transit';

/**
 * Has the kernel drop its own copy of transit IPv4 frames on vipr's ports:
 * an nftables netdev ingress rule runs after the packet-socket taps (vipr has
 * its copy by then) and before the kernel's IP input, which would otherwise
 * parse and route every transit frame only to drop it (forwarding is off).
 * Frames to the router's own addresses, and broadcast or multicast frames,
 * still reach the kernel. "Own" is asked of the kernel's routing table for
 * each frame (`fib daddr type local`), not listed in the rule: an address
 * added at run time (keepalived's VRRP address) is the kernel's from the
 * moment it exists, with no rule to update and no window in which frames to
 * it are dropped. Measured in the lab: vipr delivered 0.56x the kernel's
 * packets/s without this rule, 1.23x with it (bench/README.md).
 */
export async function dropKernelTransit(names: readonly string[]): Promise<void> {
  const chains = names.map((name, i) => `  chain port${i} {
    type filter hook ingress device "${name}" priority 0;
    meta protocol ip meta pkttype host fib daddr type != local drop
  }`);
  const ruleset = `table netdev ${TRANSIT_TABLE}\ndelete table netdev ${TRANSIT_TABLE}\ntable netdev ${TRANSIT_TABLE} {\n${chains.join('\n')}\n}\n`;
  await nft(ruleset, 'cannot install the kernel-transit drop rule');
}

export async function restoreKernelTransit(): Promise<void> {
  await nft(`table netdev ${TRANSIT_TABLE}\ndelete table netdev ${TRANSIT_TABLE}\n`, 'cannot remove the kernel-transit drop rule').catch(() => undefined);
}

function nft(ruleset: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('nft', ['-f', '-'], (error, _stdout, stderr) => {
      if (error) reject(new SystemError(`${what} (nft: ${(stderr || error.message).trim().split('\n')[0]}); install nftables or set kernelTransit: keep`));
      else resolve();
    });
    child.stdin?.end(ruleset);
  });
}

/** Where the daemon's threads run when `dataplane.cpu` is set. */
export interface Placement {
  /** The data-plane thread(s)' CPUs, in worker order. */
  cpus: number[];
  /** The CPUs vipr may use besides them: the health-check thread goes there. */
  others: number[];
}

/**
 * Where the data plane runs: checks `cpus` against the set the daemon was
 * started with (taskset, a systemd CPUAffinity=, a cpuset), naming the ones
 * it may use, and with `pinThisThread` (data plane on the main thread) pins
 * the calling thread, and only it (sched_setaffinity(0, ...)), to the first.
 * Workers pin themselves (src/router/dataplane-worker.ts).
 */
export function placeDataPlane(cpus: number[], pinThisThread: boolean): Placement {
  const native = loadNative();
  const allowed = native.getThreadAffinity();
  for (const cpu of cpus) {
    if (!allowed.includes(cpu)) throw new SystemError(`dataplane.cpu: CPU ${cpu} is not one vipr may run on (allowed: ${allowed.join(',')})`);
  }
  if (pinThisThread) native.setThreadAffinity([cpus[0]]);
  return { cpus, others: allowed.filter((c) => !cpus.includes(c)) };
}
