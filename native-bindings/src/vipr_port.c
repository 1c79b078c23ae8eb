// vipr-native: an AF_PACKET port for vipr, over plain Node-API.
//
// One port = one packet socket bound to one interface, with a memory-mapped
// RX ring (TPACKET_V2 by default, TPACKET_V3 selectable) and either sendmmsg
// or a TX ring for sending. The surface is flat and small (udx-native style):
// JS owns every buffer (the batch, its length and port arrays, the counters),
// C copies frames between the ring and those buffers and returns counts. A
// batch crosses JS<->C once, never once per frame.
//
//   open(ifname, options, counters: Float64Array)             -> handle
//   rxBurst(handle, data, firstSlot, maxFrames, slotSize,
//           lengths: Uint16Array, ports: Uint8Array, portIndex) -> frames received
//   txBurst(handle, data, slots: Uint16Array, count, slotSize,
//           lengths: Uint16Array)                              -> frames sent
//   send(handle, buffer, length)                               -> boolean
//   stats(handle)         folds PACKET_STATISTICS into the counters
//   start(handle, cb)     cb() once per readable wakeup (uv_poll_t on the fd)
//   stop(handle)          stops the wakeups
//   close(handle)         stop + munmap + close; idempotent
//
// Frames received are "as on the wire": a VLAN tag the kernel stripped into
// the ring header is put back, and a TCP/UDP checksum the sender left to
// offload (TP_STATUS_CSUMNOTREADY, e.g. a veth with tx checksumming on) is
// completed in the copy, so the data plane never forwards a frame with a
// checksum that no wire carries. See docs/ARCHITECTURE.md, "Pitfalls of packet sockets".

#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "napi_helpers.h"

// ---- counters: indices into the JS-owned Float64Array (mirrored in ring-port.ts)

enum {
  C_RX_FRAMES = 0,
  C_RX_BYTES,
  C_RX_TOO_LONG,            // longer than a slot (or truncated by the ring): skipped
  C_RX_CHECKSUM_COMPLETED,  // CSUMNOTREADY IPv4 TCP/UDP: L4 checksum computed here
  C_RX_CHECKSUM_UNHANDLED,  // CSUMNOTREADY but not IPv4 TCP/UDP: left as it was
  C_RX_VLAN_RESTORED,       // VLAN tag put back from the ring header
  C_RX_WAKEUPS,             // readable callbacks into JS
  C_TX_FRAMES,
  C_TX_BYTES,
  C_TX_FAILED,              // frames not sent (queue full, or the kernel refused them)
  C_TX_BLOCKED,             // bursts cut short by EAGAIN/ENOBUFS or a full TX ring
  C_KERNEL_PACKETS,         // PACKET_STATISTICS tp_packets (includes drops), cumulative
  C_KERNEL_DROPS,           // PACKET_STATISTICS tp_drops: the ring was full
  C_KERNEL_FREEZES,         // TPACKET_V3 tp_freeze_q_cnt
  C_SOCKET_ERRORS,          // errors reported on the socket (ENETDOWN when the link goes down), cleared
  C_RX_OUTGOING,            // frames this box sent (another socket of a fanout group's): skipped, never vipr's input
  C_COUNT
};

// sendmmsg takes at most this many frames per call: the mmsghdr/iovec arrays
// live in the port, so a burst needs no allocation; larger bursts loop.
#define TX_CHUNK 256

enum { POLL_NONE = 0, POLL_ACTIVE, POLL_CLOSING, POLL_CLOSED };
/** linux/if_packet.h's PACKET_FANOUT_FLAG_IGNORE_OUTGOING, which older headers lack. */
#define VIPR_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
enum { TX_SENDMMSG = 0, TX_RING = 1 };

typedef struct vipr_port {
  int fd;
  int ifindex;
  int version;  // TPACKET_V2 or TPACKET_V3
  int tx_mode;
  bool closed;
  bool finalized;

  uint8_t *map;
  size_t map_size;

  // RX ring
  uint8_t *rx_ring;
  uint32_t rx_frame_size;   // V2: one frame slot
  uint32_t rx_frame_count;  // V2
  uint32_t rx_block_size;   // V3: one block
  uint32_t rx_block_count;  // V3
  uint32_t rx_head;         // V2: next frame; V3: current block
  uint8_t *v3_packet;       // V3: next packet inside the current block, or NULL
  uint32_t v3_left;         // V3: packets left in the current block

  // TX ring (tx_mode == TX_RING)
  uint8_t *tx_ring;
  uint32_t tx_frame_size;
  uint32_t tx_frame_count;
  uint32_t tx_head;
  uint32_t tx_data_offset;

  double *counters;
  napi_ref counters_ref;

  napi_env env;
  uv_poll_t poll;
  int poll_state;
  bool polling;
  napi_ref callback;
  napi_async_context async_context;

  struct mmsghdr msgs[TX_CHUNK];
  struct iovec iovs[TX_CHUNK];
} vipr_port;

// ---- port handles -----------------------------------------------------------

static bool get_port(napi_env env, napi_value value, vipr_port **port) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external) {
    throw_type(env, "vipr-native: expected a port handle from open()");
    return false;
  }
  napi_get_value_external(env, value, (void **)port);
  return true;
}

// The arguments of a port method: `argv` gets `count` of them, the first a
// port handle from open(). False with a JS exception pending (`usage` when too
// few were passed).
static bool port_args(napi_env env, napi_callback_info info, napi_value *argv, size_t count, const char *usage, vipr_port **port) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_last(env, "napi_get_cb_info");
    return false;
  }
  if (argc < count) {
    throw_type(env, usage);
    return false;
  }
  return get_port(env, argv[0], port);
}


// ---- checksums --------------------------------------------------------------

