// LPM table benchmarks: lookup throughput on a small and a full-size table,
// and the control-plane costs of the full-size one (build, memory, one route
// change).
//
// Each lookup figure is followed by two ratios, vipr's lookups/s over:
//   - a brute-force scan: every route is tested, the longest match wins
//     (BruteForceLpm below, over typed arrays, so it is the scan at its best);
//   - ipaddr.js, the most downloaded npm IP library (~300M downloads a month,
//     ahead of ip-address ~180M and netmask ~83M; CIDR-specific matchers such
//     as cidr-matcher, ip-cidr or cidr-tools have well under 1M), used as a
//     user would: routes parsed with IPv4.parseCIDR, sorted longest first,
//     the first `addr.match(cidr)` wins, one IPv4 object per destination. Its
//     own subnetMatch() is not an LPM: it returns the first match in the
//     range list's key order (and integer-like keys are reordered).
// Both are linear in the table size, so on the 1M table each lookup costs
// about a million tests: there they are timed on the first destinations of
// the same traces for a fixed time budget (a few hundred to a few thousand
// lookups) and lookups/s is that count over the elapsed time, not a
// benchmark.js figure. Every baseline answer is checked against vipr's.
//
// Run alone: npx tsc -p tsconfig.json && node --expose-gc dist/bench/lpm.bench.js [--out FILE]
// (--expose-gc for steadier memory figures). Writes
// bench/results/lpm-TIMESTAMP.json (bench/lib/results.ts): every figure below,
// and the headline ones beside ipaddr.js measured in the same run.
//
// Lookups go through lookupBatch over preallocated 64K-address arrays, the
// way the data plane calls it, so the per-call cost is amortised and each
// reported figure is addresses looked up per second. Each benchmark cycles
// through 16 such arrays (1M addresses): one 64K trace replayed on its own
// touches only 4 MiB of tbl24 cache lines, which stays in L3 and would make
// "random" lookups look like cache hits.

import Benchmark from 'benchmark';
import ipaddr from 'ipaddr.js';
import { createRequire } from 'node:module';
import { LpmTable } from '../src/dataplane/fib/lpm.js';
import { mulberry32 } from '../test/fixtures/random.js';
import { isMain, round } from './lib/program.js';
import { BenchRun, figure, type Figure } from './lib/results.js';

export type Route = [prefix: number, length: number, nextHop: number];

const IPADDR_VERSION: string = createRequire(import.meta.url)('ipaddr.js/package.json').version;

// 64K addresses: large enough to hide the call and loop set-up, small enough
// (256 KiB + 128 KiB) that the trace itself stays in L2 while the table
// arrays do not.
const BATCH = 65536;
const TRACES = 16;
export const FULL_TABLE_ROUTES = 1_000_000;
const ZIPF_EXPONENT = 1.1;

// BGP-like prefix-length mix for the full table, as [first, last, share].
const BGP_LENGTH_MIX: readonly (readonly [number, number, number])[] = [
  [24, 24, 0.6],
  [22, 23, 0.18],
  [16, 21, 0.2],
  [8, 15, 0.01],
  [25, 32, 0.01],
];

