// Failover under a numbered stream: the article's 5 AM page, measured.
//
// A steady numbered UDP stream (lab/udp-stream.c, 20,000 packets/s, SCHED_FIFO
// on CPU 0) goes from the client to the VIP 192.168.1.33, whose route
// 192.168.1.32/27 is carried by web1 with web2 as its backup (lab/vipr.yaml).
// Timestamping sinks on 192.168.1.33:9999 in web1 and web2 record every number.
// Then web1 fails in one of three ways:
//
//   link    web1's link goes down: `ip -n P-web1 link set eth0 down`; back: link
//           up and its default route again (as ifup does: a link going down
//           flushes the routes through it, the address's own come back with it)
//   freeze  web1's HTTP server stops (SIGSTOP; back: SIGCONT). The host still
//           forwards and receives: only the health check sees the failure.
//   drop    web1 drops everything on eth0, both ways, ARP included (nft, netdev
//           ingress + egress hooks, in web1's namespace; back: the table is deleted)
//
// vipr (HTTP check on /health every 50 ms, 50 ms timeout, fall 3, rise 2,
// hold-down 3 s) moves the route to web2; when web1 is back, and has stayed up
// for the hold-down, the route moves back (failback).
//
// What is measured, per trial (every timestamp is CLOCK_MONOTONIC, which all
// namespaces of the host share: the sender stamps each packet, the sinks stamp
// each arrival, this process stamps what it does):
//   failure at  freeze: the moment this process sends SIGSTOP. link, drop: the
//               arrival of web1's last packet before the outage (the failure as
//               the stream saw it), which must lie inside the window of the
//               command that caused it (else the command's start is used)
//   gap         failure -> first packet arriving at web2
//   detect      failure -> vipr's `server web1 up -> down` event (its own clock,
//               ms resolution, mapped onto CLOCK_MONOTONIC)
//   outage      web1's last packet -> web2's first: what the traffic saw (for
//               freeze web1 keeps receiving until the route moves: ~0)
//   lost        sent - distinct numbers received at web1 + web2, split by send time:
//                 before the failure (a stall of the machine, not failover; should be 0)
//                 failover phase: from the failure (minus 20 ms: frames already
//                   queued in the router) until the recovery command
//                 failback phase: from the recovery command to the end
//   duplicates  received - distinct, per phase
//   failback at recovery command -> vipr's failback event (rise + hold-down);
//               first web1 packet after it
//   lost at vipr port  kernel up0 rx - vipr up0 rx over the trial: frames that
//               arrived while vipr's port buffer was full (vipr not running)
//
// Each trial builds a fresh lab (lab/lab.sh) and starts a fresh vipr, pinned
// to CPU 1 at SCHED_FIFO 20 like bench/reroute.ts's vipr-rt mode (--no-rt:
// normal scheduling), so trials share nothing. Kinds take turns (link, freeze,
// drop, link, ...) so a change of machine load spreads over all of them. The
// sinks (C, compiled with cc like the stream) run at SCHED_FIFO 10. A trial in
// which a health check of web1 or web2 failed with nothing wrong (the machine
// answered later than the check timeout; FailoverTrial.disturbances) measured
// something else: it is run again, up to 3 times, and the JSON keeps every
// attempt. The web servers run as lab.sh starts them (normal priority).
//
//   npx tsc -p tsconfig.json
//   node dist/bench/failover.js [--trials 20] [--kinds link,freeze,drop] [--rate 20000]
//        [--lead 1000] [--failure 1000] [--tail 500] [--no-rt] [--out FILE]
//   node dist/bench/failover.js --scenario PREFIX [--vipr-pid PID] [--kind link]
//        one trial, with progress lines, in the running lab PREFIX with its
//        vipr (scripts/demo.sh); exit 0 if vipr failed over and back, 3 if it
//        failed over but traffic did not move back, 1 if it did not fail over
// Writes bench/results/failover-YYYY-MM-DD[THHMMSS].json and prints a table,
// with keepalived's default timing and the article's manual procedure beside it.
// Needs root (network namespaces), cc, iproute2, nftables (installed with apt
// when missing; iptables is used if it is there and nft is not).
//
// measureFailover() is also used by test/lab/failover.test.ts.

import { type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  buildStream,
  makeRealtime,
  pinToCpu,
  PORT,
  VIP,
  VIP_NET,
  waitViprNeighbors,
  type StreamReport,
} from './reroute.js';
import {
  benchLabUp, compileC, listeningChild, stdoutClosed, labBenchRefusal, labFor, numberArg, onLines, REPO_ROOT, run, runIfMain, sleep, startViprIn, stopChild, teardownOnExit, VIPR_CLI,
  type ExecResult, type TrialLab,
} from './lab/common.js';

export { VIP, VIP_NET, PORT };
export type { TrialLab };

const LAB_CONFIG = join(REPO_ROOT, 'lab/vipr.yaml');

export type FailureKind = 'link' | 'freeze' | 'drop';
export const KINDS: readonly FailureKind[] = ['link', 'freeze', 'drop'];
export const KIND_TEXT: Record<FailureKind, string> = {
  link: "web1's link goes down (ip link set eth0 down)",
  freeze: "web1's HTTP server frozen (SIGSTOP)",
  drop: 'web1 drops everything on eth0 (nft)',
};

/** Frames already queued in the router when the failure hits were sent a little before it. */
const FAILURE_MARGIN_MS = 20;
/** Real-time priority of the sinks (the generator runs at 50, vipr at 20). */
const SINK_PRIORITY = 10;
/** vipr's event times have ms resolution and are mapped from the wall clock. */
const CLOCK_SLACK_MS = 5;

/** CLOCK_MONOTONIC in ms: the clock of the sender's stamps and the sinks' (process.hrtime is CLOCK_MONOTONIC). */
export const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;


/** Temp dirs of trials in progress: removed when a trial ends, or on exit if it never does. */
const tempDirs = new Set<string>();
function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}
function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ---- timestamping sinks ---------------------------------------------------------------------

/**
 * The sink: lab/udp-sink.mjs records which numbers arrived; a failover needs
 * *when* too. Per sequence number: how often it arrived, when it first arrived
 * (CLOCK_MONOTONIC µs, read as each batch is received) and when it was sent
 * (the sender's stamp, µs); written to OUT.count / OUT.arrival / OUT.sent
 * (u8, f64, f64) on SIGTERM, then one JSON summary line. In C with recvmmsg
 * and a 16 MB receive buffer (SO_RCVBUFFORCE): at 20,000 packets/s it costs
 * little CPU, so it can run at real-time priority without starving the web
 * servers' health checks on a two-CPU machine, and a busy machine cannot make
 * it miss packets (which would count as lost).
 */
const SINK_SOURCE = String.raw`// vipr failover sink (written and compiled by bench/failover.ts)
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
`;

/** Compile the sink (cc -O2) into the temp dir once; the file name carries the source's hash. */
export function buildSink(): Promise<string> {
  return compileC('failover-sink', 'the failover sink', SINK_SOURCE);
}

/** One sink's record: index = sequence number. */
export interface Share {
  name: string;
  counts: Uint8Array;
  /** first arrival, CLOCK_MONOTONIC ms (0 where nothing arrived) */
  arrivalMs: Float64Array;
  /** the sender's stamp, CLOCK_MONOTONIC ms (0 where nothing arrived) */
  sentMs: Float64Array;
  received: number;
  foreign: number;
  socketDrops: number | null;
}

interface Sink {
  name: string;
  child: ChildProcess;
  stop(): Promise<Share>;
}

function readFloat64(file: string, scale: number): Float64Array {
  if (!existsSync(file)) return new Float64Array(0);
  const bytes = new Uint8Array(readFileSync(file)); // a copy: aligned for Float64Array
  const values = new Float64Array(bytes.buffer, 0, Math.floor(bytes.length / 8));
  for (let i = 0; i < values.length; i++) values[i] *= scale;
  return values;
}