// One's-complement sum of big-endian 16-bit words (RFC 1071), not folded.
static uint64_t sum16(const uint8_t *p, size_t len, uint64_t sum) {
  while (len >= 8) {
    sum += ((uint32_t)p[0] << 8 | p[1]) + ((uint32_t)p[2] << 8 | p[3]) +
           ((uint32_t)p[4] << 8 | p[5]) + ((uint32_t)p[6] << 8 | p[7]);
    p += 8;
    len -= 8;
  }
  while (len >= 2) {
    sum += (uint32_t)p[0] << 8 | p[1];
    p += 2;
    len -= 2;
  }
  if (len) sum += (uint32_t)p[0] << 8;
  return sum;
}

static uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

// A frame whose L4 checksum the sender left to offload (CHECKSUM_PARTIAL: the
// field holds only the pseudo-header sum). Rings carry no csum_start/offset
// (that needs a virtio-net header), so for IPv4 TCP and UDP - the only
// protocols the kernel offloads for IPv4 in practice - the checksum is
// recomputed from scratch over pseudo-header + segment. Returns false for
// anything else (left untouched, counted as unhandled).
static bool complete_l4_checksum(uint8_t *frame, uint32_t len) {
  if (len < ETH_HLEN + 20 || frame[12] != 0x08 || frame[13] != 0x00) return false;
  uint8_t *ip = frame + ETH_HLEN;
  uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || ihl < 20) return false;
  uint32_t total = (uint32_t)ip[2] << 8 | ip[3];
  if (total < ihl || ETH_HLEN + total > len) return false;
  if ((((uint32_t)ip[6] << 8 | ip[7]) & 0x3fff) != 0) return false;  // a fragment: no whole segment here
  uint8_t protocol = ip[9];
  uint32_t l4_len = total - ihl;
  uint8_t *l4 = ip + ihl;
  uint32_t field;
  if (protocol == IPPROTO_TCP && l4_len >= 20) {
    field = 16;
  } else if (protocol == IPPROTO_UDP && l4_len >= 8) {
    field = 6;
  } else {
    return false;
  }
  l4[field] = 0;
  l4[field + 1] = 0;
  uint64_t sum = sum16(ip + 12, 8, 0);  // source and destination address
  sum += protocol;
  sum += l4_len;
  sum = sum16(l4, l4_len, sum);
  uint16_t checksum = (uint16_t)~fold(sum);
  if (protocol == IPPROTO_UDP && checksum == 0) checksum = 0xffff;  // 0 means "no checksum" in UDP
  l4[field] = (uint8_t)(checksum >> 8);
  l4[field + 1] = (uint8_t)checksum;
  return true;
}

// ---- receive ----------------------------------------------------------------

typedef struct {
  uint8_t *data;
  uint32_t slot_size;
  uint16_t *lengths;
  uint8_t *ports;
  uint8_t port_index;
  uint32_t next;  // next slot to fill
} rx_target;

// Copies one ring frame into the next slot; false when it was skipped (too long).
static bool rx_copy(vipr_port *p, rx_target *t, const uint8_t *frame, uint32_t snaplen, uint32_t len,
                    uint32_t status, uint16_t vlan_tci, uint16_t vlan_tpid, const struct sockaddr_ll *from) {
  double *c = p->counters;
  // PACKET_IGNORE_OUTGOING keeps a lone socket's own sends out, but a fanout group hands its members every
  // frame the box sends unless the kernel knows PACKET_FANOUT_FLAG_IGNORE_OUTGOING: never take one as input.
  if (__builtin_expect(from->sll_pkttype == PACKET_OUTGOING, 0)) {
    c[C_RX_OUTGOING]++;
    return false;
  }
  bool vlan = (status & TP_STATUS_VLAN_VALID) != 0;
  uint32_t wire_len = len + (vlan ? 4 : 0);
  if (__builtin_expect(snaplen < len || wire_len > t->slot_size || len < ETH_HLEN, 0)) {
    c[C_RX_TOO_LONG]++;
    return false;
  }
  uint8_t *dst = t->data + (size_t)t->next * t->slot_size;
  if (__builtin_expect(vlan, 0)) {
    // The kernel (or the NIC) moved the tag into the ring header: put it back.
    uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) && vlan_tpid ? vlan_tpid : ETH_P_8021Q;
    memcpy(dst, frame, 12);
    dst[12] = (uint8_t)(tpid >> 8);
    dst[13] = (uint8_t)tpid;
    dst[14] = (uint8_t)(vlan_tci >> 8);
    dst[15] = (uint8_t)vlan_tci;
    memcpy(dst + 16, frame + 12, len - 12);
    c[C_RX_VLAN_RESTORED]++;
  } else {
    memcpy(dst, frame, len);
  }
  if (__builtin_expect(status & TP_STATUS_CSUMNOTREADY, 0)) {
    if (!vlan && complete_l4_checksum(dst, wire_len)) c[C_RX_CHECKSUM_COMPLETED]++;
    else c[C_RX_CHECKSUM_UNHANDLED]++;
  }
  t->lengths[t->next] = (uint16_t)wire_len;
  t->ports[t->next] = t->port_index;
  t->next++;
  c[C_RX_FRAMES]++;
  c[C_RX_BYTES] += wire_len;
  return true;
}

static uint32_t rx_v2(vipr_port *p, rx_target *t, uint32_t max) {
  uint32_t got = 0;
  while (got < max) {
    struct tpacket2_hdr *h = (struct tpacket2_hdr *)(p->rx_ring + (size_t)p->rx_head * p->rx_frame_size);
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;
    const struct sockaddr_ll *from = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket2_hdr)));
    if (rx_copy(p, t, (uint8_t *)h + h->tp_mac, h->tp_snaplen, h->tp_len, status, h->tp_vlan_tci, h->tp_vlan_tpid, from)) {
      got++;
    }
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    p->rx_head = p->rx_head + 1 == p->rx_frame_count ? 0 : p->rx_head + 1;
  }
  return got;
}

