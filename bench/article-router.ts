// The article's router in memory: up0 towards the client, lan0 towards the
// web servers, the lab's routes, and MemoryPorts in place of NICs; and the
// control service's context around it. Shared by the unit tests and the
// benchmarks (the same fixtures drive both).

import type { Logger } from 'pino';
import type { HealthConfig, RouteConfig, ServerConfig } from '../src/config/types.js';
import type { ControlContext } from '../src/control/service.js';
import type { StateStore } from '../src/control/state-store.js';
import type { CheckContext } from '../src/health/checks.js';
import { EventBus } from '../src/health/events.js';
import { Failover } from '../src/health/failover.js';
import { HealthMonitor } from '../src/health/monitor.js';
import { Router, type RouterConfig } from '../src/daemon/router.js';
import { MemoryPort } from '../src/io/memory-port.js';
import { arpFrame } from '../src/packet/builder.js';
import { parseAddress, parsePrefix } from '../src/util/ipv4.js';

export const MAC = {
  up0: '02:00:00:00:00:01',
  lan0: '02:00:00:01:00:01',
  client: '02:00:00:00:00:02',
  web1: '02:00:00:01:00:02',
  web2: '02:00:00:01:00:03',
  web3: '02:00:00:01:00:04',
  web4: '02:00:00:01:00:05',
} as const;

export const UP0 = 0;
export const LAN0 = 1;

const unicast = (prefix: string, via: string, line: number): RouteConfig => ({
  prefix: parsePrefix(prefix), type: 'unicast', via: [{ address: parseAddress(via) }], sourceLine: line,
});

export const ARTICLE_ROUTES: RouteConfig[] = [
  unicast('192.168.1.32/27', '192.168.1.2', 1),
  unicast('192.168.1.64/27', '192.168.1.3', 2),
  unicast('192.168.1.96/27', '192.168.1.4', 3),
  unicast('192.168.1.128/27', '192.168.1.5', 4),
  { prefix: parsePrefix('192.168.1.0/24'), type: 'unreachable', via: [], sourceLine: 5 },
  { prefix: parsePrefix('198.51.100.0/24'), type: 'blackhole', via: [], sourceLine: 6 },
  unicast('0.0.0.0/0', '10.0.0.254', 7),
];

export function routerConfig(overrides: Partial<RouterConfig> = {}): RouterConfig {
  return {
    routes: ARTICLE_ROUTES,
    neighbors: { reachableMs: 30000, retransmitMs: 1000, probes: 3, queueLength: 4, maxEntries: 64, requestsPerSecond: 100, requestBurst: 256 },
    icmp: { ratePerSecond: 1000, burst: 50, perDestination: { ratePerSecond: 1, burst: 6, maxDestinations: 4096 } },
    dataplane: { batchSize: 64 },
    ...overrides,
  };
}

const mac = (m: string) => Uint8Array.from(m.split(':').map((h) => parseInt(h, 16)));

export interface ArticleRouter {
  router: Router;
  up0: MemoryPort;
  lan0: MemoryPort;
  /** Pushes frames in on a port and runs one batch. */
  receive(port: number, ...frames: Buffer[]): void;
  /** Answers the ARP requests for web1..web4 and the upstream gateway, then forgets what was sent. */
  resolveAll(): void;
}

export interface ArticleRouterOptions {
  /** Keep copies of the frames sent (default); off, the ports only count them. */
  keepSent?: boolean;
  up0Mtu?: number;
  lan0Mtu?: number;
  /** The router's clock in ms (default performance.now): tests of rate limits and timers drive their own. */
  clock?: () => number;
}

export function articleRouter(overrides: Partial<RouterConfig> = {}, options: ArticleRouterOptions = {}): ArticleRouter {
  const { keepSent = true, up0Mtu = 1500, lan0Mtu = 1500, clock } = options;
  const up0 = new MemoryPort('up0', keepSent);
  const lan0 = new MemoryPort('lan0', keepSent);
  const router = new Router(
    [
      { name: 'up0', mac: mac(MAC.up0), mtu: up0Mtu, addresses: [{ address: parseAddress('10.0.0.1'), length: 24 }] },
      { name: 'lan0', mac: mac(MAC.lan0), mtu: lan0Mtu, addresses: [{ address: parseAddress('192.168.1.1'), length: 27 }] },
    ],
    [up0, lan0],
    routerConfig(overrides),
    {},
    undefined,
    clock,
  );
  // More frames than a batch holds run as several batches, as a port would deliver them.
  const receive = (port: number, ...frames: Buffer[]) => {
    for (const frame of frames) {
      if (router.batch.count === router.batch.capacity) router.process();
      router.batch.push(port, frame, frame.length);
    }
    router.process();
  };
  const reply = (port: number, from: string, fromMac: string, to: string, toMac: string) =>
    arpFrame({ operation: 'reply', dstMac: toMac, srcMac: fromMac, senderMac: fromMac, senderAddress: from, targetMac: toMac, targetAddress: to });
  return {
    router, up0, lan0, receive,
    resolveAll() {
      receive(
        LAN0,
        reply(LAN0, '192.168.1.2', MAC.web1, '192.168.1.1', MAC.lan0),
        reply(LAN0, '192.168.1.3', MAC.web2, '192.168.1.1', MAC.lan0),
        reply(LAN0, '192.168.1.4', MAC.web3, '192.168.1.1', MAC.lan0),
        reply(LAN0, '192.168.1.5', MAC.web4, '192.168.1.1', MAC.lan0),
      );
      receive(UP0, reply(UP0, '10.0.0.254', MAC.client, '10.0.0.1', MAC.up0));
      up0.take();
      lan0.take();
    },
  };
}

const server = (name: string, address: string): ServerConfig => ({ name, address: parseAddress(address), checks: [] }) as unknown as ServerConfig;

/** web1..web4 on lan0, without health checks: always up. */
export const ARTICLE_SERVERS: ServerConfig[] = [
  server('web1', '192.168.1.2'), server('web2', '192.168.1.3'), server('web3', '192.168.1.4'), server('web4', '192.168.1.5'),
];

const HEALTH: HealthConfig = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto', notifyTimeoutMs: 10_000 };

/**
 * What the daemon hands the control service, around this router and minus
 * the config file: ARTICLE_SERVERS, a health monitor that is never started,
 * failover, events, and `store` for the runtime changes.
 */
export function articleControlContext(router: Router, store: StateStore, log: Logger): ControlContext {
  const events = new EventBus(log);
  const monitor = new HealthMonitor(HEALTH, { arp: router.resolver, icmp: undefined } as unknown as CheckContext);
  monitor.configure(ARTICLE_SERVERS);
  const failover = new Failover(router.rib, monitor, events, HEALTH);
  return {
    router, monitor, failover, events, store, log, servers: () => ARTICLE_SERVERS, reload: async () => 'reloaded (test)', startedAt: Date.now(),
  };
}