export const mask = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0);
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
export function bgpLikeRoutes(count: number, seed: number): Route[] {
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
  return { median: round(times[repeats >> 1], 2), p99: round(times[Math.floor(repeats * 0.99)], 2), worst: round(times[repeats - 1], 2), repeats };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

const formatAddress = (a: number): string => `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;

// Brute force: test every route, keep the longest match. Typed arrays and
// int32 compares, so this is the linear scan at its fastest in JS.
class BruteForceLpm {
  private readonly prefix: Int32Array;
  private readonly mask: Int32Array;
  private readonly length: Uint8Array;
  private readonly hop: Uint16Array;

  constructor(routes: readonly Route[]) {
    const n = routes.length;
    this.prefix = new Int32Array(n);
    this.mask = new Int32Array(n);
    this.length = new Uint8Array(n);
    this.hop = new Uint16Array(n);
    routes.forEach(([prefix, length, nextHop], i) => {
      this.prefix[i] = prefix | 0;
      this.mask[i] = mask(length) | 0;
      this.length[i] = length;
      this.hop[i] = nextHop;
    });
  }

  lookup(address: number): number {
    const a = address | 0;
    const { prefix, mask: masks, length, hop } = this;
    let bestLength = -1;
    let best = 0;
    for (let i = 0; i < prefix.length; i++) {
      if ((a & masks[i]) === prefix[i] && length[i] > bestLength) {
        bestLength = length[i];
        best = hop[i];
      }
    }
    return best;
  }
}

// ipaddr.js the way a user would write an LPM with it: CIDR strings parsed
// once, sorted longest first, first match wins; the destination becomes an
// IPv4 object (from its four bytes, as read off a packet) per lookup.
class IpaddrLpm {
  private readonly cidrs: [ipaddr.IPv4, number][];
  private readonly hops: number[];

  constructor(routes: readonly Route[]) {
    const parsed = routes.map(([prefix, length, nextHop]) => ({
      cidr: ipaddr.IPv4.parseCIDR(`${formatAddress(prefix)}/${length}`),
      nextHop,
    }));
    parsed.sort((x, y) => y.cidr[1] - x.cidr[1]);
    this.cidrs = parsed.map((r) => r.cidr);
    this.hops = parsed.map((r) => r.nextHop);
  }

  lookup(address: number): number {
    const a = address >>> 0;
    const destination = new ipaddr.IPv4([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]);
    const cidrs = this.cidrs;
    for (let i = 0; i < cidrs.length; i++) {
      if (destination.match(cidrs[i])) return this.hops[i];
    }
    return 0;
  }
}

interface Baseline {
  lookupsPerSecond: number;
  /** How the figure was obtained, for the output line. */
  how: string;
}

// Times single lookups over the given traces in order until the budget is
// spent, checking each answer against vipr's. For baselines too slow for
// benchmark.js (about a million tests per lookup on the 1M table).
function timeSample(
  name: string,
  lookup: (address: number) => number,
  reference: LpmTable,
  traceList: readonly Uint32Array[],
  budgetMs: number,
): Baseline {
  for (let i = 0; i < 3; i++) lookup(traceList[TRACES - 1][BATCH - 1 - i]); // warm-up, not in the sample
  let count = 0;
  let wrong = 0;
  const start = performance.now();
  let elapsed = 0;
  outer: for (const trace of traceList) {
    for (let i = 0; i < BATCH; i++) {
      if (lookup(trace[i]) !== reference.lookup(trace[i])) wrong++;
      count++;
      elapsed = performance.now() - start;
      if (elapsed >= budgetMs) break outer;
    }
  }
  if (wrong > 0) throw new Error(`lpm: ${name} disagrees with vipr on ${wrong} of ${count} destinations`);
  return {
    lookupsPerSecond: (count / elapsed) * 1000,
    how: `${count.toLocaleString('en')} lookups timed in ${(elapsed / 1000).toFixed(1)} s, extrapolated; all agree with vipr`,
  };
}

// Runs per-batch functions through benchmark.js; returns lookups/s by name.
function suite(name: string, cases: [string, () => void][]): Promise<Map<string, Benchmark.Target>> {
  const results = new Map<string, Benchmark.Target>();
  return new Promise((resolve) => {
    const s = new Benchmark.Suite(name);
    for (const [caseName, fn] of cases) s.add(caseName, fn);
    s.on('cycle', (event: Benchmark.Event) => results.set(String(event.target.name), event.target))
      .on('complete', () => resolve(results))
      .run({ async: false });
  });
}

function formatRate(lookupsPerSecond: number): string {
  if (lookupsPerSecond >= 1e6) return `${(lookupsPerSecond / 1e6).toFixed(1)} M lookups/s`;
  if (lookupsPerSecond >= 1e3) return `${(lookupsPerSecond / 1e3).toFixed(1)} k lookups/s`;
  return `${lookupsPerSecond.toFixed(1)} lookups/s`;
}

function formatRatio(ratio: number): string {
  return `${Number(ratio.toPrecision(3)).toLocaleString('en')}x`;
}

/** Everything the LPM bench measured: the raw data of its results file. */
interface LpmRaw {
  build1M: { ms: number; routes: number; typedArrayBytes: number; tbl8Groups: number; rssGrowthBytes: number; gcExposed: boolean };
  routeChangeMicroseconds: Record<string, { median: number; p99: number; worst: number; repeats: number }>;
  baselines: Record<string, { brute: Baseline; ipaddr: Baseline }>;
  ipaddrBuild1M: { ms: number; heapBytes: number };
  vipr: Array<{ name: string; lookupsPerSecond: number; rmePercent: number }>;
}

/**
 * Runs the LPM benchmarks and writes their results file (`out`, or
 * bench/results/lpm-TIMESTAMP.json); returns its path.
 */
export async function run(resultsFile?: string): Promise<string> {
  const bench = new BenchRun('lpm');
  const raw: LpmRaw = { build1M: undefined!, routeChangeMicroseconds: {}, baselines: {}, ipaddrBuild1M: undefined!, vipr: [] };
  const random = mulberry32(0x5eed);
  const gc = (globalThis as { gc?: () => void }).gc;
  const ipaddrName = `ipaddr.js ${IPADDR_VERSION}`;

  // The article's table: four /27s in 192.168.1.0/24, the connected /27 below
  // them and a default route.
  const articleRoutes: Route[] = [
    [ip('0.0.0.0'), 0, 1],
    [ip('192.168.1.0'), 27, 2],
    [ip('192.168.1.32'), 27, 3],
    [ip('192.168.1.64'), 27, 4],
    [ip('192.168.1.96'), 27, 5],
    [ip('192.168.1.128'), 27, 6],
  ];
  const article = LpmTable.build(articleRoutes);
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
  raw.build1M = { ms: round(buildMs), routes: full.size, typedArrayBytes: full.memoryBytes(), tbl8Groups: full.tbl8.length / 256, rssGrowthBytes: rssDelta, gcExposed: gc !== undefined };

  for (const length of [24, 16, 8]) {
    const change = timeRouteChange(full, length, random, length === 8 ? 200 : 2000);
    raw.routeChangeMicroseconds[`/${length}`] = change;
    const { median, p99, worst } = change;
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

  // --- Baselines, measured first so the vipr lines can carry the ratios. ---
  console.log(`lpm: baseline library: ${ipaddrName}, the most downloaded npm IP library, as parseCIDR + sort longest first + first addr.match() wins`);
  const articleBrute = new BruteForceLpm(articleRoutes);
  const articleIpaddr = new IpaddrLpm(articleRoutes);
  for (const trace of articleTraces) {
    for (const a of trace) {
      if (articleBrute.lookup(a) !== article.lookup(a) || articleIpaddr.lookup(a) !== article.lookup(a)) {
        throw new Error(`lpm: baselines disagree with vipr on the article table at ${formatAddress(a)}`);
      }
    }
  }
  const articleBaselines = await suite('lpm baselines', [
    ['brute-force scan', () => {
      const trace = articleTraces[next++ % TRACES];
      for (let i = 0; i < BATCH; i++) out[i] = articleBrute.lookup(trace[i]);
    }],
    [ipaddrName, () => {
      const trace = articleTraces[next++ % TRACES];
      for (let i = 0; i < BATCH; i++) out[i] = articleIpaddr.lookup(trace[i]);
    }],
  ]);
  checksum += out[BATCH - 1];
  const articleBaseline = (name: string): Baseline => {
    const target = articleBaselines.get(name)!;
    return {
      lookupsPerSecond: (target.hz ?? 0) * BATCH,
      how: `benchmark.js, ±${(target.stats?.rme ?? 0).toFixed(1)}%; all agree with vipr`,
    };
  };
  const baselines: Record<'article' | 'uniform' | 'zipf', { brute: Baseline; ipaddr: Baseline }> = {
    article: { brute: articleBaseline('brute-force scan'), ipaddr: articleBaseline(ipaddrName) },
    uniform: undefined!,
    zipf: undefined!,
  };
  console.log(`lpm: brute-force scan, article table (6 routes): ${formatRate(baselines.article.brute.lookupsPerSecond)} (${baselines.article.brute.how})`);
  console.log(`lpm: ${ipaddrName}, article table (6 routes): ${formatRate(baselines.article.ipaddr.lookupsPerSecond)} (${baselines.article.ipaddr.how})`);

  const fullBrute = new BruteForceLpm(routes);
  baselines.uniform = { brute: timeSample('brute-force scan', (a) => fullBrute.lookup(a), full, uniform, 3000), ipaddr: undefined! };
  baselines.zipf = { brute: timeSample('brute-force scan', (a) => fullBrute.lookup(a), full, zipf, 3000), ipaddr: undefined! };
  console.log(`lpm: brute-force scan, 1M table, uniform random: ${formatRate(baselines.uniform.brute.lookupsPerSecond)} (${baselines.uniform.brute.how})`);
  console.log(`lpm: brute-force scan, 1M table, Zipf: ${formatRate(baselines.zipf.brute.lookupsPerSecond)} (${baselines.zipf.brute.how})`);

  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const ipaddrStart = performance.now();
  let fullIpaddr: IpaddrLpm | undefined = new IpaddrLpm(routes);
  const ipaddrBuildMs = performance.now() - ipaddrStart;
  gc?.();
  const ipaddrHeap = process.memoryUsage().heapUsed - heapBefore;
  console.log(`lpm: ${ipaddrName}, build of the 1M table (parseCIDR + sort): ${ipaddrBuildMs.toFixed(0)} ms, ${mib(ipaddrHeap)} of heap`);
  raw.ipaddrBuild1M = { ms: round(ipaddrBuildMs), heapBytes: ipaddrHeap };
  const ipaddrLookup = (a: number) => fullIpaddr!.lookup(a);
  baselines.uniform.ipaddr = timeSample(ipaddrName, ipaddrLookup, full, uniform, 6000);
  baselines.zipf.ipaddr = timeSample(ipaddrName, ipaddrLookup, full, zipf, 6000);
  fullIpaddr = undefined;
  gc?.();
  console.log(`lpm: ${ipaddrName}, 1M table, uniform random: ${formatRate(baselines.uniform.ipaddr.lookupsPerSecond)} (${baselines.uniform.ipaddr.how})`);
  console.log(`lpm: ${ipaddrName}, 1M table, Zipf: ${formatRate(baselines.zipf.ipaddr.lookupsPerSecond)} (${baselines.zipf.ipaddr.how})`);

  const cases: [string, keyof typeof baselines, () => void][] = [
    ['article table (6 routes), random in 192.168.1.0/24', 'article', () => {
      article.lookupBatch(articleTraces[next++ % TRACES], BATCH, out);
    }],
    ['1M table, uniform random destinations', 'uniform', () => {
      full.lookupBatch(uniform[next++ % TRACES], BATCH, out);
    }],
    [`1M table, Zipf s=${ZIPF_EXPONENT} over routes`, 'zipf', () => {
      full.lookupBatch(zipf[next++ % TRACES], BATCH, out);
    }],
    ['1M table, uniform random, one lookup() call per address', 'uniform', () => {
      const trace = uniform[next++ % TRACES];
      for (let i = 0; i < BATCH; i++) out[i] = full.lookup(trace[i]);
    }],
  ];
  const baselineOf = new Map(cases.map(([name, baseline]) => [name, baselines[baseline]]));

  await new Promise<void>((resolve) => {
    const s = new Benchmark.Suite('lpm');
    for (const [name, , fn] of cases) s.add(name, fn);
    s.on('cycle', (event: Benchmark.Event) => {
        const target = event.target;
        checksum += out[BATCH - 1];
        const lookupsPerSecond = (target.hz ?? 0) * BATCH;
        const rme = target.stats?.rme ?? 0;
        const baseline = baselineOf.get(String(target.name))!;
        raw.vipr.push({ name: String(target.name), lookupsPerSecond: Math.round(lookupsPerSecond), rmePercent: round(rme, 1) });
        console.log(
          `lpm: ${target.name}: ${(lookupsPerSecond / 1e6).toFixed(1)} M lookups/s (±${rme.toFixed(1)}%); ` +
            `vipr/brute-force scan ${formatRatio(lookupsPerSecond / baseline.brute.lookupsPerSecond)}, ` +
            `vipr/${ipaddrName} ${formatRatio(lookupsPerSecond / baseline.ipaddr.lookupsPerSecond)}`,
        );
      })
      .on('complete', () => resolve())
      .run({ async: false });
  });
  // Keeps the results observable so no lookup loop can be optimised away.
  if (checksum < 0) console.log(checksum);
  raw.baselines = baselines;

  const file = await bench.write(lpmFigures(raw, ipaddrName), { ...raw, method: 'benchmark.js per case over 16 preallocated 64K-address traces (lookupBatch); baselines timed on the same traces, every answer checked against vipr' }, resultsFile);
  console.log(`lpm: results: ${file}`);
  return file;
}

/** The headline figures: vipr's lookups/s beside ipaddr.js as a user would use it (same run), the 1M table's build time and worst route change. */
function lpmFigures(raw: LpmRaw, ipaddrName: string): Figure[] {
  const figures: Figure[] = [];
  const lookups = (id: string, measure: string, viprCase: string, baseline: 'article' | 'uniform' | 'zipf', target?: string) => {
    const v = raw.vipr.find((x) => x.name.startsWith(viprCase));
    if (!v) return;
    const b = raw.baselines[baseline].ipaddr;
    figures.push(figure({
      id,
      measure,
      unit: 'lookups/s',
      better: 'higher',
      vipr: { label: `vipr LpmTable.lookupBatch (±${v.rmePercent}%)`, value: v.lookupsPerSecond, bound: 'exact' },
      anchor: {
        label: `${ipaddrName}: parseCIDR, sorted longest first, first addr.match() wins`,
        value: Math.round(b.lookupsPerSecond * 10) / 10,
        bound: 'exact',
        atLimit: true,
        why: `what a user would otherwise write, run flat out on the same traces (${b.how})`,
      },
      target,
    }));
  };
  lookups('lpm.lookups.article', "LPM lookups, the article's 6 routes, random in 192.168.1.0/24", 'article table', 'article', '≥ 200 M/s');
  lookups('lpm.lookups.1m-uniform', 'LPM lookups, 1M-prefix BGP-like table, uniform random destinations', '1M table, uniform random destinations', 'uniform', '≥ 40 M/s');
  lookups('lpm.lookups.1m-zipf', `LPM lookups, 1M-prefix table, Zipf (s = ${ZIPF_EXPONENT}) destinations`, '1M table, Zipf', 'zipf');
  figures.push(figure({
    id: 'lpm.build.1m',
    measure: 'build of the 1M-prefix LPM table',
    unit: 'ms',
    better: 'lower',
    vipr: { label: `LpmTable.build, ${raw.build1M.routes.toLocaleString('en')} routes`, value: raw.build1M.ms, bound: 'exact' },
    target: '≤ 2000 ms',
  }));
  const worst = raw.routeChangeMicroseconds['/24'];
  figures.push(figure({
    id: 'lpm.route-change.24',
    measure: `one route change on the 1M table (insert + delete of a /24), worst of ${worst.repeats}`,
    unit: 'µs',
    better: 'lower',
    vipr: { label: `median ${worst.median} µs, p99 ${worst.p99} µs; worst`, value: worst.worst, bound: 'exact' },
    target: '≤ 1000 µs',
  }));
  return figures;
}

if (isMain(import.meta.url)) {
  const out = process.argv.indexOf('--out');
  await run(out > 0 ? process.argv[out + 1] : undefined);
}
