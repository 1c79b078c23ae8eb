// The ICMP and ARP health checks against the lab's real servers, and manual
// failback, as an operator meets them. For each check type vipr runs on a copy
// of the lab's config in which every server has only that check; web1 becomes
// unreachable (ICMP: web1 drops everything on eth0 with nft; ARP: web1's link
// goes down), 192.168.1.32/27 moves to web2, and back once web1 returns and
// has stayed up for the hold-down. Then `failback: manual`: the route stays on
// web2 after web1 is back until `vipr ctl route failback`. Each step is checked
// with `vipr ctl` (route show, server show, events) and with which server
// answers curl.
//
// Health timing here is gentler than the lab's (100 ms interval, 500 ms
// timeout, 1 s hold-down), so that a busy machine does not fail a healthy
// server's check in the middle of a test.
// One lab for the file; each describe starts its own vipr and stops it.
// Needs the daemon built: npx tsc -p tsconfig.json
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFailure, type FailureKind } from '../../lab/lib/failover-trial.js';
import { waitViprNeighbors } from '../../lab/lib/lab.js';
import {
  activeNextHop, answeredBy, followTextEvents, labConfigVariant, servers, signalWebServer, trialLab, type TextEvents,
} from './failover-tools.js';
import { labUp, startCapture, startVipr, viprCtl, waitFor, type Lab, type ViprProcess } from './harness.js';

const VIP = '192.168.1.33';
const NET = '192.168.1.32/27';
const HOLD_DOWN_MS = 1000;
const TIMEOUT_MS = 500;
const WEB_SERVERS = ['web1', 'web2', 'web3', 'web4'] as const;
/** Long enough for fall checks of TIMEOUT_MS each, however busy the machine. */
const WAIT_MS = 15_000;

let lab: Lab | undefined;

beforeAll(async () => {
  lab = await labUp({ kernelRouter: false });
});

afterAll(async () => {
  await lab?.down();
});

interface Daemon {
  vipr: ViprProcess;
  socket: string;
  events: TextEvents;
}

/** vipr on a variant of the lab's config (gentle health timing plus `set`), web1 and web2 resolved and up, `vipr ctl events` following it. */
async function startDaemon(name: string, set: Parameters<typeof labConfigVariant>[2]): Promise<Daemon> {
  const { path, socket } = await labConfigVariant(lab!, name, [
    [['health', 'intervalMs'], 100],
    [['health', 'timeoutMs'], TIMEOUT_MS],
    [['health', 'holdDownMs'], HOLD_DOWN_MS],
    ...set,
  ]);
  const vipr = await startVipr(lab!, path);
  try {
    await waitViprNeighbors(trialLab(lab!), socket);
    return { vipr, socket, events: await followTextEvents(lab!, socket) };
  } catch (error) {
    await vipr.stop();
    throw error;
  }
}

async function stopDaemon(daemon: Daemon | undefined): Promise<void> {
  if (!daemon) return;
  await daemon.events.stop();
  const code = await daemon.vipr.stop();
  expect(code, `vipr exit code; log tail:\n${daemon.vipr.logs.slice(-10).join('\n')}`).toBe(0);
}

const routeIsOn = (daemon: Daemon, server: string) => waitFor(async () => (await activeNextHop(lab!, NET, daemon.socket)) === server, WAIT_MS, 100);
const serverState = async (daemon: Daemon, name: string) => (await servers(lab!, daemon.socket)).find((s) => s.name === name);

const checkTypes: Array<{ type: 'icmp' | 'arp'; failure: FailureKind; what: string; onTheWire: string[]; probe: RegExp; reason: RegExp }> = [
  {
    type: 'icmp',
    failure: 'drop',
    what: 'web1 drops everything on eth0 (nft)',
    onTheWire: ['icmp[icmptype] == icmp-echo and src host 192.168.1.1 and dst host 192.168.1.2'],
    probe: /192\.168\.1\.1 > 192\.168\.1\.2: ICMP echo request/,
    reason: /^icmp failed 3 times: no echo reply within 500 ms$/,
  },
  {
    type: 'arp',
    failure: 'link',
    what: "web1's link goes down",
    onTheWire: ['arp and arp[6:2] == 1 and arp[24:4] == 0xc0a80102'], // requests for 192.168.1.2
    probe: /Request who-has 192\.168\.1\.2 tell 192\.168\.1\.1/,
    reason: /^arp failed 3 times: no ARP reply within 500 ms$/,
  },
];

