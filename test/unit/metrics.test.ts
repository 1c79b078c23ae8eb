// The Prometheus endpoint and `status`, without namespaces: the article's
// router in memory (MemoryPorts), the real ControlService and ControlServer on
// a Unix socket in a temp dir, and a MetricsServer on 127.0.0.1 (a port the
// kernel picks). Frames go through the data plane, then the metrics are
// scraped over HTTP as Prometheus would, and each one must say what the
// data plane's own counters say.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import type { ServerConfig } from '../../src/config/types.js';
import { ControlClient } from '../../src/control/client.js';
import { MetricsServer } from '../../src/control/metrics.js';
import { ControlServer } from '../../src/control/server.js';
import { ControlService } from '../../src/control/service.js';
import { StateStore } from '../../src/control/state-store.js';
import type { Status } from '../../src/control/status.js';
import { DROP_NAMES, PORT_COUNTER_NAMES, PUNT_NAMES } from '../../src/dataplane/counters.js';
import type { CheckContext } from '../../src/health/checks.js';
import { EventBus } from '../../src/health/events.js';
import { Failover } from '../../src/health/failover.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { ipv4Frame } from '../../src/packet/builder.js';
import { parseAddress } from '../../src/util/ipv4.js';
import { articleRouter, MAC, UP0, type ArticleRouter } from '../fixtures/article-router.js';
import { parseExposition, sampleKey, sampleValue as value } from '../exposition.js';

const server = (name: string, address: string) => ({ name, address: parseAddress(address), checks: [] }) as ServerConfig;
const SERVERS: ServerConfig[] = [server('web1', '192.168.1.2'), server('web2', '192.168.1.3'), server('web3', '192.168.1.4'), server('web4', '192.168.1.5')];
const HEALTH = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto' as const, notifyTimeoutMs: 10_000 };

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Rig {
  article: ArticleRouter;
  service: ControlService;
  socket: string;
  metrics: MetricsServer;
}

/** The daemon's wiring around the article's router: service, control socket, metrics (monitor never started). */
async function rig(): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-metrics-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const article = articleRouter({}, { keepSent: false });
  article.resolveAll();
  const router = article.router;
  const log = pino({ level: 'silent' });
  const events = new EventBus(log);
  const monitor = new HealthMonitor(HEALTH, { arp: router.resolver, icmp: undefined } as unknown as CheckContext);
  monitor.configure(SERVERS);
  const failover = new Failover(router.rib, monitor, events, HEALTH);
  const service = new ControlService({
    router, monitor, failover, events, store: new StateStore(join(dir, 'state.json')), log,
    servers: () => SERVERS, reload: async () => 'reloaded (test)', startedAt: Date.now(),
  });
  const socket = join(dir, 'vipr.sock');
  const control = new ControlServer({ socket, mode: '0660' }, service, log);
  await control.start();
  cleanups.push(() => control.stop());
  const metrics = new MetricsServer({ host: '127.0.0.1', port: 0 }, { router, monitor, events, commands: service.commands, log });
  await metrics.start();
  cleanups.push(() => metrics.stop());
  return { article, service, socket, metrics };
}

async function scrape(metrics: MetricsServer): Promise<Map<string, number>> {
  const response = await fetch(metrics.url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.text());
}

const fromClient = (dst: string, extra: Partial<Parameters<typeof ipv4Frame>[0]> = {}) =>
  ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst, ttl: 64, ...extra });

