// Addresses that are never a next hop and blocks that are never routed
// (RFC 1812 5.3.7, RFC 6890), and the addresses of the router's own subnets
// that cannot be a next hop either: shared by the config loader, the route
// files, the RIB and so the control socket, so each says the same thing
// about the same address.

import { formatAddress, formatPrefix, maskOf, type Prefix } from './ipv4.js';

/** Why `address` cannot be a next hop, or undefined when it can. */
export function nextHopProblem(address: number): string | undefined {
  const first = address >>> 24;
  const text = formatAddress(address);
  if (first === 0) return `${text} is in 0.0.0.0/8 ("this network") and cannot be a next hop`;
  if (first === 127) return `${text} is a loopback address and cannot be a next hop`;
  if (first >= 224 && first <= 239) return `${text} is a multicast address and cannot be a next hop`;
  if (first >= 240) return `${text} is a reserved or broadcast address and cannot be a next hop`;
  return undefined;
}

const NEVER_FORWARDED = 'a router never forwards to it (RFC 1812 5.3.7), so the route could never be used';

/** Blocks whose packets ip4-input drops as martian destinations: a route inside one would never carry a packet. */
const UNROUTABLE: readonly { block: Prefix; name: string; why: string }[] = [
  { block: { address: 0x00000000, length: 8 }, name: '"this network"', why: NEVER_FORWARDED },
  { block: { address: 0x7f000000, length: 8 }, name: 'loopback', why: NEVER_FORWARDED },
  { block: { address: 0xe0000000, length: 4 }, name: 'multicast', why: 'vipr forwards unicast only, so the route could never be used' },
  { block: { address: 0xf0000000, length: 4 }, name: 'reserved', why: NEVER_FORWARDED },
];

/**
 * Why a route for `prefix` is refused, or undefined. Prefixes inside the
 * blocks above are refused; wider ones (the default route, 0.0.0.0/1,
 * 192.0.0.0/2) cover ordinary addresses too and are fine.
 */
export function routePrefixProblem(prefix: Prefix): string | undefined {
  if (prefix.address >>> 0 === 0xffffffff && prefix.length === 32) {
    return '255.255.255.255/32 is the limited broadcast address: a router never forwards it (RFC 1812 5.3.5.1)';
  }
  for (const { block, name, why } of UNROUTABLE) {
    if (prefix.length >= block.length && (prefix.address & maskOf(block.length)) >>> 0 === block.address) {
      return `${formatPrefix(prefix)} is in ${formatPrefix(block)} (${name}): ${why}`;
    }
  }
  return undefined;
}

/** An interface and its IPv4 addresses (each with its subnet's length). */
export interface InterfaceSubnets {
  name: string;
  addresses: readonly { address: number; length: number }[];
}

/**
 * What `address` is to the router, when it is something a server or next
 * hop cannot be: "is this router's own address (lan0 192.168.1.1/27)", "is
 * the network address of lan0's subnet 192.168.1.0/27", "is the broadcast
 * address of ...". Undefined for any other address. /31 and /32 subnets have
 * no network or broadcast address (RFC 3021).
 */
export function connectedAddressRole(address: number, interfaces: Iterable<InterfaceSubnets>): string | undefined {
  const wanted = address >>> 0;
  let role: string | undefined;
  for (const { name, addresses } of interfaces) {
    for (const a of addresses) {
      if (a.address >>> 0 === wanted) return `is this router's own address (${name} ${formatAddress(a.address)}/${a.length})`;
      if (role !== undefined || a.length > 30) continue;
      const network = (a.address & maskOf(a.length)) >>> 0;
      const broadcast = (network | ~maskOf(a.length)) >>> 0;
      const subnet = `${name}'s subnet ${formatPrefix({ address: network, length: a.length })}`;
      if (wanted === network) role = `is the network address of ${subnet}`;
      else if (wanted === broadcast) role = `is the broadcast address of ${subnet}`;
    }
  }
  return role;
}
