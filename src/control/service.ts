// What each control command does. Shared by the socket server and tests;
// the CLI is a thin client of the socket.
//
// Every change goes the same way: resolve names, validate against the RIB
// (nothing changes on error), save the runtime state atomically, apply it to
// the live FIB in one synchronous call, reply ok. Changes are serialised, so
// two clients never interleave a save and an apply.

import { basename } from 'node:path';
import type { Logger } from 'pino';
import { listSome } from '../config/suggest.js';
import type { ServerConfig } from '../config/types.js';
import type { Router } from '../router/router.js';
import { describe, RibError, type RibRoute, type RouteChange, type RoutePlan, type RouteSpec } from '../rib/rib.js';
import { formatAddress, formatPrefix, parseAddress } from '../util/ipv4.js';
import { HELP, type Request, type RouteChangeRequest } from './grammar.js';
import { ControlError, table, textReply, type Reply } from './protocol.js';
import type { EventBus, ViprEvent } from '../health/events.js';
import type { Failover } from '../health/failover.js';
import { describeCheck, displayState, type HealthMonitor, type ServerHealth } from '../health/monitor.js';
import type { StateStore } from './state-store.js';
import type { PairStatus } from '../engines/pair.js';
import { CommandCounts } from './command-counts.js';
import { StatusView } from './status.js';
import { summaryLine, traceDirectory, TraceSession, type TraceOptions } from './trace.js';

export interface ControlContext {
  router: Router;
  monitor: HealthMonitor;
  failover: Failover;
  events: EventBus;
  store: StateStore;
  log: Logger;
  servers(): readonly ServerConfig[];
  /** Re-reads the config file; throws with a one-line reason and changes nothing on a bad file. */
  reload(): Promise<string>;
  startedAt: number;
  /** The port backends' own counters by port (the ring addon's: kernel ring drops, transmit failures, ...). */
  portStats?(): Record<string, Record<string, number>>;
  /** Brings them up to date first (with data-plane workers, each reads its sockets' kernel counts). */
  refreshPortStats?(): Promise<void>;
  /** `shutdown`: a planned stop (a router of a pair gives everything away first); resolves with what was done. */
  shutdown?(): Promise<string[]>;
  /** A router of a pair: the liveness link and the engines, for `status`. */
  pair?(): PairStatus | undefined;
}

/** Changes logged one line each; a bigger transaction (a table loaded at once) gets one summary line, each change at debug. */
const CHANGES_LOGGED = 64;

/** A RibError as the ControlError the client sees (same code and message); anything else as it is. */
function toControlError(error: unknown): unknown {
  return error instanceof RibError ? new ControlError(error.code, error.message) : error;
}

/** Backend counters that mean a frame was lost or refused, shown in `stats`. */
const BACKEND_LOSSES = [
  'kernelDrops', 'kernelFreezes', 'rxTooLong', 'txFailed', 'txBlocked', 'socketErrors',
  // io: xdp: frames the kernel dropped before vipr could take them, ARP the tap had no room for, transit on a queue without a socket
  'kernelRxDropped', 'kernelRxRingFull', 'kernelRxInvalidDescs', 'kernelTxInvalidDescs', 'arpKernelDrops', 'xdpPassedNoSocket',
] as const;

/** Per-connection state: an open transaction collects changes until commit. */
export interface Session {
  transaction: RouteChange[] | null;
  /**
   * The transaction's changes validated so far, against the RIB as it was:
   * each queued change is checked against it alone (O(1) per change, not a
   * re-check of the whole list). Made again when the RIB changed meanwhile.
   */
  plan?: RoutePlan;
  /**
   * Requests refused while the transaction was open. Any refusal makes commit
   * apply nothing: the operator meant all of the changes, not the rest of them.
   */
  refused?: number;
  /** Aborted when the client disconnects: a running `trace` ends with its connection. */
  closed?: AbortSignal;
}

export class ControlService {
  private queue: Promise<unknown> = Promise.resolve();
  /** Commands answered, by command and result: the ControlServer records, metrics read. */
  readonly commands = new CommandCounts();
  /** `status` keeps its counter samples between calls (rates for `vipr top`). */
  private statusView: StatusView | undefined;
  /** The running `trace`, if any (one at a time: the data plane has one tracer hook). */
  private tracing: TraceSession | undefined;

