// The data plane's one doorway. A received batch runs through the stages
// (eth-input, arp-input, ip4-input, ip4-lookup, ip4-rewrite), the forwarded
// frames leave in one burst per egress port, and the rare frames go to the
// slow path at the end of the batch: ICMP errors and fragments are made here;
// ARP frames to learn from and frames whose next hop is unresolved are handed
// to the control plane through the SlowPath it provides (the only call out of
// this folder, and only with a copy's worth of arguments).
//
// The control plane writes the tables (FIB, next hops, neighbours, ports) and
// reads the counters; it hands frames back through inject(): a held frame whose
// neighbour answered re-enters the stages at ip4-lookup (so it is rewritten,
// MTU-checked, counted and sent like any other), a held frame nobody answered
// is answered with ICMP host unreachable, and the ARP requests it builds are
// sent as they are. There is no second forwarding path.
//
// Each slot carries its verdict (batch.next, batch.reason, batch.nextHop): a
// slow-path node that drops a frame writes it back, and the tracer reads it.
// The FIB is read once per batch, so a table swapped in between two batches
// takes effect whole: no frame sees half a change.

import type { FibView, LpmTable } from './fib/lpm.js';
import type { Memory } from './memory.js';
import type { NextHopTable } from './fib/nexthop.js';
import { ETHER_PAIR, type NeighborTable } from './neighbor-table.js';
import { arpInput } from './arp-input.js';
import { FrameBatch, SLOT_SIZE } from './batch.js';
import { Drop, PORT_COUNTERS, PortCounter, type Counters } from './counters.js';
import { ethInput } from './eth-input.js';
import type { IcmpErrorSender } from './icmp-error.js';
import { ip4Input } from './ip4-input.js';
import { ip4Lookup } from './ip4-lookup.js';
import { FRAGMENTS_SENT, type Ip4Fragmenter } from './ip4-fragment.js';
import { ip4Rewrite, neighborFor } from './ip4-rewrite.js';
import { icmpErrorFor, IcmpError, Next } from './next.js';
import type { PortTable, TxPort } from './ports.js';
import type { PacketTracer } from './trace.js';

/** What the data plane hands to the control plane (the neighbour resolver): called at the end of a batch. */
export interface SlowPath {
  /** An ARP frame arp-input let through: learn from it. Valid only during the call. */
  arp(frame: Uint8Array, offset: number, length: number, port: number): void;
  /** A frame whose next hop is not resolved yet: copy it, and inject() it back when the neighbour answers (or fails). */
  hold(frame: Uint8Array, offset: number, length: number, ingressPort: number, nextHop: number): void;
}

/** Before the control plane connects its slow path (no batch runs before it does). */
export const NO_SLOW_PATH: SlowPath = { arp: () => undefined, hold: () => undefined };

/** Where an injected frame enters the stages. */
export type InjectAt = Next.ip4Lookup | Next.icmpError | Next.send;

/** What the control plane hands back to the data plane. */
export interface FrameInjector {
  /**
   * Copies a frame in, to enter the stages at `at`: ip4Lookup (a held IPv4
   * frame whose next hop answered: looked up, rewritten and sent like any
   * other), icmpError (answer it with the ICMP error that `arg`, a Drop reason
   * already counted, calls for), or send (a frame the control plane built,
   * sent as it is on port `arg`). Returns false when the queue is full
   * (counted as holdQueueFull).
   */
  inject(frame: Uint8Array, offset: number, length: number, ingressPort: number, at: InjectAt, arg: number): boolean;
}

export interface DataplaneTables {
  /** The FIB a batch reads: an LpmTable on one thread; on a worker, the copy of the shared table that is current. */
  fib: FibView;
  readonly nextHops: NextHopTable;
  readonly neighbors: NeighborTable;
}

