// The forwarding path, frame in, frame out: byte-exact expected frames
// (checksums included), every malformed frame dropped with its reason
// counted, ICMP errors checked byte by byte. Expected checksums come from the
// test's own reference (test/reference-checksum.ts), never from the
// src/packet/checksum.ts the router uses.

import { describe, expect, it } from 'vitest';
import { Drop, DROP_NAMES, IcmpCounter, PortCounter, Punt } from '../../src/dataplane/counters.js';
import { arpFrame, icmpEcho, ipv4Frame, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import { articleRouter, LAN0, MAC, UP0 } from '../fixtures/article-router.js';
import { referenceChecksum } from '../reference-checksum.js';
import { parsePrefix } from '../../src/util/ipv4.js';

const fromClient = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({
  dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: '192.168.1.33', ttl: 64, ...over,
});

/** The frame ipv4Frame builds, with its IPv4 header checksum from the reference. */
function expectedFrame(spec: Ipv4Spec): Buffer {
  const frame = ipv4Frame({ ...spec, checksum: 0 });
  const headerEnd = 14 + (frame[14] & 0x0f) * 4;
  frame.writeUInt16BE(referenceChecksum(frame.subarray(14, headerEnd)), 24);
  return frame;
}

function resolved() {
  const r = articleRouter();
  r.resolveAll();
  return r;
}

describe('forwarding', () => {
  const cases: { name: string; in: Ipv4Spec; out: Partial<Ipv4Spec>; port: 'lan0' | 'up0' }[] = [
    { name: 'VIP .33 goes to web1', in: fromClient(), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0' },
    { name: 'VIP .65 goes to web2', in: fromClient({ dst: '192.168.1.65' }), out: { dstMac: MAC.web2, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0' },
    { name: 'VIP .97 goes to web3', in: fromClient({ dst: '192.168.1.97' }), out: { dstMac: MAC.web3, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0' },
    { name: 'VIP .129 goes to web4', in: fromClient({ dst: '192.168.1.129' }), out: { dstMac: MAC.web4, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0' },
    { name: 'last address of a /27', in: fromClient({ dst: '192.168.1.63' }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0' },
    { name: 'TTL 2 leaves with TTL 1', in: fromClient({ ttl: 2 }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 1 }, port: 'lan0' },
    { name: 'TTL 255', in: fromClient({ ttl: 255 }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 254 }, port: 'lan0' },
    {
      name: 'return traffic to the default route',
      in: { dstMac: MAC.lan0, srcMac: MAC.web1, src: '192.168.1.33', dst: '203.0.113.7', ttl: 64 },
      out: { dstMac: MAC.client, srcMac: MAC.up0, ttl: 63 }, port: 'up0',
    },
    {
      name: 'IP options are forwarded untouched',
      in: fromClient({ options: [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00] }),
      out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0',
    },
    {
      name: 'a first fragment (MF) is forwarded untouched',
      in: fromClient({ fragment: 0x2000, id: 0x4242 }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0',
    },
    {
      name: 'a later fragment is forwarded untouched',
      in: fromClient({ fragment: 185, id: 0x4242 }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0',
    },
    {
      name: 'DSCP, ID and DF survive',
      in: fromClient({ tos: 0xb8, id: 0xbeef, fragment: 0x4000 }), out: { dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 }, port: 'lan0',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = resolved();
      r.receive(c.port === 'lan0' ? UP0 : LAN0, ipv4Frame(c.in));
      const expected = expectedFrame({ ...c.in, ...c.out });
      const out = c.port === 'lan0' ? r.lan0.take() : r.up0.take();
      expect(out).toHaveLength(1);
      expect(out[0].toString('hex')).toBe(expected.toString('hex'));
      expect(referenceChecksum(out[0].subarray(14, 14 + 20 + (c.in.options?.length ?? 0)))).toBe(0);
      expect(r.router.counters.drops.every((d) => d === 0)).toBe(true);
    });
  }

  it('Ethernet padding is not forwarded', () => {
    const r = resolved();
    const frame = ipv4Frame(fromClient({ payload: icmpEcho(1, 1, 0) }));
    const padded = Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
    r.receive(UP0, padded);
    const [out] = r.lan0.take();
    expect(out.length).toBe(frame.length);
  });

  it('RFC 1624 edge: a header whose new checksum is 0x0000 is not written as 0xffff', () => {
    // Search for a header that needs checksum 0 after TTL - 1, then forward it.
    for (let id = 0; id < 0x10000; id++) {
      if (expectedFrame(fromClient({ id, ttl: 63 })).readUInt16BE(24) !== 0) continue;
      const r = resolved();
      r.receive(UP0, ipv4Frame(fromClient({ id, ttl: 64 })));
      const [out] = r.lan0.take();
      expect(out.readUInt16BE(24)).toBe(0);
      expect(out.toString('hex')).toBe(expectedFrame(fromClient({ id, ttl: 63, dstMac: MAC.web1, srcMac: MAC.lan0 })).toString('hex'));
      return;
    }
    throw new Error('no id gives a zero checksum');
  });

  it('a batch of many frames keeps their order per egress port', () => {
    const r = resolved();
    const frames = Array.from({ length: 40 }, (_, k) => ipv4Frame(fromClient({ id: k, dst: k % 2 ? '192.168.1.65' : '192.168.1.33' })));
    r.receive(UP0, ...frames);
    const out = r.lan0.take();
    expect(out.map((f) => f.readUInt16BE(18))).toEqual(Array.from({ length: 40 }, (_, k) => k));
  });
});

describe('malformed frames are dropped and counted by reason', () => {
  const good = ipv4Frame(fromClient());
  const cases: { name: string; frame: Buffer; reason: Drop }[] = [
    { name: 'shorter than an Ethernet header', frame: good.subarray(0, 10), reason: Drop.truncated },
    { name: 'shorter than an IPv4 header', frame: good.subarray(0, 30), reason: Drop.truncated },
    { name: 'IP version 6 in an IPv4 frame', frame: ipv4Frame(fromClient({ version: 6 })), reason: Drop.badVersion },
    { name: 'IP version 5', frame: ipv4Frame(fromClient({ version: 5 })), reason: Drop.badVersion },
    { name: 'header length 4 words', frame: ipv4Frame(fromClient({ ihl: 4 })), reason: Drop.badHeaderLength },
    { name: 'header length 0', frame: ipv4Frame(fromClient({ ihl: 0 })), reason: Drop.badHeaderLength },
    { name: 'header longer than the frame', frame: ipv4Frame(fromClient({ ihl: 15, payload: [] , totalLength: 20, protocol: 17 })), reason: Drop.truncated },
    { name: 'total length larger than the frame', frame: ipv4Frame(fromClient({ totalLength: 1000 })), reason: Drop.badTotalLength },
    { name: 'total length smaller than the header', frame: ipv4Frame(fromClient({ totalLength: 16 })), reason: Drop.badTotalLength },
    { name: 'bad header checksum', frame: ipv4Frame(fromClient({ checksum: 0x1234 })), reason: Drop.badChecksum },
    { name: 'source 0.0.0.0/8', frame: ipv4Frame(fromClient({ src: '0.1.2.3' })), reason: Drop.martianSource },
    { name: 'source 127/8', frame: ipv4Frame(fromClient({ src: '127.0.0.1' })), reason: Drop.martianSource },
    { name: 'multicast source', frame: ipv4Frame(fromClient({ src: '224.0.0.5' })), reason: Drop.martianSource },
    { name: 'limited broadcast source', frame: ipv4Frame(fromClient({ src: '255.255.255.255' })), reason: Drop.martianSource },
    { name: 'class E source', frame: ipv4Frame(fromClient({ src: '240.0.0.1' })), reason: Drop.martianSource },
    { name: 'destination 0/8', frame: ipv4Frame(fromClient({ dst: '0.0.0.1' })), reason: Drop.martianDestination },
    { name: 'destination 127/8', frame: ipv4Frame(fromClient({ dst: '127.0.0.1' })), reason: Drop.martianDestination },
    { name: 'class E destination', frame: ipv4Frame(fromClient({ dst: '250.1.1.1' })), reason: Drop.martianDestination },
    { name: 'limited broadcast destination to our MAC', frame: ipv4Frame(fromClient({ dst: '255.255.255.255' })), reason: Drop.martianDestination },
    { name: 'multicast destination to our MAC', frame: ipv4Frame(fromClient({ dst: '239.1.1.1' })), reason: Drop.martianDestination },
    { name: 'link-layer broadcast', frame: ipv4Frame(fromClient({ dstMac: 'ff:ff:ff:ff:ff:ff' })), reason: Drop.linkBroadcast },
    { name: 'link-layer multicast', frame: ipv4Frame(fromClient({ dstMac: '01:00:5e:01:01:01', dst: '239.1.1.1' })), reason: Drop.linkBroadcast },
    { name: 'directed broadcast to a connected subnet', frame: ipv4Frame(fromClient({ dst: '192.168.1.31' })), reason: Drop.directedBroadcast },
    { name: 'blackhole route', frame: ipv4Frame(fromClient({ dst: '198.51.100.9' })), reason: Drop.blackholeRoute },
  ];
  for (const c of cases) {
    it(`${c.name}: ${DROP_NAMES[c.reason]}`, () => {
      const r = resolved();
      r.receive(UP0, c.frame);
      expect(r.lan0.take()).toHaveLength(0);
      expect(r.up0.take()).toHaveLength(0); // no ICMP for any of these
      const drops = Array.from(r.router.counters.drops);
      const expected = new Array(drops.length).fill(0);
      expected[c.reason] = 1;
      expect(drops).toEqual(expected);
    });
  }
});

describe('frames that stay with the kernel', () => {
  it('frames to the router itself are left to the kernel, even with TTL 1', () => {
    const r = resolved();
    r.receive(UP0, ipv4Frame(fromClient({ dst: '10.0.0.1', ttl: 1 })), ipv4Frame(fromClient({ dst: '192.168.1.1' })));
    expect(r.lan0.take()).toHaveLength(0);
    expect(r.up0.take()).toHaveLength(0);
    expect(r.router.counters.punts[Punt.local]).toBe(2);
  });
  it('unicast frames for another MAC, and non-IPv4 frames, are ignored', () => {
    const r = resolved();
    const other = ipv4Frame(fromClient({ dstMac: '02:00:00:00:00:99' }));
    const ipv6 = Buffer.from(ipv4Frame(fromClient()));
    ipv6.writeUInt16BE(0x86dd, 12);
    r.receive(UP0, other, ipv6);
    expect(r.lan0.take()).toHaveLength(0);
    expect(r.router.counters.punts[Punt.otherHost]).toBe(1);
    expect(r.router.counters.punts[Punt.notIpv4]).toBe(1);
  });
});

/** The expected ICMP error frame, built independently of src/packet/icmp.ts and src/packet/checksum.ts. */
function expectedIcmp(offending: Buffer, type: number, code: number, from: string, toMac: string, fromMac: string, rest = 0): string {
  const ihl = (offending[14] & 0x0f) * 4;
  const quote = offending.subarray(14, 14 + ihl + 8);
  const icmp = Buffer.alloc(8 + quote.length);
  icmp[0] = type;
  icmp[1] = code;
  icmp.writeUInt32BE(rest, 4);
  quote.copy(icmp, 8);
  icmp.writeUInt16BE(referenceChecksum(icmp), 2);
  const src = `${offending[26]}.${offending[27]}.${offending[28]}.${offending[29]}`;
  const frame = expectedFrame({
    dstMac: toMac, srcMac: fromMac, src: from, dst: src, ttl: 64, tos: 0xc0, protocol: 1, payload: icmp, id: 1,
  });
  return frame.toString('hex');
}

describe('ICMP errors', () => {
  it('TTL 1: Time Exceeded to the source, quoting the header plus 8 bytes', () => {
    const r = resolved();
    const offending = ipv4Frame(fromClient({ ttl: 1, payload: udpPayload(100), protocol: 17 }));
    r.receive(UP0, offending);
    expect(r.lan0.take()).toHaveLength(0);
    const [error] = r.up0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(offending, 11, 0, '10.0.0.1', MAC.client, MAC.up0));
    expect(r.router.counters.drops[Drop.ttlExceeded]).toBe(1);
    expect(r.router.counters.icmp[IcmpCounter.timeExceeded]).toBe(1);
  });

  it('TTL 0 too', () => {
    const r = resolved();
    r.receive(UP0, ipv4Frame(fromClient({ ttl: 0 })));
    expect(r.up0.take()).toHaveLength(1);
  });

  it('quotes IP options with the header', () => {
    const r = resolved();
    const offending = ipv4Frame(fromClient({ ttl: 1, options: [1, 1, 1, 0], payload: udpPayload(40), protocol: 17 }));
    r.receive(UP0, offending);
    const [error] = r.up0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(offending, 11, 0, '10.0.0.1', MAC.client, MAC.up0));
  });

  it('unrouted (unreachable route): Destination Unreachable (net)', () => {
    const r = resolved();
    const offending = ipv4Frame(fromClient({ dst: '192.168.1.200', payload: icmpEcho(7, 9, 56) }));
    r.receive(UP0, offending);
    const [error] = r.up0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(offending, 3, 0, '10.0.0.1', MAC.client, MAC.up0));
    expect(r.router.counters.drops[Drop.unreachableRoute]).toBe(1);
  });

  it('no route at all: Destination Unreachable (net)', () => {
    const r = articleRouter({ routes: [] });
    r.up0.take();
    const offending = ipv4Frame(fromClient({ dst: '203.0.113.1' }));
    r.receive(UP0, offending);
    const [error] = r.up0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(offending, 3, 0, '10.0.0.1', MAC.client, MAC.up0));
    expect(r.router.counters.drops[Drop.noRoute]).toBe(1);
  });

  it('from the web side, the error leaves from the lan0 address', () => {
    const r = resolved();
    const offending = ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web2, src: '192.168.1.65', dst: '10.0.0.2', ttl: 1 });
    r.receive(LAN0, offending);
    const [error] = r.lan0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(offending, 11, 0, '192.168.1.1', MAC.web2, MAC.lan0));
  });

  it('DF and larger than the egress MTU: fragmentation needed with the MTU', () => {
    const r = resolved();
    const big = ipv4Frame(fromClient({ fragment: 0x4000, payload: udpPayload(1500 - 28 + 8), protocol: 17 }));
    r.receive(UP0, big);
    expect(r.lan0.take()).toHaveLength(0);
    const [error] = r.up0.take();
    expect(error.toString('hex')).toBe(expectedIcmp(big, 3, 4, '10.0.0.1', MAC.client, MAC.up0, 1500));
  });

  it('no DF and larger than the egress MTU: fragmented, no ICMP (the details are in fragmentation.test.ts)', () => {
    const r = resolved();
    r.receive(UP0, ipv4Frame(fromClient({ payload: udpPayload(1500), protocol: 17 })));
    expect(r.lan0.take()).toHaveLength(2);
    expect(r.up0.take()).toHaveLength(0);
    expect(r.router.counters.drops[Drop.mtuExceeded]).toBe(0);
  });

  const silent: { name: string; frame: Buffer }[] = [
    { name: 'an ICMP error (dest unreachable)', frame: ipv4Frame(fromClient({ ttl: 1, payload: icmpEcho(1, 1, 28, 3) })) },
    { name: 'an ICMP error (time exceeded)', frame: ipv4Frame(fromClient({ dst: '192.168.1.200', payload: icmpEcho(1, 1, 28, 11) })) },
    { name: 'a fragment other than the first', frame: ipv4Frame(fromClient({ ttl: 1, fragment: 185 })) },
    { name: 'a link-layer broadcast', frame: ipv4Frame(fromClient({ ttl: 1, dstMac: 'ff:ff:ff:ff:ff:ff' })) },
    { name: 'a multicast destination', frame: ipv4Frame(fromClient({ ttl: 1, dst: '224.0.0.9' })) },
  ];
  for (const c of silent) {
    it(`never about ${c.name}`, () => {
      const r = resolved();
      r.receive(UP0, c.frame);
      expect(r.up0.take()).toHaveLength(0);
      expect(r.lan0.take()).toHaveLength(0);
    });
  }

  it('an echo request with TTL 1 does get Time Exceeded (it is not an error)', () => {
    const r = resolved();
    r.receive(UP0, ipv4Frame(fromClient({ ttl: 1, payload: icmpEcho() })));
    expect(r.up0.take()).toHaveLength(1);
  });

  it('are rate limited by a token bucket', () => {
    const r = articleRouter({ icmp: { ratePerSecond: 1, burst: 5, perDestination: { ratePerSecond: 1, burst: 50, maxDestinations: 16 } } });
    r.resolveAll();
    const frames = Array.from({ length: 20 }, (_, k) => ipv4Frame(fromClient({ ttl: 1, id: k })));
    r.receive(UP0, ...frames);
    expect(r.up0.take()).toHaveLength(5);
    expect(r.router.counters.icmp[IcmpCounter.rateLimited]).toBe(15);
    expect(r.router.counters.drops[Drop.ttlExceeded]).toBe(20);
  });
});

describe('neighbours', () => {
  it('asks for every gateway at start, broadcast, from the right port address', () => {
    const r = articleRouter();
    const requests = r.lan0.take();
    expect(requests.map((f) => f.subarray(38, 42).join('.'))).toEqual(['192.168.1.2', '192.168.1.3', '192.168.1.4', '192.168.1.5']);
    const expected = arpFrame({
      operation: 'request', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: MAC.lan0, senderMac: MAC.lan0,
      senderAddress: '192.168.1.1', targetAddress: '192.168.1.2',
    });
    expect(requests[0].toString('hex')).toBe(expected.toString('hex'));
    expect(r.up0.take().map((f) => f.subarray(38, 42).join('.'))).toEqual(['10.0.0.254']);
  });

  it('holds frames for an unresolved next hop and sends them when the reply comes, in order', () => {
    const r = articleRouter();
    r.lan0.take();
    const frames = [1, 2, 3].map((id) => ipv4Frame(fromClient({ id })));
    r.receive(UP0, ...frames);
    expect(r.lan0.take()).toHaveLength(0);
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web1, senderMac: MAC.web1, senderAddress: '192.168.1.2',
      targetMac: MAC.lan0, targetAddress: '192.168.1.1',
    }));
    const out = r.lan0.take();
    expect(out.map((f) => f.toString('hex'))).toEqual(
      [1, 2, 3].map((id) => ipv4Frame(fromClient({ id, dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 })).toString('hex')),
    );
  });

  it('held frames come back through the stages: counted in their next hop and its port like any forwarded frame', () => {
    const r = articleRouter();
    r.lan0.take();
    const frames = [1, 2, 3].map((id) => ipv4Frame(fromClient({ id })));
    r.receive(UP0, ...frames);
    const { nextHops } = r.router.tables;
    const slot = r.router.rib.route(parsePrefix('192.168.1.32/27'))!.nextHop;
    expect(nextHops.packetsOf(slot)).toBe(0);
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web1, senderMac: MAC.web1, senderAddress: '192.168.1.2',
      targetMac: MAC.lan0, targetAddress: '192.168.1.1',
    }));
    expect(r.lan0.take()).toHaveLength(3);
    expect(nextHops.packetsOf(slot)).toBe(3);
    expect(nextHops.bytesOf(slot)).toBe(frames.reduce((sum, f) => sum + f.length, 0));
    expect(r.router.counters.port(LAN0, PortCounter.forwardedPackets)).toBe(3);
    expect(r.router.counters.port(UP0, PortCounter.rxPackets)).toBe(3); // received once, not again when they came back
  });

  it('the hold queue is bounded: extra frames are dropped and counted', () => {
    const r = articleRouter(); // queueLength 4
    r.receive(UP0, ...Array.from({ length: 10 }, (_, id) => ipv4Frame(fromClient({ id }))));
    expect(r.router.counters.drops[Drop.holdQueueFull]).toBe(6);
  });

  it('a next hop that never answers: ICMP host unreachable for each held frame after the probes', () => {
    const r = articleRouter();
    r.up0.take();
    r.lan0.take();
    const offending = ipv4Frame(fromClient({ payload: icmpEcho(3, 3, 8) }));
    r.receive(UP0, offending);
    const start = performance.now();
    r.router.resolver.tick(start + 1001);
    r.router.resolver.tick(start + 2002);
    expect(r.lan0.take().filter((f) => f.readUInt16BE(12) === 0x0806).length).toBeGreaterThanOrEqual(2); // re-asked
    expect(r.up0.take().filter((f) => f.readUInt16BE(12) === 0x0800)).toHaveLength(0);
    r.router.resolver.tick(start + 3003);
    const errors = r.up0.take().filter((f) => f.readUInt16BE(12) === 0x0800);
    expect(errors.map((e) => e.toString('hex'))).toEqual([expectedIcmp(offending, 3, 1, '10.0.0.1', MAC.client, MAC.up0)]);
    expect(r.router.counters.drops[Drop.neighborUnreachable]).toBe(1);
    expect(r.router.resolver.stateOf(0xc0a80102)).toBe('failed');
  });

  it('learns a connected host from a request that names us, and forwards to it without asking', () => {
    const r = resolved();
    r.receive(UP0, arpFrame({
      operation: 'request', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: MAC.client, senderMac: MAC.client,
      senderAddress: '10.0.0.2', targetAddress: '10.0.0.1',
    }));
    r.receive(LAN0, ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web1, src: '192.168.1.33', dst: '10.0.0.2' }));
    const [out] = r.up0.take();
    expect(out.toString('hex')).toBe(
      ipv4Frame({ dstMac: MAC.client, srcMac: MAC.up0, src: '192.168.1.33', dst: '10.0.0.2', ttl: 63 }).toString('hex'),
    );
  });

  it('does not learn from requests for other hosts or from off-subnet senders', () => {
    const r = resolved();
    r.receive(UP0, arpFrame({
      operation: 'request', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: MAC.client, senderMac: MAC.client,
      senderAddress: '10.0.0.3', targetAddress: '10.0.0.9',
    }));
    r.receive(UP0, arpFrame({
      operation: 'request', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: MAC.client, senderMac: MAC.client,
      senderAddress: '172.16.0.3', targetAddress: '10.0.0.1',
    }));
    expect(r.router.resolver.stateOf(0x0a000003)).toBeUndefined();
    expect(r.router.resolver.stateOf(0xac100003)).toBeUndefined();
  });

  it('a connected destination is resolved on demand (ARP for the host itself)', () => {
    const r = resolved();
    r.receive(LAN0, ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web1, src: '192.168.1.33', dst: '10.0.0.7' }));
    const [request] = r.up0.take();
    expect(request.readUInt16BE(12)).toBe(0x0806);
    expect(request.subarray(38, 42).join('.')).toBe('10.0.0.7');
    expect(r.router.resolver.stateOf(0x0a000007)).toBe('incomplete');
  });

  it('refreshes an entry after reachableMs with a unicast request and keeps forwarding meanwhile', () => {
    const r = resolved();
    r.router.resolver.tick(performance.now() + 31_000);
    const refresh = r.lan0.take().filter((f) => f.readUInt16BE(12) === 0x0806);
    expect(refresh.length).toBe(4);
    expect(refresh[0].subarray(0, 6).toString('hex')).toBe(MAC.web1.replace(/:/g, ''));
    expect(r.router.resolver.stateOf(0xc0a80102)).toBe('stale');
    r.receive(UP0, ipv4Frame(fromClient()));
    expect(r.lan0.take()).toHaveLength(1);
  });

  it('a MAC change is learned from the reply', () => {
    const r = resolved();
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: '02:00:00:01:00:99', senderMac: '02:00:00:01:00:99',
      senderAddress: '192.168.1.2', targetMac: MAC.lan0, targetAddress: '192.168.1.1',
    }));
    r.receive(UP0, ipv4Frame(fromClient()));
    const [out] = r.lan0.take();
    expect(out.subarray(0, 6).toString('hex')).toBe('020000010099');
  });
});
