// A frame builder for tests and benchmarks (Katran's packet fixtures): every
// field settable, including wrong ones, so tables of malformed frames read
// as data. Allocates freely; never used on the data path.

import { internetChecksum, onesComplementSum } from './checksum.js';
import { ARP_REPLY, ARP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV4, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK } from './layout.js';
import { parseAddress } from '../util/ipv4.js';

export type Mac = string; // "02:00:00:00:00:01"

export function macBytes(mac: Mac): number[] {
  return mac.split(':').map((h) => parseInt(h, 16));
}

function addressBytes(address: string | number): number[] {
  const a = typeof address === 'number' ? address >>> 0 : parseAddress(address);
  return [a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff];
}

export interface Ipv4Spec {
  dstMac: Mac;
  srcMac: Mac;
  src: string;
  dst: string;
  ttl?: number;
  protocol?: number;
  tos?: number;
  id?: number;
  /** Flags and fragment offset word, e.g. 0x4000 for DF, 0x2000 | 185 for MF at offset 1480. */
  fragment?: number;
  /** IP options bytes (padded to a multiple of 4 by the caller). */
  options?: number[];
  /** Payload after the IP header (ICMP, UDP...). Default: a UDP header and 18 bytes, a 64-byte frame. */
  payload?: number[] | Uint8Array;
  /** Overrides for malformed frames. */
  version?: number;
  ihl?: number;
  totalLength?: number;
  checksum?: number;
  /** Cut the frame to this many bytes after building. */
  truncate?: number;
  /** Bytes appended after the IP datagram (Ethernet padding). */
  trailer?: number;
}

export function udpPayload(dataLength = 18, srcPort = 40000, dstPort = 9): number[] {
  const out = [srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff, 0, 8 + dataLength, 0, 0];
  for (let k = 0; k < dataLength; k++) out.push(k & 0xff);
  return out;
}

/** ICMP echo request with `dataLength` bytes of data and a correct checksum. */
export function icmpEcho(id = 0x1234, sequence = 1, dataLength = 16, type = 8): number[] {
  const out = [type, 0, 0, 0, id >> 8, id & 0xff, sequence >> 8, sequence & 0xff];
  for (let k = 0; k < dataLength; k++) out.push(k & 0xff);
  const sum = internetChecksum(Uint8Array.from(out), 0, out.length);
  out[2] = sum >> 8;
  out[3] = sum & 0xff;
  return out;
}

export interface TcpSpec {
  /** The IP addresses, for the checksum's pseudo-header (the same as the frame's, or a wrong checksum follows). */
  src: string | number;
  dst: string | number;
  srcPort: number;
  dstPort: number;
  /** TCP flags byte, e.g. TCP_SYN | TCP_ACK. Default: ACK. */
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** Options bytes (padded to a multiple of 4 by the caller). */
  options?: number[];
  /** Payload bytes, or how many bytes of a counting pattern. */
  data?: number | number[];
  /** Overrides for malformed segments: the data offset nibble, and the checksum. */
  dataOffset?: number;
  checksum?: number;
}

/** A TCP segment (header, options, data) with a correct checksum unless told otherwise; use with `protocol: IPPROTO_TCP`. */
export function tcpSegment(spec: TcpSpec): number[] {
  const options = spec.options ?? [];
  const data = typeof spec.data === 'number' ? Array.from({ length: spec.data }, (_, k) => k & 0xff) : (spec.data ?? []);
  const seq = spec.seq ?? 1;
  const ack = spec.ack ?? 0;
  const window = spec.window ?? 65535;
  const dataOffset = spec.dataOffset ?? (20 + options.length) / 4;
  const out = [
    spec.srcPort >> 8, spec.srcPort & 0xff, spec.dstPort >> 8, spec.dstPort & 0xff,
    seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff,
    ack >>> 24, (ack >>> 16) & 0xff, (ack >>> 8) & 0xff, ack & 0xff,
    (dataOffset & 0x0f) << 4, spec.flags ?? TCP_ACK, window >> 8, window & 0xff,
    0, 0, 0, 0, ...options, ...data,
  ];
  const pseudo = [...addressBytes(spec.src), ...addressBytes(spec.dst), 0, IPPROTO_TCP, out.length >> 8, out.length & 0xff];
  const sum = spec.checksum ?? ~onesComplementSum(Uint8Array.from(out), 0, out.length, onesComplementSum(Uint8Array.from(pseudo), 0, pseudo.length)) & 0xffff;
  out[16] = sum >> 8;
  out[17] = sum & 0xff;
  return out;
}

