// LPM table benchmarks: lookup throughput on a small and a full-size table,
// and the control-plane costs of the full-size one (build, memory, one route
// change).
//
// Run alone: npx tsc -p tsconfig.json && node dist/bench/lpm.bench.js
// (add --expose-gc for steadier memory figures).
//
// Lookups go through lookupBatch over preallocated 64K-address arrays, the
// way the data plane calls it, so the per-call cost is amortised and each
// reported figure is addresses looked up per second. Each benchmark cycles
// through 16 such arrays (1M addresses): one 64K trace replayed on its own
// touches only 4 MiB of tbl24 cache lines, which stays in L3 and would make
// "random" lookups look like cache hits.

import Benchmark from 'benchmark';
import { pathToFileURL } from 'node:url';
import { LpmTable } from '../src/fib/lpm.js';

type Route = [prefix: number, length: number, nextHop: number];

// 64K addresses: large enough to hide the call and loop set-up, small enough
// (256 KiB + 128 KiB) that the trace itself stays in L2 while the table
// arrays do not.
const BATCH = 65536;
const TRACES = 16;
const FULL_TABLE_ROUTES = 1_000_000;
const ZIPF_EXPONENT = 1.1;

// BGP-like prefix-length mix for the full table, as [first, last, share].
const BGP_LENGTH_MIX: readonly (readonly [number, number, number])[] = [
  [24, 24, 0.6],
  [22, 23, 0.18],
  [16, 21, 0.2],
  [8, 15, 0.01],
  [25, 32, 0.01],
];

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const mask = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0);
const span = (length: number): number => 2 ** (32 - length);

function ip(text: string): number {
  const [a, b, c, d] = text.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function pickLength(u: number): number {
  for (const [first, last, share] of BGP_LENGTH_MIX) {
    if (u < share) return first + Math.floor((u / share) * (last - first + 1));
    u -= share;
  }
  return 24;
}

// Distinct prefixes in unicast space (1.0.0.0-223.255.255.255), in random
// order, which the Zipf trace relies on to spread popularity over the table.
function bgpLikeRoutes(count: number, seed: number): Route[] {
  const random = mulberry32(seed);
  const seen = new Set<number>();
  const routes: Route[] = [];
  while (routes.length < count) {
    const length = pickLength(random());
    const address = (1 + Math.floor(random() * 223)) * 2 ** 24 + Math.floor(random() * 2 ** 24);
    const prefix = (address & mask(length)) >>> 0;
    const key = prefix * 64 + length;
    if (seen.has(key)) continue;
    seen.add(key);
    routes.push([prefix, length, 1 + Math.floor(random() * 4096)]);
  }
  return routes;
}

function uniformTrace(random: () => number, first: number, size: number): Uint32Array {
  const trace = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) trace[i] = first + Math.floor(random() * size);
  return trace;
}

function traces(make: () => Uint32Array): Uint32Array[] {
  return Array.from({ length: TRACES }, make);
}

// Route of rank r is chosen with probability proportional to 1 / r^s; the
// address is uniform inside the chosen prefix.
function zipfTrace(random: () => number, routes: readonly Route[], exponent: number): Uint32Array {
  const cumulative = new Float64Array(routes.length);
  let total = 0;
  for (let r = 0; r < routes.length; r++) {
    total += 1 / (r + 1) ** exponent;
    cumulative[r] = total;
  }
  const trace = new Uint32Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const target = random() * total;
    let low = 0;
    let high = routes.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle] < target) low = middle + 1;
      else high = middle;
    }
    const [prefix, length] = routes[low];
    trace[i] = prefix + Math.floor(random() * span(length));
  }
  return trace;
}

