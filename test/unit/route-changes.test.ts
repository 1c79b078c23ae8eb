// Route changes through the control service, as `vipr ctl apply` and
// `begin ... commit` send them: all or nothing (state file, RIB, FIB and
// neighbour table exactly as before when a change fails), and work that grows
// with the number of changes, not with its square.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerConfig } from '../../src/config/types.js';
import { parseRequest } from '../../src/control/grammar.js';
import { ControlError } from '../../src/control/protocol.js';
import { ControlService, type ControlContext, type Session } from '../../src/control/service.js';
import { StateStore } from '../../src/control/state-store.js';
import { Router } from '../../src/router/router.js';
import type { CheckContext } from '../../src/health/checks.js';
import { EventBus } from '../../src/health/events.js';
import { Failover } from '../../src/health/failover.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { MemoryPort } from '../../src/io/memory-port.js';
import type { RouteChange } from '../../src/rib/rib.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../../src/util/ipv4.js';
import { ARTICLE_ROUTES, routerConfig } from '../fixtures/article-router.js';
import { countWork } from '../work-meter.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SERVERS: ServerConfig[] = [2, 3, 4, 5].map((n) => ({ name: `web${n - 1}`, address: parseAddress(`192.168.1.${n}`), checks: [] }));
const HEALTH = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto' as const, notifyTimeoutMs: 10_000 };
const mac = (last: number) => Uint8Array.of(2, 0, 0, 0, 0, last);

/**
 * The article's router with a third, big subnet on lan0 (172.16.0.0/16), so
 * a change can name more gateways than the neighbour table holds.
 */
function bigRouter(maxEntries: number): Router {
  return new Router(
    [
      { name: 'up0', mac: mac(1), mtu: 1500, addresses: [{ address: parseAddress('10.0.0.1'), length: 24 }] },
      { name: 'lan0', mac: mac(2), mtu: 1500, addresses: [{ address: parseAddress('192.168.1.1'), length: 27 }, { address: parseAddress('172.16.0.1'), length: 16 }] },
    ],
    [new MemoryPort('up0', false), new MemoryPort('lan0', false)],
    routerConfig({ neighbors: { reachableMs: 30_000, retransmitMs: 1_000, probes: 3, queueLength: 4, maxEntries, requestsPerSecond: 100, requestBurst: 256 } }),
  );
}

interface Rig {
  router: Router;
  service: ControlService;
  stateFile: string;
  store: StateStore;
}

async function rig(maxEntries = 64, store?: (file: string) => StateStore): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-changes-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const stateFile = join(dir, 'state.json');
  const router = bigRouter(maxEntries);
  const log = pino({ level: 'silent' });
  const events = new EventBus(log);
  const monitor = new HealthMonitor(HEALTH, { arp: router.resolver, icmp: undefined } as unknown as CheckContext);
  monitor.configure(SERVERS);
  const stateStore = store ? store(stateFile) : new StateStore(stateFile);
  const context: ControlContext = {
    router, monitor, events, log, store: stateStore,
    failover: new Failover(router.rib, monitor, events, HEALTH),
    servers: () => SERVERS,
    reload: async () => 'reloaded (test)',
    startedAt: Date.now(),
  };
  return { router, service: new ControlService(context), stateFile, store: stateStore };
}

const session = (): Session => ({ transaction: null });

/** One request line through the service, as the socket server hands it over. */
async function send(r: Rig, s: Session, line: string): Promise<void> {
  await r.service.handle(parseRequest(line) as never, s);
}

async function refusal(promise: Promise<unknown>): Promise<ControlError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ControlError);
    return error as ControlError;
  }
  throw new Error('expected the request to be refused');
}

/** Everything a failed change must leave as it was. */
async function snapshot(r: Rig) {
  return {
    state: await readFile(r.stateFile, 'utf8').catch(() => '(none)'),
    routes: r.router.rib.routes().map((route) => `${formatPrefix(route.prefix)} ${route.type} ${route.via.map((v) => formatAddress(v.address)).join(',')} ${route.source}`),
    runtime: [...r.router.rib.runtimeChanges().keys()],
    fib: ['192.168.1.33', '192.168.1.65', '100.64.0.1', '100.64.4.1', '8.8.8.8'].map((a) => r.router.tables.fib.lookup(parseAddress(a))),
    neighbors: r.router.resolver.rows().map(({ ageMs: _age, ...row }) => row),
    neighborCount: r.router.resolver.table.size,
    nextHops: r.router.tables.nextHops.used,
  };
}

