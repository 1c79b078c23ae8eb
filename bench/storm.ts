// A control-plane storm while the data plane forwards (issue 13): a steady
// 64-byte stream through vipr at a fixed rate (by default 80 % of the zero-loss
// rate measured by bench/forwarding.ts, given with --rate), and meanwhile
//   reload     SIGHUP with a config that adds a route file of --routes routes
//              (the RIB and a whole new FIB built on the main thread)
//   requests   --requests `route show` requests in one write to the control socket
//   transaction  a transaction of --changes route additions (vipr ctl apply)
// Measured: frames lost (sent by the generator, not counted at web1), and the
// RTT of a 100 Hz ping through vipr before the storm and during it (p50, p99).
// Each shape of vipr in a fresh lab: the default (the data plane on a worker
// thread) and, as the anchor of the same run, `dataplane.workers: 0` (the data
// plane on the main thread, the shape before 2026-12).
//
//   npx tsc -p tsconfig.json
//   node dist/bench/storm.js --rate 300000 [--seconds 20] [--routes 200000] [--requests 5000] [--changes 10000]
//        [--modes workers,inline] [--out FILE]
// Writes bench/results/storm-TIMESTAMP.json. Needs root, cc, nft, socat, ping.

import { readFileSync, writeFileSync } from 'node:fs';
import { bringLabUp, configWithoutHealthChecks, labRunDir, labSocketPath, netnsOf, randomPrefix, startViprIn, teardownOnExit, VIPR_CLI, waitViprNeighbors, type OwnedLab } from '../lab/lib/lab.js';
import { run, sleep, stopChild } from '../lab/lib/process.js';
import { buildPace, paceCommand, type PaceReport } from './forwarding/generators.js';
import { GEN_CPU, ROUTER_CPU } from './forwarding/modes.js';
import { nft, SINK_RULES } from './forwarding/routers.js';
import { labBenchRefusal, listArg, numberArg, round, runIfMain } from './lib/program.js';
import { BenchRun, figure, type Figure } from './lib/results.js';

const MODES = ['workers', 'inline'] as const;
type Mode = (typeof MODES)[number];
const LABEL: Record<Mode, string> = {
  workers: 'vipr, data plane on a worker thread (default)',
  inline: 'vipr, data plane on the main thread (dataplane.workers: 0)',
};

interface Options {
  rate: number;
  seconds: number;
  routes: number;
  requests: number;
  changes: number;
  modes: Mode[];
  out?: string;
}

interface Rtt {
  count: number;
  lost: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

interface ModeResult {
  mode: Mode;
  label: string;
  sent: number;
  received: number;
  lost: number;
  generator: PaceReport;
  before: Rtt;
  during: Rtt;
  steps: { step: string; startMs: number; ms: number; ok: boolean; detail: string }[];
}

function rttOf(samples: number[], lost: number): Rtt {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted.length ? round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 1000) : null);
  return { count: samples.length, lost, p50: at(0.5), p99: at(0.99), max: sorted.length ? round(sorted[sorted.length - 1] * 1000) : null };
}

/** ping's per-reply lines ("time=0.123 ms"): RTTs in ms, and how many replies were missing. */
function parsePing(out: string, sent: number): { rtts: number[]; lost: number } {
  const rtts = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { rtts, lost: Math.max(0, sent - rtts.length) };
}