/** What goes through the data plane, and what the scrape must say about it. */
const TRAFFIC: { description: string; frame: Buffer; count: number; expect: [string, Record<string, string>][] }[] = [
  {
    description: 'to VIP 192.168.1.33: forwarded to 192.168.1.2 on lan0',
    frame: fromClient('192.168.1.33'), count: 10,
    expect: [['vipr_nexthop_packets_total', { via: '192.168.1.2' }]],
  },
  {
    description: 'to VIP 192.168.1.65: forwarded to 192.168.1.3 on lan0',
    frame: fromClient('192.168.1.65'), count: 3,
    expect: [['vipr_nexthop_packets_total', { via: '192.168.1.3' }]],
  },
  {
    description: 'TTL 1: dropped (ttlExceeded), ICMP time exceeded sent',
    frame: fromClient('192.168.1.33', { ttl: 1 }), count: 2,
    expect: [['vipr_drops_total', { reason: 'ttlExceeded' }], ['vipr_icmp_errors_sent_total', { type: 'timeExceeded' }]],
  },
  {
    description: 'into the unreachable 192.168.1.0/24: dropped, ICMP net unreachable sent',
    frame: fromClient('192.168.1.200'), count: 4,
    expect: [['vipr_drops_total', { reason: 'unreachableRoute' }], ['vipr_icmp_errors_sent_total', { type: 'netUnreachable' }]],
  },
  {
    description: 'into the blackhole 198.51.100.0/24: dropped silently',
    frame: fromClient('198.51.100.7'), count: 5,
    expect: [['vipr_drops_total', { reason: 'blackholeRoute' }]],
  },
  {
    description: 'a bad header checksum: dropped',
    frame: fromClient('192.168.1.33', { checksum: 0x1234 }), count: 1,
    expect: [['vipr_drops_total', { reason: 'badChecksum' }]],
  },
  {
    description: 'to the router itself (10.0.0.1): left to the kernel',
    frame: fromClient('10.0.0.1'), count: 6,
    expect: [['vipr_punts_total', { kind: 'local' }]],
  },
];

