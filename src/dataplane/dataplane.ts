// The batch dispatcher: runs every stage over a received batch, transmits the
// forwarded frames one burst per egress port, then hands the rare frames (ARP,
// ICMP errors, unresolved next hops, packets to fragment) to the slow path. A
// slow-path node that drops a frame writes its verdict back into the slot
// (exit drop, nextHop = reason), so a trace sees what became of it. The FIB is read once per
// batch, so a table swapped in by the control plane takes effect between two
// batches and no frame ever sees half a change.

import type { LpmTable } from '../fib/lpm.js';
import type { NextHopTable } from '../fib/nexthop.js';
import { ETHER_PAIR, type NeighborTable } from '../neighbor/table.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, PORT_COUNTERS, PortCounter, type Counters } from './counters.js';
import { ethInput } from './eth-input.js';
import type { IcmpErrorSender } from './icmp-error.js';
import { ip4Input } from './ip4-input.js';
import { ip4Lookup } from './ip4-lookup.js';
import { FRAGMENTS_SENT, type Ip4Fragmenter } from './ip4-fragment.js';
import { ip4Rewrite, neighborFor } from './ip4-rewrite.js';
import { IcmpError, Next } from './next.js';
import type { PortTable, TxPort } from './ports.js';
import type { PacketTracer } from './trace.js';

/** Slow-path handlers the neighbour resolver provides (control plane side). */
export interface NeighborSlowPath {
  /** Learn from an ARP frame; counts it, and returns the Drop reason when it refused the frame, else -1. */
  arpInput(frame: Uint8Array, offset: number, length: number, port: number): number;
  /** Park a frame whose next hop is unresolved; the resolver copies it and owns what happens next. */
  hold(frame: Uint8Array, offset: number, length: number, ingressPort: number, nextHop: number): void;
}

export interface DataplaneTables {
  fib: LpmTable;
  readonly nextHops: NextHopTable;
  readonly neighbors: NeighborTable;
}

export class Dataplane {
  /** Reused per batch: slots to send on one port. */
  private readonly txSlots: Uint16Array;
  /**
   * Set by the control plane while `vipr ctl trace` runs, null otherwise
   * (src/dataplane/trace.ts). Read once per batch: off, it costs one compare.
   */
  tracer: PacketTracer | null = null;

  constructor(
    readonly tables: DataplaneTables,
    readonly ports: PortTable,
    readonly txPorts: readonly TxPort[],
    readonly counters: Counters,
    readonly icmp: IcmpErrorSender,
    readonly slowPath: NeighborSlowPath,
    readonly fragmenter: Ip4Fragmenter,
    batchCapacity: number,
  ) {
    this.txSlots = new Uint16Array(batchCapacity);
  }

  /** Processes and consumes `batch` (its count is reset to 0). */
  process(batch: FrameBatch): void {
    const n = batch.count;
    if (n === 0) return;
    const counters = this.counters;
    const tables = this.tables;
    const fib = tables.fib; // one snapshot for the whole batch
    counters.batches++;
    const tracer = this.tracer; // one read per batch, like the FIB
    if (tracer !== null) tracer.beforeStages(batch);
    batch.next.fill(Next.ethInput, 0, n);
    const portCounters = counters.ports;
    for (let i = 0; i < n; i++) {
      const row = batch.port[i] * PORT_COUNTERS;
      portCounters[row + PortCounter.rxPackets]++;
      portCounters[row + PortCounter.rxBytes] += batch.length[i];
    }

    ethInput(batch, this.ports, counters);
    ip4Input(batch, counters);
    ip4Lookup(batch, fib, tables.nextHops, counters);
    ip4Rewrite(batch, tables.nextHops, tables.neighbors, this.ports, counters);
    this.transmit(batch);
    this.slowPaths(batch);
    if (tracer !== null) tracer.afterStages(batch, fib, tables.nextHops);
    batch.count = 0;
  }

  private transmit(batch: FrameBatch): void {
    const n = batch.count;
    const next = batch.next;
    const slots = this.txSlots;
    const portCounters = this.counters.ports;
    for (let port = 0; port < this.ports.count; port++) {
      let count = 0;
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        if (next[i] === Next.tx && batch.egress[i] === port) {
          slots[count++] = i;
          bytes += batch.length[i];
        }
      }
      if (count === 0) continue;
      const sent = this.txPorts[port].txBurst(batch, slots, count);
      const row = port * PORT_COUNTERS;
      portCounters[row + PortCounter.txPackets] += sent;
      portCounters[row + PortCounter.txBytes] += bytes;
      portCounters[row + PortCounter.forwardedPackets] += sent;
      if (sent < count) this.counters.drops[Drop.txFailed] += count - sent;
    }
  }

  /** Rare work, out of the stage loops: ARP, ICMP errors, hold queue, fragmentation. */
  private slowPaths(batch: FrameBatch): void {
    const n = batch.count;
    const next = batch.next;
    for (let i = 0; i < n; i++) {
      const exit = next[i];
      if (exit < Next.arp) continue;
      const off = i * SLOT_SIZE;
      if (exit === Next.arp) {
        const refused = this.slowPath.arpInput(batch.data, off, batch.length[i], batch.port[i]);
        if (refused >= 0) this.dropped(batch, i, refused);
      } else if (exit === Next.fragment) {
        this.fragment(batch, i);
      } else if (exit === Next.icmpError) {
        const kind = batch.nextHop[i] as IcmpError;
        // Fragmentation needed carries the egress MTU in the low half of its second word (RFC 1191).
        const rest = kind === IcmpError.fragmentationNeeded ? this.ports.mtu[batch.egress[i]] : 0;
        this.icmp.send(batch.data, off, batch.length[i], batch.port[i], kind, rest);
      } else if (exit === Next.hold) {
        this.slowPath.hold(batch.data, off, batch.length[i], batch.port[i], batch.nextHop[i]);
      }
    }
  }

  private fragment(batch: FrameBatch, i: number): void {
    const off = i * SLOT_SIZE;
    const tables = this.tables;
    // An ARP frame earlier in this batch may have made the resolver evict the entry: then the frame waits like any other.
    const entry = neighborFor(tables.nextHops, tables.neighbors, batch.nextHop[i], batch.data, off);
    if (entry < 0) {
      batch.next[i] = Next.hold;
      this.slowPath.hold(batch.data, off, batch.length[i], batch.port[i], batch.nextHop[i]);
      return;
    }
    const result = this.fragmenter.send(batch.data, off, batch.egress[i], tables.neighbors.ether, entry * ETHER_PAIR);
    if (result !== FRAGMENTS_SENT) this.dropped(batch, i, result);
  }

  /** A slow-path node dropped slot i (and counted it): the verdict goes back into the slot. */
  private dropped(batch: FrameBatch, i: number, reason: number): void {
    batch.next[i] = Next.drop;
    batch.nextHop[i] = reason;
  }
}
