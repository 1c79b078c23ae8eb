// Helpers for lab tests: bring up the article's network in network namespaces
// (lab/lab.sh), run commands inside them, and always tear it down again.
//
//   const lab = await labUp({ kernelRouter: true });
//   afterAll(() => lab.down());
//   const r = await lab.exec('client', ['curl', '-s', 'http://192.168.1.33/']);
//   const cap = spawnIn(lab, 'router', ['tcpdump', '-ni', 'lan0']);   // killed by lab.down()
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { onLines, readyLine } from '../../lab/lib/process.js';

export type LabNodeName = 'client' | 'router' | 'switch' | 'web1' | 'web2' | 'web3' | 'web4' | 'upstream' | 'router1' | 'router2';

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
  /** 2: the router pair (lab.sh up --routers 2): upstream, router1, router2 with BIRD and keepalived. */
  routers?: 1 | 2;
}

/** Repository root and the lab script, resolved from this file's location. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const LAB_SH = fileURLToPath(new URL('../../lab/lab.sh', import.meta.url));

const NAMES: readonly LabNodeName[] = ['client', 'router', 'switch', 'web1', 'web2', 'web3', 'web4', 'upstream', 'router1', 'router2'];
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
  if (opts.routers === 2) args.push('--routers', '2');
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

// ---- the daemon and captures inside a lab ---------------------------------

/** Exit code of a child: its code, or 128 + signal number when a signal ended it (like a shell). */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (osConstants.signals[signal] ?? 0) : 0);
}

/** Wait for a child to exit; resolves with its exit code (see exitCodeOf). */
function exitOf(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(exitCodeOf(child.exitCode, child.signalCode));
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(exitCodeOf(code, signal)));
    child.once('error', () => resolve(127));
  });
}

export interface ViprProcess {
  process: ChildProcess;
  /** Every line the daemon wrote (pino JSON on stderr, anything on stdout), in order. */
  logs: string[];
  /** The parsed JSON log records (lines that are not JSON are skipped). */
  records(): Array<Record<string, unknown>>;
  /** SIGTERM, wait for the exit (SIGKILL after `graceMs`), resolve with the exit code. Idempotent. */
  stop(graceMs?: number): Promise<number>;
  /** Resolves with the exit code (128 + signal number if a signal ended it) once the daemon has exited, by whatever cause. */
  exited: Promise<number>;
}

export interface StartViprOptions {
  /** Node namespace the daemon runs in (default 'router'). */
  node?: LabNodeName;
  /** How long to wait for the `ready:` line (default 15 s). */
  readyTimeoutMs?: number;
  /** Shell commands run in the daemon's namespace right before it (`sh -c 'BEFORE && exec vipr ...'`, no pause between). */
  before?: string;
}

/** The last `count` log lines, for error messages. */
function tail(lines: string[], count = 20): string {
  return lines.slice(-count).join('\n');
}

/**
 * Start `vipr run --config CONFIG` (dist/src/cli/main.js, built by tsc) inside
 * the router namespace and wait for its `ready:` log line. Throws with the log
 * tail if the daemon exits first or is not ready within the timeout (and kills it then).
 * A relative config path is taken from the repository root.
 */
/** The lab's daemon config (lab/vipr.yaml with the lab's own control socket and state file), written by `lab.sh up`. */
export function labConfigPath(lab: Lab): string {
  return `/run/vipr-lab/${lab.prefix}/vipr.yaml`;
}

/** The control socket of the lab's daemon. */
export function labSocketPath(lab: Lab): string {
  return `/run/vipr-lab/${lab.prefix}/vipr.sock`;
}

