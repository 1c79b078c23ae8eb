// Run by hand as root, vipr keeps only CAP_NET_RAW and CAP_NET_ADMIN, in
// every one of its threads, and runs as the configured `user:` if there is
// one; it still forwards, answers its control socket and saves its state.
import { execFileSync } from 'node:child_process';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, curlFromClient, labConfigPath, labUp, REPO_ROOT, startVipr, viprCtl, waitFor, withoutChecks,
  type Lab, type ViprProcess,
} from './harness.js';

const KEPT = '0000000000003000'; // CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
const KEPT_XDP = '0000008000007000'; // and CAP_IPC_LOCK (14), CAP_BPF (39): io: xdp
const USER = `viprt${process.pid % 100000}`;

interface ThreadCredentials {
  thread: string;
  uid: string;
  capEff: string;
  capPrm: string;
  capBnd: string;
}

/** Uid and capabilities of every thread of a process, from /proc (what the kernel enforces). */
async function threads(pid: number): Promise<ThreadCredentials[]> {
  const tasks = await readdir(`/proc/${pid}/task`);
  return Promise.all(tasks.map(async (thread) => {
    const status = await readFile(`/proc/${pid}/task/${thread}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)![1].trim();
    return { thread, uid: field('Uid').split(/\s+/)[1], capEff: field('CapEff'), capPrm: field('CapPrm'), capBnd: field('CapBnd') };
  }));
}

function expectOnlyKept(list: ThreadCredentials[], uid: string, kept = KEPT): void {
  expect(list.length).toBeGreaterThan(5); // Node's threads and vipr's check thread are all there
  for (const t of list) expect(t, `thread ${t.thread}`).toEqual({ thread: t.thread, uid, capEff: kept, capPrm: kept, capBnd: kept });
}

describe('run by hand as root, vipr keeps two capabilities', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let base = '';

  beforeAll(async () => {
    execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
    lab = await labUp();
    base = join(dirname(labConfigPath(lab)), 'priv');
  });
  afterAll(async () => {
    try {
      await closeLabWithVipr(lab, vipr);
    } finally {
      execFileSync('userdel', [USER]);
    }
  });

  async function config(name: string, extra: string, state: string, controlExtra = '', io = 'ring'): Promise<string> {
    const text = withoutChecks(await readFile(labConfigPath(lab!), 'utf8'))
      .replace(/^io: \w+$/m, `io: ${io}`)
      .replace(/^control: \{ socket: .* \}$/m, `control: { socket: ${state}/vipr.sock${controlExtra} }`)
      .replace(/^state: \{ file: .* \}$/m, `state: { file: ${state}/state.json }`);
    expect(text).toContain(`${state}/vipr.sock`);
    const path = join(dirname(labConfigPath(lab!)), `${name}.yaml`);
    await writeFile(path, `${text}\n${extra}\n`);
    return path;
  }

  it('without `user:` it stays root, with CAP_NET_RAW and CAP_NET_ADMIN only, in every thread, and forwards', async () => {
    const state = join(base, 'root');
    vipr = await startVipr(lab!, await config('priv-root', '', state));
    expectOnlyKept(await threads(vipr.process.pid!), '0');
    expect(vipr.records().some((r) => r.msg === 'started as root; running as uid 0 with capabilities net_raw, net_admin only')).toBe(true);
    const answer = await waitFor(async () => (await curlFromClient(lab!, '192.168.1.33')).stdout, 10_000, 200);
    expect(answer).toBe('web1\n');
    expect(await vipr.stop()).toBe(0);
    vipr = undefined;
  });

  it('with `user:` it runs as that user, in directories it made for it, and still forwards, answers and saves', async () => {
    const state = join(base, 'user');
    vipr = await startVipr(lab!, await config('priv-user', `user: ${USER}`, state));
    const uid = execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim();
    expectOnlyKept(await threads(vipr.process.pid!), uid);
    expect((await stat(state)).uid).toBe(Number(uid));
    expect((await stat(`${state}/vipr.sock`)).uid).toBe(Number(uid));
    expect(await waitFor(async () => (await curlFromClient(lab!, '192.168.1.33')).stdout, 10_000, 200)).toBe('web1\n');
    const socket = `${state}/vipr.sock`;
    const replaced = await viprCtl(lab!, ['route', 'replace', '192.168.1.32/27', 'via', 'web2'], { socket });
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(await readFile(`${state}/state.json`, 'utf8'))).toBeTruthy();
    expect((await stat(`${state}/state.json`)).uid).toBe(Number(uid));
    expect(await waitFor(async () => (await curlFromClient(lab!, '192.168.1.33')).stdout === 'web2\n', 10_000, 200)).toBe(true);
    expect(await vipr.stop()).toBe(0);
    vipr = undefined;
  });

  it('with io: xdp it also keeps CAP_BPF and CAP_IPC_LOCK, and forwards as that user (two ports of pinned UMEM)', async () => {
    const state = join(base, 'xdp');
    vipr = await startVipr(lab!, await config('priv-xdp', `user: ${USER}`, state, '', 'xdp'));
    const uid = execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim();
    expectOnlyKept(await threads(vipr.process.pid!), uid, KEPT_XDP);
    expect(vipr.records().some((r) => r.msg === `started as root; running as uid ${uid} with capabilities net_raw, net_admin, bpf, ipc_lock only`)).toBe(true);
    expect(vipr.records().some((r) => /^port lan0: AF_XDP, /.test(String(r.msg)))).toBe(true);
    expect(await waitFor(async () => (await curlFromClient(lab!, '192.168.1.33')).stdout, 10_000, 200)).toBe('web1\n');
    expect(await vipr.stop()).toBe(0);
    vipr = undefined;
  });

  it('a control socket promised to another user is refused in one line (no CAP_CHOWN to give it away)', async () => {
    const state = join(base, 'owner');
    const path = await config('priv-owner', `user: ${USER}`, state, ', owner: root');
    const r = await lab!.exec('router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', path]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `vipr: control.owner: vipr runs as ${USER} without CAP_CHOWN and cannot give its socket to root; leave control.owner out (the socket is ${USER}'s) and let people in through control.group`,
    ]);
    await rm(state, { recursive: true, force: true });
  });
});
