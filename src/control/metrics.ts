// Prometheus metrics over HTTP (`metrics: { listen: ... }` in the config).
//
// Nothing here runs per packet. The data plane keeps its counters in typed
// arrays as it always does; each metric's collect() copies them when
// Prometheus scrapes, so a scrape costs a few hundred reads and the forwarding
// loop never knows it happened. Server state changes and failovers come from
// the EventBus, control commands from the ControlServer's CommandCounts.
//
//   GET /metrics   the text exposition format (prom-client's registry)
//   GET /          a pointer to /metrics
//
// The listener is as defensive as the control socket: bounded connections and
// request time, GET and HEAD only, no request body read.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Router } from '../router/router.js';
import {
  ARP_COUNTER_NAMES, DROP_NAMES, FRAGMENT_COUNTER_NAMES, ICMP_COUNTER_NAMES, ICMP_SENT_NAMES, IcmpCounter, PORT_COUNTER_NAMES, PUNT_NAMES,
} from '../dataplane/counters.js';
import type { EventBus, ViprEvent } from '../health/events.js';
import { describeCheck, displayState, type HealthMonitor } from '../health/monitor.js';
import { NEIGHBOR_STATE_NAMES } from '../dataplane/neighbor-table.js';
import type { RibRoute } from '../rib/rib.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { CommandCounts } from './command-counts.js';

/** Scrapers are few (one Prometheus, perhaps a second and a curl): more connections than this are refused. */
const MAX_CONNECTIONS = 32;
/** A scrape is answered in milliseconds; a client slower than this to send its request is cut off. */
const REQUEST_TIMEOUT_MS = 10_000;

/** The states an operator sees for a server (displayState); one series each, 1 for the current one. */
const SERVER_STATES = ['up', 'down', 'draining'] as const;


export class MetricsError extends Error {
  readonly code = 'EMETRICS';
}

export interface MetricsListen {
  host: string;
  /** 0 lets the kernel pick (tests); the config only accepts 1..65535. */
  port: number;
}

export interface MetricsContext {
  router: Router;
  monitor: HealthMonitor;
  events: EventBus;
  commands: CommandCounts;
  log: Logger;
  /** The port backends' own counters by port (as in ControlContext). */
  portStats?(): Record<string, Record<string, number>>;
  /** Brings the port backends' counters up to date (with workers: each folds its sockets' kernel counts in); before a scrape. */
  refreshPortStats?(): Promise<void>;
}

/** How a route's next-hop list is labelled: `web1,web2` (names where the route named servers). */
export function viaLabel(route: RibRoute): string {
  if (route.type === 'connected') return `connected:${route.port}`;
  return route.via.map((v) => v.server ?? formatAddress(v.address)).join(',');
}

/**
 * Registers vipr's metrics on `registry`. Returns the function that
 * unsubscribes from the EventBus (call it when the registry goes away).
 */
