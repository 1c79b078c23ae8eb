// Processes, for everything that drives the lab (the lab tests in test/lab and
// the lab benches in bench/): run a command to its end, read a child's output
// line by line, wait for it to say it is ready, stop it (its whole process
// group when it was started as one), pin it to a CPU or give it real-time
// priority, and build the lab's small C tools once.

import { execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the nearest directory above this file with vipr's package.json (works from lab/lib and dist/lab/lib). */
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
    if (up === dir) throw new Error('lab: cannot find the repository root (package.json of vipr)');
    dir = up;
  }
})();

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** An ExecResult with when it ran: wall time (ms) and its midpoint (performance.now), for counters read at an instant. */
export interface TimedResult extends ExecResult {
  ms: number;
  mid: number;
}

/** Exit code of a command killed for running over its time (like timeout(1)). */
export const TIMEOUT_CODE = 124;

/**
 * Runs a command to its end. Never rejects: exit code TIMEOUT_CODE when it ran
 * over `timeoutMs` (and was killed), 128 + N when signal N ended it, 127 when
 * it could not start.
 */
export function run(file: string, args: string[], timeoutMs = 60_000): Promise<TimedResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const t1 = performance.now();
      let code = 0;
      if (err) {
        const e = err as Error & { code?: number | string | null; killed?: boolean; signal?: NodeJS.Signals | null };
        if (e.killed) code = TIMEOUT_CODE;
        else if (typeof e.code === 'number') code = e.code;
        else if (e.signal) code = 128 + (osConstants.signals[e.signal] ?? 0);
        else code = 127;
        if (!stderr && typeof e.code === 'string') stderr = e.message;
      }
      resolve({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? ''), ms: t1 - t0, mid: (t0 + t1) / 2 });
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

/**
 * Children started as the leader of a process group of their own (spawn with
 * `detached: true`): a signal goes to the whole group, so programs that fork
 * (trafgen does) stop with them. Register them with `asGroup`.
 */
const groupLeaders = new WeakSet<ChildProcess>();

/** From now on `stopChild` and `killNow` signal the child's whole process group (it must have been spawned with `detached: true`). */
export function asGroup(child: ChildProcess): ChildProcess {
  groupLeaders.add(child);
  return child;
}

function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (groupLeaders.has(child) && child.pid !== undefined) {
    try {
      process.kill(-child.pid, sig);
      return;
    } catch {
      /* the group is gone: try the child itself */
    }
  }
  try {
    child.kill(sig);
  } catch {
    /* gone */
  }
}

/** SIGKILL now, without waiting (for exit handlers). */
export function killNow(child: ChildProcess): void {
  signal(child, 'SIGKILL');
}

/** `sig` (SIGTERM unless said), then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stopChild(child: ChildProcess, graceMs = 3000, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = exited(child);
  signal(child, sig);
  let t: NodeJS.Timeout | undefined;
  const late = await Promise.race([done.then(() => false), new Promise<boolean>((r) => (t = setTimeout(() => r(true), graceMs)))]);
  clearTimeout(t);
  if (late) {
    signal(child, 'SIGKILL');
    await Promise.race([done, sleep(2000)]);
  }
}

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
 * Waits (15 s at most) for a child to print a line with `"listening"` (the
 * lab's receivers do); keeps every stdout line in `lines` and stderr in
 * `stderr()`. If it exits or stays silent, stops it and throws with `what`
 * and its stderr.
 */
export async function listeningChild(child: ChildProcess, what: string): Promise<{ lines: string[]; stderr: () => string }> {
  return announcedChild(child, what, (line) => line.includes('"listening"'), 15_000);
}

/** As listeningChild, for any announcement: `ready` holds for the line that says the child is up. */
export async function announcedChild(child: ChildProcess, what: string, ready: (line: string) => boolean, timeoutMs: number): Promise<{ lines: string[]; stderr: () => string }> {
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (c: string) => (stderr += c));
  const announced = readyLine(child, ready, timeoutMs);
  onLines(child.stdout, (line) => {
    lines.push(line);
    announced.line(line);
  });
  const outcome = await announced.outcome;
  if (outcome !== 'ok') {
    await stopChild(child, 500);
    throw new Error(`${what} ${outcome === 'exited' ? 'exited' : 'did not start'}: ${stderr.trim()}`);
  }
  return { lines, stderr: () => stderr };
}

/** Pin every thread of a process to one CPU (taskset -a -p -c). False if that failed (e.g. a 1-CPU box). */
export async function pinToCpu(pid: number, cpu: number): Promise<boolean> {
  if (cpu >= cpus().length) return false;
  const r = await run('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], 10_000);
  return r.code === 0;
}

/**
 * Run a process's main thread (the one whose id is the pid: node's event loop,
 * i.e. vipr's data plane) at SCHED_FIFO `priority` (chrt -f -p). Only that one:
 * V8's compiler and GC helper threads at the same FIFO priority on the same CPU
 * would keep the event loop off it for as long as they run.
 */
export async function makeRealtime(pid: number, priority = 20): Promise<boolean> {
  const r = await run('chrt', ['-f', '-p', String(priority), String(pid)], 10_000);
  return r.code === 0;
}

const compiled = new Map<string, Promise<string>>();

/**
 * Compiles a C source file of the repository (`path` from its root) with
 * `cc -O2 -Wall` into the temp dir, once: the binary (`vipr-NAME-HASH`)
 * carries the source's hash, so later runs reuse it.
 */
export function compileC(name: string, path: string, options: { libraries?: string[] } = {}): Promise<string> {
  const source = readFileSync(join(REPO_ROOT, path));
  // Libraries are linked after the source (bench/lab/cfwd-xdp.c: -lxdp -lbpf); they count in the hash too.
  const libraries = options.libraries ?? [];
  const hash = createHash('sha256').update(source).update(libraries.join(' ')).digest('hex').slice(0, 16);
  const out = join(tmpdir(), `vipr-${name}-${hash}`);
  let binary = compiled.get(out);
  if (!binary) {
    binary = (async () => {
      if (existsSync(out)) return out;
      const src = `${out}.${process.pid}.c`;
      const tmp = `${out}.${process.pid}.tmp`;
      writeFileSync(src, source);
      const r = await run('cc', ['-O2', '-Wall', '-o', tmp, src, ...libraries], 120_000);
      rmSync(src, { force: true });
      if (r.code !== 0) {
        rmSync(tmp, { force: true });
        throw new Error(`cc -O2 ${path} failed: ${r.stderr.trim() || r.stdout.trim()}`);
      }
      renameSync(tmp, out);
      return out;
    })();
    compiled.set(out, binary);
    binary.catch(() => compiled.delete(out)); // a later call tries again
  }
  return binary;
}

/** Temp dirs in use: each is removed when its user is done with it, or when the process exits if it never is. */
const tempDirs = new Set<string>();
let tempDirsHook = false;

/** A new directory under the temp dir (`stem` then random characters), removed on exit at the latest. */
export function makeTempDir(stem: string): string {
  if (!tempDirsHook) {
    tempDirsHook = true;
    process.once('exit', removeAllTempDirs);
  }
  const dir = mkdtempSync(join(tmpdir(), stem));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

function removeAllTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
