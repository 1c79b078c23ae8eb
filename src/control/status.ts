// `status`: the router on one screen — uptime, ports with their rates, routes
// with the next hop carrying each and its rate, servers with their state.
// `vipr ctl status` shows it once, `vipr top` every second.
//
// Rates are differences of two counter samples. The view keeps the samples it
// took: a caller that asked a second ago (top) gets the rate over that second
// at once; a first caller, or one after a long pause, waits one sampling
// interval. Samples are a copy of the port and drop counters and one number
// per route group, taken only when someone asks: nothing runs in between.

import type { Router } from '../router/router.js';
import { DROP_NAMES, PORT_COUNTER_NAMES } from '../dataplane/counters.js';
import { displayState, type HealthMonitor } from '../health/monitor.js';
import { describe, type RibRoute } from '../rib/rib.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import { table, textReply, type Reply } from './protocol.js';
import type { PairStatus } from '../engines/pair.js';

/** How long a first caller waits for its second sample: a rate over a second reads like `top`'s. */
const SAMPLE_INTERVAL_MS = 1000;
/** A sample younger than this is too short a base for a rate (two tops a few ms apart). */
const MIN_WINDOW_MS = 500;
/** A sample older than this is stale: the rate would be an average over minutes, not "now". */
const MAX_WINDOW_MS = 5000;
/** Samples kept at most this often: 50 in the window, however often status is asked for. */
const KEEP_EVERY_MS = 100;

const RX_PACKETS = PORT_COUNTER_NAMES.indexOf('rxPackets');
const RX_BYTES = PORT_COUNTER_NAMES.indexOf('rxBytes');
const TX_PACKETS = PORT_COUNTER_NAMES.indexOf('txPackets');
const TX_BYTES = PORT_COUNTER_NAMES.indexOf('txBytes');
const FORWARDED = PORT_COUNTER_NAMES.indexOf('forwardedPackets');

export interface StatusContext {
  router: Router;
  monitor: HealthMonitor;
  startedAt: number;
  /** A router of a pair: its liveness link and engines. */
  pair?(): PairStatus | undefined;
}

interface Sample {
  at: number;
  ports: Float64Array;
  drops: Float64Array;
  /** Next-hop slot -> its packet counter, for the slots routes use. */
  nextHops: Map<number, number>;
}

export interface PortStatus {
  name: string;
  /** "up", or why not: "down (no carrier)", "down (admin down)", "absent", ... */
  state: string;
  rxPacketsPerSecond: number;
  rxBitsPerSecond: number;
  txPacketsPerSecond: number;
  txBitsPerSecond: number;
  forwardedPerSecond: number;
  rxPackets: number;
  txPackets: number;
  forwardedPackets: number;
}

export interface RouteStatus {
  prefix: string;
  type: string;
  target: string;
  /** Server name or address carrying the route now; 'withdrawn' when none can; null for non-unicast routes. */
  active: string | null;
  port: string | null;
  /** Frames per second through the route's next-hop list; null for routes that forward nothing. */
  packetsPerSecond: number | null;
  /** Other routes have the same next-hop list, so they share this rate. */
  sharedNextHop: boolean;
}

export interface ServerStatus {
  name: string;
  address: string;
  state: string;
  since: string;
  lastCheckLatencyMs: number | null;
  routes: string[];
}

export interface Status {
  uptimeSeconds: number;
  /** The window the rates are over. */
  intervalSeconds: number;
  fibRoutes: number;
  neighbors: number;
  lastRouteChange: string | null;
  ports: PortStatus[];
  dropsPerSecond: number;
  dropsPerSecondByReason: Record<string, number>;
  routes: RouteStatus[];
  servers: ServerStatus[];
  /** Only for a router of a pair. */
  pair?: PairStatus;
}

export class StatusView {
  private samples: Sample[] = [];

  constructor(private readonly context: StatusContext, private readonly sampleIntervalMs = SAMPLE_INTERVAL_MS) {}

  async reply(): Promise<Reply> {
    const status = await this.status();
    return textReply(render(status), status);
  }

