// One router instance: ports, tables, data plane, neighbour resolver and RIB,
// wired together. The daemon gives it real ports; tests and benchmarks give it
// in-memory ones (src/io/memory-port.ts) and drive the same code.

import type { Config } from '../config/types.js';
import { FrameBatch } from '../dataplane/batch.js';
import { monotonicClock, type Clock } from '../dataplane/clock.js';
import { Counters } from '../dataplane/counters.js';
import { Dataplane, NO_SLOW_PATH, type DataplaneTables } from '../dataplane/dataplane.js';
import { IcmpErrorSender } from '../dataplane/icmp-error.js';
import { Ip4Fragmenter } from '../dataplane/ip4-fragment.js';
import { PortTable, type PortAddress, type PortDescription, type TxPort } from '../dataplane/ports.js';
import { LpmTable } from '../dataplane/fib/lpm.js';
import { NextHopTable } from '../dataplane/fib/nexthop.js';
import { NeighborTable } from '../dataplane/neighbor-table.js';
import { NeighborResolver, type NeighborEvents } from '../neighbor/resolver.js';
import { Rib, type RuntimeChanges } from '../rib/rib.js';

export type RouterConfig = Pick<Config, 'routes' | 'neighbors' | 'icmp' | 'dataplane'>;

export class Router {
  readonly ports: PortTable;
  readonly counters: Counters;
  readonly tables: DataplaneTables;
  readonly resolver: NeighborResolver;
  readonly rib: Rib;
  readonly dataplane: Dataplane;
  /** The shared receive batch ports append to. */
  readonly batch: FrameBatch;

  constructor(
    descriptions: PortDescription[],
    txPorts: readonly TxPort[],
    config: RouterConfig,
    events: NeighborEvents = {},
    runtime?: RuntimeChanges,
    /** Rate limits and neighbour timers read it; tests pass their own. */
    clock: Clock = monotonicClock,
  ) {
    this.ports = new PortTable(descriptions);
    this.counters = new Counters(descriptions.length);
    const nextHops = new NextHopTable();
    nextHops.sources = [this.counters];
    this.batch = new FrameBatch(config.dataplane.batchSize);
    const icmp = new IcmpErrorSender(this.ports, txPorts, this.counters, config.icmp, clock);
    // One fragmenter for the batch's fragment exit and for held frames.
    const fragmenter = new Ip4Fragmenter(this.ports, txPorts, this.counters);
    const neighbors = new NeighborTable(NeighborResolver.tableCapacity(config.neighbors));
    // An empty table until the RIB compiles the first real one.
    this.tables = { fib: new LpmTable({ tbl8Groups: 1 }), nextHops, neighbors };
    this.dataplane = new Dataplane(this.tables, this.ports, txPorts, this.counters, icmp, NO_SLOW_PATH, fragmenter, config.dataplane.batchSize);
    this.resolver = new NeighborResolver(this.ports, neighbors, this.dataplane, nextHops, this.counters, config.neighbors, events, clock);
    this.dataplane.connect(this.resolver);
    this.rib = new Rib(this.ports, nextHops, this.resolver, this.tables);
    this.rib.load(config.routes, runtime);
  }

  /**
   * The kernel changed a port's IPv4 addresses: the port table, the interface
   * routes in the FIB (own addresses to the kernel, connected subnets) and,
   * through them, ARP and ICMP sources follow. Call rib.reselect() after the
   * last change: next hops in a subnet that came or went change usability.
   */
  setPortAddresses(port: number, addresses: readonly PortAddress[]): void {
    this.ports.setAddresses(port, addresses);
    this.rib.interfacesChanged();
  }

  /**
   * A port's link went down or came up: next hops on it stop or start being
   * usable (after rib.reselect()), neighbours learnt on it are forgotten or
   * asked for again.
   */
  setPortLink(port: number, up: boolean): void {
    if ((this.ports.linkUp[port] === 1) === up) return;
    this.ports.linkUp[port] = up ? 1 : 0;
    this.resolver.linkChanged(port, up);
  }

  /** Processes whatever the ports appended to the shared batch. */
  process(): void {
    this.dataplane.process(this.batch);
  }
}