describe('metrics: what the data plane counted, scraped over HTTP', () => {
  it('matches the data plane counters after frames are pushed through', async () => {
    const { article, metrics } = await rig();
    const before = await scrape(metrics);
    for (const traffic of TRAFFIC) for (let i = 0; i < traffic.count; i++) article.receive(UP0, traffic.frame);
    const after = await scrape(metrics);

    for (const traffic of TRAFFIC) {
      for (const [name, labels] of traffic.expect) {
        expect(value(after, name, labels) - value(before, name, labels), `${traffic.description}: ${sampleKey(name, labels)}`).toBe(traffic.count);
      }
    }
    // Every counter of the data plane, series by series, is exactly what it holds now.
    const { counters, ports } = article.router;
    const stride = PORT_COUNTER_NAMES.length;
    const portMetric = { rxPackets: 'received_packets', rxBytes: 'received_bytes', txPackets: 'sent_packets', txBytes: 'sent_bytes', forwardedPackets: 'forwarded_packets' };
    ports.names.forEach((port, p) => {
      PORT_COUNTER_NAMES.forEach((counter, c) => {
        const name = `vipr_port_${portMetric[counter as keyof typeof portMetric]}_total`;
        expect(value(after, name, { port }), `${name} ${port}`).toBe(counters.ports[p * stride + c]);
      });
    });
    DROP_NAMES.forEach((reason, i) => expect(value(after, 'vipr_drops_total', { reason }), reason).toBe(counters.drops[i]));
    PUNT_NAMES.forEach((kind, i) => expect(value(after, 'vipr_punts_total', { kind }), kind).toBe(counters.punts[i]));
    expect(value(after, 'vipr_batches_total')).toBe(counters.batches);
    expect(value(after, 'vipr_port_forwarded_packets_total', { port: 'lan0' }) - value(before, 'vipr_port_forwarded_packets_total', { port: 'lan0' })).toBe(13);
    // Bytes per next-hop list: whole frames, as they left (same length as they came in).
    const bytes = (via: string) => value(after, 'vipr_nexthop_bytes_total', { via }) - value(before, 'vipr_nexthop_bytes_total', { via });
    expect(bytes('192.168.1.2')).toBe(10 * TRAFFIC[0].frame.length);
    expect(bytes('192.168.1.3')).toBe(3 * TRAFFIC[1].frame.length);
    expect(value(after, 'vipr_nexthop_bytes_total', { via: '192.168.1.2' })).toBe(article.router.tables.nextHops.bytesOf(article.router.tables.fib.lookup(0xc0a80121)));
    expect(value(after, 'vipr_port_received_packets_total', { port: 'up0' }) - value(before, 'vipr_port_received_packets_total', { port: 'up0' }))
      .toBe(TRAFFIC.reduce((sum, t) => sum + t.count, 0));
  });

  it('reports the FIB, the neighbour table and the routes', async () => {
    const { article, metrics } = await rig();
    const samples = await scrape(metrics);
    const { rib, resolver, tables } = article.router;
    expect(value(samples, 'vipr_fib_routes')).toBe(rib.size);
    expect(value(samples, 'vipr_fib_memory_bytes')).toBe(tables.fib.memoryBytes());
    expect(value(samples, 'vipr_fib_last_change_timestamp_seconds')).toBe(rib.lastChange / 1000);
    expect(value(samples, 'vipr_neighbor_entries')).toBe(resolver.table.size);
    const reachable = resolver.rows().filter((r) => r.state === 'reachable').length;
    expect(reachable).toBe(5); // web1..web4 and the upstream gateway answered
    expect(value(samples, 'vipr_neighbors', { state: 'reachable' })).toBe(reachable);
    expect(value(samples, 'vipr_neighbors', { state: 'failed' })).toBe(0);
    expect(value(samples, 'vipr_route_info', { prefix: '192.168.1.32/27', type: 'unicast', via: '192.168.1.2', active: '192.168.1.2', source: 'config' })).toBe(1);
    expect(value(samples, 'vipr_route_info', { prefix: '198.51.100.0/24', type: 'blackhole', via: '', active: '', source: 'config' })).toBe(1);
    // Process metrics come along (event-loop lag matters: the data plane shares the loop).
    expect(value(samples, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('follows server state, failovers, failbacks and control commands', async () => {
    const { metrics, socket } = await rig();
    const start = await scrape(metrics);
    for (const name of ['web1', 'web2', 'web3', 'web4']) {
      expect(value(start, 'vipr_server_state', { server: name, state: 'up' })).toBe(1);
      expect(value(start, 'vipr_server_state', { server: name, state: 'down' })).toBe(0);
      expect(value(start, 'vipr_failovers_total', { server: name })).toBe(0);
    }
    const client = await ControlClient.connect(socket);
    cleanups.push(async () => client.close());
    expect((await client.text('server drain web1')).ok).toBe(true);

    const drained = await scrape(metrics);
    expect(value(drained, 'vipr_server_state', { server: 'web1', state: 'draining' })).toBe(1);
    expect(value(drained, 'vipr_server_state', { server: 'web1', state: 'up' })).toBe(0);
    expect(value(drained, 'vipr_server_state_changes_total', { server: 'web1', state: 'draining' })).toBe(1);
    // web1 alone carried 192.168.1.32/27: the route is withdrawn, one failover.
    expect(value(drained, 'vipr_failovers_total', { server: 'web1' })).toBe(1);
    expect(value(drained, 'vipr_route_info', { prefix: '192.168.1.32/27', type: 'unicast', via: '192.168.1.2', active: 'withdrawn', source: 'config' })).toBe(1);

    expect((await client.text('server undrain web1')).ok).toBe(true);
    expect((await client.text('server drain nosuch')).ok).toBe(false);
    expect((await client.text('frobnicate')).ok).toBe(false);
    expect((await client.json('ping')).ok).toBe(true);

    const back = await scrape(metrics);
    expect(value(back, 'vipr_server_state', { server: 'web1', state: 'up' })).toBe(1);
    expect(value(back, 'vipr_server_state_changes_total', { server: 'web1', state: 'up' })).toBe(1);
    expect(value(back, 'vipr_failbacks_total', { server: 'web1' })).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'server drain', result: 'ok' })).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'server drain', result: 'error' })).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'server undrain', result: 'ok' })).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'invalid', result: 'error' })).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'ping', result: 'ok' })).toBe(1);
  });

  it('has every metric the sample Grafana dashboard queries', async () => {
    const { metrics } = await rig();
    const text = await (await fetch(metrics.url)).text();
    const dashboard = JSON.parse(await readFile(join(REPO_ROOT, 'grafana/vipr-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    const used = new Set(dashboard.panels.flatMap((panel) => panel.targets.flatMap((t) => t.expr.match(/\b(vipr|nodejs)_[a-z0-9_]+/g) ?? [])));
    expect(used.size).toBeGreaterThanOrEqual(8);
    for (const name of used) expect(text, name).toContain(`# TYPE ${name} `);
  });

  it('answers /metrics only, GET and HEAD only', async () => {
    const { metrics } = await rig();
    const base = metrics.url.replace(/\/metrics$/, '');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(metrics.url, { method: 'POST', body: 'x' })).status).toBe(405);
    const head = await fetch(metrics.url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await (await fetch(`${base}/`)).text()).toContain('/metrics');
  });

  it('refuses to start on a port in use, in one line', async () => {
    const { article, metrics, service } = await rig();
    const port = Number(new URL(metrics.url).port);
    const log = pino({ level: 'silent' });
    const events = new EventBus(log);
    const monitor = new HealthMonitor(HEALTH, { arp: article.router.resolver, icmp: undefined } as unknown as CheckContext);
    const second = new MetricsServer({ host: '127.0.0.1', port }, { router: article.router, monitor, events, commands: service.commands, log });
    await expect(second.start()).rejects.toThrow(`metrics: cannot listen on 127.0.0.1:${port}: the port is in use`);
    await second.stop();
  });
});