async function startSink(lab: TrialLab, name: 'web1' | 'web2', runId: number, dir: string): Promise<Sink> {
  const out = join(dir, name);
  const child = lab.spawn(name, [await buildSink(), VIP, String(PORT), String(runId), out]);
  const { lines, stderr } = await listeningChild(child, `failover sink in ${name}`);
  // The sinks are the instrument: at SCHED_FIFO 10 (below vipr's 20 and the
  // generator's 50) a busy machine cannot starve them until their socket
  // buffer overflows, which would count as packets lost.
  if (!(await makeRealtime(child.pid!, SINK_PRIORITY))) {
    await stopChild(child, 500);
    throw new Error(`could not make the failover sink in ${name} SCHED_FIFO (chrt)`);
  }
  return {
    name,
    child,
    stop: async () => {
      await stopChild(child, 5000);
      await stdoutClosed(child);
      const line = lines.find((l) => l.includes('"summary"'));
      if (!line) throw new Error(`failover sink in ${name} wrote no summary; stderr: ${stderr().trim()}`);
      const s = JSON.parse(line) as { received: number; foreign: number; socketDrops: number | null };
      return {
        name,
        counts: existsSync(`${out}.count`) ? new Uint8Array(readFileSync(`${out}.count`)) : new Uint8Array(0),
        arrivalMs: readFloat64(`${out}.arrival`, 1e-3),
        sentMs: readFloat64(`${out}.sent`, 1e-3),
        received: s.received,
        foreign: s.foreign,
        socketDrops: s.socketDrops,
      };
    },
  };
}

// ---- vipr's events, as `vipr ctl --json events` streams them -----------------------------------

/** A vipr event (src/health/events.ts ViprEvent) and when it happened on CLOCK_MONOTONIC. */
export interface SeenEvent {
  type: string;
  server?: string;
  oldState?: string;
  newState?: string;
  reason: string;
  routesMoved: Array<{ prefix: string; from: string | null; to: string | null }>;
  time: string;
  /** vipr's own time of the event (ms resolution), mapped onto CLOCK_MONOTONIC ms */
  atMs: number;
  /** as the text form of `vipr ctl events` prints it */
  text: string;
}

export function eventText(e: Pick<SeenEvent, 'type' | 'server' | 'oldState' | 'newState' | 'reason' | 'routesMoved'>): string {
  const what = e.type === 'server' ? `server ${e.server} ${e.oldState} -> ${e.newState}` : `${e.type}${e.server ? ` ${e.server}` : ''}`;
  const moved = e.routesMoved.map((m) => `${m.prefix} ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`).join(', ');
  return `${what}  (${e.reason})${moved ? `  routes: ${moved}` : ''}`;
}

export interface EventFollower {
  events: SeenEvent[];
  /** Resolves with the first event (from index `from` on) that matches, or undefined after `timeoutMs`. */
  waitFor(match: (e: SeenEvent) => boolean, timeoutMs: number, from?: number): Promise<SeenEvent | undefined>;
  stop(): Promise<void>;
}

/** Wall clock minus CLOCK_MONOTONIC, ms: maps vipr's event times (Date) onto the monotonic clock. */
function wallMinusMono(): number {
  const a = monoMs();
  const wall = Date.now();
  const b = monoMs();
  return wall - (a + b) / 2;
}

/**
 * Follow `vipr ctl --json events` in the router namespace. The control socket
 * does not acknowledge a subscription, so this waits until the client is
 * connected (`ss -x` shows it on the socket) and a little longer.
 */
export async function followEvents(lab: TrialLab, socket: string): Promise<EventFollower> {
  const child = lab.spawn('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'events'], { cwd: REPO_ROOT });
  const events: SeenEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderr += c));
  onLines(child.stdout, (line) => {
    try {
      const e = JSON.parse(line) as Omit<SeenEvent, 'atMs' | 'text'>;
      if (typeof e.type !== 'string') return;
      events.push({ ...e, atMs: Date.parse(e.time) - wallMinusMono(), text: eventText(e) });
      for (const w of waiters) w();
    } catch {
      /* not an event */
    }
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`vipr ctl events exited: ${stderr.trim()}`);
    const r = await lab.exec('router', ['ss', '-xpn']);
    if (child.pid && r.stdout.split('\n').some((l) => l.includes(`pid=${child.pid},`))) break;
    if (Date.now() > deadline) {
      await stopChild(child, 1000);
      throw new Error(`vipr ctl events did not connect to ${socket} within 10 s: ${stderr.trim()}`);
    }
    await sleep(50);
  }
  await sleep(100); // the `events` line goes out right after connecting
  return {
    events,
    waitFor: (match, timeoutMs, from = 0) =>
      new Promise((resolvePromise) => {
        const check = () => {
          const e = events.slice(from).find(match);
          if (e) finish(e);
        };
        let timer: NodeJS.Timeout | undefined;
        const finish = (e: SeenEvent | undefined) => {
          clearTimeout(timer);
          waiters.delete(check);
          resolvePromise(e);
        };
        timer = setTimeout(() => finish(undefined), timeoutMs);
        waiters.add(check);
        check();
      }),
    stop: async () => {
      await stopChild(child, 2000);
      await stdoutClosed(child, 500);
    },
  };
}

// ---- the three failures -------------------------------------------------------------------------

interface Window {
  startMs: number;
  endMs: number;
  command: string;
}

export interface Failure {
  kind: FailureKind;
  inject(): Promise<Window>;
  recover(): Promise<Window>;
  /** Undo whatever is still in effect (after an error); never throws. */
  cleanup(): Promise<void>;
}

async function timed(command: string, fn: () => Promise<void> | void): Promise<Window> {
  const startMs = monoMs();
  await fn();
  return { startMs, endMs: monoMs(), command };
}

async function must(r: Promise<ExecResult>, what: string): Promise<void> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what} failed (${x.code}): ${(x.stderr || x.stdout).trim()}`);
}

/** The pid of the lab's web server `name` (lab.sh writes it), checked to be that web server. */
export function webServerPid(prefix: string, name: string): number {
  const pid = Number(readFileSync(`/run/vipr-lab/${prefix}/${name}.pid`, 'utf8').trim());
  const cmdline = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
  if (!Number.isInteger(pid) || !cmdline.includes('webserver.mjs') || !cmdline.includes(name)) {
    throw new Error(`/run/vipr-lab/${prefix}/${name}.pid (${pid}) is not the lab's web server ${name}`);
  }
  return pid;
}

let firewall: Promise<'nft' | 'iptables'> | undefined;

/** nft (or iptables) for the drop failure; installs nftables with apt when neither is there. */
export function ensureFirewall(): Promise<'nft' | 'iptables'> {
  firewall ??= (async () => {
    const has = async (cmd: string) => (await run('sh', ['-c', `command -v ${cmd}`])).code === 0;
    if (await has('nft')) return 'nft';
    if (await has('iptables')) return 'iptables';
    let r = await run('apt-get', ['install', '-y', '-q', 'nftables'], 300_000);
    if (r.code !== 0) {
      await run('apt-get', ['update', '-q'], 300_000);
      r = await run('apt-get', ['install', '-y', '-q', 'nftables'], 300_000);
    }
    if (r.code !== 0 || !(await has('nft'))) throw new Error(`cannot install nftables: ${r.stderr.trim().split('\n').pop()}`);
    return 'nft';
  })();
  firewall.catch(() => (firewall = undefined));
  return firewall;
}

const NFT_TABLE = 'viprfail';
/** Everything on eth0, both ways, ARP included: netdev hooks run before and after the IP stack. */
const NFT_RULES = `table netdev ${NFT_TABLE} {
  chain in { type filter hook ingress device eth0 priority 0; policy drop; }
  chain out { type filter hook egress device eth0 priority 0; policy drop; }
}
`;

