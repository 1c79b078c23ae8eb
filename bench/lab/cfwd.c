// bench/lab/cfwd.c: a minimal IPv4 forwarder in C, the physical anchor of a
// userspace forwarder on this box for bench/forwarding.ts (mode cfwd).
//
// It does per frame what vipr's data plane does on the forwarding path, on the
// same packet API as vipr's default port backend (native-bindings/src/
// vipr_port.c), and nothing else: a TPACKET_V2 RX ring per port (2 KB frames,
// 4096 of them, 64 KB blocks, PACKET_IGNORE_OUTGOING), each burst copied out
// of the ring into a batch of slots, the frames checked (IPv4, no fragment of
// a header, header checksum, TTL, not for the router itself), rewritten (the
// next hop's and the port's MAC addresses, TTL - 1, the header checksum
// patched as RFC 1624 says) and sent as one sendmmsg on the other port (a
// full device drops the rest of the burst, as vipr's port does). It waits for
// frames with poll(), as vipr's event loop does (--busy-poll: it spins).
// No routing: a static next hop per port. Frames that arrive on one port
// leave through the other, to the MAC given for that port. What it leaves
// alone (ARP, frames for the router's own addresses, anything not IPv4 unicast
// to the port) the kernel still gets: packet sockets are taps.
//
//   cfwd [--backend afpacket] --port up0=02:00:00:00:00:02 --port lan0=02:00:00:01:00:02
//        [--batch 256] [--busy-poll]
//   (--port NAME=MAC: the port, and the MAC of the next hop behind it)
//
// Prints {"event":"ready",...} once both ports are open, and on SIGTERM or
// SIGINT one JSON line with its counters. Pin it with taskset.
//
// Backends: the port operations sit behind `struct backend` (open, rx, tx,
// stats, close) so another packet API can be added beside AF_PACKET, e.g.
// AF_XDP (an XSK per port, its fill/completion rings in place of the RX
// ring and sendmmsg), and compared frame for frame with the same forwarding
// code. Built by bench/forwarding.ts (cc -O2) into the temp directory.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
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

#define MAX_BATCH 1024
#define SLOT_SIZE 2048  // a 1518-byte frame fits, as in vipr's batch
#define MAX_LOCAL 64

// vipr's ring geometry (src/io/ring-port.ts defaults): 4096 x 2 KB absorbs
// about 4 ms of 1 Mpps while the forwarder is busy elsewhere.
#define RING_FRAME_SIZE 2048
#define RING_FRAMES 4096
#define RING_BLOCK_SIZE (1u << 16)

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

// ---- the batch: frames copied out of the receive ring, as vipr's FrameBatch --

struct batch {
  uint8_t data[MAX_BATCH][SLOT_SIZE];
  uint16_t len[MAX_BATCH];
  uint16_t out[MAX_BATCH];  // the slots to send, in order
  unsigned count, out_count;
};

// ---- ports and backends ------------------------------------------------------

struct port {
  const char *name;
  int ifindex;
  uint8_t mac[6];       // this port's own
  uint8_t next_hop[6];  // where frames leaving through this port go
  int fd;               // what poll() waits on
  // AF_PACKET
  uint8_t *ring;
  size_t ring_bytes;
  unsigned head;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  // counters
  unsigned long long rx, tx, tx_failed, tx_blocked, kernel_drops;
};

struct backend {
  const char *name;
  int (*open)(struct port *p);
  // copies up to `max` frames into b's slots 0.. and returns how many
  unsigned (*rx)(struct port *p, struct batch *b, unsigned max);
  // sends b's slots b->out[0..out_count); returns how many went out
  unsigned (*tx)(struct port *p, struct batch *b);
  void (*stats)(struct port *p);
  void (*close)(struct port *p);
};

