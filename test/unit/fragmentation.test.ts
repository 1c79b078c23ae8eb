// Fragmentation (RFC 791 3.2, RFC 1812 4.2.2.7 and 5.2.6): a packet larger
// than the egress MTU without DF leaves in 8-byte-aligned pieces; the first
// keeps every option, the others only the options whose copy flag is set;
// offsets and MF stay right when the packet is itself a fragment. Checked
// field by field and by reassembling the pieces.

import { describe, expect, it } from 'vitest';
import { FragmentCounter, Drop } from '../../src/dataplane/counters.js';
import { Ipv4Fragments, FragmentPlanError } from '../../src/packet/fragment.js';
import { arpFrame, ipv4Frame, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import { internetChecksum } from '../../src/packet/checksum.js';
import { articleRouter, LAN0, MAC, UP0 } from '../fixtures/article-router.js';

const fromClient = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({
  dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: '192.168.1.33', ttl: 64, protocol: 17, ...over,
});

/** `length` bytes that differ from position to position, so a misplaced piece shows. */
const pattern = (length: number) => Array.from({ length }, (_, k) => (k * 7 + (k >> 8)) & 0xff);

// Options: Record Route (type 7: copy flag clear, 7 bytes), a NOP, Router Alert (type 0x94: copied, 4 bytes).
const RECORD_ROUTE = [0x07, 0x07, 0x04, 0, 0, 0, 0];
const NOP = [0x01];
const ROUTER_ALERT = [0x94, 0x04, 0x00, 0x00];
// Loose Source Route (0x83, copied, 11 bytes) and Timestamp (0x44, not copied, 12 bytes) then End of List.
const LOOSE_SOURCE_ROUTE = [0x83, 11, 4, 10, 0, 0, 1, 10, 0, 0, 2];
const TIMESTAMP = [0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0];

interface Piece {
  headerLength: number;
  totalLength: number;
  id: number;
  mf: boolean;
  df: boolean;
  offset: number;
  ttl: number;
  options: number[];
  payload: Buffer;
}

/** Reads an IPv4 packet (no Ethernet header) and checks its header checksum. */
function parse(packet: Buffer): Piece {
  const headerLength = (packet[0] & 0x0f) * 4;
  expect(packet[0] >> 4).toBe(4);
  expect(internetChecksum(packet, 0, headerLength), 'header checksum').toBe(0);
  const word = packet.readUInt16BE(6);
  const totalLength = packet.readUInt16BE(2);
  expect(totalLength).toBe(packet.length);
  return {
    headerLength, totalLength, id: packet.readUInt16BE(4), mf: (word & 0x2000) !== 0, df: (word & 0x4000) !== 0,
    offset: (word & 0x1fff) * 8, ttl: packet[8], options: [...packet.subarray(20, headerLength)],
    payload: packet.subarray(headerLength),
  };
}

/** Fragments the frame's IP packet with Ipv4Fragments, as IP packets. */
function cut(frame: Buffer, mtu: number, ttl: number): Buffer[] | FragmentPlanError {
  const fragments = new Ipv4Fragments();
  const count = fragments.plan(frame, 14, mtu);
  if (count < 0) return count as FragmentPlanError;
  const out: Buffer[] = [];
  const scratch = Buffer.alloc(2048);
  for (let k = 0; k < count; k++) {
    const length = fragments.write(k, scratch, 0, ttl);
    out.push(Buffer.from(scratch.subarray(0, length)));
  }
  return out;
}

/** Puts the pieces back together: contiguous, no overlap, the last one ends the run. */
function reassemble(pieces: Piece[]): { start: number; payload: Buffer; mf: boolean } {
  const sorted = [...pieces].sort((a, b) => a.offset - b.offset);
  for (let k = 1; k < sorted.length; k++) expect(sorted[k].offset).toBe(sorted[k - 1].offset + sorted[k - 1].payload.length);
  for (const piece of sorted.slice(0, -1)) {
    expect(piece.mf, 'every piece but the last has MF').toBe(true);
    expect(piece.payload.length % 8, 'pieces but the last carry a multiple of 8 bytes').toBe(0);
  }
  return { start: sorted[0].offset, payload: Buffer.concat(sorted.map((p) => p.payload)), mf: sorted[sorted.length - 1].mf };
}

describe('Ipv4Fragments', () => {
  const cases: {
    name: string;
    spec: Partial<Ipv4Spec>;
    mtu: number;
    /** [offset, payload length, header length] per piece. */
    pieces: [number, number, number][];
    laterOptions?: number[];
  }[] = [
    {
      name: '1,500-byte UDP packet through a 1,400-byte MTU',
      spec: { payload: udpPayload(1472) }, mtu: 1400, pieces: [[0, 1376, 20], [1376, 104, 20]],
    },
    {
      name: 'odd payload length, three pieces',
      spec: { payload: pattern(1001) }, mtu: 500, pieces: [[0, 480, 20], [480, 480, 20], [960, 41, 20]],
    },
    {
      name: 'an exact multiple of the piece size: no empty last piece',
      spec: { payload: pattern(960) }, mtu: 500, pieces: [[0, 480, 20], [480, 480, 20]],
    },
    {
      name: 'options: the first piece keeps all, later pieces only the copied ones, padded to 4 bytes',
      spec: { options: [...RECORD_ROUTE, ...NOP, ...ROUTER_ALERT], payload: pattern(1200) }, mtu: 576,
      pieces: [[0, 544, 32], [544, 552, 24], [1096, 104, 24]],
      laterOptions: [...ROUTER_ALERT],
    },
    {
      name: 'a copied option after a non-copied one, End of List padding',
      spec: { options: [...TIMESTAMP, ...LOOSE_SOURCE_ROUTE, 0], payload: pattern(300) }, mtu: 200,
      pieces: [[0, 152, 44], [152, 148, 32]],
      laterOptions: [...LOOSE_SOURCE_ROUTE, 0],
    },
    {
      name: 'no copied option at all: later pieces have a bare 20-byte header',
      spec: { options: [...RECORD_ROUTE, 0], payload: pattern(200) }, mtu: 100,
      pieces: [[0, 72, 28], [72, 80, 20], [152, 48, 20]], laterOptions: [],
    },
    {
      name: 'MTU 68, the IPv4 minimum, with a 20-byte header',
      spec: { payload: pattern(100) }, mtu: 68, pieces: [[0, 48, 20], [48, 48, 20], [96, 4, 20]],
    },
    {
      name: 'MTU 68 with a 60-byte header: 8 bytes in the first piece',
      spec: { options: [...TIMESTAMP, ...TIMESTAMP, ...TIMESTAMP, ...ROUTER_ALERT], payload: pattern(40) }, mtu: 68,
      pieces: [[0, 8, 60], [8, 32, 24]], laterOptions: [...ROUTER_ALERT],
    },
    {
      name: 'the input is a middle fragment (MF, offset 800): offsets shift, every piece has MF',
      spec: { fragment: 0x2000 | 100, payload: pattern(1000) }, mtu: 500, pieces: [[800, 480, 20], [1280, 480, 20], [1760, 40, 20]],
    },
    {
      name: 'the input is the last fragment (offset 800, no MF): the last piece has no MF',
      spec: { fragment: 100, payload: pattern(1000) }, mtu: 500, pieces: [[800, 480, 20], [1280, 480, 20], [1760, 40, 20]],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const spec = fromClient({ id: 0xbeef, tos: 0x28, ...c.spec });
      const frame = ipv4Frame(spec);
      const input = parse(frame.subarray(14));
      const out = cut(frame, c.mtu, 63);
      expect(Array.isArray(out)).toBe(true);
      const pieces = (out as Buffer[]).map(parse);
      expect(pieces.map((p) => [p.offset, p.payload.length, p.headerLength])).toEqual(c.pieces);
      for (const [k, piece] of pieces.entries()) {
        const packet = (out as Buffer[])[k];
        expect(packet.length, 'fits the MTU').toBeLessThanOrEqual(c.mtu);
        expect(piece.ttl).toBe(63);
        expect(piece.id).toBe(0xbeef);
        expect(piece.df).toBe(false);
        expect(packet[1], 'TOS').toBe(0x28);
        expect(packet[9], 'protocol').toBe(frame[23]);
        expect(packet.subarray(12, 20).equals(frame.subarray(26, 34)), 'addresses').toBe(true);
        if (k === 0) expect(piece.options).toEqual(input.options);
        else if (c.laterOptions) expect(piece.options).toEqual(c.laterOptions);
      }
      const whole = reassemble(pieces);
      expect(whole.start).toBe(input.offset);
      expect(whole.mf, 'the last piece has the input\'s MF').toBe(input.mf);
      expect(whole.payload.equals(input.payload), 'reassembly gives the payload back').toBe(true);
    });
  }

  it('refuses a fragment whose pieces would need an offset past 65,528', () => {
    const frame = ipv4Frame(fromClient({ fragment: 8180, payload: pattern(1000) }));
    expect(cut(frame, 500, 63)).toBe(FragmentPlanError.offsetOverflow);
  });

  it('refuses an MTU that cannot carry the header and 8 bytes', () => {
    const frame = ipv4Frame(fromClient({ options: [...TIMESTAMP, ...TIMESTAMP, ...TIMESTAMP, ...ROUTER_ALERT], payload: pattern(100) }));
    expect(cut(frame, 67, 63)).toBe(FragmentPlanError.mtuTooSmall);
  });
});

