// The state file on disk: what a start finds there (saves that a kill -9
// interrupted, files that no longer fit the config) and what it leaves.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StateStore } from '../../src/control/state-store.js';
import { parsePrefix } from '../../src/util/ipv4.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-state-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The PID of a process that has exited (as a vipr killed with -9 has). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

/** A process that is alive until the test ends (another vipr in the middle of a save). */
function livePid(): number {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  cleanups.push(() => void child.kill('SIGKILL'));
  return child.pid!;
}

const STATE = JSON.stringify({ version: 1, savedAt: '2026-01-01T00:00:00.000Z', routes: [{ prefix: '192.168.1.32/27', type: 'unicast', via: [{ address: '192.168.1.3', server: 'web2' }] }] });

describe('state file: temp files that kill -9 left behind', () => {
  it('a start removes state.json.tmp-PID of processes that are gone, and nothing else', async () => {
    const dir = await tempDir();
    const file = join(dir, 'state.json');
    await writeFile(file, STATE);
    const dead = [deadPid(), deadPid(), deadPid()];
    const live = livePid();
    for (const pid of dead) await writeFile(join(dir, `state.json.tmp-${pid}`), '{"half": ');
    const kept = [
      `state.json.tmp-${live}`, // another process saving right now
      `other.json.tmp-${dead[0]}`, // another state file's
      'state.json.tmp-notapid',
      'state.json.bad-1700000000000',
    ];
    for (const name of kept) await writeFile(join(dir, name), 'keep me');

    const store = new StateStore(file);
    const runtime = await store.load();
    expect([...runtime!.values()].map((spec) => spec && spec.prefix)).toEqual([parsePrefix('192.168.1.32/27')]);
    expect((await readdir(dir)).sort()).toEqual([...kept, 'state.json'].sort());
    for (const name of kept) expect(await readFile(join(dir, name), 'utf8')).toBe('keep me');
  });

  it('also when there is no state file yet', async () => {
    const dir = await tempDir();
    const pid = deadPid();
    await writeFile(join(dir, `state.json.tmp-${pid}`), '{');
    expect(await new StateStore(join(dir, 'state.json')).load()).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('state file: set aside, never overwritten', () => {
  it('moves the file to FILE.REASON-TIMESTAMP; a second one in the same second gets a suffix, the first is kept', async () => {
    const dir = await tempDir();
    const file = join(dir, 'state.json');
    const store = new StateStore(file);
    const now = new Date('2026-11-25T19:08:12.345Z');
    await writeFile(file, 'first');
    const first = await store.setAside('unfit', now);
    expect(first).toBe(`${file}.unfit-20261125T190812Z`);
    await writeFile(file, 'second');
    const second = await store.setAside('unfit', now);
    expect(second).toBe(`${file}.unfit-20261125T190812Z-1`);
    expect(await readFile(first, 'utf8')).toBe('first');
    expect(await readFile(second, 'utf8')).toBe('second');
    // The next save writes a new state file beside them.
    await store.save(new Map());
    expect((await readdir(dir)).sort()).toEqual(['state.json', 'state.json.unfit-20261125T190812Z', 'state.json.unfit-20261125T190812Z-1']);
  });
});