export async function makeFailure(kind: FailureKind, lab: TrialLab, server = 'web1'): Promise<Failure> {
  const ns = `${lab.prefix}-${server}`;
  switch (kind) {
    case 'link':
      return {
        kind,
        inject: () => timed(`ip -n ${ns} link set eth0 down`, () => must(run('ip', ['-n', ns, 'link', 'set', 'eth0', 'down']), 'link down')),
        recover: () =>
          timed(`ip -n ${ns} link set eth0 up; ip -n ${ns} route replace default via 192.168.1.1 dev eth0`, async () => {
            await must(run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']), 'link up');
            // Taking the link down flushed the default route through it; ifup would add it again.
            await must(run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', '192.168.1.1', 'dev', 'eth0']), 'default route');
          }),
        cleanup: async () => {
          await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
          await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', '192.168.1.1', 'dev', 'eth0']);
        },
      };
    case 'freeze': {
      const pid = webServerPid(lab.prefix, server);
      return {
        kind,
        inject: () => timed(`kill -STOP ${pid}  (${server}'s web server)`, () => void process.kill(pid, 'SIGSTOP')),
        recover: () => timed(`kill -CONT ${pid}`, () => void process.kill(pid, 'SIGCONT')),
        cleanup: async () => {
          try {
            process.kill(pid, 'SIGCONT');
          } catch {
            /* gone */
          }
        },
      };
    }
    case 'drop': {
      const tool = await ensureFirewall();
      if (tool === 'nft') {
        const rules = join(makeTempDir('vipr-failover-nft-'), 'drop.nft');
        writeFileSync(rules, NFT_RULES);
        const del = () => run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'netdev', NFT_TABLE]);
        return {
          kind,
          inject: () => timed(`ip netns exec ${ns} nft -f drop.nft  (netdev ingress+egress on eth0: drop)`, () => must(run('ip', ['netns', 'exec', ns, 'nft', '-f', rules]), 'nft -f')),
          recover: () => timed(`ip netns exec ${ns} nft delete table netdev ${NFT_TABLE}`, () => must(del(), 'nft delete table')),
          cleanup: async () => {
            await del();
            removeTempDir(dirname(rules));
          },
        };
      }
      // iptables: IP only (ARP still answered); the nearest it gets to "everything".
      const rule = (op: '-I' | '-D', chain: 'INPUT' | 'OUTPUT') => run('ip', ['netns', 'exec', ns, 'iptables', '-w', op, chain, chain === 'INPUT' ? '-i' : '-o', 'eth0', '-j', 'DROP']);
      return {
        kind,
        inject: () => timed(`iptables -I INPUT -i eth0 -j DROP; -I OUTPUT -o eth0 -j DROP (in ${ns})`, async () => {
          await must(rule('-I', 'INPUT'), 'iptables -I INPUT');
          await must(rule('-I', 'OUTPUT'), 'iptables -I OUTPUT');
        }),
        recover: () => timed(`iptables -D INPUT/OUTPUT ... (in ${ns})`, async () => {
          await must(rule('-D', 'INPUT'), 'iptables -D INPUT');
          await must(rule('-D', 'OUTPUT'), 'iptables -D OUTPUT');
        }),
        cleanup: async () => {
          await rule('-D', 'INPUT');
          await rule('-D', 'OUTPUT');
        },
      };
    }
  }
}

// ---- counters: frames vipr never read ----------------------------------------------------------

async function up0Counters(lab: TrialLab, socket: string): Promise<{ kernelRx: number; viprRx: number } | undefined> {
  const [k, v] = await Promise.all([
    lab.exec('router', ['ip', '-s', '-j', 'link', 'show', 'up0']),
    lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'stats']),
  ]);
  try {
    const link = (JSON.parse(k.stdout) as Array<{ stats64?: { rx: { packets: number } } }>)[0];
    const stats = JSON.parse(v.stdout) as { ports: Record<string, { rxPackets: number }> };
    return { kernelRx: link.stats64?.rx.packets ?? 0, viprRx: stats.ports.up0?.rxPackets ?? 0 };
  } catch {
    return undefined;
  }
}

// ---- one trial ------------------------------------------------------------------------------------

export interface FailoverOptions {
  kind: FailureKind;
  /** packets per second */
  rate: number;
  /** stream alone before the failure, ms */
  leadMs: number;
  /** how long the failure lasts at least (from the failure), ms; it lasts until vipr failed over in any case */
  failureMs: number;
  /** stream after the failback, ms */
  tailMs: number;
  /** the config's hold-down, ms (how long to wait for the failback) */
  holdDownMs: number;
  /** give up waiting for the failover after this long, ms */
  failoverTimeoutMs?: number;
  /** UDP payload bytes (default 64) */
  size?: number;
  /** CPU for the generator (default 0) */
  generatorCpu?: number;
}

export interface FailoverContext {
  lab: TrialLab;
  /** vipr's control socket */
  socket: string;
  /** progress lines (the demo prints them) */
  progress?: (line: string) => void;
  /** runs while web1 is down and the route is on web2 (before the recovery) */
  duringFailure?: () => Promise<void>;
  /** runs after the failback event (before the tail of the stream) */
  afterFailback?: () => Promise<void>;
}

export interface PhaseCount {
  sent: number;
  lost: number;
  duplicated: number;
}

export interface FailoverTrial {
  kind: FailureKind;
  lab: string;
  runId: number;
  /** nothing went wrong (failover, failback, counting) */
  ok: boolean;
  problems: string[];
  /** health events of web1 or web2 that no failure of ours caused: the measurement is not clean */
  disturbances: string[];
  stream: StreamReport;
  failureCommand: string;
  /** how long the failure command took, ms */
  failureCommandMs: number;
  failureAtFrom: 'signal' | 'last packet at web1' | 'command start';
  /** failure -> first packet at web2, ms */
  gapMs: number | null;
  /** failure -> vipr's down event, ms */
  detectMs: number | null;
  /** web1's last packet before the failover -> web2's first, ms */
  outageMs: number | null;
  failoverEvent: string | null;
  /** packets sent before the failure that were lost (a stall of the machine, not the failover) */
  lostBeforeFailure: number;
  failover: PhaseCount;
  recoveryCommand: string;
  /** failure -> recovery command, ms */
  recoveryAtMs: number;
  /** recovery -> vipr's `web1 down -> up`, ms */
  upAfterMs: number | null;
  /** recovery -> vipr's failback event, ms */
  failbackAtMs: number | null;
  /** recovery -> first packet at web1 again, ms */
  firstWeb1AfterMs: number | null;
  failbackEvent: string | null;
  failback: PhaseCount;
  /** Packets per 20 ms bin at each server (the demo draws them). */
  series?: FailoverSeries;
  total: PhaseCount & { received: number; distinct: number; unexpected: number; shares: Record<string, number>; switches: number };
  /** frames the kernel counted in on up0 that vipr never read (its port buffer was full): a stall, not a failover */
  lostAtViprPort: number | null;
  sinkSocketDrops: number;
  /** every event vipr published during the trial, as `vipr ctl events` prints them */
  events: string[];
  /** events about other servers than web1 (a check that failed under load) */
  otherEvents: string[];
  hostLoad1: number;
  durationMs: number;
}

/**
 * One failover trial in a lab that is up, with vipr running on `ctx.socket`
 * and 192.168.1.32/27 on web1 with both web1 and web2 up and resolved. Every
 * process started here is stopped, and the failure undone, before it returns
 * (also on failure).
 */