/** The IP packets among the frames, parsed. */
const ipPackets = (frames: Buffer[]) => frames.filter((f) => f.readUInt16BE(12) === 0x0800).map((f) => f.subarray(14));

describe('the data plane fragments what does not fit the egress MTU', () => {
  const lan1400 = () => {
    const r = articleRouter({}, { lan0Mtu: 1400 });
    r.resolveAll();
    return r;
  };

  it('a 1,500-byte packet without DF leaves lan0 (MTU 1400) in two fragments to web1, counted', () => {
    const r = lan1400();
    const frame = ipv4Frame(fromClient({ payload: udpPayload(1472), id: 77 }));
    r.receive(UP0, frame);
    const sent = r.lan0.take();
    expect(sent).toHaveLength(2);
    for (const f of sent) {
      expect(f.subarray(0, 6).toString('hex')).toBe(MAC.web1.replace(/:/g, ''));
      expect(f.subarray(6, 12).toString('hex')).toBe(MAC.lan0.replace(/:/g, ''));
    }
    const pieces = ipPackets(sent).map(parse);
    expect(pieces.map((p) => p.totalLength)).toEqual([1396, 124]);
    expect(pieces.every((p) => p.ttl === 63)).toBe(true);
    expect(reassemble(pieces).payload.equals(frame.subarray(34))).toBe(true);
    const counters = r.router.counters;
    expect(counters.fragmentation[FragmentCounter.packetsFragmented]).toBe(1);
    expect(counters.fragmentation[FragmentCounter.fragmentsCreated]).toBe(2);
    expect(counters.port(LAN0, 2 /* txPackets */)).toBe(2);
    expect(counters.port(LAN0, 4 /* forwardedPackets */)).toBe(1);
    expect(Array.from(counters.drops).every((n) => n === 0)).toBe(true);
    expect(r.up0.take()).toHaveLength(0);
  });

  it('with DF: dropped, ICMP Fragmentation Needed carrying 1400, nothing on lan0', () => {
    const r = lan1400();
    r.receive(UP0, ipv4Frame(fromClient({ payload: udpPayload(1472), fragment: 0x4000 })));
    expect(r.lan0.take()).toHaveLength(0);
    const [error] = r.up0.take();
    expect([error[34], error[35], error.readUInt16BE(40)]).toEqual([3, 4, 1400]);
    expect(r.router.counters.drops[Drop.mtuExceeded]).toBe(1);
  });

  it('small frames of the same batch still go out, before the fragments', () => {
    const r = lan1400();
    r.receive(UP0, ipv4Frame(fromClient({ id: 1 })), ipv4Frame(fromClient({ payload: udpPayload(1472), id: 2 })), ipv4Frame(fromClient({ id: 3 })));
    expect(r.lan0.take().map((f) => f.readUInt16BE(18))).toEqual([1, 3, 2, 2]);
  });

  it('a held frame too big for the egress is fragmented when the neighbour answers (the same fragmenter)', () => {
    const r = articleRouter({}, { lan0Mtu: 1400 });
    r.lan0.take();
    const frame = ipv4Frame(fromClient({ payload: udpPayload(1472), id: 5 }));
    r.receive(UP0, frame);
    expect(r.lan0.take()).toHaveLength(0);
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web1, senderMac: MAC.web1, senderAddress: '192.168.1.2',
      targetMac: MAC.lan0, targetAddress: '192.168.1.1',
    }));
    const sent = r.lan0.take();
    expect(sent).toHaveLength(2);
    expect(sent.every((f) => f.subarray(0, 6).toString('hex') === MAC.web1.replace(/:/g, ''))).toBe(true);
    const pieces = ipPackets(sent).map(parse);
    expect(pieces.every((p) => p.ttl === 63)).toBe(true);
    expect(reassemble(pieces).payload.equals(frame.subarray(34))).toBe(true);
    expect(r.router.counters.fragmentation[FragmentCounter.packetsFragmented]).toBe(1);
    expect(r.router.counters.drops[Drop.mtuExceeded]).toBe(0);
  });

  it('a fragment that cannot be cut further without overflowing the offset is dropped and counted', () => {
    const r = lan1400();
    r.receive(UP0, ipv4Frame(fromClient({ fragment: 8100, payload: pattern(1480) })));
    expect(r.lan0.take()).toHaveLength(0);
    expect(r.router.counters.drops[Drop.badFragmentOffset]).toBe(1);
  });
});