static uint32_t rx_v3(vipr_port *p, rx_target *t, uint32_t max) {
  uint32_t got = 0;
  while (got < max) {
    struct tpacket_block_desc *b = (struct tpacket_block_desc *)(p->rx_ring + (size_t)p->rx_head * p->rx_block_size);
    if (p->v3_packet == NULL) {
      uint32_t status = __atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
      if (!(status & TP_STATUS_USER)) break;
      p->v3_packet = (uint8_t *)b + b->hdr.bh1.offset_to_first_pkt;
      p->v3_left = b->hdr.bh1.num_pkts;
    }
    while (p->v3_left > 0 && got < max) {
      struct tpacket3_hdr *h = (struct tpacket3_hdr *)p->v3_packet;
      const struct sockaddr_ll *from = (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
      if (rx_copy(p, t, (uint8_t *)h + h->tp_mac, h->tp_snaplen, h->tp_len, h->tp_status, h->hv1.tp_vlan_tci,
                  h->hv1.tp_vlan_tpid, from)) {
        got++;
      }
      p->v3_packet += h->tp_next_offset;
      p->v3_left--;
    }
    if (p->v3_left == 0) {
      p->v3_packet = NULL;
      __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      p->rx_head = p->rx_head + 1 == p->rx_block_count ? 0 : p->rx_head + 1;
    }
  }
  return got;
}

// ---- send -------------------------------------------------------------------

static inline bool tx_would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

// Sends up to TX_CHUNK frames with sendmmsg. *blocked is set when the device
// queue filled up; the frames not sent are counted as failed either way.
static uint32_t tx_sendmmsg(vipr_port *p, uint8_t *const *frames, const uint32_t *lens, uint32_t n, bool *blocked) {
  for (uint32_t k = 0; k < n; k++) {
    p->iovs[k].iov_base = frames[k];
    p->iovs[k].iov_len = lens[k];
    memset(&p->msgs[k].msg_hdr, 0, sizeof p->msgs[k].msg_hdr);
    p->msgs[k].msg_hdr.msg_iov = &p->iovs[k];
    p->msgs[k].msg_hdr.msg_iovlen = 1;
  }
  uint32_t sent = 0, off = 0;
  while (off < n) {
    int r = sendmmsg(p->fd, p->msgs + off, n - off, MSG_DONTWAIT);
    if (r > 0) {
      for (int k = 0; k < r; k++) p->counters[C_TX_BYTES] += lens[off + k];
      off += (uint32_t)r;
      sent += (uint32_t)r;
    } else if (r < 0 && errno == EINTR) {
      continue;
    } else if (r < 0 && tx_would_block(errno)) {
      // The device queue is full: the rest of the burst is dropped, as by a NIC with a full TX ring.
      *blocked = true;
      p->counters[C_TX_BLOCKED]++;
      p->counters[C_TX_FAILED] += n - off;
      break;
    } else {
      // This one frame was refused (EMSGSIZE, ENETDOWN, ...): drop it, send the rest.
      off++;
      p->counters[C_TX_FAILED]++;
    }
  }
  p->counters[C_TX_FRAMES] += sent;
  return sent;
}

static inline uint32_t *tx_status_of(vipr_port *p, uint8_t *slot) {
  return p->version == TPACKET_V3 ? &((struct tpacket3_hdr *)slot)->tp_status
                                  : &((struct tpacket2_hdr *)slot)->tp_status;
}

static void tx_ring_kick(vipr_port *p) {
  while (send(p->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno == EINTR) {
  }
}

// Copies frames into the TX ring, marks them SEND_REQUEST and kicks the kernel once.
static uint32_t tx_ring(vipr_port *p, uint8_t *const *frames, const uint32_t *lens, uint32_t count, bool *blocked) {
  uint32_t queued = 0;
  bool kicked = false;
  for (uint32_t k = 0; k < count; k++) {
    uint32_t len = lens[k];
    if (len > p->tx_frame_size - p->tx_data_offset) {
      p->counters[C_TX_FAILED]++;
      continue;
    }
    uint8_t *slot = p->tx_ring + (size_t)p->tx_head * p->tx_frame_size;
    uint32_t *status = tx_status_of(p, slot);
    uint32_t s = __atomic_load_n(status, __ATOMIC_ACQUIRE);
    if (s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) {
      // Ring full: push what is queued and look once more.
      if (!kicked) {
        tx_ring_kick(p);
        kicked = true;
        s = __atomic_load_n(status, __ATOMIC_ACQUIRE);
      }
      if (s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) {
        *blocked = true;
        p->counters[C_TX_BLOCKED]++;
        p->counters[C_TX_FAILED] += count - k;
        break;
      }
    }
    if (s & TP_STATUS_WRONG_FORMAT) p->counters[C_TX_FAILED]++;  // an earlier frame the kernel refused
    memcpy(slot + p->tx_data_offset, frames[k], len);
    if (p->version == TPACKET_V3) {
      struct tpacket3_hdr *h = (struct tpacket3_hdr *)slot;
      h->tp_len = len;
      h->tp_snaplen = len;
      h->tp_next_offset = 0;
    } else {
      struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
      h->tp_len = len;
      h->tp_snaplen = len;
    }
    __atomic_store_n(status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    p->tx_head = p->tx_head + 1 == p->tx_frame_count ? 0 : p->tx_head + 1;
    p->counters[C_TX_BYTES] += len;
    queued++;
  }
  if (queued > 0) tx_ring_kick(p);
  p->counters[C_TX_FRAMES] += queued;
  return queued;
}

// ---- lifetime ---------------------------------------------------------------

static void release_resources(vipr_port *p) {
  if (p->closed) return;
  p->closed = true;
  if (p->poll_state == POLL_ACTIVE) uv_poll_stop(&p->poll);
  p->polling = false;
  if (p->map && p->map != MAP_FAILED) munmap(p->map, p->map_size);
  p->map = NULL;
  p->rx_ring = NULL;
  p->tx_ring = NULL;
  if (p->fd >= 0) close(p->fd);  // safe once uv_poll_stop ran (libuv docs)
  p->fd = -1;
}

static void on_poll_closed(uv_handle_t *handle) {
  vipr_port *p = (vipr_port *)handle->data;
  p->poll_state = POLL_CLOSED;
  if (p->finalized) free(p);
}

static void drop_js_refs(napi_env env, vipr_port *p) {
  if (p->callback) {
    napi_delete_reference(env, p->callback);
    p->callback = NULL;
  }
  if (p->async_context) {
    napi_async_destroy(env, p->async_context);
    p->async_context = NULL;
  }
  if (p->counters_ref) {
    napi_delete_reference(env, p->counters_ref);
    p->counters_ref = NULL;
  }
}

static void close_port(napi_env env, vipr_port *p) {
  release_resources(p);
  if (p->poll_state == POLL_ACTIVE) {
    p->poll_state = POLL_CLOSING;
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
  }
  if (p->callback) {
    napi_delete_reference(env, p->callback);
    p->callback = NULL;
  }
  if (p->async_context) {
    napi_async_destroy(env, p->async_context);
    p->async_context = NULL;
  }
  // The counters stay readable (and referenced) until the handle is collected.
}

static void finalize_port(napi_env env, void *data, void *hint) {
  (void)hint;
  vipr_port *p = (vipr_port *)data;
  close_port(env, p);
  drop_js_refs(env, p);
  p->counters = NULL;
  if (p->poll_state == POLL_CLOSING) {
    p->finalized = true;  // on_poll_closed frees it
  } else {
    free(p);
  }
}

// ---- open -------------------------------------------------------------------

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

static napi_value vipr_port_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "vipr-native: open(ifname, options, counters)");

  char ifname[IF_NAMESIZE + 1];
  size_t ifname_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &ifname_len) != napi_ok)
    return throw_type(env, "vipr-native: ifname must be a string");
  if (ifname_len == 0 || ifname_len >= IF_NAMESIZE) return throw_range(env, "vipr-native: bad interface name");

  napi_valuetype options_type;
  napi_typeof(env, argv[1], &options_type);
  if (options_type != napi_object) return throw_type(env, "vipr-native: options must be an object");
  napi_value options = argv[1];

  double *counters;
  size_t counters_len;
  if (!get_array(env, argv[2], napi_float64_array, (void **)&counters, &counters_len, "counters")) return NULL;
  if (counters_len < C_COUNT) return throw_range(env, "vipr-native: counters must hold at least C_COUNT entries (see COUNTERS)");

  // Options and their defaults (see ring-port.ts for the reasoning).
  char rx_ring[8], tx[16], fanout_mode[16], netns[256];
  uint32_t frame_size = 2048, frame_count = 4096, block_size = 0, retire_ms = 1;
  uint32_t tx_frame_size = 2048, tx_frame_count = 1024;
  uint32_t fanout_id = 0;
  bool has_fanout = false, qdisc_bypass = false;
  if (!option_string(env, options, "rxRing", rx_ring, sizeof rx_ring)) return NULL;
  if (!option_string(env, options, "tx", tx, sizeof tx)) return NULL;
  if (!option_string(env, options, "netns", netns, sizeof netns)) return NULL;
  if (!option_u32(env, options, "frameSize", &frame_size)) return NULL;
  if (!option_u32(env, options, "frameCount", &frame_count)) return NULL;
  if (!option_u32(env, options, "blockSize", &block_size)) return NULL;
  if (!option_u32(env, options, "retireTimeoutMs", &retire_ms)) return NULL;
  if (!option_u32(env, options, "txFrameSize", &tx_frame_size)) return NULL;
  if (!option_u32(env, options, "txFrameCount", &tx_frame_count)) return NULL;
  if (!option_bool(env, options, "qdiscBypass", &qdisc_bypass)) return NULL;
  {
    bool has = false;
    napi_has_named_property(env, options, "fanout", &has);
    if (has) {
      napi_value f;
      napi_get_named_property(env, options, "fanout", &f);
      napi_valuetype ft;
      napi_typeof(env, f, &ft);
      if (ft == napi_object) {
        has_fanout = true;
        if (!option_u32(env, f, "id", &fanout_id)) return NULL;
        if (!option_string(env, f, "mode", fanout_mode, sizeof fanout_mode)) return NULL;
      } else if (ft != napi_undefined) {
        return throw_type(env, "vipr-native: options.fanout must be {id, mode}");
      }
    }
  }

  int version;
  if (rx_ring[0] == 0 || strcmp(rx_ring, "v2") == 0) version = TPACKET_V2;
  else if (strcmp(rx_ring, "v3") == 0) version = TPACKET_V3;
  else return throw_range(env, "vipr-native: options.rxRing must be 'v2' or 'v3'");
  int tx_mode;
  if (tx[0] == 0 || strcmp(tx, "sendmmsg") == 0) tx_mode = TX_SENDMMSG;
  else if (strcmp(tx, "ring") == 0) tx_mode = TX_RING;
  else return throw_range(env, "vipr-native: options.tx must be 'sendmmsg' or 'ring'");
  int fanout_type = PACKET_FANOUT_HASH;
  if (has_fanout) {
    if (fanout_id > 0xffff) return throw_range(env, "vipr-native: options.fanout.id must be 0..65535");
    if (fanout_mode[0] == 0 || strcmp(fanout_mode, "hash") == 0) fanout_type = PACKET_FANOUT_HASH;
    else if (strcmp(fanout_mode, "lb") == 0) fanout_type = PACKET_FANOUT_LB;
    else if (strcmp(fanout_mode, "cpu") == 0) fanout_type = PACKET_FANOUT_CPU;
    else if (strcmp(fanout_mode, "rollover") == 0) fanout_type = PACKET_FANOUT_ROLLOVER;
    else if (strcmp(fanout_mode, "qm") == 0) fanout_type = PACKET_FANOUT_QM;
    else return throw_range(env, "vipr-native: options.fanout.mode must be hash, lb, cpu, rollover or qm");
  }

  long page = sysconf(_SC_PAGESIZE);
  if (!is_pow2(frame_size) || frame_size < 128 || frame_size > (1u << 16))
    return throw_range(env, "vipr-native: options.frameSize must be a power of two in 128..65536");
  if (frame_count < 8 || frame_count > (1u << 20)) return throw_range(env, "vipr-native: options.frameCount must be 8..1048576");
  if (block_size == 0) block_size = version == TPACKET_V3 ? (1u << 18) : (1u << 16);
  if (!is_pow2(block_size) || block_size < (uint32_t)page || block_size < frame_size || block_size > (1u << 24))
    return throw_range(env, "vipr-native: options.blockSize must be a power of two, at least a page and a frame, at most 16 MiB");
  if (retire_ms < 1 || retire_ms > 1000) return throw_range(env, "vipr-native: options.retireTimeoutMs must be 1..1000");
  if (tx_mode == TX_RING) {
    if (!is_pow2(tx_frame_size) || tx_frame_size < 128 || tx_frame_size > (uint32_t)page * 16)
      return throw_range(env, "vipr-native: options.txFrameSize must be a power of two in 128..16 pages");
    if (tx_frame_count < 8 || tx_frame_count > (1u << 16)) return throw_range(env, "vipr-native: options.txFrameCount must be 8..65536");
  }

  int self_ns;
  if (!enter_netns(env, netns, ifname, &self_ns)) return NULL;
  unsigned ifindex = if_nametoindex(ifname);
  int ifindex_errno = errno;
  // Protocol 0 until bind: nothing is queued before the ring exists.
  int fd = ifindex ? socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
  int socket_errno = errno;
  leave_netns(self_ns);
  if (ifindex == 0) return throw_errno(env, "no such interface", ifname, ifindex_errno ? ifindex_errno : ENODEV);
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET, SOCK_RAW)", ifname, socket_errno);

  vipr_port *p = calloc(1, sizeof *p);
  if (!p) {
    close(fd);
    return throw_errno(env, "out of memory", ifname, ENOMEM);
  }
  p->fd = fd;
  p->env = env;
  p->version = version;
  p->tx_mode = tx_mode;
  p->ifindex = (int)ifindex;
  p->counters = counters;

  const char *what = NULL;
  int err = 0;
