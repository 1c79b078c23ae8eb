// Property tests of the whole data plane (fast-check): a Router on memory
// ports gets arbitrary bytes and structured frames (valid IPv4 with random
// fields, options, fragments, lengths, TTLs and destinations across every
// kind of route), ARP from good and hostile neighbours, and time passing.
// After every step:
//   - nothing threw;
//   - the counters add up (src/dataplane/counters.ts says how):
//       Σ rxPackets = Σ forwardedPackets + Σ drops + Σ punts + frames held;
//   - every IPv4 frame sent has a valid header checksum; a forwarded frame
//     (or fragment) carries TTL in − 1 and the bytes it came with, and fits
//     its egress MTU;
//   - every ICMP error sent is well-formed (IP and ICMP checksums), quotes
//     the offending packet's IP header and 8 bytes as it reached vipr, and is
//     addressed to that packet's source, through the MAC it came from.
//
// Building a Router takes ~100 ms (the DIR-24-8 table), so each property
// drives one router through all its runs; the counter identity holds at any
// moment, so it is checked on the router's totals. Bounded in time: fixed
// run counts, and fast-check stops early if the machine is slow.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DROP_NAMES, Drop, PORT_COUNTERS, PortCounter } from '../../src/dataplane/counters.js';
import { SLOT_SIZE } from '../../src/dataplane/batch.js';
import { arpFrame, ipv4Frame, macBytes, type Ipv4Spec } from '../../src/packet/builder.js';
import { internetChecksum } from '../../src/packet/checksum.js';
import { formatAddress } from '../../src/util/ipv4.js';
import { articleRouter, LAN0, MAC, UP0, type ArticleRouter } from '../fixtures/article-router.js';

const ROUTER_ADDRESSES = ['10.0.0.1', '192.168.1.1'];
const PORT_MAC = [MAC.up0, MAC.lan0];
const LAN0_MTU = 1400;
const UP0_MTU = 1500;
const MTU = [UP0_MTU, LAN0_MTU];
/** Time budget per property; fast-check stops (and passes) if a slow machine runs out of it. */
const TIME_LIMIT_MS = 20_000;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A router like the lab's, lan0 at MTU 1400 so big packets fragment, web4 left unresolved so frames wait. */
function fuzzRouter() {
  const clock = { now: 1_000 };
  const r = articleRouter({
    icmp: { ratePerSecond: 100_000, burst: 100_000, perDestination: { ratePerSecond: 1, burst: 3, maxDestinations: 8 } },
    neighbors: {
      reachableMs: 30_000, retransmitMs: 1_000, probes: 3, queueLength: 4, maxEntries: 16, requestsPerSecond: 50, requestBurst: 20,
    },
  }, { lan0Mtu: LAN0_MTU, up0Mtu: UP0_MTU, clock: () => clock.now });
  r.receive(LAN0, ...gatewaysAnswer().filter(([port]) => port === LAN0).slice(0, 3).map(([, frame]) => frame));
  r.receive(UP0, ...gatewaysAnswer().filter(([port]) => port === UP0).map(([, frame]) => frame));
  r.up0.take();
  r.lan0.take();
  return { r, clock, checker: new OutputChecker(r) };
}

/** ARP replies from the gateways (web4 among them) and two clients: [port, frame]. */
function gatewaysAnswer(): [number, Buffer][] {
  const reply = (port: number, from: string, fromMac: string): [number, Buffer] => [port, arpFrame({
    operation: 'reply', dstMac: PORT_MAC[port], srcMac: fromMac, senderMac: fromMac, senderAddress: from,
    targetMac: PORT_MAC[port], targetAddress: ROUTER_ADDRESSES[port],
  })];
  return [
    reply(LAN0, '192.168.1.2', MAC.web1), reply(LAN0, '192.168.1.3', MAC.web2), reply(LAN0, '192.168.1.4', MAC.web3),
    reply(LAN0, '192.168.1.5', MAC.web4), reply(UP0, '10.0.0.254', MAC.client), reply(UP0, '10.0.0.2', MAC.client),
    reply(UP0, '10.0.0.3', '02:00:00:00:00:03'),
  ];
}

interface Input {
  port: number;
  frame: Buffer;
}

/** Remembers every frame fed in, and checks every frame that comes out against them. */
class OutputChecker {
  /** IPv4 inputs by the quote an ICMP error about them would carry. */
  private readonly byQuote = new Map<string, Input[]>();
  /** IPv4 inputs by source, destination and id: what a forwarded frame or fragment is matched with. */
  private readonly byFlow = new Map<string, Input[]>();

