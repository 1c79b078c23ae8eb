// The box's own interface addresses, for the checks a config file can only
// get right on the box itself (a server on the router's own address, a next
// hop that is a subnet's broadcast address). Read with `ip -j addr`, whatever
// the link state; an interface that does not exist here (check-config on
// another machine), or a box without iproute2, is simply not judged.

import { execFile } from 'node:child_process';
import { formatAddress, parseAddress } from '../util/ipv4.js';
import { connectedAddressRole } from '../util/martians.js';
import type { Config } from './types.js';

export type InterfaceAddresses = ReadonlyMap<string, readonly { address: number; length: number }[]>;

/** Reads the addresses of the named interfaces that exist; a function so tests and the daemon can pass their own. */
export type InterfaceAddressReader = (names: readonly string[]) => Promise<InterfaceAddresses>;

interface IpAddrJson {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

export const readInterfaceAddresses: InterfaceAddressReader = async (names) => {
  const found = new Map<string, { address: number; length: number }[]>();
  for (const name of names) {
    const output = await new Promise<string | undefined>((resolve) => {
      execFile('ip', ['-j', '-4', 'addr', 'show', 'dev', name], { timeout: 5_000 }, (error, stdout) => resolve(error ? undefined : stdout));
    });
    if (output === undefined) continue;
    let parsed: IpAddrJson[];
    try {
      parsed = JSON.parse(output) as IpAddrJson[];
    } catch {
      continue;
    }
    const addresses = parsed
      .flatMap((link) => link.addr_info ?? [])
      .filter((info) => info.family === 'inet' && typeof info.local === 'string' && typeof info.prefixlen === 'number')
      .map((info) => ({ address: parseAddress(info.local!), length: info.prefixlen! }));
    found.set(name, addresses);
  }
  return found;
};

/**
 * The first server address, or next-hop address of a YAML route, that the
 * box's interfaces rule out (the router's own address, a connected subnet's
 * network or broadcast address), with the field it is in. Route files check
 * theirs as they are read.
 */
export function interfaceAddressProblem(config: Pick<Config, 'servers' | 'routes'>, box: InterfaceAddresses): { field: PropertyKey[]; message: string } | undefined {
  if (box.size === 0) return undefined;
  const interfaces = [...box].map(([name, addresses]) => ({ name, addresses }));
  for (const server of config.servers) {
    const role = connectedAddressRole(server.address, interfaces);
    if (role) return { field: ['servers', server.name, 'address'], message: `${formatAddress(server.address)} ${role}` };
  }
  for (const [i, route] of config.routes.entries()) {
    if (route.sourceFile !== undefined) continue;
    for (const [j, via] of route.via.entries()) {
      if (via.server !== undefined) continue; // judged as the server
      const role = connectedAddressRole(via.address, interfaces);
      if (role) return { field: ['routes', i, 'via', j], message: `${formatAddress(via.address)} ${role}` };
    }
  }
  return undefined;
}