#define FAIL(w)     \
  do {              \
    what = (w);     \
    err = errno;    \
    goto fail;      \
  } while (0)

  int v = version;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) FAIL("setsockopt(PACKET_VERSION)");

  size_t rx_bytes;
  if (version == TPACKET_V2) {
    struct tpacket_req req = {0};
    uint32_t per_block = block_size / frame_size;
    uint32_t blocks = (frame_count + per_block - 1) / per_block;
    req.tp_block_size = block_size;
    req.tp_block_nr = blocks;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = blocks * per_block;
    if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) FAIL("setsockopt(PACKET_RX_RING, TPACKET_V2)");
    p->rx_frame_size = frame_size;
    p->rx_frame_count = req.tp_frame_nr;
    rx_bytes = (size_t)blocks * block_size;
  } else {
    struct tpacket_req3 req = {0};
    uint64_t total = (uint64_t)frame_size * frame_count;
    uint32_t blocks = (uint32_t)((total + block_size - 1) / block_size);
    if (blocks < 2) blocks = 2;  // one block for the kernel to fill while JS drains the other
    req.tp_block_size = block_size;
    req.tp_block_nr = blocks;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = (uint32_t)(((uint64_t)blocks * block_size) / frame_size);
    req.tp_retire_blk_tov = retire_ms;
    req.tp_sizeof_priv = 0;
    req.tp_feature_req_word = 0;
    if (setsockopt(p->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) FAIL("setsockopt(PACKET_RX_RING, TPACKET_V3)");
    p->rx_block_size = block_size;
    p->rx_block_count = blocks;
    rx_bytes = (size_t)blocks * block_size;
  }

  size_t tx_bytes = 0;
  if (tx_mode == TX_RING) {
    uint32_t tx_block = tx_frame_size > (uint32_t)page ? tx_frame_size : (uint32_t)page;
    uint32_t per_block = tx_block / tx_frame_size;
    uint32_t blocks = (tx_frame_count + per_block - 1) / per_block;
    if (version == TPACKET_V3) {
      struct tpacket_req3 req = {0};
      req.tp_block_size = tx_block;
      req.tp_block_nr = blocks;
      req.tp_frame_size = tx_frame_size;
      req.tp_frame_nr = blocks * per_block;
      if (setsockopt(p->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) FAIL("setsockopt(PACKET_TX_RING)");
      p->tx_data_offset = TPACKET_ALIGN(sizeof(struct tpacket3_hdr));
    } else {
      struct tpacket_req req = {0};
      req.tp_block_size = tx_block;
      req.tp_block_nr = blocks;
      req.tp_frame_size = tx_frame_size;
      req.tp_frame_nr = blocks * per_block;
      if (setsockopt(p->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) FAIL("setsockopt(PACKET_TX_RING)");
      p->tx_data_offset = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
    }
    p->tx_frame_size = tx_frame_size;
    p->tx_frame_count = blocks * per_block;
    tx_bytes = (size_t)blocks * tx_block;
  }

  // RX ring first, TX ring right after it, in one mapping (packet_mmap.rst).
  p->map_size = rx_bytes + tx_bytes;
  // MAP_POPULATE: map every page now rather than fault on the first frames.
  p->map = mmap(NULL, p->map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, p->fd, 0);
  if (p->map == MAP_FAILED) {
    p->map = NULL;
    FAIL("mmap(packet ring)");
  }
  p->rx_ring = p->map;
  if (tx_mode == TX_RING) p->tx_ring = p->map + rx_bytes;

  // Never hand back what this socket (or the kernel) sent on the interface.
  int one = 1;
  if (setsockopt(p->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) FAIL("setsockopt(PACKET_IGNORE_OUTGOING)");
  if (qdisc_bypass && setsockopt(p->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
    FAIL("setsockopt(PACKET_QDISC_BYPASS)");

  struct sockaddr_ll sll = {0};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)ifindex;
  if (bind(p->fd, (struct sockaddr *)&sll, sizeof sll) < 0) FAIL("bind(AF_PACKET)");

  if (has_fanout) {
    // Ask the group to leave the box's own sends out (kernels since 5.x know the flag); rx_copy skips them anyway.
    int arg = (int)(fanout_id | ((uint32_t)(fanout_type | VIPR_FANOUT_FLAG_IGNORE_OUTGOING) << 16));
    if (setsockopt(p->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) {
      arg = (int)(fanout_id | ((uint32_t)fanout_type << 16));
      if (setsockopt(p->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) < 0) FAIL("setsockopt(PACKET_FANOUT)");
    }
  }
#undef FAIL

  napi_value handle;
  if (napi_create_external(env, p, finalize_port, NULL, &handle) != napi_ok) {
    err = ENOMEM;
    what = "napi_create_external";
    goto fail;
  }
  napi_create_reference(env, argv[2], 1, &p->counters_ref);
  return handle;

fail:
  if (p->map) munmap(p->map, p->map_size);
  if (p->fd >= 0) close(p->fd);
  free(p);
  return throw_errno(env, what, ifname, err);
}

// ---- rxBurst / txBurst / send / stats ---------------------------------------

static napi_value vipr_port_rx_burst(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  vipr_port *p;
  if (!port_args(env, info, argv, 8, "vipr-native: rxBurst(handle, data, firstSlot, maxFrames, slotSize, lengths, ports, portIndex)", &p)) return NULL;
  uint8_t *data;
  uint16_t *lengths;
  uint8_t *ports;
  size_t data_len, lengths_len, ports_len;
  uint32_t first, max, slot_size, port_index;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&data, &data_len, "data") ||
      !get_u32(env, argv[2], &first, "firstSlot") || !get_u32(env, argv[3], &max, "maxFrames") ||
      !get_u32(env, argv[4], &slot_size, "slotSize") ||
      !get_array(env, argv[5], napi_uint16_array, (void **)&lengths, &lengths_len, "lengths") ||
      !get_array(env, argv[6], napi_uint8_array, (void **)&ports, &ports_len, "ports") ||
      !get_u32(env, argv[7], &port_index, "portIndex")) {
    return NULL;
  }
  if (max == 0 || p->closed) return make_uint32(env, 0);
  uint64_t end = (uint64_t)first + max;
  if (slot_size < ETH_HLEN || slot_size > 65535 || end > lengths_len || end > ports_len ||
      end * slot_size > data_len || port_index > 255) {
    return throw_range(env, "vipr-native: rxBurst slots out of range of data/lengths/ports");
  }
  rx_target t = {data, slot_size, lengths, ports, (uint8_t)port_index, first};
  uint32_t got = p->version == TPACKET_V3 ? rx_v3(p, &t, max) : rx_v2(p, &t, max);
  return make_uint32(env, got);
}

static napi_value vipr_port_tx_burst(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  vipr_port *p;
  if (!port_args(env, info, argv, 6, "vipr-native: txBurst(handle, data, slots, count, slotSize, lengths)", &p)) return NULL;
  uint8_t *data;
  uint16_t *slots, *lengths;
  size_t data_len, slots_len, lengths_len;
  uint32_t count, slot_size;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&data, &data_len, "data") ||
      !get_array(env, argv[2], napi_uint16_array, (void **)&slots, &slots_len, "slots") ||
      !get_u32(env, argv[3], &count, "count") || !get_u32(env, argv[4], &slot_size, "slotSize") ||
      !get_array(env, argv[5], napi_uint16_array, (void **)&lengths, &lengths_len, "lengths")) {
    return NULL;
  }
  if (count == 0 || p->closed) return make_uint32(env, 0);
  if (count > slots_len || slot_size == 0) return throw_range(env, "vipr-native: txBurst count exceeds slots");
  uint32_t sent = 0;
  uint8_t *frames[TX_CHUNK];
  uint32_t lens[TX_CHUNK];
  for (uint32_t done = 0; done < count;) {
    uint32_t n = 0;
    for (; n < TX_CHUNK && done < count; done++) {
      uint32_t slot = slots[done];
      if (slot >= lengths_len) return throw_range(env, "vipr-native: txBurst slot index out of range of lengths");
      uint32_t len = lengths[slot];
      if (len > slot_size || (uint64_t)slot * slot_size + len > data_len)
        return throw_range(env, "vipr-native: txBurst slot out of range of data");
      frames[n] = data + (size_t)slot * slot_size;
      lens[n] = len;
      n++;
    }
    bool blocked = false;
    sent += p->tx_mode == TX_RING ? tx_ring(p, frames, lens, n, &blocked) : tx_sendmmsg(p, frames, lens, n, &blocked);
    if (blocked) {
      // Queue full: the frames not yet handed to this chunk are dropped too.
      if (done < count) p->counters[C_TX_FAILED] += count - done;
      break;
    }
  }
  return make_uint32(env, sent);
}

static napi_value vipr_port_send(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  vipr_port *p;
  if (!port_args(env, info, argv, 3, "vipr-native: send(handle, buffer, length)", &p)) return NULL;
  uint8_t *data;
  size_t data_len;
  uint32_t len;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&data, &data_len, "buffer") ||
      !get_u32(env, argv[2], &len, "length")) {
    return NULL;
  }
  if (len > data_len) return throw_range(env, "vipr-native: send length exceeds the buffer");
  if (p->closed || len == 0) return make_bool(env, false);
  if (p->tx_mode == TX_RING) {
    // With a TX ring every send() on the socket goes through the ring.
    uint8_t *frames[1] = {data};
    uint32_t lens[1] = {len};
    bool blocked = false;
    return make_bool(env, tx_ring(p, frames, lens, 1, &blocked) == 1);
  }
  ssize_t r;
  do {
    r = send(p->fd, data, len, MSG_DONTWAIT);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    p->counters[C_TX_FAILED]++;
    return make_bool(env, false);
  }
  p->counters[C_TX_FRAMES]++;
  p->counters[C_TX_BYTES] += len;
  return make_bool(env, true);
}

