// The soak (issue 9): vipr for --minutes (10) under a steady 64-byte stream at
// --rate (half the zero-loss rate bench/forwarding.ts measured), with
//   a reroute every second   192.168.1.32/27 (the stream's VIP) between
//                            `via web1,web2` and `via web2,web1` (vipr ctl)
//   a link flap every 10 s   web3's eth0 down for 5 s, up for 5 s (web3
//                            carries 192.168.1.96/27: its health checks fail
//                            it over to web4 and back)
// with the lab's health checks on. Sampled every 10 s: vipr's resident memory
// (VmRSS), its open file descriptors and threads. Measured: frames the stream
// lost (sent by the generator, not counted at web1 or web2: the flaps are on
// another server's link, so none is expected), RSS and fd drift from the
// first minute (warm) to the end.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/soak.js --rate 150000 [--minutes 10] [--out FILE]
// Writes bench/results/soak-TIMESTAMP.json.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { bringLabUp, labConfigPath, labRunDir, labSocketPath, netnsOf, randomPrefix, startViprIn, teardownOnExit, VIPR_CLI, waitViprNeighbors } from '../lab/lib/lab.js';
import { run, sleep, stopChild } from '../lab/lib/process.js';
import { buildPace, paceCommand, type PaceReport } from './forwarding/generators.js';
import { ROUTER_CPU } from './forwarding/modes.js';
import { nft } from './forwarding/routers.js';
import { labBenchRefusal, numberArg, round, runIfMain } from './lib/program.js';
import { BenchRun, figure } from './lib/results.js';

const SINK = `table netdev vsoak {
  chain sink {
    type filter hook ingress device "eth0" priority 0;
    udp dport 9 counter drop
  }
}
`;

interface Sample {
  atS: number;
  rssMb: number;
  fds: number;
  threads: number;
}

function sampleOf(pid: number, atS: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { atS: round(atS, 1), rssMb: round(field('VmRSS') / 1024, 1), fds: readdirSync(`/proc/${pid}/fd`).length, threads: field('Threads') };
}

async function counted(prefix: string, node: 'web1' | 'web2'): Promise<number> {
  const r = await run('ip', ['netns', 'exec', netnsOf(prefix, node), 'nft', '-j', 'list', 'table', 'netdev', 'vsoak'], 10_000);
  return Number(/"packets":\s*(\d+)/.exec(r.stdout)?.[1] ?? 0);
}

async function main(): Promise<number> {
  const refusal = labBenchRefusal();
  if (refusal) {
    process.stderr.write(`soak: ${refusal}\n`);
    return 2;
  }
  const args = process.argv.slice(2);
  const value = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const rate = numberArg('--rate', value('rate') ?? '150000', 1000, 5_000_000);
  const minutes = numberArg('--minutes', value('minutes') ?? '10', 1, 600);
  const out = value('out');
  teardownOnExit('soak');
  const bench = new BenchRun('soak');
  const lab = await bringLabUp(randomPrefix('sk'));
  const samples: Sample[] = [];
  let reroutes = 0;
  let rerouteFailures = 0;
  let flaps = 0;
  try {
    const config = `${labRunDir(lab.prefix)}/soak.yaml`;
    writeFileSync(config, readFileSync(labConfigPath(lab.prefix), 'utf8').replace(/^ {2}# cpu: 1$/m, `  cpu: ${ROUTER_CPU}`));
    for (const web of ['web1', 'web2'] as const) await nft(lab, web, SINK);
    const vipr = await startViprIn(lab, config);
    const pid = vipr.child.pid!;
    const socket = labSocketPath(lab.prefix);
    await waitViprNeighbors(lab, socket, ['web1', 'web2', 'web3', 'web4']);
    const seconds = minutes * 60;
    const generator = lab.exec('client', paceCommand(await buildPace(), 60, rate, { count: rate * seconds }), { timeoutMs: (seconds + 120) * 1000 });
    const t0 = performance.now();
    const elapsed = () => (performance.now() - t0) / 1000;
    const ctl = (words: string[]) => lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--socket', socket, ...words], { timeoutMs: 30_000 });
    let tick = 0;
    while (elapsed() < seconds) {
      tick++;
      const order = tick % 2 === 0 ? 'web1,web2' : 'web2,web1';
      const r = await ctl(['route', 'replace', '192.168.1.32/27', 'via', order]);
      reroutes++;
      if (r.code !== 0) rerouteFailures++;
      if (tick % 10 === 0) {
        await lab.exec('web3', ['ip', 'link', 'set', 'eth0', 'down']);
        flaps++;
      } else if (tick % 10 === 5) {
        await lab.exec('web3', ['ip', 'link', 'set', 'eth0', 'up']);
        await lab.exec('web3', ['ip', 'route', 'replace', 'default', 'via', '192.168.1.1']);
      }
      if (tick % 10 === 0) {
        samples.push(sampleOf(pid, elapsed()));
        const s = samples[samples.length - 1];
        process.stdout.write(`${s.atS}s rss ${s.rssMb} MB fds ${s.fds} threads ${s.threads}\n`);
      }
      const next = tick - elapsed();
      if (next > 0) await sleep(next * 1000);
    }
    const genRun = await generator;
    const line = genRun.stdout.split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`pace failed: ${genRun.stderr.trim()}`);
    const report = JSON.parse(line) as PaceReport;
    await sleep(1000);
    const received = (await counted(lab.prefix, 'web1')) + (await counted(lab.prefix, 'web2'));
    const stats = await ctl(['--json', 'stats']);
    await stopChild(vipr.child, 8000);
    const warm = samples.find((s) => s.atS >= 60) ?? samples[0];
    const last = samples[samples.length - 1];
    const raw = { rate, minutes, sent: report.sent, received, lost: report.sent - received, generator: report, reroutes, rerouteFailures, flaps, samples, stats: stats.stdout ? JSON.parse(stats.stdout) : null };
    process.stdout.write(`sent ${report.sent}, received ${received}, lost ${raw.lost}; ${reroutes} reroutes (${rerouteFailures} failed), ${flaps} flaps; RSS ${warm.rssMb} -> ${last.rssMb} MB, fds ${warm.fds} -> ${last.fds}\n`);
    const figures = [
      figure({
        id: 'soak.lost', measure: `frames lost in a ${minutes}-minute soak at ${rate / 1000} kpps (a reroute a second, a server link flap every 10 s)`,
        unit: 'frames', better: 'lower', vipr: { label: 'vipr, lab config (health checks on)', value: raw.lost, bound: 'exact' }, target: '0',
      }, { ratio: false }),
      figure({
        id: 'soak.rss-drift', measure: `vipr's resident memory, from the first minute to the end of the soak`,
        unit: 'MB', better: 'lower', vipr: { label: `${warm.rssMb} MB at ${warm.atS} s -> ${last.rssMb} MB at ${last.atS} s`, value: round(last.rssMb - warm.rssMb, 1), bound: 'exact' },
        target: 'within 10 MB',
      }, { ratio: false }),
      figure({
        id: 'soak.fd-drift', measure: `vipr's open file descriptors, from the first minute to the end of the soak`,
        unit: 'fds', better: 'lower', vipr: { label: `${warm.fds} -> ${last.fds}`, value: last.fds - warm.fds, bound: 'exact' }, target: '0',
      }, { ratio: false }),
    ];
    process.stdout.write(`results: ${await bench.write(figures, raw, out)}\n`);
    return 0;
  } finally {
    await lab.down();
  }
}

runIfMain(import.meta.url, 'soak', main);
