// ip4-rewrite: resolves the next hop's MAC and rewrites the frame in place.
//
// Uses:  batch.nextHop (next-hop index), batch.data; nextHops (kind, port,
//        neighbor); neighbors (state, port, ready-made Ethernet header); ports.mtu
// Sets:  Ethernet destination and source, TTL - 1, header checksum (RFC 1624
//        incremental update); batch.egress; batch.reason (icmpError); neighbors.used;
//        counters.nextHopPackets and .nextHopBytes
// Next:  tx         rewritten, send on batch.egress[i]
//        hold       neighbour not resolved yet (or failed): the resolver decides
//        icmpError  larger than the egress MTU with DF set (fragmentation needed)
//        fragment   larger than the egress MTU without DF: ip4-fragment sends it
//                   in pieces (not rewritten here; batch.nextHop keeps the next hop)
//
// IP options and fragments are forwarded untouched: only TTL and checksum change.

import { checksumAdjust } from '../packet/checksum.js';
import { ETHER_HEADER_LENGTH, IP_CHECKSUM, IP_DST, IP_FLAG_DF, IP_FLAGS_FRAGMENT, IP_TTL } from '../packet/layout.js';
import { NextHopKind, type NextHopTable } from './fib/nexthop.js';
import { NeighborState, type NeighborTable } from './neighbor-table.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, type Counters } from './counters.js';
import { Next } from './next.js';
import type { PortTable } from './ports.js';

/** Neighbour entry for next hop `nextHop` and the frame's destination, or -1. */
export function neighborFor(
  nextHops: NextHopTable, neighbors: NeighborTable, nextHop: number, data: Uint8Array, off: number,
): number {
  if (nextHops.kind[nextHop] === NextHopKind.gateway) return nextHops.neighbor[nextHop];
  const d = off + IP_DST;
  const entry = neighbors.find(((data[d] << 24) | (data[d + 1] << 16) | (data[d + 2] << 8) | data[d + 3]) >>> 0);
  return entry >= 0 && neighbors.port[entry] === nextHops.port[nextHop] ? entry : -1;
}

/**
 * Copies the neighbour's ready-made Ethernet header (destination and source
 * MAC, 12 bytes: three aligned words), decrements TTL and patches the header
 * checksum (RFC 1624). `words` views the same bytes as `data`; `off` is a
 * slot offset, so word-aligned.
 */
export function rewriteFrame(data: Uint8Array, words: Uint32Array, off: number, etherWords: Uint32Array, entry: number): void {
  const w = off >> 2;
  const e = entry * 3;
  words[w] = etherWords[e];
  words[w + 1] = etherWords[e + 1];
  words[w + 2] = etherWords[e + 2];
  const ttlAt = off + IP_TTL;
  const oldWord = (data[ttlAt] << 8) | data[ttlAt + 1];
  const newWord = oldWord - 0x0100;
  data[ttlAt] = newWord >> 8;
  const sumAt = off + IP_CHECKSUM;
  const checksum = checksumAdjust((data[sumAt] << 8) | data[sumAt + 1], oldWord, newWord);
  data[sumAt] = checksum >> 8;
  data[sumAt + 1] = checksum & 0xff;
}

export function ip4Rewrite(
  batch: FrameBatch, nextHops: NextHopTable, neighbors: NeighborTable, ports: PortTable, counters: Counters,
): void {
  const data = batch.data;
  const next = batch.next;
  const states = neighbors.state;
  const etherWords = neighbors.etherWords;
  const words = batch.words;
  const used = neighbors.used;
  const mtus = ports.mtu;
  const nextHopPackets = counters.nextHopPackets;
  const nextHopBytes = counters.nextHopBytes;
  const kinds = nextHops.kind;
  for (let i = 0, n = batch.count; i < n; i++) {
    if (next[i] !== Next.ip4Rewrite) continue;
    const off = i * SLOT_SIZE;
    const nextHop = batch.nextHop[i];
    const entry = neighborFor(nextHops, neighbors, nextHop, data, off);
    if (entry < 0) {
      next[i] = Next.hold;
      continue;
    }
    const state = states[entry];
    if (state !== NeighborState.reachable && state !== NeighborState.stale) {
      next[i] = Next.hold;
      continue;
    }
    // A gateway's egress is its neighbour entry's port: a failover rewrites only the slot's neighbour.
    const port = kinds[nextHop] === NextHopKind.gateway ? neighbors.port[entry] : nextHops.port[nextHop];
    batch.egress[i] = port; // also for the ICMP error, which quotes this port's MTU
    if (batch.length[i] - ETHER_HEADER_LENGTH > mtus[port]) {
      if ((data[off + IP_FLAGS_FRAGMENT] & (IP_FLAG_DF >> 8)) !== 0) {
        next[i] = Next.icmpError;
        batch.reason[i] = Drop.mtuExceeded; // fragmentation needed, quoting the egress MTU
        counters.drops[Drop.mtuExceeded]++;
        continue;
      }
      next[i] = Next.fragment;
    } else {
      rewriteFrame(data, words, off, etherWords, entry);
      next[i] = Next.tx;
    }
    used[entry] = 1;
    nextHopPackets[nextHop]++;
    nextHopBytes[nextHop] += batch.length[i];
  }
}