static napi_value vipr_port_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  vipr_port *p;
  if (!port_args(env, info, argv, 1, "vipr-native: stats(handle)", &p)) return NULL;
  if (p->closed) return undefined(env);
  // Reading PACKET_STATISTICS resets the kernel's counts: accumulate them here.
  struct tpacket_stats_v3 st = {0};
  socklen_t len = p->version == TPACKET_V3 ? sizeof(struct tpacket_stats_v3) : sizeof(struct tpacket_stats);
  if (getsockopt(p->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) {
    return throw_errno(env, "getsockopt(PACKET_STATISTICS)", NULL, errno);
  }
  p->counters[C_KERNEL_PACKETS] += st.tp_packets;
  p->counters[C_KERNEL_DROPS] += st.tp_drops;
  if (p->version == TPACKET_V3) p->counters[C_KERNEL_FREEZES] += st.tp_freeze_q_cnt;
  return undefined(env);
}

// ---- readiness --------------------------------------------------------------

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  vipr_port *p = (vipr_port *)handle->data;
  if (!p->callback || p->closed) return;
  if (status < 0) {
    // libuv stops a poll handle on POLLERR. A packet socket reports ENETDOWN
    // when its link goes down and works again when it comes back up, so:
    // read (and so clear) the error, count it, and keep watching.
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (p->counters) p->counters[C_SOCKET_ERRORS]++;
    if (p->polling) uv_poll_start(&p->poll, UV_READABLE, on_poll);
  }
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, argv[1], result;
  if (p->counters) p->counters[C_RX_WAKEUPS]++;
  if (napi_get_reference_value(env, p->callback, &callback) == napi_ok && callback) {
    napi_get_global(env, &recv);  // make_callback wants an object as `this`
    napi_create_int32(env, status, &argv[0]);
    // make_callback: runs process.nextTick and microtasks afterwards, like any libuv callback into JS.
    napi_status s = napi_make_callback(env, p->async_context, recv, callback, 1, argv, &result);
    if (s == napi_pending_exception) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
  }
  napi_close_handle_scope(env, scope);
}