  constructor(private readonly context: ControlContext) {}

  async handle(request: Request, session: Session): Promise<Reply> {
    switch (request.command) {
      case 'ping': return textReply(['pong'], 'pong');
      case 'help': return textReply([...HELP], HELP);
      case 'route show': return this.routeShow(request.prefix);
      case 'server show': return this.serverShow(request.name);
      case 'server drain':
      case 'server undrain': {
        const server = this.server(request.name);
        const drain = request.command === 'server drain';
        const changed = drain ? this.context.monitor.drain(server.name) : this.context.monitor.undrain(server.name);
        const state = displayState(server);
        const carrying = this.carrying(server.address);
        const line = changed
          ? `${server.name} ${drain ? 'drained' : 'undrained'}: now ${state}, carrying ${carrying.join(' ') || 'no routes'}`
          : `${server.name} was already ${drain ? 'draining' : 'in service'}`;
        return textReply([line], { server: server.name, state, changed, routes: carrying });
      }
      case 'route failback': {
        const moved = this.context.failover.failback();
        return textReply(moved.length ? moved.map((m) => `${m.prefix}: ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`) : ['every route is on its preferred next hop'], moved);
      }
      case 'events':
        return { lines: [], result: null, follow: (write: (event: ViprEvent) => void) => this.context.events.subscribe(write) };
      case 'neighbor show': return this.neighborShow();
      case 'trace': return this.trace(request.trace, session);
      case 'trace stop': {
        const running = this.tracing;
        if (!running) throw new ControlError('ENOTRACE', 'no trace is running');
        void running.end('stopped');
        return textReply([`stopping the trace to ${running.file} (${running.traced} frames so far); its own connection gets the summary`], { file: running.file, frames: running.traced });
      }
      case 'stats':
        await this.context.refreshPortStats?.();
        return this.stats();
      case 'status': return (this.statusView ??= new StatusView(this.context)).reply();
      case 'begin':
        if (session.transaction) throw new ControlError('ETRANSACTION', 'a transaction is already open; `commit` or `abort` it first');
        session.transaction = [];
        session.plan = undefined;
        session.refused = 0;
        return textReply(['transaction open: send changes, then `commit` (or `abort`)'], { transaction: 'open' });
      case 'abort': {
        if (!session.transaction) throw new ControlError('ETRANSACTION', 'no transaction is open');
        const dropped = session.transaction.length;
        session.transaction = null;
        session.plan = undefined;
        session.refused = 0;
        return textReply([`transaction aborted: ${dropped} change(s) dropped, nothing applied`], { dropped });
      }
      case 'commit': {
        if (!session.transaction) throw new ControlError('ETRANSACTION', 'no transaction is open; `begin` first');
        const changes = session.transaction;
        const plan = session.plan;
        const refused = session.refused ?? 0;
        session.transaction = null; // closed either way: applied whole, or not at all
        session.plan = undefined;
        session.refused = 0;
        if (refused > 0) {
          throw new ControlError('ETRANSACTION', `${refused} request(s) in this transaction were refused; nothing applied (${changes.length} queued change(s) dropped), \`begin\` again`);
        }
        if (changes.length === 0) return textReply(['nothing to commit'], { applied: 0 });
        await this.apply(changes, plan);
        return textReply([`committed ${changes.length} change(s) at once`], { applied: changes.length });
      }
      case 'shutdown': {
        if (!this.context.shutdown) throw new ControlError('ENOTSUPPORTED', 'shutdown: not available here');
        const lines = await this.context.shutdown();
        return textReply(lines, { stopping: true, steps: lines });
      }
      case 'reload':
        return this.serial(async () => {
          const summary = await this.context.reload();
          return textReply([summary], { reloaded: true, summary });
        });
      default: {
        if (session.transaction) {
          // Validate now against what the transaction has so far, so a typo is reported at once.
          const queued = session.transaction;
          let change: RouteChange;
          try {
            change = this.toChange(request);
            const rib = this.context.router.rib;
            if (!session.plan || !rib.isCurrent(session.plan)) session.plan = this.plan(queued);
            const plan = session.plan;
            const where = queued.length > 0 ? `change ${queued.length + 1}: ` : '';
            plan.add(change, where);
          } catch (error) {
            session.refused = (session.refused ?? 0) + 1;
            throw toControlError(error);
          }
          session.transaction.push(change);
          return textReply([`queued (${session.transaction.length} in transaction)`], { queued: session.transaction.length });
        }
        const change = this.toChange(request);
        await this.apply([change]);
        return textReply([], { applied: 1 });
      }
    }
  }