static int afp_open(struct port *p) {
  p->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0);  // protocol 0 until bind: nothing queued before the ring exists
  if (p->fd < 0) { perror("socket(AF_PACKET)"); return -1; }
  int v = TPACKET_V2;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) { perror("PACKET_VERSION"); return -1; }
  struct tpacket_req req = {0};
  unsigned per_block = RING_BLOCK_SIZE / RING_FRAME_SIZE;
  req.tp_block_size = RING_BLOCK_SIZE;
  req.tp_block_nr = (RING_FRAMES + per_block - 1) / per_block;
  req.tp_frame_size = RING_FRAME_SIZE;
  req.tp_frame_nr = req.tp_block_nr * per_block;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) { perror("PACKET_RX_RING"); return -1; }
  p->ring_bytes = (size_t)req.tp_block_nr * req.tp_block_size;
  p->ring = mmap(NULL, p->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, p->fd, 0);
  if (p->ring == MAP_FAILED) { perror("mmap(ring)"); return -1; }
  int one = 1;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) { perror("PACKET_IGNORE_OUTGOING"); return -1; }
  struct sockaddr_ll sll = {0};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = p->ifindex;
  if (bind(p->fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind(AF_PACKET)"); return -1; }
  for (unsigned i = 0; i < MAX_BATCH; i++) {
    p->msgs[i].msg_hdr.msg_iov = &p->iov[i];
    p->msgs[i].msg_hdr.msg_iovlen = 1;
  }
  return 0;
}

static unsigned afp_rx(struct port *p, struct batch *b, unsigned max) {
  unsigned got = 0;
  while (got < max) {
    struct tpacket2_hdr *h = (struct tpacket2_hdr *)(p->ring + (size_t)p->head * RING_FRAME_SIZE);
    if (!(__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
    unsigned len = h->tp_snaplen < SLOT_SIZE ? h->tp_snaplen : SLOT_SIZE;
    memcpy(b->data[got], (uint8_t *)h + h->tp_mac, len);
    b->len[got] = (uint16_t)len;
    got++;
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    p->head = p->head + 1 == RING_FRAMES ? 0 : p->head + 1;
  }
  p->rx += got;
  return got;
}

static unsigned afp_tx(struct port *p, struct batch *b) {
  unsigned n = b->out_count;
  for (unsigned k = 0; k < n; k++) {
    p->iov[k].iov_base = b->data[b->out[k]];
    p->iov[k].iov_len = b->len[b->out[k]];
  }
  unsigned off = 0;
  while (off < n) {
    int r = sendmmsg(p->fd, p->msgs + off, n - off, MSG_DONTWAIT);
    if (r > 0) {
      off += (unsigned)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      p->tx_blocked++;  // the device queue is full: the rest of the burst is dropped, as by a NIC with a full TX ring
      break;
    } else {
      off++;  // this one frame was refused: drop it, send the rest
      p->tx_failed++;
    }
  }
  p->tx_failed += n - off;
  p->tx += off;
  return off;
}

static void afp_stats(struct port *p) {
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) p->kernel_drops += st.tp_drops;  // reading resets them
}

static void afp_close(struct port *p) {
  if (p->ring && p->ring != MAP_FAILED) munmap(p->ring, p->ring_bytes);
  if (p->fd >= 0) close(p->fd);
}

static const struct backend backends[] = {
    {"afpacket", afp_open, afp_rx, afp_tx, afp_stats, afp_close},
};

// ---- forwarding: check, rewrite, pick for sending -------------------------------

enum drop { NOT_IPV4, NOT_FOR_US, FOR_THE_ROUTER, BAD_HEADER, BAD_CHECKSUM, TTL_EXPIRED, DROP_KINDS };
static const char *const drop_names[DROP_KINDS] = {"notIpv4", "notForUs", "forTheRouter", "badHeader", "badChecksum", "ttlExpired"};
static unsigned long long drops[DROP_KINDS];

static uint32_t local_addr[MAX_LOCAL];  // network byte order
static unsigned local_count;

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
// else 0 and its drop counted (frames for the router itself are the kernel's).
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
  if (is_local(daddr)) return drops[FOR_THE_ROUTER]++, 0;  // the kernel's: it has its copy
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
  if (p->ifindex == 0) { fprintf(stderr, "cfwd: no interface %s\n", p->name); return -1; }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", p->name);
  int r = s < 0 ? -1 : ioctl(s, SIOCGIFHWADDR, &ifr);
  if (s >= 0) close(s);
  if (r < 0) { perror("SIOCGIFHWADDR"); return -1; }
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
  fprintf(stderr, "usage: cfwd [--backend afpacket] --port NAME=NEXT_HOP_MAC --port NAME=NEXT_HOP_MAC [--batch 256] [--busy-poll]\n");
  exit(2);
}

static struct batch batch;

int main(int argc, char **argv) {
  struct port ports[2];
  memset(ports, 0, sizeof ports);
  ports[0].fd = ports[1].fd = -1;
  unsigned nports = 0, batch_size = 256;
  int busy = 0;
  const struct backend *be = &backends[0];
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
    } else if (!strcmp(a, "--backend")) {
      be = NULL;
      for (unsigned k = 0; k < sizeof backends / sizeof backends[0]; k++)
        if (!strcmp(v, backends[k].name)) be = &backends[k];
      if (!be) { fprintf(stderr, "cfwd: no backend %s\n", v); return 2; }
    } else {
      usage();
    }
    i++;
  }
  if (nports != 2) usage();
  read_local_addresses();
  for (unsigned i = 0; i < 2; i++)
    if (port_identity(&ports[i]) < 0 || be->open(&ports[i]) < 0) return 1;

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  printf("{\"event\":\"ready\",\"backend\":\"%s\",\"ports\":[\"%s\",\"%s\"],\"localAddresses\":%u,\"batch\":%u,\"busyPoll\":%s}\n",
         be->name, ports[0].name, ports[1].name, local_count, batch_size, busy ? "true" : "false");
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
      batch.count = be->rx(in, &batch, batch_size);
      if (batch.count == 0) continue;
      batch.out_count = 0;
      for (unsigned k = 0; k < batch.count; k++)
        if (forward(batch.data[k], batch.len[k], in, out)) batch.out[batch.out_count++] = (uint16_t)k;
      if (batch.out_count) be->tx(out, &batch);
    }
  }

  printf("{\"event\":\"stopped\",\"wakeups\":%llu,\"ports\":[", wakeups);
  for (unsigned i = 0; i < 2; i++) {
    struct port *p = &ports[i];
    be->stats(p);
    printf("%s{\"name\":\"%s\",\"rx\":%llu,\"tx\":%llu,\"txFailed\":%llu,\"txBlocked\":%llu,\"kernelDrops\":%llu}", i ? "," : "", p->name, p->rx, p->tx,
           p->tx_failed, p->tx_blocked, p->kernel_drops);
    be->close(p);
  }
  printf("],\"drops\":{");
  for (unsigned k = 0; k < DROP_KINDS; k++) printf("%s\"%s\":%llu", k ? "," : "", drop_names[k], drops[k]);
  printf("}}\n");
  return 0;
}
