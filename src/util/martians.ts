// Addresses that are never a next hop (RFC 1812 5.3.7, RFC 6890): shared by
// the config loader, the route files and the control socket, so each says
// the same thing about the same address.

import { formatAddress } from './ipv4.js';

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
