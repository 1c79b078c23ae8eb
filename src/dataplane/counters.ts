// Every way a frame leaves the fast path has a name and a counter (grout's
// drop registry, VPP's error counters). Counters are plain Float64Arrays:
// exact up to 2^53 packets, incremented without allocation, and read by the
// control plane (stats, metrics) whenever it likes.
//
// Each group is one `as const` list of names that makes both the index object
// (`Drop.badChecksum === 4`) and the labels (`DROP_NAMES[4] === 'badChecksum'`),
// as VPP's foreach_*_error macros do: the two can never drift apart. A new
// name goes at the end of its list, so the indices of the others stay put.
//
// What the counters add up to (checked by test/unit/dataplane-fuzz.test.ts):
// every frame a port hands to a batch counts once in its port's rxPackets,
// and once in exactly one of
//   - forwardedPackets of its egress port (a fragmented packet counts once
//     there; its fragments count in txPackets and in `fragmentation`),
//   - drops, by reason (an ICMP error sent about it is counted in `icmp` besides),
//   - punts, by kind (ARP frames included, unless refused: arpOwnAddress, arpMartianSender),
//   - or it is still waiting in a neighbour's hold queue (NeighborResolver.heldFrames).
// So: Σ rxPackets = Σ forwardedPackets + Σ drops + Σ punts + held, except for
// frameTooLong, which the port counts without handing the frame to a batch.

import { allocate, type Memory } from './memory.js';

/** `{ name: index }` for a list of names, with each index's literal type. */
export type IndexOf<Names extends readonly string[]> = {
  readonly [K in keyof Names & `${number}` as Names[K]]: K extends `${infer N extends number}` ? N : never;
};

export function indexOf<const Names extends readonly string[]>(names: Names): IndexOf<Names> {
  return Object.freeze(Object.fromEntries(names.map((name, i) => [name, i]))) as IndexOf<Names>;
}

/** Why a frame was not forwarded. */
export const DROP_NAMES = [
  'truncated',
  'badVersion',
  'badHeaderLength',
  'badTotalLength',
  'badChecksum',
  'martianSource',
  'martianDestination',
  'linkBroadcast',
  'directedBroadcast',
  'ttlExceeded',
  'noRoute',
  'unreachableRoute',
  'blackholeRoute',
  'neighborUnreachable',
  'holdQueueFull',
  'mtuExceeded',
  'frameTooLong',
  'txFailed',
  /** Too big for the egress without DF, and a fragment whose pieces' offsets would pass 65,528 bytes. */
  'badFragmentOffset',
  /** An ARP frame whose sender claims one of the router's own addresses (spoofed, or a looped-back copy). */
  'arpOwnAddress',
  /** An ARP frame whose sender is no possible neighbour: a subnet's network or broadcast address, loopback, multicast, class E. */
  'arpMartianSender',
  /** A new neighbour for a connected destination, with every entry of the table still asking (or pinned). */
  'neighborTableFull',
  /** A new neighbour for a connected destination while its port's ARP request bucket is empty: not asked, not held. */
  'arpRateLimited',
] as const;
export const Drop = indexOf(DROP_NAMES);
export type Drop = (typeof Drop)[keyof typeof Drop];

/** Frames vipr saw but leaves to the kernel, by kind. Not drops: the kernel has its own copy. */
export const PUNT_NAMES = ['notIpv4', 'otherHost', 'local', 'arp'] as const;
export const Punt = indexOf(PUNT_NAMES);
export type Punt = (typeof Punt)[keyof typeof Punt];

/** Per-port counters, one row of PORT_COUNTER_NAMES.length per port. */
export const PORT_COUNTER_NAMES = ['rxPackets', 'rxBytes', 'txPackets', 'txBytes', 'forwardedPackets'] as const;
export const PortCounter = indexOf(PORT_COUNTER_NAMES);
export type PortCounter = (typeof PortCounter)[keyof typeof PortCounter];
export const PORT_COUNTERS = PORT_COUNTER_NAMES.length;

/** ICMP errors sent, by type, and those the rate limits held back. */
export const ICMP_COUNTER_NAMES = [
  'timeExceeded',
  'netUnreachable',
  'hostUnreachable',
  'fragmentationNeeded',
  /** Held back by the global bucket (icmp.ratePerSecond, icmp.burst). */
  'rateLimited',
  /** Held back by the bucket of the host the error would go to (icmp.perDestination). */
  'rateLimitedPerDestination',
] as const;
export const IcmpCounter = indexOf(ICMP_COUNTER_NAMES);
export type IcmpCounter = (typeof IcmpCounter)[keyof typeof IcmpCounter];
/** The ICMP counters that are errors sent (the others are rate-limit counts). */
export const ICMP_SENT_NAMES = ICMP_COUNTER_NAMES.filter((name) => !name.startsWith('rateLimited'));

/** Packets too big for their egress MTU (without DF) sent as fragments. */
export const FRAGMENT_COUNTER_NAMES = ['packetsFragmented', 'fragmentsCreated'] as const;
export const FragmentCounter = indexOf(FRAGMENT_COUNTER_NAMES);
export type FragmentCounter = (typeof FragmentCounter)[keyof typeof FragmentCounter];