export async function measureFailover(ctx: FailoverContext, opts: FailoverOptions): Promise<FailoverTrial> {
  const { lab } = ctx;
  const t0 = monoMs();
  const say = (line: string) => ctx.progress?.(`[${((monoMs() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}`);
  const binary = await buildStream();
  const runId = randomInt(1, 0x7fffffff);
  const dir = makeTempDir(`vipr-failover-${lab.prefix}-`);
  const started: ChildProcess[] = [];
  const sinks: Sink[] = [];
  let follower: EventFollower | undefined;
  const failure = await makeFailure(opts.kind, lab);
  let injected = false;
  let recovered = false;
  const problems: string[] = [];
  try {
    follower = await followEvents(lab, ctx.socket);
    for (const s of ['web1', 'web2'] as const) sinks.push(await startSink(lab, s, runId, dir));
    const before = await up0Counters(lab, ctx.socket);

    const cpu = opts.generatorCpu ?? 0;
    const safetySec = Math.ceil((opts.leadMs + opts.failureMs + opts.holdDownMs + opts.tailMs + 30_000) / 1000);
    const genArgs = [binary, '--dst', VIP, '--port', String(PORT), '--rate', String(opts.rate), '--run-id', String(runId), '--size', String(opts.size ?? 64), '--duration', String(safetySec)];
    if (cpu < cpus().length) genArgs.push('--cpu', String(cpu), '--rt', '50');
    const gen = lab.spawn('client', genArgs);
    started.push(gen);
    const genLines: string[] = [];
    let genErr = '';
    onLines(gen.stdout, (l) => genLines.push(l));
    gen.stderr?.setEncoding('utf8');
    gen.stderr?.on('data', (c: string) => (genErr += c));
    say(`phase 1: ${opts.rate} packets/s to ${VIP} (route ${VIP_NET} via web1, backup web2); sinks in web1 and web2`);

    await sleep(opts.leadMs);
    if (gen.exitCode !== null || gen.signalCode !== null) throw new Error(`udp-stream exited early: ${genErr.trim()}`);

    // ---- the failure
    say(`phase 2: ${KIND_TEXT[opts.kind]}: ${failureCommandText(opts.kind, lab.prefix)}`);
    injected = true;
    const fail = await failure.inject();
    // vipr's own time says whether an event came after the failure (a slow client may deliver it late)
    const isWeb1Down = (e: SeenEvent) => e.type === 'server' && e.server === 'web1' && e.newState === 'down' && e.atMs >= fail.startMs - CLOCK_SLACK_MS;
    const down = await follower.waitFor(isWeb1Down, opts.failoverTimeoutMs ?? 5000);
    if (down) say(`vipr: ${down.text}  (${(down.atMs - fail.startMs).toFixed(0)} ms after the failure command started)`);
    else problems.push(`no failover: vipr did not take web1 down within ${opts.failoverTimeoutMs ?? 5000} ms`);
    await sleep(Math.max(fail.startMs + opts.failureMs, (down?.atMs ?? 0) + 200) - monoMs());
    if (ctx.duringFailure) await ctx.duringFailure();

    // ---- the recovery
    const eventsAtRecovery = follower.events.length;
    say(`phase 3: web1 returns: ${recoveryCommandText(opts.kind, lab.prefix)}`);
    const rec = await failure.recover();
    recovered = true;
    const isWeb1Up = (e: SeenEvent) => e.type === 'server' && e.server === 'web1' && e.newState === 'up';
    const isFailback = (e: SeenEvent) => e.type === 'failback' && e.routesMoved.some((m) => m.prefix === VIP_NET && m.to === 'web1');
    const up = await follower.waitFor(isWeb1Up, 10_000, eventsAtRecovery);
    if (up) say(`vipr: ${up.text}; hold-down ${opts.holdDownMs} ms before the route moves back`);
    const back = await follower.waitFor(isFailback, opts.holdDownMs + 10_000, eventsAtRecovery);
    if (back) say(`vipr: ${back.text}  (${((back.atMs - rec.startMs) / 1000).toFixed(2)} s after web1 returned)`);
    else problems.push(`no failback within ${opts.holdDownMs + 10_000} ms of the recovery`);
    if (ctx.afterFailback) await ctx.afterFailback();
    await sleep(opts.tailMs);

    // ---- stop and count
    const load1 = loadavg()[0];
    await stopChild(gen, 5000, 'SIGTERM');
    await stdoutClosed(gen);
    const genLine = genLines.find((l) => l.startsWith('{'));
    if (!genLine) throw new Error(`udp-stream printed no report: ${genErr.trim()}`);
    const stream = JSON.parse(genLine) as StreamReport;
    await sleep(300); // the last packets in flight
    const shares: Share[] = [];
    for (const s of sinks) shares.push(await s.stop());
    const after = await up0Counters(lab, ctx.socket);
    say(`stream stopped: ${stream.sent} packets sent; counting`);

    const a = analyse(stream.sent, shares[0], shares[1], opts.kind, fail, rec);
    problems.push(...a.problems);
    const events = follower.events;
    const otherEvents = events.filter((e) => e.server !== undefined && e.server !== 'web1').map((e) => e.text);
    // Health checks that failed without a failure of ours (a busy machine answering
    // later than the 50 ms timeout) disturb what is measured: say so.
    const disturbances = [...a.disturbances];
    for (const e of events) {
      if ((e.server === 'web1' || e.server === 'web2') && e.atMs < fail.startMs - CLOCK_SLACK_MS) disturbances.push(`before the failure: ${e.text}`);
      else if (e.server === 'web2' && e.type === 'server' && e.newState === 'down') disturbances.push(`the backup failed its checks: ${e.text}`);
      else if (e.server === 'web1' && e.type === 'server' && e.newState === 'down' && up && e.atMs > up.atMs) disturbances.push(`web1 failed its checks again after it returned: ${e.text}`);
    }
    const sinkDrops = shares.reduce((n, s) => n + (s.socketDrops ?? 0), 0);
    if (sinkDrops > 0) problems.push(`the sinks dropped ${sinkDrops} packets (socket buffer full: not scheduled in time); counted as lost`);
    if (stream.errors > 0) problems.push(`udp-stream: ${stream.errors} send errors (${stream.last_error})`);
    return {
      kind: opts.kind,
      lab: lab.prefix,
      runId,
      ok: problems.length === 0,
      problems,
      disturbances,
      stream,
      failureCommand: fail.command,
      failureCommandMs: round(fail.endMs - fail.startMs, 2),
      failureAtFrom: a.failureAtFrom,
      gapMs: a.gapMs,
      detectMs: down ? round(down.atMs - a.failureAt, 1) : null,
      outageMs: a.outageMs,
      failoverEvent: down?.text ?? null,
      lostBeforeFailure: a.lostBeforeFailure,
      failover: a.failover,
      recoveryCommand: rec.command,
      recoveryAtMs: round(rec.startMs - a.failureAt, 1),
      upAfterMs: up ? round(up.atMs - rec.startMs, 1) : null,
      failbackAtMs: back ? round(back.atMs - rec.startMs, 1) : null,
      firstWeb1AfterMs: a.firstWeb1AfterMs,
      failbackEvent: back?.text ?? null,
      failback: a.failback,
      series: seriesOf(shares[0], shares[1], stream.sent, {
        failure: a.failureAt, failover: down?.atMs, recovery: rec.startMs, failback: back?.atMs,
      }),
      total: a.total,
      lostAtViprPort: before && after ? Math.max(0, after.kernelRx - before.kernelRx - (after.viprRx - before.viprRx)) : null,
      sinkSocketDrops: sinkDrops,
      events: events.map((e) => `${e.time}  ${e.text}`),
      otherEvents,
      hostLoad1: round(load1, 2),
      durationMs: Math.round(monoMs() - t0),
    };
  } finally {
    if (injected && !recovered) await failure.cleanup();
    else if (opts.kind === 'drop') await failure.cleanup(); // removes the rules file
    await Promise.all([...started, ...sinks.map((s) => s.child)].map((c) => stopChild(c, 2000)));
    await follower?.stop();
    removeTempDir(dir);
  }
}

function failureCommandText(kind: FailureKind, prefix: string): string {
  return kind === 'link' ? `ip -n ${prefix}-web1 link set eth0 down` : kind === 'freeze' ? "kill -STOP <web1's web server>" : `nft in ${prefix}-web1: drop everything on eth0`;
}

function recoveryCommandText(kind: FailureKind, prefix: string): string {
  return kind === 'link'
    ? `ip -n ${prefix}-web1 link set eth0 up (and its default route again)`
    : kind === 'freeze'
      ? "kill -CONT <web1's web server>"
      : `nft delete table netdev ${NFT_TABLE} in ${prefix}-web1`;
}

interface Analysis {
  failureAt: number;
  failureAtFrom: FailoverTrial['failureAtFrom'];
  gapMs: number | null;
  outageMs: number | null;
  firstWeb1AfterMs: number | null;
  lostBeforeFailure: number;
  failover: PhaseCount;
  failback: PhaseCount;
  total: FailoverTrial['total'];
  problems: string[];
  disturbances: string[];
}

export interface FailoverSeries {
  binMs: number;
  /** CLOCK_MONOTONIC ms of the first bin. */
  startMs: number;
  web1: number[];
  web2: number[];
  marks: Record<'failure' | 'failover' | 'recovery' | 'failback', number | undefined>;
}

/** Arrivals per 20 ms bin at each server, from the sinks' timestamps. */
function seriesOf(web1: Share, web2: Share, sent: number, marks: FailoverSeries['marks']): FailoverSeries {
  const binMs = 20;
  let start = Infinity;
  let end = -Infinity;
  for (const share of [web1, web2]) {
    for (let seq = 0; seq < Math.min(sent, share.counts.length); seq++) {
      if (!share.counts[seq]) continue;
      start = Math.min(start, share.arrivalMs[seq]);
      end = Math.max(end, share.arrivalMs[seq]);
    }
  }
  if (!Number.isFinite(start)) return { binMs, startMs: 0, web1: [], web2: [], marks };
  const bins = Math.floor((end - start) / binMs) + 1;
  const count = (share: Share) => {
    const out = new Array<number>(bins).fill(0);
    for (let seq = 0; seq < Math.min(sent, share.counts.length); seq++) {
      if (share.counts[seq]) out[Math.floor((share.arrivalMs[seq] - start) / binMs)]++;
    }
    return out;
  };
  return { binMs, startMs: start, web1: count(web1), web2: count(web2), marks };
}

