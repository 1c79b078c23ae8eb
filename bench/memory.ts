// Memory of the daemon with a full-size (1M-prefix) table, against the target
// of at most 200 MB resident.
//
// Run alone: npx tsc -p tsconfig.json && node --expose-gc dist/bench/memory.js [--out FILE]
// Writes bench/results/memory-TIMESTAMP.json (bench/lib/results.ts).
//
// Each scenario runs in a child process of its own (this file with
// --scenario=NAME), so resident figures are not inflated by an earlier
// scenario's freed-but-kept heap pages, and each peak (getrusage maxrss) is
// that scenario's alone:
//   node    the process with vipr's modules loaded and nothing built;
//   lpm     the LpmTable alone, built from the 1M BGP-like routes of
//           lpm.bench.ts (the generator's arrays dropped before measuring);
//   router  the whole Router (test/fixtures/article-router.ts: up0 10.0.0.1/24,
//           lan0 192.168.1.1/27, MemoryPorts) given the same 1M prefixes as
//           config routes through six next-hop groups over six gateways on
//           the connected subnets, the way the config loader hands them over
//           (one RouteConfig, via array and via object per route). It also
//           times one `route add` through the control path (Rib.plan +
//           Rib.commit) and a failover (Rib.reselect after a gateway goes
//           down) on that table.
// Figures are after a full GC (--expose-gc). MB = 10^6 bytes, as the target.
// Each scenario ends with one `@result {...}` line of what it measured, which
// the parent puts in the results file.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RouteConfig } from '../src/config/types.js';
import { LpmTable } from '../src/dataplane/fib/lpm.js';
import { routePrefixProblem } from '../src/util/martians.js';
import { articleRouter } from '../test/fixtures/article-router.js';
import { isMain, round } from './lib/program.js';
import { BenchRun, figure, type Figure } from './lib/results.js';
import { bgpLikeRoutes, FULL_TABLE_ROUTES } from './lpm.bench.js';

const TARGET_MB = 200;
const SCENARIOS = ['node', 'lpm', 'router'] as const;
type Scenario = (typeof SCENARIOS)[number];

const MB = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('memory: run with node --expose-gc');
  collect();
  collect();
}

function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** One line: RSS, heap and typed-array memory after a full GC. */
function report(what: string, extra = ''): NodeJS.MemoryUsage {
  gc();
  const m = process.memoryUsage();
  const verdict = m.rss <= TARGET_MB * 1e6 ? 'within' : 'OVER';
  console.log(
    `memory: ${what}: RSS ${MB(m.rss)} (${verdict} the ${TARGET_MB} MB target), heap used ${MB(m.heapUsed)} of ${MB(m.heapTotal)}, ` +
      `array buffers ${MB(m.arrayBuffers)}, peak RSS so far ${MB(peakRss())}${extra}`,
  );
  return m;
}

const ip = (a: number, b: number, c: number, d: number): number => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

// Next-hop lists in order of preference: single gateways and primary/backup
// pairs, on both connected subnets.
const VIA_LISTS: readonly (readonly number[])[] = [
  [ip(10, 0, 0, 254)],
  [ip(10, 0, 0, 253), ip(10, 0, 0, 254)],
  [ip(192, 168, 1, 2)],
  [ip(192, 168, 1, 3), ip(192, 168, 1, 2)],
  [ip(192, 168, 1, 4)],
  [ip(192, 168, 1, 5), ip(192, 168, 1, 4)],
];

// The interface routes of the article router; a config route on one of
// these prefixes is refused by the RIB, so the generator's are skipped.
const INTERFACE_ROUTES = new Set([
  `${ip(10, 0, 0, 0)}/24`, `${ip(10, 0, 0, 1)}/32`, `${ip(10, 0, 0, 255)}/32`,
  `${ip(192, 168, 1, 0)}/27`, `${ip(192, 168, 1, 1)}/32`, `${ip(192, 168, 1, 31)}/32`,
]);