/** Addresses in 172.16.0.0/16 that something other than the change pins, to fill the neighbour table. */
const FILLERS = parseAddress('172.16.128.0');

/** 100.64.X.Y/24 via a gateway of its own in 172.16.0.0/16. */
const floodLine = (i: number) => `route add 100.${64 + (i >> 8)}.${i & 255}.0/24 via 172.16.${(i + 2) >> 8}.${(i + 2) & 255}`;

describe('a change that does not fit the neighbour table', () => {
  it('1,100 routes via 1,100 gateways in one transaction: EFULL, and state file, RIB, FIB and neighbours exactly as before', async () => {
    const r = await rig(1);
    const s = session();
    await send(r, s, 'route replace 192.168.1.32/27 via web2'); // an acknowledged change that must survive
    const before = await snapshot(r);

    await send(r, s, 'begin');
    let refused: ControlError | undefined;
    for (let i = 0; i < 1100; i++) refused ??= await send(r, s, floodLine(i)).then(() => undefined, (e: ControlError) => e);
    expect(refused?.code).toBe('EFULL');
    expect(refused?.message).toMatch(/neighbour table full: 1024 gateways at most, \d+ in use and \d+ more needed$/);
    expect((await refusal(send(r, s, 'commit'))).message).toMatch(/were refused; nothing applied/);
    expect(await snapshot(r)).toEqual(before);
  });

  it('two transactions that fit each on its own but not together: the second commit is refused with EFULL, nothing of it applied', async () => {
    const r = await rig(1);
    const first = session();
    const second = session();
    await send(r, first, 'begin');
    await send(r, second, 'begin');
    for (let i = 0; i < 600; i++) await send(r, first, floodLine(i));
    for (let i = 600; i < 1200; i++) await send(r, second, floodLine(i));
    await send(r, first, 'commit');
    const before = await snapshot(r);
    const error = await refusal(send(r, second, 'commit'));
    expect(error.code).toBe('EFULL');
    expect(error.message).toMatch(/^change \d+: next hop 172\.16\.\d+\.\d+: neighbour table full: 1024 gateways at most, 60\d in use/);
    expect(await snapshot(r)).toEqual(before);
  });

  it('the queued change that would overflow is refused at once, naming the limit', async () => {
    const r = await rig(1);
    const s = session();
    await send(r, s, 'begin');
    let refused: ControlError | undefined;
    for (let i = 0; i < 1100 && !refused; i++) refused = await send(r, s, floodLine(i)).then(() => undefined, (e: ControlError) => e);
    expect(refused?.code).toBe('EFULL');
    expect(refused?.message).toMatch(/^change \d+: next hop 172\.16\.\d+\.\d+: neighbour table full: 1024 gateways at most/);
  });

  it('a commit that fails half-way (the table filled up while the state was saved) rolls back its pins and the state file', async () => {
    let fill: (() => void) | undefined;
    /** A save after which the neighbour table is full, as if something else had taken the room meanwhile. */
    class FillingStore extends StateStore {
      override async save(changes: Parameters<StateStore['save']>[0]): Promise<void> {
        await super.save(changes);
        fill?.();
      }
    }
    const r = await rig(1, (file) => new FillingStore(file));
    const s = session();
    await send(r, s, 'route replace 192.168.1.32/27 via web2');
    const resolver = r.router.resolver;
    const lan0 = 1;
    const fillers: number[] = [];
    fill = () => {
      fill = undefined;
      // Leave room for 5 of the change's 10 gateways.
      while (resolver.table.capacity - resolver.table.size > 5) fillers.push(resolver.pinGateway(FILLERS + fillers.length, lan0));
    };
    const before = await snapshot(r);

    await send(r, s, 'begin');
    for (let i = 0; i < 10; i++) await send(r, s, floodLine(i));
    const error = await refusal(send(r, s, 'commit'));
    expect(error.code).toBe('EFULL');
    expect(error.message).toMatch(/nothing applied/);
    // The fillers stay pinned (unpinning them would let the LRU push learned entries out): compare without them.
    const after = await snapshot(r);
    const withoutFillers = (rows: typeof after.neighbors) => rows.filter((row) => row.address < FILLERS || row.address >= FILLERS + fillers.length);
    const routesOf = (state: string) => (JSON.parse(state) as { routes: unknown }).routes;
    expect(routesOf(after.state)).toEqual(routesOf(before.state)); // saved again as it was (a new savedAt)
    expect({ ...after, state: '', neighbors: withoutFillers(after.neighbors), neighborCount: after.neighborCount - fillers.length })
      .toEqual({ ...before, state: '' });
  });
});