describe('metrics config', () => {
  const PORTS = 'interfaces:\n  - name: lan0\n';
  const errorOf = (text: string): string => {
    try {
      parseConfig(text, 'vipr.yaml');
    } catch (error) {
      if (error instanceof ConfigError) return error.message;
      throw error;
    }
    throw new Error('expected a ConfigError');
  };

  it.each([
    { description: 'absent: off', text: PORTS, metrics: undefined },
    { description: 'an empty section: on, loopback, port 9108', text: `${PORTS}metrics:\n`, metrics: { listen: { host: '127.0.0.1', port: 9108 } } },
    { description: 'an empty mapping: the same', text: `${PORTS}metrics: {}\n`, metrics: { listen: { host: '127.0.0.1', port: 9108 } } },
    { description: 'another address and port', text: `${PORTS}metrics: { listen: "10.0.0.1:9100" }\n`, metrics: { listen: { host: '10.0.0.1', port: 9100 } } },
  ])('$description', ({ text, metrics }) => {
    expect(parseConfig(text, 'vipr.yaml').metrics).toEqual(metrics);
  });

  it.each([
    { text: 'metrics: { listen: 9108 }', error: 'vipr.yaml:3:20: metrics.listen: expected ADDRESS:PORT such as "127.0.0.1:9108" (an IPv4 address and a TCP port from 1 to 65535), got 9108' },
    { text: 'metrics: { listen: "127.0.0.1" }', error: 'vipr.yaml:3:20: metrics.listen: expected ADDRESS:PORT such as "127.0.0.1:9108" (an IPv4 address and a TCP port from 1 to 65535), got "127.0.0.1"' },
    { text: 'metrics: { listen: "127.0.0.1:0" }', error: 'vipr.yaml:3:20: metrics.listen: expected ADDRESS:PORT such as "127.0.0.1:9108" (an IPv4 address and a TCP port from 1 to 65535), got "127.0.0.1:0"' },
    { text: 'metrics: { listen: "127.0.0.256:9108" }', error: 'vipr.yaml:3:20: metrics.listen: "127.0.0.256" is not an IPv4 address' },
    { text: 'metrics: { lisen: "127.0.0.1:9108" }', error: 'vipr.yaml:3:12: metrics.lisen: unknown key; did you mean "listen"?' },
    { text: 'metrics: on', error: 'vipr.yaml:3:10: metrics: expected a mapping (key: value), got "on"' },
  ])('refuses $text in one line', ({ text, error }) => {
    const message = errorOf(`${PORTS}${text}\n`);
    expect(message.startsWith(error), message).toBe(true);
    expect(message).not.toContain('\n');
  });
});

