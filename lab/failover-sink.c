// lab/failover-sink.c: the receiver of the failover measurement
// (lab/lib/failover-trial.ts compiles it with cc -O2 into the temp dir). Per
// sequence number of the numbered stream (lab/udp-stream.c): how often it
// arrived, when it first arrived (CLOCK_MONOTONIC us, read as each batch is
// received) and when it was sent (the sender's stamp, us); written to
// OUT.count / OUT.arrival / OUT.sent (u8, f64, f64) on SIGTERM, then one JSON
// summary line. recvmmsg and a 16 MB receive buffer (SO_RCVBUFFORCE): at
// 20,000 packets/s it costs little CPU, so it can run at real-time priority
// without starving the web servers' health checks on a two-CPU machine, and a
// busy machine cannot make it miss packets (which would count as lost).
//   sink BIND PORT RUN_ID OUT
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x51455356u
#define BATCH 64
#define MAX_SEQ (1u << 26) /* 55 minutes at 20,000 packets/s */

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }
static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}
static uint32_t u32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t u64(const unsigned char *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

static size_t size = 1u << 18;
static unsigned char *counts;
static double *arrival, *sent;
static void grow(uint64_t seq) {
  size_t n = size;
  while (n <= seq) n *= 2;
  counts = realloc(counts, n);
  arrival = realloc(arrival, n * sizeof(double));
  sent = realloc(sent, n * sizeof(double));
  if (!counts || !arrival || !sent) { fprintf(stderr, "sink: out of memory\n"); exit(1); }
  memset(counts + size, 0, n - size);
  size = n;
}
static void dump(const char *out, const char *ext, const void *data, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s.%s", out, ext);
  FILE *f = fopen(path, "wb");
  if (!f || (bytes && fwrite(data, 1, bytes, f) != bytes) || fclose(f) != 0) { perror(path); exit(1); }
}
/* datagrams the kernel dropped at this socket (full buffer), from /proc/net/udp */
static long long socket_drops(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) return -1;
  char local[32];
  snprintf(local, sizeof local, "%08X:%04X", a.sin_addr.s_addr, ntohs(a.sin_port));
  FILE *f = fopen("/proc/net/udp", "r");
  if (!f) return -1;
  char line[512];
  long long drops = -1;
  while (fgets(line, sizeof line, f)) {
    char sl[16], loc[64];
    if (sscanf(line, "%15s %63s", sl, loc) != 2 || strcmp(loc, local) != 0) continue;
    char *last = strrchr(line, ' ');
    if (last) drops = atoll(last + 1);
  }
  fclose(f);
  return drops;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: sink BIND PORT RUN_ID OUT\n"); return 2; }
  const char *out = argv[4];
  uint32_t run_id = (uint32_t)strtoul(argv[3], NULL, 10);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "sink: bad address %s\n", argv[1]); return 2; }
  counts = calloc(size, 1);
  arrival = malloc(size * sizeof(double));
  sent = malloc(size * sizeof(double));
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("sink: socket"); return 1; }
  int buf = 16 * 1024 * 1024;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  if (bind(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("sink: bind"); return 1; }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends the wait in recvmmsg */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("{\"event\":\"listening\",\"pid\":%d}\n", (int)getpid());
  fflush(stdout);

  static unsigned char data[BATCH][64];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = data[i];
    iov[i].iov_len = sizeof data[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  long long received = 0, foreign = 0, max_seq = -1;
  while (!stop_requested) {
    int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("sink: recvmmsg");
      return 1;
    }
    double t = now_us();
    for (int i = 0; i < n; i++) {
      const unsigned char *p = data[i];
      if (msgs[i].msg_len < 24 || u32(p) != MAGIC || u32(p + 4) != run_id) { foreign++; continue; }
      uint64_t seq = u64(p + 8);
      if (seq >= MAX_SEQ) { foreign++; continue; }
      if (seq >= size) grow(seq);
      received++;
      if (counts[seq] == 0) { arrival[seq] = t; sent[seq] = (double)u64(p + 16) / 1e3; }
      if (counts[seq] < 255) counts[seq]++;
      if ((long long)seq > max_seq) max_seq = (long long)seq;
    }
  }
  long long drops = socket_drops(fd);
  size_t total = (size_t)(max_seq + 1);
  dump(out, "count", counts, total);
  dump(out, "arrival", arrival, total * sizeof(double));
  dump(out, "sent", sent, total * sizeof(double));
  char dropsText[32];
  if (drops < 0) snprintf(dropsText, sizeof dropsText, "null");
  else snprintf(dropsText, sizeof dropsText, "%lld", drops);
  printf("{\"event\":\"summary\",\"received\":%lld,\"foreign\":%lld,\"maxSeq\":%lld,\"socketDrops\":%s}\n",
         received, foreign, max_seq, dropsText);
  return 0;
}
