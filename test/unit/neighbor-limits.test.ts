// What the neighbour resolver refuses to do under hostile traffic: flood a
// big connected subnet with ARP requests (a token bucket per port, and one
// request per target per retransmit interval even when the table churns),
// and learn a neighbour that claims one of the router's own addresses, or a
// subnet's network or broadcast address.

import { describe, expect, it } from 'vitest';
import { ArpCounter, Drop } from '../../src/dataplane/counters.js';
import { Router, type RouterConfig } from '../../src/router/router.js';
import { MemoryPort } from '../../src/io/memory-port.js';
import { arpFrame, ipv4Frame } from '../../src/packet/builder.js';
import { parseAddress, parsePrefix } from '../../src/util/ipv4.js';
import { articleRouter, LAN0, MAC, UP0 } from '../fixtures/article-router.js';
import { mulberry32 } from '../fixtures/random.js';

const mac = (m: string) => Uint8Array.from(m.split(':').map((h) => parseInt(h, 16)));

/** up0 10.0.0.1/24 towards the clients, lan0 10.1.0.1/16: a big connected subnet; a gateway 10.1.0.2 for 172.16/12. */
function bigSubnetRouter(neighbors: Partial<RouterConfig['neighbors']> = {}) {
  const clock = { now: 1_000 };
  const up0 = new MemoryPort('up0');
  const lan0 = new MemoryPort('lan0');
  const router = new Router(
    [
      { name: 'up0', mac: mac(MAC.up0), mtu: 1500, addresses: [{ address: parseAddress('10.0.0.1'), length: 24 }] },
      { name: 'lan0', mac: mac(MAC.lan0), mtu: 1500, addresses: [{ address: parseAddress('10.1.0.1'), length: 16 }] },
    ],
    [up0, lan0],
    {
      routes: [
        { prefix: parsePrefix('172.16.0.0/12'), type: 'unicast', via: [{ address: parseAddress('10.1.0.2') }], sourceLine: 1 },
      ],
      neighbors: {
        reachableMs: 30_000, retransmitMs: 1_000, probes: 3, queueLength: 4, maxEntries: 4_096,
        requestsPerSecond: 100, requestBurst: 100, ...neighbors,
      },
      icmp: { ratePerSecond: 1_000, burst: 50, perDestination: { burst: 6, ratePerSecond: 1, maxDestinations: 4_096 } },
      dataplane: { batchSize: 64, workers: 0 },
    },
    {},
    undefined,
    () => clock.now,
  );
  const receive = (port: number, ...frames: Buffer[]) => {
    for (const frame of frames) {
      if (router.batch.count === router.batch.capacity) router.process();
      router.batch.push(port, frame, frame.length);
    }
    router.process();
  };
  // The gateway answers at once, so only the flood is left to count.
  receive(LAN0, arpFrame({
    operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web1, senderMac: MAC.web1, senderAddress: '10.1.0.2',
    targetMac: MAC.lan0, targetAddress: '10.1.0.1',
  }));
  lan0.take();
  up0.take();
  return { router, up0, lan0, receive, clock };
}

/** Targets of the ARP requests among `frames`. */
const requestTargets = (frames: Buffer[]) =>
  frames.filter((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 1).map((f) => f.subarray(38, 42).join('.'));

const toHost = (address: string, id = 1) =>
  ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: address, ttl: 64, id });

