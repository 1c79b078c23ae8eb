// The flow a frame belongs to: its key for the flow table and the hash that
// places it, read from an IPv4 frame in a batch slot without allocating.
//
// Uses:  the frame's IPv4 header (already validated by ip4-input) and its L4 header
// Sets:  FLOW_KEY_WORDS words of a caller's Uint32Array; returns flow info or NO_FLOW_KEY
//
// The key (4 words):
//   0  address A          the lower (address, port) end of the flow
//   1  address B          the other end
//   2  portA << 16 | portB  TCP, UDP, UDP-Lite, SCTP, DCCP ports; an ICMP query's
//                         identifier in both halves; 0 for other protocols
//   3  protocol | FLOW_KEY_FRAGMENT (bit 8, see fragments below)
//
// Canonical order, so that a reply finds its flow. The key is written with
// the lower (address, port) end first, whichever end sent the packet: the
// client's packet (client -> VIP) and the server's reply (VIP -> client) make
// the same key, the same hash and one lookup each. The FLOW_REVERSED bit of
// the returned info says which way this packet went (set: from B to A); the
// flow table remembers the way of the packet that created an entry, and so
// tells initiator from responder (FIN from each side, replies). The
// alternative, a key in the packet's own order and a second lookup with the
// reversed key when the first misses, costs replies and every packet of a flow
// vipr does not keep two lookups instead of one. The hash of a canonical key
// is the same both ways, as the kernel's PACKET_FANOUT flow hash is, so both
// directions of a flow also meet on one worker thread.
//
// ICMP. Queries and their replies (echo 8/0, timestamp 13/14, information
// 15/16, address mask 17/18) are keyed by their identifier, so `ping` is one
// flow per identifier. Errors that quote a packet (destination unreachable,
// source quench, time exceeded, parameter problem) belong to the flow of the
// packet they quote, as Katran does for destination unreachable: the key is
// the quoted packet's, and the direction is opposite to the quoted packet's
// (the error travels back to that packet's sender). So "fragmentation needed" sent to a VIP by a router on the
// client's path finds the server that holds the connection. FLOW_ICMP_ERROR
// marks them: they find a flow but must neither create one nor refresh it.
// Other ICMP messages are keyed by addresses only.
//
// Fragments. Only the first fragment of a datagram carries its ports, so a
// key with ports would send the first fragment and the later ones to
// different servers of a group, and no server could reassemble the datagram.
// What the others do: Katran drops IPv4 fragments; LVS reassembles them in the
// kernel (nf_defrag) before it schedules, which a router cannot afford on its
// fast path; Maglev (NSDI 2016) hashes every fragment by its 3-tuple
// (addresses and protocol). vipr does as Maglev: every fragment, the first one
// included, gets the key (protocol, addresses, no ports) with FLOW_KEY_FRAGMENT
// set, so all fragments between two hosts follow one flow and reach one
// server, and the bit keeps that key apart from an unfragmented packet of a
// protocol that has ports 0. The price: a fragmented datagram of a UDP flow can
// reach another server of a group than the flow's unfragmented datagrams; TCP
// is almost never fragmented (DF and path MTU discovery), and protocols without
// ports key the same either way (no bit is set for them). FLOW_FRAGMENT in the
// info tells the caller, so it can count fragments.
//
// No flow key (NO_FLOW_KEY): an L4 header too short for what the key needs
// (20-byte TCP header with a sane data offset, 8-byte UDP header with a sane
// length, 8-byte ICMP header, 12-byte SCTP or DCCP header, the quoted IP
// header and 8 bytes of an ICMP error), or an ICMP error quoting an ICMP
// error. The router still forwards such a packet by its route; the caller
// counts it (FlowCounter.noFlowKey).

import {
  ETHER_HEADER_LENGTH, ICMP_DEST_UNREACHABLE, ICMP_HEADER_LENGTH, ICMP_PARAMETER_PROBLEM, ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED, IP_FRAGMENT_OFFSET_MASK, IP_FLAG_MF, IP_MIN_HEADER_LENGTH, IPPROTO_DCCP, IPPROTO_ICMP,
  IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, TCP_DATA_OFFSET, TCP_FLAGS, TCP_MIN_HEADER_LENGTH,
  UDP_HEADER_LENGTH,
} from '../packet/layout.js';

export const FLOW_KEY_WORDS = 4;
/** Key word 3: the key of a fragment (protocol and addresses only). */
export const FLOW_KEY_FRAGMENT = 0x100;

/** Returned instead of flow info when the frame has no flow key. */
export const NO_FLOW_KEY = -1;
/** Flow info bits 0-7: the TCP flags of a TCP packet (0 for anything else, and for TCP fragments). */
export const FLOW_TCP_FLAGS = 0xff;
/** The packet went from address B to address A of the key. */
export const FLOW_REVERSED = 0x100;
/** The packet is a fragment (first or later): keyed by protocol and addresses. */
export const FLOW_FRAGMENT = 0x200;
/** An ICMP error: the key is the flow of the packet it quotes; it must not create or refresh that flow. */
export const FLOW_ICMP_ERROR = 0x400;