static napi_value vipr_port_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  vipr_port *p;
  if (!port_args(env, info, argv, 2, "vipr-native: start(handle, callback)", &p)) return NULL;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type != napi_function) return throw_type(env, "vipr-native: start: callback must be a function");
  if (p->closed) return throw_range(env, "vipr-native: start: the port is closed");
  if (p->poll_state == POLL_NONE) {
    uv_loop_t *loop;
    CHECK(napi_get_uv_event_loop(env, &loop));
    int r = uv_poll_init_socket(loop, &p->poll, p->fd);
    if (r < 0) return throw_errno(env, "uv_poll_init", NULL, -r);
    p->poll.data = p;
    p->poll_state = POLL_ACTIVE;
  }
  if (p->callback) napi_delete_reference(env, p->callback);
  CHECK(napi_create_reference(env, argv[1], 1, &p->callback));
  if (!p->async_context) {
    napi_value name, resource;
    napi_create_string_utf8(env, "vipr:RingPort", NAPI_AUTO_LENGTH, &name);
    napi_create_object(env, &resource);
    CHECK(napi_async_init(env, resource, name, &p->async_context));
  }
  int r = uv_poll_start(&p->poll, UV_READABLE, on_poll);
  if (r < 0) return throw_errno(env, "uv_poll_start", NULL, -r);
  p->polling = true;
  return undefined(env);
}