  async status(): Promise<Status> {
    let now = this.take();
    let base = this.base(now.at);
    if (base === undefined) {
      base = now;
      this.samples.push(base);
      await new Promise((resolve) => setTimeout(resolve, this.sampleIntervalMs));
      now = this.take();
    }
    this.samples = this.samples.filter((s) => now.at - s.at <= MAX_WINDOW_MS);
    // A script asking in a tight loop adds a sample per KEEP_EVERY_MS at most.
    const newest = this.samples[this.samples.length - 1];
    if (newest === undefined || now.at - newest.at >= KEEP_EVERY_MS) this.samples.push(now);
    return this.build(base, now);
  }

  /** The newest sample old enough to be a base for a rate, and not too old. */
  private base(at: number): Sample | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const age = at - this.samples[i].at;
      if (age >= MIN_WINDOW_MS && age <= MAX_WINDOW_MS) return this.samples[i];
    }
    return undefined;
  }

  private take(): Sample {
    const { rib, tables } = this.context.router;
    const counters = this.context.router.totals();
    const nextHops = new Map<number, number>();
    for (const route of rib.routes()) {
      if (route.type === 'unicast' || route.type === 'connected') nextHops.set(route.nextHop, tables.nextHops.packetsOf(route.nextHop));
    }
    return { at: performance.now(), ports: counters.ports.slice(), drops: counters.drops.slice(), nextHops };
  }

  private build(base: Sample, now: Sample): Status {
    const { router, monitor, startedAt } = this.context;
    const seconds = Math.max(0.001, (now.at - base.at) / 1000);
    const rate = (after: number, before: number) => Math.max(0, after - before) / seconds;
    const stride = PORT_COUNTER_NAMES.length;
    const ports = router.ports.names.map((name, p): PortStatus => {
      const at = (sample: Sample, counter: number) => sample.ports[p * stride + counter];
      const per = (counter: number) => rate(at(now, counter), at(base, counter));
      return {
        name,
        state: router.ports.link[p],
        rxPacketsPerSecond: per(RX_PACKETS),
        rxBitsPerSecond: per(RX_BYTES) * 8,
        txPacketsPerSecond: per(TX_PACKETS),
        txBitsPerSecond: per(TX_BYTES) * 8,
        forwardedPerSecond: per(FORWARDED),
        rxPackets: at(now, RX_PACKETS),
        txPackets: at(now, TX_PACKETS),
        forwardedPackets: at(now, FORWARDED),
      };
    });
    const dropsPerSecondByReason: Record<string, number> = {};
    let dropsPerSecond = 0;
    DROP_NAMES.forEach((reason, i) => {
      const r = rate(now.drops[i], base.drops[i]);
      dropsPerSecond += r;
      if (r > 0) dropsPerSecondByReason[reason] = r;
    });

    const rib = router.rib;
    const shown = rib.routes().filter((r) => r.source === 'config' || r.source === 'runtime');
    const usersOf = new Map<number, number>();
    for (const route of shown) if (route.type === 'unicast') usersOf.set(route.nextHop, (usersOf.get(route.nextHop) ?? 0) + 1);
    const carrying = new Map<number, string[]>();
    const routes = shown.map((route): RouteStatus => {
      let active: string | null = null;
      if (route.type === 'unicast') {
        const address = rib.activeNextHop(route);
        if (address === undefined) active = 'withdrawn';
        else {
          active = nameOf(route, address);
          carrying.set(address, [...(carrying.get(address) ?? []), formatPrefix(route.prefix)]);
        }
      }
      const before = base.nextHops.get(route.nextHop);
      const after = now.nextHops.get(route.nextHop);
      return {
        prefix: formatPrefix(route.prefix),
        type: route.type,
        target: describe(route),
        active,
        port: route.via[0]?.port ?? route.port ?? null,
        packetsPerSecond: route.type === 'unicast' && before !== undefined && after !== undefined ? rate(after, before) : null,
        sharedNextHop: (usersOf.get(route.nextHop) ?? 0) > 1,
      };
    });

    const servers = monitor.list().map((s): ServerStatus => {
      const last = s.checks.map((c) => c.last).filter((l) => l !== undefined).sort((a, b) => b!.at - a!.at)[0];
      return {
        name: s.name,
        address: formatAddress(s.address),
        state: displayState(s),
        since: new Date(s.since).toISOString(),
        lastCheckLatencyMs: last ? Math.round(last.latencyMs * 100) / 100 : null,
        routes: carrying.get(s.address) ?? [],
      };
    });

    return {
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      intervalSeconds: Math.round(seconds * 1000) / 1000,
      fibRoutes: rib.size,
      neighbors: router.resolver.table.size,
      lastRouteChange: rib.lastChange ? new Date(rib.lastChange).toISOString() : null,
      ports,
      dropsPerSecond,
      dropsPerSecondByReason,
      routes,
      servers,
      pair: this.context.pair?.(),
    };
  }
}

