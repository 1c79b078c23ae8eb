// vipr's XDP program: the first thing every frame meets on an `io: xdp` port.
//
// It hands vipr (through the AF_XDP socket of the frame's receive queue) the
// frames vipr forwards, and passes everything else to the kernel untouched:
//
//   to vipr   IPv4, unicast to the port's own MAC, to an address that is not
//             one of the box's own (transit traffic)
//   kernel    ARP, IPv4 to one of the box's own addresses (ping 10.0.0.1, ssh,
//             health-check replies), broadcast and multicast frames, frames
//             for other MACs (promiscuous mode), anything not IPv4
//
// The kernel therefore never sees a transit frame: no nftables rule is needed
// to stop it from parsing and routing its own copy (kernelTransit), since it
// gets no copy. vipr still learns from ARP through a packet socket bound to
// ETH_P_ARP beside the AF_XDP socket (XDP cannot clone a frame: one verdict
// per frame, so ARP goes to the kernel, which answers for our addresses, and
// the packet socket taps it there).
//
// Why a map of own addresses rather than bpf_fib_lookup(): the helper refuses
// every lookup with BPF_FIB_LKUP_RET_FWD_DISABLED on an interface whose
// IPv4 forwarding is off, and vipr requires it off on its ports. The addon
// fills `vipr_local_addresses` at attach and the daemon replaces its contents
// whenever the kernel's addresses change (src/daemon/daemon.ts).
//
// Built by native-bindings/binding.gyp (clang -target bpf), embedded in the
// addon, loaded and attached per port by src/vipr_xdp_port.c.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "vipr_xdp_shared.h"

// One AF_XDP socket per receive queue, by queue index.
struct {
  __uint(type, BPF_MAP_TYPE_XSKMAP);
  __uint(max_entries, VIPR_XDP_MAX_QUEUES);
  __type(key, __u32);
  __type(value, __u32);
} vipr_sockets SEC(".maps");

// Every IPv4 address of the box (network byte order): frames to them are the kernel's.
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, VIPR_XDP_MAX_LOCAL_ADDRESSES);
  __type(key, __u32);
  __type(value, __u8);
} vipr_local_addresses SEC(".maps");

// The port's MAC, written by the addon before the program is attached.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct vipr_xdp_port_config);
} vipr_port_config SEC(".maps");

// What became of the frames, per CPU (enum vipr_xdp_verdict); the addon adds them up.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, VIPR_XDP_VERDICTS);
  __type(key, __u32);
  __type(value, __u64);
} vipr_verdicts SEC(".maps");

static __always_inline int count(__u32 verdict, int action) {
  __u64 *n = bpf_map_lookup_elem(&vipr_verdicts, &verdict);
  if (n) *n += 1;
  return action;
}

SEC("xdp")
int vipr_xdp_port(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) return count(VIPR_XDP_PASSED_NOT_IPV4, XDP_PASS);

  __u32 zero = 0;
  struct vipr_xdp_port_config *config = bpf_map_lookup_elem(&vipr_port_config, &zero);
  if (!config) return XDP_PASS;
  // Broadcast and multicast MACs have the group bit set; so no MAC of a port has it.
#pragma unroll
  for (int i = 0; i < ETH_ALEN; i++) {
    if (eth->h_dest[i] != config->mac[i]) return count(VIPR_XDP_PASSED_OTHER_MAC, XDP_PASS);
  }

  struct iphdr *ip = (void *)(eth + 1);
  // A header too short to hold a destination goes to vipr, which counts it as truncated.
  if ((void *)(ip + 1) <= data_end) {
    __u32 destination = ip->daddr;
    if (bpf_map_lookup_elem(&vipr_local_addresses, &destination)) return count(VIPR_XDP_PASSED_LOCAL_ADDRESS, XDP_PASS);
  }

  // No socket on this queue: the kernel gets the frame (and, not forwarding, drops it); counted, so it shows.
  int action = bpf_redirect_map(&vipr_sockets, ctx->rx_queue_index, XDP_PASS);
  return count(action == XDP_REDIRECT ? VIPR_XDP_REDIRECTED : VIPR_XDP_PASSED_NO_SOCKET, action);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
