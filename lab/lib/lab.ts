// The lab (lab/lab.sh: the article's network in namespaces) as the lab
// benches and the measurements shared with the lab tests use it: run and
// start commands in its namespaces, bring one up and always take it down,
// start vipr in it and wait until it has resolved its servers, and the
// variants of the lab's config a measurement runs vipr with.

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { asGroup, killNow, onLines, readyLine, REPO_ROOT, run, sleep, stopChild, type ExecResult } from './process.js';

export const LAB_SH = join(REPO_ROOT, 'lab/lab.sh');
export const VIPR_CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

/** The lab's namespaces; a pair (`lab.sh up --routers 2`) has upstream, router1 and router2 instead of router. */
export type LabNode = 'client' | 'router' | 'switch' | 'web1' | 'web2' | 'web3' | 'web4' | 'upstream' | 'router1' | 'router2';

/** What a measurement needs from a lab: run and start commands in its namespaces. */
export interface TrialLab {
  prefix: string;
  /** Start a long-running command in a namespace; the lab kills it when it goes down. */
  spawn(node: LabNode, cmd: string[], opts?: SpawnOptions): ChildProcess;
  exec(node: LabNode, cmd: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
}

/** A lab this process brought up: `down` stops what it started there and removes it (once). */
export interface OwnedLab extends TrialLab {
  down(): Promise<void>;
}

/** The namespace of a lab node. */
export const netnsOf = (prefix: string, node: LabNode): string => `${prefix}-${node}`;
/** Where lab.sh keeps a lab's files: its vipr config, control socket, state, the web servers' pids. */
export const labRunDir = (prefix: string): string => `/run/vipr-lab/${prefix}`;
/** The lab's daemon config, as lab.sh writes it (lab/vipr.yaml with the lab's own socket and state file). */
export const labConfigPath = (prefix: string): string => `${labRunDir(prefix)}/vipr.yaml`;
export const labSocketPath = (prefix: string): string => `${labRunDir(prefix)}/vipr.sock`;

/**
 * Commands in the namespaces of lab PREFIX (up or not, ours or not); what
 * `spawn` starts is added to `procs`. A child spawned with `detached: true`
 * leads a process group of its own, and is stopped as a group.
 */
export function labFor(prefix: string, procs: Set<ChildProcess>): TrialLab {
  return {
    prefix,
    spawn: (node, cmd, opts = {}) => {
      const child = spawn('ip', ['netns', 'exec', netnsOf(prefix, node), ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      if (opts.detached) asGroup(child);
      procs.add(child);
      child.once('exit', () => procs.delete(child));
      child.once('error', () => procs.delete(child));
      return child;
    },
    exec: (node, cmd, o = {}) => run('ip', ['netns', 'exec', netnsOf(prefix, node), ...cmd], o.timeoutMs ?? 30_000),
  };
}

/** Labs up now, with the processes started in them: what `teardownAllSync` removes. */
const liveLabs = new Map<string, Set<ChildProcess>>();

/** Kills every process started in a lab this process brought up and takes every such lab down (for exit and signal handlers). */
export function teardownAllSync(): void {
  for (const [prefix, procs] of liveLabs) {
    for (const p of procs) killNow(p);
    try {
      execFileSync('bash', [LAB_SH, 'down', '--prefix', prefix], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* best effort */
    }
  }
  liveLabs.clear();
}

/** From here on, an exit or a SIGINT/SIGTERM/SIGHUP takes every lab this process made down first (`also` runs too). */
export function teardownOnExit(name: string, also: () => void = () => undefined): void {
  const all = () => {
    teardownAllSync();
    also();
  };
  process.on('exit', all);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`${name}: ${sig}: tearing the labs down\n`);
      all();
      process.exit(130);
    });
  }
}

/**
 * `lab/lab.sh up --prefix PREFIX` (with --kernel-router: the kernel forwards);
 * throws with lab.sh's last line if it fails (and takes the half-made lab down).
 */
export async function bringLabUp(prefix: string, opts: { kernelRouter?: boolean; routers?: 1 | 2 } = {}): Promise<OwnedLab> {
  const procs = new Set<ChildProcess>();
  liveLabs.set(prefix, procs); // before `up`: a half-built lab is removed too
  const args = [...(opts.kernelRouter ? ['--kernel-router'] : []), ...(opts.routers === 2 ? ['--routers', '2'] : [])];
  const up = await run('bash', [LAB_SH, 'up', '--prefix', prefix, ...args], 120_000);
  if (up.code !== 0) {
    await run('bash', [LAB_SH, 'down', '--prefix', prefix], 60_000);
    liveLabs.delete(prefix);
    throw new Error(`lab up ${prefix} failed: ${(up.stderr.trim() || up.stdout.trim()).split('\n').pop()}`);
  }
  let downing: Promise<void> | undefined;
  return {
    ...labFor(prefix, procs),
    down: () =>
      (downing ??= (async () => {
        await Promise.all([...procs].map((p) => stopChild(p, 2000)));
        const d = await run('bash', [LAB_SH, 'down', '--prefix', prefix], 60_000);
        liveLabs.delete(prefix);
        if (d.code !== 0) throw new Error(`lab down ${prefix} failed: ${d.stderr.trim()}`);
      })()),
  };
}