describe('status', () => {
  it('rates over two samples a second apart, then at once from the kept sample', async () => {
    const { article, service } = await rig();
    const session = { transaction: null };
    // The first status takes a sample now and another a second later: frames pushed meanwhile are the rate.
    const pending = service.handle({ command: 'status' }, session);
    for (let i = 0; i < 100; i++) article.receive(UP0, fromClient('192.168.1.33'));
    const first = await pending;
    const status = first.result as Status;
    expect(status.intervalSeconds).toBeGreaterThanOrEqual(0.9);
    const up0 = status.ports.find((p) => p.name === 'up0')!;
    const lan0 = status.ports.find((p) => p.name === 'lan0')!;
    expect(up0.rxPacketsPerSecond * status.intervalSeconds).toBeCloseTo(100, 0);
    expect(lan0.forwardedPerSecond * status.intervalSeconds).toBeCloseTo(100, 0);
    expect(up0.rxBitsPerSecond).toBeCloseTo(up0.rxPacketsPerSecond * fromClient('192.168.1.33').length * 8, 0);
    const vip = status.routes.find((r) => r.prefix === '192.168.1.32/27')!;
    expect(vip).toMatchObject({ active: '192.168.1.2', port: 'lan0', sharedNextHop: false });
    expect(vip.packetsPerSecond! * status.intervalSeconds).toBeCloseTo(100, 0);
    expect(status.routes.find((r) => r.prefix === '198.51.100.0/24')).toMatchObject({ active: null, packetsPerSecond: null });
    expect(status.servers.map((s) => [s.name, s.state])).toEqual([['web1', 'up'], ['web2', 'up'], ['web3', 'up'], ['web4', 'up']]);
    expect(status.servers[0].routes).toEqual(['192.168.1.32/27']);

    expect(first.lines[0]).toMatch(/^uptime \d+s {2}routes \d+ {2}neighbors 5 {2}last route change .* {2}rates over 1\.\ds$/);
    expect(first.lines).toContainEqual(expect.stringMatching(/^PORT\s+STATE\s+RX PKT\/S\s+RX BIT\/S\s+TX PKT\/S/));
    expect(first.lines).toContainEqual(expect.stringMatching(/^up0\s+up\s+\d/));
    expect(first.lines).toContainEqual(expect.stringMatching(/^192\.168\.1\.32\/27\s+192\.168\.1\.2\s+\d+(\.\d+)?\s+lan0\s+via 192\.168\.1\.2$/));
    expect(first.lines).toContainEqual(expect.stringMatching(/^web1\s+192\.168\.1\.2\s+up\s+/));

    // A second status (top's next screen) needs no wait: the first one's sample
    // is the base. Shown by order, not by the clock: it answers before a timer
    // set now for half the sampling interval fires, which it could not if it
    // waited on a timer of its own for a new sample (however busy the machine).
    const answer = service.handle({ command: 'status' }, session);
    const halfInterval = new Promise<'timer'>((resolve) => setTimeout(() => resolve('timer'), 500));
    expect(await Promise.race([answer.then(() => 'answer' as const), halfInterval])).toBe('answer');
    const second = (await answer).result as Status;
    expect(second.intervalSeconds).toBeGreaterThanOrEqual(0.9);
    expect(second.intervalSeconds).toBeLessThan(5);
  });
});
