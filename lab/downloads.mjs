#!/usr/bin/env node
// downloads: many long TCP downloads at once, to see whether any connection is
// reset or cut short while routers fail over (bench/redundancy.ts).
//
//   ip netns exec P-client node lab/downloads.mjs --count 100 --bytes 400000 --rate 40000 \
//       [--vips 192.168.1.33,192.168.1.65,...] [--port 80] [--timeout-ms 60000]
//
// Opens --count connections at once, spread over the VIPs, each fetching
// /slow/BYTES/RATE (lab/webserver.mjs: BYTES at RATE bytes/s, so each lasts
// BYTES/RATE seconds). Prints {"event":"started","connections":N} once every
// request has its response headers, then, when all have ended (or on SIGTERM),
// one line:
//   {"event":"summary","connections":N,"completed":N,"reset":N,"short":N,"failed":N,
//    "unfinished":N,"bytes":N,"errors":{"ECONNRESET":N,...},"maxStallMs":M}
//  completed   the whole body arrived
//  reset       the connection was reset (ECONNRESET, EPIPE)
//  short       it ended before Content-Length bytes (the server's end came early)
//  failed      any other error (timeout, refused, unreachable)
//  unfinished  still running when told to stop
//  maxStallMs  the longest any connection went without a byte while it was open
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '400000' },
    rate: { type: 'string', default: '40000' },
    vips: { type: 'string', default: '192.168.1.33,192.168.1.65,192.168.1.97,192.168.1.129' },
    port: { type: 'string', default: '80' },
    'timeout-ms': { type: 'string', default: '60000' },
  },
});
const count = Number(args.count);
const bytes = Number(args.bytes);
const rate = Number(args.rate);
const vips = args.vips.split(',').filter(Boolean);
const port = Number(args.port);
const timeoutMs = Number(args['timeout-ms']);
if (!(count >= 1 && bytes >= 1 && rate >= 1 && vips.length > 0 && port >= 1)) {
  console.error('downloads: bad arguments');
  process.exit(2);
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const summary = { event: 'summary', connections: count, completed: 0, reset: 0, short: 0, failed: 0, unfinished: 0, bytes: 0, errors: {}, maxStallMs: 0 };
let open = count;
let headers = 0;
const live = new Set();

function done(state, kind, code) {
  if (state.over) return;
  state.over = true;
  live.delete(state);
  summary[kind]++;
  if (code) summary.errors[code] = (summary.errors[code] ?? 0) + 1;
  if (--open === 0) finish();
}

function finish() {
  clearInterval(stallTimer);
  summary.unfinished = live.size;
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(0));
}

for (let i = 0; i < count; i++) {
  const state = { over: false, lastByte: performance.now(), got: 0 };
  live.add(state);
  const req = http.get({ host: vips[i % vips.length], port, path: `/slow/${bytes}/${rate}`, agent, timeout: timeoutMs }, (res) => {
    if (++headers === count) process.stdout.write(`${JSON.stringify({ event: 'started', connections: count })}\n`);
    const length = Number(res.headers['content-length']);
    res.on('data', (chunk) => {
      const now = performance.now();
      summary.maxStallMs = Math.max(summary.maxStallMs, Math.round(now - state.lastByte));
      state.lastByte = now;
      state.got += chunk.length;
      summary.bytes += chunk.length;
    });
    res.on('end', () => done(state, state.got === length ? 'completed' : 'short'));
    res.on('aborted', () => done(state, 'short', 'aborted'));
    res.on('error', (error) => done(state, error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'failed', error.code ?? error.message));
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
  req.on('error', (error) => done(state, error.code === 'ECONNRESET' || error.code === 'EPIPE' ? 'reset' : 'failed', error.code ?? error.message));
}

// Each open connection's silence counts (a connection that waits for a retransmission).
const stallTimer = setInterval(() => {
  const now = performance.now();
  for (const state of live) summary.maxStallMs = Math.max(summary.maxStallMs, Math.round(now - state.lastByte));
}, 50);

process.on('SIGTERM', finish);
process.on('SIGINT', finish);
