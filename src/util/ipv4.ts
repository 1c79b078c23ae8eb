// IPv4 addresses and prefixes as plain unsigned 32-bit numbers.
//
// Control plane only (config, control commands): these functions allocate and
// throw. The data plane never parses text; it gets numbers from here, once.
//
// Parsing is strict on purpose. "01.2.3.4" is refused because inet_aton() and
// friends read a leading zero as octal (010 = 8), so the same text would mean
// two different addresses to vipr and to the tools an operator checks it with.

import { IPv4Mask } from 'ip-num';

export class Ipv4Error extends Error {
  readonly code = 'EINVALIDIPV4' as const;
  /** The exact text that was refused. */
  readonly input: string;

  constructor(input: string, message: string) {
    super(message);
    this.name = 'Ipv4Error';
    this.input = input;
  }
}

export interface Prefix {
  /** Network address, host bits all zero. */
  address: number;
  /** Prefix length, 0..32. */
  length: number;
}

const DECIMAL = /^[0-9]+$/;
const WHITESPACE = /\s/;

/**
 * Parses the reason an address text is bad, or returns its value.
 * Shared by parseAddress and parsePrefix so both say the same thing.
 */
function addressOrReason(text: string): number | string {
  if (text.length === 0) return 'it is empty';
  if (WHITESPACE.test(text)) return 'it contains whitespace';
  const parts = text.split('.');
  if (parts.length !== 4) return 'expected four decimal numbers separated by dots';
  let value = 0;
  for (const part of parts) {
    if (part.length === 0) return 'expected four decimal numbers separated by dots';
    if (!DECIMAL.test(part)) return `"${part}" is not a decimal number`;
    if (part.length > 1 && part[0] === '0') {
      return `"${part}" has a leading zero (some tools read that as octal)`;
    }
    const octet = Number(part);
    if (octet > 255) return `${part} is greater than 255`;
    value = value * 256 + octet;
  }
  return value;
}

/** "192.168.1.2" -> 0xc0a80102. Throws Ipv4Error on anything else. */
export function parseAddress(text: string): number {
  const result = addressOrReason(text);
  if (typeof result === 'string') {
    throw new Ipv4Error(text, `"${text}" is not an IPv4 address: ${result}`);
  }
  return result;
}

/**
 * Accepts a signed or unsigned 32-bit integer (results of `&`, `|` and `<<`
 * are signed in JavaScript) and prints dotted decimal.
 */
export function formatAddress(addr: number): string {
  if (!Number.isInteger(addr) || addr < -0x80000000 || addr > 0xffffffff) {
    throw new Ipv4Error(String(addr), `${addr} is not a 32-bit IPv4 address value`);
  }
  const u = addr >>> 0;
  return `${u >>> 24}.${(u >>> 16) & 0xff}.${(u >>> 8) & 0xff}.${u & 0xff}`;
}

/** Unsigned mask with `length` leading one bits; maskOf(0) = 0, maskOf(32) = 0xffffffff. */
export function maskOf(length: number): number {
  if (!Number.isInteger(length) || length < 0 || length > 32) {
    throw new Ipv4Error(String(length), `${length} is not a prefix length from 0 to 32`);
  }
  // `x << 32` is `x << 0` in JavaScript, so /0 needs its own case.
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** True when `addr` lies inside `p`. */
export function contains(p: Prefix, addr: number): boolean {
  return ((addr & maskOf(p.length)) >>> 0) === p.address;
}

/** "192.168.1.32/27". */
export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.address)}/${p.length}`;
}

const CIDR_FORM = /^([^/\s]*)\/([^/\s]*)$/;
const NETMASK_FORM = /^(\S+)[ \t]+(\S+)$/;

/**
 * Accepts "192.168.1.32/27", the Cisco form "192.168.1.32 255.255.255.224"
 * (one or more spaces) and a bare address, which means /32.
 * Host bits must be zero: "192.168.1.33/27" is almost always a typo for either
 * the network or a single host, and silently masking it would route a
 * different subnet from the one the operator believes they wrote.
 */
export function parsePrefix(text: string): Prefix {
  const fail = (reason: string): never => {
    throw new Ipv4Error(text, `"${text}" is not an IPv4 prefix: ${reason}`);
  };
  if (text.length === 0) fail('it is empty');
  if (text !== text.trim()) fail('it has leading or trailing whitespace');

  let addressText: string;
  let length: number;
  let netmaskText: string | undefined;

  const cidr = CIDR_FORM.exec(text);
  const netmaskForm = cidr === null ? NETMASK_FORM.exec(text) : null;
  if (cidr !== null) {
    addressText = cidr[1];
    const lengthText = cidr[2];
    if (lengthText.length === 0) fail('the length after "/" is missing');
    if (typeof addressOrReason(lengthText) === 'number') {
      fail(`"/${lengthText}" is a netmask; write it as "${addressText} ${lengthText}" or use a length`);
    }
    if (!DECIMAL.test(lengthText) || (lengthText.length > 1 && lengthText[0] === '0') || Number(lengthText) > 32) {
      fail(`length "${lengthText}" is not a whole number from 0 to 32`);
    }
    length = Number(lengthText);
  } else if (netmaskForm !== null) {
    addressText = netmaskForm[1];
    netmaskText = netmaskForm[2];
    const mask = addressOrReason(netmaskText);
    if (typeof mask === 'string') fail(`netmask "${netmaskText}": ${mask}`);
    try {
      // ip-num validates that the one bits are contiguous and counts them.
      length = new IPv4Mask(netmaskText).prefix;
    } catch {
      return fail(`netmask ${netmaskText} is not contiguous (all its one bits must come first)`);
    }
  } else if (text.includes('/')) {
    return fail('expected ADDRESS/LENGTH, "ADDRESS NETMASK" or a bare ADDRESS');
  } else if (WHITESPACE.test(text)) {
    return fail('expected ADDRESS/LENGTH, "ADDRESS NETMASK" or a bare ADDRESS');
  } else {
    addressText = text;
    length = 32;
  }

  if (addressText.length === 0) fail('the address is missing');
  const address = addressOrReason(addressText);
  if (typeof address === 'string') return fail(address);

  const network = (address & maskOf(length)) >>> 0;
  if (network !== address) {
    const suggestion = netmaskText === undefined
      ? `${formatAddress(network)}/${length}`
      : `${formatAddress(network)} ${netmaskText}`;
    throw new Ipv4Error(text, `${text} has host bits set; did you mean ${suggestion}?`);
  }
  return { address, length };
}
