// Failover as scenario tables (Katran's fixtures, undici's balanced-pool
// tests): the article's router in memory, a HealthMonitor whose probes answer
// from a script, a Failover and an EventBus. Each row says what every server
// answers in each probe round and what must follow: the active next hop of
// every route, the events, and (after every step) where a frame to each VIP
// really leaves the data plane.
//
// Time is vitest's fake clock, performance.now() included: the monitor's
// timers, the upSince stamps and the hold-down timer all read it, so a row
// can say "the route comes back in round 9, not round 8".
//
// The probes' real network behaviour (ARP, ICMP) is covered by the lab tests;
// tcp and http checks against real sockets are in health.test.ts.

import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { articleRouter, MAC, UP0, type ArticleRouter } from '../fixtures/article-router.js';
import type { CheckConfig, HealthConfig, RouteConfig, ServerConfig } from '../../src/config/types.js';
import type { CheckContext } from '../../src/health/checks.js';
import { EventBus, type ViprEvent } from '../../src/health/events.js';
import { Failover } from '../../src/health/failover.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { icmpEcho, ipv4Frame } from '../../src/packet/builder.js';
import { formatAddress, parseAddress, parsePrefix } from '../../src/util/ipv4.js';

// ---- the network -----------------------------------------------------------

type ServerName = 'web1' | 'web2' | 'web3';
const SERVER_NAMES: ServerName[] = ['web1', 'web2', 'web3'];
const ADDRESS: Record<ServerName, number> = {
  web1: parseAddress('192.168.1.2'),
  web2: parseAddress('192.168.1.3'),
  web3: parseAddress('192.168.1.4'),
};
const SERVER_BY_ADDRESS = new Map(SERVER_NAMES.map((name) => [ADDRESS[name], name]));

/** Ordered next hops by server name, as the config loader hands them over. */
const unicast = (prefix: string, via: ServerName[], line: number): RouteConfig => ({
  prefix: parsePrefix(prefix), type: 'unicast', via: via.map((server) => ({ server, address: ADDRESS[server] })), sourceLine: line,
});

/**
 * The table's routes, in the column order of `active` below. .64 and .96
 * share web2 as primary with different backups, so draining web2 moves
 * two routes two ways at once.
 */
const ROUTES: RouteConfig[] = [
  unicast('192.168.1.32/27', ['web1', 'web2'], 1),
  unicast('192.168.1.64/27', ['web2', 'web3'], 2),
  unicast('192.168.1.96/27', ['web2', 'web1'], 3),
  { prefix: parsePrefix('192.168.1.0/24'), type: 'unreachable', via: [], sourceLine: 4 },
  { prefix: parsePrefix('0.0.0.0/0'), type: 'unicast', via: [{ address: parseAddress('10.0.0.254') }], sourceLine: 5 },
];
/** One VIP inside each table route, same order. */
const VIPS = ['192.168.1.33', '192.168.1.65', '192.168.1.97'];

const INTERVAL_MS = 100;
const HEALTH: HealthConfig = {
  intervalMs: INTERVAL_MS, timeoutMs: 50, rise: 2, fall: 3,
  // 4.5 rounds: a server that comes up in round N carries routes again after round N+4, in round N+5.
  holdDownMs: 450,
  failback: 'auto', notifyTimeoutMs: 1_000,
};

/** web1 and web3 are checked by ARP, web2 by ICMP: both probe paths of the CheckContext are scripted. */
const DEFAULT_CHECKS: Record<ServerName, CheckConfig[]> = {
  web1: [{ type: 'arp' }],
  web2: [{ type: 'icmp' }],
  web3: [{ type: 'arp' }],
};

const MAC_OF: Record<ServerName, string> = { web1: MAC.web1, web2: MAC.web2, web3: MAC.web3 };

// ---- the rig ---------------------------------------------------------------

type Probe = 'ok' | 'fail';

interface Rig {
  article: ArticleRouter;
  monitor: HealthMonitor;
  failover: Failover;
  /** What each server answers to its next probes. */
  answers: Record<ServerName, Probe>;
  /** Probes run so far, per server. */
  probes: Record<ServerName, number>;
  /** Events published since the last take. */
  events: ViprEvent[];
  /** Runs the next probe round: the clock moves to it and every check runs once. */
  round(): Promise<void>;
}

const rigs: Rig[] = [];

