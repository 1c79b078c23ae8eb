// The RIB: the router's intent (connected subnets, its own addresses, static
// routes) compiled into a FIB. Control plane: plain, allocating TypeScript.
//
// Compiling builds a whole new LpmTable beside the live one and publishes it
// with one assignment to `tables.fib`; the data plane reads that reference once
// per batch, so a packet sees the old table or the new one, never a mix.

import { LpmTable } from '../fib/lpm.js';
import {
  NH_BLACKHOLE, NH_BROADCAST, NH_LOCAL, NH_UNREACHABLE, NextHopKind, type NextHopTable,
} from '../fib/nexthop.js';
import type { DataplaneTables } from '../dataplane/dataplane.js';
import type { PortTable } from '../dataplane/ports.js';
import type { NeighborResolver } from '../neighbor/resolver.js';
import type { RouteConfig, RouteType } from '../config/types.js';
import { contains, formatAddress, formatPrefix, maskOf, type Prefix } from '../util/ipv4.js';

export type RouteSource = 'connected' | 'local' | 'broadcast' | 'config';

export interface RibRoute {
  prefix: Prefix;
  type: RouteType | 'connected' | 'local' | 'broadcast';
  source: RouteSource;
  /** Gateway for unicast routes. */
  via?: { address: number; server?: string; port: string };
  /** Port of connected routes. */
  port?: string;
  sourceLine?: number;
  nextHop: number;
}

export class RibError extends Error {
  readonly code = 'EROUTE';
}

const key = (p: Prefix) => `${p.address}/${p.length}`;

export class Rib {
  private routesByKey = new Map<string, RibRoute>();
  /** Gateway next hops, shared by every route through the same gateway. */
  private gateways = new Map<number, { nextHop: number; neighbor: number }>();
  private connectedNextHop: number[] = [];

  constructor(
    private readonly ports: PortTable,
    private readonly nextHops: NextHopTable,
    private readonly resolver: NeighborResolver,
    private readonly tables: DataplaneTables,
  ) {
    for (let port = 0; port < ports.count; port++) {
      this.connectedNextHop[port] = nextHops.allocate(NextHopKind.connected, port);
    }
  }

  /** Validates `routes` against the ports, then builds and swaps in a new FIB. Throws RibError and changes nothing on a bad route. */
  load(routes: readonly RouteConfig[]): void {
    const next = new Map<string, RibRoute>();
    for (const route of this.interfaceRoutes()) next.set(key(route.prefix), route);
    const gatewaysNeeded = new Map<number, number>(); // gateway address -> port
    for (const route of routes) {
      const where = `route ${formatPrefix(route.prefix)} (line ${route.sourceLine})`;
      const clash = next.get(key(route.prefix));
      if (clash) {
        throw new RibError(`${where}: duplicates the ${clash.source} route of ${clash.port ?? clash.via?.port ?? 'this router'}`);
      }
      let via: RibRoute['via'];
      if (route.type === 'unicast') {
        const gateway = route.via!.address;
        const port = this.portForGateway(gateway);
        if (port < 0) {
          throw new RibError(`${where}: gateway ${formatAddress(gateway)} is not on a connected subnet of any interface (${this.describeSubnets()})`);
        }
        if (this.isOwnAddress(gateway)) {
          throw new RibError(`${where}: gateway ${formatAddress(gateway)} is this router's own address`);
        }
        gatewaysNeeded.set(gateway, port);
        via = { address: gateway, server: route.via!.server, port: this.ports.names[port] };
      }
      next.set(key(route.prefix), {
        prefix: route.prefix, type: route.type, source: 'config', via, sourceLine: route.sourceLine, nextHop: 0,
      });
    }

    // Everything is valid: allocate next hops for new gateways, build, swap, then release unused ones.
    for (const [gateway, port] of gatewaysNeeded) {
      if (this.gateways.has(gateway)) continue;
      const neighbor = this.resolver.pinGateway(gateway, port);
      if (neighbor < 0) throw new RibError(`gateway ${formatAddress(gateway)}: neighbour table full`);
      const nextHop = this.nextHops.allocate(NextHopKind.gateway, port, gateway, neighbor);
      this.gateways.set(gateway, { nextHop, neighbor });
    }
    const entries: [number, number, number][] = [];
    for (const route of next.values()) {
      route.nextHop = this.nextHopFor(route);
      entries.push([route.prefix.address, route.prefix.length, route.nextHop]);
    }
    this.tables.fib = LpmTable.build(entries);
    this.routesByKey = next;
    for (const [gateway, { nextHop, neighbor }] of this.gateways) {
      if (gatewaysNeeded.has(gateway)) continue;
      this.nextHops.release(nextHop);
      this.resolver.unpinGateway(neighbor);
      this.gateways.delete(gateway);
    }
  }

  routes(): RibRoute[] {
    return [...this.routesByKey.values()].sort(
      (a, b) => a.prefix.address - b.prefix.address || a.prefix.length - b.prefix.length,
    );
  }

  get size(): number {
    return this.routesByKey.size;
  }

  private nextHopFor(route: RibRoute): number {
    switch (route.type) {
      case 'connected': return this.connectedNextHop[this.ports.names.indexOf(route.port!)];
      case 'local': return NH_LOCAL;
      case 'broadcast': return NH_BROADCAST;
      case 'unreachable': return NH_UNREACHABLE;
      case 'blackhole': return NH_BLACKHOLE;
      case 'unicast': return this.gateways.get(route.via!.address)!.nextHop;
    }
  }

  /** Connected subnets, the router's own addresses (/32, to the kernel) and subnet broadcasts (/32, never forwarded). */
  private interfaceRoutes(): RibRoute[] {
    const routes: RibRoute[] = [];
    for (let port = 0; port < this.ports.count; port++) {
      const name = this.ports.names[port];
      for (const { address, length } of this.ports.addresses[port]) {
        const network = (address & maskOf(length)) >>> 0;
        routes.push({ prefix: { address: network, length }, type: 'connected', source: 'connected', port: name, nextHop: 0 });
        routes.push({ prefix: { address, length: 32 }, type: 'local', source: 'local', port: name, nextHop: 0 });
        if (length <= 30) {
          const broadcast = (network | ~maskOf(length)) >>> 0;
          routes.push({ prefix: { address: broadcast, length: 32 }, type: 'broadcast', source: 'broadcast', port: name, nextHop: 0 });
        }
      }
    }
    return routes;
  }

  private portForGateway(gateway: number): number {
    let best = -1;
    let bestLength = -1;
    for (let port = 0; port < this.ports.count; port++) {
      for (const a of this.ports.addresses[port]) {
        if (a.length > bestLength && contains({ address: (a.address & maskOf(a.length)) >>> 0, length: a.length }, gateway)) {
          best = port;
          bestLength = a.length;
        }
      }
    }
    return best;
  }

  private isOwnAddress(address: number): boolean {
    return this.ports.addresses.some((list) => list.some((a) => a.address === address));
  }

  private describeSubnets(): string {
    return this.ports.names
      .map((name, port) => `${name}: ${this.ports.addresses[port].map((a) => formatPrefix({ address: (a.address & maskOf(a.length)) >>> 0, length: a.length })).join(', ') || 'no address'}`)
      .join('; ');
  }
}
