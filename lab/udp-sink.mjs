#!/usr/bin/env node
// udp-sink: receive the numbered stream of lab/udp-stream.c and record which
// sequence numbers arrived, for the reroute measurements.
//
//   ip netns exec P-web1 node lab/udp-sink.mjs --bind 192.168.1.33 --port 9999 \
//       --run-id 42 --name web1 [--dump /tmp/web1.seq] [--summary FILE] [--idle-ms MS]
//
// Prints {"event":"listening",...} once bound, then, on SIGTERM/SIGINT (or after
// --idle-ms without a packet, once the first one has arrived) one line
//   {"event":"summary","name":..,"received":N,"distinct":N,"duplicates":N,
//    "reordered":N,"foreign":N,"firstSeq":..,"lastSeq":..,"minSeq":..,"maxSeq":..,
//    "outOfRange":N,"socketDrops":N,"segments":N}
// and exits 0. The same JSON goes to --summary FILE when given.
//  received    packets of this run (right magic and run id)
//  duplicates  received - distinct
//  reordered   packets whose number is lower than the one received just before
//              (duplicates not counted), i.e. reordering within this sink's share
//  foreign     datagrams that are not of this run (other run id, bad magic, short)
//  socketDrops datagrams the kernel dropped at this socket (full receive buffer),
//              from /proc/net/udp: losses of the sink, not of the network
//  segments    runs of consecutive numbers received (how often the stream came and went)
//  latency     one-way delay from the sender's timestamp (CLOCK_MONOTONIC, the same
//              clock in every namespace of the host) to this process reading the
//              packet, µs: p50, p99, p999, max, and the histogram ([fromUs, toUs, count]
//              triples; 10 µs buckets below 1 ms, 100 µs below 10 ms, 1 ms below 100 ms,
//              10 ms below 1 s, 100 ms beyond) so several sinks can be merged. It includes
//              the sink's own scheduling delay, the same in every measurement.
// --dump FILE writes the per-number receive counts (one byte per number from 0
// to maxSeq, saturating at 255) so several sinks can be merged.
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const MAGIC = 0x51455356;
/** Highest sequence number recorded (one byte each); larger ones are counted as outOfRange. */
const MAX_SEQ = 1 << 28;

const { values: args } = parseArgs({
  options: {
    bind: { type: 'string', default: '0.0.0.0' },
    port: { type: 'string', default: '9999' },
    'run-id': { type: 'string', default: '0' },
    name: { type: 'string', default: '' },
    dump: { type: 'string' },
    summary: { type: 'string' },
    'idle-ms': { type: 'string' },
    rcvbuf: { type: 'string', default: String(4 * 1024 * 1024) },
  },
  strict: true,
});

const runId = Number(args['run-id']);
const port = Number(args.port);
const idleMs = args['idle-ms'] === undefined ? 0 : Number(args['idle-ms']);
if (!Number.isInteger(runId) || runId < 0 || runId > 0xffffffff) fail(`bad --run-id ${args['run-id']}`);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`bad --port ${args.port}`);
if (!Number.isFinite(idleMs) || idleMs < 0) fail(`bad --idle-ms ${args['idle-ms']}`);

let counts = new Uint8Array(1 << 20);
let received = 0;
let distinct = 0;
let reordered = 0;
let foreign = 0;
let outOfRange = 0;
let segments = 0;
let prev = -1;
let firstSeq = -1;
let minSeq = -1;
let maxSeq = -1;
let lastPacketAt = 0;
/** latency histogram: [from, width] of each decade's buckets (µs); 100 buckets per decade */
const DECADES = [
  [0, 10],
  [1_000, 100],
  [10_000, 1_000],
  [100_000, 10_000],
  [1_000_000, 100_000],
];
const hist = new Uint32Array(DECADES.length * 100);
function bucketOf(us) {
  for (let d = DECADES.length - 1; d >= 0; d--) {
    const [from, width] = DECADES[d];
    if (us >= from) return d * 100 + Math.min(99, Math.floor((us - from) / width));
  }
  return 0;
}
function bucketRange(i) {
  const [from, width] = DECADES[Math.floor(i / 100)];
  const lo = from + (i % 100) * width;
  return [lo, lo + width];
}
let maxLatencyNs = 0n;

