// vipr's ports follow the kernel: vipr starts whatever the carrier, says a
// port is down, forwards on it as soon as its link comes up, and follows links
// going down and up, addresses added and removed (as keepalived adds and
// removes a VRRP address) while it runs, without a restart.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, labConfigPath, labUp, labWithVipr, spawnIn, startVipr, viprCtl, waitFor, withoutChecks,
  type Lab, type ViprProcess,
} from './harness.js';
import { dirname, join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';

const VIP = '192.168.1.33';

interface Stats {
  portStates: Record<string, string>;
}

async function stats(lab: Lab): Promise<Stats> {
  const r = await viprCtl(lab, ['--json', 'stats']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Stats;
}

async function activeOf(lab: Lab, prefix: string): Promise<string> {
  const r = await viprCtl(lab, ['--json', 'route', 'show', prefix]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { active: string }[])[0].active;
}

/** One ping from the client; its output (exit status 0 when answered). */
function ping(lab: Lab, address: string, extra: string[] = []) {
  return lab.exec('client', ['ping', '-n', '-c', '1', '-W', '1', ...extra, address], { timeoutMs: 5_000 });
}

function logged(vipr: ViprProcess, text: string): boolean {
  return vipr.records().some((r) => typeof r.msg === 'string' && r.msg.includes(text));
}

describe('ports followed at run time', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  beforeAll(async () => {
    // No health checks: what moves routes here is the link itself, not a failing check.
    ({ lab, vipr } = await labWithVipr('ports', withoutChecks));
  });
  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  it('lan0 down under traffic: routes withdrawn at once, the port shown down; up: forwarding again, same process', async () => {
    const pid = vipr!.process.pid;
    await waitFor(async () => (await ping(lab!, VIP)).code === 0, 10_000, 100);
    const stream = spawnIn(lab!, 'client', ['ping', '-n', '-O', '-i', '0.02', '-W', '1', '-w', '60', VIP]);
    const out: string[] = [];
    stream.stdout!.setEncoding('utf8').on('data', (chunk: string) => out.push(...chunk.split('\n')));
    const replies = () => out.filter((l) => l.includes(`bytes from ${VIP}`)).length;
    try {
      await waitFor(() => replies() >= 10, 10_000, 20);

      await lab!.exec('router', ['ip', 'link', 'set', 'lan0', 'down']);
      await waitFor(async () => (await stats(lab!)).portStates.lan0 === 'down (admin down)', 5_000, 50);
      expect(await activeOf(lab!, '192.168.1.32/27')).toBe('withdrawn');
      // The client is told at once: the route is withdrawn, not a black hole.
      await waitFor(() => out.some((l) => /From 10\.0\.0\.1 .*Destination Net Unreachable/.test(l)), 5_000, 20);
      expect(logged(vipr!, 'port lan0: link down (admin down)')).toBe(true);

      const before = replies();
      await lab!.exec('router', ['ip', 'link', 'set', 'lan0', 'up']);
      await waitFor(() => replies() >= before + 10, 10_000, 20);
      expect((await stats(lab!)).portStates.lan0).toBe('up');
      expect(await activeOf(lab!, '192.168.1.32/27')).toBe('web1');
      expect(vipr!.process.pid).toBe(pid);
      expect(vipr!.process.exitCode).toBeNull();
    } finally {
      stream.kill('SIGINT');
    }
  });

  it('an address added to lan0 (as keepalived adds a VRRP address) is the router\'s own; removed, it is forwarded again', async () => {
    const address = '192.168.1.30';
    // A free address on the servers' subnet: vipr forwards to it (nobody answers ARP for it).
    expect((await ping(lab!, address)).code).not.toBe(0);
    await lab!.exec('router', ['ip', 'addr', 'add', `${address}/27`, 'dev', 'lan0']);
    try {
      // The router's kernel answers now: TTL 64, not 63 (not forwarded), and vipr's transit drop rule lets it through.
      const answered = await waitFor(async () => {
        const r = await ping(lab!, address);
        return r.code === 0 ? r.stdout : '';
      }, 5_000, 100);
      expect(answered).toMatch(new RegExp(`bytes from ${address.replaceAll('.', '\\.')}: icmp_seq=1 ttl=64`));
      await waitFor(() => logged(vipr!, `port lan0: address ${address}/27 added`), 5_000, 50);
      // vipr's FIB agrees: the address is the router's own, left to the kernel.
      const route = await viprCtl(lab!, ['--json', 'route', 'show', `${address}/32`]);
      expect(JSON.parse(route.stdout)).toMatchObject([{ prefix: `${address}/32`, type: 'local', port: 'lan0' }]);
    } finally {
      await lab!.exec('router', ['ip', 'addr', 'del', `${address}/27`, 'dev', 'lan0']);
    }
    await waitFor(() => logged(vipr!, `port lan0: address ${address}/27 removed`), 5_000, 50);
    expect((await ping(lab!, address)).code).not.toBe(0);
    // The VIPs never moved.
    expect((await ping(lab!, VIP)).code).toBe(0);
  });

  it('ICMP errors to hosts on a subnet added at run time come from the router\'s address on it', async () => {
    await lab!.exec('router', ['ip', 'addr', 'add', '10.0.9.1/24', 'dev', 'up0']);
    await lab!.exec('client', ['ip', 'addr', 'add', '10.0.9.2/24', 'dev', 'eth0']);
    try {
      const error = await waitFor(async () => {
        const r = await ping(lab!, VIP, ['-t', '1', '-I', '10.0.9.2']);
        return /From 10\.0\.9\.1 icmp_seq=1 Time to live exceeded/.test(r.stdout) ? r.stdout : '';
      }, 5_000, 200);
      expect(error).toContain('From 10.0.9.1');
    } finally {
      await lab!.exec('client', ['ip', 'addr', 'del', '10.0.9.2/24', 'dev', 'eth0']);
      await lab!.exec('router', ['ip', 'addr', 'del', '10.0.9.1/24', 'dev', 'up0']);
    }
  });
});

describe('starting with ports that are not up yet', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let config = '';

  beforeAll(async () => {
    lab = await labUp();
    config = join(dirname(labConfigPath(lab)), 'boot.yaml');
    await writeFile(config, withoutChecks(await readFile(labConfigPath(lab), 'utf8')));
  });
  afterEach(async () => {
    const running = vipr;
    vipr = undefined;
    if (running) expect(await running.stop()).toBe(0);
  });
  afterAll(async () => {
    await closeLabWithVipr(lab, undefined);
  });

  /** Milliseconds until a ping from the client to the VIP is answered, polling every 50 ms. */
  async function untilForwarding(): Promise<number> {
    const started = performance.now();
    await waitFor(async () => (await ping(lab!, VIP, ['-W', '0.3'])).code === 0, 10_000, 50);
    return performance.now() - started;
  }

  it('starts in the same breath as `ip link set ... up` (no pause) and forwards within 2 s', async () => {
    await lab!.exec('router', ['ip', 'link', 'set', 'up0', 'down']);
    await lab!.exec('router', ['ip', 'link', 'set', 'lan0', 'down']);
    vipr = await startVipr(lab!, config, { before: 'ip link set up0 up && ip link set lan0 up' });
    expect(await untilForwarding()).toBeLessThan(2_000);
  });

  it('starts with lan0 unplugged (no carrier), says so, and forwards within 2 s of the cable coming back', async () => {
    await lab!.exec('switch', ['ip', 'link', 'set', 'p-router', 'down']);
    vipr = await startVipr(lab!, config);
    expect(vipr.records().some((r) => r.msg === 'port lan0 is down (no carrier): vipr forwards on it as soon as its link comes up')).toBe(true);
    expect((await stats(lab!)).portStates).toEqual({ up0: 'up', lan0: 'down (no carrier)' });
    expect(await activeOf(lab!, '192.168.1.32/27')).toBe('withdrawn');
    await lab!.exec('switch', ['ip', 'link', 'set', 'p-router', 'up']);
    expect(await untilForwarding()).toBeLessThan(2_000);
    expect((await stats(lab!)).portStates.lan0).toBe('up');
  });
});