async function rig(options: { health?: Partial<HealthConfig>; checks?: Partial<Record<ServerName, CheckConfig[]>>; routes?: RouteConfig[] } = {}): Promise<Rig> {
  const health = { ...HEALTH, ...options.health };
  const article = articleRouter({ routes: options.routes ?? ROUTES });
  article.resolveAll();
  const answers: Record<ServerName, Probe> = { web1: 'ok', web2: 'ok', web3: 'ok' };
  const probes: Record<ServerName, number> = { web1: 0, web2: 0, web3: 0 };
  const answer = async (address: number) => {
    const name = SERVER_BY_ADDRESS.get(address);
    if (name === undefined) throw new Error(`probe of ${formatAddress(address)}, which is no server of the table`);
    probes[name]++;
    return answers[name] === 'ok';
  };
  const context: CheckContext = { arp: { probe: answer }, icmp: { ping: answer } as unknown as CheckContext['icmp'] };
  const servers: ServerConfig[] = SERVER_NAMES.map((name) => ({ name, address: ADDRESS[name], checks: options.checks?.[name] ?? DEFAULT_CHECKS[name] }));
  const monitor = new HealthMonitor(health, context);
  monitor.configure(servers);
  const events = new EventBus(pino({ level: 'silent' }));
  const failover = new Failover(article.router.rib, monitor, events, health);
  const published: ViprEvent[] = [];
  events.subscribe((event) => published.push(event));
  monitor.start();
  // With one check per server every first run is due at once (delay 0), then one each interval.
  let nextRoundIn = 0;
  const r: Rig = {
    article, monitor, failover, answers, probes, events: published,
    async round() {
      await vi.advanceTimersByTimeAsync(nextRoundIn);
      nextRoundIn = INTERVAL_MS;
    },
  };
  rigs.push(r);
  return r;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date', 'performance'] });
});

afterEach(() => {
  for (const r of rigs.splice(0)) {
    r.monitor.stop();
    r.failover.stop();
  }
  vi.useRealTimers();
});

/** "web1 up -> down; 192.168.1.32/27 web1 -> web2": what a row expects of one event. */
function describeEvent(event: ViprEvent): string {
  const head = event.type === 'server' ? `${event.server} ${event.oldState} -> ${event.newState}` : `${event.type}${event.server ? ` ${event.server}` : ''}`;
  const moves = event.routesMoved.map((m) => `${m.prefix} ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`);
  return [head, ...moves].join('; ');
}

/** The active next hop of each table route, as a row writes it: "web1 web2 web2", "-" for withdrawn. */
function activeColumns(r: Rig): string {
  return ROUTES.slice(0, VIPS.length).map((config) => {
    const route = r.article.router.rib.route(config.prefix)!;
    const active = r.article.router.rib.activeNextHop(route);
    return active === undefined ? '-' : SERVER_BY_ADDRESS.get(active) ?? formatAddress(active);
  }).join(' ');
}

const fromClient = (dst: string, id = 1) => ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst, ttl: 64, id, payload: icmpEcho(id, 1, 8) });

/**
 * Where a frame to each VIP really goes, in the same notation: the server
 * whose MAC it leaves lan0 with, or "-" when the router answers on up0 with
 * ICMP Destination Unreachable instead of forwarding (or staying silent).
 */