describe('ARP requests are rate limited', () => {
  it('traffic to 10,000 random hosts of a connected /16 in one second: at most burst + rate requests, the rest counted', () => {
    const r = bigSubnetRouter();
    const sentBefore = r.router.counters.arp[ArpCounter.requestsSent]; // the gateway's
    const random = mulberry32(9);
    const frames: Buffer[] = [];
    for (let k = 0; k < 10_000; k++) {
      const host = 2 + Math.floor(random() * 65_532);
      frames.push(toHost(`10.1.${host >> 8}.${host & 0xff}`, k));
    }
    for (let k = 0; k < frames.length; k += 64) {
      r.clock.now += 6.4; // 10,000 frames over one second
      r.receive(UP0, ...frames.slice(k, k + 64));
    }
    const requests = requestTargets(r.lan0.take());
    expect(requests.length).toBeGreaterThanOrEqual(100);
    expect(requests.length).toBeLessThanOrEqual(100 + 100);
    const counters = r.router.counters;
    expect(counters.arp[ArpCounter.requestsSent] - sentBefore).toBe(requests.length);
    expect(counters.arp[ArpCounter.requestsRateLimited]).toBeGreaterThan(0);
    // Hosts it could not ask for got no entry and no room in the shared hold pool.
    expect(counters.drops[Drop.arpRateLimited]).toBeGreaterThan(0);
    expect(r.router.resolver.heldFrames).toBeLessThanOrEqual(requests.length * 4); // queueLength 4 per host asked for
    expect(counters.snapshot(r.router.ports.names).arp.requestsRateLimited).toBe(counters.arp[ArpCounter.requestsRateLimited]);
  });

  it('each port has its own bucket: a flood on lan0 leaves up0 its requests', () => {
    const r = bigSubnetRouter();
    r.receive(UP0, ...Array.from({ length: 300 }, (_, k) => toHost(`10.1.1.${k % 250}`, k)));
    r.lan0.take();
    r.receive(LAN0, ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web1, src: '172.16.0.9', dst: '10.0.0.7', ttl: 64 }));
    expect(requestTargets(r.up0.take())).toEqual(['10.0.0.7']);
  });

  it('gateways are never starved: their refresh goes out while a flood has emptied the bucket', () => {
    const r = bigSubnetRouter();
    r.clock.now += 31_000;
    r.receive(UP0, ...Array.from({ length: 500 }, (_, k) => toHost(`10.1.${2 + (k >> 8)}.${k & 0xff}`, k)));
    r.lan0.take();
    r.router.resolver.tick(r.clock.now);
    const refresh = r.lan0.take().filter((f) => f.readUInt16BE(12) === 0x0806);
    expect(requestTargets(refresh)).toEqual(['10.1.0.2']);
    expect(refresh[0].subarray(0, 6).toString('hex')).toBe(MAC.web1.replace(/:/g, '')); // unicast refresh
  });

  it('one request per target per retransmit interval, even when the table is full and churns', () => {
    // No bucket to speak of: only the per-target rule is left.
    const r = bigSubnetRouter({ maxEntries: 64, requestsPerSecond: 1_000_000, requestBurst: 1_000_000 });
    const hosts = Array.from({ length: 200 }, (_, k) => `10.1.2.${k}`);
    for (let round = 0; round < 10; round++) {
      r.clock.now += 50; // ten rounds in half a second
      r.receive(UP0, ...hosts.map((h, k) => toHost(h, round * 1000 + k)));
    }
    const asked = requestTargets(r.lan0.take());
    const perTarget = new Map<string, number>();
    for (const target of asked) perTarget.set(target, (perTarget.get(target) ?? 0) + 1);
    expect([...perTarget.values()].filter((n) => n > 1)).toEqual([]);
    expect(r.router.counters.drops[Drop.neighborTableFull]).toBeGreaterThan(0);
  });

  it('a new host past the port\'s budget is neither asked nor held; once the bucket refills, it is', () => {
    const r = bigSubnetRouter({ requestsPerSecond: 1, requestBurst: 1 });
    r.receive(UP0, toHost('10.1.3.1', 1), toHost('10.1.3.2', 2));
    expect(requestTargets(r.lan0.take())).toEqual(['10.1.3.1']);
    expect(r.router.counters.arp[ArpCounter.requestsRateLimited]).toBe(1);
    expect(r.router.counters.drops[Drop.arpRateLimited]).toBe(1);
    expect(r.router.resolver.stateOf(parseAddress('10.1.3.2'))).toBeUndefined();
    expect(r.router.resolver.heldFrames).toBe(1);
    r.clock.now += 1_000;
    r.receive(UP0, toHost('10.1.3.2', 3));
    expect(requestTargets(r.lan0.take())).toEqual(['10.1.3.2']);
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web2, senderMac: MAC.web2, senderAddress: '10.1.3.2',
      targetMac: MAC.lan0, targetAddress: '10.1.0.1',
    }));
    expect(r.lan0.take().map((f) => f.readUInt16BE(18))).toEqual([3]);
  });

  it('a retransmission the bucket holds back is no unanswered probe: the host is asked again, not failed', () => {
    const r = bigSubnetRouter({ requestsPerSecond: 1, requestBurst: 1, probes: 2 });
    r.receive(UP0, toHost('10.1.4.1', 1));
    expect(requestTargets(r.lan0.take())).toEqual(['10.1.4.1']);
    // Each second the flood takes the one token before the retransmission would.
    for (let second = 1; second <= 5; second++) {
      r.clock.now += 1_000;
      r.receive(UP0, toHost(`10.1.5.${second}`, 100 + second));
      r.router.resolver.tick(r.clock.now);
    }
    expect(r.router.resolver.stateOf(parseAddress('10.1.4.1'))).toBe('incomplete');
    r.clock.now += 1_000;
    r.router.resolver.tick(r.clock.now);
    expect(requestTargets(r.lan0.take())).toContain('10.1.4.1');
  });
});

