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

export class Counters {
  readonly drops = new Float64Array(DROP_NAMES.length);
  readonly punts = new Float64Array(PUNT_NAMES.length);
  readonly icmp = new Float64Array(ICMP_COUNTER_NAMES.length);
  readonly fragmentation = new Float64Array(FRAGMENT_COUNTER_NAMES.length);
  readonly arp = new Float64Array(ARP_COUNTER_NAMES.length);
  readonly ports: Float64Array;
  readonly portCount: number;
  batches = 0;

  constructor(portCount: number) {
    this.portCount = portCount;
    this.ports = new Float64Array(Math.max(1, portCount) * PORT_COUNTERS);
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
