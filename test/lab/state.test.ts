// The state file and the router's intent across failures and restarts, as an
// operator meets them: a change too big for the neighbour table, kill -9 in
// the middle of saves, saved changes that no longer fit the config, and a
// config that names the router's own address.
//
// One lab for the file; the router's lan0 gets a second subnet
// (172.16.0.1/16) so a change can name more gateways than vipr pins.
// Needs the daemon built: npx tsc -p tsconfig.json

import { spawn } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, execWithInput, labConfigPath, labSocketPath, labUp, REPO_ROOT, startVipr, viprCtl, withoutChecks, type Lab, type ViprProcess,
} from './harness.js';

describe('the state file across failures and restarts', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let dir = '';
  let config = '';
  let stateFile = '';
  const livePids: number[] = [];
  let sleeper: ReturnType<typeof spawn> | undefined;

  beforeAll(async () => {
    lab = await labUp({ kernelRouter: false });
    dir = dirname(labConfigPath(lab));
    stateFile = join(dir, 'state.json');
    const added = await lab.exec('router', ['ip', 'addr', 'add', '172.16.0.1/16', 'dev', 'lan0']);
    expect(added.code, added.stderr).toBe(0);
    config = join(dir, 'state-test.yaml');
    // No health checks (a busy box must not move routes mid-test), and room for one learned neighbour only.
    await writeFile(config, withoutChecks(await readFile(labConfigPath(lab), 'utf8')).replace(/maxEntries: \d+/, 'maxEntries: 1'));

    // What kill -9 during saves leaves: temp files of processes that are gone, and one of a live process.
    for (let i = 0; i < 3; i++) {
      const gone = spawn(process.execPath, ['-e', '0']);
      await new Promise((resolve) => gone.once('exit', resolve));
      await writeFile(join(dir, `state.json.tmp-${gone.pid}`), '{"version":1,');
    }
    sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    livePids.push(sleeper.pid!);
    await writeFile(join(dir, `state.json.tmp-${sleeper.pid}`), '{"version":1,');
    vipr = await startVipr(lab, config);
  });

  afterAll(async () => {
    sleeper?.kill('SIGKILL');
    await closeLabWithVipr(lab, vipr);
  });

  const ctl = (...args: string[]) => viprCtl(lab!, args, { timeoutMs: 60_000 });
  const logTail = () => vipr!.logs.slice(-15).join('\n');
  const temporaries = async () => (await readdir(dir)).filter((name) => name.startsWith('state.json.tmp-')).sort();

  it('temp files of saves that a crash cut short are removed at start (a live process\'s is kept), and the log says so', async () => {
    expect(await temporaries()).toEqual([`state.json.tmp-${livePids[0]}`]);
    expect(vipr!.records().some((r) => /^state: removed 3 temp file\(s\) of saves a crash interrupted: /.test(String(r.msg))), logTail()).toBe(true);
  });

  let acknowledged = '';
  it('ctl apply of 1,100 routes via 1,100 gateways: refused with EFULL on the line that overflows; state file, routes and neighbours as before', async () => {
    const replace = await ctl('route', 'replace', '192.168.1.32/27', 'via', 'web2');
    expect(replace.code, replace.stderr).toBe(0);
    acknowledged = await readFile(stateFile, 'utf8');
    const routesBefore = (await ctl('--json', 'route', 'show')).stdout;
    const neighborsBefore = JSON.parse((await ctl('--json', 'neighbor', 'show')).stdout) as { address: string; pinned: boolean }[];

    const file = join(dir, 'flood.txt');
    const lines = Array.from({ length: 1100 }, (_, i) => `route add 100.${64 + (i >> 8)}.${i & 255}.0/24 via 172.16.${(i + 2) >> 8}.${(i + 2) & 255}`);
    await writeFile(file, `${lines.join('\n')}\n`);
    const apply = await ctl('apply', file);
    expect(apply.code).toBe(1);
    expect(apply.stderr).toMatch(new RegExp(`^vipr: ${file}:\\d+: EFULL: change \\d+: next hop 172\\.16\\.\\d+\\.\\d+: neighbour table full: 1024 gateways at most, .*; nothing applied\\n$`));

    expect(await readFile(stateFile, 'utf8')).toBe(acknowledged);
    expect((await ctl('--json', 'route', 'show')).stdout).toBe(routesBefore);
    const neighborsAfter = JSON.parse((await ctl('--json', 'neighbor', 'show')).stdout) as { address: string; pinned: boolean }[];
    expect(neighborsAfter.map((n) => `${n.address} ${n.pinned}`)).toEqual(neighborsBefore.map((n) => `${n.address} ${n.pinned}`));
  });

  it('after kill -9 and a restart the acknowledged replace is still there', async () => {
    vipr!.process.kill('SIGKILL');
    await vipr!.stop();
    vipr = await startVipr(lab!, config);
    const show = await ctl('route', 'show', '192.168.1.32/27');
    expect(show.stdout, logTail()).toMatch(/^192\.168\.1\.32\/27\s+via web2 .*runtime \(overrides config\)$/m);
  });

  it('saved changes that no longer fit the config are kept aside, named in the log, and never written over', async () => {
    expect(await vipr!.stop()).toBe(0);
    // A route via a gateway on no subnet of the router: it cannot be loaded.
    const unfit = JSON.stringify({
      version: 1, savedAt: '2026-11-25T00:00:00.000Z',
      routes: [
        { prefix: '192.168.1.32/27', type: 'unicast', via: [{ address: '192.168.1.3', server: 'web2' }] },
        { prefix: '203.0.113.0/24', type: 'unicast', via: [{ address: '198.18.0.9' }] },
      ],
    });
    await writeFile(stateFile, unfit);
    vipr = await startVipr(lab!, config);
    const record = vipr.records().find((r) => String(r.msg).startsWith(`saved runtime changes in ${stateFile} do not fit the config`));
    expect(record, logTail()).toBeDefined();
    const kept = String(record!.keptAs);
    expect(kept).toMatch(new RegExp(`^${stateFile.replace(/\./g, '\\.')}\\.unfit-\\d{8}T\\d{6}Z$`));
    expect(String(record!.msg)).toContain(`kept them as ${kept} and starting from the config alone`);
    expect(await readFile(kept, 'utf8')).toBe(unfit);

    const add = await ctl('route', 'add', '192.168.1.160/27', 'via', 'web3');
    expect(add.code, add.stderr).toBe(0);
    expect(await readFile(kept, 'utf8')).toBe(unfit);
    const saved = JSON.parse(await readFile(stateFile, 'utf8')) as { routes: { prefix: string }[] };
    expect(saved.routes.map((r) => r.prefix)).toEqual(['192.168.1.160/27']);
  });

  it("a server on the router's own address: `vipr run` and `vipr check-config` refuse it in one line, naming file, line and column", async () => {
    const bad = join(dir, 'own-address.yaml');
    const text = (await readFile(config, 'utf8')).replace(/^(\s*web4: \{ address: )192\.168\.1\.5/m, '$1192.168.1.1');
    await writeFile(bad, text);
    const line = text.split('\n').findIndex((l) => /web4: \{ address: 192\.168\.1\.1/.test(l)) + 1;
    const column = text.split('\n')[line - 1].indexOf('192.168.1.1') + 1;
    const expected = `vipr: ${bad}:${line}:${column}: servers.web4.address: 192.168.1.1 is this router's own address (lan0 192.168.1.1/27)`;

    const check = await execWithInput(lab!, 'router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'check-config', bad], '', 30_000);
    expect(check.code).toBe(1);
    expect(check.stderr.trim()).toBe(expected);

    const run = await execWithInput(lab!, 'router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', bad], '', 30_000);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n').at(-1)).toBe(expected);
    // The running vipr is untouched.
    expect((await viprCtl(lab!, ['ping'], { socket: labSocketPath(lab!) })).stdout).toBe('pong\n');
  });
});
