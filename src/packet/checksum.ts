// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
// All functions read bytes directly so they work on any slot of a batch buffer
// without creating views.

/** Ones' complement sum of `length` bytes starting at `offset`, folded to 16 bits (not inverted). */
export function onesComplementSum(buf: Uint8Array, offset: number, length: number, initial = 0): number {
  let sum = initial;
  const end = offset + (length & ~1);
  for (let i = offset; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (length & 1) sum += buf[offset + length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The checksum to store: inverted ones' complement sum. */
export function internetChecksum(buf: Uint8Array, offset: number, length: number): number {
  return ~onesComplementSum(buf, offset, length) & 0xffff;
}

/**
 * True when the IPv4 header at `offset` (length `headerLength` bytes, checksum
 * included) sums to 0xffff, i.e. its checksum is right.
 */
export function ipv4HeaderChecksumValid(buf: Uint8Array, offset: number, headerLength: number): boolean {
  return onesComplementSum(buf, offset, headerLength) === 0xffff;
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word changing from
 * `oldWord` to `newWord`. Unlike RFC 1141's shortcut it never yields 0xffff
 * (-0) for a header whose true checksum is 0x0000.
 */
export function checksumAdjust(checksum: number, oldWord: number, newWord: number): number {
  let sum = (~checksum & 0xffff) + (~oldWord & 0xffff) + newWord;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
