// The next-hop table: what a FIB leaf points at. Routes name a next-hop index;
// the data plane reads the kind, egress port and neighbour from typed arrays.
// Moving every route of a server is one write to its next-hop slot (Linux
// nexthop objects, DPDK l3fwd's dest_eth_addr), never a FIB rebuild.
//
// This file is shared by both planes: the control plane writes it, the data
// plane only reads it (its per-next-hop counts live in each thread's Counters).

import type { Counters } from '../counters.js';
import { allocate, type Memory } from '../memory.js';
import { MAX_NEXT_HOP } from './lpm.js';

export const enum NextHopKind {
  free = 0,
  /** Forward to a gateway: `neighbor` is the neighbour entry holding its MAC. */
  gateway,
  /** The destination is on a connected subnet of `port`: resolve the destination itself. */
  connected,
  /** One of the router's own addresses: leave the frame to the kernel. */
  local,
  /** Route of type unreachable: ICMP net unreachable. */
  unreachable,
  /** Route of type blackhole: drop silently. */
  blackhole,
  /** Network or broadcast address of a connected subnet: never forwarded (RFC 1812 5.3.5.2, default off). */
  broadcast,
}

/**
 * Fixed indices for the kinds that need no per-route state, so the control
 * plane never allocates them and a FIB leaf of 1..4 is recognisable in dumps.
 */
export const NH_LOCAL = 1;
export const NH_UNREACHABLE = 2;
export const NH_BLACKHOLE = 3;
export const NH_BROADCAST = 4;
export const NH_FIRST_DYNAMIC = 5;

/** The next-hop table's shared buffers, to attach a worker's view. */
export interface NextHopTableBuffers {
  kind: ArrayBufferLike;
  port: ArrayBufferLike;
  neighbor: ArrayBufferLike;
}

export class NextHopTable {
  readonly capacity = MAX_NEXT_HOP + 1;
  readonly kind: Uint8Array;
  /**
   * Egress port of connected next hops. A gateway's egress is its neighbour
   * entry's port (ip4-rewrite reads it there), so moving a route group to
   * another server is one write to `neighbor`, which a worker reading the slot
   * at the same moment sees whole.
   */
  readonly port: Uint8Array;
  /** Neighbour entry index for gateway next hops. */
  readonly neighbor: Int32Array;
  /** Gateway address (uint32) for gateway next hops, for the control plane. */
  readonly gateway = new Uint32Array(this.capacity);
  /** How many routes point at each next hop; the control plane frees it at zero. */
  readonly refs = new Uint32Array(this.capacity);
  /**
   * Where ip4-rewrite counts the frames and bytes of each next hop: one
   * Counters per data-plane thread (Counters.nextHopPackets/.nextHopBytes),
   * set by the router. A slot's traffic is their sum since the slot was last
   * allocated (the base below), so a reused slot starts over without any
   * thread writing another's counters.
   */
  sources: readonly Counters[] = [];
  private readonly packetBase = new Float64Array(this.capacity);
  private readonly byteBase = new Float64Array(this.capacity);
  private readonly freeList: number[] = [];
  private highWater = NH_FIRST_DYNAMIC;

  constructor(memory: Memory = 'local', buffers?: NextHopTableBuffers) {
    this.kind = buffers ? new Uint8Array(buffers.kind) : allocate(Uint8Array, this.capacity, memory);
    this.port = buffers ? new Uint8Array(buffers.port) : allocate(Uint8Array, this.capacity, memory);
    this.neighbor = buffers ? new Int32Array(buffers.neighbor) : allocate(Int32Array, this.capacity, memory).fill(-1);
    if (buffers) return;
    this.kind[NH_LOCAL] = NextHopKind.local;
    this.kind[NH_UNREACHABLE] = NextHopKind.unreachable;
    this.kind[NH_BLACKHOLE] = NextHopKind.blackhole;
    this.kind[NH_BROADCAST] = NextHopKind.broadcast;
  }

  /** A worker's view: the fields the data plane reads, over the main thread's memory. */
  static attach(buffers: NextHopTableBuffers): NextHopTable {
    return new NextHopTable('shared', buffers);
  }

  buffers(): NextHopTableBuffers {
    return { kind: this.kind.buffer, port: this.port.buffer, neighbor: this.neighbor.buffer };
  }

  allocate(kind: NextHopKind, port: number, gateway = 0, neighbor = -1): number {
    const index = this.freeList.pop() ?? this.highWater++;
    if (index > MAX_NEXT_HOP) throw new RangeError(`next-hop table full (${MAX_NEXT_HOP} entries)`);
    this.port[index] = port;
    this.gateway[index] = gateway >>> 0;
    this.neighbor[index] = neighbor;
    this.refs[index] = 0;
    this.packetBase[index] = this.total(index, 'packets');
    this.byteBase[index] = this.total(index, 'bytes');
    Atomics.store(this.kind, index, kind); // last: a reader that sees the kind sees the rest
    return index;
  }

  release(index: number): void {
    if (index < NH_FIRST_DYNAMIC || this.kind[index] === NextHopKind.free) return;
    Atomics.store(this.kind, index, NextHopKind.free);
    this.neighbor[index] = -1;
    this.freeList.push(index);
  }

  /** Frames forwarded through the slot since it was allocated (control plane). */
  packetsOf(index: number): number {
    return this.total(index, 'packets') - this.packetBase[index];
  }

  /** Bytes of those frames. */
  bytesOf(index: number): number {
    return this.total(index, 'bytes') - this.byteBase[index];
  }

  private total(index: number, what: 'packets' | 'bytes'): number {
    let sum = 0;
    for (const counters of this.sources) sum += what === 'packets' ? counters.nextHopPackets[index] : counters.nextHopBytes[index];
    return sum;
  }

  get used(): number {
    return this.highWater - NH_FIRST_DYNAMIC - this.freeList.length;
  }
}