function configRoutes(): RouteConfig[] {
  const routes: RouteConfig[] = [];
  const sharedVia = VIA_LISTS.map((list) => list.map((address) => ({ address })));
  let line = 0;
  for (const [prefix, length, nextHop] of bgpLikeRoutes(FULL_TABLE_ROUTES, 1)) {
    line++;
    // A real table carries no loopback (127/8) routes, and the RIB refuses them.
    if (INTERFACE_ROUTES.has(`${prefix}/${length}`) || routePrefixProblem({ address: prefix, length }) !== undefined) continue;
    routes.push({
      prefix: { address: prefix, length },
      type: 'unicast',
      // One list object per distinct next-hop list, as loadConfig shares them.
      via: sharedVia[nextHop % sharedVia.length],
      sourceLine: line,
    });
  }
  return routes;
}

/** What a scenario measured, for the parent: one `@result` line on stdout. */
function result(measured: Record<string, number>): void {
  console.log(`@result ${JSON.stringify(measured)}`);
}

function scenarioNode(): void {
  const m = report('node with the vipr modules loaded, nothing built');
  result({ rssBytes: m.rss, heapUsedBytes: m.heapUsed });
}

function scenarioLpm(): void {
  let routes: ReturnType<typeof bgpLikeRoutes> | undefined = bgpLikeRoutes(FULL_TABLE_ROUTES, 1);
  const start = performance.now();
  const table = LpmTable.build(routes);
  const buildMs = performance.now() - start;
  routes = undefined;
  const m = report(
    `LpmTable only, ${table.size.toLocaleString('en')} routes`,
    `; build ${buildMs.toFixed(0)} ms, typed arrays ${MB(table.memoryBytes())} (lookup tables and the exact-match index)`,
  );
  result({ routes: table.size, rssBytes: m.rss, typedArrayBytes: table.memoryBytes(), buildMs: round(buildMs) });
  if (table.lookup(0) < 0) console.log('unreachable'); // keeps the table alive
}

function scenarioRouter(): void {
  let routes: RouteConfig[] | undefined = configRoutes();
  const count = routes.length;
  const config = report(`${count.toLocaleString('en')} RouteConfig objects (the parsed config), no router`);

  const start = performance.now();
  const { router } = articleRouter({ routes }, { keepSent: false });
  const buildMs = performance.now() - start;
  const rib = router.rib;
  const built = report(
    `Router with ${rib.size.toLocaleString('en')} routes (RIB + FIB + config)`,
    `; Router construction (Rib.load) ${(buildMs / 1000).toFixed(1)} s`,
  );
  const fib = router.tables.fib;
  console.log(
    `memory: Router over the config alone: +${MB(built.rss - config.rss)} RSS, +${MB(built.heapUsed - config.heapUsed)} heap ` +
      `(${((built.heapUsed - config.heapUsed) / count).toFixed(0)} B of heap per route: the RIB's Map of RibRoute objects, ` +
      `their via arrays and string keys), +${MB(built.arrayBuffers - config.arrayBuffers)} array buffers ` +
      `(LpmTable typed arrays with its exact-match index: ${MB(fib.memoryBytes())})`,
  );
  console.log(
    `memory: config routes' own share: ${MB(config.heapUsed)} of heap for ${count.toLocaleString('en')} RouteConfig objects ` +
      `(${(config.heapUsed / count).toFixed(0)} B per route incl. the runtime), kept alive by the Rib (configByKey)`,
  );

  // One runtime change through the control path, as `vipr ctl route add` does it.
  const prefix = { address: ip(203, 0, 113, 0), length: 24 };
  const planStart = performance.now();
  const plan = rib.plan([{ op: 'add', route: { prefix, type: 'unicast', via: [{ address: ip(10, 0, 0, 254) }] } }]);
  const planMs = performance.now() - planStart;
  const commitStart = performance.now();
  rib.commit(plan);
  const commitMs = performance.now() - commitStart;
  report(
    `after one \`route add\` on the 1M table`,
    `; Rib.plan ${planMs.toFixed(0)} ms + Rib.commit ${commitMs.toFixed(0)} ms (the LpmTable edit alone is a few µs, see lpm.bench)`,
  );

  // A failover: the primary of two groups goes down. The data plane moves
  // with one slot write per group; the rest is building the RouteMove report.
  const down = ip(10, 0, 0, 253);
  rib.setAvailability({ usable: (a) => a !== down, stable: (a) => a !== down, failback: () => 'auto' });
  const reselectStart = performance.now();
  const moves = rib.reselect();
  const reselectMs = performance.now() - reselectStart;
  console.log(
    `memory: Rib.reselect() after gateway 10.0.0.253 goes down: ${reselectMs.toFixed(0)} ms for ${moves.length} moved group(s), ` +
      `${moves.reduce((n, m) => n + m.prefixes.length, 0).toLocaleString('en')} prefixes listed; peak RSS so far ${MB(peakRss())}`,
  );

  routes = undefined;
  result({
    routes: rib.size, configRssBytes: config.rss, configHeapBytes: config.heapUsed, rssBytes: built.rss, heapUsedBytes: built.heapUsed,
    ribLoadMs: round(buildMs), planMs: round(planMs), commitMs: round(commitMs), reselectMs: round(reselectMs), peakRssBytes: peakRss(),
  });
  if (router.tables.fib.lookup(0) < 0) console.log('unreachable'); // keeps the router alive
}