static napi_value vipr_port_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  vipr_port *p;
  if (!port_args(env, info, argv, 1, "vipr-native: stop(handle)", &p)) return NULL;
  if (p->poll_state == POLL_ACTIVE && p->polling) uv_poll_stop(&p->poll);
  p->polling = false;
  return undefined(env);
}

static napi_value vipr_port_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  vipr_port *p;
  if (!port_args(env, info, argv, 1, "vipr-native: close(handle)", &p)) return NULL;
  close_port(env, p);
  return undefined(env);
}

// A few facts for tests and logs: which ring, how big, fd.
static napi_value vipr_port_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  vipr_port *p;
  if (!port_args(env, info, argv, 1, "vipr-native: info(handle)", &p)) return NULL;
  napi_value o, v;
  napi_create_object(env, &o);
#define SET_U32(key, value)                        \
  napi_create_uint32(env, (uint32_t)(value), &v); \
  napi_set_named_property(env, o, key, v);
  SET_U32("version", p->version == TPACKET_V3 ? 3 : 2);
  SET_U32("ifindex", p->ifindex);
  SET_U32("rxFrames", p->version == TPACKET_V3 ? 0 : p->rx_frame_count);
  SET_U32("rxFrameSize", p->rx_frame_size);
  SET_U32("rxBlocks", p->rx_block_count);
  SET_U32("rxBlockSize", p->rx_block_size);
  SET_U32("txFrames", p->tx_frame_count);
  SET_U32("ringBytes", p->map_size);
