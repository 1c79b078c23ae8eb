// bench/lab/cfwd-xdp.c: a minimal IPv4 forwarder in C on AF_XDP, the physical
// anchor of a userspace forwarder on vipr's io: xdp backend, as bench/lab/
// cfwd.c is on AF_PACKET rings. Same command line, same forwarding, same
// report; only the packet API differs.
//
// It does per frame what vipr's data plane does on the forwarding path, on
// the same packet path as io: xdp (native-bindings/src/vipr_xdp_port.c):
// vipr's own XDP program (the object file the native build leaves in
// native-bindings/build/Release/vipr_xdp.bpf.o, given with --xdp-object) on
// each port, attached through a bpf_link, hands it transit IPv4 and passes the
// rest (ARP, the router's own addresses) to the kernel; one AF_XDP socket on
// queue 0 of each port (the lab's veths have one queue), 4096 UMEM frames of
// 2 KB, half on the fill ring, half for sending, XDP_USE_NEED_WAKEUP. Each
// burst is copied out of UMEM into a batch of slots and each forwarded frame
// copied into a transmit frame of the other port's UMEM, the two copies vipr
// makes (JS owns its batch), so the two compare frame for frame. The frames
// are checked (IPv4, header length, header checksum, TTL, not for the router
// itself), rewritten (the next hop's and the port's MAC, TTL - 1, the header
// checksum patched as RFC 1624 says) and sent with one kick (copy mode: one
// sendto per 32 frames, the kernel's budget). It waits with poll(), as vipr's
// event loop does (--busy-poll: it spins). No routing: a static next hop per
// port; frames that arrive on one port leave through the other.
//
//   cfwd-xdp --xdp-object native-bindings/build/Release/vipr_xdp.bpf.o
//            --port up0=02:00:00:00:00:02 --port lan0=02:00:00:01:00:02
//            [--batch 256] [--busy-poll] [--mode auto|copy|zerocopy]
//   (--port NAME=MAC: the port, and the MAC of the next hop behind it)
//
// Prints {"event":"ready",...} once both ports are open (with the attach and
// copy mode the kernel chose), and on SIGTERM or SIGINT one JSON line with its
// counters. Pin it with taskset. Built by the benches with
// compileC(..., { libraries: ['-lxdp', '-lbpf'] }) (bench/lab/common.ts).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define MAX_BATCH 1024
#define SLOT_SIZE 2048  // a 1518-byte frame fits, as in vipr's batch
#define MAX_LOCAL 64
// vipr's io: xdp geometry (src/io/xdp-port.ts defaults): 4096 frames of 2 KB, half each way.
#define FRAME_SIZE 2048
#define FRAMES 4096
#define RX_FRAMES (FRAMES / 2)
#define TX_FRAMES (FRAMES / 2)

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

// ---- the batch: frames copied out of UMEM, as vipr's FrameBatch ------------------

struct batch {
  uint8_t data[MAX_BATCH][SLOT_SIZE];
  uint16_t len[MAX_BATCH];
  uint16_t out[MAX_BATCH];  // the slots to send, in order
  unsigned count, out_count;
};

// ---- ports ------------------------------------------------------------------------

struct port {
  const char *name;
  int ifindex;
  uint8_t mac[6];       // this port's own
  uint8_t next_hop[6];  // where frames leaving through this port go
  int fd;               // the AF_XDP socket: what poll() waits on
  struct bpf_object *object;
  int link_fd;
  const char *attach;
  int zerocopy;
  uint8_t *area;
  struct xsk_umem *umem;
  struct xsk_socket *xsk;
  struct xsk_ring_prod fill, tx_ring;
  struct xsk_ring_cons comp, rx_ring;
  uint64_t tx_free[TX_FRAMES];  // transmit frames not in flight
  unsigned tx_free_count;
  unsigned long long rx, tx, tx_failed, tx_blocked, kicks;
};

static uint32_t local_addr[MAX_LOCAL];  // network byte order
static unsigned local_count;