/** SCTP's common header and DCCP's generic header (short form) are 12 bytes. */
const SCTP_DCCP_MIN_HEADER_LENGTH = 12;
/** ICMP errors quote at least 8 bytes of the offending packet's payload (RFC 792). */
const ICMP_QUOTED_PAYLOAD = 8;

function read32(d: Uint8Array, o: number): number {
  return ((d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3]) >>> 0;
}

function hasPorts(protocol: number): boolean {
  return protocol === IPPROTO_TCP || protocol === IPPROTO_UDP || protocol === IPPROTO_SCTP ||
    protocol === IPPROTO_DCCP || protocol === IPPROTO_UDPLITE;
}

/** ICMP query and reply types, which carry an identifier in bytes 4-5. */
function isIcmpQuery(type: number): boolean {
  return type === 8 || type === 0 || (type >= 13 && type <= 18);
}

function isIcmpError(type: number): boolean {
  return type === ICMP_DEST_UNREACHABLE || type === ICMP_SOURCE_QUENCH || type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETER_PROBLEM;
}

/** Writes the key in canonical order; returns FLOW_REVERSED when the packet went from B to A. */
function store(keys: Uint32Array, k: number, src: number, dst: number, srcPort: number, dstPort: number, word3: number): number {
  keys[k + 3] = word3;
  if (src < dst || (src === dst && srcPort <= dstPort)) {
    keys[k] = src;
    keys[k + 1] = dst;
    keys[k + 2] = ((srcPort << 16) | dstPort) >>> 0;
    return 0;
  }
  keys[k] = dst;
  keys[k + 1] = src;
  keys[k + 2] = ((dstPort << 16) | srcPort) >>> 0;
  return FLOW_REVERSED;
}

/**
 * The flow key of the IPv4 frame at `data[frame..frame+length)` (Ethernet
 * header first), written to `keys[k..k+4)`. Returns the flow info (TCP flags
 * and FLOW_* bits) or NO_FLOW_KEY. Reads nothing outside the frame or past the
 * IP total length.
 */
export function extractFlowKey(data: Uint8Array, frame: number, length: number, keys: Uint32Array, k: number): number {
  const ip = frame + ETHER_HEADER_LENGTH;
  if (length < ETHER_HEADER_LENGTH + IP_MIN_HEADER_LENGTH) return NO_FLOW_KEY;
  const headerLength = (data[ip] & 0x0f) << 2;
  const totalLength = (data[ip + 2] << 8) | data[ip + 3];
  const end = ip + Math.min(length - ETHER_HEADER_LENGTH, totalLength);
  const l4 = ip + headerLength;
  if (headerLength < IP_MIN_HEADER_LENGTH || l4 > end) return NO_FLOW_KEY;
  const protocol = data[ip + 9];
  const src = read32(data, ip + 12);
  const dst = read32(data, ip + 16);
  const fragment = (data[ip + 6] << 8) | data[ip + 7];
  if ((fragment & (IP_FLAG_MF | IP_FRAGMENT_OFFSET_MASK)) !== 0) {
    const word3 = hasPorts(protocol) || protocol === IPPROTO_ICMP ? protocol | FLOW_KEY_FRAGMENT : protocol;
    return store(keys, k, src, dst, 0, 0, word3) | FLOW_FRAGMENT;
  }
  const available = end - l4;
  if (protocol === IPPROTO_TCP) {
    if (available < TCP_MIN_HEADER_LENGTH) return NO_FLOW_KEY;
    const tcpHeaderLength = (data[l4 + TCP_DATA_OFFSET] >> 4) << 2;
    if (tcpHeaderLength < TCP_MIN_HEADER_LENGTH || tcpHeaderLength > available) return NO_FLOW_KEY;
    return store(keys, k, src, dst, (data[l4] << 8) | data[l4 + 1], (data[l4 + 2] << 8) | data[l4 + 3], protocol) |
      data[l4 + TCP_FLAGS];
  }
  if (protocol === IPPROTO_UDP || protocol === IPPROTO_UDPLITE) {
    if (available < UDP_HEADER_LENGTH) return NO_FLOW_KEY;
    // UDP's length field covers header and data; UDP-Lite's is its checksum coverage (0 = all).
    const udpLength = (data[l4 + 4] << 8) | data[l4 + 5];
    if (protocol === IPPROTO_UDP && (udpLength < UDP_HEADER_LENGTH || udpLength > available)) return NO_FLOW_KEY;
    return store(keys, k, src, dst, (data[l4] << 8) | data[l4 + 1], (data[l4 + 2] << 8) | data[l4 + 3], protocol);
  }
  if (protocol === IPPROTO_SCTP || protocol === IPPROTO_DCCP) {
    if (available < SCTP_DCCP_MIN_HEADER_LENGTH) return NO_FLOW_KEY;
    return store(keys, k, src, dst, (data[l4] << 8) | data[l4 + 1], (data[l4 + 2] << 8) | data[l4 + 3], protocol);
  }
  if (protocol === IPPROTO_ICMP) {
    if (available < ICMP_HEADER_LENGTH) return NO_FLOW_KEY;
    const type = data[l4];
    if (isIcmpQuery(type)) {
      const id = (data[l4 + 4] << 8) | data[l4 + 5];
      return store(keys, k, src, dst, id, id, protocol);
    }
    if (isIcmpError(type)) return quotedFlowKey(data, l4 + ICMP_HEADER_LENGTH, end, keys, k);
    return store(keys, k, src, dst, 0, 0, protocol);
  }
  return store(keys, k, src, dst, 0, 0, protocol);
}