/** The demo's picture: packets/s at web1 and web2 over time, with the failure, failover, recovery and failback marked. */
export function failoverSvg(series: FailoverSeries, title: string): string {
  const width = 900;
  const height = 360;
  const left = 70;
  const right = 20;
  const top = 64;
  const bottom = 50;
  // The last bin is cut short by the end of the stream: leave it out.
  const web1 = series.web1.slice(0, -1);
  const web2 = series.web2.slice(0, -1);
  const n = Math.max(1, web1.length);
  const rate = (c: number) => (c * 1000) / series.binMs;
  const peak = Math.max(1, ...web1.map(rate), ...web2.map(rate));
  const x = (i: number) => left + (i / n) * (width - left - right);
  const y = (v: number) => top + (1 - v / peak) * (height - top - bottom);
  const path = (bins: number[]) => bins.map((c, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(rate(c)).toFixed(1)}`).join(' ');
  const seconds = (n * series.binMs) / 1000;
  const ticks: string[] = [];
  for (let t = 0; t <= seconds; t += 1) {
    const px = x((t * 1000) / series.binMs);
    ticks.push(`<line x1="${px}" y1="${height - bottom}" x2="${px}" y2="${height - bottom + 5}" stroke="#333"/><text x="${px}" y="${height - bottom + 18}" text-anchor="middle">${t} s</text>`);
  }
  for (const v of [0, peak / 2, peak]) {
    ticks.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${Math.round(v / 1000)}k</text><line x1="${left}" y1="${y(v)}" x2="${width - right}" y2="${y(v)}" stroke="#ddd"/>`);
  }
  const marks = Object.entries(series.marks)
    .filter(([, at]) => at !== undefined)
    .map(([name, at], k) => {
      const px = x((at! - series.startMs) / series.binMs);
      return `<line x1="${px}" y1="${top}" x2="${px}" y2="${height - bottom}" stroke="#888" stroke-dasharray="4 3"/>` +
        `<text x="${px + 3}" y="${top + 12 + (k % 2) * 14}" fill="#555">${name}</text>`;
    });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">${title}</text>`,
    ...ticks,
    ...marks,
    `<path d="${path(web1)}" fill="none" stroke="#1f77b4" stroke-width="1.6"/>`,
    `<path d="${path(web2)}" fill="none" stroke="#d62728" stroke-width="1.6"/>`,
    `<text x="${left}" y="44" fill="#1f77b4">■ web1 packets/s</text>`,
    `<text x="${left + 140}" y="44" fill="#d62728">■ web2 packets/s</text>`,
    `<line x1="${left}" y1="${height - bottom}" x2="${width - right}" y2="${height - bottom}" stroke="#333"/>`,
    `<text x="${(left + width) / 2}" y="${height - 10}" text-anchor="middle">time (per-server packets/s in ${series.binMs} ms bins)</text>`,
    '</svg>',
    '',
  ].join('\n');
}

/** Merge the two sinks' records against the stream and split them into phases by send time. */
export function analyse(sent: number, web1: Share, web2: Share, kind: FailureKind, fail: Window, rec: Window): Analysis {
  const problems: string[] = [];
  const disturbances: string[] = [];
  const at = (s: Share, seq: number) => (seq < s.counts.length ? s.counts[seq] : 0);
  // web2's first packet, and web1's last one before it
  let firstWeb2 = Infinity;
  for (let seq = 0; seq < Math.min(sent, web2.counts.length); seq++) if (web2.counts[seq] && web2.arrivalMs[seq] < firstWeb2) firstWeb2 = web2.arrivalMs[seq];
  let lastWeb1 = -Infinity;
  for (let seq = 0; seq < Math.min(sent, web1.counts.length); seq++) {
    const t = web1.arrivalMs[seq];
    if (web1.counts[seq] && t <= firstWeb2 && t > lastWeb1) lastWeb1 = t;
  }
  let firstWeb1After = Infinity;
  for (let seq = 0; seq < Math.min(sent, web1.counts.length); seq++) {
    const t = web1.arrivalMs[seq];
    if (web1.counts[seq] && t >= rec.startMs && t < firstWeb1After) firstWeb1After = t;
  }

  let failureAt = fail.startMs;
  let failureAtFrom: FailoverTrial['failureAtFrom'] = kind === 'freeze' ? 'signal' : 'command start';
  // The last packet web1 got is the failure as the stream saw it, if the command can have caused it.
  if (kind !== 'freeze' && Number.isFinite(lastWeb1) && lastWeb1 >= fail.startMs - 2 && lastWeb1 <= fail.endMs + 2) {
    failureAt = lastWeb1;
    failureAtFrom = 'last packet at web1';
  }
  if (!Number.isFinite(firstWeb2)) problems.push('no packet ever reached web2');
  else if (firstWeb2 < fail.startMs) disturbances.push(`web2 got packets before the failure (${(fail.startMs - firstWeb2).toFixed(1)} ms before)`);
  if (!Number.isFinite(firstWeb1After)) problems.push('web1 got no packet after it returned');

  // Phases by send time: the sender's stamps of the packets that arrived; a lost
  // packet belongs to the phase of the packet before it (the stream is in order).
  const failoverFrom = failureAt - FAILURE_MARGIN_MS;
  const phase = [
    { sent: 0, lost: 0, duplicated: 0 },
    { sent: 0, lost: 0, duplicated: 0 },
    { sent: 0, lost: 0, duplicated: 0 },
  ];
  let current = 0;
  let received = 0;
  let distinct = 0;
  let switches = 0;
  let owner = -1;
  const shares = { web1: 0, web2: 0 };
  for (let seq = 0; seq < sent; seq++) {
    const c1 = at(web1, seq);
    const c2 = at(web2, seq);
    if (c1 + c2 > 0) {
      const stamp = c1 ? web1.sentMs[seq] : web2.sentMs[seq];
      current = stamp < failoverFrom ? 0 : stamp < rec.startMs ? 1 : 2;
      const now = c1 ? 0 : 1;
      if (owner >= 0 && now !== owner) switches++;
      owner = now;
      if (c1) shares.web1++;
      if (c2) shares.web2++;
      received += c1 + c2;
      distinct++;
      phase[current].duplicated += c1 + c2 - 1;
    } else {
      phase[current].lost++;
    }
    phase[current].sent++;
  }
  let unexpected = 0;
  for (const s of [web1, web2]) for (let seq = sent; seq < s.counts.length; seq++) unexpected += s.counts[seq];
  if (unexpected > 0) problems.push(`${unexpected} packets with numbers never sent`);
  return {
    failureAt,
    failureAtFrom,
    gapMs: Number.isFinite(firstWeb2) ? round(firstWeb2 - failureAt, 1) : null,
    outageMs: Number.isFinite(firstWeb2) && Number.isFinite(lastWeb1) ? round(firstWeb2 - lastWeb1, 2) : null,
    firstWeb1AfterMs: Number.isFinite(firstWeb1After) ? round(firstWeb1After - rec.startMs, 1) : null,
    lostBeforeFailure: phase[0].lost,
    failover: phase[1],
    failback: phase[2],
    total: { sent, received, distinct, lost: sent - distinct, duplicated: received - distinct, unexpected, shares, switches },
    problems,
    disturbances,
  };
}

// ---- models: keepalived's defaults and the article's manual procedure -----------------------------

export interface HealthTiming {
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  holdDownMs: number;
}

/** The lab's health timing (lab/vipr.yaml, `health:`; the schema's defaults where it says nothing). */
export function labHealthTiming(file = LAB_CONFIG): HealthTiming {
  const doc = (parseYaml(readFileSync(file, 'utf8')) ?? {}) as { health?: Partial<HealthTiming> };
  const h = doc.health ?? {};
  return { intervalMs: h.intervalMs ?? 2000, timeoutMs: h.timeoutMs ?? 1000, rise: h.rise ?? 2, fall: h.fall ?? 3, holdDownMs: h.holdDownMs ?? 5000 };
}

export interface ModelRow {
  name: string;
  /** seconds from the failure until traffic moves: best, median, worst */
  bestS: number;
  medianS: number;
  worstS: number;
  formula: string;
  assumptions: string;
}

