// bench/lab/pace.c: a paced UDP frame generator on an AF_PACKET socket, for
// the zero-loss search of bench/forwarding.ts. trafgen paces with one
// nanosleep per packet (-t / -b), which on this VM tops out far below what a
// router forwards (bench/forwarding.ts records a calibration); this sends the
// same kind of frame (Ethernet/IPv4/UDP, correct IP and UDP checksums,
// PACKET_QDISC_BYPASS like trafgen's default) on a CLOCK_MONOTONIC schedule.
//
//   pace --if eth0 --dst-mac 02:00:00:00:00:01 --src-mac 02:00:00:00:00:02
//        --src-ip 10.0.0.2 --dst-ip 192.168.1.33 [--sport 4000] [--dport 9]
//        [--frame 60] [--rate PPS (0: flat out)] [--count N] [--seconds S]
//        [--burst 32] [--tick-us 50] [--cpu C] [--rt PRIO]
//
// Schedule: packet k is due at start + k/rate. The sender sleeps
// (clock_nanosleep, timer slack 1 ns) until the next packet is due but at
// least one tick (--tick-us), then sends every packet due by then in one
// sendmmsg: micro-bursts of rate x tick frames, at most 20k wake-ups a second,
// and the CPU is free in between (a sleeper, not a spinner, so the scheduler
// wakes it promptly even on a busy box). After a stall (more than two ticks'
// worth, or --burst, due at once) it sends one such burst and moves its
// schedule on ("resync"): a steady stream, never a saved-up burst; the report
// says how often and for how long, and the rate achieved. Sends never block
// (MSG_DONTWAIT; a full device is retried, as trafgen does). Flat out (--rate
// 0): bursts of --burst back to back. Stops after --count packets or
// --seconds, or on SIGINT/SIGTERM, then prints one JSON line on stdout.
//
// Built by bench/forwarding.ts (cc -O2) into the temp directory; never committed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_QDISC_BYPASS
#define PACKET_QDISC_BYPASS 20
#endif
#define MAX_BURST 256