/**
 * The key of the packet an ICMP error quotes at `data[inner..end)`, with the
 * direction of a packet going back to its sender.
 */
function quotedFlowKey(data: Uint8Array, inner: number, end: number, keys: Uint32Array, k: number): number {
  if (end - inner < IP_MIN_HEADER_LENGTH || data[inner] >> 4 !== 4) return NO_FLOW_KEY;
  const headerLength = (data[inner] & 0x0f) << 2;
  const l4 = inner + headerLength;
  if (headerLength < IP_MIN_HEADER_LENGTH || end - l4 < ICMP_QUOTED_PAYLOAD) return NO_FLOW_KEY;
  const protocol = data[inner + 9];
  // The error travels from the quoted packet's destination back to its source.
  const src = read32(data, inner + 16);
  const dst = read32(data, inner + 12);
  const fragment = (data[inner + 6] << 8) | data[inner + 7];
  let srcPort = 0;
  let dstPort = 0;
  let word3 = protocol;
  if ((fragment & (IP_FLAG_MF | IP_FRAGMENT_OFFSET_MASK)) !== 0) {
    if (hasPorts(protocol) || protocol === IPPROTO_ICMP) word3 |= FLOW_KEY_FRAGMENT;
  } else if (hasPorts(protocol)) {
    srcPort = (data[l4 + 2] << 8) | data[l4 + 3];
    dstPort = (data[l4] << 8) | data[l4 + 1];
  } else if (protocol === IPPROTO_ICMP) {
    const type = data[l4];
    // Hosts never send errors about errors (RFC 1122 3.2.2): such a message is bogus.
    if (isIcmpError(type)) return NO_FLOW_KEY;
    if (isIcmpQuery(type)) srcPort = dstPort = (data[l4 + 4] << 8) | data[l4 + 5];
  }
  return store(keys, k, src, dst, srcPort, dstPort, word3) | FLOW_ICMP_ERROR;
}

/** One 4-byte block of MurmurHash3 x86_32. */
function murmur3Round(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/**
 * The flow's 32-bit hash: MurmurHash3 (x86, 32-bit) of the key's 16 bytes
 * (each word little-endian), seeded from the config. The same on every
 * router with the same seed, and the same for both directions of a flow
 * (the key is canonical). The flow table's slots and a group's Maglev slot
 * (hash % table size) both come from it.
 */
export function flowHash(keys: Uint32Array, k: number, seed: number): number {
  let h = seed | 0;
  h = murmur3Round(h, keys[k]);
  h = murmur3Round(h, keys[k + 1]);
  h = murmur3Round(h, keys[k + 2]);
  h = murmur3Round(h, keys[k + 3]);
  h ^= FLOW_KEY_WORDS * 4;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A key as numbers, for the control plane and tests (allocates). */
export interface FlowKeyFields {
  protocol: number;
  fragment: boolean;
  /** From the packet's source to its destination, as the FLOW_REVERSED bit says. */
  src: number;
  dst: number;
  srcPort: number;
  dstPort: number;
}

/** The key at keys[k..k+4) in the direction `info` (or a flow entry's initiator) says. */
export function flowKeyFields(keys: Uint32Array, k: number, reversed: boolean): FlowKeyFields {
  const a = keys[k] >>> 0;
  const b = keys[k + 1] >>> 0;
  const portA = keys[k + 2] >>> 16;
  const portB = keys[k + 2] & 0xffff;
  const protocol = keys[k + 3] & 0xff;
  const fragment = (keys[k + 3] & FLOW_KEY_FRAGMENT) !== 0;
  return reversed
    ? { protocol, fragment, src: b, dst: a, srcPort: portB, dstPort: portA }
    : { protocol, fragment, src: a, dst: b, srcPort: portA, dstPort: portB };
}
