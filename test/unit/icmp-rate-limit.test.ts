// ICMP errors are rate limited twice, as Linux does it: a token bucket per
// destination (the host the error goes to: burst 6, then 1 a second, like
// icmp_ratelimit and XRLIM_BURST_FACTOR), inside the global bucket
// (icmp_msgs_per_sec / icmp_msgs_burst). One host flooding TTL-1 packets gets
// a handful of Time Exceeded; every other host still gets its own.

import { describe, expect, it } from 'vitest';
import { IcmpCounter } from '../../src/dataplane/counters.js';
import { DestinationRateLimiter } from '../../src/dataplane/destination-rate-limit.js';
import { ipv4Frame, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import { articleRouter, MAC, UP0 } from '../fixtures/article-router.js';
import type { RouterConfig } from '../../src/router/router.js';

const fromClient = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({
  dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: '192.168.1.33', ttl: 1, ...over,
});

/** A clock the test moves by hand (ms). */
function manualClock(start = 1_000) {
  const clock = { now: start, read: () => clock.now, advance: (ms: number) => (clock.now += ms) };
  return clock;
}

function router(overrides: Partial<RouterConfig> = {}) {
  const clock = manualClock();
  const r = articleRouter(overrides, { clock: clock.read });
  r.resolveAll();
  return { ...r, clock };
}

/** The ICMP errors among the frames sent on up0, as [type, code, destination]. */
function errors(frames: Buffer[]): [number, number, string][] {
  return frames
    .filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1)
    .map((f) => [f[34], f[35], f.subarray(30, 34).join('.')]);
}