/** The tables as the control plane holds them: the FIB is the whole table it edits. */
export interface ControlTables extends DataplaneTables {
  fib: LpmTable;
  /** Where a new FIB's lookup arrays live: 'shared' when data-plane threads read them. */
  readonly fibMemory?: Memory;
  /**
   * Makes the FIB's changes visible to data-plane threads (and, when
   * `replaced`, the new table): called by the RIB after each change, before
   * it frees anything the old table still names. Absent on one thread, where
   * the next batch simply reads the table.
   */
  publishFib?(replaced: boolean): void;
}

/**
 * Frames the control plane may hand back before they are processed: a hold
 * queue's worth of flushes (64 per neighbour) for several neighbours at once.
 */
const INJECT_QUEUE_FRAMES = 512;

export class Dataplane implements FrameInjector {
  /** Reused per batch: slots to send on one port. */
  private readonly txSlots: Uint16Array;
  /**
   * Set by the control plane while `vipr ctl trace` runs, null otherwise
   * (src/dataplane/trace.ts). Read once per batch: off, it costs one compare.
   */
  tracer: PacketTracer | null = null;
  /** Injected frames waiting, in order (a ring over its own slots), and the batch they are processed in. */
  private readonly queue = new FrameBatch(INJECT_QUEUE_FRAMES);
  private readonly queueAt = new Uint8Array(INJECT_QUEUE_FRAMES);
  private readonly queueArg = new Uint16Array(INJECT_QUEUE_FRAMES);
  private queueHead = 0;
  private queued = 0;
  private readonly work: FrameBatch;
  /** Which slots of `work` re-entered at ip4-lookup: one that needs holding again is not handed back a second time. */
  private readonly reentered: Uint8Array;
  /** Inside process() or the injected frames' processing: injections wait for the end. */
  private busy = false;

  constructor(
    readonly tables: DataplaneTables,
    readonly ports: PortTable,
    readonly txPorts: readonly TxPort[],
    readonly counters: Counters,
    readonly icmp: IcmpErrorSender,
    private slowPath: SlowPath,
    readonly fragmenter: Ip4Fragmenter,
    batchCapacity: number,
  ) {
    this.txSlots = new Uint16Array(Math.max(batchCapacity, INJECT_QUEUE_FRAMES));
    this.work = new FrameBatch(Math.min(batchCapacity, INJECT_QUEUE_FRAMES));
    this.reentered = new Uint8Array(this.work.capacity);
  }

  /** The control plane's side of the slow path, once it exists (it needs the data plane's tables first). */
  connect(slowPath: SlowPath): void {
    this.slowPath = slowPath;
  }

  /** Processes and consumes `batch` (its count is reset to 0). */
  process(batch: FrameBatch): void {
    const n = batch.count;
    if (n === 0) return;
    const counters = this.counters;
    const tables = this.tables;
    const fib = tables.fib; // one snapshot for the whole batch
    counters.batches++;
    this.busy = true;
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
    arpInput(batch, this.ports, counters);
    ip4Input(batch, counters);
    ip4Lookup(batch, fib, tables.nextHops, counters);
    ip4Rewrite(batch, tables.nextHops, tables.neighbors, this.ports, counters);
    this.transmit(batch);
    this.slowPaths(batch, null);
    if (tracer !== null) tracer.afterStages(batch);
    batch.count = 0;
    this.busy = false;
    if (this.queued > 0) this.drainInjected();
  }

  inject(frame: Uint8Array, offset: number, length: number, ingressPort: number, at: InjectAt, arg: number): boolean {
    if (this.queued === INJECT_QUEUE_FRAMES || length > SLOT_SIZE) {
      this.counters.drops[Drop.holdQueueFull]++;
      return false;
    }
    const k = (this.queueHead + this.queued++) % INJECT_QUEUE_FRAMES;
    this.queue.data.set(frame.subarray(offset, offset + length), k * SLOT_SIZE);
    this.queue.length[k] = length;
    this.queue.port[k] = ingressPort;
    this.queueAt[k] = at;
    this.queueArg[k] = arg;
    if (!this.busy) this.drainInjected();
    return true;
  }

