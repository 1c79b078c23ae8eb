// What the lab benchmarks (reroute, failover, forwarding) share: where the
// repository is, reading a child process's output line by line, running and
// stopping processes, and labs brought up for a trial and always taken down.

import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root: the nearest directory above this file with vipr's package.json (works from bench/ and dist/bench/). */
export const REPO_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'vipr') return dir;
      } catch {
        /* keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: cannot find the repository root (package.json of vipr)');
    dir = up;
  }
})();

export const LAB_SH = join(REPO_ROOT, 'lab/lab.sh');
export const VIPR_CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

/** Calls `fn` for each line of a stream as it comes (a partial last line when the stream ends). */
export function onLines(stream: NodeJS.ReadableStream | null | undefined, fn: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      fn(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
  stream.on('end', () => {
    if (rest) fn(rest);
    rest = '';
  });
}

// ---- processes and labs (bench/reroute.ts and bench/failover.ts) ------------------------------

export type LabNode = 'client' | 'router' | 'switch' | 'web1' | 'web2' | 'web3' | 'web4' | 'upstream' | 'router1' | 'router2';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What a measurement needs from a lab: run and start commands in its namespaces. */
export interface TrialLab {
  prefix: string;
  /** Start a long-running command in a namespace; the lab kills it when it goes down. */
  spawn(node: LabNode, cmd: string[], opts?: SpawnOptions): ChildProcess;
  exec(node: LabNode, cmd: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
}

/** A lab the bench brought up: `down` stops what it started there and removes it (once). */
export interface BenchLab extends TrialLab {
  down(): Promise<void>;
}

/** Runs a command to its end; exit code 124 when it ran over `timeoutMs` (and was killed). Never rejects. */
export function run(file: string, args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolvePromise) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      let code = 0;
      if (err) {
        const e = err as Error & { code?: number | string | null; killed?: boolean };
        code = e.killed ? 124 : typeof e.code === 'number' ? e.code : 1;
        if (!stderr && typeof e.code === 'string') stderr = e.message;
      }
      resolvePromise({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') });
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Resolves when the child has exited (or could not start: code 127). */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => {
    child.once('exit', (code, signal) => r({ code, signal }));
    child.once('error', () => r({ code: 127, signal: null }));
  });
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves when it has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  try {
    child.kill(signal);
  } catch {
    /* gone */
  }
  let t: NodeJS.Timeout | undefined;
  const late = await Promise.race([done.then(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(true), graceMs)))]);
  clearTimeout(t);
  if (late) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([done, sleep(2000)]);
  }
}

