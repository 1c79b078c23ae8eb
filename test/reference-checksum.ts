// A second Internet checksum (RFC 1071), written apart from
// src/packet/checksum.ts so that tests can build expected frames without the
// code they test: one's complement addition word by word, the end-around
// carry taken at every step (src/packet/checksum.ts defers the carries and
// folds once). test/unit/checksum.test.ts holds both to the RFC's numbers.

/** The checksum to store in a header whose checksum field is zero (or, over a whole header, 0 when it is right). */
export function referenceChecksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += bytes[i] * 256 + (i + 1 < bytes.length ? bytes[i + 1] : 0); // an odd last byte is padded with zero
    if (sum > 0xffff) sum -= 0xffff;
  }
  return 0xffff - sum;
}