export async function startVipr(lab: Lab, configPath: string = labConfigPath(lab), opts: StartViprOptions = {}): Promise<ViprProcess> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const command = [process.execPath, 'dist/src/cli/main.js', 'run', '--config', configPath];
  const quoted = command.map((word) => `'${word.replaceAll("'", `'\\''`)}'`).join(' ');
  const child = spawnIn(lab, opts.node ?? 'router', opts.before ? ['sh', '-c', `${opts.before} && exec ${quoted}`] : command, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const isReady = (line: string): boolean => {
    try {
      const msg = (JSON.parse(line) as { msg?: unknown }).msg;
      return typeof msg === 'string' && msg.startsWith('ready:');
    } catch {
      return false;
    }
  };
  const ready = readyLine(child, isReady, readyTimeoutMs);
  const onLine = (line: string) => {
    logs.push(line);
    ready.line(line);
  };
  onLines(child.stdout, onLine);
  onLines(child.stderr, onLine);
  const exited = exitOf(child);

  let stopping: Promise<number> | undefined;
  const stop = (graceMs = 5000): Promise<number> => {
    if (!stopping) {
      stopping = (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          try {
            child.kill('SIGTERM');
          } catch {
            /* gone */
          }
          let timer: NodeJS.Timeout | undefined;
          const late = await Promise.race([
            exited.then(() => false),
            new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
          ]);
          clearTimeout(timer);
          if (late) {
            try {
              child.kill('SIGKILL');
            } catch {
              /* gone */
            }
          }
        }
        const code = await exited;
        // Let the pipes drain so the last log lines (`stopped`) are in `logs`.
        await Promise.all(
          [child.stdout, child.stderr].map((s) =>
            s && !s.readableEnded ? Promise.race([new Promise((r) => s.once('close', r)), new Promise((r) => setTimeout(r, 1000))]) : undefined,
          ),
        );
        return code;
      })();
    }
    return stopping;
  };

  const vipr: ViprProcess = {
    process: child,
    logs,
    records: () =>
      logs.flatMap((line) => {
        try {
          const r = JSON.parse(line) as unknown;
          return r && typeof r === 'object' ? [r as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      }),
    stop,
    exited,
  };

  const outcome = await ready.outcome;
  if (outcome === 'ok') return vipr;
  const code = await stop(1000);
  const why = outcome === 'exited' ? `exited with ${code} before ready` : `not ready after ${readyTimeoutMs} ms`;
  throw new Error(`vipr ${why}; log tail:\n${tail(logs)}`);
}

/** The lab's config with every server's health checks taken out: where a check failing on a busy machine would move a VIP in the middle of a count. */
export function withoutChecks(config: string): string {
  return config.replace(/, checks: \[[^\]]*\]/g, '');
}

/**
 * A fresh lab with vipr running on a variant of the lab's config: `edit` gets
 * the config lab.sh wrote and returns the one to run, saved beside it as
 * NAME.yaml. If vipr does not start, the lab is taken down before the error
 * is thrown. End it with closeLabWithVipr.
 */
export async function labWithVipr(name: string, edit: (config: string) => string = (config) => config): Promise<{ lab: Lab; vipr: ViprProcess; config: string }> {
  const lab = await labUp({ kernelRouter: false });
  try {
    const config = join(dirname(labConfigPath(lab)), `${name}.yaml`);
    await writeFile(config, edit(await readFile(labConfigPath(lab), 'utf8')));
    return { lab, vipr: await startVipr(lab, config), config };
  } catch (error) {
    await lab.down();
    throw error;
  }
}

/** Stops vipr, which must exit 0 (the log tail says why not), and takes the lab down whatever happens. */
export async function closeLabWithVipr(lab: Lab | undefined, vipr: ViprProcess | undefined): Promise<void> {
  try {
    const code = await vipr?.stop();
    if (vipr) expect(code, `vipr exit code; log tail:\n${vipr.logs.slice(-10).join('\n')}`).toBe(0);
  } finally {
    await lab?.down();
  }
}

export interface Capture {
  /** tcpdump's output, one entry per packet (with -v, continuation lines are joined with a space). */
  packets: string[];
  /** Resolve when at least `count` packets have been printed or `timeoutMs` passed; returns packets.length. */
  waitForPackets(count: number, timeoutMs?: number): Promise<number>;
  /** Stop tcpdump (SIGINT) and return its packets and stderr (which has its statistics). */
  stop(): Promise<{ packets: string[]; stderr: string }>;
}

/**
 * Start `tcpdump -l --immediate-mode -n ARGS...` in a namespace and wait until it is
 * listening, so nothing sent afterwards is missed. Immediate mode hands every
 * packet over at once (no buffered block is lost when tcpdump is stopped).
 *
 *   const cap = await startCapture(lab, 'web1', ['-v', '-i', 'eth0', 'icmp']);
 */
export async function startCapture(lab: Lab, node: LabNodeName, args: string[], readyTimeoutMs = 10_000): Promise<Capture> {
  const child = spawnIn(lab, node, ['tcpdump', '-l', '--immediate-mode', '-n', ...args]);
  const packets: string[] = [];
  let stderr = '';
  const listening = readyLine(child, (text) => text.includes('listening on'), readyTimeoutMs);
  onLines(child.stdout, (line) => {
    if (/^\s/.test(line) && packets.length > 0) packets[packets.length - 1] += ' ' + line.trim();
    else if (line.trim()) packets.push(line);
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
    listening.line(stderr); // tcpdump's "listening on" line may come in pieces
  });
  const exited = exitOf(child);

  const outcome = await listening.outcome;
  if (outcome !== 'ok') {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    throw new Error(`tcpdump in ${node} ${outcome === 'exited' ? 'exited' : 'did not start listening'}: ${stderr.trim()}`);
  }

  let stopping: Promise<{ packets: string[]; stderr: string }> | undefined;
  return {
    packets,
    waitForPackets: (count, timeoutMs = 10_000) => waitFor(() => (packets.length >= count ? packets.length : 0), timeoutMs, 20).then(() => packets.length),
    stop: () => {
      if (!stopping) {
        stopping = (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            try {
              child.kill('SIGINT');
            } catch {
              /* gone */
            }
            let t: NodeJS.Timeout | undefined;
            const late = await Promise.race([
              exited.then(() => false),
              new Promise<boolean>((resolve) => (t = setTimeout(() => resolve(true), 3000))),
            ]);
            clearTimeout(t);
            if (late) child.kill('SIGKILL');
          }
          await exited;
          await Promise.race([
            new Promise((r) => (child.stdout && !child.stdout.readableEnded ? child.stdout.once('close', r) : r(undefined))),
            new Promise((r) => setTimeout(r, 1000)),
          ]);
          return { packets, stderr };
        })();
      }
      return stopping;
    },
  };
}

// ---- the control client inside a lab -------------------------------------

/**
 * Run a command in a lab namespace with `input` written to its stdin (then
 * closed). Never throws; a command over `timeoutMs` is killed and gets TIMEOUT_CODE.
 */
export function execWithInput(lab: Lab, name: LabNodeName, cmd: string[], input: string, timeoutMs = 30_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', lab.ns(name), ...cmd], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr || error.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: killed ? TIMEOUT_CODE : exitCodeOf(code, signal), stdout, stderr });
    });
    child.stdin?.on('error', () => undefined); // the command may exit without reading
    child.stdin?.end(input);
  });
}

export interface ViprCtlOptions {
  /** Control socket (default: the lab's, labSocketPath). */
  socket?: string;
  /** The namespace to run it in (default 'router'; a router of a pair: 'router1', 'router2'). */
  node?: LabNodeName;
  /** Written to the command's stdin (for `vipr ctl -`). */
  input?: string;
  timeoutMs?: number;
}

/**
 * The real CLI, as an operator types it in the router namespace:
 * `vipr ctl --socket SOCK ARGS...` (dist/src/cli/main.js, built by tsc).
 *
 *   const r = await viprCtl(lab, ['route', 'replace', '192.168.1.32/27', 'via', 'web2']);
 */
export function viprCtl(lab: Lab, args: string[], opts: ViprCtlOptions = {}): Promise<ExecResult> {
  const cmd = [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'ctl', '--socket', opts.socket ?? labSocketPath(lab), ...args];
  return execWithInput(lab, opts.node ?? 'router', cmd, opts.input ?? '', opts.timeoutMs ?? 15_000);
}

/** The control socket in the text form through socat, as a person would: `socat - UNIX-CONNECT:SOCK`. */
export function socatControl(lab: Lab, lines: string[], socket: string = labSocketPath(lab)): Promise<ExecResult> {
  return execWithInput(lab, 'router', ['socat', '-t', '2', '-', `UNIX-CONNECT:${socket}`], lines.map((l) => `${l}\n`).join(''), 15_000);
}

/**
 * `curl http://VIP/` from the client, retried while it fails (the first
 * request after a reroute may wait for ARP); the web servers answer their name.
 */
