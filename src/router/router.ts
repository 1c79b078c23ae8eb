// One router instance: ports, tables, data plane, neighbour resolver and RIB,
// wired together. The data plane runs inline, on this thread, over the ports
// it is given (tests and benchmarks give it in-memory ones, src/io/memory-port.ts,
// and drive the same code), or on worker threads that open the ports themselves
// (the daemon's default: src/router/threads.ts), over tables in shared memory.

import type { Config } from '../config/types.js';
import { FrameBatch } from '../dataplane/batch.js';
import { monotonicClock, type Clock } from '../dataplane/clock.js';
import { Counters } from '../dataplane/counters.js';
import { Dataplane, NO_SLOW_PATH, type ControlTables, type FrameInjector } from '../dataplane/dataplane.js';
import { IcmpErrorSender } from '../dataplane/icmp-error.js';
import { Ip4Fragmenter } from '../dataplane/ip4-fragment.js';
import { PortTable, type PortAddress, type PortDescription, type TxPort } from '../dataplane/ports.js';
import { LpmTable } from '../dataplane/fib/lpm.js';
import { NextHopTable } from '../dataplane/fib/nexthop.js';
import { NeighborTable } from '../dataplane/neighbor-table.js';
import type { Memory } from '../dataplane/memory.js';
import { PacketTracer, type TraceTap } from '../dataplane/trace.js';
import { NeighborResolver, type NeighborEvents } from '../neighbor/resolver.js';
import { DataplaneThreads, type ThreadsOptions } from './threads.js';
import { Rib, type RuntimeChanges } from '../rib/rib.js';

export type RouterConfig = Pick<Config, 'routes' | 'neighbors' | 'icmp' | 'dataplane'>;

/** How the data plane runs: on this thread over the given ports, or on worker threads that open the ports themselves. */
export type DataplaneMode =
  | { kind: 'inline'; txPorts: readonly TxPort[] }
  | { kind: 'threads'; options: ThreadsOptions };

export class Router {
  readonly ports: PortTable;
  /** The counts kept on this thread: the whole data plane's when inline; with workers, the control plane's own (see totals()). */
  readonly counters: Counters;
  readonly tables: ControlTables;
  readonly resolver: NeighborResolver;
  readonly rib: Rib;
  private readonly inline: { dataplane: Dataplane; batch: FrameBatch } | undefined;
  /** With dataplane.workers >= 1: the workers (not started until start()). */
  readonly threads: DataplaneThreads | undefined;
  readonly trace: TraceTap;
  private readonly total: Counters;

  constructor(
    descriptions: PortDescription[],
    mode: readonly TxPort[] | DataplaneMode,
    config: RouterConfig,
    events: NeighborEvents = {},
    runtime?: RuntimeChanges,
    /** Rate limits and neighbour timers read it; tests pass their own. */
    clock: Clock = monotonicClock,
  ) {
    const how: DataplaneMode = Array.isArray(mode) ? { kind: 'inline', txPorts: mode as readonly TxPort[] } : (mode as DataplaneMode);
    const memory: Memory = how.kind === 'threads' ? 'shared' : 'local';
    this.ports = new PortTable(descriptions, memory);
    this.counters = new Counters(descriptions.length);
    this.total = new Counters(descriptions.length);
    const nextHops = new NextHopTable(memory);
    const neighbors = new NeighborTable(NeighborResolver.tableCapacity(config.neighbors), memory);
    // An empty table until the RIB compiles the first real one.
    const tables: ControlTables = { fib: new LpmTable({ tbl8Groups: 1, memory }), nextHops, neighbors, fibMemory: memory };
    this.tables = tables;
    let injector: FrameInjector;
    if (how.kind === 'inline') {
      const icmp = new IcmpErrorSender(this.ports, how.txPorts, this.counters, config.icmp, clock);
      // One fragmenter for the batch's fragment exit and for held frames.
      const fragmenter = new Ip4Fragmenter(this.ports, how.txPorts, this.counters);
      const dataplane = new Dataplane(tables, this.ports, how.txPorts, this.counters, icmp, NO_SLOW_PATH, fragmenter, config.dataplane.batchSize);
      this.inline = { dataplane, batch: new FrameBatch(config.dataplane.batchSize) };
      this.threads = undefined;
      injector = dataplane;
      nextHops.sources = [this.counters];
      this.trace = {
        get tracing() {
          return dataplane.tracer !== null;
        },
        start: (filter, sink) => (dataplane.tracer = new PacketTracer(config.dataplane.batchSize, filter, sink)),
        stop: () => (dataplane.tracer = null),
      };
    } else {
      this.inline = undefined;
      const threads = new DataplaneThreads({ ports: this.ports, nextHops, neighbors }, () => tables.fib, how.options);
      this.threads = threads;
      injector = threads;
      tables.publishFib = (replaced) => threads.publishFib(replaced);
      nextHops.sources = [this.counters, ...threads.counters];
      this.trace = {
        get tracing() {
          return threads.tracing;
        },
        start: (filter, sink) => threads.startTrace(filter, sink),
        stop: () => threads.stopTrace(),
      };
    }
    this.resolver = new NeighborResolver(this.ports, neighbors, injector, nextHops, this.counters, config.neighbors, events, clock);
    this.inline?.dataplane.connect(this.resolver);
    this.threads?.connect(this.resolver);
    this.rib = new Rib(this.ports, nextHops, this.resolver, this.tables);
    this.rib.load(config.routes, runtime);
  }

  /** Inline: the data plane (on worker threads there is none on this thread). */
  get dataplane(): Dataplane {
    if (!this.inline) throw new Error('the data plane runs on worker threads: no inline data plane');
    return this.inline.dataplane;
  }

  /** Inline: the receive batch the ports append to. */
  get batch(): FrameBatch {
    if (!this.inline) throw new Error('the data plane runs on worker threads: no inline batch');
    return this.inline.batch;
  }

  /** Every thread's counts added up (control plane; the same object each call, filled anew). */
  totals(): Counters {
    return this.threads ? this.total.sumOf([this.counters, ...this.threads.counters]) : this.counters;
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

  /** Inline: processes whatever the ports appended to the shared batch. */
  process(): void {
    this.inline?.dataplane.process(this.inline.batch);
  }
}