describe('the RIB on its own: commit is all or nothing', () => {
  it('a commit whose gateways cannot all be pinned changes nothing and unpins what it pinned', () => {
    const router = bigRouter(1);
    const rib = router.rib;
    const resolver = router.resolver;
    const changes: RouteChange[] = Array.from({ length: 10 }, (_, i) => ({
      op: 'add', route: { prefix: parsePrefix(`100.64.${i}.0/24`), type: 'unicast', via: [{ address: parseAddress(`172.16.1.${i + 1}`) }] },
    }));
    const plan = rib.plan(changes);
    for (let n = 0; resolver.table.capacity - resolver.table.size > 5; n++) resolver.pinGateway(FILLERS + n, 1);
    const rows = resolver.rows().map(({ ageMs: _age, ...row }) => row);
    const routes = rib.routes();
    expect(() => rib.commit(plan)).toThrow(/neighbour table full/);
    expect(resolver.rows().map(({ ageMs: _age, ...row }) => row)).toEqual(rows);
    expect(rib.routes()).toEqual(routes);
    expect(router.tables.fib.lookup(parseAddress('100.64.3.1'))).toBe(router.tables.fib.lookup(parseAddress('100.64.200.1')));
  });
});

describe('the RIB on its own: a FIB that runs out of room mid-commit', () => {
  it('every edit made so far is undone: lookups, routes, pins and slots as before', () => {
    const router = bigRouter(64);
    const rib = router.rib;
    const fib = router.tables.fib;
    const probes = ['192.168.1.33', '192.168.1.65', '8.8.8.8', ...Array.from({ length: 10 }, (_, i) => `100.64.${i}.1`)].map(parseAddress);
    const lookups = () => probes.map((a) => fib.lookup(a));
    const changes: RouteChange[] = [
      { op: 'replace', route: { prefix: parsePrefix('192.168.1.32/27'), type: 'unicast', via: [{ address: parseAddress('192.168.1.3') }] } },
      { op: 'del', prefix: parsePrefix('192.168.1.64/27') },
      ...Array.from({ length: 10 }, (_, i): RouteChange => ({
        op: 'add', route: { prefix: parsePrefix(`100.64.${i}.0/24`), type: 'unicast', via: [{ address: parseAddress(`172.16.1.${i + 1}`) }] },
      })),
    ];
    const plan = rib.plan(changes);
    const before = { lookups: lookups(), routes: rib.routes(), pinned: router.resolver.rows().filter((r) => r.pinned).length, slots: router.tables.nextHops.used };
    // The LpmTable throws RangeError when its tbl8 groups run out; make the 6th edit do so.
    const insert = fib.insert.bind(fib);
    let edits = 0;
    fib.insert = (prefix, length, nextHop) => {
      if (++edits === 6) throw new RangeError('lpm: tbl8 exhausted (test)');
      insert(prefix, length, nextHop);
    };
    expect(() => rib.commit(plan)).toThrow('lpm: tbl8 exhausted (test); nothing applied');
    fib.insert = insert;
    expect(lookups()).toEqual(before.lookups);
    expect(rib.routes()).toEqual(before.routes);
    expect(router.resolver.rows().filter((r) => r.pinned).length).toBe(before.pinned);
    expect(router.tables.nextHops.used).toBe(before.slots);
    // And the RIB still works: the same changes, planned again, go through.
    rib.commit(rib.plan(changes));
    expect(fib.lookup(parseAddress('100.64.9.1'))).not.toBe(before.lookups.at(-1));
  });
});

