// Every way a frame leaves the fast path has a name and a counter (grout's
// drop registry, VPP's error counters). Counters are plain Float64Arrays:
// exact up to 2^53 packets, incremented without allocation, and read by the
// control plane (stats, metrics) whenever it likes.

/** Why a frame was not forwarded. Index into `Counters.drops`. */
export const enum Drop {
  truncated = 0,
  badVersion,
  badHeaderLength,
  badTotalLength,
  badChecksum,
  martianSource,
  martianDestination,
  linkBroadcast,
  directedBroadcast,
  ttlExceeded,
  noRoute,
  unreachableRoute,
  blackholeRoute,
  neighborUnreachable,
  holdQueueFull,
  mtuExceeded,
  frameTooLong,
  txFailed,
  COUNT,
}

export const DROP_NAMES: readonly string[] = [
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
];

/** Frames vipr saw but leaves to the kernel, by kind. Not drops: the kernel has its own copy. */
export const enum Punt {
  notIpv4 = 0,
  otherHost,
  local,
  arp,
  COUNT,
}

export const PUNT_NAMES: readonly string[] = ['notIpv4', 'otherHost', 'local', 'arp'];

/** Per-port counters, one row of PORT_COUNTERS per port. */
export const enum PortCounter {
  rxPackets = 0,
  rxBytes,
  txPackets,
  txBytes,
  forwardedPackets,
  COUNT,
}

export const PORT_COUNTER_NAMES: readonly string[] = ['rxPackets', 'rxBytes', 'txPackets', 'txBytes', 'forwardedPackets'];

export const enum IcmpCounter {
  timeExceeded = 0,
  netUnreachable,
  hostUnreachable,
  fragmentationNeeded,
  rateLimited,
  COUNT,
}

export const ICMP_COUNTER_NAMES: readonly string[] = [
  'timeExceeded',
  'netUnreachable',
  'hostUnreachable',
  'fragmentationNeeded',
  'rateLimited',
];

export class Counters {
  readonly drops = new Float64Array(Drop.COUNT);
  readonly punts = new Float64Array(Punt.COUNT);
  readonly icmp = new Float64Array(IcmpCounter.COUNT);
  readonly ports: Float64Array;
  readonly portCount: number;
  batches = 0;

  constructor(portCount: number) {
    this.portCount = portCount;
    this.ports = new Float64Array(Math.max(1, portCount) * PortCounter.COUNT);
  }

  port(portIndex: number, counter: PortCounter): number {
    return this.ports[portIndex * PortCounter.COUNT + counter];
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
      ports[name] = named(PORT_COUNTER_NAMES, this.ports.subarray(p * PortCounter.COUNT, (p + 1) * PortCounter.COUNT));
    });
    return {
      batches: this.batches,
      drops: named(DROP_NAMES, this.drops),
      punts: named(PUNT_NAMES, this.punts),
      icmp: named(ICMP_COUNTER_NAMES, this.icmp),
      ports,
    };
  }
}

export interface CountersSnapshot {
  batches: number;
  drops: Record<string, number>;
  punts: Record<string, number>;
  icmp: Record<string, number>;
  ports: Record<string, Record<string, number>>;
}
