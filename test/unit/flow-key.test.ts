// Flow keys from frames built with the packet builder: one key for both
// directions, ICMP by identifier and ICMP errors by the flow they quote,
// fragments by addresses, and no key for every malformed L4 header.

import fc from 'fast-check';
import murmurhash from 'murmurhash';
import { describe, expect, it } from 'vitest';
import { SLOT_SIZE } from '../../src/dataplane/batch.js';
import {
  extractFlowKey, FLOW_FRAGMENT, FLOW_ICMP_ERROR, FLOW_KEY_FRAGMENT, FLOW_KEY_WORDS, FLOW_REVERSED, flowHash,
  flowKeyFields, NO_FLOW_KEY,
} from '../../src/dataplane/flow-key.js';
import { icmpEcho, icmpErrorPayload, ipv4Frame, tcpSegment, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import {
  ICMP_DEST_UNREACHABLE, ICMP_TIME_EXCEEDED, ICMP_UNREACH_NEEDFRAG, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP,
  IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN,
} from '../../src/packet/layout.js';
import { parseAddress } from '../../src/util/ipv4.js';

const CLIENT = '10.0.0.2';
const VIP = '192.168.1.33';
const macs = { dstMac: '02:00:00:00:00:01', srcMac: '02:00:00:00:00:02' };

const fromClient = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({ ...macs, src: CLIENT, dst: VIP, ...over });
const fromServer = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({ ...macs, src: VIP, dst: CLIENT, ...over });
const tcp = (src: string, dst: string, srcPort: number, dstPort: number, flags: number, data = 0) =>
  tcpSegment({ src, dst, srcPort, dstPort, flags, data });

/** The frame in slot 1 of a batch-sized buffer, as the stages see it. */
function extract(frame: Buffer) {
  const data = new Uint8Array(SLOT_SIZE * 2);
  data.set(frame, SLOT_SIZE);
  const keys = new Uint32Array(FLOW_KEY_WORDS * 3);
  const info = extractFlowKey(data, SLOT_SIZE, frame.length, keys, FLOW_KEY_WORDS);
  return { info, key: Array.from(keys.subarray(FLOW_KEY_WORDS, FLOW_KEY_WORDS * 2)), keys };
}

const a = (text: string) => parseAddress(text) >>> 0;

describe('flow key', () => {
  const forward = extract(ipv4Frame(fromClient({ protocol: IPPROTO_TCP, payload: tcp(CLIENT, VIP, 40000, 80, TCP_SYN) })));

  const cases: { name: string; frame: Ipv4Spec; key: number[]; info: number }[] = [
    {
      name: 'TCP SYN from the client: lower address first, flags in the info',
      frame: fromClient({ protocol: IPPROTO_TCP, payload: tcp(CLIENT, VIP, 40000, 80, TCP_SYN) }),
      key: [a(CLIENT), a(VIP), (40000 << 16) | 80, IPPROTO_TCP], info: TCP_SYN,
    },
    {
      name: 'the SYN-ACK reply makes the same key, reversed',
      frame: fromServer({ protocol: IPPROTO_TCP, payload: tcp(VIP, CLIENT, 80, 40000, TCP_SYN | TCP_ACK) }),
      key: [a(CLIENT), a(VIP), (40000 << 16) | 80, IPPROTO_TCP], info: TCP_SYN | TCP_ACK | FLOW_REVERSED,
    },
    {
      name: 'a client above the VIP: the key starts with the VIP, the client\'s packet is reversed',
      frame: fromClient({ src: '203.0.113.9', protocol: IPPROTO_TCP, payload: tcp('203.0.113.9', VIP, 40000, 443, TCP_ACK | TCP_PSH, 100) }),
      key: [a(VIP), a('203.0.113.9'), (443 << 16) | 40000, IPPROTO_TCP], info: TCP_ACK | TCP_PSH | FLOW_REVERSED,
    },
    {
      name: 'same address both ends: the lower port first',
      frame: fromClient({ dst: CLIENT, protocol: IPPROTO_UDP, payload: udpPayload(4, 5000, 53) }),
      key: [a(CLIENT), a(CLIENT), (53 << 16) | 5000, IPPROTO_UDP], info: FLOW_REVERSED,
    },
    {
      name: 'TCP with options and data',
      frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSegment({ src: CLIENT, dst: VIP, srcPort: 1, dstPort: 2, flags: TCP_ACK | TCP_FIN, options: [1, 1, 1, 0], data: 7 }) }),
      key: [a(CLIENT), a(VIP), (1 << 16) | 2, IPPROTO_TCP], info: TCP_ACK | TCP_FIN,
    },
    {
      name: 'UDP',
      frame: fromClient({ protocol: IPPROTO_UDP, payload: udpPayload(18, 40000, 53) }),
      key: [a(CLIENT), a(VIP), (40000 << 16) | 53, IPPROTO_UDP], info: 0,
    },
    {
      name: 'ICMP echo request: its identifier in both port halves',
      frame: fromClient({ protocol: IPPROTO_ICMP, payload: icmpEcho(0x1234, 7) }),
      key: [a(CLIENT), a(VIP), 0x12341234, IPPROTO_ICMP], info: 0,
    },
    {
      name: 'ICMP echo reply: the same flow, reversed',
      frame: fromServer({ protocol: IPPROTO_ICMP, payload: icmpEcho(0x1234, 7, 16, 0) }),
      key: [a(CLIENT), a(VIP), 0x12341234, IPPROTO_ICMP], info: FLOW_REVERSED,
    },
    {
      name: 'another ICMP message (router advertisement): addresses only',
      frame: fromClient({ protocol: IPPROTO_ICMP, payload: [9, 0, 0, 0, 0, 0, 0, 0] }),
      key: [a(CLIENT), a(VIP), 0, IPPROTO_ICMP], info: 0,
    },
    {
      name: 'GRE: addresses only',
      frame: fromClient({ protocol: 47, payload: [0, 0, 0x08, 0x00, 1, 2, 3, 4] }),
      key: [a(CLIENT), a(VIP), 0, 47], info: 0,
    },
    {
      name: 'GRE fragment: the same key as unfragmented GRE',
      frame: fromClient({ protocol: 47, fragment: 0x2000, payload: [0, 0, 0x08, 0x00, 1, 2, 3, 4] }),
      key: [a(CLIENT), a(VIP), 0, 47], info: FLOW_FRAGMENT,
    },
    {
      name: 'SCTP: ports',
      frame: fromClient({ protocol: IPPROTO_SCTP, payload: [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0] }),
      key: [a(CLIENT), a(VIP), (3000 << 16) | 3001, IPPROTO_SCTP], info: 0,
    },
    {
      name: 'first fragment of a UDP datagram: addresses and the fragment bit, no ports',
      frame: fromClient({ protocol: IPPROTO_UDP, fragment: 0x2000, id: 77, payload: udpPayload(64, 40000, 53) }),
      key: [a(CLIENT), a(VIP), 0, IPPROTO_UDP | FLOW_KEY_FRAGMENT], info: FLOW_FRAGMENT,
    },
    {
      name: 'a later fragment of it: the same key, though it has no ports',
      frame: fromClient({ protocol: IPPROTO_UDP, fragment: 9, id: 77, payload: [1, 2, 3, 4, 5, 6, 7, 8] }),
      key: [a(CLIENT), a(VIP), 0, IPPROTO_UDP | FLOW_KEY_FRAGMENT], info: FLOW_FRAGMENT,
    },
    {
      name: 'a last fragment of a TCP segment (no MF, offset set): no flags',
      frame: fromClient({ protocol: IPPROTO_TCP, fragment: 100, payload: [1, 2, 3] }),
      key: [a(CLIENT), a(VIP), 0, IPPROTO_TCP | FLOW_KEY_FRAGMENT], info: FLOW_FRAGMENT,
    },
    {
      name: 'fragment of a ping reply: addresses and the fragment bit',
      frame: fromServer({ protocol: IPPROTO_ICMP, fragment: 0x2000, payload: icmpEcho(5, 1, 64, 0) }),
      key: [a(CLIENT), a(VIP), 0, IPPROTO_ICMP | FLOW_KEY_FRAGMENT], info: FLOW_FRAGMENT | FLOW_REVERSED,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { info, key } = extract(ipv4Frame(c.frame));
      expect(key).toEqual(c.key.map((w) => w >>> 0));
      expect(info).toBe(c.info);
    });
  }

  it('an ICMP error about the server\'s packet, sent towards the VIP, finds the flow in the client\'s direction', () => {
    // A router between the VIP and the client could not forward the server's 1500-byte segment.
    const quoted = ipv4Frame(fromServer({ protocol: IPPROTO_TCP, payload: tcp(VIP, CLIENT, 80, 40000, TCP_ACK, 40) })).subarray(14, 14 + 28);
    const error = extract(ipv4Frame({ ...macs, src: '10.0.0.254', dst: VIP, payload: icmpErrorPayload(ICMP_DEST_UNREACHABLE, ICMP_UNREACH_NEEDFRAG, quoted, 1400) }));
    expect(error.key).toEqual(forward.key);
    expect(error.info).toBe(FLOW_ICMP_ERROR);
  });

  it('an ICMP error about the client\'s packet, sent to the client, goes the reply way', () => {
    const quoted = ipv4Frame(fromClient({ protocol: IPPROTO_TCP, payload: tcp(CLIENT, VIP, 40000, 80, TCP_SYN) })).subarray(14, 14 + 28);
    const error = extract(ipv4Frame({ ...macs, src: '192.168.1.2', dst: CLIENT, payload: icmpErrorPayload(ICMP_TIME_EXCEEDED, 0, quoted) }));
    expect(error.key).toEqual(forward.key);
    expect(error.info).toBe(FLOW_ICMP_ERROR | FLOW_REVERSED);
  });

  it('an ICMP error quoting a ping finds the ping\'s flow; quoting a fragment, the fragment flow', () => {
    const ping = extract(ipv4Frame(fromClient({ payload: icmpEcho(9) })));
    const quotedPing = ipv4Frame(fromClient({ payload: icmpEcho(9) })).subarray(14, 14 + 28);
    const aboutPing = extract(ipv4Frame({ ...macs, src: '192.168.1.2', dst: CLIENT, payload: icmpErrorPayload(ICMP_DEST_UNREACHABLE, 1, quotedPing) }));
    expect(aboutPing.key).toEqual(ping.key);

    const fragment = extract(ipv4Frame(fromClient({ protocol: IPPROTO_UDP, fragment: 0x2000, payload: udpPayload(64) })));
    const quotedFragment = ipv4Frame(fromClient({ protocol: IPPROTO_UDP, fragment: 0x2000, payload: udpPayload(64) })).subarray(14, 14 + 28);
    const aboutFragment = extract(ipv4Frame({ ...macs, src: '192.168.1.2', dst: CLIENT, payload: icmpErrorPayload(ICMP_TIME_EXCEEDED, 1, quotedFragment) }));
    expect(aboutFragment.key).toEqual(fragment.key);
    expect(aboutFragment.info).toBe(FLOW_ICMP_ERROR | FLOW_REVERSED);
  });

  const tcpSyn = tcp(CLIENT, VIP, 40000, 80, TCP_SYN);
  const noKey: { name: string; frame: Ipv4Spec }[] = [
    { name: 'TCP header cut at 19 bytes', frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSyn.slice(0, 19) }) },
    { name: 'TCP header of 4 bytes', frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSyn.slice(0, 4) }) },
    { name: 'TCP data offset 4 (16 bytes)', frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSegment({ src: CLIENT, dst: VIP, srcPort: 1, dstPort: 2, dataOffset: 4 }) }) },
    { name: 'TCP data offset past the packet', frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSegment({ src: CLIENT, dst: VIP, srcPort: 1, dstPort: 2, dataOffset: 6 }) }) },
    { name: 'no L4 header at all (TCP)', frame: fromClient({ protocol: IPPROTO_TCP, payload: [] }) },
    { name: 'UDP header of 7 bytes', frame: fromClient({ protocol: IPPROTO_UDP, payload: udpPayload(0).slice(0, 7) }) },
    { name: 'UDP length 7', frame: fromClient({ protocol: IPPROTO_UDP, payload: [0, 1, 0, 2, 0, 7, 0, 0, 9] }) },
    { name: 'UDP length past the packet', frame: fromClient({ protocol: IPPROTO_UDP, payload: [0, 1, 0, 2, 0, 30, 0, 0, 9] }) },
    { name: 'SCTP header of 11 bytes', frame: fromClient({ protocol: IPPROTO_SCTP, payload: [0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0] }) },
    { name: 'ICMP header of 7 bytes', frame: fromClient({ protocol: IPPROTO_ICMP, payload: [8, 0, 0, 0, 0, 1, 0] }) },
    {
      name: 'ICMP error quoting only an IP header',
      frame: fromClient({ payload: icmpErrorPayload(3, 1, ipv4Frame(fromServer({ protocol: IPPROTO_TCP, payload: tcpSyn })).subarray(14, 34)) }),
    },
    {
      name: 'ICMP error quoting something that is not IPv4',
      frame: fromClient({ payload: icmpErrorPayload(3, 1, Buffer.alloc(28, 0x60)) }),
    },
    {
      name: 'ICMP error quoting an ICMP error',
      frame: fromClient({ payload: icmpErrorPayload(3, 1, ipv4Frame(fromServer({ payload: icmpErrorPayload(11, 0, Buffer.alloc(28, 0x45)) })).subarray(14, 42)) }),
    },
    {
      name: 'IP total length says the TCP header is cut, though the frame has more (Ethernet padding)',
      frame: fromClient({ protocol: IPPROTO_TCP, payload: tcpSyn.slice(0, 10), trailer: 30 }),
    },
    { name: 'IP header length 4 (bogus)', frame: fromClient({ protocol: IPPROTO_UDP, ihl: 4 }) },
  ];
  for (const c of noKey) {
    it(`no flow key: ${c.name}`, () => {
      expect(extract(ipv4Frame(c.frame)).info).toBe(NO_FLOW_KEY);
    });
  }

  it('no flow key for a frame cut inside the IP header', () => {
    const frame = ipv4Frame(fromClient());
    expect(extract(frame.subarray(0, 30)).info).toBe(NO_FLOW_KEY);
  });

  it('reads nothing outside its frame or past the IP total length (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 14, maxLength: 120 }), fc.integer({ min: 0, max: 255 }), (bytes, fill) => {
        // An IPv4-looking start makes the parser go deep more often.
        if (bytes.length > 14) bytes[14] = 0x45;
        const run = (outside: number) => {
          const data = new Uint8Array(SLOT_SIZE).fill(outside);
          data.set(bytes, 100);
          const keys = new Uint32Array(FLOW_KEY_WORDS);
          const info = extractFlowKey(data, 100, bytes.length, keys, 0);
          return info === NO_FLOW_KEY ? [info] : [info, ...keys];
        };
        expect(run(fill)).toEqual(run(fill ^ 0xff));
      }),
      { numRuns: 3000 },
    );
  });

  it('flowKeyFields gives the packet\'s own direction back', () => {
    const reply = extract(ipv4Frame(fromServer({ protocol: IPPROTO_TCP, payload: tcp(VIP, CLIENT, 80, 40000, TCP_ACK) })));
    expect(flowKeyFields(reply.keys, FLOW_KEY_WORDS, (reply.info & FLOW_REVERSED) !== 0)).toEqual({
      protocol: IPPROTO_TCP, fragment: false, src: a(VIP), dst: a(CLIENT), srcPort: 80, dstPort: 40000,
    });
  });
});