/**
 * vipr's own expectation: checks run at a fixed rate; the first one to start
 * after the failure waits up to one interval, each failing check takes the
 * timeout, and `fall` of them in a row take the server down.
 */
export function viprModel(h: HealthTiming): ModelRow {
  // Checks of one server never overlap: the next starts one interval after the
  // last one started, or when it timed out if that was later.
  const fixed = ((h.fall - 1) * Math.max(h.intervalMs, h.timeoutMs) + h.timeoutMs) / 1000;
  return {
    name: `vipr (this config: interval ${h.intervalMs} ms, timeout ${h.timeoutMs} ms, fall ${h.fall})`,
    bestS: fixed,
    medianS: fixed + h.intervalMs / 2000,
    worstS: fixed + h.intervalMs / 1000,
    formula: 'U(0, interval) + (fall - 1) x max(interval, timeout) + timeout',
    assumptions: 'a check started after the failure times out; checks do not overlap; the route moves in the same tick',
  };
}

/**
 * keepalived's HTTP_GET checker with its documented defaults (keepalived.conf(5)):
 * delay_loop 60 s ("60 seconds if not specified"), connect_timeout 5 s, retry 1
 * ("Default: 1"), delay_before_retry 3 s for HTTP_GET/SSL_GET in the current
 * man page (1 s for the other checkers; older releases used 1 s and the name
 * nb_get_retry, which many example configs set to 3). A server that times out
 * (link down, blackholed, frozen) is marked down after retry + 1 failed
 * attempts, each waiting connect_timeout, with delay_before_retry between
 * them; the first attempt comes at the next delay_loop tick, U(0, delay_loop)
 * after the failure. IPVS stops using it at once then.
 */
export function keepalivedModels(): ModelRow[] {
  const row = (name: string, delayLoop: number, connectTimeout: number, retry: number, delayBeforeRetry: number, source: string): ModelRow => {
    const fixed = (retry + 1) * connectTimeout + retry * delayBeforeRetry;
    return {
      name,
      bestS: fixed,
      medianS: fixed + delayLoop / 2,
      worstS: fixed + delayLoop,
      formula: `U(0, delay_loop ${delayLoop}) + (retry ${retry} + 1) x connect_timeout ${connectTimeout} + retry ${retry} x delay_before_retry ${delayBeforeRetry}`,
      assumptions: source,
    };
  };
  return [
    row('keepalived HTTP_GET, defaults (current keepalived.conf(5))', 60, 5, 1, 3, 'delay_loop 60 s, connect_timeout 5 s, retry 1, delay_before_retry 3 s (HTTP_GET); a timing-out server'),
    row('keepalived HTTP_GET, older defaults', 60, 5, 1, 1, 'as above with delay_before_retry 1 s (older releases, and every non-HTTP checker)'),
    row('keepalived HTTP_GET, nb_get_retry 3 (older example configs)', 60, 5, 3, 1, 'nb_get_retry 3, delay_before_retry 1 s'),
  ];
}

/**
 * The article's procedure: Big Brother notices (its tests run every 5 minutes
 * by default), pages the administrator at 5 AM, who wakes up, commutes ("isn't
 * a short one") and types two router commands. The human part is an assumption:
 * 15 minutes (awake, close by) to 2 hours.
 */
export function manualModel(): ModelRow {
  return {
    name: 'the article: a page at 5 AM, a commute, two router commands',
    bestS: 15 * 60,
    medianS: 150 + 45 * 60,
    worstS: 300 + 120 * 60,
    formula: 'U(0, monitor poll 300 s) + page + wake up + commute + `no ip route ...; ip route ...`',
    assumptions: 'Big Brother polls every 5 min (its default); human response 15 min .. 2 h (assumed: "the commute ... isn\'t a short one")',
  };
}

// ---- the bench: a fresh lab and vipr per trial -----------------------------------------------------

/** Pin vipr to the CPU the generator does not use, and (rt) make it SCHED_FIFO 20, as bench/reroute.ts's vipr-rt. */
export async function placeVipr(pid: number, rt: boolean, generatorCpu = 0): Promise<string> {
  const cpu = generatorCpu === 0 ? 1 : 0;
  const pinned = await pinToCpu(pid, cpu);
  const fifo = rt ? await makeRealtime(pid) : false;
  if (rt && !fifo) throw new Error('could not make vipr SCHED_FIFO (chrt)');
  return `${pinned ? `CPU ${cpu}` : 'any CPU'}, ${fifo ? 'SCHED_FIFO 20' : 'normal scheduling'}`;
}

/** The lab or vipr could not be brought up for a trial: nothing was measured. */
class TrialSetupError extends Error {}
/** A trial that cannot start is tried again, up to this many times (dist/ may be rebuilt under a long run). */
const SETUP_ATTEMPTS = 3;
/** A disturbed trial (see FailoverTrial.disturbances) is run again, up to this many times; the last one counts. */
const DISTURBED_ATTEMPTS = 3;

async function runTrialSetUp(kind: FailureKind, opts: Omit<FailoverOptions, 'kind'>, rt: boolean, onSetupError: (error: string) => void): Promise<FailoverTrial> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await runTrial(kind, opts, rt);
    } catch (error) {
      if (!(error instanceof TrialSetupError) || attempt >= SETUP_ATTEMPTS) throw error;
      onSetupError(error.message);
    }
  }
}

async function runTrial(kind: FailureKind, opts: Omit<FailoverOptions, 'kind'>, rt: boolean): Promise<FailoverTrial> {
  const prefix = `fo${kind[0]}${randomInt(36 ** 5).toString(36).padStart(5, '0')}`;
  const setup = <T>(p: Promise<T>) => p.catch((error: Error) => Promise.reject(new TrialSetupError(error.message)));
  const lab = await setup(benchLabUp(prefix));
  let vipr: { child: ChildProcess; logs: string[] } | undefined;
  try {
    vipr = await setup(startViprIn(lab, `/run/vipr-lab/${lab.prefix}/vipr.yaml`));
    await placeVipr(vipr.child.pid!, rt, opts.generatorCpu ?? 0);
    const socket = `/run/vipr-lab/${prefix}/vipr.sock`;
    await setup(waitViprNeighbors(lab, socket));
    return await measureFailover({ lab, socket }, { ...opts, kind });
  } finally {
    if (vipr) await stopChild(vipr.child, 5000);
    await lab.down();
  }
}

// ---- report ---------------------------------------------------------------------------------------

export interface KindSummary {
  kind: FailureKind;
  trials: number;
  failedOver: number;
  failedBack: number;
  gapMs: { median: number | null; worst: number | null; best: number | null };
  detectMs: { median: number | null; worst: number | null };
  outageMs: { median: number | null; worst: number | null };
  lost: { median: number | null; worst: number | null };
  duplicated: number;
  lostBeforeFailure: number;
  failbackAtMs: { median: number | null; worst: number | null };
  failbackLost: { total: number; worst: number | null; trialsWithLoss: number };
  failbackDuplicated: number;
  lostAtViprPort: number;
  sinkSocketDrops: number;
  otherEvents: number;
  /** trials that were still disturbed after DISTURBED_ATTEMPTS (they are in the statistics) */
  disturbed: number;
}

export function summarize(kind: FailureKind, trials: FailoverTrial[]): KindSummary {
  const nums = (f: (t: FailoverTrial) => number | null) => trials.map(f).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const med = (xs: number[]) => (xs.length ? round(xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2, 1) : null);
  const gap = nums((t) => t.gapMs);
  const detect = nums((t) => t.detectMs);
  const outage = nums((t) => t.outageMs);
  const lost = nums((t) => t.failover.lost);
  const fb = nums((t) => t.failbackAtMs);
  const fbLost = nums((t) => t.failback.lost);
  return {
    kind,
    trials: trials.length,
    failedOver: trials.filter((t) => t.failoverEvent !== null && t.gapMs !== null).length,
    failedBack: trials.filter((t) => t.failbackEvent !== null && t.firstWeb1AfterMs !== null).length,
    gapMs: { median: med(gap), worst: gap.at(-1) ?? null, best: gap[0] ?? null },
    detectMs: { median: med(detect), worst: detect.at(-1) ?? null },
    outageMs: { median: med(outage), worst: outage.at(-1) ?? null },
    lost: { median: med(lost), worst: lost.at(-1) ?? null },
    duplicated: trials.reduce((n, t) => n + t.failover.duplicated + t.failback.duplicated + t.total.unexpected, 0),
    lostBeforeFailure: trials.reduce((n, t) => n + t.lostBeforeFailure, 0),
    failbackAtMs: { median: med(fb), worst: fb.at(-1) ?? null },
    failbackLost: { total: fbLost.reduce((a, b) => a + b, 0), worst: fbLost.at(-1) ?? null, trialsWithLoss: fbLost.filter((x) => x > 0).length },
    failbackDuplicated: trials.reduce((n, t) => n + t.failback.duplicated, 0),
    lostAtViprPort: trials.reduce((n, t) => n + (t.lostAtViprPort ?? 0), 0),
    sinkSocketDrops: trials.reduce((n, t) => n + t.sinkSocketDrops, 0),
    disturbed: trials.filter((t) => t.disturbances.length > 0).length,
    otherEvents: trials.reduce((n, t) => n + t.otherEvents.length, 0),
  };
}