  /** Ends a running trace and closes its file (the daemon is stopping). */
  async close(): Promise<void> {
    await this.tracing?.end('shutdown');
  }

  /**
   * `trace`: the reply comes when the trace ends, with how many packets were
   * written; the connection stays open (without its idle limit) until then.
   */
  private async trace(options: TraceOptions, session: Session): Promise<Reply> {
    if (this.tracing) throw new ControlError('ETRACEBUSY', `a trace to ${this.tracing.file} is already running; \`trace stop\` ends it`);
    const { router } = this.context;
    const serverNames = new Map(this.context.servers().map((s) => [s.address, s.name] as const));
    const running = await TraceSession.start(
      { tap: router.trace, ports: router.ports, nextHops: router.tables.nextHops, serverNames },
      options, traceDirectory(this.context.store.file), session.closed,
    );
    this.tracing = running;
    this.context.log.info({ trace: running.file, filter: running.description }, `trace to ${running.file} started (${running.description})`);
    try {
      const summary = await running.done;
      const line = summaryLine(summary);
      this.context.log.info({ trace: summary }, line);
      if (summary.ended === 'error') throw new ControlError('ETRACEWRITE', line);
      return textReply([line], summary);
    } finally {
      if (this.tracing === running) this.tracing = undefined;
    }
  }

  /**
   * Validate, persist, then apply; all or nothing. `plan` is the transaction's
   * own, used when it is still current (else the changes are checked again).
   */
  private apply(changes: RouteChange[], plan?: RoutePlan): Promise<void> {
    return this.serial(async () => {
      const { router, store, log } = this.context;
      const rib = router.rib;
      const checked = plan && rib.isCurrent(plan) && plan.size === changes.length ? plan : this.plan(changes);
      try {
        await store.save(checked.runtimeAfter());
      } catch (error) {
        throw new ControlError('ESTATE', `could not save state to ${store.file} (${(error as Error).message}); nothing changed`);
      }
      try {
        rib.commit(checked);
      } catch (error) {
        // The file already holds the change the RIB refused: put back what is live.
        await store.save(rib.runtimeChanges()).catch((restoreError: Error) => {
          log.error({ err: restoreError }, `could not put the state file ${store.file} back after a failed change: it holds a change that was not applied`);
        });
        throw toControlError(error);
      }
      if (changes.length <= CHANGES_LOGGED) {
        for (const change of changes) log.info({ change: describeChange(change) }, `route change: ${describeChange(change)}`);
      } else {
        const ops = new Map<string, number>();
        for (const change of changes) ops.set(change.op, (ops.get(change.op) ?? 0) + 1);
        const counts = [...ops].map(([op, count]) => `${count} ${op}`).join(', ');
        log.info({ changes: changes.length, ops: Object.fromEntries(ops) }, `route changes: ${changes.length} applied at once (${counts}); first ${describeChange(changes[0])}, last ${describeChange(changes[changes.length - 1])}`);
        if (log.isLevelEnabled('debug')) for (const change of changes) log.debug({ change: describeChange(change) }, `route change: ${describeChange(change)}`);
      }
    });
  }

