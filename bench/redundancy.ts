// Redundancy: a pair of vipr routers that survives one of them, measured.
//
// The lab (lab/lab.sh up --routers 2): the client sends through an upstream
// router (BIRD, BGP with BFD 50 ms x 3 to both vipr routers, ECMP `merge
// paths`, L4 hash) to router1 and router2 (vipr + BIRD + keepalived holding the
// servers' gateway 192.168.1.1 by VRRPv3, 50 ms adverts). Under load:
//   - a numbered UDP stream (lab/udp-stream.c, --rate packets/s, --flows
//     source ports so the ECMP hash spreads it over both routers) to the VIP
//     192.168.1.33, which both routers send to web1; a timestamping sink in
//     web1 records every number (the C sink of bench/failover.ts);
//   - --downloads concurrent long TCP downloads from the client to the four
//     VIPs (lab/downloads.mjs: /slow/BYTES/RATE, each lasting BYTES/RATE s),
//     counting connections reset or cut short.
// One router fails, the one holding the VRRP address (the worst case: it
// carries its share of the stream and every download's return traffic):
//   kill      kill -9 of its vipr
//   uplink    its up0 goes down (ip link set up0 down, in its namespace)
//   lanlink   its lan0 goes down
//   session   the upstream's BGP session to it goes down (birdc disable)
//   shutdown  a planned `vipr ctl shutdown`
// and comes back after each trial (vipr started again, link up, session
// enabled), until both routers announce every VIP prefix again.
//
// Per trial (every timestamp CLOCK_MONOTONIC, shared by all namespaces):
//   outage    the longest any flow of the stream went without a packet, minus
//             its packet interval, over the gaps that end after the failure:
//             how long until the failed router's flows came through the other
//   lost      numbers sent but never received (after the failure's start; those
//             lost before it are a stall of the machine, reported apart)
//   tcp       downloads completed, reset, cut short, failed; the longest stall
// Before the trials, with both routers up: each router's share of the stream
// (packets the upstream sent on each router's port while it ran).
//
// The routers run without health checks unless --checks: on this two-CPU box,
// a router that takes all the load after its peer failed answers some checks
// late (50 ms timeout) and moves a VIP to its backup server on that router
// alone; the downloads of that VIP through it then land on a server that does
// not know them and are reset (seen: up to 50 resets in a trial, with nothing
// lost). That is two routers disagreeing on a flow's server, what item 4 of
// issue 11 (flow tables, the same placement on every router) is for, not a
// failover of the pair.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/redundancy.js [--trials 10] [--kinds kill,uplink,lanlink,session,shutdown]
//        [--rate 20000] [--flows 64] [--downloads 100] [--lead 1000] [--after 2000] [--checks] [--out FILE]
// Writes bench/results/redundancy-YYYY-MM-DD[THHMMSS].json and prints a table.
// Needs root, cc, bird2 and keepalived (scripts/setup.sh installs them).
//
// measureTrial(), settle() and the rest are also used by test/lab/pair.test.ts.

import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { bringLabUp, teardownOnExit } from '../lab/lib/lab.js';
import {
  FAILURE_TEXT, measureSpread, measureTrial, PAIR_FAILURES, pairRouters, settle, startRouter, type PairContext, type PairFailure, type PairTrial, type RouterName,
} from '../lab/lib/pair-trial.js';
import { REPO_ROOT, run, sleep } from '../lab/lib/process.js';
import { labBenchRefusal, numberArg, runIfMain } from './lib/program.js';