/** ARP requests the neighbour resolver sent, and those its per-port bucket held back (neighbors.requestsPerSecond). */
export const ARP_COUNTER_NAMES = ['requestsSent', 'requestsRateLimited'] as const;
export const ArpCounter = indexOf(ARP_COUNTER_NAMES);
export type ArpCounter = (typeof ArpCounter)[keyof typeof ArpCounter];

/** The counters' buffers, to attach a worker's view or read a worker's counts. */
export interface CountersBuffers {
  portCount: number;
  buffer: ArrayBufferLike;
}

/** Next-hop slots a Counters counts (the next-hop table's capacity: 15-bit FIB leaves). */
const NEXT_HOP_SLOTS = 0x8000;

/**
 * One thread's counters: the data plane's (each worker has its own, so no
 * two threads ever write one counter) or the control plane's own (drops the
 * resolver decides, ARP requests). Every array is a view of one buffer, shared
 * when the counts are written on a worker and read on the main thread.
 */
export class Counters {
  readonly drops: Float64Array;
  readonly punts: Float64Array;
  readonly icmp: Float64Array;
  readonly fragmentation: Float64Array;
  readonly arp: Float64Array;
  readonly ports: Float64Array;
  /** Frames ip4-rewrite made ready per next-hop slot, and their bytes (read through NextHopTable.packetsOf). */
  readonly nextHopPackets: Float64Array;
  readonly nextHopBytes: Float64Array;
  /** Batches processed (one slot of its own, so it can be shared too). */
  private readonly misc: Float64Array;
  readonly portCount: number;
  readonly buffer: ArrayBufferLike;

  constructor(portCount: number, memory: Memory = 'local', buffer?: ArrayBufferLike) {
    this.portCount = portCount;
    const sizes = [
      DROP_NAMES.length, PUNT_NAMES.length, ICMP_COUNTER_NAMES.length, FRAGMENT_COUNTER_NAMES.length, ARP_COUNTER_NAMES.length,
      Math.max(1, portCount) * PORT_COUNTERS, NEXT_HOP_SLOTS, NEXT_HOP_SLOTS, 1,
    ];
    const total = sizes.reduce((a, b) => a + b, 0);
    this.buffer = buffer ?? allocate(Float64Array, total, memory).buffer;
    const views: Float64Array[] = [];
    let at = 0;
    for (const size of sizes) {
      views.push(new Float64Array(this.buffer, at * 8, size));
      at += size;
    }
    [this.drops, this.punts, this.icmp, this.fragmentation, this.arp, this.ports, this.nextHopPackets, this.nextHopBytes, this.misc] = views;
  }

  /** A view of counters another thread writes (or will write), over their buffer. */
  static attach(buffers: CountersBuffers): Counters {
    return new Counters(buffers.portCount, 'shared', buffers.buffer);
  }

  buffers(): CountersBuffers {
    return { portCount: this.portCount, buffer: this.buffer };
  }

  get batches(): number {
    return this.misc[0];
  }

  set batches(value: number) {
    this.misc[0] = value;
  }

  /** Sets this to the sum of `parts` (the totals of several threads' counters; control plane). */
  sumOf(parts: readonly Counters[]): this {
    const all = new Float64Array(this.buffer);
    all.fill(0);
    for (const part of parts) {
      const values = new Float64Array(part.buffer, 0, all.length);
      for (let i = 0; i < all.length; i++) all[i] += values[i];
    }
    return this;
  }

  port(portIndex: number, counter: PortCounter): number {
    return this.ports[portIndex * PORT_COUNTERS + counter];
  }

  /** A plain-object snapshot for the control plane (allocates; never called per packet). */
  snapshot(portNames: readonly string[]): CountersSnapshot {
    const named = (names: readonly string[], values: Float64Array) => {
      const out: Record<string, number> = {};
      names.forEach((name, i) => (out[name] = values[i]));
      return out;
    };
    const ports: Record<string, Record<string, number>> = {};
    portNames.forEach((name, p) => {
      ports[name] = named(PORT_COUNTER_NAMES, this.ports.subarray(p * PORT_COUNTERS, (p + 1) * PORT_COUNTERS));
    });
    return {
      batches: this.batches,
      drops: named(DROP_NAMES, this.drops),
      punts: named(PUNT_NAMES, this.punts),
      icmp: named(ICMP_COUNTER_NAMES, this.icmp),
      fragmentation: named(FRAGMENT_COUNTER_NAMES, this.fragmentation),
      arp: named(ARP_COUNTER_NAMES, this.arp),
      ports,
    };
  }
}

export interface CountersSnapshot {
  batches: number;
  drops: Record<string, number>;
  punts: Record<string, number>;
  icmp: Record<string, number>;
  fragmentation: Record<string, number>;
  arp: Record<string, number>;
  ports: Record<string, Record<string, number>>;
}
