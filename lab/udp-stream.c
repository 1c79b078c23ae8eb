// udp-stream: a numbered, steadily paced UDP stream for the reroute measurements.
//
//   cc -O2 -o /tmp/udp-stream lab/udp-stream.c
//   ip netns exec P-client /tmp/udp-stream --dst 192.168.1.33 --port 9999
//       --rate 20000 --duration 3 --run-id 42 [--count N] [--size 64] [--cpu 0] [--rt 50]
//       [--flows N]
//
// Packet i leaves at t0 + i / rate (absolute schedule on CLOCK_MONOTONIC, so a
// late wake-up is caught up at once and the average rate is exact), except
// that a catch-up never sends more than --max-burst packets (default 64) back
// to back: after a longer stall of the sender the schedule moves on instead
// (counted in resyncs and stalled_ms), so the receiver sees a steady stream,
// never a burst of hundreds of packets a stalled sender saved up. Payload
// (little endian), at least 24 bytes:
//   0  u32 magic 0x51455356 ("VSEQ")
//   4  u32 run id
//   8  u64 sequence number, 0, 1, 2, ... (one per successful send, no gaps)
//  16  u64 CLOCK_MONOTONIC send time, ns
// --flows N sends from N sockets (N source ports, default 1), packet i from
// socket i mod N: N flows for a router that spreads flows by an L4 hash (ECMP),
// one numbering across all of them.
// A send that fails (ENOBUFS, ...) is counted and retried with the same number,
// so the numbers that left the socket are exactly 0 .. sent-1.
// Stops after --count packets or --duration seconds (whichever comes first;
// at least one is required), or on SIGINT/SIGTERM, then prints one JSON line:
//   {"sent":N,"errors":N,"elapsed_ns":N,"rate":R,"max_late_us":L,"max_burst":B,"late_1ms":K,
//    "resyncs":N,"stalled_ms":S}
// max_late_us: the longest the sender was behind its schedule (a stall);
// late_1ms: packets sent more than 1 ms after their (possibly moved) time;
// max_burst: the most packets sent back to back in one catch-up.
// --cpu N pins the sender to one CPU; --rt PRIO runs it SCHED_FIFO at that
// priority (1..99), so other busy processes on the CPU cannot delay it: it
// sleeps between packets and uses a small part of the CPU.
//
// udp-stream --stall-probe SEC [--cpu N] [--rt PRIO] sends nothing: it wakes up
// every 200 us for SEC seconds and reports how late the wake-ups were,
//   {"probe_s":S,"wakeups":N,"max_late_us":L,"late_1ms":K,"late_5ms":K5,"late_10ms":K10}
// (SIGTERM/SIGINT end it early, with the report)
// i.e. how long a process at that priority on that CPU can be kept from running
// (by the kernel, or by the hypervisor descheduling a virtual CPU).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void usage(const char *msg) {
  if (msg) fprintf(stderr, "udp-stream: %s\n", msg);
  fprintf(stderr,
          "usage: udp-stream --dst ADDR --port PORT --rate PPS (--count N | --duration SEC)\n"
          "                  [--run-id ID] [--size BYTES (24..1472, default 64)] [--cpu N] [--rt PRIO]\n"
          "                  [--max-burst N (default 64)] [--flows N (1..1024, default 1)]\n"
          "       udp-stream --stall-probe SEC [--cpu N] [--rt PRIO]\n");
  exit(2);
}