  constructor(private readonly r: ArticleRouter) {}

  remember(port: number, frame: Buffer): void {
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) return;
    const headerLength = (frame[14] & 0x0f) * 4;
    const available = Math.min(frame.length - 14, frame.readUInt16BE(16));
    const quote = frame.subarray(14, 14 + Math.max(0, Math.min(available, headerLength + 8)));
    const input = { port, frame: Buffer.from(frame) };
    const add = (map: Map<string, Input[]>, key: string) => map.set(key, [...(map.get(key) ?? []), input]);
    add(this.byQuote, hex(quote));
    add(this.byFlow, flowKey(frame));
  }

  /** Checks and forgets what the ports sent. */
  check(): void {
    for (const [port, sent] of [[UP0, this.r.up0.take()], [LAN0, this.r.lan0.take()]] as const) {
      for (const frame of sent) this.checkFrame(port, frame);
    }
  }

  private checkFrame(port: number, frame: Buffer): void {
    const type = frame.readUInt16BE(12);
    expect(hex(frame.subarray(6, 12)), 'sent from the port\'s own MAC').toBe(hex(Uint8Array.from(macBytes(PORT_MAC[port]))));
    if (type === 0x0806) {
      expect(frame.readUInt16BE(20), 'ARP: only requests').toBe(1);
      expect(formatAddress(frame.readUInt32BE(28)), 'ARP: asked from the port\'s address').toBe(ROUTER_ADDRESSES[port]);
      return;
    }
    expect(type, 'only IPv4 and ARP leave vipr').toBe(0x0800);
    const headerLength = (frame[14] & 0x0f) * 4;
    expect(frame[14] >> 4).toBe(4);
    expect(internetChecksum(frame, 14, headerLength), `header checksum of ${hex(frame.subarray(0, 34))}`).toBe(0);
    expect(frame.readUInt16BE(16), 'total length').toBe(frame.length - 14);
    expect(frame.length - 14, 'fits the egress MTU').toBeLessThanOrEqual(MTU[port]);
    const source = formatAddress(frame.readUInt32BE(26));
    if (ROUTER_ADDRESSES.includes(source) && frame[23] === 1) this.checkIcmpError(port, frame);
    else this.checkForwarded(port, frame);
  }

  private checkIcmpError(port: number, frame: Buffer): void {
    expect(frame[14], 'ICMP error: no options').toBe(0x45);
    expect([3, 11]).toContain(frame[34]);
    expect(internetChecksum(frame, 34, frame.length - 34), 'ICMP checksum').toBe(0);
    const quote = frame.subarray(42);
    const candidates = this.byQuote.get(hex(quote)) ?? [];
    expect(candidates.length, `an ICMP error quotes a packet vipr received: ${hex(quote)}`).toBeGreaterThan(0);
    const matching = candidates.filter((input) =>
      input.port === port &&
      frame.readUInt32BE(30) === input.frame.readUInt32BE(26) && // to the offending packet's source
      hex(frame.subarray(0, 6)) === hex(input.frame.subarray(6, 12))); // through the MAC it came from
    expect(matching.length, `ICMP error ${hex(frame)} goes back where its packet came from`).toBeGreaterThan(0);
  }

  private checkForwarded(port: number, frame: Buffer): void {
    const candidates = this.byFlow.get(flowKey(frame)) ?? [];
    expect(candidates.length, `a forwarded frame comes from a frame vipr received: ${hex(frame.subarray(0, 34))}`).toBeGreaterThan(0);
    const problems = candidates.map((input) => forwardingProblem(input.frame, frame));
    expect(problems.some((p) => p === ''), `forwarded ${hex(frame.subarray(0, 42))}: ${problems.join('; ')}`).toBe(true);
  }
}

function flowKey(frame: Buffer): string {
  return `${frame.readUInt32BE(26)}>${frame.readUInt32BE(30)}#${frame.readUInt16BE(18)}`;
}