static volatile sig_atomic_t stop_flag = 0;
static void on_signal(int sig) { (void)sig; stop_flag = 1; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_mac(const char *s, uint8_t *mac) {
  unsigned v[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return -1;
  for (int i = 0; i < 6; i++) {
    if (v[i] > 255) return -1;
    mac[i] = (uint8_t)v[i];
  }
  return 0;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
  for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) acc += (uint32_t)p[n - 1] << 8;
  return acc;
}

static uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

static void usage(void) {
  fprintf(stderr,
          "usage: pace --if IF --dst-mac MAC --src-mac MAC --src-ip A --dst-ip A [--sport 4000] [--dport 9]\n"
          "            [--frame 60] [--rate PPS] [--count N] [--seconds S] [--burst 32] [--tick-us 50] [--cpu C] [--rt PRIO]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *ifname = NULL;
  uint8_t dmac[6], smac[6];
  int have_dmac = 0, have_smac = 0;
  struct in_addr sip = {0}, dip = {0};
  int have_sip = 0, have_dip = 0;
  unsigned sport = 4000, dport = 9, frame_len = 60, burst = 32;
  double rate = 0, seconds = 0;
  unsigned tick_us = 50;
  int rt = 0;
  unsigned long long count = 0;
  int cpu = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (!strcmp(a, "--if")) ifname = v;
    else if (!strcmp(a, "--dst-mac")) { if (parse_mac(v, dmac)) usage(); have_dmac = 1; }
    else if (!strcmp(a, "--src-mac")) { if (parse_mac(v, smac)) usage(); have_smac = 1; }
    else if (!strcmp(a, "--src-ip")) { if (inet_pton(AF_INET, v, &sip) != 1) usage(); have_sip = 1; }
    else if (!strcmp(a, "--dst-ip")) { if (inet_pton(AF_INET, v, &dip) != 1) usage(); have_dip = 1; }
    else if (!strcmp(a, "--sport")) sport = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--dport")) dport = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--frame")) frame_len = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--rate")) rate = strtod(v, NULL);
    else if (!strcmp(a, "--count")) count = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--seconds")) seconds = strtod(v, NULL);
    else if (!strcmp(a, "--burst")) burst = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--cpu")) cpu = atoi(v);
    else if (!strcmp(a, "--tick-us")) tick_us = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--rt")) rt = atoi(v);
    else usage();
    i++;
  }
  if (!ifname || !have_dmac || !have_smac || !have_sip || !have_dip) usage();
  if (frame_len < 42 || frame_len > 1514 || burst < 1 || burst > MAX_BURST || rate < 0 || sport > 65535 || dport > 65535) usage();
  if (count == 0 && seconds <= 0) usage();

  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // precise wake-ups (trafgen -t does the same)
  if (rt > 0) {
    struct sched_param sp = {.sched_priority = rt};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) { perror("sched_setscheduler"); return 1; }
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) { perror("sched_setaffinity"); return 1; }
  }

  // The frame: Ethernet, IPv4 (no options, TTL 64, id 0), UDP, zero payload.
  uint8_t frame[1514];
  memset(frame, 0, sizeof frame);
  memcpy(frame, dmac, 6);
  memcpy(frame + 6, smac, 6);
  frame[12] = 0x08; frame[13] = 0x00;
  uint8_t *ip = frame + 14;
  unsigned ip_len = frame_len - 14, udp_len = ip_len - 20;
  ip[0] = 0x45; ip[2] = (uint8_t)(ip_len >> 8); ip[3] = (uint8_t)ip_len; ip[8] = 64; ip[9] = 17;
  memcpy(ip + 12, &sip, 4);
  memcpy(ip + 16, &dip, 4);
  uint16_t ipsum = fold(sum16(ip, 20, 0));
  ip[10] = (uint8_t)(ipsum >> 8); ip[11] = (uint8_t)ipsum;
  uint8_t *udp = ip + 20;
  udp[0] = (uint8_t)(sport >> 8); udp[1] = (uint8_t)sport; udp[2] = (uint8_t)(dport >> 8); udp[3] = (uint8_t)dport;
  udp[4] = (uint8_t)(udp_len >> 8); udp[5] = (uint8_t)udp_len;
  uint32_t acc = sum16(ip + 12, 8, 0) + 17 + udp_len;  // pseudo header
  uint16_t usum = fold(sum16(udp, udp_len, acc));
  if (usum == 0) usum = 0xffff;
  udp[6] = (uint8_t)(usum >> 8); udp[7] = (uint8_t)usum;

  int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, never receives
  if (fd < 0) { perror("socket(AF_PACKET)"); return 1; }
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) perror("PACKET_QDISC_BYPASS (ignored)");
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = (int)if_nametoindex(ifname);
  sll.sll_halen = 6;
  memcpy(sll.sll_addr, dmac, 6);
  if (sll.sll_ifindex == 0) { fprintf(stderr, "pace: no interface %s\n", ifname); return 1; }
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); return 1; }

  static struct mmsghdr msgs[MAX_BURST];
  static struct iovec iov[MAX_BURST];
  for (unsigned i = 0; i < MAX_BURST; i++) {
    iov[i].iov_base = frame;
    iov[i].iov_len = frame_len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &sll;
    msgs[i].msg_hdr.msg_namelen = sizeof sll;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  if (tick_us < 1) tick_us = 1;
  const double interval = rate > 0 ? 1e9 / rate : 0;
  const uint64_t tick = (uint64_t)tick_us * 1000u;
  // packets sent back to back at most: what one tick holds (twice), at least --burst
  unsigned cap = burst;
  if (interval > 0) {
    double per_tick = (double)tick / interval;
    if (2 * per_tick > cap) cap = per_tick * 2 > MAX_BURST ? MAX_BURST : (unsigned)(per_tick * 2) + 1;
  }
  const uint64_t start = now_ns();
  const uint64_t end = seconds > 0 ? start + (uint64_t)(seconds * 1e9) : UINT64_MAX;
  unsigned long long sent = 0, errors = 0, resyncs = 0, calls = 0, wakeups = 0;
  double base = (double)start;        // the schedule: packet k (counted from base_sent) is due at base + k * interval
  unsigned long long base_sent = 0;
  uint64_t max_late = 0, stalled_ns = 0;
  int last_errno = 0;

  while (!stop_flag && (count == 0 || sent < count)) {
    uint64_t t = now_ns();
    if (t >= end) break;
    unsigned n = burst;
    if (interval > 0) {
      // packets due by now
      double since = (double)t - base;
      unsigned long long due_total = since < 0 ? 0 : (unsigned long long)(since / interval) + 1;
      unsigned long long due = due_total + base_sent > sent ? due_total + base_sent - sent : 0;
      if (due == 0) {
        // sleep until the next packet is due, but at least one tick: a wake-up sends what is due by then
        double next_due = base + (double)(sent - base_sent) * interval;
        uint64_t wake = (uint64_t)next_due;
        if (wake < t + tick) wake = t + tick;
        if (wake > end) wake = end;
        struct timespec ts = {(time_t)(wake / 1000000000u), (long)(wake % 1000000000u)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        wakeups++;
        continue;
      }
      if (due > cap) {  // a stall (the CPU was taken away): send one burst and move the schedule on
        double late = (double)t - (base + (double)(sent - base_sent) * interval);
        resyncs++;
        if (late > 0) {
          stalled_ns += (uint64_t)late;
          if ((uint64_t)late > max_late) max_late = (uint64_t)late;
        }
        n = cap;
        base = (double)t;
        base_sent = sent + n;
      } else {
        n = (unsigned)due;
      }
    }
    if (count > 0 && sent + n > count) n = (unsigned)(count - sent);
    unsigned off = 0;
    while (off < n && !stop_flag) {
      int r = sendmmsg(fd, msgs + off, n - off, MSG_DONTWAIT);
      calls++;
      if (r < 0) {
        if (errno == EINTR) continue;
        errors++;
        last_errno = errno;
        if (errno == ENOBUFS || errno == EAGAIN) { sched_yield(); continue; }  // the device (or socket) is full: as trafgen, retry
        fprintf(stderr, "pace: sendmmsg: %s\n", strerror(errno));
        stop_flag = 1;
        break;
      }
      off += (unsigned)r;
    }
    sent += off;
  }
  uint64_t elapsed = now_ns() - start;
  printf("{\"sent\":%llu,\"elapsed_ns\":%llu,\"rate\":%.1f,\"target_rate\":%.1f,\"frame\":%u,\"calls\":%llu,\"wakeups\":%llu,"
         "\"errors\":%llu,\"last_error\":\"%s\",\"resyncs\":%llu,\"stalled_ms\":%.3f,\"max_late_us\":%.1f}\n",
         sent, (unsigned long long)elapsed, elapsed ? sent * 1e9 / (double)elapsed : 0.0, rate, frame_len, calls, wakeups, errors,
         last_errno ? strerror(last_errno) : "", resyncs, stalled_ns / 1e6, max_late / 1e3);
  fflush(stdout);
  close(fd);
  return 0;
}
