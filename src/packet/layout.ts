// Byte offsets and constants of the headers vipr reads and writes, so stages
// index frames by name instead of by magic number. Frames start at offset 0 of
// their slot; an untagged Ethernet header is 14 bytes, so IPv4 starts at 14.

export const ETHER_DST = 0;
export const ETHER_SRC = 6;
export const ETHER_TYPE = 12;
export const ETHER_HEADER_LENGTH = 14;
export const ETHER_ADDRESS_LENGTH = 6;

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;

/** Offsets of IPv4 header fields, relative to the start of the frame. */
export const IP = ETHER_HEADER_LENGTH;
export const IP_VERSION_IHL = IP + 0;
export const IP_TOS = IP + 1;
export const IP_TOTAL_LENGTH = IP + 2;
export const IP_ID = IP + 4;
export const IP_FLAGS_FRAGMENT = IP + 6;
export const IP_TTL = IP + 8;
export const IP_PROTOCOL = IP + 9;
export const IP_CHECKSUM = IP + 10;
export const IP_SRC = IP + 12;
export const IP_DST = IP + 16;
export const IP_MIN_HEADER_LENGTH = 20;

export const IP_FLAG_DF = 0x4000;
export const IP_FLAG_MF = 0x2000;
export const IP_FRAGMENT_OFFSET_MASK = 0x1fff;

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

/** TCP header offsets, relative to the start of the TCP header. */
export const TCP_SRC_PORT = 0;
export const TCP_DST_PORT = 2;
/** Data offset (header length in 32-bit words) in the high nibble. */
export const TCP_DATA_OFFSET = 12;
export const TCP_FLAGS = 13;
export const TCP_MIN_HEADER_LENGTH = 20;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export const UDP_HEADER_LENGTH = 8;
/** ICMP header: type, code, checksum, then a 4-byte word (identifier and sequence for queries). */
export const ICMP_HEADER_LENGTH = 8;

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_SOURCE_QUENCH = 4;
export const ICMP_REDIRECT = 5;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;
export const ICMP_PARAMETER_PROBLEM = 12;

export const ICMP_UNREACH_NET = 0;
export const ICMP_UNREACH_HOST = 1;
export const ICMP_UNREACH_NEEDFRAG = 4;
export const ICMP_TIMXCEED_INTRANS = 0;

/** ARP over Ethernet/IPv4, offsets relative to the start of the frame. */
export const ARP = ETHER_HEADER_LENGTH;
export const ARP_HTYPE = ARP + 0;
export const ARP_PTYPE = ARP + 2;
export const ARP_HLEN = ARP + 4;
export const ARP_PLEN = ARP + 5;
export const ARP_OPER = ARP + 6;
export const ARP_SHA = ARP + 8;
export const ARP_SPA = ARP + 14;
export const ARP_THA = ARP + 18;
export const ARP_TPA = ARP + 24;
export const ARP_LENGTH = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

/** Shortest Ethernet frame on the wire without FCS; shorter frames are padded. */
export const ETHER_MIN_FRAME = 60;
