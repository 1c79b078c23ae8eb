// Exits a stage writes per slot into FrameBatch.next; the dispatcher in
// router.ts moves each slot to the stage its exit names.
export const enum Next {
  ethInput = 0,
  ip4Input,
  ip4Lookup,
  ip4Rewrite,
  /** Send on batch.egress[i]. */
  tx,
  /** Dropped; batch.nextHop[i] holds the Drop reason (already counted). */
  drop,
  /** Left to the kernel, which has its own copy (AF_PACKET and pcap are taps). */
  punt,
  /** ARP frame: the neighbour resolver learns from it (slow path). */
  arp,
  /** Send an ICMP error about this frame; batch.nextHop[i] holds the IcmpError kind. */
  icmpError,
  /** Next hop not resolved yet: park in the neighbour's hold queue (slow path). */
  hold,
  /**
   * Larger than the egress MTU, DF clear: ip4-fragment sends it in pieces
   * (slow path); batch.nextHop[i] = next-hop index, batch.egress[i] = port.
   */
  fragment,
}

/** Which ICMP error to send, in batch.nextHop[i] of slots whose exit is Next.icmpError. */
export const enum IcmpError {
  timeExceeded = 0,
  netUnreachable,
  hostUnreachable,
  fragmentationNeeded,
}