describe('work grows with the number of changes, not its square', () => {
  /** Adds n routes in one transaction, then deletes them in another; the work of each. */
  async function transactions(n: number): Promise<{ add: number; del: number }> {
    const r = await rig(4096);
    const s = session();
    const lines = Array.from({ length: n }, (_, i) => `route add 100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via web${1 + (i % 4)}`);
    const add = await countWork(async () => {
      await send(r, s, 'begin');
      for (const line of lines) await send(r, s, line);
      await send(r, s, 'commit');
    });
    expect(r.router.rib.runtimeChanges().size).toBe(n);
    const del = await countWork(async () => {
      await send(r, s, 'begin');
      for (const line of lines) await send(r, s, `route del ${line.split(' ')[2]}`);
      await send(r, s, 'commit');
    });
    expect(r.router.rib.runtimeChanges().size).toBe(0);
    return { add, del };
  }

  it('a transaction of 8x the changes does at most 16x the work (adds, then deletes)', async () => {
    const small = await transactions(250);
    const large = await transactions(2000);
    expect(large.add / small.add).toBeLessThan(16);
    expect(large.del / small.del).toBeLessThan(16);
  });
});

describe('transactions still see their own changes', () => {
  it('add, del and add again of one prefix in one transaction', async () => {
    const r = await rig();
    const s = session();
    await send(r, s, 'begin');
    await send(r, s, 'route add 100.64.0.0/24 via web1');
    await send(r, s, 'route del 100.64.0.0/24');
    await send(r, s, 'route add 100.64.0.0/24 via web3');
    expect((await refusal(send(r, s, 'route add 100.64.0.0/24 via web2'))).code).toBe('EROUTEEXISTS');
    await send(r, s, 'abort');
    await send(r, s, 'begin');
    await send(r, s, 'route add 100.64.0.0/24 via web1');
    await send(r, s, 'route del 100.64.0.0/24');
    await send(r, s, 'route add 100.64.0.0/24 via web3');
    await send(r, s, 'commit');
    expect(formatAddress(r.router.tables.nextHops.gateway[r.router.tables.fib.lookup(parseAddress('100.64.0.9'))])).toBe('192.168.1.4');
    expect(JSON.parse(await readFile(r.stateFile, 'utf8')).routes).toEqual([
      { prefix: '100.64.0.0/24', type: 'unicast', via: [{ address: '192.168.1.4', server: 'web3' }] },
    ]);
  });

  it('a route whose only user was deleted in the same transaction frees its gateway and slot', async () => {
    const r = await rig();
    const s = session();
    const before = r.router.tables.nextHops.used;
    const pinnedBefore = r.router.resolver.rows().filter((row) => row.pinned).length;
    await send(r, s, 'route add 100.64.0.0/24 via 172.16.9.9');
    expect(r.router.tables.nextHops.used).toBe(before + 1);
    await send(r, s, 'begin');
    await send(r, s, 'route replace 100.64.0.0/24 via 172.16.9.10');
    await send(r, s, 'route del 100.64.0.0/24');
    await send(r, s, 'commit');
    expect(r.router.tables.nextHops.used).toBe(before);
    expect(r.router.resolver.rows().filter((row) => row.pinned).length).toBe(pinnedBefore);
    expect(ARTICLE_ROUTES.length).toBeGreaterThan(0);
  });
});