const scenarios: Record<Scenario, () => void> = { node: scenarioNode, lpm: scenarioLpm, router: scenarioRouter };

/**
 * Runs every scenario in a child process of its own and writes the results
 * file (`resultsFile`, or bench/results/memory-TIMESTAMP.json); returns its path.
 */
export async function run(resultsFile?: string): Promise<string> {
  const bench = new BenchRun('memory');
  const file = fileURLToPath(import.meta.url);
  const measured: Partial<Record<Scenario, Record<string, number>>> = {};
  const failed: string[] = [];
  for (const scenario of SCENARIOS) {
    const started = performance.now();
    const child = spawnSync(process.execPath, ['--expose-gc', file, `--scenario=${scenario}`], { stdio: ['inherit', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    for (const line of (child.stdout ?? '').split('\n')) {
      if (line.startsWith('@result ')) measured[scenario] = JSON.parse(line.slice('@result '.length)) as Record<string, number>;
      else if (line) console.log(line);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (child.status !== 0 || !measured[scenario]) {
      failed.push(scenario);
      console.log(`memory: scenario ${scenario} failed after ${seconds} s (exit ${child.status}, signal ${child.signal}): see its output above`);
    }
  }
  const out = await bench.write(memoryFigures(measured), { targetMB: TARGET_MB, scenarios: measured, failed }, resultsFile);
  console.log(`memory: results: ${out}`);
  return out;
}

/** RSS against the 200 MB target: the whole Router with 1M routes, and the LpmTable alone. No anchor: nothing else holds these tables. */
function memoryFigures(m: Partial<Record<Scenario, Record<string, number>>>): Figure[] {
  const figures: Figure[] = [];
  if (m.router) {
    figures.push(figure({
      id: 'memory.router-1m',
      measure: `resident memory of the whole Router (config + RIB + FIB) with ${m.router.routes.toLocaleString('en')} routes`,
      unit: 'MB',
      better: 'lower',
      vipr: { label: `RSS after a full GC; Rib.load ${(m.router.ribLoadMs / 1000).toFixed(1)} s`, value: round(m.router.rssBytes / 1e6, 1), bound: 'exact' },
      target: `≤ ${TARGET_MB} MB`,
    }));
  }
  if (m.lpm) {
    figures.push(figure({
      id: 'memory.lpm-1m',
      measure: `resident memory of the LpmTable alone with ${m.lpm.routes.toLocaleString('en')} routes`,
      unit: 'MB',
      better: 'lower',
      vipr: { label: `RSS after a full GC (typed arrays ${round(m.lpm.typedArrayBytes / 1e6, 1)} MB)`, value: round(m.lpm.rssBytes / 1e6, 1), bound: 'exact' },
      target: `≤ ${TARGET_MB} MB`,
    }));
  }
  return figures;
}

if (isMain(import.meta.url)) {
  const arg = process.argv.find((a) => a.startsWith('--scenario='));
  if (arg === undefined) {
    const out = process.argv.indexOf('--out');
    await run(out > 0 ? process.argv[out + 1] : undefined);
  } else {
    const name = arg.slice('--scenario='.length) as Scenario;
    if (!SCENARIOS.includes(name)) throw new Error(`memory: unknown scenario ${name}; one of ${SCENARIOS.join(', ')}`);
    scenarios[name]();
  }
}