export async function curlFromClient(lab: Lab, vip: string, timeoutMs = 8_000): Promise<ExecResult> {
  let last: ExecResult = { code: -1, stdout: '', stderr: '' };
  await waitFor(async () => {
    last = await lab.exec('client', ['curl', '-s', '--max-time', '2', `http://${vip}/`]);
    return last.code === 0;
  }, timeoutMs, 200);
  return last;
}

// ---- the router pair (lab.sh up --routers 2) ------------------------------

export type PairRouterName = 'router1' | 'router2';

/** A router's vipr config in a pair lab (lab/vipr.yaml with its liveness, bird and keepalived sections), written by `lab.sh up --routers 2`. */
export function pairConfigPath(lab: Lab, router: PairRouterName): string {
  return `/run/vipr-lab/${lab.prefix}/${router}/vipr.yaml`;
}

/** A router's control socket in a pair lab. */
export function pairSocketPath(lab: Lab, router: PairRouterName): string {
  return `/run/vipr-lab/${lab.prefix}/${router}/vipr.sock`;
}

/** `vipr ctl ARGS...` against a router of the pair, in its namespace. */
export function pairCtl(lab: Lab, router: PairRouterName, args: string[], timeoutMs = 15_000): Promise<ExecResult> {
  return viprCtl(lab, args, { node: router, socket: pairSocketPath(lab, router), timeoutMs });
}

/** `vipr run` in a router of the pair (its own config, or one written beside it by `edit`). */
export async function startPairVipr(lab: Lab, router: PairRouterName, edit?: (config: string) => string): Promise<ViprProcess> {
  let config = pairConfigPath(lab, router);
  if (edit) {
    const edited = join(dirname(config), 'vipr-edited.yaml');
    await writeFile(edited, edit(await readFile(config, 'utf8')));
    config = edited;
  }
  return startVipr(lab, config, { node: router });
}

/**
 * The pair lab with vipr in both routers: router1 first (it takes the VRRP
 * address), then router2. The lab comes down if either does not start.
 */
export async function pairLabWithVipr(edit?: (config: string) => string): Promise<{ lab: Lab; vipr: Record<PairRouterName, ViprProcess> }> {
  const lab = await labUp({ routers: 2 });
  try {
    const router1 = await startPairVipr(lab, 'router1', edit);
    await waitFor(async () => (await lab.exec('router1', ['ip', '-br', '-4', 'addr', 'show', 'dev', 'lan0'])).stdout.includes('192.168.1.1/'), 10_000, 50);
    const router2 = await startPairVipr(lab, 'router2', edit);
    return { lab, vipr: { router1, router2 } };
  } catch (error) {
    await lab.down();
    throw error;
  }
}
