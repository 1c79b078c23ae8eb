// icmp-error: the slow-path node that answers a frame with an ICMP error.
//
// Uses:  the offending frame (unmodified: errors are decided before rewrite),
//        its ingress port; ports (MAC, addresses)
// Sets:  a scratch frame, sent on the ingress port to the frame's previous hop
// Next:  nothing: the offending frame is dropped by the caller
//
// Rate limited by one token bucket (Linux's icmp_msgs_per_sec / burst, same
// defaults), so a flood of TTL-1 or unroutable frames costs at most `rate`
// small sends a second.

import { ICMP_ERROR_MAX_FRAME, icmpErrorAllowed, writeIcmpError } from '../packet/icmp.js';
import {
  ICMP_DEST_UNREACHABLE, ICMP_TIME_EXCEEDED, ICMP_TIMXCEED_INTRANS, ICMP_UNREACH_HOST, ICMP_UNREACH_NEEDFRAG, ICMP_UNREACH_NET, IP_SRC,
} from '../packet/layout.js';
import { IcmpCounter, type Counters } from './counters.js';
import { IcmpError } from './next.js';
import type { PortTable, TxPort } from './ports.js';

export interface IcmpLimits {
  ratePerSecond: number;
  burst: number;
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
  private lastRefill = performance.now();
  private ipId = 0;

  constructor(
    private readonly ports: PortTable,
    private readonly txPorts: readonly TxPort[],
    private readonly counters: Counters,
    private readonly limits: IcmpLimits,
  ) {
    this.tokens = limits.burst;
  }

  /** Answers the frame at `frame[offset..offset+length)`, received on `port`, with error `kind`. */
  send(frame: Uint8Array, offset: number, length: number, port: number, kind: IcmpError, rest = 0): boolean {
    if (!icmpErrorAllowed(frame, offset, length)) return false;
    if (!this.takeToken()) {
      this.counters.icmp[IcmpCounter.rateLimited]++;
      return false;
    }
    const [type, code, counter] = TYPE_CODE[kind];
    const s = offset + IP_SRC;
    const source = ((frame[s] << 24) | (frame[s + 1] << 16) | (frame[s + 2] << 8) | frame[s + 3]) >>> 0;
    const from = this.ports.sourceAddressFor(port, source);
    this.ipId = (this.ipId + 1) & 0xffff;
    const written = writeIcmpError(
      this.scratch, 0, frame, offset, length, type, code, rest, this.ports.macOf(port), from, this.ipId,
    );
    this.counters.icmp[counter]++;
    return this.txPorts[port].sendFrame(this.scratch, written);
  }

  private takeToken(): boolean {
    const now = performance.now();
    const elapsed = now - this.lastRefill;
    this.lastRefill = now;
    this.tokens = Math.min(this.limits.burst, this.tokens + (elapsed * this.limits.ratePerSecond) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