  private plan(changes: RouteChange[]): RoutePlan {
    try {
      return this.context.router.rib.plan(changes);
    } catch (error) {
      throw toControlError(error);
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private toChange(request: RouteChangeRequest): RouteChange {
    if (!('target' in request)) return { op: request.command === 'route del' ? 'del' : 'revert', prefix: request.prefix };
    const op = request.command === 'route add' ? 'add' : 'replace';
    const target = request.target;
    const route: RouteSpec = target.type === 'unicast'
      ? { prefix: request.prefix, type: 'unicast', via: target.via.map((hop) => this.resolveNextHop(hop)) }
      : { prefix: request.prefix, type: target.type, via: [] };
    return { op, route };
  }

  private resolveNextHop(hop: string): { address: number; server?: string } {
    const servers = serverIndex(this.context.servers());
    if (/^\d/.test(hop)) {
      let address: number;
      try {
        address = parseAddress(hop);
      } catch (error) {
        throw new ControlError('EBADNEXTHOP', (error as Error).message);
      }
      const server = servers.byAddress.get(address);
      return server ? { address, server: server.name } : { address };
    }
    const server = servers.byName.get(hop);
    if (!server) {
      const known = [...servers.byName.keys()];
      throw new ControlError('EUNKNOWNSERVER', `unknown server \`${hop}\`${known.length ? ` (known: ${listSome(known)})` : '; no servers are configured'}`);
    }
    return { address: server.address, server: server.name };
  }

  // --- views ---

  private routeShow(prefix?: { address: number; length: number }): Reply {
    const rib = this.context.router.rib;
    let routes: RibRoute[];
    if (prefix) {
      const route = rib.route(prefix);
      if (!route) throw new ControlError('ENOROUTE', `no route ${formatPrefix(prefix)}`);
      routes = [route];
    } else {
      routes = rib.routes();
    }
    const active = (r: RibRoute) => {
      if (r.type !== 'unicast') return '-';
      const address = rib.activeNextHop(r);
      if (address === undefined) return 'withdrawn';
      return r.via.find((v) => v.address === address)?.server ?? formatAddress(address);
    };
    const rows = routes.map((r) => [formatPrefix(r.prefix), describe(r), active(r), r.via[0]?.port ?? r.port ?? '-', sourceOf(r)]);
    return textReply(table(['PREFIX', 'TARGET', 'ACTIVE', 'PORT', 'SOURCE'], rows), routes.map((r) => ({ ...routeJson(r), active: active(r) })));
  }

  private server(name: string): ServerHealth {
    const server = this.context.monitor.get(name);
    if (!server) {
      const known = this.context.monitor.list().map((s) => s.name);
      throw new ControlError('EUNKNOWNSERVER', `unknown server \`${name}\`${known.length ? ` (known: ${known.join(', ')})` : '; no servers are configured'}`);
    }
    return server;
  }

  /** Prefixes whose traffic goes to `address` now. */
  private carrying(address: number): string[] {
    const rib = this.context.router.rib;
    return rib.routes().filter((r) => r.type === 'unicast' && rib.activeNextHop(r) === address).map((r) => formatPrefix(r.prefix));
  }

  private serverShow(name?: string): Reply {
    const { resolver } = this.context.router;
    const servers = (name ? [this.server(name)] : this.context.monitor.list()).map((s) => {
      const last = s.checks.map((c) => c.last).filter((l) => l !== undefined).sort((a, b) => b!.at - a!.at)[0];
      return {
        name: s.name,
        address: formatAddress(s.address),
        state: displayState(s),
        health: s.state,
        drained: s.drained,
        since: new Date(s.since).toISOString(),
        reason: s.reason,
        lastCheckLatencyMs: last ? Math.round(last.latencyMs * 100) / 100 : null,
        checks: s.checks.map((c) => ({ check: describeCheck(c.config), up: c.up, intervalMs: c.intervalMs, rise: c.rise, fall: c.fall, last: c.last ?? null })),
        arp: resolver.stateOf(s.address) ?? 'unused',
        routes: this.carrying(s.address),
      };
    });
    const rows = servers.map((s) => [
      s.name, s.address, s.state, ago(s.since), s.lastCheckLatencyMs === null ? '-' : `${s.lastCheckLatencyMs.toFixed(2)}ms`,
      s.routes.join(' ') || '-', s.reason,
    ]);
    return textReply(table(['SERVER', 'ADDRESS', 'STATE', 'SINCE', 'LATENCY', 'ROUTES', 'WHY'], rows), name ? servers[0] : servers);
  }

  private neighborShow(): Reply {
    const rows = this.context.router.resolver.rows();
    const json = rows.map((r) => ({ ...r, address: formatAddress(r.address) }));
    return textReply(
      table(['ADDRESS', 'PORT', 'STATE', 'MAC', 'AGE', 'QUEUED'], json.map((r) => [r.address, r.port, r.state + (r.pinned ? ' (gateway)' : ''), r.mac || '-', `${(r.ageMs / 1000).toFixed(1)}s`, String(r.queued)])),
      json,
    );
  }

  private stats(): Reply {
    const { router } = this.context;
    const counters = router.totals().snapshot(router.ports.names);
    const fib = router.tables.fib;
    const result = {
      uptimeSeconds: Math.round((Date.now() - this.context.startedAt) / 1000),
      routes: router.rib.size,
      fibMemoryBytes: fib.memoryBytes(),
      lastRouteChange: router.rib.lastChange ? new Date(router.rib.lastChange).toISOString() : null,
      neighbors: router.resolver.table.size,
      portStates: Object.fromEntries(router.ports.names.map((name, p) => [name, router.ports.link[p]])),
      ...counters,
      backend: this.context.portStats?.() ?? {},
    };
    const losses = Object.entries(result.backend)
      .map(([port, values]) => `${port} ${nonZero(Object.fromEntries(BACKEND_LOSSES.filter((k) => k in values).map((k) => [k, values[k]])))}`);
    const lines = [
      `uptime ${result.uptimeSeconds}s  routes ${result.routes}  neighbors ${result.neighbors}  batches ${counters.batches}  last route change ${result.lastRouteChange ?? 'never'}`,
      ...table(['PORT', 'STATE', 'RX PACKETS', 'RX BYTES', 'TX PACKETS', 'TX BYTES', 'FORWARDED'],
        Object.entries(counters.ports).map(([name, c]) => [name, result.portStates[name], String(c.rxPackets), String(c.rxBytes), String(c.txPackets), String(c.txBytes), String(c.forwardedPackets)])),
      `drops: ${nonZero(counters.drops)}`,
      `icmp:  ${nonZero(counters.icmp)}`,
      `fragmentation: ${nonZero(counters.fragmentation)}`,
      `arp:   ${nonZero(counters.arp)}`,
      `kernel: ${nonZero(counters.punts)}`,
      ...(losses.length > 0 ? [`ports: ${losses.join('; ')}`] : []),
    ];
    return textReply(lines, result);
  }
}

/** Servers by name and by address, made once per server list (a reload brings a new list). */
const serverIndexes = new WeakMap<readonly ServerConfig[], { byName: Map<string, ServerConfig>; byAddress: Map<number, ServerConfig> }>();

function serverIndex(servers: readonly ServerConfig[]) {
  let index = serverIndexes.get(servers);
  if (!index) {
    index = { byName: new Map(servers.map((s) => [s.name, s])), byAddress: new Map() };
    for (const server of servers) if (!index.byAddress.has(server.address)) index.byAddress.set(server.address, server);
    serverIndexes.set(servers, index);
  }
  return index;
}

function ago(iso: string): string {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 120 ? `${seconds.toFixed(1)}s ago` : seconds < 7200 ? `${Math.round(seconds / 60)}m ago` : `${Math.round(seconds / 3600)}h ago`;
}

function nonZero(values: Record<string, number>): string {
  const parts = Object.entries(values).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'none';
}

function sourceOf(route: RibRoute): string {
  if (route.source === 'config') return `${route.sourceFile === undefined ? 'config' : basename(route.sourceFile)}:${route.sourceLine}`;
  if (route.source === 'runtime') return route.overrides ? 'runtime (overrides config)' : 'runtime';
  return route.source;
}

function routeJson(route: RibRoute) {
  return {
    prefix: formatPrefix(route.prefix),
    type: route.type,
    via: route.via.map((v) => ({ address: formatAddress(v.address), server: v.server, port: v.port })),
    port: route.via[0]?.port ?? route.port,
    source: route.source,
    sourceLine: route.sourceLine,
    sourceFile: route.sourceFile,
    overridesConfig: route.overrides === 'config',
  };
}

export function describeChange(change: RouteChange): string {
  if (change.op === 'del' || change.op === 'revert') return `${change.op} ${formatPrefix(change.prefix)}`;
  const r = change.route;
  const target = r.type === 'unicast' ? `via ${r.via.map((v) => v.server ?? formatAddress(v.address)).join(',')}` : r.type;
  return `${change.op} ${formatPrefix(r.prefix)} ${target}`;
}