static int fail(const struct port *p, const char *what, int err) {
  fprintf(stderr, "cfwd-xdp: %s: %s: %s\n", p->name, what, strerror(err));
  return -1;
}

// vipr's program, its maps filled (this port's MAC, the box's addresses, the
// socket), attached natively if the driver can, else generic.
static int open_port(struct port *p, const char *object_path, uint16_t bind_flags) {
  p->object = bpf_object__open_file(object_path, NULL);
  if (!p->object) return fail(p, "open the XDP object", errno);
  int r = bpf_object__load(p->object);
  if (r < 0) return fail(p, "load the XDP program", -r);
  int config_map = bpf_object__find_map_fd_by_name(p->object, "vipr_port_config");
  int local_map = bpf_object__find_map_fd_by_name(p->object, "vipr_local_addresses");
  int sockets_map = bpf_object__find_map_fd_by_name(p->object, "vipr_sockets");
  struct bpf_program *program = bpf_object__find_program_by_name(p->object, "vipr_xdp_port");
  if (config_map < 0 || local_map < 0 || sockets_map < 0 || !program) return fail(p, "not vipr's XDP object", ENOENT);
  uint32_t zero = 0;
  uint8_t config[8] = {0};
  memcpy(config, p->mac, 6);
  uint8_t one = 1;
  if (bpf_map_update_elem(config_map, &zero, config, BPF_ANY) < 0) return fail(p, "set the MAC", errno);
  for (unsigned i = 0; i < local_count; i++)
    if (bpf_map_update_elem(local_map, &local_addr[i], &one, BPF_ANY) < 0) return fail(p, "set the local addresses", errno);

  p->area = mmap(NULL, (size_t)FRAMES * FRAME_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p->area == MAP_FAILED) return fail(p, "mmap(UMEM)", errno);
  struct xsk_umem_config umem_config = {.fill_size = RX_FRAMES, .comp_size = TX_FRAMES, .frame_size = FRAME_SIZE};
  r = xsk_umem__create(&p->umem, p->area, (uint64_t)FRAMES * FRAME_SIZE, &p->fill, &p->comp, &umem_config);
  if (r < 0) return fail(p, "register the UMEM", -r);
  struct xsk_socket_config socket_config = {
      .rx_size = RX_FRAMES, .tx_size = TX_FRAMES, .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD, .bind_flags = bind_flags};
  r = xsk_socket__create(&p->xsk, p->name, 0, p->umem, &p->rx_ring, &p->tx_ring, &socket_config);
  if (r < 0) return fail(p, "bind an AF_XDP socket to queue 0", -r);
  p->fd = xsk_socket__fd(p->xsk);
  struct xdp_options options = {0};
  socklen_t len = sizeof options;
  p->zerocopy = getsockopt(p->fd, SOL_XDP, XDP_OPTIONS, &options, &len) == 0 && (options.flags & XDP_OPTIONS_ZEROCOPY);
  uint32_t index = 0;
  xsk_ring_prod__reserve(&p->fill, RX_FRAMES, &index);
  for (uint32_t k = 0; k < RX_FRAMES; k++) *xsk_ring_prod__fill_addr(&p->fill, index + k) = (uint64_t)k * FRAME_SIZE;
  xsk_ring_prod__submit(&p->fill, RX_FRAMES);
  for (uint32_t k = 0; k < TX_FRAMES; k++) p->tx_free[k] = (uint64_t)(RX_FRAMES + k) * FRAME_SIZE;
  p->tx_free_count = TX_FRAMES;
  if (bpf_map_update_elem(sockets_map, &zero, &p->fd, BPF_ANY) < 0) return fail(p, "put the socket in the program's map", errno);

  const uint32_t modes[2] = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
  for (int m = 0; m < 2; m++) {
    LIBBPF_OPTS(bpf_link_create_opts, link_options, .flags = modes[m]);
    p->link_fd = bpf_link_create(bpf_program__fd(program), p->ifindex, BPF_XDP, &link_options);
    if (p->link_fd >= 0) {
      p->attach = m == 0 ? "native" : "generic";
      return 0;
    }
  }
  return fail(p, "attach the XDP program", errno);
}