/** A lab prefix nobody else uses: `stem` (a letter or three) and random base-36 digits, at most 8 characters in all. */
export function randomPrefix(stem: string): string {
  const digits = 8 - stem.length;
  return `${stem}${Math.floor(Math.random() * 36 ** digits).toString(36).padStart(digits, '0')}`;
}

export interface StartedVipr {
  child: ChildProcess;
  /** the command it runs (in the router namespace) */
  command: string[];
  /** its output lines, the first 5000 */
  logs: string[];
}

/**
 * Starts `vipr run --config CONFIG` in the lab's router namespace (node with
 * `nodeFlags` first, e.g. --cpu-prof) and waits (up to 20 s) for its `ready:`
 * line; every output line goes to `onLine` too. Throws with the log tail if it
 * exits or is not ready in time.
 */
export async function startViprIn(
  lab: TrialLab, config: string, onLine: (line: string) => void = () => undefined, nodeFlags: string[] = [], node: LabNode = 'router',
): Promise<StartedVipr> {
  const command = [process.execPath, ...nodeFlags, VIPR_CLI, 'run', '--config', config];
  const child = lab.spawn(node, command, { cwd: REPO_ROOT });
  const logs: string[] = [];
  const ready = readyLine(child, (text) => text.includes('"msg":"ready:'), 20_000);
  const line = (text: string) => {
    if (logs.length < 5000) logs.push(text);
    onLine(text);
    ready.line(text);
  };
  onLines(child.stdout, line);
  onLines(child.stderr, line);
  const outcome = await ready.outcome;
  if (outcome !== 'ok') {
    await stopChild(child, 1000);
    throw new Error(`vipr ${outcome === 'exited' ? 'exited' : 'not ready after 20 s'}:\n${logs.slice(-15).join('\n')}`);
  }
  return { child, command: ['ip', 'netns', 'exec', netnsOf(lab.prefix, node), ...command], logs };
}

/** `vipr ctl --json --socket SOCKET ARGS...` in the router namespace, parsed; undefined if it failed. */
export async function viprCtlJson<T>(lab: TrialLab, socket: string, args: string[]): Promise<T | undefined> {
  const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, ...args]);
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    return undefined;
  }
}

/**
 * Before a measurement: vipr has resolved `servers` (it ARPs for its servers
 * at start) and, where it health-checks them, finds them up. Throws after 15 s
 * with what `server show` says.
 */
export async function waitViprNeighbors(lab: TrialLab, socket: string, servers: readonly string[] = ['web1', 'web2']): Promise<void> {
  const end = Date.now() + 15_000;
  let last = '';
  while (Date.now() < end) {
    const r = await lab.exec('router', [process.execPath, VIPR_CLI, 'ctl', '--json', '--socket', socket, 'server', 'show']);
    last = r.stdout.trim() || r.stderr.trim();
    try {
      const shown = JSON.parse(r.stdout) as Array<{ name: string; arp?: string; state?: string }>;
      const ready = (n: string) => {
        const s = shown.find((x) => x.name === n);
        return s !== undefined && s.arp === 'reachable' && (s.state === undefined || s.state === 'up');
      };
      if (servers.every(ready)) return;
    } catch {
      /* not yet */
    }
    await sleep(200);
  }
  throw new Error(`vipr: ${servers.join(' and ')} not reachable and up after 15 s: ${last.replace(/\s+/g, ' ').slice(0, 800)}`);
}

/**
 * The lab's vipr.yaml without the servers' health checks (and with `io` if
 * given), written next to it as vipr-nochecks.yaml (gone with the lab). The
 * kernel has no health checks; with them, a machine too busy to answer an
 * HTTP check in time takes servers down and withdraws or moves their routes
 * in the middle of a measurement. Servers without checks are always up.
 */
export function configWithoutHealthChecks(prefix: string, io?: string): string {
  const dir = labRunDir(prefix);
  const doc = YAML.parseDocument(readFileSync(join(dir, 'vipr.yaml'), 'utf8'));
  if (io) doc.set('io', io);
  const servers = doc.get('servers');
  if (YAML.isMap(servers)) {
    for (const pair of servers.items) {
      const name = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      doc.deleteIn(['servers', name, 'checks']);
    }
  }
  const out = join(dir, 'vipr-nochecks.yaml');
  writeFileSync(out, `# ${dir}/vipr.yaml without the servers' health checks${io ? `, io: ${io}` : ''}\n${doc.toString()}`);
  return out;
}

/** The port backend (`io:`) a vipr config file selects ('ring', the schema's default, when it does not say). */
export function viprIoOf(configPath: string): string {
  const io = YAML.parse(readFileSync(configPath, 'utf8'))?.io;
  return typeof io === 'string' ? io : 'ring';
}

/** The message of a vipr log line that reports an event (`event: server web1 up -> down ...`), else undefined. */
export function viprEventOf(line: string): string | undefined {
  if (!line.includes('"msg":"event: ')) return undefined;
  try {
    return String((JSON.parse(line) as { msg?: unknown }).msg);
  } catch {
    return line.slice(0, 300);
  }
}
