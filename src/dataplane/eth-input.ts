// eth-input: first stage of every received frame.
//
// Uses:  batch.data, batch.length, batch.port; ports.mac
// Sets:  batch.next, batch.reason (Drop or Punt)
// Next:  ip4Input  IPv4 frame addressed to the ingress port's MAC
//        arpInput  ARP frame
//        punt      not IPv4, or unicast to another host (the kernel has its own copy)
//        drop      truncated, link-layer broadcast or multicast IPv4

import { ETHER_HEADER_LENGTH, ETHERTYPE_ARP, ETHERTYPE_IPV4 } from '../packet/layout.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, Punt, type Counters } from './counters.js';
import { Next } from './next.js';
import type { PortTable } from './ports.js';

export function ethInput(batch: FrameBatch, ports: PortTable, counters: Counters): void {
  const data = batch.data;
  const next = batch.next;
  const reason = batch.reason;
  const mac = ports.mac;
  const drops = counters.drops;
  const punts = counters.punts;
  for (let i = 0, n = batch.count; i < n; i++) {
    if (next[i] !== Next.ethInput) continue;
    const off = i * SLOT_SIZE;
    if (batch.length[i] < ETHER_HEADER_LENGTH) {
      next[i] = Next.drop;
      reason[i] = Drop.truncated;
      drops[Drop.truncated]++;
      continue;
    }
    const type = (data[off + 12] << 8) | data[off + 13];
    if (type !== ETHERTYPE_IPV4) {
      if (type === ETHERTYPE_ARP) {
        next[i] = Next.arpInput;
      } else {
        next[i] = Next.punt;
        reason[i] = Punt.notIpv4;
        punts[Punt.notIpv4]++;
      }
      continue;
    }
    // The group bit (least significant bit of the first octet) marks broadcast and multicast.
    if ((data[off] & 1) !== 0) {
      next[i] = Next.drop;
      reason[i] = Drop.linkBroadcast;
      drops[Drop.linkBroadcast]++;
      continue;
    }
    const m = batch.port[i] * 6;
    if (
      data[off] !== mac[m] || data[off + 1] !== mac[m + 1] || data[off + 2] !== mac[m + 2] ||
      data[off + 3] !== mac[m + 3] || data[off + 4] !== mac[m + 4] || data[off + 5] !== mac[m + 5]
    ) {
      next[i] = Next.punt;
      reason[i] = Punt.otherHost;
      punts[Punt.otherHost]++;
      continue;
    }
    next[i] = Next.ip4Input;
  }
}