export function registerMetrics(registry: Registry, context: MetricsContext): () => void {
  const { router, monitor, commands } = context;
  const registers = [registry];
  // Every thread's counts added up, read at scrape time.
  const counters = () => router.totals();
  const portNames = router.ports.names;

  // --- data plane: mirrors of the typed-array counters, read at scrape time ---

  const portMetric = (name: string, help: string, counter: number) =>
    new Counter({
      name, help, labelNames: ['port'], registers,
      collect() {
        this.reset();
        const stride = PORT_COUNTER_NAMES.length;
        portNames.forEach((port, p) => this.inc({ port }, counters().ports[p * stride + counter]));
      },
    });
  portMetric('vipr_port_received_packets_total', 'Frames the data plane received on the port.', PORT_COUNTER_NAMES.indexOf('rxPackets'));
  portMetric('vipr_port_received_bytes_total', 'Bytes of the frames the data plane received on the port.', PORT_COUNTER_NAMES.indexOf('rxBytes'));
  portMetric('vipr_port_sent_packets_total', 'Frames the data plane sent on the port.', PORT_COUNTER_NAMES.indexOf('txPackets'));
  portMetric('vipr_port_sent_bytes_total', 'Bytes of the frames the data plane sent on the port.', PORT_COUNTER_NAMES.indexOf('txBytes'));
  portMetric('vipr_port_forwarded_packets_total', 'Frames forwarded out of the port.', PORT_COUNTER_NAMES.indexOf('forwardedPackets'));

  new Gauge({
    name: 'vipr_port_up', help: 'Whether the port can carry traffic (1): link up (admin up and carrier) and an IPv4 address; 0 while down or absent.',
    labelNames: ['port'], registers,
    collect() {
      this.reset();
      portNames.forEach((port, p) => this.set({ port }, router.ports.linkUp[p]));
    },
  });

  const namedMetric = (name: string, help: string, label: string, names: readonly string[], values: () => Float64Array) =>
    new Counter({
      name, help, labelNames: [label], registers,
      collect() {
        this.reset();
        const array = values();
        names.forEach((value, i) => this.inc({ [label]: value }, array[i]));
      },
    });
  namedMetric('vipr_drops_total', 'Frames not forwarded, by reason (as in `vipr ctl stats`).', 'reason', DROP_NAMES, () => counters().drops);
  namedMetric('vipr_punts_total', 'Frames left to the kernel, by kind (not drops: the kernel has its own copy).', 'kind', PUNT_NAMES, () => counters().punts);
  namedMetric('vipr_icmp_errors_sent_total', 'ICMP errors vipr sent, by type.', 'type', ICMP_SENT_NAMES, () =>
    Float64Array.from(ICMP_SENT_NAMES, (name) => counters().icmp[ICMP_COUNTER_NAMES.indexOf(name)]));
  namedMetric('vipr_fragmentation_total', 'Packets too big for their egress MTU (DF clear) sent as fragments, and the fragments made.', 'counter',
    FRAGMENT_COUNTER_NAMES, () => counters().fragmentation);
  namedMetric('vipr_arp_requests_total', 'ARP requests vipr sent, and those the per-port limit held back (neighbors.requestsPerSecond).', 'counter',
    ARP_COUNTER_NAMES, () => counters().arp);
  if (context.portStats) {
    const portStats = context.portStats;
    new Counter({
      name: 'vipr_port_backend_total',
      help: 'The port backend\'s own counters (io: ring and io: xdp): kernelDrops (ring) or kernelRxRingFull (xdp) = frames the kernel dropped because the receive ring was full, txFailed = frames not sent, xdpRedirected/xdpPassed* = the XDP program\'s verdicts, and the rest as in `vipr ctl --json stats`.',
      labelNames: ['port', 'counter'], registers,
      collect() {
        this.reset();
        for (const [port, values] of Object.entries(portStats())) {
          for (const [counter, value] of Object.entries(values)) this.inc({ port, counter }, value);
        }
      },
    });
  }
  new Counter({
    name: 'vipr_icmp_errors_rate_limited_total', help: 'ICMP errors not sent because of the rate limit (icmp.ratePerSecond).', registers,
    collect() {
      this.reset();
      this.inc(counters().icmp[IcmpCounter.rateLimited]);
    },
  });
  new Counter({
    name: 'vipr_icmp_errors_rate_limited_per_destination_total',
    help: 'ICMP errors not sent because the host they were for had used up its own bucket (icmp.perDestination).', registers,
    collect() {
      this.reset();
      this.inc(counters().icmp[IcmpCounter.rateLimitedPerDestination]);
    },
  });
  new Counter({
    name: 'vipr_batches_total', help: 'Batches the data plane processed.', registers,
    collect() {
      this.reset();
      this.inc(counters().batches);
    },
  });

  // Per next-hop list: the one counter ip4-rewrite keeps per next-hop slot.
  // Routes with the same ordered next-hop list share a slot, hence the label;
  // vipr_route_info says which routes use which list.
  const nextHopMetric = (name: string, help: string, value: (slot: number) => number) =>
    new Counter({
      name, help, labelNames: ['via'], registers,
      collect() {
        this.reset();
        const seen = new Set<number>();
        for (const route of router.rib.routes()) {
          if ((route.type !== 'unicast' && route.type !== 'connected') || seen.has(route.nextHop)) continue;
          seen.add(route.nextHop);
          this.inc({ via: viaLabel(route) }, value(route.nextHop));
        }
      },
    });
  nextHopMetric('vipr_nexthop_packets_total', 'Frames forwarded through a next-hop list (routes with the same list share it; see vipr_route_info).',
    (slot) => router.tables.nextHops.packetsOf(slot));
  nextHopMetric('vipr_nexthop_bytes_total', 'Bytes of the frames forwarded through a next-hop list (whole Ethernet frames, as the port counters).',
    (slot) => router.tables.nextHops.bytesOf(slot));
  new Gauge({
    name: 'vipr_route_info',
    help: 'One series per configured or runtime route: its next-hop list (via) and the next hop carrying it now (active).',
    labelNames: ['prefix', 'type', 'via', 'active', 'source'], registers,
    collect() {
      this.reset();
      const rib = router.rib;
      for (const route of rib.routes()) {
        if (route.source !== 'config' && route.source !== 'runtime') continue;
        let active = '';
        if (route.type === 'unicast') {
          const address = rib.activeNextHop(route);
          active = address === undefined ? 'withdrawn' : route.via.find((v) => v.address === address)?.server ?? formatAddress(address);
        }
        this.set({ prefix: formatPrefix(route.prefix), type: route.type, via: viaLabel(route), active, source: route.source }, 1);
      }
    },
  });

  // --- FIB and neighbours ---

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name, help, registers,
      collect() {
        this.set(read());
      },
    });
  gauge('vipr_fib_routes', 'Routes in the FIB (interface routes included).', () => router.rib.size);
  gauge('vipr_fib_memory_bytes', 'Memory of the FIB lookup tables.', () => router.tables.fib.memoryBytes());
  gauge('vipr_fib_last_change_timestamp_seconds', 'When the FIB last changed (swap, route change or failover), Unix time.', () => router.rib.lastChange / 1000);
  gauge('vipr_nexthops_used', 'Next-hop slots in use.', () => router.tables.nextHops.used);
  gauge('vipr_neighbor_entries', 'Entries in the neighbour (ARP) table.', () => router.resolver.table.size);
  new Gauge({
    name: 'vipr_neighbors', help: 'Neighbour (ARP) entries by state.', labelNames: ['state'], registers,
    collect() {
      const table = router.resolver.table;
      const byState = new Array<number>(NEIGHBOR_STATE_NAMES.length).fill(0);
      for (let entry = 0; entry < table.capacity; entry++) byState[table.state[entry]]++;
      // Index 0 is `free`: not an entry.
      for (let state = 1; state < NEIGHBOR_STATE_NAMES.length; state++) this.set({ state: NEIGHBOR_STATE_NAMES[state] }, byState[state]);
    },
  });

  // --- servers: state and checks from the monitor, changes from the EventBus ---

  new Gauge({
    name: 'vipr_server_state', help: 'Server state: 1 for the state the server is in (up, down or draining), 0 for the others.',
    labelNames: ['server', 'state'], registers,
    collect() {
      this.reset();
      for (const server of monitor.list()) {
        const now = displayState(server);
        for (const state of SERVER_STATES) this.set({ server: server.name, state }, state === now ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'vipr_server_check_latency_seconds', help: 'How long the last run of each health check took.',
    labelNames: ['server', 'check'], registers,
    collect() {
      this.reset();
      for (const server of monitor.list()) {
        for (const check of server.checks) {
          if (check.last) this.set({ server: server.name, check: describeCheck(check.config) }, check.last.latencyMs / 1000);
        }
      }
    },
  });
  new Gauge({
    name: 'vipr_server_check_up', help: 'Health check state after rise/fall: 1 up, 0 down.',
    labelNames: ['server', 'check'], registers,
    collect() {
      this.reset();
      for (const server of monitor.list()) {
        for (const check of server.checks) this.set({ server: server.name, check: describeCheck(check.config) }, check.up ? 1 : 0);
      }
    },
  });

  // Every known server has a series from the start, so rate() and increase() see the first change.
  const perServer = (counter: Counter<'server'>) => {
    for (const server of monitor.list()) counter.inc({ server: server.name }, 0);
  };
  const stateChanges = new Counter({
    name: 'vipr_server_state_changes_total', help: 'Server state changes, by the state entered.',
    labelNames: ['server', 'state'], registers,
  });
  const failovers = new Counter({
    name: 'vipr_failovers_total', help: 'Routes moved off a server (to a backup, or withdrawn) because it went down or was drained.',
    labelNames: ['server'], registers,
    collect() {
      perServer(this);
    },
  });
  const failbacks = new Counter({
    name: 'vipr_failbacks_total', help: 'Routes moved (back) onto a server after it came up: hold-down passed, or the operator\'s failback.',
    labelNames: ['server'], registers,
    collect() {
      perServer(this);
    },
  });
  const onEvent = (event: ViprEvent) => {
    if (event.type === 'server' && event.server !== undefined && event.newState !== undefined) {
      stateChanges.inc({ server: event.server, state: event.newState });
    }
    if (event.type === 'routes') return; // the operator's own route changes are neither
    const leaving = (event.type === 'server' || event.type === 'port') && event.newState !== 'up';
    for (const move of event.routesMoved) {
      if (leaving) failovers.inc({ server: event.server ?? move.from ?? 'none' });
      else if (move.to !== null) failbacks.inc({ server: move.to });
    }
  };
  const unsubscribe = context.events.subscribe(onEvent);

  // --- the control socket ---

  new Counter({
    name: 'vipr_control_commands_total', help: 'Control socket commands answered, by command and result (ok or error).',
    labelNames: ['command', 'result'], registers,
    collect() {
      this.reset();
      for (const { command, result, count } of commands.list()) this.inc({ command, result }, count);
    },
  });

  // The process: CPU, memory, event-loop lag (the data plane shares the loop), GC.
  collectDefaultMetrics({ register: registry });
  return unsubscribe;
}

export class MetricsServer {
  readonly registry = new Registry();
  private server: Server | undefined;
  private readonly unsubscribe: () => void;

  constructor(private readonly listen: MetricsListen, private readonly context: MetricsContext) {
    this.unsubscribe = registerMetrics(this.registry, context);
  }

  /** Where it listens, once started (the kernel's port when asked for 0). */
  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    return `http://${this.listen.host}:${address?.port ?? this.listen.port}/metrics`;
  }

  async start(): Promise<void> {
    const { host, port } = this.listen;
    const server = createServer((request, response) => void this.serve(request, response));
    server.maxConnections = MAX_CONNECTIONS;
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = REQUEST_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new MetricsError(`metrics: cannot listen on ${host}:${port}: ${listenProblem(error, host)}`)));
      server.listen(port, host, () => resolve());
    });
    server.on('error', (error) => this.context.log.error({ err: error }, `metrics: ${error.message}`));
    this.server = server;
    this.context.log.info({ metrics: this.url }, `metrics on ${this.url}`);
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('only GET and HEAD\n');
      return;
    }
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/') {
      response.writeHead(200, { 'Content-Type': 'text/plain' }).end('vipr: metrics are at /metrics\n');
      return;
    }
    if (path !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found; metrics are at /metrics\n');
      return;
    }
    try {
      await this.context.refreshPortStats?.();
      const text = await this.registry.metrics();
      response.writeHead(200, { 'Content-Type': this.registry.contentType });
      response.end(request.method === 'HEAD' ? undefined : text);
    } catch (error) {
      this.context.log.error({ err: error }, `metrics: scrape failed: ${(error as Error).message}`);
      response.writeHead(500, { 'Content-Type': 'text/plain' }).end('scrape failed; see the vipr log\n');
    }
  }
}

function listenProblem(error: NodeJS.ErrnoException, host: string): string {
  switch (error.code) {
    case 'EADDRINUSE': return 'the port is in use (another exporter?); set metrics.listen to another port';
    case 'EADDRNOTAVAIL': return `${host} is not an address of this box; set metrics.listen to one of its addresses (127.0.0.1 keeps metrics local)`;
    case 'EACCES': return 'permission denied (ports under 1024 need privileges)';
    default: return error.code ?? error.message;
  }
}
