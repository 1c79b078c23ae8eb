// ARP requests for IPv4 over Ethernet (RFC 826). Slow path.

import {
  ARP_HLEN, ARP_HTYPE, ARP_OPER, ARP_PLEN, ARP_PTYPE, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_THA, ARP_TPA,
  ETHER_DST, ETHER_MIN_FRAME, ETHER_SRC, ETHER_TYPE, ETHERTYPE_ARP, ETHERTYPE_IPV4,
} from './layout.js';

function writeAddress(out: Uint8Array, at: number, address: number): void {
  out[at] = address >>> 24;
  out[at + 1] = (address >>> 16) & 0xff;
  out[at + 2] = (address >>> 8) & 0xff;
  out[at + 3] = address & 0xff;
}

/**
 * Writes an ARP request "who has `target`, tell `sender`" into `out` at 0 and
 * returns its length (padded to the Ethernet minimum). `destinationMac` null
 * broadcasts it; a MAC sends it unicast, as a refresh of a known entry.
 */
export function writeArpRequest(
  out: Uint8Array, senderMac: Uint8Array, senderAddress: number, target: number, destinationMac: Uint8Array | null,
): number {
  out.fill(0, 0, ETHER_MIN_FRAME);
  for (let k = 0; k < 6; k++) {
    out[ETHER_DST + k] = destinationMac ? destinationMac[k] : 0xff;
    out[ETHER_SRC + k] = senderMac[k];
    out[ARP_SHA + k] = senderMac[k];
    out[ARP_THA + k] = 0;
  }
  out[ETHER_TYPE] = ETHERTYPE_ARP >> 8;
  out[ETHER_TYPE + 1] = ETHERTYPE_ARP & 0xff;
  out[ARP_HTYPE] = 0;
  out[ARP_HTYPE + 1] = 1;
  out[ARP_PTYPE] = ETHERTYPE_IPV4 >> 8;
  out[ARP_PTYPE + 1] = ETHERTYPE_IPV4 & 0xff;
  out[ARP_HLEN] = 6;
  out[ARP_PLEN] = 4;
  out[ARP_OPER] = 0;
  out[ARP_OPER + 1] = ARP_REQUEST;
  writeAddress(out, ARP_SPA, senderAddress);
  writeAddress(out, ARP_TPA, target);
  return ETHER_MIN_FRAME;
}
