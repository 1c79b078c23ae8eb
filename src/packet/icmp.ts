// ICMP error messages (RFC 792, RFC 1812 4.3.2) written into a caller's buffer.
// Slow path only: called at most once per offending frame, after rate limiting.

import { internetChecksum } from './checksum.js';
import {
  ETHER_DST, ETHER_HEADER_LENGTH, ETHER_SRC, ETHER_TYPE, ETHERTYPE_IPV4,
  ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, IP, IP_FLAGS_FRAGMENT, IP_FRAGMENT_OFFSET_MASK, IP_PROTOCOL,
  IP_SRC, IP_TOTAL_LENGTH, IP_VERSION_IHL, IPPROTO_ICMP,
} from './layout.js';

/** ICMP errors quote the offending IP header plus the first 8 bytes of its payload (RFC 792). */
export const ICMP_QUOTE_PAYLOAD = 8;
/** Room an ICMP error can need: Ethernet + IP + ICMP header + a 60-byte quoted header + 8. */
export const ICMP_ERROR_MAX_FRAME = ETHER_HEADER_LENGTH + 20 + 8 + 60 + ICMP_QUOTE_PAYLOAD;
/** DSCP CS6 / precedence "internetwork control", as Linux and Cisco mark ICMP errors. */
const ICMP_ERROR_TOS = 0xc0;
const ICMP_ERROR_TTL = 64;

/**
 * True if an ICMP error may be sent about the IPv4 frame at `offset` (RFC 1812
 * 4.3.2.7): not about an ICMP error, not about a fragment other than the first.
 * Broadcast, multicast and martian sources never get this far: ip4-input drops them.
 */
export function icmpErrorAllowed(frame: Uint8Array, offset: number, length: number): boolean {
  const fragment = (frame[offset + IP_FLAGS_FRAGMENT] << 8) | frame[offset + IP_FLAGS_FRAGMENT + 1];
  if ((fragment & IP_FRAGMENT_OFFSET_MASK) !== 0) return false;
  if (frame[offset + IP_PROTOCOL] !== IPPROTO_ICMP) return true;
  const headerLength = (frame[offset + IP_VERSION_IHL] & 0x0f) * 4;
  const typeAt = offset + IP + headerLength;
  if (typeAt >= offset + length) return false;
  const type = frame[typeAt];
  // Informational messages (echo, timestamp, address mask, ...) may draw errors; errors may not.
  return type === ICMP_ECHO_REQUEST || type === ICMP_ECHO_REPLY || type === 13 || type === 14 || type === 15 || type === 16 || type === 17 || type === 18;
}

/**
 * Writes an Ethernet+IPv4+ICMP error about the frame at `frame[offset..offset+length)`
 * into `out` at `outOffset`; returns the frame length written.
 * The error goes back to the frame's previous hop (its source MAC) from `sourceMac`/`sourceAddress`.
 * `rest` is the ICMP header's second word (the next-hop MTU for fragmentation needed, else 0).
 */
export function writeIcmpError(
  out: Uint8Array, outOffset: number,
  frame: Uint8Array, offset: number, length: number,
  type: number, code: number, rest: number,
  sourceMac: Uint8Array, sourceAddress: number, ipId: number,
): number {
  const headerLength = (frame[offset + IP_VERSION_IHL] & 0x0f) * 4;
  const totalLength = (frame[offset + IP_TOTAL_LENGTH] << 8) | frame[offset + IP_TOTAL_LENGTH + 1];
  const available = Math.min(length - ETHER_HEADER_LENGTH, totalLength);
  const quote = Math.max(0, Math.min(available, headerLength + ICMP_QUOTE_PAYLOAD));
  const o = outOffset;
  // Ethernet: back to whoever handed us the frame.
  for (let k = 0; k < 6; k++) {
    out[o + ETHER_DST + k] = frame[offset + ETHER_SRC + k];
    out[o + ETHER_SRC + k] = sourceMac[k];
  }
  out[o + ETHER_TYPE] = ETHERTYPE_IPV4 >> 8;
  out[o + ETHER_TYPE + 1] = ETHERTYPE_IPV4 & 0xff;
  // IPv4 header.
  const ip = o + IP;
  const ipTotal = 20 + 8 + quote;
  out[ip] = 0x45;
  out[ip + 1] = ICMP_ERROR_TOS;
  out[ip + 2] = ipTotal >> 8;
  out[ip + 3] = ipTotal & 0xff;
  out[ip + 4] = (ipId >> 8) & 0xff;
  out[ip + 5] = ipId & 0xff;
  out[ip + 6] = 0;
  out[ip + 7] = 0;
  out[ip + 8] = ICMP_ERROR_TTL;
  out[ip + 9] = IPPROTO_ICMP;
  out[ip + 10] = 0;
  out[ip + 11] = 0;
  out[ip + 12] = sourceAddress >>> 24;
  out[ip + 13] = (sourceAddress >>> 16) & 0xff;
  out[ip + 14] = (sourceAddress >>> 8) & 0xff;
  out[ip + 15] = sourceAddress & 0xff;
  for (let k = 0; k < 4; k++) out[ip + 16 + k] = frame[offset + IP_SRC + k];
  const ipChecksum = internetChecksum(out, ip, 20);
  out[ip + 10] = ipChecksum >> 8;
  out[ip + 11] = ipChecksum & 0xff;
  // ICMP header and the quote.
  const icmp = ip + 20;
  out[icmp] = type;
  out[icmp + 1] = code;
  out[icmp + 2] = 0;
  out[icmp + 3] = 0;
  out[icmp + 4] = (rest >>> 24) & 0xff;
  out[icmp + 5] = (rest >>> 16) & 0xff;
  out[icmp + 6] = (rest >>> 8) & 0xff;
  out[icmp + 7] = rest & 0xff;
  for (let k = 0; k < quote; k++) out[icmp + 8 + k] = frame[offset + IP + k];
  const icmpChecksum = internetChecksum(out, icmp, 8 + quote);
  out[icmp + 2] = icmpChecksum >> 8;
  out[icmp + 3] = icmpChecksum & 0xff;
  return ETHER_HEADER_LENGTH + ipTotal;
}