function pad(cells: string[][]): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

const fmt = (x: number | null, digits = 0) => (x === null ? '-' : x.toFixed(digits));

export function summaryTable(summaries: KindSummary[]): string {
  const head = ['failure of web1', 'trials', 'failed over', 'gap ms median', 'gap ms worst', 'detect ms median', 'lost median', 'lost worst', 'dup', 'failback s median', 'failback lost (total / worst)', 'lost at vipr port', 'sink drops', 'lost before failure', 'other servers\' events'];
  const rows = summaries.map((s) => [
    KIND_TEXT[s.kind],
    String(s.trials),
    `${s.failedOver}/${s.trials}`,
    fmt(s.gapMs.median, 1),
    fmt(s.gapMs.worst, 1),
    fmt(s.detectMs.median, 1),
    fmt(s.lost.median),
    fmt(s.lost.worst),
    String(s.duplicated),
    s.failbackAtMs.median === null ? '-' : (s.failbackAtMs.median / 1000).toFixed(2),
    `${s.failbackLost.total} / ${fmt(s.failbackLost.worst)}`,
    String(s.lostAtViprPort),
    String(s.sinkSocketDrops),
    String(s.lostBeforeFailure),
    String(s.otherEvents),
  ]);
  return pad([head, ...rows]);
}

export function modelTable(rows: ModelRow[], rate: number): string {
  const human = (s: number) => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : s < 120 ? `${s.toFixed(s < 10 ? 2 : 0)} s` : s < 7200 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`);
  const packets = (s: number) => {
    const n = s * rate;
    return n < 1e4 ? n.toFixed(0) : n < 1e6 ? `${(n / 1e3).toFixed(0)} k` : `${(n / 1e6).toFixed(1)} M`;
  };
  const head = ['time to move traffic off web1', 'best', 'median', 'worst', `lost at ${rate} pps (median / worst)`];
  return pad([head, ...rows.map((r) => [r.name, human(r.bestS), human(r.medianS), human(r.worstS), `${packets(r.medianS)} / ${packets(r.worstS)}`])]);
}

function parseCli(argv: string[]) {
  const o = {
    trials: 20,
    kinds: [...KINDS] as FailureKind[],
    rate: 20_000,
    leadMs: 1000,
    failureMs: 1000,
    tailMs: 500,
    rt: true,
    out: undefined as string | undefined,
    scenario: undefined as string | undefined,
    viprPid: undefined as number | undefined,
    svg: undefined as string | undefined,
    kind: 'link' as FailureKind,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--trials': o.trials = Math.round(numberArg(a, v, 1, 10_000)); i++; break;
      case '--rate': o.rate = numberArg(a, v, 1000, 1e6); i++; break;
      case '--lead': o.leadMs = numberArg(a, v, 200, 600_000); i++; break;
      case '--failure': o.failureMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--tail': o.tailMs = numberArg(a, v, 0, 600_000); i++; break;
      case '--no-rt': o.rt = false; break;
      case '--out': o.out = v; i++; break;
      case '--scenario': o.scenario = v; i++; break;
      case '--svg': o.svg = v; i++; break;
      case '--vipr-pid': o.viprPid = Math.round(numberArg(a, v, 1, 2 ** 31)); i++; break;
      case '--kind':
        if (!KINDS.includes(v as FailureKind)) throw new Error(`--kind: one of ${KINDS.join(', ')}`);
        o.kind = v as FailureKind;
        i++;
        break;
      case '--kinds': {
        o.kinds = (v ?? '').split(',').map((k) => k.trim()).filter(Boolean) as FailureKind[];
        const bad = o.kinds.filter((k) => !KINDS.includes(k));
        if (bad.length || o.kinds.length === 0) throw new Error(`--kinds: unknown ${bad.join(', ') || '(none)'}; known: ${KINDS.join(', ')}`);
        i++;
        break;
      }
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node dist/bench/failover.js [--trials 20] [--kinds link,freeze,drop] [--rate 20000] [--lead 1000] [--failure 1000] [--tail 500] [--no-rt] [--out FILE]\n' +
            '       node dist/bench/failover.js --scenario PREFIX [--vipr-pid PID] [--kind link]   (one trial in a running lab, for scripts/demo.sh)\n',
        );
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      default:
        throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  return o;
}

/** One trial in a lab someone else runs (scripts/demo.sh): progress lines, then a short report. Exit 0: failed over and back; 3: over only; 1: no failover. */
async function scenario(cli: ReturnType<typeof parseCli>): Promise<number> {
  const prefix = cli.scenario!;
  const socket = `/run/vipr-lab/${prefix}/vipr.sock`;
  if (!existsSync(socket)) throw new Error(`no vipr control socket at ${socket} (is the lab ${prefix} up with vipr running?)`);
  const procs = new Set<ChildProcess>();
  const lab = labFor(prefix, procs);
  const stopAll = () => {
    for (const p of procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  process.on('exit', stopAll);
  // Ctrl-C in the demo: stop what this started (the demo's trap removes the lab).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      stopAll();
      process.exit(130);
    });
  }
  const h = labHealthTiming(`/run/vipr-lab/${prefix}/vipr.yaml`);
  const out = (line: string) => process.stdout.write(`  ${line}\n`);
  if (cli.viprPid) out(`vipr (pid ${cli.viprPid}) runs on ${await placeVipr(cli.viprPid, cli.rt)}, the stream on CPU 0: as in bench/failover.ts`);
  await waitViprNeighbors(lab, socket);
  const t = await measureFailover(
    { lab, socket, progress: out },
    { kind: cli.kind, rate: cli.rate, leadMs: cli.leadMs, failureMs: cli.failureMs, tailMs: cli.tailMs, holdDownMs: h.holdDownMs },
  );
  const manual = manualModel();
  const ka = keepalivedModels()[0];
  const rate = cli.rate;
  process.stdout.write('\n');
  const rows: Array<[string, string]> = [
    ['failure', `${KIND_TEXT[t.kind]}`],
    ['gap', t.gapMs === null ? 'no packet reached web2' : `${t.gapMs.toFixed(1)} ms from the failure to the first packet at web2 (vipr decided after ${fmt(t.detectMs, 1)} ms)`],
    ['lost', `${t.failover.lost} of ${t.failover.sent} packets while failing over (${t.failover.duplicated} duplicated)`],
    ['failback at', t.failbackAtMs === null ? 'did not happen' : `${(t.failbackAtMs / 1000).toFixed(2)} s after web1 returned (up after ${fmt(t.upAfterMs, 0)} ms, then the ${h.holdDownMs} ms hold-down)`],
    ['lost in failback', `${t.failback.lost} of ${t.failback.sent} packets (${t.failback.duplicated} duplicated)`],
    ['in all', `${t.total.sent} sent, ${t.total.distinct} arrived (web1 ${t.total.shares.web1}, web2 ${t.total.shares.web2}), ${t.total.lost} lost${t.lostBeforeFailure ? ` (${t.lostBeforeFailure} before the failure: a stall, not the failover)` : ''}`],
    ['keepalived', `its HTTP_GET defaults take ${Math.round(ka.bestS)}..${Math.round(ka.worstS)} s (${ka.formula}): ${(ka.medianS * rate / 1e6).toFixed(1)} M packets at this rate, median`],
    ['the article', `a page at 5 AM and a commute: ${manual.bestS / 60}..${Math.round(manual.worstS / 60)} min, ${(manual.medianS * rate / 1e6).toFixed(0)} M packets at this rate, median`],
  ];
  process.stdout.write('report:\n');
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(17)} ${v}\n`);
  if (t.problems.length) process.stdout.write(`  problems: ${t.problems.join('; ')}\n`);
  if (cli.svg && t.series) {
    const title = `vipr, the 5 AM page: ${KIND_TEXT[t.kind].replace(/ \(.*\)$/, '')}; gap ${t.gapMs === null ? '-' : t.gapMs.toFixed(0)} ms, ${t.failover.lost} lost; failback lost ${t.failback.lost}`;
    writeFileSync(cli.svg, failoverSvg(t.series, title));
    process.stdout.write(`  picture           ${cli.svg} (per-server packets/s around the failure and the failback)\n`);
  }
  if (t.failoverEvent === null || t.gapMs === null) return 1;
  return t.failbackEvent !== null && t.firstWeb1AfterMs !== null ? 0 : 3;
}