describe('flow hash', () => {
  const keyOf = (spec: Ipv4Spec) => extract(ipv4Frame(spec)).keys;

  it('is MurmurHash3 x86_32 of the key\'s 16 bytes (words little-endian), seeded', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 0xffffffff }), (words, seed) => {
        const keys = Uint32Array.from(words);
        const bytes = new Uint8Array(keys.buffer.slice(0));
        // The reference reads little-endian words; so does this machine's Uint32Array (x86, arm64).
        expect(flowHash(keys, 0, seed)).toBe(murmurhash.v3(bytes, seed));
      }),
    );
  });

  it('is the same for both directions and changes with the seed', () => {
    const out = keyOf(fromClient({ protocol: IPPROTO_TCP, payload: tcp(CLIENT, VIP, 40000, 80, TCP_SYN) }));
    const back = keyOf(fromServer({ protocol: IPPROTO_TCP, payload: tcp(VIP, CLIENT, 80, 40000, TCP_ACK) }));
    expect(flowHash(back, FLOW_KEY_WORDS, 42)).toBe(flowHash(out, FLOW_KEY_WORDS, 42));
    expect(flowHash(out, FLOW_KEY_WORDS, 43)).not.toBe(flowHash(out, FLOW_KEY_WORDS, 42));
  });

  it('spreads neighbouring client ports evenly over 4 buckets', () => {
    const buckets = [0, 0, 0, 0];
    const keys = new Uint32Array(FLOW_KEY_WORDS);
    for (let port = 1024; port < 1024 + 40_000; port++) {
      keys.set([a(CLIENT), a(VIP), ((port << 16) | 80) >>> 0, IPPROTO_TCP]);
      buckets[flowHash(keys, 0, 7) % 4]++;
    }
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(400);
  });
});