async function runMode(mode: Mode, opts: Options, log: (s: string) => void): Promise<ModeResult> {
  const lab = await bringLabUp(randomPrefix(mode === 'workers' ? 'sw' : 'si'));
  try {
    // No health checks: a check that fails on a loaded box would move the VIP in the middle of a count.
    let config = configWithoutHealthChecks(lab.prefix);
    const dir = labRunDir(lab.prefix);
    const text = readFileSync(config, 'utf8')
      .replace(/^ {2}# cpu: 1$/m, `  cpu: ${ROUTER_CPU}`)
      .replace(/^ {2}workers: \d+$/m, `  workers: ${mode === 'inline' ? 0 : 1}`);
    config = `${dir}/storm-${mode}.yaml`;
    writeFileSync(config, text);
    // The reload's config: the same, plus a route file (one route per line, `vipr ctl route add` words).
    const routeFile = `${dir}/storm-routes.txt`;
    const lines: string[] = [];
    for (let i = 0; i < opts.routes; i++) lines.push(`10.${64 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}/32 via 10.0.0.254`);
    writeFileSync(routeFile, lines.join('\n') + '\n');
    const reloaded = `${config}.reload`;
    writeFileSync(reloaded, `${text}\nrouteFiles: [${routeFile}]\n`);
    const requests = `${dir}/storm-requests.txt`;
    writeFileSync(requests, 'route show 192.168.1.32/27\n'.repeat(opts.requests));
    const transaction = `${dir}/storm-transaction.txt`;
    const changes: string[] = [];
    for (let i = 0; i < opts.changes; i++) changes.push(`route add 10.${96 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}/32 via 10.0.0.254`);
    writeFileSync(transaction, changes.join('\n') + '\n');

    await nft(lab, 'web1', SINK_RULES);
    const vipr = await startViprIn(lab, config);
    const socket = labSocketPath(lab.prefix);
    await waitViprNeighbors(lab, socket, ['web1', 'web2']);
    const pace = await buildPace();
    const count = opts.rate * opts.seconds;
    const generator = lab.exec('client', paceCommand(pace, 60, opts.rate, { count }), { timeoutMs: (opts.seconds + 60) * 1000 });
    const t0 = performance.now();
    // Ping a VIP on another server (web2), so the stream's counter at web1 counts the stream alone.
    const before = lab.exec('client', ['ping', '-n', '-i', '0.01', '-W', '1', '-c', '200', '192.168.1.65'], { timeoutMs: 30_000 });
    await sleep(2500);
    const during = lab.exec('client', ['ping', '-n', '-i', '0.01', '-W', '1', '-c', String((opts.seconds - 5) * 100), '192.168.1.65'], { timeoutMs: (opts.seconds + 30) * 1000 });
    const steps: ModeResult['steps'] = [];
    const step = async (name: string, work: () => Promise<{ ok: boolean; detail: string }>) => {
      const start = performance.now();
      const r = await work();
      steps.push({ step: name, startMs: round(start - t0), ms: round(performance.now() - start), ...r });
      log(`   ${name}: ${round(performance.now() - start)} ms ${r.ok ? 'ok' : `FAILED ${r.detail}`}`);
    };
    await sleep(500);
    await step('reload with a route file', async () => {
      writeFileSync(config, readFileSync(reloaded, 'utf8'));
      const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--socket', socket, 'reload'], { timeoutMs: 120_000 });
      return { ok: r.code === 0, detail: (r.stdout + r.stderr).trim().split('\n').pop() ?? '' };
    });
    await step(`${opts.requests} requests in one write`, async () => {
      const r = await lab.exec('router', ['sh', '-c', `socat -t 30 - UNIX-CONNECT:${socket} < ${requests} | grep -c '^ok$'`], { timeoutMs: 120_000 });
      return { ok: Number(r.stdout.trim()) === opts.requests, detail: `${r.stdout.trim()} answered` };
    });
    await step(`a transaction of ${opts.changes} changes`, async () => {
      const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--socket', socket, 'apply', transaction], { timeoutMs: 120_000 });
      return { ok: r.code === 0, detail: (r.stdout + r.stderr).trim().split('\n').pop() ?? '' };
    });
    const [genRun, beforeRun, duringRun] = await Promise.all([generator, before, during]);
    const genLine = genRun.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!genLine) throw new Error(`pace failed: ${genRun.stderr.trim()}`);
    const report = JSON.parse(genLine) as PaceReport;
    await sleep(500);
    const counters = await run('ip', ['netns', 'exec', netnsOf(lab.prefix, 'web1'), 'nft', '-j', 'list', 'table', 'netdev', 'vbench'], 10_000);
    const received = Number(/"packets":\s*(\d+)/.exec(counters.stdout)?.[1] ?? 0);
    await stopChild(vipr.child, 8000);
    const b = parsePing(beforeRun.stdout, 200);
    const d = parsePing(duringRun.stdout, (opts.seconds - 5) * 100);
    return {
      mode, label: LABEL[mode], sent: report.sent, received, lost: report.sent - received, generator: report,
      before: rttOf(b.rtts, b.lost), during: rttOf(d.rtts, d.lost), steps,
    };
  } finally {
    await lab.down();
  }
}

function figuresOf(results: ModeResult[], opts: Options): Figure[] {
  const w = results.find((r) => r.mode === 'workers');
  const i = results.find((r) => r.mode === 'inline');
  if (!w) return [];
  const out: Figure[] = [figure({
    id: 'storm.lost',
    measure: `64-byte frames lost at ${opts.rate / 1000} kpps during a control-plane storm (reload of ${opts.routes} routes, ${opts.requests} requests in one write, a ${opts.changes}-change transaction)`,
    unit: 'frames', better: 'lower',
    vipr: { label: w.label, value: w.lost, bound: 'exact' },
    ...(i ? { anchor: { label: i.label, value: i.lost, bound: 'exact' as const, atLimit: true, why: 'the same storm, the same stream, the data plane on the main thread' } } : {}),
    target: '0',
  }, { ratio: false })];
  if (w.before.p99 !== null && w.during.p99 !== null) {
    out.push(figure({
      id: 'storm.ping-p99',
      measure: 'ping RTT p99 through vipr during the storm, against before it (same run)',
      unit: 'µs', better: 'lower',
      vipr: { label: `${w.label}, during the storm`, value: w.during.p99, bound: 'exact' },
      anchor: { label: `${w.label}, before the storm`, value: w.before.p99, bound: 'exact', atLimit: true, why: 'the same vipr, the same stream, 200 pings before the storm' },
      target: '≤ 2× before',
    }));
  }
  return out;
}

async function main(): Promise<number> {
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`storm: ${refusal}\n`);
    return 2;
  }
  const args = process.argv.slice(2);
  const value = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const opts: Options = {
    rate: numberArg('--rate', value('rate') ?? '300000', 1000, 5_000_000),
    seconds: numberArg('--seconds', value('seconds') ?? '20', 10, 600),
    routes: numberArg('--routes', value('routes') ?? '200000', 0, 2_000_000),
    requests: numberArg('--requests', value('requests') ?? '5000', 1, 1_000_000),
    changes: numberArg('--changes', value('changes') ?? '10000', 1, 1_000_000),
    modes: value('modes') ? listArg('--modes', value('modes'), MODES) : [...MODES],
    out: value('out'),
  };
  teardownOnExit('storm');
  const bench = new BenchRun('storm');
  const results: ModeResult[] = [];
  for (const mode of opts.modes) {
    process.stdout.write(`== ${LABEL[mode]}\n`);
    const r = await runMode(mode, opts, (s) => process.stdout.write(`${s}\n`));
    results.push(r);
    process.stdout.write(`   sent ${r.sent}, lost ${r.lost}; ping p50/p99 before ${r.before.p50}/${r.before.p99} µs, during ${r.during.p50}/${r.during.p99} µs (${r.during.lost} unanswered)\n`);
  }
  const file = await bench.write(figuresOf(results, opts), { options: opts, results }, opts.out);
  process.stdout.write(`results: ${file}\n`);
  return 0;
}

runIfMain(import.meta.url, 'storm', main);