// ---- the bench -----------------------------------------------------------------------------------

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<number> {
  const refusal = labBenchRefusal();
  if (refusal) throw new Error(refusal);
  const argv = process.argv.slice(2);
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const trials = numberArg('--trials', arg('--trials') ?? '10', 1, 1000);
  const kinds = (arg('--kinds') ?? PAIR_FAILURES.join(',')).split(',') as PairFailure[];
  for (const k of kinds) if (!PAIR_FAILURES.includes(k)) throw new Error(`--kinds: unknown ${k} (${PAIR_FAILURES.join(',')})`);
  const opts = {
    rate: numberArg('--rate', arg('--rate') ?? '20000', 1, 1_000_000),
    flows: numberArg('--flows', arg('--flows') ?? '64', 1, 1024),
    downloads: numberArg('--downloads', arg('--downloads') ?? '100', 0, 1000),
    downloadBytes: numberArg('--download-bytes', arg('--download-bytes') ?? '200000', 1, 1e9),
    downloadRate: numberArg('--download-rate', arg('--download-rate') ?? '25000', 1, 1e9),
    leadMs: numberArg('--lead', arg('--lead') ?? '1000', 0, 60_000),
    afterMs: numberArg('--after', arg('--after') ?? '2000', 100, 60_000),
  };
  teardownOnExit('redundancy');
  const prefix = `r${randomInt(36 ** 5).toString(36).padStart(5, '0')}`;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(`redundancy: lab ${prefix} (lab.sh up --routers 2)`);
  const lab = await bringLabUp(prefix, { routers: 2 });
  const routers = pairRouters(prefix);
  if (!argv.includes('--checks')) {
    for (const router of routers) writeFileSync(router.config, readFileSync(router.config, 'utf8').replace(/, checks: \[[^\]]*\]/g, ''));
  }
  const ctx: PairContext = { lab, routers, progress: (line) => log(`  ${line}`) };
  const results: PairTrial[] = [];
  let spread: Record<RouterName, number> | undefined;
  try {
    // router1 first, so that it takes the VRRP address; then router2.
    await startRouter(lab, routers[0]);
    await sleep(500);
    await startRouter(lab, routers[1]);
    await settle(lab);
    spread = await measureSpread(ctx, { rate: opts.rate, flows: opts.flows, seconds: 3 });
    log(`both up: router1 ${(spread.router1 * 100).toFixed(1)} %, router2 ${(spread.router2 * 100).toFixed(1)} % of the stream`);
    for (let t = 0; t < trials; t++) {
      for (const kind of kinds) {
        const trial = await measureTrial(ctx, { ...opts, kind });
        results.push(trial);
        log(`  -> outage ${trial.outageMs} ms, lost ${trial.lost} (${trial.flowsHit} flows), tcp reset ${trial.tcp.reset} short ${trial.tcp.short} failed ${trial.tcp.failed}, stall ${trial.tcp.maxStallMs} ms${trial.problems.length ? `; ${trial.problems.join('; ')}` : ''}`);
      }
    }
  } finally {
    await lab.down();
  }
  const summary = kinds.map((kind) => {
    const of = results.filter((r) => r.kind === kind);
    return {
      kind, text: FAILURE_TEXT[kind], trials: of.length,
      outageMedianMs: median(of.map((r) => r.outageMs)), outageMaxMs: Math.max(...of.map((r) => r.outageMs)),
      lostMedian: median(of.map((r) => r.lost)), lostMax: Math.max(...of.map((r) => r.lost)),
      tcpReset: of.reduce((n, r) => n + r.tcp.reset, 0), tcpShortOrFailed: of.reduce((n, r) => n + r.tcp.short + r.tcp.failed + r.tcp.unfinished, 0),
      tcpMaxStallMs: Math.max(...of.map((r) => r.tcp.maxStallMs)),
    };
  });
  process.stdout.write(`\n${'failure'.padEnd(10)} ${'trials'.padStart(6)} ${'outage p50'.padStart(11)} ${'max'.padStart(7)} ${'lost p50'.padStart(9)} ${'max'.padStart(6)} ${'tcp reset'.padStart(9)} ${'short'.padStart(6)}\n`);
  for (const s of summary) {
    process.stdout.write(`${s.kind.padEnd(10)} ${String(s.trials).padStart(6)} ${String(s.outageMedianMs).padStart(9)}ms ${String(s.outageMaxMs).padStart(5)}ms ${String(s.lostMedian).padStart(9)} ${String(s.lostMax).padStart(6)} ${String(s.tcpReset).padStart(9)} ${String(s.tcpShortOrFailed).padStart(6)}\n`);
  }
  if (spread) process.stdout.write(`both routers up: router1 ${(spread.router1 * 100).toFixed(1)} %, router2 ${(spread.router2 * 100).toFixed(1)} % of the stream\n`);
  const stamp = new Date().toISOString();
  const dir = join(REPO_ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  let out = arg('--out') ?? join(dir, `redundancy-${stamp.slice(0, 10)}.json`);
  if (!arg('--out') && existsSync(out)) out = join(dir, `redundancy-${stamp.slice(0, 10)}T${stamp.slice(11, 19).replace(/:/g, '')}.json`);
  writeFileSync(resolve(out), `${JSON.stringify({ date: stamp, command: `node dist/bench/redundancy.js ${argv.join(' ')}`.trim(), options: { ...opts, trials, kinds, checks: argv.includes('--checks') }, hostLoad1: loadavg()[0], spread, summary, trials: results }, null, 2)}\n`);
  process.stdout.write(`results: ${out}\n`);
  return 0;
}

runIfMain(import.meta.url, 'redundancy', main);