/** Commands in the namespaces of lab PREFIX (up or not, ours or not); what `spawn` starts is added to `procs`. */
export function labFor(prefix: string, procs: Set<ChildProcess>): TrialLab {
  return {
    prefix,
    spawn: (node, cmd, opts = {}) => {
      const child = spawn('ip', ['netns', 'exec', `${prefix}-${node}`, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      procs.add(child);
      child.once('exit', () => procs.delete(child));
      child.once('error', () => procs.delete(child));
      return child;
    },
    exec: (node, cmd, o = {}) => run('ip', ['netns', 'exec', `${prefix}-${node}`, ...cmd], o.timeoutMs ?? 30_000),
  };
}

/** Labs up now, with the processes started in them: what `teardownAllSync` removes. */
const liveLabs = new Map<string, Set<ChildProcess>>();

/** Kills every process the bench started in a lab and takes every such lab down (for exit and signal handlers). */
export function teardownAllSync(): void {
  for (const [prefix, procs] of liveLabs) {
    for (const p of procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
    try {
      execFileSync('bash', [LAB_SH, 'down', '--prefix', prefix], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* best effort */
    }
  }
  liveLabs.clear();
}

/** `lab/lab.sh up --prefix PREFIX ...upArgs`; throws with lab.sh's last line if it fails (and takes the half-made lab down). */
export async function benchLabUp(prefix: string, upArgs: string[] = []): Promise<BenchLab> {
  const procs = new Set<ChildProcess>();
  liveLabs.set(prefix, procs);
  const up = await run('bash', [LAB_SH, 'up', '--prefix', prefix, ...upArgs], 120_000);
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

/**
 * Starts `vipr run --config CONFIG` in the lab's router namespace (or `node`, a router of a pair) and waits
 * (up to 20 s) for its `ready:` line; every output line goes to `onLine` too.
 * Throws with the log tail if it exits or is not ready in time.
 */
export async function startViprIn(
  lab: TrialLab, config: string, onLine: (line: string) => void = () => undefined, node: LabNode = 'router',
): Promise<{ child: ChildProcess; logs: string[] }> {
  const child = lab.spawn(node, [process.execPath, VIPR_CLI, 'run', '--config', config], { cwd: REPO_ROOT });
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
  return { child, logs };
}

/** Why a lab bench cannot run here (not root, vipr not built), or undefined. */
export function labBenchRefusal(): string | undefined {
  if (process.getuid?.() !== 0) return 'must run as root (network namespaces)';
  if (!existsSync(VIPR_CLI)) return `${VIPR_CLI} missing; build first: npx tsc -p tsconfig.json`;
  return undefined;
}

/** From here on, an exit or a SIGINT/SIGTERM/SIGHUP takes every lab the bench made down first. */
export function teardownOnExit(name: string): void {
  process.on('exit', teardownAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`${name}: ${sig}: tearing the labs down\n`);
      teardownAllSync();
      process.exit(130);
    });
  }
}

/** Runs a bench's main when its file is the script node was started with; labs down, then exit with its code. */
export function runIfMain(moduleUrl: string, name: string, main: () => Promise<number>): void {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(resolve(process.argv[1])).href) return;
  main().then(
    (code) => {
      teardownAllSync();
      process.exit(code);
    },
    (error) => {
      process.stderr.write(`${name}: ${(error as Error).stack ?? error}\n`);
      teardownAllSync();
      process.exit(1);
    },
  );
}

/** A number from a bench's command line, in min..max; throws naming the flag otherwise. */
export function numberArg(name: string, value: string | undefined, min: number, max: number): number {
  const x = Number(value);
  if (value === undefined || !Number.isFinite(x) || x < min || x > max) throw new Error(`${name} must be a number in ${min}..${max}`);
  return x;
}

const compiled = new Map<string, Promise<string>>();

/**
 * Compiles C source with `cc -O2 -Wall` into the temp dir, once: the binary
 * (`vipr-NAME-HASH`) carries the source's hash, so later runs reuse it.
 * `what` names the source in a failure message.
 */
export function compileC(name: string, what: string, source: string | Buffer): Promise<string> {
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const out = join(tmpdir(), `vipr-${name}-${hash}`);
  let binary = compiled.get(out);
  if (!binary) {
    binary = (async () => {
      if (existsSync(out)) return out;
      const src = `${out}.${process.pid}.c`;
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(src, source);
      const r = await run('cc', ['-O2', '-Wall', '-o', tmp, src], 120_000);
      rmSync(src, { force: true });
      if (r.code !== 0) {
        rmSync(tmp, { force: true });
        throw new Error(`cc -O2 ${what} failed: ${r.stderr.trim() || r.stdout.trim()}`);
      }
      renameSync(tmp, out);
      return out;
    })();
    compiled.set(out, binary);
    binary.catch(() => compiled.delete(out)); // a later call tries again
  }
  return binary;
}

/**
 * Waits for a child process to say it is ready: `outcome` resolves 'ok' once
 * `ready` holds for a line the caller passes to `line` (from its own output
 * handler), 'exited' if the child exits first, 'timeout' after `timeoutMs`.
 */
export function readyLine(child: ChildProcess, ready: (line: string) => boolean, timeoutMs: number): {
  line(text: string): void;
  outcome: Promise<'ok' | 'exited' | 'timeout'>;
} {
  let settle!: (outcome: 'ok' | 'exited' | 'timeout') => void;
  const outcome = new Promise<'ok' | 'exited' | 'timeout'>((resolve) => (settle = resolve));
  const timer = setTimeout(() => settle('timeout'), timeoutMs);
  void exited(child).then(() => settle('exited'));
  void outcome.then(() => clearTimeout(timer));
  return { line: (text) => (ready(text) ? settle('ok') : undefined), outcome };
}

/** Wait until the child's stdout has ended (its last lines are in), at most `ms`. */
export function stdoutClosed(child: ChildProcess, ms = 1000): Promise<unknown> {
  return Promise.race([new Promise((r) => (child.stdout && !child.stdout.readableEnded ? child.stdout.once('close', r) : r(undefined))), sleep(ms)]);
}

/**
 * Waits (15 s at most) for a receiver started by a bench to print a line with
 * `"listening"`; keeps every stdout line in `lines` and stderr in `stderr()`.
 * If it exits or stays silent, stops it and throws with `what` and its stderr.
 */
export async function listeningChild(child: ChildProcess, what: string): Promise<{ lines: string[]; stderr: () => string }> {
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderr += c));
  const listening = readyLine(child, (line) => line.includes('"listening"'), 15_000);
  onLines(child.stdout, (line) => {
    lines.push(line);
    listening.line(line);
  });
  const outcome = await listening.outcome;
  if (outcome !== 'ok') {
    await stopChild(child, 500);
    throw new Error(`${what} ${outcome === 'exited' ? 'exited' : 'did not start'}: ${stderr.trim()}`);
  }
  return { lines, stderr: () => stderr };
}
