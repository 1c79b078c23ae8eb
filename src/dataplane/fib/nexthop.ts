// The next-hop table: what a FIB leaf points at. Routes name a next-hop index;
// the data plane reads the kind, egress port and neighbour from typed arrays.
// Moving every route of a server is one write to its next-hop slot (Linux
// nexthop objects, DPDK l3fwd's dest_eth_addr), never a FIB rebuild.
//
// This file is shared by both planes: the control plane writes it, the data
// plane only reads it (and bumps its packet counters).

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

export class NextHopTable {
  readonly capacity = MAX_NEXT_HOP + 1;
  readonly kind = new Uint8Array(this.capacity);
  readonly port = new Uint8Array(this.capacity);
  /** Neighbour entry index for gateway next hops. */
  readonly neighbor = new Int32Array(this.capacity).fill(-1);
  /** Gateway address (uint32) for gateway next hops, for the control plane. */
  readonly gateway = new Uint32Array(this.capacity);
  /** How many routes point at each next hop; the control plane frees it at zero. */
  readonly refs = new Uint32Array(this.capacity);
  /**
   * Frames ip4-rewrite made ready for each next hop (one increment per frame,
   * the only field the data plane writes): per-route traffic for metrics and
   * `status`. Routes with the same next-hop list share a slot, so they share
   * the count. Zeroed when a slot is allocated, so a reused slot starts over.
   */
  readonly packets = new Float64Array(this.capacity);
  /** Bytes of those frames (whole Ethernet frames, as the port counters), zeroed with `packets`. */
  readonly bytes = new Float64Array(this.capacity);
  private readonly freeList: number[] = [];
  private highWater = NH_FIRST_DYNAMIC;

  constructor() {
    this.kind[NH_LOCAL] = NextHopKind.local;
    this.kind[NH_UNREACHABLE] = NextHopKind.unreachable;
    this.kind[NH_BLACKHOLE] = NextHopKind.blackhole;
    this.kind[NH_BROADCAST] = NextHopKind.broadcast;
  }

  allocate(kind: NextHopKind, port: number, gateway = 0, neighbor = -1): number {
    const index = this.freeList.pop() ?? this.highWater++;
    if (index > MAX_NEXT_HOP) throw new RangeError(`next-hop table full (${MAX_NEXT_HOP} entries)`);
    this.kind[index] = kind;
    this.port[index] = port;
    this.gateway[index] = gateway >>> 0;
    this.neighbor[index] = neighbor;
    this.refs[index] = 0;
    this.packets[index] = 0;
    this.bytes[index] = 0;
    return index;
  }

  release(index: number): void {
    if (index < NH_FIRST_DYNAMIC || this.kind[index] === NextHopKind.free) return;
    this.kind[index] = NextHopKind.free;
    this.neighbor[index] = -1;
    this.freeList.push(index);
  }

  get used(): number {
    return this.highWater - NH_FIRST_DYNAMIC - this.freeList.length;
  }
}