function forwardingColumns(r: Rig): string {
  const { article } = r;
  article.up0.take();
  article.lan0.take();
  return VIPS.map((vip, k) => {
    article.receive(UP0, fromClient(vip, k + 1));
    const out = article.lan0.take();
    const back = article.up0.take();
    if (out.length === 1 && back.length === 0) {
      const dstMac = [...out[0].subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
      return SERVER_NAMES.find((name) => MAC_OF[name] === dstMac) ?? `unknown MAC ${dstMac}`;
    }
    if (out.length === 0 && back.length === 1 && isUnreachable(back[0])) return '-';
    return `${out.length} frames on lan0, ${back.length} on up0`;
  }).join(' ');
}

/** An ICMP Destination Unreachable to the client, quoting a frame it sent. */
function isUnreachable(frame: Buffer): boolean {
  const ihl = (frame[14] & 0x0f) * 4;
  return frame.readUInt16BE(12) === 0x0800
    && frame.subarray(0, 6).equals(Buffer.from(MAC.client.split(':').map((h) => parseInt(h, 16))))
    && frame[23] === 1 // ICMP
    && frame[14 + ihl] === 3 // Destination Unreachable
    && formatAddress(frame.readUInt32BE(30)) === '10.0.0.2';
}

// ---- the table -------------------------------------------------------------

type Step =
  /** `repeat` probe rounds (default 1) in which the servers named answer so; the others answer ok. */
  | { probe: Partial<Record<ServerName, Probe>>; repeat?: number; active: string; events?: string[] }
  /** Operator actions: no clock moves and no probe runs. */
  | { drain: ServerName; active: string; events?: string[] }
  | { undrain: ServerName; active: string; events?: string[] }
  | { failback: true; active: string; events?: string[] };

interface Scenario {
  description: string;
  health?: Partial<HealthConfig>;
  checks?: Partial<Record<ServerName, CheckConfig[]>>;
  steps: Step[];
}

const ALL_OK: Partial<Record<ServerName, Probe>> = {};
const R32 = '192.168.1.32/27';
const R64 = '192.168.1.64/27';
const R96 = '192.168.1.96/27';

const scenarios: Scenario[] = [
  {
    description: 'fall=3: the route moves on the third failure in a row, not before',
    steps: [
      { probe: ALL_OK, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2' },
    ],
  },
  {
    description: 'a success in between restarts the failure count',
    steps: [
      { probe: { web1: 'fail' }, repeat: 2, active: 'web1 web2 web2' },
      { probe: ALL_OK, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, repeat: 2, active: 'web1 web2 web2' },
      { probe: ALL_OK, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, repeat: 2, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
    ],
  },
  {
    description: 'a per-check fall overrides the health default',
    checks: { web1: [{ type: 'arp', fall: 1 }] },
    steps: [
      { probe: ALL_OK, active: 'web1 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
    ],
  },
  {
    description: 'rise=2 (no hold-down): the server is up on the second success in a row, and a failure in between restarts the count',
    health: { holdDownMs: 0 },
    steps: [
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: ALL_OK, active: 'web2 web2 web2' },
      { probe: { web1: 'fail' }, active: 'web2 web2 web2' },
      { probe: ALL_OK, active: 'web2 web2 web2' },
      { probe: ALL_OK, active: 'web1 web2 web2', events: [`web1 down -> up; ${R32} web2 -> web1`] },
    ],
  },
  {
    description: 'hold-down: routes return only after holdDownMs of continuous up (up in round 4 at 400 ms, back at 851 ms)',
    steps: [
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: ALL_OK, active: 'web2 web2 web2' },
      // Up, but not for long enough: the route stays on the backup.
      { probe: ALL_OK, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      { probe: ALL_OK, repeat: 4, active: 'web2 web2 web2' },
      { probe: ALL_OK, active: 'web1 web2 web2', events: [`failback web1; ${R32} web2 -> web1`] },
      { probe: ALL_OK, repeat: 5, active: 'web1 web2 web2' },
    ],
  },
  {
    description: 'a flapping server (down and up faster than the hold-down) never drags routes back; once steady, they return',
    steps: [
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: ALL_OK, repeat: 2, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: ['web1 up -> down'] },
      { probe: ALL_OK, repeat: 2, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: ['web1 up -> down'] },
      { probe: ALL_OK, repeat: 2, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      // The first up's hold-down timer fired long ago; only this up's counts.
      { probe: ALL_OK, repeat: 4, active: 'web2 web2 web2' },
      { probe: ALL_OK, active: 'web1 web2 web2', events: [`failback web1; ${R32} web2 -> web1`] },
    ],
  },
  {
    description: 'every next hop down: the route is withdrawn (ICMP unreachable, not silence); one back up carries it at once, the preferred one after its hold-down',
    steps: [
      { probe: { web1: 'fail', web2: 'fail' }, repeat: 2, active: 'web1 web2 web2' },
      // Both fall in the same round: web1's result is recorded first, while web2 still counts as up.
      {
        probe: { web1: 'fail', web2: 'fail' }, active: '- web3 -',
        events: [`web1 up -> down; ${R32} web1 -> web2`, `web2 up -> down; ${R32} web2 -> withdrawn; ${R64} web2 -> web3; ${R96} web2 -> withdrawn`],
      },
      { probe: { web1: 'fail', web2: 'fail' }, repeat: 3, active: '- web3 -' },
      { probe: { web1: 'fail' }, active: '- web3 -' },
      // Nothing stable to wait for: a server just up beats a withdrawn route. .64 keeps web3 until web2's hold-down.
      { probe: { web1: 'fail' }, active: 'web2 web3 web2', events: [`web2 down -> up; ${R32} none -> web2; ${R96} none -> web2`] },
      { probe: { web1: 'fail' }, repeat: 4, active: 'web2 web3 web2' },
      { probe: { web1: 'fail' }, active: 'web2 web2 web2', events: [`failback web2; ${R64} web3 -> web2`] },
    ],
  },
  {
    description: 'drain moves every route off a server at once, without waiting for checks; undrain returns them without a hold-down',
    steps: [
      { probe: ALL_OK, active: 'web1 web2 web2' },
      { drain: 'web2', active: 'web1 web3 web1', events: [`web2 up -> draining; ${R64} web2 -> web3; ${R96} web2 -> web1`] },
      // Still checked, still healthy, carries nothing.
      { probe: ALL_OK, repeat: 8, active: 'web1 web3 web1' },
      { undrain: 'web2', active: 'web1 web2 web2', events: [`web2 draining -> up; ${R64} web3 -> web2; ${R96} web1 -> web2`] },
      { probe: ALL_OK, repeat: 8, active: 'web1 web2 web2' },
    ],
  },
  {
    description: 'draining every next hop of a route withdraws it',
    steps: [
      { drain: 'web1', active: 'web2 web2 web2', events: [`web1 up -> draining; ${R32} web1 -> web2`] },
      { drain: 'web2', active: '- web3 -', events: [`web2 up -> draining; ${R32} web2 -> withdrawn; ${R64} web2 -> web3; ${R96} web2 -> withdrawn`] },
      { probe: ALL_OK, repeat: 2, active: '- web3 -' },
      { undrain: 'web1', active: 'web1 web3 web1', events: [`web1 draining -> up; ${R32} none -> web1; ${R96} none -> web1`] },
    ],
  },
  {
    description: 'manual failback: routes stay on the backup, past the hold-down, until failover.failback()',
    health: { failback: 'manual' },
    steps: [
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: ALL_OK, repeat: 2, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      { probe: ALL_OK, repeat: 10, active: 'web2 web2 web2' },
      { failback: true, active: 'web1 web2 web2', events: [`failback; ${R32} web2 -> web1`] },
      // Nothing left to move: no event.
      { failback: true, active: 'web1 web2 web2' },
    ],
  },
  {
    description: 'manual failback: a backup that fails hands its routes to the recovered primary without the operator',
    health: { failback: 'manual' },
    steps: [
      { probe: { web1: 'fail' }, repeat: 3, active: 'web2 web2 web2', events: [`web1 up -> down; ${R32} web1 -> web2`] },
      { probe: ALL_OK, repeat: 7, active: 'web2 web2 web2', events: ['web1 down -> up'] },
      {
        probe: { web2: 'fail' }, repeat: 3, active: 'web1 web3 web1',
        events: [`web2 up -> down; ${R32} web2 -> web1; ${R64} web2 -> web3; ${R96} web2 -> web1`],
      },
    ],
  },
];

describe('failover scenarios', () => {
  it.each(scenarios)('$description', async (scenario) => {
    const r = await rig({ health: scenario.health, checks: scenario.checks });
    expect(activeColumns(r)).toBe('web1 web2 web2');
    expect(forwardingColumns(r)).toBe('web1 web2 web2');
    for (const [index, step] of scenario.steps.entries()) {
      const where = `step ${index + 1}`;
      const before = { ...r.probes };
      if ('probe' in step) {
        const repeat = step.repeat ?? 1;
        for (let k = 0; k < repeat; k++) {
          for (const name of SERVER_NAMES) r.answers[name] = step.probe[name] ?? 'ok';
          await r.round();
        }
        // Every server probed exactly once per round: the rounds are the table's rows.
        expect(r.probes, where).toEqual({ web1: before.web1 + repeat, web2: before.web2 + repeat, web3: before.web3 + repeat });
      } else {
        if ('drain' in step) expect(r.monitor.drain(step.drain), where).toBe(true);
        else if ('undrain' in step) expect(r.monitor.undrain(step.undrain), where).toBe(true);
        else r.failover.failback();
        expect(r.probes, `${where}: operator actions do not wait for probes`).toEqual(before);
      }
      expect(r.events.splice(0).map(describeEvent), where).toEqual(step.events ?? []);
      expect(activeColumns(r), where).toBe(step.active);
      // The data plane agrees with the RIB: frames leave with the active server's MAC, or get ICMP unreachable.
      expect(forwardingColumns(r), where).toBe(step.active);
    }
  });
});

// ---- single facts ------------------------------------------------------------

describe('failover mechanics', () => {
  it('the fake clock drives performance.now(): hold-down arithmetic runs on test time', async () => {
    const start = performance.now();
    const r = await rig();
    await r.round();
    await r.round();
    expect(performance.now() - start).toBe(INTERVAL_MS);
  });

  it('one slot rewrite: the FIB leaf keeps its next-hop index, the slot changes its neighbour', async () => {
    // .160/27 has the same ordered list as .32/27, so the same slot.
    const routes = [...ROUTES, unicast('192.168.1.160/27', ['web1', 'web2'], 6)];
    const r = await rig({ routes });
    const { rib, tables } = r.article.router;
    const vip = parseAddress('192.168.1.33');
    const leafBefore = tables.fib.lookup(vip);
    const fibBefore = tables.fib;
    expect(tables.fib.lookup(parseAddress('192.168.1.161'))).toBe(leafBefore);
    expect(rib.route(parsePrefix(R32))!.nextHop).toBe(leafBefore);
    expect(formatAddress(tables.nextHops.gateway[leafBefore])).toBe('192.168.1.2');

    r.answers.web1 = 'fail';
    for (let k = 0; k < 3; k++) await r.round();
    expect(r.events.map(describeEvent)).toEqual([`web1 up -> down; ${R32} web1 -> web2; 192.168.1.160/27 web1 -> web2`]);

    // The same table object, the same leaf, the same slot: only the slot's contents changed.
    expect(tables.fib).toBe(fibBefore);
    expect(tables.fib.lookup(vip)).toBe(leafBefore);
    expect(tables.fib.lookup(parseAddress('192.168.1.161'))).toBe(leafBefore);
    expect(rib.route(parsePrefix(R32))!.nextHop).toBe(leafBefore);
    expect(formatAddress(tables.nextHops.gateway[leafBefore])).toBe('192.168.1.3');

    // Forwarding proof: a frame to .33 leaves lan0 with web2's MAC, TTL decremented, nothing else touched.
    r.article.lan0.take();
    r.article.receive(UP0, fromClient('192.168.1.33', 7));
    const out = r.article.lan0.take();
    expect(out.map((f) => f.toString('hex'))).toEqual([
      ipv4Frame({ dstMac: MAC.web2, srcMac: MAC.lan0, src: '10.0.0.2', dst: '192.168.1.33', ttl: 63, id: 7, payload: icmpEcho(7, 1, 8) }).toString('hex'),
    ]);
  });

  it('a withdrawn route answers a frame to its VIP with ICMP Destination Unreachable (net) on up0', async () => {
    const r = await rig();
    r.answers.web1 = 'fail';
    r.answers.web2 = 'fail';
    for (let k = 0; k < 3; k++) await r.round();
    r.article.up0.take();
    r.article.lan0.take();
    const offending = fromClient('192.168.1.33', 9);
    r.article.receive(UP0, offending);
    expect(r.article.lan0.take()).toHaveLength(0);
    const [error, ...more] = r.article.up0.take();
    expect(more).toHaveLength(0);
    expect(error.subarray(0, 6).toString('hex')).toBe(MAC.client.replaceAll(':', ''));
    expect(error.subarray(6, 12).toString('hex')).toBe(MAC.up0.replaceAll(':', ''));
    expect(formatAddress(error.readUInt32BE(26))).toBe('10.0.0.1');
    expect(formatAddress(error.readUInt32BE(30))).toBe('10.0.0.2');
    expect([error[34], error[35]]).toEqual([3, 0]);
    // The quoted header is the offending frame's.
    expect(error.subarray(42, 62).equals(offending.subarray(14, 34))).toBe(true);
  });

  it('events and the monitor say why: the failing check, its fall count and its reason', async () => {
    const r = await rig();
    r.answers.web2 = 'fail';
    for (let k = 0; k < 3; k++) await r.round();
    const [event] = r.events;
    expect(event).toMatchObject({
      type: 'server', server: 'web2', oldState: 'up', newState: 'down',
      reason: 'icmp failed 3 times: no echo reply within 50 ms',
    });
    const web2 = r.monitor.get('web2')!;
    expect(web2.state).toBe('down');
    expect(web2.checks[0]).toMatchObject({ up: false, failures: 3, successes: 0 });
    expect(web2.checks[0].last).toMatchObject({ ok: false, reason: 'no echo reply within 50 ms' });
  });

  it('drain and undrain twice: the second call is refused and publishes nothing', async () => {
    const r = await rig();
    expect(r.monitor.drain('web1')).toBe(true);
    expect(r.monitor.drain('web1')).toBe(false);
    expect(r.monitor.undrain('web1')).toBe(true);
    expect(r.monitor.undrain('web1')).toBe(false);
    expect(r.events.map(describeEvent)).toEqual([`web1 up -> draining; ${R32} web1 -> web2`, `web1 draining -> up; ${R32} web2 -> web1`]);
  });

  it('stop() cancels a pending hold-down: nothing moves afterwards', async () => {
    const r = await rig();
    r.answers.web1 = 'fail';
    for (let k = 0; k < 3; k++) await r.round();
    r.answers.web1 = 'ok';
    for (let k = 0; k < 2; k++) await r.round();
    r.events.splice(0);
    r.monitor.stop();
    r.failover.stop();
    await vi.advanceTimersByTimeAsync(10 * HEALTH.holdDownMs);
    expect(r.events).toEqual([]);
    expect(activeColumns(r)).toBe('web2 web2 web2');
  });
});

// ---- reload: monitor.configure() on a running monitor -------------------------

describe('reload (monitor.configure while running)', () => {
  const serversWith = (checks: Partial<Record<ServerName, CheckConfig[]>>): ServerConfig[] =>
    SERVER_NAMES.map((name) => ({ name, address: ADDRESS[name], checks: checks[name] ?? DEFAULT_CHECKS[name] }));

  async function web1Down(): Promise<Rig> {
    const r = await rig();
    r.answers.web1 = 'fail';
    for (let k = 0; k < 3; k++) await r.round();
    expect(r.events.splice(0).map(describeEvent)).toEqual([`web1 up -> down; ${R32} web1 -> web2`]);
    return r;
  }

  it('new checks on a down server start down: failures keep it down, `rise` successes bring it up', async () => {
    const r = await web1Down();
    r.monitor.configure(serversWith({ web1: [{ type: 'icmp' }] }));
    await vi.advanceTimersByTimeAsync(0); // a reload runs every check at once
    for (let k = 0; k < 3; k++) await r.round();
    expect(r.monitor.get('web1')!.state).toBe('down');
    expect(r.events.map(describeEvent)).toEqual([]);
    expect(activeColumns(r)).toBe('web2 web2 web2');
    r.answers.web1 = 'ok';
    await r.round();
    expect(r.events.map(describeEvent)).toEqual([]);
    await r.round();
    expect(r.events.map(describeEvent)).toEqual(['web1 down -> up']);
  });

  it('a down server whose checks are all removed is up (a server without checks always is)', async () => {
    const r = await web1Down();
    r.monitor.configure(serversWith({ web1: [] }));
    await vi.advanceTimersByTimeAsync(10 * INTERVAL_MS);
    expect(r.monitor.get('web1')).toMatchObject({ state: 'up', reason: 'no checks configured', checks: [] });
    // What the daemon's reload does after configure().
    r.article.router.rib.reselect();
    expect(activeColumns(r)).toBe('web1 web2 web2');
  });

  it('changed health defaults apply to checks whose own config did not change', async () => {
    const r = await rig();
    await r.round();
    r.monitor.configure(serversWith({}), { ...HEALTH, fall: 1, intervalMs: 2 * INTERVAL_MS });
    await vi.advanceTimersByTimeAsync(0);
    const before = r.probes.web1;
    await vi.advanceTimersByTimeAsync(2 * INTERVAL_MS - 1);
    expect(r.probes.web1).toBe(before); // the new interval
    r.answers.web1 = 'fail';
    await vi.advanceTimersByTimeAsync(1);
    expect(r.events.map(describeEvent)).toEqual([`web1 up -> down; ${R32} web1 -> web2`]); // the new fall
  });
});
