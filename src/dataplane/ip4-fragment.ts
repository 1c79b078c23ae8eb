// ip4-fragment: the slow-path node that sends a packet too big for its
// egress MTU, DF clear, as fragments (RFC 1812 4.2.2.7, 5.2.6).
//
// Uses:  the frame as ip4-input left it (ip4-rewrite does not touch it: the
//        Ethernet header, TTL and checksum are written per fragment here);
//        the egress port's MTU, read at each packet (MTUs change at runtime);
//        the neighbour's ready-made Ethernet header
// Sets:  a preallocated scratch frame per fragment (src/packet/fragment.ts
//        cuts the IP packet: offsets, MF, copied options, TTL - 1, checksum)
// Next:  sent on the egress port (sendFrame), one fragment after the other;
//        the packet counts once in forwardedPackets, its fragments in
//        txPackets/txBytes and `fragmentation`. Or dropped: badFragmentOffset
//        (the pieces' offsets would pass 65,528), mtuExceeded (an MTU under
//        68 leaves no room), txFailed (a fragment was refused: the packet is lost).
//
// One instance serves both the batch's fragment exit and the neighbour
// resolver's held frames, so there is one fragmenter and one set of counters.
// Fragments leave after the batch's burst: a big packet can be overtaken by a
// small one of the same batch, as behind VPP's ip4-frag node.

import { ETHER_HEADER_LENGTH, ETHERTYPE_IPV4, IP, IP_TTL } from '../packet/layout.js';
import { FragmentPlanError, Ipv4Fragments } from '../packet/fragment.js';
import { SLOT_SIZE } from './batch.js';
import { Drop, FragmentCounter, PORT_COUNTERS, PortCounter, type Counters } from './counters.js';
import type { PortTable, TxPort } from './ports.js';

/** Returned by send() when every fragment left. */
export const FRAGMENTS_SENT = -1;

export class Ip4Fragmenter {
  /** Fragments are never longer than the packet they come from, which fits a slot. */
  private readonly scratch = Buffer.alloc(SLOT_SIZE);
  private readonly fragments = new Ipv4Fragments();

  constructor(
    private readonly ports: PortTable,
    private readonly txPorts: readonly TxPort[],
    private readonly counters: Counters,
  ) {}

  /**
   * Sends the IPv4 frame at `frame[offset..]` on `port` in fragments that fit
   * its MTU, each behind the Ethernet header at `ether[etherAt..etherAt+12)`
   * (destination and source MAC). Returns FRAGMENTS_SENT, or the Drop reason
   * it counted.
   */
  send(frame: Uint8Array, offset: number, port: number, ether: Uint8Array, etherAt: number): number {
    const counters = this.counters;
    const count = this.fragments.plan(frame, offset + IP, this.ports.mtu[port]);
    if (count < 0) {
      const reason = count === FragmentPlanError.offsetOverflow ? Drop.badFragmentOffset : Drop.mtuExceeded;
      counters.drops[reason]++;
      return reason;
    }
    const out = this.scratch;
    for (let b = 0; b < 12; b++) out[b] = ether[etherAt + b];
    out[12] = ETHERTYPE_IPV4 >> 8;
    out[13] = ETHERTYPE_IPV4 & 0xff;
    const ttl = frame[offset + IP_TTL] - 1;
    const tx = this.txPorts[port];
    let sent = 0;
    let bytes = 0;
    for (let k = 0; k < count; k++) {
      const length = ETHER_HEADER_LENGTH + this.fragments.write(k, out, ETHER_HEADER_LENGTH, ttl);
      if (!tx.sendFrame(out, length)) continue;
      sent++;
      bytes += length;
    }
    const row = port * PORT_COUNTERS;
    counters.ports[row + PortCounter.txPackets] += sent;
    counters.ports[row + PortCounter.txBytes] += bytes;
    counters.fragmentation[FragmentCounter.packetsFragmented]++;
    counters.fragmentation[FragmentCounter.fragmentsCreated] += count;
    if (sent < count) {
      counters.drops[Drop.txFailed]++;
      return Drop.txFailed;
    }
    counters.ports[row + PortCounter.forwardedPackets]++;
    return FRAGMENTS_SENT;
  }
}
