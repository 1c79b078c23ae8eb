// The Internet checksum against numbers worked out in the RFCs, not against
// itself: RFC 1071's example, a real IPv4 header, RFC 1624's incremental
// update (the -0 case). The test-side reference (test/reference-checksum.ts),
// which dataplane.test.ts builds its expected frames with, is held to the same numbers.

import { describe, expect, it } from 'vitest';
import { checksumAdjust, internetChecksum, ipv4HeaderChecksumValid, onesComplementSum } from '../../src/packet/checksum.js';
import { referenceChecksum } from '../reference-checksum.js';

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));

/** RFC 1071 section 3, "Numerical Examples". */
const RFC1071_BYTES = hex('00 01 f2 03 f4 f5 f6 f7');
/** An IPv4 header (UDP, 192.168.0.1 -> 192.168.0.199, TTL 64, DF) with its checksum b861. */
const IPV4_HEADER = hex('45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7');
const withoutChecksum = (header: Uint8Array) => {
  const copy = Uint8Array.from(header);
  copy[10] = 0;
  copy[11] = 0;
  return copy;
};

describe('Internet checksum (RFC 1071)', () => {
  it("RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2, checksum 220d", () => {
    expect(onesComplementSum(RFC1071_BYTES, 0, 8)).toBe(0xddf2);
    expect(internetChecksum(RFC1071_BYTES, 0, 8)).toBe(0x220d);
    expect(referenceChecksum(RFC1071_BYTES)).toBe(0x220d);
  });

  it('reads at an offset, and pads an odd last byte with zero', () => {
    const shifted = new Uint8Array(11);
    shifted.set(RFC1071_BYTES, 3);
    expect(internetChecksum(shifted, 3, 8)).toBe(0x220d);
    // 0001 + f203 + f4f5 + f600 = 2dcf9 -> dcfb
    expect(onesComplementSum(RFC1071_BYTES, 0, 7)).toBe(0xdcfb);
    expect(internetChecksum(RFC1071_BYTES, 0, 7)).toBe(0xffff - 0xdcfb);
    expect(referenceChecksum(RFC1071_BYTES.subarray(0, 7))).toBe(0xffff - 0xdcfb);
  });

  it('a real IPv4 header: checksum b861, and the header with it sums to ffff', () => {
    expect(internetChecksum(withoutChecksum(IPV4_HEADER), 0, 20)).toBe(0xb861);
    expect(referenceChecksum(withoutChecksum(IPV4_HEADER))).toBe(0xb861);
    expect(onesComplementSum(IPV4_HEADER, 0, 20)).toBe(0xffff);
    expect(ipv4HeaderChecksumValid(IPV4_HEADER, 0, 20)).toBe(true);
    expect(referenceChecksum(IPV4_HEADER)).toBe(0);
  });

  it('a header with one bit flipped is not valid', () => {
    for (let bit = 0; bit < 20 * 8; bit++) {
      const damaged = Uint8Array.from(IPV4_HEADER);
      damaged[bit >> 3] ^= 0x80 >> (bit & 7);
      expect(ipv4HeaderChecksumValid(damaged, 0, 20), `bit ${bit}`).toBe(false);
    }
  });
});

describe('incremental update (RFC 1624)', () => {
  it("RFC 1624 section 4's example: m 5555 -> 3285 under HC dd2f gives 0000 (eqn. 3), not RFC 1141's ffff", () => {
    // The rest of the header sums to cd7a: HC = ~(cd7a + 5555) = dd2f; recomputed, HC' = ~(cd7a + 3285) = ~ffff = 0000.
    expect(checksumAdjust(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('TTL 64 -> 63 in the real header: b861 -> b961, as recomputing gives', () => {
    expect(checksumAdjust(0xb861, 0x4011, 0x3f11)).toBe(0xb961);
    const decremented = withoutChecksum(IPV4_HEADER);
    decremented[8] = 0x3f;
    expect(internetChecksum(decremented, 0, 20)).toBe(0xb961);
    expect(referenceChecksum(decremented)).toBe(0xb961);
  });

  it('agrees with recomputing for every TTL decrement of the real header', () => {
    for (let ttl = 1; ttl <= 255; ttl++) {
      for (const id of [0x0000, 0x1234, 0xbeef, 0xffff]) {
        const header = withoutChecksum(IPV4_HEADER);
        header[4] = id >> 8;
        header[5] = id & 0xff;
        header[8] = ttl;
        const before = referenceChecksum(header);
        header[8] = ttl - 1;
        const after = referenceChecksum(header);
        expect(checksumAdjust(before, (ttl << 8) | 0x11, ((ttl - 1) << 8) | 0x11), `id ${id} ttl ${ttl}`).toBe(after);
      }
    }
  });
});
