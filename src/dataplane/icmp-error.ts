// icmp-error: the slow-path node that answers a frame with an ICMP error.
//
// Uses:  the offending frame (unmodified: errors are decided before rewrite),
//        its ingress port; ports (MAC, addresses, read at each error: they
//        change at runtime)
// Sets:  a scratch frame, sent on the ingress port to the frame's previous hop
// Next:  nothing: the offending frame is dropped by the caller
//
// Rate limited twice, as Linux does it (net/ipv4/icmp.c):
//   - per destination: a token bucket per host the errors go to
//     (icmp_ratelimit: burst 6, then 1 a second), so one host flooding TTL-1
//     packets gets a handful of Time Exceeded and the others still get theirs.
//     Fragmentation Needed is exempt, as in Linux ("don't limit PMTU
//     discovery"): a sender that never hears it black-holes its connection.
//   - globally: one token bucket for all errors (icmp_msgs_per_sec / burst,
//     same defaults), so a flood of TTL-1 or unroutable frames from many
//     sources costs at most `rate` small sends a second.
// The global bucket is only looked at before the per-destination one and
// charged after it, as Linux does since 2024 ("icmp: change the order of rate
// limits"): an error the global bucket refuses costs the destination nothing.

import { ICMP_ERROR_MAX_FRAME, icmpErrorAllowed, writeIcmpError } from '../packet/icmp.js';
import {
  ICMP_DEST_UNREACHABLE, ICMP_TIME_EXCEEDED, ICMP_TIMXCEED_INTRANS, ICMP_UNREACH_HOST, ICMP_UNREACH_NEEDFRAG, ICMP_UNREACH_NET, IP_SRC,
} from '../packet/layout.js';
import type { Clock } from './clock.js';
import { IcmpCounter, type Counters } from './counters.js';
import { DestinationRateLimiter, type DestinationLimits } from './destination-rate-limit.js';
import { IcmpError } from './next.js';
import type { PortTable, TxPort } from './ports.js';

export interface IcmpLimits {
  ratePerSecond: number;
  burst: number;
  perDestination: DestinationLimits;
}

const TYPE_CODE: readonly (readonly [number, number, IcmpCounter])[] = [
  [ICMP_TIME_EXCEEDED, ICMP_TIMXCEED_INTRANS, IcmpCounter.timeExceeded],
  [ICMP_DEST_UNREACHABLE, ICMP_UNREACH_NET, IcmpCounter.netUnreachable],
  [ICMP_DEST_UNREACHABLE, ICMP_UNREACH_HOST, IcmpCounter.hostUnreachable],
  [ICMP_DEST_UNREACHABLE, ICMP_UNREACH_NEEDFRAG, IcmpCounter.fragmentationNeeded],
];

export class IcmpErrorSender {
  private readonly scratch = Buffer.alloc(ICMP_ERROR_MAX_FRAME);
  private tokens: number;
  private lastRefill: number;
  private readonly perDestination: DestinationRateLimiter;
  private ipId = 0;

  constructor(
    private readonly ports: PortTable,
    private readonly txPorts: readonly TxPort[],
    private readonly counters: Counters,
    private readonly limits: IcmpLimits,
    private readonly clock: Clock,
  ) {
    this.tokens = limits.burst;
    this.lastRefill = clock();
    this.perDestination = new DestinationRateLimiter(limits.perDestination);
  }

  /** Answers the frame at `frame[offset..offset+length)`, received on `port`, with error `kind`. */
  send(frame: Uint8Array, offset: number, length: number, port: number, kind: IcmpError, rest = 0): boolean {
    if (!icmpErrorAllowed(frame, offset, length)) return false;
    const now = this.clock();
    this.refill(now);
    if (this.tokens < 1) {
      this.counters.icmp[IcmpCounter.rateLimited]++;
      return false;
    }
    const s = offset + IP_SRC;
    const source = ((frame[s] << 24) | (frame[s + 1] << 16) | (frame[s + 2] << 8) | frame[s + 3]) >>> 0;
    if (kind !== IcmpError.fragmentationNeeded && !this.perDestination.allow(source, now)) {
      this.counters.icmp[IcmpCounter.rateLimitedPerDestination]++;
      return false;
    }
    this.tokens -= 1;
    const [type, code, counter] = TYPE_CODE[kind];
    const from = this.ports.sourceAddressFor(port, source);
    this.ipId = (this.ipId + 1) & 0xffff;
    const written = writeIcmpError(
      this.scratch, 0, frame, offset, length, type, code, rest, this.ports.macOf(port), from, this.ipId,
    );
    this.counters.icmp[counter]++;
    return this.txPorts[port].sendFrame(this.scratch, written);
  }

  private refill(now: number): void {
    const elapsed = now - this.lastRefill;
    if (elapsed <= 0) return;
    this.lastRefill = now;
    this.tokens = Math.min(this.limits.burst, this.tokens + (elapsed * this.limits.ratePerSecond) / 1000);
  }
}
