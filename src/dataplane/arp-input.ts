// arp-input: checks who an ARP frame claims to be before the neighbour
// resolver may learn from it.
//
// Uses:  batch.data, batch.length; ports (the router's own addresses and subnets)
// Sets:  batch.next, batch.reason (Drop, or Punt.arp)
// Next:  arp   the resolver learns from it on the slow path (counted as a punt:
//              the kernel has its own copy and answers for the router's addresses);
//              also malformed or unsupported ARP, which the resolver ignores
//        drop  arpOwnAddress: the sender claims one of the router's own addresses
//              (spoofed, or a looped-back copy); arpMartianSender: no host can have
//              the sender's address (0/8, loopback, multicast, class E, a subnet's
//              network or broadcast address)
//
// The checks need only the port table, so they run here, where the verdict is
// written into the slot for the tracer, and the resolver sees only frames it may learn from.

import { ARP_SPA, ETHER_HEADER_LENGTH, ARP_LENGTH } from '../packet/layout.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, Punt, type Counters } from './counters.js';
import { Next } from './next.js';
import type { PortTable } from './ports.js';

export function arpInput(batch: FrameBatch, ports: PortTable, counters: Counters): void {
  const data = batch.data;
  const next = batch.next;
  const reason = batch.reason;
  for (let i = 0, n = batch.count; i < n; i++) {
    if (next[i] !== Next.arpInput) continue;
    let verdict = -1;
    if (batch.length[i] >= ETHER_HEADER_LENGTH + ARP_LENGTH) {
      const s = i * SLOT_SIZE + ARP_SPA;
      const sender = ((data[s] << 24) | (data[s + 1] << 16) | (data[s + 2] << 8) | data[s + 3]) >>> 0;
      // 0.0.0.0: an ARP probe (RFC 5227), which says nothing about its sender yet.
      if (sender !== 0) verdict = senderProblem(ports, sender);
    }
    if (verdict >= 0) {
      next[i] = Next.drop;
      reason[i] = verdict;
      counters.drops[verdict]++;
    } else {
      next[i] = Next.arp;
      reason[i] = Punt.arp;
      counters.punts[Punt.arp]++;
    }
  }
}

/** The Drop reason when `sender` cannot be a neighbour, else -1. */
function senderProblem(ports: PortTable, sender: number): number {
  const first = sender >>> 24;
  if (first === 0 || first === 127 || first >= 224) return Drop.arpMartianSender;
  const claimed = ports.claimedBy(sender);
  return claimed === 1 ? Drop.arpOwnAddress : claimed === 2 ? Drop.arpMartianSender : -1;
}