static double parse_num(const char *s, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end) {
    fprintf(stderr, "udp-stream: bad %s '%s'\n", what, s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *dst = NULL;
  double port = -1, rate = -1, count = -1, duration = -1, run_id = 0, size = 64, cpu = -1, rt = 0, probe = -1, burst_cap = 64, flows = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage("missing value");
    const char *v = argv[++i];
    if (!strcmp(a, "--dst")) dst = v;
    else if (!strcmp(a, "--port")) port = parse_num(v, "port");
    else if (!strcmp(a, "--rate")) rate = parse_num(v, "rate");
    else if (!strcmp(a, "--count")) count = parse_num(v, "count");
    else if (!strcmp(a, "--duration")) duration = parse_num(v, "duration");
    else if (!strcmp(a, "--run-id")) run_id = parse_num(v, "run id");
    else if (!strcmp(a, "--size")) size = parse_num(v, "size");
    else if (!strcmp(a, "--cpu")) cpu = parse_num(v, "cpu");
    else if (!strcmp(a, "--rt")) rt = parse_num(v, "rt priority");
    else if (!strcmp(a, "--max-burst")) burst_cap = parse_num(v, "max burst");
    else if (!strcmp(a, "--stall-probe")) probe = parse_num(v, "stall probe seconds");
    else if (!strcmp(a, "--flows")) flows = parse_num(v, "flows");
    else usage("unknown option");
  }
  if (probe < 0 && !dst) usage("--dst is required");
  if (probe < 0 && (port < 1 || port > 65535)) usage("--port must be 1..65535");
  if (probe < 0 && (rate <= 0 || rate > 10e6)) usage("--rate must be > 0 and <= 10000000");
  if (probe < 0 && count < 0 && duration < 0) usage("--count or --duration is required");
  if (size < 24 || size > 1472) usage("--size must be 24..1472");
  if (burst_cap < 1) usage("--max-burst must be >= 1");
  if (flows < 1 || flows > 1024) usage("--flows must be 1..1024");
  if (run_id < 0 || run_id > 4294967295.0) usage("--run-id must be 0..4294967295");

  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("udp-stream: sched_setaffinity");
  }
  if (rt < 0 || rt > 99) usage("--rt must be 0..99 (0: normal scheduling)");
  if (rt > 0) {
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    sp.sched_priority = (int)rt;
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) perror("udp-stream: sched_setscheduler");
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  // Wake up on time: the default 50 us timer slack is as long as our period.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  if (probe >= 0) {
    uint64_t end = now_ns() + (uint64_t)(probe * 1e9), n = 0, max_late = 0, late1 = 0, late5 = 0, late10 = 0;
    while (!stop_requested && now_ns() < end) {
      uint64_t due = now_ns() + 200000;
      struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
      uint64_t t = now_ns(), late = t > due ? t - due : 0;
      if (late > max_late) max_late = late;
      if (late > 1000000) late1++;
      if (late > 5000000) late5++;
      if (late > 10000000) late10++;
      n++;
    }
    printf("{\"probe_s\":%.1f,\"wakeups\":%llu,\"max_late_us\":%.1f,\"late_1ms\":%llu,\"late_5ms\":%llu,\"late_10ms\":%llu}\n",
           probe, (unsigned long long)n, (double)max_late / 1000.0, (unsigned long long)late1, (unsigned long long)late5,
           (unsigned long long)late10);
    return 0;
  }

  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, dst, &to.sin_addr) != 1) usage("--dst must be an IPv4 address");

  // Not connected: an ICMP error for one packet must not fail the next send.
  // One socket per flow: each gets its own source port at its first send.
  static int fds[1024];
  const int nflows = (int)flows;
  for (int f = 0; f < nflows; f++) {
    fds[f] = socket(AF_INET, SOCK_DGRAM, 0);
    if (fds[f] < 0) {
      perror("udp-stream: socket");
      return 1;
    }
    int sndbuf = (4 * 1024 * 1024) / nflows > 65536 ? (4 * 1024 * 1024) / nflows : 65536;
    setsockopt(fds[f], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }

  unsigned char buf[1472];
  memset(buf, 0, sizeof buf);
  put_u32(buf, 0x51455356u);
  put_u32(buf + 4, (uint32_t)run_id);

  const uint64_t limit = count >= 0 ? (uint64_t)count : UINT64_MAX;
  const double period_ns = 1e9 / rate;
  const uint64_t start = now_ns() + 1000000; // start 1 ms from now, on a clean schedule
  const uint64_t end = duration >= 0 ? start + (uint64_t)(duration * 1e9) : UINT64_MAX;
  const uint64_t max_backlog_ns = (uint64_t)((burst_cap - 1) * period_ns);
  uint64_t t0 = start; // moves on after a long stall (resync)
  uint64_t seq = 0, errors = 0, max_late = 0, max_burst = 0, late_1ms = 0, resyncs = 0, stalled = 0;
  int last_errno = 0;

  while (!stop_requested && seq < limit) {
    uint64_t due = t0 + (uint64_t)((double)seq * period_ns);
    if (due >= end) break;
    uint64_t now = now_ns();
    if (now < due) {
      struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
      continue;
    }
    // How late the sender woke up (a stall of the sender: its CPU, the machine).
    if (now - due > max_late) max_late = now - due;
    // Too far behind: move the schedule on, so that at most burst_cap packets are due.
    if (now - due > max_backlog_ns) {
      uint64_t shift = now - due - max_backlog_ns;
      t0 += shift;
      stalled += shift;
      resyncs++;
      due = t0 + (uint64_t)((double)seq * period_ns);
    }
    // Send everything that is due now (normally one packet).
    uint64_t burst = 0;
    while (!stop_requested && seq < limit && due <= now && due < end) {
      put_u64(buf + 8, seq);
      uint64_t t = now_ns();
      put_u64(buf + 16, t);
      if (sendto(fds[seq % (uint64_t)nflows], buf, (size_t)size, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        errors++;
        last_errno = errno;
        if (errno != EINTR) {
          // back off for a tenth of a period, then retry the same number
          struct timespec ts = {0, (long)(period_ns / 10)};
          nanosleep(&ts, NULL);
        }
        break;
      }
      uint64_t late = t > due ? t - due : 0;
      if (late > max_late) max_late = late;
      if (late > 1000000) late_1ms++;
      seq++;
      burst++;
      due = t0 + (uint64_t)((double)seq * period_ns);
    }
    if (burst > max_burst) max_burst = burst;
  }
  uint64_t elapsed = now_ns() - start;
  for (int f = 0; f < nflows; f++) close(fds[f]);
  printf("{\"sent\":%llu,\"errors\":%llu,\"last_error\":\"%s\",\"elapsed_ns\":%llu,\"rate\":%.1f,"
         "\"max_late_us\":%.1f,\"max_burst\":%llu,\"late_1ms\":%llu,\"resyncs\":%llu,\"stalled_ms\":%.1f}\n",
         (unsigned long long)seq, (unsigned long long)errors, last_errno ? strerror(last_errno) : "",
         (unsigned long long)elapsed, elapsed ? (double)seq * 1e9 / (double)elapsed : 0.0,
         (double)max_late / 1000.0, (unsigned long long)max_burst, (unsigned long long)late_1ms,
         (unsigned long long)resyncs, (double)stalled / 1e6);
  fflush(stdout);
  return 0;
}