describe('ICMP errors are limited per destination', () => {
  it('500 TTL-1 packets from one host in half a second draw 6 Time Exceeded; another host still gets its own', () => {
    const r = router();
    for (let k = 0; k < 500; k++) {
      r.clock.advance(1);
      r.receive(UP0, ipv4Frame(fromClient({ id: k })));
    }
    const sent = errors(r.up0.take());
    expect(sent).toEqual(new Array(6).fill([11, 0, '10.0.0.2']));
    expect(r.router.counters.icmp[IcmpCounter.timeExceeded]).toBe(6);
    expect(r.router.counters.icmp[IcmpCounter.rateLimitedPerDestination]).toBe(494);
    expect(r.router.counters.icmp[IcmpCounter.rateLimited]).toBe(0);

    r.receive(UP0, ipv4Frame(fromClient({ src: '10.0.0.3', id: 1 })));
    expect(errors(r.up0.take())).toEqual([[11, 0, '10.0.0.3']]);
  });

  it('after the burst, one error a second', () => {
    const r = router();
    for (let k = 0; k < 6; k++) r.receive(UP0, ipv4Frame(fromClient({ id: k })));
    expect(errors(r.up0.take())).toHaveLength(6);
    r.clock.advance(999);
    r.receive(UP0, ipv4Frame(fromClient({ id: 7 })));
    expect(errors(r.up0.take())).toHaveLength(0);
    r.clock.advance(1);
    r.receive(UP0, ipv4Frame(fromClient({ id: 8 })), ipv4Frame(fromClient({ id: 9 })));
    expect(errors(r.up0.take())).toHaveLength(1);
    // A quiet host's bucket fills up again, to the burst and no further.
    r.clock.advance(60_000);
    r.receive(UP0, ...Array.from({ length: 10 }, (_, id) => ipv4Frame(fromClient({ id }))));
    expect(errors(r.up0.take())).toHaveLength(6);
  });

  it('burst and rate come from the config', () => {
    const r = router({ icmp: { ratePerSecond: 1000, burst: 50, perDestination: { burst: 2, ratePerSecond: 10, maxDestinations: 16 } } });
    r.receive(UP0, ...Array.from({ length: 10 }, (_, id) => ipv4Frame(fromClient({ id }))));
    expect(errors(r.up0.take())).toHaveLength(2);
    r.clock.advance(100);
    r.receive(UP0, ...Array.from({ length: 10 }, (_, id) => ipv4Frame(fromClient({ id }))));
    expect(errors(r.up0.take())).toHaveLength(1);
  });

  it('Destination Unreachable counts against the same bucket as Time Exceeded', () => {
    const r = router();
    r.receive(UP0, ...Array.from({ length: 4 }, (_, id) => ipv4Frame(fromClient({ id }))));
    r.receive(UP0, ...Array.from({ length: 4 }, (_, id) => ipv4Frame(fromClient({ id, ttl: 64, dst: '192.168.1.200' }))));
    expect(errors(r.up0.take())).toEqual([
      ...new Array(4).fill([11, 0, '10.0.0.2']),
      ...new Array(2).fill([3, 0, '10.0.0.2']),
    ]);
  });

  it('Fragmentation Needed is not limited per destination (Linux: "don\'t limit PMTU discovery"), only globally', () => {
    const r = router();
    const big = (id: number) => ipv4Frame(fromClient({ id, ttl: 64, fragment: 0x4000, payload: udpPayload(1500), protocol: 17 }));
    r.receive(UP0, ...Array.from({ length: 20 }, (_, id) => big(id)));
    expect(errors(r.up0.take())).toEqual(new Array(20).fill([3, 4, '10.0.0.2']));
  });

  it('the global bucket still bounds all destinations together, and a globally refused error costs no destination token', () => {
    const r = router({ icmp: { ratePerSecond: 1, burst: 3, perDestination: { burst: 1, ratePerSecond: 1, maxDestinations: 64 } } });
    r.receive(UP0, ...[2, 3, 4, 5, 6].map((host) => ipv4Frame(fromClient({ src: `10.0.0.${host}` }))));
    expect(errors(r.up0.take()).map(([, , to]) => to)).toEqual(['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    expect(r.router.counters.icmp[IcmpCounter.rateLimited]).toBe(2);
    expect(r.router.counters.icmp[IcmpCounter.rateLimitedPerDestination]).toBe(0);
    // .5 and .6 were refused by the global bucket: their own one token is still there.
    r.clock.advance(1_000);
    r.receive(UP0, ipv4Frame(fromClient({ src: '10.0.0.5' })));
    expect(errors(r.up0.take()).map(([, , to]) => to)).toEqual(['10.0.0.5']);
  });
});

describe('DestinationRateLimiter', () => {
  const A = 0x0a000002;
  const B = 0x0a000003;
  const C = 0x0a000004;

  it('a token bucket per address: burst, then the rate', () => {
    const limiter = new DestinationRateLimiter({ burst: 6, ratePerSecond: 1, maxDestinations: 8 });
    const allowed = (address: number, now: number, times: number) =>
      Array.from({ length: times }, () => limiter.allow(address, now)).filter(Boolean).length;
    expect(allowed(A, 0, 10)).toBe(6);
    expect(allowed(B, 0, 10)).toBe(6);
    expect(allowed(A, 500, 10)).toBe(0);
    expect(allowed(A, 1_000, 10)).toBe(1);
    expect(allowed(A, 3_500, 10)).toBe(2);
  });

  it('the table is bounded: the least recently used destination is forgotten first', () => {
    const limiter = new DestinationRateLimiter({ burst: 1, ratePerSecond: 1, maxDestinations: 2 });
    expect(limiter.allow(A, 0)).toBe(true);
    expect(limiter.allow(B, 0)).toBe(true);
    expect(limiter.allow(A, 0)).toBe(false); // A is now the most recently used
    expect(limiter.allow(C, 0)).toBe(true); // evicts B
    expect(limiter.size).toBe(2);
    expect(limiter.allow(A, 0)).toBe(false); // still remembered
    expect(limiter.allow(B, 0)).toBe(true); // forgotten: a fresh bucket (evicts C)
    expect(limiter.allow(C, 0)).toBe(true); // forgotten too (evicts A)
  });

  it('survives many more destinations than it holds, finding every one it still holds', () => {
    const limiter = new DestinationRateLimiter({ burst: 1, ratePerSecond: 1, maxDestinations: 64 });
    for (let k = 0; k < 10_000; k++) expect(limiter.allow(0x0a000000 + k, 0)).toBe(true);
    expect(limiter.size).toBe(64);
    for (let k = 10_000 - 64; k < 10_000; k++) expect(limiter.allow(0x0a000000 + k, 0)).toBe(false);
  });
});
