// ip4-input: validates the IPv4 header (RFC 1812 5.2.2) and drops martians.
//
// Uses:  batch.data, batch.length
// Sets:  batch.next, batch.length (trimmed to the IP total length: Ethernet
//        padding is not forwarded), batch.reason = Drop reason for drops
// Next:  ip4Lookup, or drop with one of: truncated, badVersion,
//        badHeaderLength, badTotalLength, badChecksum, martianSource,
//        martianDestination

import { onesComplementSum } from '../packet/checksum.js';

/**
 * Ones' complement sum of an IPv4 header: the 20-byte header without options
 * (nearly every packet) unrolled, options through the general loop.
 */
function headerSum(d: Uint8Array, o: number, headerLength: number): number {
  if (headerLength !== 20) return onesComplementSum(d, o, headerLength);
  let sum =
    ((d[o] << 8) | d[o + 1]) + ((d[o + 2] << 8) | d[o + 3]) + ((d[o + 4] << 8) | d[o + 5]) +
    ((d[o + 6] << 8) | d[o + 7]) + ((d[o + 8] << 8) | d[o + 9]) + ((d[o + 10] << 8) | d[o + 11]) +
    ((d[o + 12] << 8) | d[o + 13]) + ((d[o + 14] << 8) | d[o + 15]) + ((d[o + 16] << 8) | d[o + 17]) +
    ((d[o + 18] << 8) | d[o + 19]);
  sum = (sum & 0xffff) + (sum >>> 16);
  return (sum & 0xffff) + (sum >>> 16);
}
import { ETHER_HEADER_LENGTH, IP, IP_DST, IP_MIN_HEADER_LENGTH, IP_SRC } from '../packet/layout.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, type Counters } from './counters.js';
import { Next } from './next.js';

export function ip4Input(batch: FrameBatch, counters: Counters): void {
  const data = batch.data;
  const next = batch.next;
  const lengths = batch.length;
  const drops = counters.drops;
  for (let i = 0, n = batch.count; i < n; i++) {
    if (next[i] !== Next.ip4Input) continue;
    const off = i * SLOT_SIZE;
    const frameLength = lengths[i];
    let reason = -1;
    if (frameLength < ETHER_HEADER_LENGTH + IP_MIN_HEADER_LENGTH) {
      reason = Drop.truncated;
    } else {
      const versionIhl = data[off + IP];
      const headerLength = (versionIhl & 0x0f) << 2;
      const totalLength = (data[off + IP + 2] << 8) | data[off + IP + 3];
      if (versionIhl >> 4 !== 4) reason = Drop.badVersion;
      else if (headerLength < IP_MIN_HEADER_LENGTH) reason = Drop.badHeaderLength;
      else if (ETHER_HEADER_LENGTH + headerLength > frameLength) reason = Drop.truncated;
      else if (totalLength < headerLength || ETHER_HEADER_LENGTH + totalLength > frameLength) reason = Drop.badTotalLength;
      else if (headerSum(data, off + IP, headerLength) !== 0xffff) reason = Drop.badChecksum;
      else {
        const srcFirst = data[off + IP_SRC];
        const dstFirst = data[off + IP_DST];
        // Source: 0/8 "this network", 127/8 loopback, 224/4 multicast, 240/4 class E
        // (which holds 255.255.255.255) are never valid sources on the wire (RFC 1812 5.3.7).
        if (srcFirst === 0 || srcFirst === 127 || srcFirst >= 224) reason = Drop.martianSource;
        // Destination: 0/8, 127/8, class E and limited broadcast are never forwarded; nor is
        // multicast, which vipr does not route.
        else if (dstFirst === 0 || dstFirst === 127 || dstFirst >= 224) reason = Drop.martianDestination;
        else lengths[i] = ETHER_HEADER_LENGTH + totalLength;
      }
    }
    if (reason >= 0) {
      next[i] = Next.drop;
      batch.reason[i] = reason;
      drops[reason]++;
    } else {
      next[i] = Next.ip4Lookup;
    }
  }
}