function nameOf(route: RibRoute, address: number): string {
  return route.via.find((v) => v.address === address)?.server ?? formatAddress(address);
}

/** The status as lines: a summary, then ports, routes and servers as tables. */
export function render(status: Status): string[] {
  const drops = Object.entries(status.dropsPerSecondByReason).map(([reason, r]) => `${reason} ${quantity(r)}`).join(', ');
  const anyShared = status.routes.some((r) => r.sharedNextHop);
  return [
    `uptime ${duration(status.uptimeSeconds)}  routes ${status.fibRoutes}  neighbors ${status.neighbors}  ` +
      `last route change ${status.lastRouteChange ? since(status.lastRouteChange) : 'never'}  rates over ${status.intervalSeconds.toFixed(1)}s`,
    ...(status.pair ? [describePair(status.pair)] : []),
    '',
    ...table(
      ['PORT', 'STATE', 'RX PKT/S', 'RX BIT/S', 'TX PKT/S', 'TX BIT/S', 'FWD PKT/S', 'RX PACKETS', 'TX PACKETS'],
      status.ports.map((p) => [
        p.name, p.state, quantity(p.rxPacketsPerSecond), quantity(p.rxBitsPerSecond), quantity(p.txPacketsPerSecond), quantity(p.txBitsPerSecond),
        quantity(p.forwardedPerSecond), String(p.rxPackets), String(p.txPackets),
      ]),
    ),
    `drops/s ${quantity(status.dropsPerSecond)}${drops ? ` (${drops})` : ''}`,
    '',
    ...table(
      ['ROUTE', 'ACTIVE', 'PKT/S', 'PORT', 'TARGET'],
      status.routes.map((r) => [
        r.prefix, r.active ?? '-', r.packetsPerSecond === null ? '-' : quantity(r.packetsPerSecond) + (r.sharedNextHop ? '*' : ''), r.port ?? '-', r.target,
      ]),
    ),
    ...(anyShared ? ['* routes with the same next-hop list share one counter: the rate is theirs together'] : []),
    '',
    ...(status.servers.length === 0
      ? ['no servers configured']
      : table(
        ['SERVER', 'ADDRESS', 'STATE', 'SINCE', 'LATENCY', 'ROUTES'],
        status.servers.map((s) => [
          s.name, s.address, s.state, since(s.since), s.lastCheckLatencyMs === null ? '-' : `${s.lastCheckLatencyMs.toFixed(2)}ms`, s.routes.join(' ') || '-',
        ]),
      )),
  ];
}

/** 0, 12.5, 3.40k, 1.25M, 9.99G: a rate in four significant characters or so. */
export function quantity(value: number): string {
  if (value === 0) return '0';
  const units = ['', 'k', 'M', 'G', 'T'];
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(unit === 0 && Number.isInteger(value) ? 0 : digits)}${units[unit]}`;
}

/** 45s, 12m03s, 5h07m, 3d04h. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

function since(iso: string): string {
  return `${duration((Date.now() - Date.parse(iso)) / 1000)} ago`;
}

/** One line for `vipr ctl status`. */
export function describePair(status: PairStatus): string {
  const parts = [`liveness ${status.liveness.interface} ${status.liveness.carrier ? 'up' : 'down'}`];
  if (status.bird) {
    const listed = status.bird.announced.join(' ') || 'nothing';
    parts.push(status.bird.lastError ? `bird ERROR (${status.bird.lastError})`
      : status.liveness.carrier ? `bird announces ${listed}` : `bird announces nothing (the link is down; the routes file lists ${listed})`);
  }
  if (status.keepalived) parts.push(status.keepalived.pid === null ? 'keepalived not found at start' : `keepalived pid ${status.keepalived.pid}`);
  if (status.draining) parts.push('giving everything away (planned stop)');
  return `pair: ${parts.join('; ')}`;
}
