import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  contains,
  formatAddress,
  formatPrefix,
  Ipv4Error,
  maskOf,
  parseAddress,
  parsePrefix,
  type Prefix,
} from '../../src/util/ipv4.js';

function thrown(run: () => unknown): Ipv4Error {
  try {
    run();
  } catch (error) {
    if (error instanceof Ipv4Error) return error;
    throw error;
  }
  throw new Error('expected an Ipv4Error, nothing was thrown');
}

describe('parseAddress', () => {
  it.each([
    ['192.168.1.2', 0xc0a80102],
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['10.0.0.254', 0x0a0000fe],
    ['1.0.0.0', 0x01000000],
    ['0.0.0.1', 1],
    ['128.0.0.0', 0x80000000],
  ])('%s -> %d', (text, expected) => {
    expect(parseAddress(text)).toBe(expected);
  });

  it.each([
    ['192.168.1', '"192.168.1" is not an IPv4 address: expected four decimal numbers separated by dots'],
    ['1.2.3.4.5', '"1.2.3.4.5" is not an IPv4 address: expected four decimal numbers separated by dots'],
    ['1..2.3', '"1..2.3" is not an IPv4 address: expected four decimal numbers separated by dots'],
    ['1.2.3.', '"1.2.3." is not an IPv4 address: expected four decimal numbers separated by dots'],
    ['', '"" is not an IPv4 address: it is empty'],
    ['256.1.1.1', '"256.1.1.1" is not an IPv4 address: 256 is greater than 255'],
    ['1.2.3.1000', '"1.2.3.1000" is not an IPv4 address: 1000 is greater than 255'],
    ['01.2.3.4', '"01.2.3.4" is not an IPv4 address: "01" has a leading zero (some tools read that as octal)'],
    ['1.2.3.00', '"1.2.3.00" is not an IPv4 address: "00" has a leading zero (some tools read that as octal)'],
    [' 1.2.3.4', '" 1.2.3.4" is not an IPv4 address: it contains whitespace'],
    ['1.2.3.4 ', '"1.2.3.4 " is not an IPv4 address: it contains whitespace'],
    ['1.2. 3.4', '"1.2. 3.4" is not an IPv4 address: it contains whitespace'],
    ['1.2.3.x', '"1.2.3.x" is not an IPv4 address: "x" is not a decimal number'],
    ['-1.2.3.4', '"-1.2.3.4" is not an IPv4 address: "-1" is not a decimal number'],
    ['0x1.2.3.4', '"0x1.2.3.4" is not an IPv4 address: "0x1" is not a decimal number'],
    ['1.2.3.4/32', '"1.2.3.4/32" is not an IPv4 address: "4/32" is not a decimal number'],
  ])('refuses %j', (text, message) => {
    const error = thrown(() => parseAddress(text));
    expect(error.message).toBe(message);
    expect(error.code).toBe('EINVALIDIPV4');
    expect(error.input).toBe(text);
  });
});

describe('formatAddress', () => {
  it.each([
    [0xc0a80102, '192.168.1.2'],
    [0, '0.0.0.0'],
    [0xffffffff, '255.255.255.255'],
    // Bitwise results are signed in JavaScript; they mean the same address.
    [-1, '255.255.255.255'],
    [0xc0a80100 | 0, '192.168.1.0'],
  ])('%d -> %s', (value, expected) => {
    expect(formatAddress(value)).toBe(expected);
  });

  it.each([
    [1.5, '1.5 is not a 32-bit IPv4 address value'],
    [2 ** 32, '4294967296 is not a 32-bit IPv4 address value'],
    [Number.NaN, 'NaN is not a 32-bit IPv4 address value'],
  ])('refuses %d', (value, message) => {
    expect(thrown(() => formatAddress(value)).message).toBe(message);
  });

  it('round-trips every address', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (value) => parseAddress(formatAddress(value)) === value),
    );
  });
});

describe('maskOf', () => {
  it.each([
    [0, 0],
    [1, 0x80000000],
    [8, 0xff000000],
    [24, 0xffffff00],
    [27, 0xffffffe0],
    [31, 0xfffffffe],
    [32, 0xffffffff],
  ])('/%d -> %d', (length, mask) => {
    expect(maskOf(length)).toBe(mask);
  });

  it.each([
    [-1, '-1 is not a prefix length from 0 to 32'],
    [33, '33 is not a prefix length from 0 to 32'],
    [2.5, '2.5 is not a prefix length from 0 to 32'],
  ])('refuses %d', (length, message) => {
    expect(thrown(() => maskOf(length)).message).toBe(message);
  });
});