  /** Runs the injected frames through the stages from where each enters, a batch at a time, until none wait. */
  private drainInjected(): void {
    const work = this.work;
    const queue = this.queue;
    this.busy = true;
    while (this.queued > 0) {
      const n = Math.min(this.queued, work.capacity);
      for (let i = 0; i < n; i++) {
        const k = this.queueHead;
        this.queueHead = (k + 1) % INJECT_QUEUE_FRAMES;
        this.queued--;
        queue.data.copy(work.data, i * SLOT_SIZE, k * SLOT_SIZE, k * SLOT_SIZE + queue.length[k]);
        work.length[i] = queue.length[k];
        work.port[i] = queue.port[k];
        const at = this.queueAt[k] as Next;
        work.next[i] = at;
        this.reentered[i] = at === Next.ip4Lookup ? 1 : 0;
        if (at === Next.icmpError) work.reason[i] = this.queueArg[k];
        else if (at === Next.send) work.egress[i] = this.queueArg[k];
      }
      work.count = n;
      const tables = this.tables;
      ip4Lookup(work, tables.fib, tables.nextHops, this.counters);
      ip4Rewrite(work, tables.nextHops, tables.neighbors, this.ports, this.counters);
      this.transmit(work);
      this.slowPaths(work, this.reentered);
      work.count = 0;
    }
    this.busy = false;
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

  /** Rare work, out of the stage loops: ARP, ICMP errors, hold queue, fragmentation, frames the control plane built. */
  private slowPaths(batch: FrameBatch, reentered: Uint8Array | null): void {
    const n = batch.count;
    const next = batch.next;
    for (let i = 0; i < n; i++) {
      const exit = next[i];
      if (exit < Next.arp) continue;
      const off = i * SLOT_SIZE;
      if (exit === Next.arp) {
        this.slowPath.arp(batch.data, off, batch.length[i], batch.port[i]);
      } else if (exit === Next.fragment) {
        this.fragment(batch, i, reentered);
      } else if (exit === Next.icmpError) {
        const kind = icmpErrorFor(batch.reason[i]) as IcmpError;
        // Fragmentation needed carries the egress MTU in the low half of its second word (RFC 1191).
        const rest = kind === IcmpError.fragmentationNeeded ? this.ports.mtu[batch.egress[i]] : 0;
        if (kind >= 0) this.icmp.send(batch.data, off, batch.length[i], batch.port[i], kind, rest);
      } else if (exit === Next.hold) {
        this.hold(batch, i, reentered);
      } else if (exit === Next.send) {
        this.txPorts[batch.egress[i]].sendFrame(batch.slots[i], batch.length[i]);
      }
    }
  }

  private hold(batch: FrameBatch, i: number, reentered: Uint8Array | null): void {
    if (reentered !== null && reentered[i] === 1) {
      // Handed back as resolved, yet its next hop is not (the route moved to another one meanwhile, or the
      // entry went away): it does not go round again.
      this.counters.drops[Drop.neighborUnreachable]++;
      batch.next[i] = Next.drop;
      batch.reason[i] = Drop.neighborUnreachable;
      return;
    }
    this.slowPath.hold(batch.data, i * SLOT_SIZE, batch.length[i], batch.port[i], batch.nextHop[i]);
  }

  private fragment(batch: FrameBatch, i: number, reentered: Uint8Array | null): void {
    const off = i * SLOT_SIZE;
    const tables = this.tables;
    // An ARP frame earlier in this batch may have made the resolver evict the entry: then the frame waits like any other.
    const entry = neighborFor(tables.nextHops, tables.neighbors, batch.nextHop[i], batch.data, off);
    if (entry < 0) {
      batch.next[i] = Next.hold;
      this.hold(batch, i, reentered);
      return;
    }
    const result = this.fragmenter.send(batch.data, off, batch.egress[i], tables.neighbors.ether, entry * ETHER_PAIR);
    if (result !== FRAGMENTS_SENT) {
      batch.next[i] = Next.drop;
      batch.reason[i] = result;
    }
  }
}
