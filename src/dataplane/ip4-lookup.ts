// ip4-lookup: longest-prefix match of the destination, then what the leaf says.
//
// Uses:  batch.data (destination, TTL); fib (read once per batch by the caller); nextHops.kind
// Sets:  batch.next; batch.nextHop = next-hop index (forwarding); batch.reason = Drop
//        reason (drops, ICMP errors) or Punt kind (local)
// Next:  ip4Rewrite  forwarding next hop (gateway or connected)
//        punt        one of the router's own addresses: the kernel answers
//        icmpError   no route / unreachable route (net unreachable), TTL <= 1 (time exceeded)
//        drop        blackhole route, directed broadcast to a connected subnet

import { IP_DST, IP_TTL } from '../packet/layout.js';
import type { FibView } from './fib/lpm.js';
import { NextHopKind, type NextHopTable } from './fib/nexthop.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { Drop, Punt, type Counters } from './counters.js';
import { Next } from './next.js';

export function ip4Lookup(batch: FrameBatch, fib: FibView, nextHops: NextHopTable, counters: Counters): void {
  const data = batch.data;
  const next = batch.next;
  const out = batch.nextHop;
  const reason = batch.reason;
  const tbl24 = fib.tbl24;
  const tbl8 = fib.tbl8;
  const kinds = nextHops.kind;
  const drops = counters.drops;
  for (let i = 0, n = batch.count; i < n; i++) {
    if (next[i] !== Next.ip4Lookup) continue;
    const off = i * SLOT_SIZE + IP_DST;
    const hi = (data[off] << 16) | (data[off + 1] << 8) | data[off + 2];
    const entry = tbl24[hi];
    const nextHop = (entry & 0x8000) === 0 ? entry : tbl8[((entry & 0x7fff) << 8) | data[off + 3]];
    const kind = kinds[nextHop];
    out[i] = nextHop;
    if (kind === NextHopKind.gateway || kind === NextHopKind.connected) {
      // RFC 1812 5.3.1: a router forwarding a datagram with TTL 1 or 0 discards it.
      if (data[i * SLOT_SIZE + IP_TTL] <= 1) {
        next[i] = Next.icmpError;
        reason[i] = Drop.ttlExceeded;
        drops[Drop.ttlExceeded]++;
      } else {
        next[i] = Next.ip4Rewrite;
      }
    } else if (kind === NextHopKind.local) {
      next[i] = Next.punt;
      reason[i] = Punt.local;
      counters.punts[Punt.local]++;
    } else if (kind === NextHopKind.blackhole) {
      next[i] = Next.drop;
      reason[i] = Drop.blackholeRoute;
      drops[Drop.blackholeRoute]++;
    } else if (kind === NextHopKind.broadcast) {
      next[i] = Next.drop;
      reason[i] = Drop.directedBroadcast;
      drops[Drop.directedBroadcast]++;
    } else {
      // NO_ROUTE (0), an unreachable route, or a freed slot a stale leaf still names.
      const why = kind === NextHopKind.unreachable ? Drop.unreachableRoute : Drop.noRoute;
      next[i] = Next.icmpError;
      reason[i] = why;
      drops[why]++;
    }
  }
}