static unsigned xdp_rx(struct port *p, struct batch *b, unsigned max) {
  uint32_t rx_index = 0, fill_index = 0;
  unsigned n = xsk_ring_cons__peek(&p->rx_ring, max, &rx_index);
  if (n == 0) return 0;
  xsk_ring_prod__reserve(&p->fill, n, &fill_index);  // the fill ring holds every receive frame: never short
  for (unsigned k = 0; k < n; k++) {
    const struct xdp_desc *d = xsk_ring_cons__rx_desc(&p->rx_ring, rx_index + k);
    unsigned len = d->len < SLOT_SIZE ? d->len : SLOT_SIZE;
    memcpy(b->data[k], xsk_umem__get_data(p->area, d->addr), len);
    b->len[k] = (uint16_t)len;
    *xsk_ring_prod__fill_addr(&p->fill, fill_index + k) = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
  }
  xsk_ring_prod__submit(&p->fill, n);
  xsk_ring_cons__release(&p->rx_ring, n);
  if (xsk_ring_prod__needs_wakeup(&p->fill)) recvfrom(p->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
  p->rx += n;
  return n;
}

static unsigned tx_queued(const struct port *p) { return *p->tx_ring.producer - __atomic_load_n(p->tx_ring.consumer, __ATOMIC_ACQUIRE); }

// Copy mode sends at most 32 frames per sendto(): kick while the ring drains; a kick that moves nothing means the device is full.
static void kick(struct port *p) {
  if (p->zerocopy && !xsk_ring_prod__needs_wakeup(&p->tx_ring)) return;
  for (int tries = 0; tries < 64 && tx_queued(p) > 0; tries++) {
    unsigned before = tx_queued(p);
    p->kicks++;
    if (sendto(p->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0) {
      if (p->zerocopy) return;
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EBUSY || errno == ENOBUFS) && tx_queued(p) < before) continue;
    return;
  }
}

static unsigned xdp_tx(struct port *p, struct batch *b) {
  uint32_t index = 0;
  unsigned n = xsk_ring_cons__peek(&p->comp, TX_FRAMES, &index);
  for (unsigned k = 0; k < n; k++) p->tx_free[p->tx_free_count++] = *xsk_ring_cons__comp_addr(&p->comp, index + k);
  if (n) xsk_ring_cons__release(&p->comp, n);
  unsigned want = b->out_count < p->tx_free_count ? b->out_count : p->tx_free_count;
  unsigned sent = want ? xsk_ring_prod__reserve(&p->tx_ring, want, &index) : 0;
  for (unsigned k = 0; k < sent; k++) {
    uint64_t addr = p->tx_free[--p->tx_free_count];
    unsigned slot = b->out[k];
    memcpy(xsk_umem__get_data(p->area, addr), b->data[slot], b->len[slot]);
    struct xdp_desc *d = xsk_ring_prod__tx_desc(&p->tx_ring, index + k);
    d->addr = addr;
    d->len = b->len[slot];
  }
  if (sent) {
    xsk_ring_prod__submit(&p->tx_ring, sent);
    kick(p);
  }
  if (sent < b->out_count) p->tx_blocked++;  // every transmit frame in flight: the rest is dropped, as by a NIC with a full TX ring
  p->tx_failed += b->out_count - sent;
  p->tx += sent;
  return sent;
}

static void close_port(struct port *p) {
  if (p->link_fd >= 0) close(p->link_fd);  // the program comes off the interface
  if (p->xsk) xsk_socket__delete(p->xsk);
  if (p->umem) xsk_umem__delete(p->umem);
  if (p->area && p->area != MAP_FAILED) munmap(p->area, (size_t)FRAMES * FRAME_SIZE);
  if (p->object) bpf_object__close(p->object);
}

// ---- forwarding: check, rewrite, pick for sending (as bench/lab/cfwd.c) ----------

enum drop { NOT_IPV4, NOT_FOR_US, FOR_THE_ROUTER, BAD_HEADER, BAD_CHECKSUM, TTL_EXPIRED, DROP_KINDS };
static const char *const drop_names[DROP_KINDS] = {"notIpv4", "notForUs", "forTheRouter", "badHeader", "badChecksum", "ttlExpired"};
static unsigned long long drops[DROP_KINDS];

static int is_local(uint32_t daddr) {
  for (unsigned i = 0; i < local_count; i++)
    if (local_addr[i] == daddr) return 1;
  return 0;
}

static uint16_t ip_sum(const uint8_t *p, unsigned n) {
  uint32_t acc = 0;
  for (unsigned i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

// A frame that arrived on `in`: 1 if it goes on (rewritten in place for `out`),
// else 0 and its drop counted. The program already kept the router's own
// frames and other hosts' away; the checks stay, as vipr's stages keep them.
static int forward(uint8_t *f, unsigned len, const struct port *in, const struct port *out) {
  if (len < 14 + 20 || f[12] != 0x08 || f[13] != 0x00) return drops[NOT_IPV4]++, 0;
  if (memcmp(f, in->mac, 6) != 0) return drops[NOT_FOR_US]++, 0;
  uint8_t *ip = f + 14;
  unsigned ihl = (ip[0] & 0x0f) * 4u;
  unsigned total = (unsigned)ip[2] << 8 | ip[3];
  if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || 14 + total > len) return drops[BAD_HEADER]++, 0;
  if (ip_sum(ip, ihl) != 0xffff) return drops[BAD_CHECKSUM]++, 0;
  uint32_t daddr;
  memcpy(&daddr, ip + 16, 4);
  if (is_local(daddr)) return drops[FOR_THE_ROUTER]++, 0;
  if (ip[8] <= 1) return drops[TTL_EXPIRED]++, 0;
  // RFC 1624: HC' = ~(~HC + ~m + m'), m the 16-bit word holding TTL and protocol
  uint16_t old_word = (uint16_t)(ip[8] << 8 | ip[9]);
  ip[8]--;
  uint16_t new_word = (uint16_t)(ip[8] << 8 | ip[9]);
  uint32_t sum = (uint16_t) ~(ip[10] << 8 | ip[11]);
  sum += (uint16_t)~old_word;
  sum += new_word;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  sum = (uint16_t)~sum;
  ip[10] = (uint8_t)(sum >> 8);
  ip[11] = (uint8_t)sum;
  memcpy(f, out->next_hop, 6);
  memcpy(f + 6, out->mac, 6);
  return 1;
}

// ---- set-up ---------------------------------------------------------------------

static int parse_mac(const char *s, uint8_t *mac) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 255) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

static int port_identity(struct port *p) {
  p->ifindex = (int)if_nametoindex(p->name);
  if (p->ifindex == 0) return fail(p, "no such interface", ENODEV);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", p->name);
  int r = s < 0 ? -1 : ioctl(s, SIOCGIFHWADDR, &ifr);
  if (s >= 0) close(s);
  if (r < 0) return fail(p, "SIOCGIFHWADDR", errno);
  memcpy(p->mac, ifr.ifr_hwaddr.sa_data, 6);
  return 0;
}

// the router's own IPv4 addresses: frames to them are the kernel's business
static void read_local_addresses(void) {
  struct ifaddrs *all;
  if (getifaddrs(&all) != 0) return;
  for (struct ifaddrs *a = all; a && local_count < MAX_LOCAL; a = a->ifa_next) {
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET) local_addr[local_count++] = ((struct sockaddr_in *)a->ifa_addr)->sin_addr.s_addr;
  }
  freeifaddrs(all);
}