describe('parsePrefix', () => {
  it.each<[string, Prefix, string]>([
    ['192.168.1.32/27', { address: 0xc0a80120, length: 27 }, '192.168.1.32/27'],
    ['192.168.1.32 255.255.255.224', { address: 0xc0a80120, length: 27 }, '192.168.1.32/27'],
    ['192.168.1.32    255.255.255.224', { address: 0xc0a80120, length: 27 }, '192.168.1.32/27'],
    ['192.168.1.0 255.255.255.0', { address: 0xc0a80100, length: 24 }, '192.168.1.0/24'],
    ['0.0.0.0/0', { address: 0, length: 0 }, '0.0.0.0/0'],
    ['0.0.0.0 0.0.0.0', { address: 0, length: 0 }, '0.0.0.0/0'],
    ['192.168.1.33', { address: 0xc0a80121, length: 32 }, '192.168.1.33/32'],
    ['192.168.1.33/32', { address: 0xc0a80121, length: 32 }, '192.168.1.33/32'],
    ['192.168.1.33 255.255.255.255', { address: 0xc0a80121, length: 32 }, '192.168.1.33/32'],
    ['10.0.0.0/8', { address: 0x0a000000, length: 8 }, '10.0.0.0/8'],
    ['128.0.0.0/1', { address: 0x80000000, length: 1 }, '128.0.0.0/1'],
  ])('%s', (text, expected, formatted) => {
    const prefix = parsePrefix(text);
    expect(prefix).toEqual(expected);
    expect(formatPrefix(prefix)).toBe(formatted);
  });

  it.each([
    ['192.168.1.33/27', '192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?'],
    ['10.1.2.3/8', '10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?'],
    ['1.2.3.4/0', '1.2.3.4/0 has host bits set; did you mean 0.0.0.0/0?'],
    [
      '192.168.1.33 255.255.255.224',
      '192.168.1.33 255.255.255.224 has host bits set; did you mean 192.168.1.32 255.255.255.224?',
    ],
    [
      '192.168.1.0 255.0.255.0',
      '"192.168.1.0 255.0.255.0" is not an IPv4 prefix: netmask 255.0.255.0 is not contiguous (all its one bits must come first)',
    ],
    [
      '10.0.0.0 0.255.255.255',
      '"10.0.0.0 0.255.255.255" is not an IPv4 prefix: netmask 0.255.255.255 is not contiguous (all its one bits must come first)',
    ],
    [
      '10.0.0.0 255.0.0.256',
      '"10.0.0.0 255.0.0.256" is not an IPv4 prefix: netmask "255.0.0.256": 256 is greater than 255',
    ],
    ['10.0.0.0 8', '"10.0.0.0 8" is not an IPv4 prefix: netmask "8": expected four decimal numbers separated by dots'],
    ['1.2.3.0/33', '"1.2.3.0/33" is not an IPv4 prefix: length "33" is not a whole number from 0 to 32'],
    ['1.2.3.0/024', '"1.2.3.0/024" is not an IPv4 prefix: length "024" is not a whole number from 0 to 32'],
    ['1.2.3.0/x', '"1.2.3.0/x" is not an IPv4 prefix: length "x" is not a whole number from 0 to 32'],
    ['1.2.3.0/', '"1.2.3.0/" is not an IPv4 prefix: the length after "/" is missing'],
    ['/24', '"/24" is not an IPv4 prefix: the address is missing'],
    [
      '1.2.3.0/255.255.255.0',
      '"1.2.3.0/255.255.255.0" is not an IPv4 prefix: "/255.255.255.0" is a netmask; write it as "1.2.3.0 255.255.255.0" or use a length',
    ],
    ['1.2.3/24', '"1.2.3/24" is not an IPv4 prefix: expected four decimal numbers separated by dots'],
    ['01.2.3.0/24', '"01.2.3.0/24" is not an IPv4 prefix: "01" has a leading zero (some tools read that as octal)'],
    ['300.1.1.0/24', '"300.1.1.0/24" is not an IPv4 prefix: 300 is greater than 255'],
    [' 10.0.0.0/8', '" 10.0.0.0/8" is not an IPv4 prefix: it has leading or trailing whitespace'],
    ['10.0.0.0/8 ', '"10.0.0.0/8 " is not an IPv4 prefix: it has leading or trailing whitespace'],
    ['10.0.0.0 / 8', '"10.0.0.0 / 8" is not an IPv4 prefix: expected ADDRESS/LENGTH, "ADDRESS NETMASK" or a bare ADDRESS'],
    [
      '10.0.0.0 255.0.0.0 x',
      '"10.0.0.0 255.0.0.0 x" is not an IPv4 prefix: expected ADDRESS/LENGTH, "ADDRESS NETMASK" or a bare ADDRESS',
    ],
    ['1.2.3.0/24/8', '"1.2.3.0/24/8" is not an IPv4 prefix: expected ADDRESS/LENGTH, "ADDRESS NETMASK" or a bare ADDRESS'],
    ['', '"" is not an IPv4 prefix: it is empty'],
  ])('refuses %j', (text, message) => {
    const error = thrown(() => parsePrefix(text));
    expect(error.message).toBe(message);
    expect(error.message).not.toContain('\n');
    expect(error.input).toBe(text);
  });

  it('round-trips every network prefix', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), (value, length) => {
        const prefix = { address: (value & maskOf(length)) >>> 0, length };
        expect(parsePrefix(formatPrefix(prefix))).toEqual(prefix);
        expect(parsePrefix(`${formatAddress(prefix.address)} ${formatAddress(maskOf(length))}`)).toEqual(prefix);
      }),
    );
  });
});

describe('contains', () => {
  const vips = parsePrefix('192.168.1.32/27');
  it.each<[Prefix, string, boolean]>([
    [vips, '192.168.1.32', true],
    [vips, '192.168.1.33', true],
    [vips, '192.168.1.63', true],
    [vips, '192.168.1.31', false],
    [vips, '192.168.1.64', false],
    [parsePrefix('0.0.0.0/0'), '255.255.255.255', true],
    [parsePrefix('0.0.0.0/0'), '0.0.0.0', true],
    [parsePrefix('255.255.255.255/32'), '255.255.255.255', true],
    [parsePrefix('255.255.255.255/32'), '255.255.255.254', false],
    [parsePrefix('128.0.0.0/1'), '200.1.1.1', true],
    [parsePrefix('128.0.0.0/1'), '127.255.255.255', false],
  ])('%j contains %s: %s', (prefix, address, expected) => {
    expect(contains(prefix, parseAddress(address))).toBe(expected);
  });
});
