// Helpers for lab tests: bring up the article's network in network namespaces
// (lab/lab.sh), run commands inside them, and always tear it down again.
//
//   const lab = await labUp({ kernelRouter: true });
//   afterAll(() => lab.down());
//   const r = await lab.exec('client', ['curl', '-s', 'http://192.168.1.33/']);
//   const cap = spawnIn(lab, 'router', ['tcpdump', '-ni', 'lan0']);   // killed by lab.down()
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';

export type LabNodeName = 'client' | 'router' | 'switch' | 'web1' | 'web2' | 'web3' | 'web4';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Lab {
  prefix: string;
  ns(name: LabNodeName): string;
  exec(name: LabNodeName, cmd: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  down(): Promise<void>;
}

export interface LabUpOptions {
  prefix?: string;
  kernelRouter?: boolean;
}

/** Repository root and the lab script, resolved from this file's location. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const LAB_SH = fileURLToPath(new URL('../../lab/lab.sh', import.meta.url));

const NAMES: readonly LabNodeName[] = ['client', 'router', 'switch', 'web1', 'web2', 'web3', 'web4'];
const PREFIX_RE = /^[a-z][a-z0-9]{0,7}$/;

/** Exit code reported when a command is killed for exceeding its timeout (like timeout(1)). */
export const TIMEOUT_CODE = 124;

function run(file: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        let code = 0;
        if (err) {
          const e = err as Error & { code?: number | string | null; killed?: boolean; signal?: NodeJS.Signals | null };
          if (e.killed) code = TIMEOUT_CODE;
          else if (typeof e.code === 'number') code = e.code;
          else if (e.signal) code = 128 + (osConstants.signals[e.signal] ?? 0);
          else code = 127; // could not start (ENOENT, ...)
          if (!stderr && typeof e.code === 'string') stderr = e.message;
        }
        resolve({ code, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') });
      },
    );
  });
}

/** Run `bash lab/lab.sh ARGS...` (e.g. ['status', '--prefix', p]). Never throws. */
export function runLab(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
  return run('bash', [LAB_SH, ...args], timeoutMs);
}

function randomPrefix(): string {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = 't';
  for (let i = 0; i < 5; i++) s += abc[randomInt(abc.length)];
  return s;
}

// ---- bookkeeping: labs still up and processes spawned into them ----------

interface LabState {
  prefix: string;
  procs: Set<ChildProcess>;
  isDown: boolean;
}

const liveLabs = new Map<string, LabState>();
let exitHookInstalled = false;

function syncTeardownAll(): void {
  for (const st of liveLabs.values()) {
    for (const p of st.procs) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    try {
      execFileSync('bash', [LAB_SH, 'down', '--prefix', st.prefix], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* best effort */
    }
    st.isDown = true;
  }
  liveLabs.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', syncTeardownAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      syncTeardownAll();
      // If nobody else handles the signal, restore the default behaviour (die by it).
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function nsName(prefix: string, name: LabNodeName): string {
  if (!NAMES.includes(name)) throw new Error(`unknown lab node '${name}'`);
  return `${prefix}-${name}`;
}

async function killProc(p: ChildProcess, graceMs = 2000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  try {
    p.kill('SIGTERM');
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
  }
}

/**
 * Build the lab (`lab.sh up`). Throws with lab.sh's message if it fails.
 * The default prefix is 't' + 5 random [a-z0-9], so parallel runs never collide.
 */
export async function labUp(opts: LabUpOptions = {}): Promise<Lab> {
  const prefix = opts.prefix ?? randomPrefix();
  if (!PREFIX_RE.test(prefix)) throw new Error(`bad lab prefix '${prefix}' (must match ${PREFIX_RE})`);
  installExitHook();
  const state: LabState = { prefix, procs: new Set(), isDown: false };
  // Register before `up` so a crash half-way through still gets cleaned up on exit.
  liveLabs.set(prefix, state);

  const args = ['up', '--prefix', prefix];
  if (opts.kernelRouter) args.push('--kernel-router');
  const r = await runLab(args, 90_000);
  if (r.code !== 0) {
    await runLab(['down', '--prefix', prefix], 60_000);
    liveLabs.delete(prefix);
    state.isDown = true;
    const msg = (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`).split('\n').pop();
    throw new Error(`lab up (${prefix}) failed: ${msg}`);
  }

  let downing: Promise<void> | undefined;
  const lab: Lab & { state: LabState } = {
    prefix,
    state,
    ns: (name) => nsName(prefix, name),
    exec: (name, cmd, o = {}) => {
      if (cmd.length === 0) return Promise.reject(new Error('exec: empty command'));
      return run('ip', ['netns', 'exec', nsName(prefix, name), ...cmd], o.timeoutMs ?? 30_000);
    },
    down: () => {
      if (!downing) {
        downing = (async () => {
          await Promise.all([...state.procs].map((p) => killProc(p)));
          state.procs.clear();
          const d = await runLab(['down', '--prefix', prefix], 60_000);
          liveLabs.delete(prefix);
          state.isDown = true;
          if (d.code !== 0) throw new Error(`lab down (${prefix}) failed: ${d.stderr.trim() || d.stdout.trim()}`);
        })();
      }
      return downing;
    },
  };
  return lab;
}

/**
 * Start a long-running process inside a lab namespace (daemon, tcpdump, ...).
 * `ip netns exec` execs in place, so the child's pid is the command's pid.
 * The lab remembers it and kills it (TERM, then KILL) in lab.down().
 * Default stdio: ['ignore', 'pipe', 'pipe'].
 */
export function spawnIn(lab: Lab, name: LabNodeName, cmd: string[], opts: SpawnOptions = {}): ChildProcess {
  if (cmd.length === 0) throw new Error('spawnIn: empty command');
  const state = (lab as Lab & { state?: LabState }).state ?? liveLabs.get(lab.prefix);
  if (!state || state.isDown) throw new Error(`spawnIn: lab ${lab.prefix} is not up`);
  const child = spawn('ip', ['netns', 'exec', lab.ns(name), ...cmd], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  state.procs.add(child);
  child.once('exit', () => state.procs.delete(child));
  child.once('error', () => state.procs.delete(child));
  return child;
}

/** Poll `fn` until it returns a truthy value or `timeoutMs` passes; returns the last value. */
export async function waitFor<T>(fn: () => Promise<T> | T, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= end) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