describe('questionable next hops and routes are refused, nothing changes', () => {
  const cases: { what: string; line: string; code: string; message: RegExp }[] = [
    { what: "a subnet's network address as next hop", line: 'route add 100.64.0.0/24 via 192.168.1.0', code: 'EBADNEXTHOP', message: /^next hop 192\.168\.1\.0 is the network address of lan0's subnet 192\.168\.1\.0\/27$/ },
    { what: "a subnet's broadcast address as next hop", line: 'route add 100.64.0.0/24 via 192.168.1.31', code: 'EBADNEXTHOP', message: /^next hop 192\.168\.1\.31 is the broadcast address of lan0's subnet 192\.168\.1\.0\/27$/ },
    { what: 'the upstream broadcast address as next hop', line: 'route replace 0.0.0.0/0 via 10.0.0.255', code: 'EBADNEXTHOP', message: /broadcast address of up0's subnet 10\.0\.0\.0\/24/ },
    { what: 'a broadcast address second in the list', line: 'route add 100.64.0.0/24 via web1, 172.16.255.255', code: 'EBADNEXTHOP', message: /172\.16\.255\.255 is the broadcast address of lan0's subnet 172\.16\.0\.0\/16/ },
    { what: "the router's own second address", line: 'route add 100.64.0.0/24 via 172.16.0.1', code: 'EBADNEXTHOP', message: /172\.16\.0\.1 is this router's own address \(lan0 172\.16\.0\.1\/16\)/ },
    { what: 'a trailing comma', line: 'route add 100.64.0.0/24 via web1,', code: 'EBADARGS', message: /^empty next hop after `web1,`/ },
    { what: 'a loopback next hop', line: 'route add 100.64.0.0/24 via 127.0.0.1', code: 'EBADNEXTHOP', message: /127\.0\.0\.1 is a loopback address and cannot be a next hop/ },
    { what: 'a route for loopback', line: 'route add 127.0.0.0/8 via web1', code: 'EBADPREFIX', message: /^127\.0\.0\.0\/8 is in 127\.0\.0\.0\/8 \(loopback\)/ },
    { what: 'a route inside loopback', line: 'route add 127.1.2.0/24 blackhole', code: 'EBADPREFIX', message: /^127\.1\.2\.0\/24 is in 127\.0\.0\.0\/8 \(loopback\)/ },
    { what: 'a route for multicast', line: 'route add 224.0.0.0/4 via web1', code: 'EBADPREFIX', message: /^224\.0\.0\.0\/4 is in 224\.0\.0\.0\/4 \(multicast\)/ },
    { what: 'a route inside multicast', line: 'route replace 239.1.1.0/24 unreachable', code: 'EBADPREFIX', message: /in 224\.0\.0\.0\/4 \(multicast\)/ },
    { what: 'a route for the limited broadcast', line: 'route add 255.255.255.255/32 via web1', code: 'EBADPREFIX', message: /^255\.255\.255\.255\/32 is the limited broadcast address/ },
    { what: 'a route for class E', line: 'route add 240.0.0.0/4 via web1', code: 'EBADPREFIX', message: /in 240\.0\.0\.0\/4 \(reserved\)/ },
    { what: 'a route for "this network"', line: 'route add 0.0.0.0/8 via web1', code: 'EBADPREFIX', message: /^0\.0\.0\.0\/8 is in 0\.0\.0\.0\/8 \("this network"\)/ },
    { what: 'a route inside "this network"', line: 'route add 0.1.0.0/16 via web1', code: 'EBADPREFIX', message: /in 0\.0\.0\.0\/8/ },
  ];
  it.each(cases)('$what: $code', async ({ line, code, message }) => {
    const r = await rig();
    const before = await snapshot(r);
    const error = await refusal(send(r, session(), line));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/\n/);
    expect(await snapshot(r)).toEqual(before);
  });

  it('the default route and routes beside the refused blocks are still taken', async () => {
    const r = await rig();
    const s = session();
    for (const line of ['route replace 0.0.0.0/0 via 10.0.0.254', 'route add 1.0.0.0/8 via web1', 'route add 126.0.0.0/8 via web1', 'route add 128.0.0.0/1 via web2', 'route add 223.255.255.0/24 via web1', 'route add 100.64.0.0/24 via 172.16.0.2, 192.168.1.30']) {
      await send(r, s, line);
    }
    expect(r.router.rib.runtimeChanges().size).toBe(6);
  });

  it('a saved state with such a route does not fit: the RIB refuses it at load', () => {
    const router = bigRouter(64);
    const runtime = new Map([['x', { prefix: parsePrefix('224.0.0.0/4'), type: 'unicast' as const, via: [{ address: parseAddress('192.168.1.2') }] }]]);
    expect(() => router.rib.load(ARTICLE_ROUTES, runtime)).toThrow(/224\.0\.0\.0\/4 is in 224\.0\.0\.0\/4 \(multicast\)/);
  });
});