// Times insert+delete of prefixes absent from the table, in microseconds.
// The worst case includes the odd GC pause or exact-match Map rehash.
function timeRouteChange(table: LpmTable, length: number, random: () => number, repeats: number) {
  const times = new Float64Array(repeats);
  for (let done = 0; done < repeats; ) {
    const prefix = (((1 + Math.floor(random() * 223)) * 2 ** 24 + Math.floor(random() * 2 ** 24)) & mask(length)) >>> 0;
    if (table.get(prefix, length) !== 0) continue;
    const start = performance.now();
    table.insert(prefix, length, 1);
    table.delete(prefix, length);
    times[done++] = (performance.now() - start) * 1000;
  }
  times.sort();
  return { median: times[repeats >> 1], p99: times[Math.floor(repeats * 0.99)], worst: times[repeats - 1] };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

export async function run(): Promise<void> {
  const random = mulberry32(0x5eed);
  const gc = (globalThis as { gc?: () => void }).gc;

  // The article's table: four /27s in 192.168.1.0/24, the connected /27 below
  // them and a default route.
  const article = LpmTable.build([
    [ip('0.0.0.0'), 0, 1],
    [ip('192.168.1.0'), 27, 2],
    [ip('192.168.1.32'), 27, 3],
    [ip('192.168.1.64'), 27, 4],
    [ip('192.168.1.96'), 27, 5],
    [ip('192.168.1.128'), 27, 6],
  ]);
  const articleTraces = traces(() => uniformTrace(random, ip('192.168.1.0'), 256));

  const routes = bgpLikeRoutes(FULL_TABLE_ROUTES, 1);
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  const buildStart = performance.now();
  const full = LpmTable.build(routes);
  const buildMs = performance.now() - buildStart;
  gc?.();
  const rssDelta = process.memoryUsage().rss - rssBefore;
  console.log(`lpm: build of ${full.size.toLocaleString('en')}-prefix BGP-like table: ${buildMs.toFixed(0)} ms`);
  console.log(`lpm: 1M table typed arrays (memoryBytes): ${mib(full.memoryBytes())} (tbl8 ${full.tbl8.length / 256} groups)`);
  console.log(`lpm: 1M table RSS growth during build: ${mib(rssDelta)}${gc ? '' : ' (run with --expose-gc for a steadier figure)'}`);

  for (const length of [24, 16, 8]) {
    const { median, p99, worst } = timeRouteChange(full, length, random, length === 8 ? 200 : 2000);
    console.log(
      `lpm: route change on 1M table, insert+delete of a /${length}: ` +
        `${median.toFixed(1)} µs median, ${p99.toFixed(1)} µs p99, ${worst.toFixed(1)} µs worst`,
    );
  }

  const uniform = traces(() => uniformTrace(random, 0, 2 ** 32));
  const zipf = traces(() => zipfTrace(random, routes, ZIPF_EXPONENT));
  const out = new Uint16Array(BATCH);
  let next = 0;
  let checksum = 0;

  await new Promise<void>((resolve) => {
    new Benchmark.Suite('lpm')
      .add('article table (6 routes), random in 192.168.1.0/24', () => {
        article.lookupBatch(articleTraces[next++ % TRACES], BATCH, out);
      })
      .add('1M table, uniform random destinations', () => {
        full.lookupBatch(uniform[next++ % TRACES], BATCH, out);
      })
      .add(`1M table, Zipf s=${ZIPF_EXPONENT} over routes`, () => {
        full.lookupBatch(zipf[next++ % TRACES], BATCH, out);
      })
      .add('1M table, uniform random, one lookup() call per address', () => {
        const trace = uniform[next++ % TRACES];
        for (let i = 0; i < BATCH; i++) out[i] = full.lookup(trace[i]);
      })
      .on('cycle', (event: Benchmark.Event) => {
        const target = event.target;
        checksum += out[BATCH - 1];
        const lookupsPerSecond = (target.hz ?? 0) * BATCH;
        const rme = target.stats?.rme ?? 0;
        console.log(`lpm: ${target.name}: ${(lookupsPerSecond / 1e6).toFixed(1)} M lookups/s (±${rme.toFixed(1)}%)`);
      })
      .on('complete', () => resolve())
      .run({ async: false });
  });
  // Keeps the results observable so no lookup loop can be optimised away.
  if (checksum < 0) console.log(checksum);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run();
}