function record(seq) {
  received++;
  if (firstSeq < 0) firstSeq = seq;
  if (seq >= MAX_SEQ) {
    outOfRange++;
    prev = seq;
    return;
  }
  if (seq >= counts.length) {
    let size = counts.length;
    while (size <= seq) size *= 2;
    const grown = new Uint8Array(Math.min(size, MAX_SEQ));
    grown.set(counts);
    counts = grown;
  }
  const c = counts[seq];
  if (c === 0) {
    distinct++;
    if (seq < prev) reordered++;
    // a new segment unless it continues the previous number
    if (prev < 0 || seq !== prev + 1) segments++;
  }
  if (c < 255) counts[seq] = c + 1;
  if (minSeq < 0 || seq < minSeq) minSeq = seq;
  if (seq > maxSeq) maxSeq = seq;
  prev = seq;
}

const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: Number(args.rcvbuf) });
socket.on('message', (msg) => {
  if (msg.length < 24 || msg.readUInt32LE(0) !== MAGIC || msg.readUInt32LE(4) !== runId) {
    foreign++;
    return;
  }
  const hi = msg.readUInt32LE(12);
  const seq = hi === 0 ? msg.readUInt32LE(8) : hi * 2 ** 32 + msg.readUInt32LE(8);
  record(seq);
  const lat = process.hrtime.bigint() - msg.readBigUInt64LE(16);
  if (lat > maxLatencyNs) maxLatencyNs = lat;
  hist[lat < 0n ? 0 : bucketOf(Number(lat / 1000n))]++;
  lastPacketAt = Date.now();
});
socket.on('error', (error) => fail(`socket: ${error.message}`));
socket.bind(port, args.bind, () => {
  out({ event: 'listening', name: args.name, address: args.bind, port, runId, rcvbuf: socket.getRecvBufferSize(), pid: process.pid });
});

/** Datagrams dropped at our socket, from /proc/net/udp (this namespace's table). */
function socketDrops() {
  try {
    const { address, port: p } = socket.address();
    const hexAddr = address.split('.').map(Number).reverse().map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
    const local = `${hexAddr}:${p.toString(16).padStart(4, '0').toUpperCase()}`;
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1] === local) return Number(f[f.length - 1]);
    }
  } catch {
    /* not available */
  }
  return null;
}

function latency() {
  let n = 0;
  for (let i = 0; i < hist.length; i++) n += hist[i];
  const pct = (q) => {
    if (n === 0) return null;
    const want = Math.ceil(q * n);
    let acc = 0;
    for (let i = 0; i < hist.length; i++) {
      acc += hist[i];
      if (acc >= want) return bucketRange(i)[1];
    }
    return null;
  };
  const histogram = [];
  for (let i = 0; i < hist.length; i++) if (hist[i]) histogram.push([...bucketRange(i), hist[i]]);
  return { p50: pct(0.5), p99: pct(0.99), p999: pct(0.999), max: n ? Number(maxLatencyNs / 1000n) : null, histogram };
}

let finished = false;
function finish(reason) {
  if (finished) return;
  finished = true;
  const summary = {
    event: 'summary',
    name: args.name,
    reason,
    runId,
    received,
    distinct,
    duplicates: received - outOfRange - distinct,
    reordered,
    foreign,
    firstSeq,
    lastSeq: prev,
    minSeq,
    maxSeq,
    outOfRange,
    socketDrops: socketDrops(),
    segments,
    latency: latency(),
  };
  try {
    socket.close();
  } catch {
    /* closed */
  }
  if (args.dump) writeFileSync(args.dump, counts.subarray(0, Math.max(0, maxSeq + 1)));
  if (args.summary) writeFileSync(args.summary, JSON.stringify(summary) + '\n');
  out(summary);
  process.exit(0);
}

process.on('SIGTERM', () => finish('SIGTERM'));
process.on('SIGINT', () => finish('SIGINT'));
if (idleMs > 0) {
  setInterval(() => {
    if (lastPacketAt && Date.now() - lastPacketAt >= idleMs) finish('idle');
  }, Math.min(idleMs, 100)).unref();
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message) {
  process.stderr.write(`udp-sink: ${message}\n`);
  process.exit(2);
}