/**
 * An ICMP error message (destination unreachable, time exceeded, ...) quoting
 * `quoted`: an IP header and the start of its payload, e.g.
 * `ipv4Frame(...).subarray(14, 14 + 28)`. `rest` is the second word (the MTU
 * for fragmentation needed).
 */
export function icmpErrorPayload(type: number, code: number, quoted: Uint8Array | number[], rest = 0): number[] {
  const out = [type, code, 0, 0, rest >>> 24, (rest >>> 16) & 0xff, (rest >>> 8) & 0xff, rest & 0xff, ...quoted];
  const sum = internetChecksum(Uint8Array.from(out), 0, out.length);
  out[2] = sum >> 8;
  out[3] = sum & 0xff;
  return out;
}

export function ipv4Frame(spec: Ipv4Spec): Buffer {
  const options = spec.options ?? [];
  const payload = [...(spec.payload ?? udpPayload())];
  const headerLength = 20 + options.length;
  const ihl = spec.ihl ?? headerLength / 4;
  const totalLength = spec.totalLength ?? headerLength + payload.length;
  const header = [
    ((spec.version ?? 4) << 4) | (ihl & 0x0f), spec.tos ?? 0, totalLength >> 8, totalLength & 0xff,
    (spec.id ?? 1) >> 8, (spec.id ?? 1) & 0xff, (spec.fragment ?? 0) >> 8, (spec.fragment ?? 0) & 0xff,
    spec.ttl ?? 64, spec.protocol ?? (spec.payload ? IPPROTO_ICMP : IPPROTO_UDP), 0, 0,
    ...addressBytes(spec.src), ...addressBytes(spec.dst), ...options,
  ];
  const sum = spec.checksum ?? internetChecksum(Uint8Array.from(header), 0, header.length);
  header[10] = sum >> 8;
  header[11] = sum & 0xff;
  const bytes = [
    ...macBytes(spec.dstMac), ...macBytes(spec.srcMac), ETHERTYPE_IPV4 >> 8, ETHERTYPE_IPV4 & 0xff,
    ...header, ...payload, ...new Array(spec.trailer ?? 0).fill(0),
  ];
  const frame = Buffer.from(bytes);
  return spec.truncate !== undefined ? frame.subarray(0, spec.truncate) : frame;
}

export interface ArpSpec {
  operation: 'request' | 'reply';
  dstMac: Mac;
  srcMac: Mac;
  senderMac: Mac;
  senderAddress: string;
  targetMac?: Mac;
  targetAddress: string;
}

export function arpFrame(spec: ArpSpec): Buffer {
  const bytes = [
    ...macBytes(spec.dstMac), ...macBytes(spec.srcMac), ETHERTYPE_ARP >> 8, ETHERTYPE_ARP & 0xff,
    0, 1, 0x08, 0x00, 6, 4, 0, spec.operation === 'request' ? ARP_REQUEST : ARP_REPLY,
    ...macBytes(spec.senderMac), ...addressBytes(spec.senderAddress),
    ...macBytes(spec.targetMac ?? '00:00:00:00:00:00'), ...addressBytes(spec.targetAddress),
  ];
  while (bytes.length < 60) bytes.push(0);
  return Buffer.from(bytes);
}
