// How long one `vipr ctl` call takes, wall clock, from exec to exit: the
// goal is at most 120 ms for `vipr ctl route replace` (the article's shell
// script of reroutes should not wait half a second per route). A bare
// `node -e 0`, measured in the same run, is the anchor: what no Node program
// can go below on this box.
//
//   npx tsc -p tsconfig.json && node dist/bench/ctl-latency.js [--runs 30] [--warmup 3] [--out FILE]
//
// The daemon's side is the real ControlServer and ControlService on a socket
// in a temp dir, in this process, around the article's router in memory
// (test/fixtures/article-router.ts) with its state file beside the socket: a route
// replace is validated, saved (fsync, rename) and applied as in the daemon.
// Commands are timed with hyperfine when it is installed (`apt-get install
// hyperfine`), otherwise with a loop of our own that spawns each run and
// waits for its exit; the report says which.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { ControlServer } from '../src/control/server.js';
import { ControlService } from '../src/control/service.js';
import { StateStore } from '../src/control/state-store.js';
import { articleControlContext, articleRouter } from '../test/fixtures/article-router.js';
import { numberArg, runIfMain } from './lib/program.js';
import { VIPR_CLI } from '../lab/lib/lab.js';

/** The goal for `vipr ctl route replace`, wall clock, on an idle box. */
const GOAL_MS = 120;

interface Timed {
  name: string;
  argv: string[];
  /** Wall time of each run, ms. */
  times: number[];
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** Times each command `runs` times after `warmup` untimed runs, with hyperfine. */
async function withHyperfine(commands: Omit<Timed, 'times'>[], runs: number, warmup: number, dir: string): Promise<Timed[]> {
  const out = join(dir, 'hyperfine.json');
  const args = ['-N', '--style', 'none', '--warmup', String(warmup), '--runs', String(runs), '--export-json', out];
  for (const command of commands) args.push('-n', command.name, command.argv.map(shellWord).join(' '));
  // Asynchronous: this process serves the control socket meanwhile.
  const code = await new Promise<number | null>((resolve) => spawn('hyperfine', args, { stdio: 'inherit' }).on('exit', resolve));
  if (code !== 0) throw new Error(`hyperfine exited with ${code}`);
  const results = (JSON.parse(await readFile(out, 'utf8')) as { results: { times: number[] }[] }).results;
  return commands.map((command, i) => ({ ...command, times: results[i].times.map((seconds) => seconds * 1000) }));
}

/** The same without hyperfine: spawn, wait for exit, one run at a time. */
async function withOwnLoop(commands: Omit<Timed, 'times'>[], runs: number, warmup: number): Promise<Timed[]> {
  const once = (argv: string[]) => new Promise<number>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${argv.join(' ')} exited with ${code}`))));
  });
  const timed: Timed[] = [];
  for (const command of commands) {
    for (let i = 0; i < warmup; i++) await once(command.argv);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await once(command.argv));
    timed.push({ ...command, times });
  }
  return timed;
}

function shellWord(word: string): string {
  return /^[\w./:=-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

async function main(): Promise<number> {
  const flags = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) flags.set(argv[i], argv[i + 1]);
  for (const flag of flags.keys()) {
    if (!['--runs', '--warmup', '--out'].includes(flag)) throw new Error('usage: node dist/bench/ctl-latency.js [--runs 30] [--warmup 3] [--out FILE]');
  }
  const runs = numberArg('--runs', flags.get('--runs') ?? '30', 1, 10_000);
  const warmup = numberArg('--warmup', flags.get('--warmup') ?? '3', 0, 1000);

  const dir = await mkdtemp(join(tmpdir(), 'vipr-ctl-latency-'));
  const log = pino({ level: 'silent' });
  const article = articleRouter({}, { keepSent: false });
  article.resolveAll();
  const socket = join(dir, 'vipr.sock');
  const service = new ControlService(articleControlContext(article.router, new StateStore(join(dir, 'state.json')), log));
  const control = new ControlServer({ socket, mode: '0600' }, service, log);
  await control.start();
  try {
    const ctl = (...words: string[]) => [process.execPath, VIPR_CLI, 'ctl', '--socket', socket, ...words];
    const commands = [
      { name: 'node -e 0', argv: [process.execPath, '-e', '0'] },
      { name: 'vipr ctl ping', argv: ctl('ping') },
      { name: 'vipr ctl route replace 192.168.1.32/27 via web2', argv: ctl('route', 'replace', '192.168.1.32/27', 'via', 'web2') },
      { name: 'vipr ctl --json route show', argv: ctl('--json', 'route', 'show') },
    ];
    const hyperfine = spawnSync('hyperfine', ['--version'], { stdio: 'ignore' }).status === 0;
    const timed = hyperfine ? await withHyperfine(commands, runs, warmup, dir) : await withOwnLoop(commands, runs, warmup);

    const anchor = timed[0].times.slice().sort((a, b) => a - b);
    console.log(`ctl-latency: ${new Date().toISOString()}, node ${process.version}, ${runs} runs each after ${warmup} warm-up, timed by ${hyperfine ? 'hyperfine' : 'its own loop (hyperfine not installed)'}`);
    console.log('command                                           median    p90      min   median over node -e 0');
    const rows = timed.map((command) => {
      const sorted = command.times.slice().sort((a, b) => a - b);
      const row = { name: command.name, medianMs: quantile(sorted, 0.5), p90Ms: quantile(sorted, 0.9), minMs: sorted[0] };
      console.log(`${command.name.padEnd(48)} ${row.medianMs.toFixed(1).padStart(7)} ${row.p90Ms.toFixed(1).padStart(7)} ${row.minMs.toFixed(1).padStart(7)}   ${(row.medianMs - quantile(anchor, 0.5)).toFixed(1).padStart(7)} ms`);
      return row;
    });
    const replace = rows[2];
    console.log(`goal: vipr ctl route replace <= ${GOAL_MS} ms: median ${replace.medianMs.toFixed(1)} ms, ${replace.medianMs <= GOAL_MS ? 'met' : 'MISSED'}` +
      ' (on an idle box only: read the load average before believing it)');
    const out = flags.get('--out');
    if (out) await writeFile(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, timer: hyperfine ? 'hyperfine' : 'loop', runs, warmup, goalMs: GOAL_MS, rows, times: timed }, null, 2) + '\n');
    return 0;
  } finally {
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, 'ctl-latency', main);