describe.each(checkTypes)('only $type checks on the servers', ({ type, failure, what, onTheWire, probe, reason }) => {
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    daemon = await startDaemon(`${type}-checks`, WEB_SERVERS.map((name) => [['servers', name, 'checks'], [{ type }]]));
  });

  afterAll(async () => {
    await stopDaemon(daemon);
  });

  it(`checks each server with ${type} (seen on web1's wire), all up`, async () => {
    const capture = await startCapture(lab!, 'web1', ['-i', 'eth0', ...onTheWire]);
    try {
      expect(await capture.waitForPackets(3, WAIT_MS)).toBeGreaterThanOrEqual(3);
    } finally {
      await capture.stop();
    }
    expect(capture.packets[0]).toMatch(probe);
    const rows = await servers(lab!, daemon!.socket);
    for (const name of WEB_SERVERS) {
      const row = rows.find((s) => s.name === name) as unknown as { state: string; checks: Array<{ check: string; up: boolean; last: { ok: boolean } | null }> };
      expect(row.state, name).toBe('up');
      expect(row.checks.map((c) => [c.check, c.up]), name).toEqual([[type, true]]);
      expect(row.checks[0].last?.ok, name).toBe(true);
    }
    expect(await activeNextHop(lab!, NET, daemon!.socket)).toBe('web1');
    expect(await answeredBy(lab!, VIP)).toBe('web1');
  });

  it(`${what}: the ${type} check fails, ${NET} moves to web2; back to web1 after the hold-down once web1 returns`, async () => {
    const from = daemon!.events.lines.length;
    const broken = await makeFailure(failure, trialLab(lab!));
    let recovered = false;
    try {
      await broken.inject();
      expect(await routeIsOn(daemon!, 'web2'), daemon!.events.lines.slice(from).join('\n')).toBe(true);
      const web1 = await serverState(daemon!, 'web1');
      expect(web1?.state).toBe('down');
      expect(web1?.reason).toMatch(reason);
      expect(await answeredBy(lab!, VIP)).toBe('web2');
      const down = await daemon!.events.waitFor(/  server web1 up -> down /, 2000, from);
      expect(down, daemon!.events.lines.slice(from).join('\n')).toMatch(new RegExp(`  server web1 up -> down  \\(${type} failed 3 times: .*\\)  routes: 192\\.168\\.1\\.32/27 web1 -> web2$`));

      await broken.recover();
      recovered = true;
    } finally {
      if (!recovered) await broken.cleanup();
    }
    expect(await daemon!.events.waitFor(/  server web1 down -> up /, WAIT_MS, from), daemon!.events.lines.slice(from).join('\n')).toBeDefined();
    expect(await routeIsOn(daemon!, 'web1'), daemon!.events.lines.slice(from).join('\n')).toBe(true);
    expect(await daemon!.events.waitFor(/  failback web1  \(web1 stayed up for the 1000 ms hold-down\)  routes: 192\.168\.1\.32\/27 web2 -> web1$/, 2000, from)).toBeDefined();
    expect(await answeredBy(lab!, VIP)).toBe('web1');
    // Only web1 changed: no other server failed its checks meanwhile.
    expect(daemon!.events.lines.slice(from).filter((l) => /  server web[234] /.test(l))).toEqual([]);
  });
});

describe('failback: manual', () => {
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    daemon = await startDaemon('manual-failback', [[['health', 'failback'], 'manual']]);
  });

  afterAll(async () => {
    await stopDaemon(daemon);
  });

  it(`web1 fails and returns: ${NET} stays on web2 until \`vipr ctl route failback\`, then moves back`, async () => {
    const from = daemon!.events.lines.length;
    expect(await activeNextHop(lab!, NET, daemon!.socket)).toBe('web1');
    try {
      await signalWebServer(lab!, 'web1', 'SIGSTOP'); // web1's HTTP check fails
      expect(await routeIsOn(daemon!, 'web2')).toBe(true);
    } finally {
      await signalWebServer(lab!, 'web1', 'SIGCONT');
    }
    expect(await daemon!.events.waitFor(/  server web1 down -> up /, WAIT_MS, from), daemon!.events.lines.slice(from).join('\n')).toBeDefined();
    expect((await serverState(daemon!, 'web1'))?.state).toBe('up');

    // Up, and well past the hold-down: with failback auto the route would be back by now.
    const upAt = Date.now();
    while (Date.now() - upAt < 3 * HOLD_DOWN_MS) {
      expect(await activeNextHop(lab!, NET, daemon!.socket)).toBe('web2');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await answeredBy(lab!, VIP)).toBe('web2');
    expect(daemon!.events.lines.slice(from).filter((l) => /  failback /.test(l))).toEqual([]);

    const failback = await viprCtl(lab!, ['route', 'failback'], { socket: daemon!.socket });
    expect(failback).toEqual({ code: 0, stdout: `${NET}: web2 -> web1\n`, stderr: '' });
    expect(await activeNextHop(lab!, NET, daemon!.socket)).toBe('web1'); // at once
    expect(await answeredBy(lab!, VIP)).toBe('web1');
    expect(await daemon!.events.waitFor(/  failback  \(failback by the operator\)  routes: 192\.168\.1\.32\/27 web2 -> web1$/, 2000, from), daemon!.events.lines.slice(from).join('\n')).toBeDefined();

    const again = await viprCtl(lab!, ['route', 'failback'], { socket: daemon!.socket });
    expect(again).toEqual({ code: 0, stdout: 'every route is on its preferred next hop\n', stderr: '' });
  });
});