/** Why `out` is not a correct forwarding (whole or fragment) of `input`; '' when it is. */
function forwardingProblem(input: Buffer, out: Buffer): string {
  const inHeader = (input[14] & 0x0f) * 4;
  const inTotal = input.readUInt16BE(16);
  const outHeader = (out[14] & 0x0f) * 4;
  if (out[22] !== input[22] - 1) return `TTL ${out[22]} from ${input[22]}`;
  if (out.length === 14 + inTotal && outHeader === inHeader && out.readUInt16BE(20) === input.readUInt16BE(20)) {
    // Whole: every byte as received, but TTL and checksum.
    const a = Buffer.from(input.subarray(14, 14 + inTotal));
    const b = Buffer.from(out.subarray(14));
    a[8] = b[8];
    a[10] = b[10];
    a[11] = b[11];
    return a.equals(b) ? '' : 'bytes changed';
  }
  // A fragment: its payload is the input's at the right place, the fixed header fields kept.
  const inWord = input.readUInt16BE(20);
  const outWord = out.readUInt16BE(20);
  if (inWord & 0x4000) return 'fragmented with DF';
  if (out[15] !== input[15] || out[23] !== input[23]) return 'TOS or protocol changed';
  const start = (outWord & 0x1fff) * 8 - (inWord & 0x1fff) * 8;
  const piece = out.subarray(14 + outHeader);
  if (start < 0 || start + piece.length > inTotal - inHeader) return `fragment at ${start} outside the input`;
  if (!piece.equals(input.subarray(14 + inHeader + start, 14 + inHeader + start + piece.length))) return 'fragment payload differs';
  const lastPiece = start + piece.length === inTotal - inHeader;
  const mf = (outWord & 0x2000) !== 0;
  if (lastPiece ? mf !== ((inWord & 0x2000) !== 0) : !mf || piece.length % 8 !== 0) return 'MF or piece size wrong';
  return '';
}

/** Σ rx − (Σ forwarded + Σ drops + Σ punts + held): zero when every frame is accounted for once. */
function unaccounted(r: ArticleRouter): { difference: number; detail: string } {
  const c = r.router.counters;
  let rx = 0;
  let forwarded = 0;
  for (let p = 0; p < c.portCount; p++) {
    rx += c.ports[p * PORT_COUNTERS + PortCounter.rxPackets];
    forwarded += c.ports[p * PORT_COUNTERS + PortCounter.forwardedPackets];
  }
  const drops = c.drops.reduce((a, b) => a + b, 0) - c.drops[Drop.frameTooLong];
  const punts = c.punts.reduce((a, b) => a + b, 0);
  const held = r.router.resolver.heldFrames;
  const named = DROP_NAMES.map((name, i) => (c.drops[i] ? `${name} ${c.drops[i]}` : '')).filter(Boolean).join(', ');
  return {
    difference: rx - forwarded - drops - punts - held,
    detail: `rx ${rx}, forwarded ${forwarded}, drops ${drops} (${named}), punts ${punts}, held ${held}`,
  };
}

// ---- generators --------------------------------------------------------

const address = fc.integer({ min: 0, max: 0xffffffff }).map(formatAddress);
/** Destinations across every kind of route of the article's table, and anything at all. */
const destination = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('192.168.1.33', '192.168.1.65', '192.168.1.97', '192.168.1.62', '192.168.1.129') },
  { weight: 2, arbitrary: fc.constantFrom('10.0.0.2', '10.0.0.3', '10.0.0.9', '10.0.0.200', '203.0.113.9', '8.8.8.8') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '192.168.1.200', '198.51.100.7', '10.0.0.1', '192.168.1.1', '192.168.1.31', '192.168.1.0', '10.0.0.255',
      '224.0.0.5', '255.255.255.255', '127.0.0.1', '0.1.2.3', '240.0.0.1',
    ),
  },
  { weight: 1, arbitrary: address },
);
const source = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('10.0.0.2', '10.0.0.3', '203.0.113.50', '192.168.1.2', '192.168.1.33') },
  { weight: 1, arbitrary: address.filter((a) => !ROUTER_ADDRESSES.includes(a)) },
);
/** IPv4 options, well-formed and not: NOP, End, Record Route, Router Alert, Timestamp, Loose Source Route, garbage. */
const option = fc.oneof(
  fc.constantFrom([1], [0], [0x07, 0x07, 0x04, 0, 0, 0, 0], [0x94, 0x04, 0, 0], [0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0x83, 7, 4, 10, 0, 0, 1]),
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 10 }),
);
const options = fc.array(option, { maxLength: 6 }).map((list) => {
  const bytes = list.flat().slice(0, 40);
  while (bytes.length % 4 !== 0) bytes.push(0);
  return bytes;
});
const payload = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 1300, maxLength: 1600 }), // too big for lan0, sometimes for up0
  fc.uint8Array({ maxLength: 1600 }),
  // ICMP: an echo request (errors allowed) or an error (never answered with an error)
  fc.tuple(fc.constantFrom(8, 0, 3, 11, 5, 13), fc.uint8Array({ minLength: 4, maxLength: 40 })).map(([type, rest]) => Uint8Array.from([type, 0, 0, 0, ...rest])),
);
/** How a frame is spoiled, if at all. */
const damage = fc.oneof(
  { weight: 18, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.record({ checksum: fc.integer({ min: 0, max: 0xffff }) }) },
  { weight: 1, arbitrary: fc.record({ totalLength: fc.integer({ min: 0, max: 0xffff }) }) },
  { weight: 1, arbitrary: fc.record({ ihl: fc.integer({ min: 0, max: 15 }) }) },
  { weight: 1, arbitrary: fc.record({ version: fc.integer({ min: 0, max: 15 }) }) },
  { weight: 1, arbitrary: fc.record({ truncate: fc.integer({ min: 0, max: 80 }) }) },
  { weight: 1, arbitrary: fc.record({ trailer: fc.integer({ min: 1, max: 40 }) }) },
);

