// What vipr's XDP program (vipr_xdp.bpf.c) and the AF_XDP port that loads it
// (vipr_xdp_port.c) agree on: map sizes, the config entry, the verdict counters.
#ifndef VIPR_XDP_SHARED_H
#define VIPR_XDP_SHARED_H

#include <linux/types.h>

// Receive queues a port can have sockets on. NICs vipr is meant for have at
// most a few dozen; veth has one unless made with numrxqueues.
#define VIPR_XDP_MAX_QUEUES 256

// Addresses of the whole box (every interface, not only vipr's ports: a frame
// to a management address is the kernel's too). A router with more than a
// thousand local addresses is not one this was sized for; the addon refuses
// more with a clear error rather than leaving some out.
#define VIPR_XDP_MAX_LOCAL_ADDRESSES 1024

struct vipr_xdp_port_config {
  __u8 mac[6];
  __u8 pad[2];
};

// Per-frame verdicts of the program, counted per CPU.
enum vipr_xdp_verdict {
  VIPR_XDP_REDIRECTED = 0,      // transit IPv4: to vipr's socket
  VIPR_XDP_PASSED_LOCAL_ADDRESS,  // IPv4 to one of the box's addresses: the kernel's
  VIPR_XDP_PASSED_NOT_IPV4,     // ARP and anything else that is not IPv4
  VIPR_XDP_PASSED_OTHER_MAC,    // broadcast, multicast, or another host's MAC
  VIPR_XDP_PASSED_NO_SOCKET,    // transit IPv4 on a queue without a socket (lost: the kernel does not forward)
  VIPR_XDP_VERDICTS
};

#endif