#undef SET_U32
  napi_value s;
  napi_create_string_utf8(env, p->tx_mode == TX_RING ? "ring" : "sendmmsg", NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "tx", s);
  napi_create_int32(env, p->fd, &v);
  napi_set_named_property(env, o, "fd", v);
  napi_get_boolean(env, p->closed, &v);
  napi_set_named_property(env, o, "closed", v);
  return o;
}

// ---- thread CPU affinity ----------------------------------------------------
// sched_setaffinity(0, ...) on Linux applies to the calling thread only, so the
// daemon pins its data plane thread (the main JS thread) to one CPU while its
// probe thread and Node's helper threads keep the others.

// getThreadAffinity() -> number[]: the CPUs the calling thread may run on.
static napi_value vipr_get_thread_affinity(napi_env env, napi_callback_info info) {
  (void)info;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return throw_errno(env, "sched_getaffinity", NULL, errno);
  napi_value list;
  CHECK(napi_create_array(env, &list));
  uint32_t n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set)) continue;
    CHECK(napi_set_element(env, list, n++, make_uint32(env, (uint32_t)cpu)));
  }
  return list;
}

// setThreadAffinity(cpus: number[]): the calling thread runs on these CPUs only.
static napi_value vipr_set_thread_affinity(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array)
    return throw_type(env, "setThreadAffinity(cpus): cpus must be an array of CPU numbers");
  uint32_t length = 0;
  CHECK(napi_get_array_length(env, argv[0], &length));
  if (length == 0) return throw_range(env, "setThreadAffinity(cpus): at least one CPU");
  cpu_set_t set;
  CPU_ZERO(&set);
  for (uint32_t i = 0; i < length; i++) {
    napi_value element;
    uint32_t cpu = 0;
    CHECK(napi_get_element(env, argv[0], i, &element));
    if (napi_get_value_uint32(env, element, &cpu) != napi_ok) return throw_type(env, "setThreadAffinity(cpus): cpus must be an array of CPU numbers");
    if (cpu >= CPU_SETSIZE) return throw_range(env, "setThreadAffinity(cpus): CPU number too large");
    CPU_SET(cpu, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) != 0) return throw_errno(env, "sched_setaffinity", NULL, errno);
  return NULL;
}

// ---- process ----------------------------------------------------------------

// Copies a JS array of strings into a NULL-terminated argv-style array (malloc'd; freed only on failure:
// on success the caller execs and the process image is gone).
static char **string_array(napi_env env, napi_value array, const char *what) {
  bool is_array = false;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array) {
    throw_type(env, what);
    return NULL;
  }
  uint32_t length = 0;
  napi_get_array_length(env, array, &length);
  char **out = calloc(length + 1, sizeof *out);
  if (!out) return NULL;
  for (uint32_t i = 0; i < length; i++) {
    napi_value element;
    size_t size = 0;
    napi_get_element(env, array, i, &element);
    if (napi_get_value_string_utf8(env, element, NULL, 0, &size) != napi_ok) {
      for (uint32_t k = 0; k < i; k++) free(out[k]);
      free(out);
      throw_type(env, what);
      return NULL;
    }
    out[i] = malloc(size + 1);
    napi_get_value_string_utf8(env, element, out[i], size + 1, &size);
  }
  return out;
}

// exec(path, argv: string[], env: string[]): replaces the process image (same PID), as execve(2).
// Returns only on failure, by throwing. Used once, at start, to re-run vipr with fewer privileges
// (src/daemon/privileges.ts): Node 20 has no execve of its own.
static napi_value vipr_exec(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "exec(path, argv, env): three arguments");
  char path[4096];
  size_t size = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &size) != napi_ok) return throw_type(env, "exec(path, argv, env): path must be a string");
  char **args = string_array(env, argv[1], "exec(path, argv, env): argv must be an array of strings");
  if (!args) return NULL;
  char **environment = string_array(env, argv[2], "exec(path, argv, env): env must be an array of strings");
  if (!environment) return NULL;
  // The standard descriptors go to the new image as they are (Node may have marked them close-on-exec).
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  execve(path, args, environment);
  int error = errno;
  for (char **a = args; *a; a++) free(*a);
  for (char **e = environment; *e; e++) free(*e);
  free(args);
  free(environment);
  char what[4200];
  snprintf(what, sizeof what, "execve %s", path);
  return throw_errno(env, what, NULL, error);
}

// ---- module -----------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, vipr_port_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rxBurst", NULL, vipr_port_rx_burst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"txBurst", NULL, vipr_port_tx_burst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, vipr_port_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, vipr_port_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"start", NULL, vipr_port_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stop", NULL, vipr_port_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, vipr_port_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, vipr_port_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreadAffinity", NULL, vipr_get_thread_affinity, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreadAffinity", NULL, vipr_set_thread_affinity, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exec", NULL, vipr_exec, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value count;
  napi_create_uint32(env, C_COUNT, &count);
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_set_named_property(env, exports, "COUNTERS", count);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