describe('ARP from hosts that cannot be neighbours is dropped and counted, never learned', () => {
  const resolved = () => {
    const r = articleRouter();
    r.resolveAll();
    return r;
  };
  const claim = (operation: 'request' | 'reply', senderAddress: string, targetAddress: string, toMac: string) =>
    arpFrame({
      operation, dstMac: operation === 'request' ? 'ff:ff:ff:ff:ff:ff' : toMac, srcMac: '02:00:00:00:66:66',
      senderMac: '02:00:00:00:66:66', senderAddress, targetMac: operation === 'reply' ? toMac : undefined, targetAddress,
    });

  const cases: { name: string; port: number; frame: Buffer; reason: Drop; address: string }[] = [
    { name: 'a reply claiming lan0\'s own address', port: LAN0, frame: claim('reply', '192.168.1.1', '192.168.1.1', MAC.lan0), reason: Drop.arpOwnAddress, address: '192.168.1.1' },
    { name: 'a request claiming up0\'s own address', port: UP0, frame: claim('request', '10.0.0.1', '10.0.0.1', MAC.up0), reason: Drop.arpOwnAddress, address: '10.0.0.1' },
    { name: 'a reply on lan0 claiming up0\'s address', port: LAN0, frame: claim('reply', '10.0.0.1', '192.168.1.1', MAC.lan0), reason: Drop.arpOwnAddress, address: '10.0.0.1' },
    { name: 'a reply from the subnet\'s network address', port: LAN0, frame: claim('reply', '192.168.1.0', '192.168.1.1', MAC.lan0), reason: Drop.arpMartianSender, address: '192.168.1.0' },
    { name: 'a request from the subnet\'s broadcast address', port: LAN0, frame: claim('request', '192.168.1.31', '192.168.1.1', MAC.lan0), reason: Drop.arpMartianSender, address: '192.168.1.31' },
    { name: 'a reply from up0\'s broadcast address', port: UP0, frame: claim('reply', '10.0.0.255', '10.0.0.1', MAC.up0), reason: Drop.arpMartianSender, address: '10.0.0.255' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = resolved();
      r.receive(c.port, c.frame);
      expect(r.router.resolver.stateOf(parseAddress(c.address))).toBeUndefined();
      expect(r.router.counters.drops[c.reason]).toBe(1);
      expect(Array.from(r.router.counters.drops).reduce((a, b) => a + b)).toBe(1);
    });
  }

  it('a gateway\'s entry is not overwritten by a reply claiming to be the router', () => {
    const r = resolved();
    r.receive(LAN0, claim('reply', '192.168.1.1', '192.168.1.1', MAC.lan0));
    r.receive(UP0, ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: '192.168.1.33' }));
    const [out] = r.lan0.take();
    expect(out.subarray(0, 6).toString('hex')).toBe(MAC.web1.replace(/:/g, ''));
  });

  it('an ordinary neighbour is still learned (and counted as ARP left to the kernel)', () => {
    const r = resolved();
    r.receive(UP0, claim('request', '10.0.0.9', '10.0.0.1', MAC.up0));
    expect(r.router.resolver.stateOf(parseAddress('10.0.0.9'))).toBe('reachable');
    expect(Array.from(r.router.counters.drops).every((n) => n === 0)).toBe(true);
  });
});