const ipv4 = fc.record({
  port: fc.constantFrom(UP0, LAN0),
  dstMac: fc.oneof({ weight: 8, arbitrary: fc.constant('port') }, { weight: 1, arbitrary: fc.constantFrom('ff:ff:ff:ff:ff:ff', '01:00:5e:00:00:05', '02:00:00:00:99:99') }),
  srcMac: fc.constantFrom(MAC.client, MAC.web1, MAC.web2, '02:00:00:00:77:77'),
  src: source,
  dst: destination,
  ttl: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 2, max: 255 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 255) }),
  tos: fc.integer({ min: 0, max: 255 }),
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  offset: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x1fff }) }),
  protocol: fc.constantFrom(1, 6, 17, 47),
  options,
  payload,
  damage,
});
type Ipv4Action = typeof ipv4 extends fc.Arbitrary<infer T> ? T : never;

/** ARP from hosts on both subnets, including ones that claim the router's or a subnet's broadcast address. */
const arp = fc.record({
  port: fc.constantFrom(UP0, LAN0),
  operation: fc.constantFrom('request', 'reply') as fc.Arbitrary<'request' | 'reply'>,
  sender: fc.constantFrom('10.0.0.2', '10.0.0.3', '10.0.0.9', '10.0.0.200', '192.168.1.5', '192.168.1.2', '10.0.0.1', '192.168.1.1', '192.168.1.31', '10.0.0.0', '0.0.0.0'),
  senderMac: fc.constantFrom(MAC.client, MAC.web4, '02:00:00:00:66:66', '01:00:5e:00:00:01'),
  toRouter: fc.boolean(),
});

/** Bytes with a plausible start: a MAC vipr answers to, or not; IPv4, ARP or anything else. */
const rawFrame = fc.record({
  port: fc.constantFrom(UP0, LAN0),
  dstMac: fc.constantFrom('port', 'ff:ff:ff:ff:ff:ff', '02:00:00:00:99:99'),
  etherType: fc.oneof(fc.constantFrom(0x0800, 0x0806), fc.integer({ min: 0, max: 0xffff })),
  versionIhl: fc.oneof(fc.constant(0x45), fc.integer({ min: 0, max: 255 })),
  rest: fc.uint8Array({ maxLength: 1700 }),
});

const step = fc.oneof(
  { weight: 8, arbitrary: ipv4.map((frame) => ({ kind: 'ipv4' as const, frame })) },
  { weight: 2, arbitrary: fc.array(ipv4, { minLength: 2, maxLength: 12 }).map((frames) => ({ kind: 'burst' as const, frames })) },
  { weight: 2, arbitrary: arp.map((frame) => ({ kind: 'arp' as const, frame })) },
  { weight: 2, arbitrary: rawFrame.map((frame) => ({ kind: 'raw' as const, frame })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 40_000 }).map((ms) => ({ kind: 'time' as const, ms })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'answer' as const }) },
);

// ---- building frames -----------------------------------------------------

let nextId = 0;

function buildIpv4(action: Ipv4Action): Buffer {
  const spec: Ipv4Spec = {
    dstMac: action.dstMac === 'port' ? PORT_MAC[action.port] : action.dstMac,
    srcMac: action.srcMac,
    src: action.src,
    dst: action.dst,
    ttl: action.ttl,
    tos: action.tos,
    // Unique ids: a frame that comes out is matched with the one that went in.
    id: nextId++ & 0xffff,
    fragment: (action.dontFragment ? 0x4000 : 0) | (action.moreFragments ? 0x2000 : 0) | action.offset,
    protocol: action.protocol,
    options: action.options,
    payload: action.payload,
    ...action.damage,
  };
  const frame = ipv4Frame(spec);
  return frame.length > SLOT_SIZE ? frame.subarray(0, SLOT_SIZE) : frame;
}