static void usage(void) {
  fprintf(stderr, "usage: cfwd-xdp --xdp-object PATH --port NAME=NEXT_HOP_MAC --port NAME=NEXT_HOP_MAC [--batch 256] [--busy-poll] [--mode auto|copy|zerocopy]\n");
  exit(2);
}

static struct batch batch;

int main(int argc, char **argv) {
  struct port ports[2];
  memset(ports, 0, sizeof ports);
  ports[0].fd = ports[1].fd = ports[0].link_fd = ports[1].link_fd = -1;
  unsigned nports = 0, batch_size = 256;
  int busy = 0;
  const char *object_path = NULL, *mode = "auto";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--busy-poll")) { busy = 1; continue; }
    if (!v) usage();
    if (!strcmp(a, "--port")) {
      char *eq = strchr(v, '=');
      if (nports == 2 || !eq) usage();
      *eq = 0;
      ports[nports].name = v;
      if (parse_mac(eq + 1, ports[nports].next_hop)) usage();
      nports++;
    } else if (!strcmp(a, "--batch")) {
      batch_size = (unsigned)strtoul(v, NULL, 10);
      if (batch_size < 1 || batch_size > MAX_BATCH) usage();
    } else if (!strcmp(a, "--xdp-object")) {
      object_path = v;
    } else if (!strcmp(a, "--mode")) {
      mode = v;
    } else {
      usage();
    }
    i++;
  }
  uint16_t bind_flags = XDP_USE_NEED_WAKEUP;
  if (!strcmp(mode, "copy")) bind_flags |= XDP_COPY;
  else if (!strcmp(mode, "zerocopy")) bind_flags |= XDP_ZEROCOPY;
  else if (strcmp(mode, "auto")) usage();
  if (nports != 2 || !object_path) usage();
  read_local_addresses();
  for (unsigned i = 0; i < 2; i++) {
    if (port_identity(&ports[i]) < 0 || open_port(&ports[i], object_path, bind_flags) < 0) {
      for (unsigned k = 0; k <= i; k++) close_port(&ports[k]);
      return 1;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("{\"event\":\"ready\",\"backend\":\"afxdp\",\"ports\":[\"%s\",\"%s\"],\"attach\":\"%s\",\"mode\":\"%s\",\"localAddresses\":%u,\"batch\":%u,\"busyPoll\":%s}\n",
         ports[0].name, ports[1].name, ports[0].attach, ports[0].zerocopy ? "zerocopy" : "copy", local_count, batch_size, busy ? "true" : "false");
  fflush(stdout);

  struct pollfd pfd[2] = {{ports[0].fd, POLLIN, 0}, {ports[1].fd, POLLIN, 0}};
  unsigned long long wakeups = 0;
  while (!stop_flag) {
    if (!busy) {
      int r = poll(pfd, 2, 100);  // the timeout only lets a signal end the loop
      if (r <= 0) continue;
      wakeups++;
    }
    for (unsigned i = 0; i < 2; i++) {
      struct port *in = &ports[i], *out = &ports[1 - i];
      batch.count = xdp_rx(in, &batch, batch_size);
      if (batch.count == 0) continue;
      batch.out_count = 0;
      for (unsigned k = 0; k < batch.count; k++)
        if (forward(batch.data[k], batch.len[k], in, out)) batch.out[batch.out_count++] = (uint16_t)k;
      if (batch.out_count) xdp_tx(out, &batch);
    }
  }

  printf("{\"event\":\"stopped\",\"wakeups\":%llu,\"ports\":[", wakeups);
  for (unsigned i = 0; i < 2; i++) {
    struct port *p = &ports[i];
    struct xdp_statistics st = {0};
    socklen_t len = sizeof st;
    getsockopt(p->fd, SOL_XDP, XDP_STATISTICS, &st, &len);
    printf("%s{\"name\":\"%s\",\"rx\":%llu,\"tx\":%llu,\"txFailed\":%llu,\"txBlocked\":%llu,\"kicks\":%llu,\"kernelDrops\":%llu}", i ? "," : "", p->name, p->rx,
           p->tx, p->tx_failed, p->tx_blocked, p->kicks, (unsigned long long)(st.rx_dropped + st.rx_ring_full));
    close_port(p);
  }
  printf("],\"drops\":{");
  for (unsigned k = 0; k < DROP_KINDS; k++) printf("%s\"%s\":%llu", k ? "," : "", drop_names[k], drops[k]);
  printf("}}\n");
  return 0;
}
