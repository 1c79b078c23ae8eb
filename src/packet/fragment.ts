// IPv4 fragmentation (RFC 791 3.2 and "Fragmentation and Reassembly"; RFC
// 1812 4.2.2.7, 5.2.6), written into a caller's buffer. Slow path only.
//
//   const count = fragments.plan(frame, IP, mtu);      // how many pieces, or a FragmentPlanError
//   for (let k = 0; k < count; k++) length = fragments.write(k, out, at, ttl);
//
// Every piece but the last carries a multiple of 8 payload bytes. The first
// piece keeps the packet's header as it is (all options); later pieces carry
// only the options whose copy flag (the type's top bit) is set, padded with
// End of Option List to a multiple of 4 bytes. Offsets continue from the
// packet's own offset, so a fragment is fragmented further correctly; every
// piece but the last has MF, the last keeps the packet's MF. Total length,
// TTL and header checksum (computed whole, not patched) are each piece's own.
// The packet must stay unchanged between plan() and the last write().

import { internetChecksum } from './checksum.js';
import { IP_FLAG_MF, IP_FRAGMENT_OFFSET_MASK } from './layout.js';

export const enum FragmentPlanError {
  /** The pieces' offsets would pass the 13-bit field (65,528 bytes): the packet is malformed (ping of death). */
  offsetOverflow = -1,
  /** The MTU cannot carry this header and 8 bytes of payload (an MTU below IPv4's 68). */
  mtuTooSmall = -2,
}

const OPTION_END = 0;
const OPTION_NOP = 1;
const OPTION_COPIED = 0x80;

export class Ipv4Fragments {
  private packet: Uint8Array = new Uint8Array(0);
  private ip = 0;
  private headerLength = 0;
  private payloadLength = 0;
  /** The packet's own fragment offset (bytes) and MF. */
  private startOffset = 0;
  private moreFragments = false;
  private firstPiece = 0;
  private laterPiece = 0;
  private laterHeaderLength = 20;
  /** The copied options, padded: the options of every piece but the first. */
  private readonly laterOptions = new Uint8Array(40);
  /** Pieces of the packet planned last. */
  count = 0;

  /**
   * Plans the pieces of the IPv4 packet at `packet[ip..]` (its header's total
   * length says how long it is) for an egress of `mtu` bytes; returns their
   * number, or a FragmentPlanError.
   */
  plan(packet: Uint8Array, ip: number, mtu: number): number {
    const headerLength = (packet[ip] & 0x0f) << 2;
    const totalLength = (packet[ip + 2] << 8) | packet[ip + 3];
    const word = (packet[ip + 6] << 8) | packet[ip + 7];
    this.packet = packet;
    this.ip = ip;
    this.headerLength = headerLength;
    this.payloadLength = totalLength - headerLength;
    this.startOffset = (word & IP_FRAGMENT_OFFSET_MASK) << 3;
    this.moreFragments = (word & IP_FLAG_MF) !== 0;
    this.laterHeaderLength = 20 + this.copyOptions(packet, ip + 20, headerLength - 20);
    this.firstPiece = (mtu - headerLength) & ~7;
    this.laterPiece = (mtu - this.laterHeaderLength) & ~7;
    this.count = 0;
    if (this.firstPiece < 8) return FragmentPlanError.mtuTooSmall;
    const rest = this.payloadLength - this.firstPiece;
    const count = rest <= 0 ? 1 : 1 + Math.ceil(rest / this.laterPiece);
    // The last piece's offset must fit 13 bits of 8-byte units.
    const lastOffset = count === 1 ? this.startOffset : this.startOffset + this.firstPiece + (count - 2) * this.laterPiece;
    if (lastOffset > IP_FRAGMENT_OFFSET_MASK << 3) return FragmentPlanError.offsetOverflow;
    this.count = count;
    return count;
  }

  /** Writes piece `k` (IP header and payload) at `out[at..]` with TTL `ttl`; returns its length. */
  write(k: number, out: Uint8Array, at: number, ttl: number): number {
    const packet = this.packet;
    const ip = this.ip;
    const first = k === 0;
    const headerLength = first ? this.headerLength : this.laterHeaderLength;
    const start = first ? 0 : this.firstPiece + (k - 1) * this.laterPiece;
    const size = Math.min(first ? this.firstPiece : this.laterPiece, this.payloadLength - start);
    const last = start + size >= this.payloadLength;
    // The fixed header, then this piece's options.
    for (let b = 0; b < 20; b++) out[at + b] = packet[ip + b];
    if (first) for (let b = 20; b < headerLength; b++) out[at + b] = packet[ip + b];
    else for (let b = 20; b < headerLength; b++) out[at + b] = this.laterOptions[b - 20];
    const totalLength = headerLength + size;
    out[at] = 0x40 | (headerLength >> 2);
    out[at + 2] = totalLength >> 8;
    out[at + 3] = totalLength & 0xff;
    // DF is clear (the packet would not be fragmented otherwise); MF on all but the last.
    const word = (last && !this.moreFragments ? 0 : IP_FLAG_MF) | ((this.startOffset + start) >> 3);
    out[at + 6] = word >> 8;
    out[at + 7] = word & 0xff;
    out[at + 8] = ttl;
    out[at + 10] = 0;
    out[at + 11] = 0;
    const checksum = internetChecksum(out, at, headerLength);
    out[at + 10] = checksum >> 8;
    out[at + 11] = checksum & 0xff;
    const from = ip + this.headerLength + start;
    const to = at + headerLength;
    for (let b = 0; b < size; b++) out[to + b] = packet[from + b];
    return totalLength;
  }

  /**
   * Copies the options with the copy flag set into laterOptions, padded with
   * End of Option List to a multiple of 4; returns their padded length. A
   * malformed list (a length under 2 or past the header) ends the copy there:
   * vipr forwards options untouched, it does not judge them.
   */
  private copyOptions(packet: Uint8Array, from: number, length: number): number {
    const out = this.laterOptions;
    let copied = 0;
    for (let k = 0; k < length; ) {
      const type = packet[from + k];
      if (type === OPTION_END) break;
      if (type === OPTION_NOP) {
        k++;
        continue;
      }
      if (k + 1 >= length) break;
      const optionLength = packet[from + k + 1];
      if (optionLength < 2 || k + optionLength > length) break;
      if ((type & OPTION_COPIED) !== 0) {
        for (let b = 0; b < optionLength; b++) out[copied + b] = packet[from + k + b];
        copied += optionLength;
      }
      k += optionLength;
    }
    const padded = (copied + 3) & ~3;
    out.fill(OPTION_END, copied, padded);
    return padded;
  }
}