function buildRaw(action: typeof rawFrame extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const dst = action.dstMac === 'port' ? PORT_MAC[action.port] : action.dstMac;
  const head = [...macBytes(dst), ...macBytes('02:00:00:00:55:55'), action.etherType >> 8, action.etherType & 0xff, action.versionIhl];
  return Buffer.concat([Buffer.from(head), Buffer.from(action.rest)]).subarray(0, SLOT_SIZE);
}

type Fuzz = ReturnType<typeof fuzzRouter>;

function run(fuzz: Fuzz, steps: (typeof step extends fc.Arbitrary<infer T> ? T : never)[]): void {
  const { r, clock, checker } = fuzz;
  const feed = (port: number, frames: Buffer[]) => {
    for (const frame of frames) checker.remember(port, frame);
    for (const frame of frames) r.router.batch.push(port, frame, frame.length);
    r.router.process();
  };
  for (const s of steps) {
    if (s.kind === 'ipv4') feed(s.frame.port, [buildIpv4(s.frame)]);
    else if (s.kind === 'burst') {
      // One batch with frames from both ports, as the ports append them.
      for (const f of s.frames) {
        const frame = buildIpv4(f);
        checker.remember(f.port, frame);
        r.router.batch.push(f.port, frame, frame.length);
      }
      r.router.process();
    } else if (s.kind === 'arp') {
      const a = s.frame;
      feed(a.port, [arpFrame({
        operation: a.operation, dstMac: a.operation === 'request' ? 'ff:ff:ff:ff:ff:ff' : PORT_MAC[a.port], srcMac: a.senderMac.startsWith('01') ? MAC.web4 : a.senderMac,
        senderMac: a.senderMac, senderAddress: a.sender, targetMac: a.operation === 'reply' ? PORT_MAC[a.port] : undefined,
        targetAddress: a.toRouter ? ROUTER_ADDRESSES[a.port] : '10.0.0.77',
      })]);
    } else if (s.kind === 'raw') {
      feed(s.frame.port, [buildRaw(s.frame)]);
    } else if (s.kind === 'answer') {
      for (const [port, frame] of gatewaysAnswer()) feed(port, [frame]);
    } else {
      clock.now += s.ms;
      r.router.resolver.tick(clock.now);
    }
    checker.check();
    const { difference, detail } = unaccounted(r);
    expect(difference, `every frame accounted for once: ${detail}`).toBe(0);
  }
}

describe('the data plane under random input (fast-check)', () => {
  it('structured frames, ARP and time: never throws, counters add up, every frame sent is right', () => {
    const fuzz = fuzzRouter();
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), (steps) => run(fuzz, steps)), {
      numRuns: 300, interruptAfterTimeLimit: TIME_LIMIT_MS,
    });
    // The deep paths were reached: forwarding, fragmentation, ICMP errors, holding, ARP refused.
    const c = fuzz.r.router.counters.snapshot(fuzz.r.router.ports.names);
    expect(c.ports.lan0.forwardedPackets + c.ports.up0.forwardedPackets).toBeGreaterThan(0);
    expect(c.fragmentation.fragmentsCreated).toBeGreaterThan(0);
    expect(c.icmp.timeExceeded + c.icmp.netUnreachable).toBeGreaterThan(0);
    expect(c.drops.arpOwnAddress + c.drops.arpMartianSender).toBeGreaterThan(0);
  });

  it('any bytes on any port: never throws, counters add up', () => {
    const fuzz = fuzzRouter();
    const anyBytes = fc.record({ port: fc.constantFrom(UP0, LAN0), bytes: fc.uint8Array({ maxLength: SLOT_SIZE }) });
    fc.assert(fc.property(fc.array(anyBytes, { minLength: 1, maxLength: 40 }), (frames) => {
      for (const { port, bytes } of frames) {
        const frame = Buffer.from(bytes);
        fuzz.checker.remember(port, frame);
        fuzz.r.router.batch.push(port, frame, frame.length);
      }
      fuzz.r.router.process();
      fuzz.checker.check();
      const { difference, detail } = unaccounted(fuzz.r);
      expect(difference, detail).toBe(0);
    }), { numRuns: 200, interruptAfterTimeLimit: TIME_LIMIT_MS });
  });
});
