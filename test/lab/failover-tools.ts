// Helpers for test/lab/failover.test.ts: the operator's view of a failover
// (`vipr ctl events` as text, `server show`, `route show`, curl, ping), a copy
// of the lab's config with a notify command, and the adapter that lets the
// failover measurement (lab/lib/failover-trial.ts) run in a harness lab.
import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';
import type { TrialLab } from '../../lab/lib/lab.js';
import { curlFromClient, labConfigPath, labSocketPath, spawnIn, viprCtl, waitFor, REPO_ROOT, type Lab } from './harness.js';

/** The harness lab as the shared measurements (lab/lib/failover-trial.ts, reroute-trial.ts) want it. */
export function trialLab(lab: Lab): TrialLab {
  return { prefix: lab.prefix, spawn: (node, cmd, opts) => spawnIn(lab, node, cmd, opts), exec: (node, cmd, opts) => lab.exec(node, cmd, opts) };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface TextEvents {
  /** every line `vipr ctl events` printed so far */
  lines: string[];
  /** The first line (from index `from` on) matching `pattern`, waiting up to `timeoutMs`; undefined if none came. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string | undefined>;
  stop(): Promise<void>;
}

/**
 * `vipr ctl --socket SOCK events` in the router namespace, as an operator
 * leaves it running in a terminal. The socket does not acknowledge the
 * subscription, so this waits until `ss -x` shows the client connected.
 */
export async function followTextEvents(lab: Lab, socket = labSocketPath(lab)): Promise<TextEvents> {
  const child: ChildProcess = spawnIn(lab, 'router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'ctl', '--socket', socket, 'events']);
  const lines: string[] = [];
  let stderr = '';
  let rest = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      lines.push(rest.slice(0, nl));
      rest = rest.slice(nl + 1);
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (stderr += c));
  const connected = await waitFor(async () => {
    if (child.exitCode !== null) return true;
    const r = await lab.exec('router', ['ss', '-xpn']);
    return r.stdout.includes(`pid=${child.pid},`);
  }, 10_000, 50);
  if (!connected || child.exitCode !== null) {
    child.kill('SIGKILL');
    throw new Error(`vipr ctl events did not connect to ${socket}: ${stderr.trim()}`);
  }
  await sleep(100);
  return {
    lines,
    waitFor: async (pattern, timeoutMs = 10_000, from = 0) => {
      let found: string | undefined;
      await waitFor(() => (found = lines.slice(from).find((l) => pattern.test(l))) !== undefined, timeoutMs, 20);
      return found;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(2000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    },
  };
}

export interface ServerRow {
  name: string;
  state: string;
  reason: string;
  routes: string[];
}

/** `vipr ctl --json server show`, one row per server. */
export async function servers(lab: Lab, socket = labSocketPath(lab)): Promise<ServerRow[]> {
  const r = await viprCtl(lab, ['--json', 'server', 'show'], { socket });
  if (r.code !== 0) throw new Error(`vipr ctl server show: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as ServerRow[];
}

/** Which next hop carries `prefix` now (`vipr ctl --json route show PREFIX`): a server name, an address, or 'withdrawn'. */
export async function activeNextHop(lab: Lab, prefix: string, socket = labSocketPath(lab)): Promise<string> {
  const r = await viprCtl(lab, ['--json', 'route', 'show', prefix], { socket });
  if (r.code !== 0) throw new Error(`vipr ctl route show ${prefix}: ${r.stderr.trim()}`);
  const rows = JSON.parse(r.stdout) as Array<{ active?: string }>;
  return rows[0]?.active ?? '?';
}

/** Which web server answers `curl http://VIP/` from the client (its name), or '' if none did. */
export async function answeredBy(lab: Lab, vip: string): Promise<string> {
  const r = await curlFromClient(lab, vip);
  return r.code === 0 ? r.stdout.trim() : '';
}

/** `ping -n -c 1 -W 2 ADDRESS` from the client: its whole output (the exit status is 1 for an error reply). */
export async function pingFromClient(lab: Lab, address: string): Promise<string> {
  const r = await lab.exec('client', ['ping', '-n', '-c', '1', '-W', '2', address]);
  return `${r.stdout}${r.stderr}`;
}

/** SIGSTOP / SIGCONT a lab web server (its pid file is under /run/vipr-lab/PREFIX/). */
export async function signalWebServer(lab: Lab, name: string, signal: 'SIGSTOP' | 'SIGCONT'): Promise<void> {
  const pid = Number((await readFile(join(dirname(labConfigPath(lab)), `${name}.pid`), 'utf8')).trim());
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('webserver.mjs')) throw new Error(`${name}.pid (${pid}) is not the lab's web server`);
  process.kill(pid, signal);
}

/**
 * Run the lab's four web servers at SCHED_FIFO `priority` (chrt -a). They are
 * the fixture, not what is tested: on a busy two-CPU machine a web server at
 * normal priority sometimes answers later than the lab's 50 ms check timeout,
 * and then vipr rightly takes it down, which is not the failure a test made.
 * They answer a few checks a second, so this costs the machine nothing.
 */
export async function realtimeWebServers(lab: Lab, priority: number): Promise<void> {
  for (const name of ['web1', 'web2', 'web3', 'web4']) {
    const pid = Number((await readFile(join(dirname(labConfigPath(lab)), `${name}.pid`), 'utf8')).trim());
    const r = await lab.exec(name as 'web1', ['chrt', '-a', '-f', '-p', String(priority), String(pid)]);
    if (r.code !== 0) throw new Error(`chrt ${name}'s web server (${pid}): ${r.stderr.trim()}`);
  }
}

/**
 * A copy of the lab's config (next to it, NAME.yaml) with the settings in
 * `set` (YAML paths and values: [['health', 'failback'], 'manual']), and its
 * own control socket and state file so it never meets another daemon's.
 * Returns the copy's path and socket.
 */
export async function labConfigVariant(lab: Lab, name: string, set: Array<[path: Array<string | number>, value: unknown]>): Promise<{ path: string; socket: string }> {
  const dir = dirname(labConfigPath(lab));
  const doc = parseDocument(await readFile(labConfigPath(lab), 'utf8'));
  const socket = join(dir, `${name}.sock`);
  for (const [path, value] of set) doc.setIn(path, doc.createNode(value, { flow: true }));
  doc.setIn(['control', 'socket'], socket);
  doc.setIn(['state', 'file'], join(dir, `${name}-state.json`));
  const path = join(dir, `${name}.yaml`);
  await writeFile(path, doc.toString());
  return { path, socket };
}

/** The lab's config with `health.notify` set (see labConfigVariant). */
export function notifyConfig(lab: Lab, notify: string): Promise<{ path: string; socket: string }> {
  return labConfigVariant(lab, 'notify-test', [[['health', 'notify'], notify]]);
}

/** The events a notify command `env | grep ^VIPR_ >> FILE` recorded: one object of VIPR_* variables per VIPR_EVENT_JSON line. */
export function parseNotifyFile(text: string): Array<Record<string, string>> {
  // grep writes each run's few lines in one write to a file opened O_APPEND, so
  // runs never interleave: a run ends where a variable it already has comes again.
  const runs: Array<Record<string, string>> = [];
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (!line.startsWith('VIPR_') || eq < 0) continue;
    const key = line.slice(0, eq);
    if (!current || key in current) {
      current = {};
      runs.push(current);
    }
    current[key] = line.slice(eq + 1);
  }
  return runs;
}