async function main(): Promise<number> {
  let cli: ReturnType<typeof parseCli>;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`failover: ${(error as Error).message}\n`);
    return 2;
  }
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`failover: ${refusal}\n`);
    return 2;
  }
  if (cli.scenario) return scenario(cli);

  teardownOnExit('failover');
  await buildStream();
  if (cli.kinds.includes('drop')) await ensureFirewall();
  const h = labHealthTiming();
  const startedAt = new Date();
  const load = loadavg();
  process.stdout.write(
    `failover bench: ${cli.trials} trials of each of ${cli.kinds.join(', ')}; ${cli.rate} packets/s to ${VIP}:${PORT} (route ${VIP_NET} via web1, backup web2); ` +
      `health: interval ${h.intervalMs} ms, timeout ${h.timeoutMs} ms, fall ${h.fall}, rise ${h.rise}, hold-down ${h.holdDownMs} ms; ` +
      `vipr ${cli.rt ? 'SCHED_FIFO 20 on CPU 1' : 'normal scheduling on CPU 1'}; ${cpus().length} CPUs, load ${load.map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  const opts = { rate: cli.rate, leadMs: cli.leadMs, failureMs: cli.failureMs, tailMs: cli.tailMs, holdDownMs: h.holdDownMs };
  const results: Record<FailureKind, FailoverTrial[]> = { link: [], freeze: [], drop: [] };
  const failures: Array<{ kind: FailureKind; trial: number; error: string }> = [];
  const setupRetries: Array<{ kind: FailureKind; trial: number; error: string }> = [];
  const disturbed: Array<{ kind: FailureKind; trial: number; attempt: number; disturbances: string[]; result: FailoverTrial }> = [];
  for (let i = 1; i <= cli.trials; i++) {
    for (const kind of cli.kinds) {
      process.stdout.write(`-- ${kind} ${i}/${cli.trials} ... `);
      try {
        let t: FailoverTrial | undefined;
        for (let attempt = 1; ; attempt++) {
          t = await runTrialSetUp(kind, opts, cli.rt, (error) => {
            setupRetries.push({ kind, trial: i, error });
            process.stdout.write(`(setup failed, again: ${error.split('\n')[0]}) `);
          });
          if (t.disturbances.length === 0 || attempt >= DISTURBED_ATTEMPTS) break;
          // A health check of web1 or web2 failed with nothing wrong (the machine
          // answered later than the timeout): that trial measured something else.
          disturbed.push({ kind, trial: i, attempt, disturbances: t.disturbances, result: t });
          process.stdout.write(`(disturbed: ${t.disturbances[0]}; again) `);
        }
        results[kind].push(t);
        process.stdout.write(
          `gap ${fmt(t.gapMs, 1)} ms (detect ${fmt(t.detectMs, 1)}), lost ${t.failover.lost}, dup ${t.failover.duplicated + t.failback.duplicated}; ` +
            `failback at ${t.failbackAtMs === null ? '-' : (t.failbackAtMs / 1000).toFixed(2)} s, lost ${t.failback.lost}` +
            (t.lostAtViprPort ? `; ${t.lostAtViprPort} lost at vipr's port` : '') +
            (t.lostBeforeFailure ? `; ${t.lostBeforeFailure} lost before the failure` : '') +
            (t.problems.length ? `; PROBLEMS: ${t.problems.join('; ')}` : '') +
            (t.disturbances.length ? `; STILL DISTURBED: ${t.disturbances.join(' | ')}` : '') +
            (t.otherEvents.length ? `; other servers' events: ${t.otherEvents.length}` : '') +
            '\n',
        );
      } catch (error) {
        failures.push({ kind, trial: i, error: (error as Error).message });
        process.stdout.write(`FAILED: ${(error as Error).message}\n`);
      }
    }
  }
  const summaries = cli.kinds.map((k) => summarize(k, results[k]));
  const models = [viprModel(h), ...keepalivedModels(), manualModel()];
  const text =
    `${summaryTable(summaries)}\n\n` +
    `run again because a health check of web1 or web2 failed with nothing wrong (a busy machine answering after the ${h.timeoutMs} ms timeout): ` +
    `${cli.kinds.map((k) => `${k} ${disturbed.filter((d) => d.kind === k).length}`).join(', ')} attempts` +
    `${summaries.some((x) => x.disturbed) ? `; still disturbed after ${DISTURBED_ATTEMPTS} attempts (kept): ${summaries.map((x) => `${x.kind} ${x.disturbed}`).join(', ')}` : ''}. ` +
    `other servers' false failures seen: ${summaries.map((x) => `${x.kind} ${x.otherEvents}`).join(', ')} events.\n` +
    `gap: failure -> first packet at web2 (link, drop: the failure is web1's last packet; freeze: the SIGSTOP). ` +
    `lost: failover phase (failure - ${FAILURE_MARGIN_MS} ms .. recovery). failback: recovery -> vipr's failback event; its loss counts packets sent after the recovery.\n\n` +
    `${modelTable(models, cli.rate)}\n` +
    models.map((m) => `  ${m.name}: ${m.formula}; ${m.assumptions}`).join('\n');
  process.stdout.write(`\n${text}\n`);

  const stamp = startedAt.toISOString().slice(0, 10);
  let file = cli.out ?? join(REPO_ROOT, 'bench/results', `failover-${stamp}.json`);
  if (!cli.out && existsSync(file)) file = join(REPO_ROOT, 'bench/results', `failover-${startedAt.toISOString().slice(0, 19).replace(/:/g, '')}.json`);
  mkdirSync(dirname(resolve(file)), { recursive: true });
  const doc = {
    bench: 'failover',
    startedAt: startedAt.toISOString(),
    host: { cpus: cpus().length, cpuModel: cpus()[0]?.model, loadavgAtStart: load, loadavgAtEnd: loadavg(), node: process.version },
    options: { ...opts, trials: cli.trials, kinds: cli.kinds, viprScheduling: cli.rt ? 'SCHED_FIFO 20, CPU 1' : 'normal, CPU 1', generator: 'SCHED_FIFO 50, CPU 0' },
    health: h,
    method:
      'Fresh lab (lab/lab.sh) and fresh vipr per trial; udp-stream (lab/udp-stream.c) in the client namespace -> vipr -> timestamping sinks on 192.168.1.33:9999 in web1 and web2. ' +
      'All times CLOCK_MONOTONIC (shared by every namespace): sender stamps, sink arrival stamps, this process. ' +
      'failure at: freeze = SIGSTOP sent; link/drop = arrival of web1\'s last packet, checked to lie inside the failure command\'s window. ' +
      'gap = first arrival at web2 - failure; detect = vipr\'s down event (its ms wall clock mapped to CLOCK_MONOTONIC) - failure; ' +
      `lost = sent - distinct received (web1 + web2), by send stamp: failover phase = [failure - ${FAILURE_MARGIN_MS} ms, recovery command), failback phase = [recovery command, end). ` +
      'lost at vipr port = kernel up0 rx - vipr up0 rx (frames vipr never read: its port buffer overflowed while it did not run).',
    summaries,
    models,
    table: text,
    trials: results,
    failures,
    setupRetries,
    disturbedAttempts: disturbed,
  };
  writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  process.stdout.write(`\nresults: ${file}\n`);
  return failures.length ? 1 : 0;
}

runIfMain(import.meta.url, 'failover', main);
