// Exits a stage writes per slot into FrameBatch.next; the dispatcher
// (dataplane.ts) moves each slot to the stage its exit names. The exit, with
// batch.reason and batch.nextHop, is the slot's verdict: the tracer reads it,
// nothing is looked up twice.
import { Drop, DROP_NAMES } from './counters.js';

export const enum Next {
  ethInput = 0,
  /** An ARP frame: arp-input checks its sender. */
  arpInput,
  ip4Input,
  ip4Lookup,
  ip4Rewrite,
  /** Send on batch.egress[i]: a forwarded frame (counted in forwardedPackets). */
  tx,
  /** Dropped; batch.reason[i] holds the Drop reason (already counted). */
  drop,
  /** Left to the kernel, which has its own copy (the ports are taps); batch.reason[i] = Punt kind. */
  punt,
  /** ARP frame the neighbour resolver learns from (slow path); batch.reason[i] = Punt.arp. */
  arp,
  /** Dropped with an ICMP error to the sender (slow path); batch.reason[i] = Drop reason, which names the error. */
  icmpError,
  /** Next hop not resolved yet: the neighbour resolver parks it (slow path); batch.nextHop[i] = next-hop index. */
  hold,
  /**
   * Larger than the egress MTU, DF clear: ip4-fragment sends it in pieces
   * (slow path); batch.nextHop[i] = next-hop index, batch.egress[i] = port.
   */
  fragment,
  /** A frame the control plane built (an ARP request): sent as it is on batch.egress[i], not counted as forwarded. */
  send,
}

/** Which ICMP error answers a frame. */
export const enum IcmpError {
  timeExceeded = 0,
  netUnreachable,
  hostUnreachable,
  fragmentationNeeded,
}

/** The ICMP error each drop reason of an icmpError exit calls for (-1: none). */
const ICMP_FOR_DROP = new Int8Array(DROP_NAMES.length).fill(-1);
ICMP_FOR_DROP[Drop.ttlExceeded] = IcmpError.timeExceeded;
ICMP_FOR_DROP[Drop.noRoute] = IcmpError.netUnreachable;
ICMP_FOR_DROP[Drop.unreachableRoute] = IcmpError.netUnreachable;
ICMP_FOR_DROP[Drop.neighborUnreachable] = IcmpError.hostUnreachable;
ICMP_FOR_DROP[Drop.mtuExceeded] = IcmpError.fragmentationNeeded;

/** The ICMP error for a slot whose exit is icmpError, from its drop reason (-1 if none). */
export function icmpErrorFor(reason: number): number {
  return ICMP_FOR_DROP[reason];
}
