// What each control command does. Shared by the socket server and tests;
// the CLI is a thin client of the socket.
//
// Every change goes the same way: resolve names, validate against the RIB
// (nothing changes on error), save the runtime state atomically, apply it to
// the live FIB in one synchronous call, reply ok. Changes are serialised, so
// two clients never interleave a save and an apply.

import type { Logger } from 'pino';
import type { ServerConfig } from '../config/types.js';
import type { Router } from '../daemon/router.js';
import { describe, RibError, type RibRoute, type RouteChange, type RouteSpec } from '../rib/rib.js';
import { formatAddress, formatPrefix, parseAddress } from '../util/ipv4.js';
import { HELP, type Request, type RouteChangeRequest } from './grammar.js';
import { ControlError, textReply, type Reply } from './protocol.js';
import type { StateStore } from './state-store.js';

export interface ControlContext {
  router: Router;
  store: StateStore;
  log: Logger;
  servers(): readonly ServerConfig[];
  /** Re-reads the config file; throws with a one-line reason and changes nothing on a bad file. */
  reload(): Promise<string>;
  startedAt: number;
}

/** Per-connection state: an open transaction collects changes until commit. */
export interface Session {
  transaction: RouteChange[] | null;
}

export class ControlService {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly context: ControlContext) {}

  async handle(request: Request, session: Session): Promise<Reply> {
    switch (request.command) {
      case 'ping': return textReply(['pong'], 'pong');
      case 'help': return textReply([...HELP], HELP);
      case 'route show': return this.routeShow(request.prefix);
      case 'server show': return this.serverShow();
      case 'neighbor show': return this.neighborShow();
      case 'stats': return this.stats();
      case 'begin':
        if (session.transaction) throw new ControlError('ETRANSACTION', 'a transaction is already open; `commit` or `abort` it first');
        session.transaction = [];
        return textReply(['transaction open: send changes, then `commit` (or `abort`)'], { transaction: 'open' });
      case 'abort': {
        if (!session.transaction) throw new ControlError('ETRANSACTION', 'no transaction is open');
        const dropped = session.transaction.length;
        session.transaction = null;
        return textReply([`transaction aborted: ${dropped} change(s) dropped, nothing applied`], { dropped });
      }
      case 'commit': {
        if (!session.transaction) throw new ControlError('ETRANSACTION', 'no transaction is open; `begin` first');
        const changes = session.transaction;
        session.transaction = null; // closed either way: applied whole, or not at all
        if (changes.length === 0) return textReply(['nothing to commit'], { applied: 0 });
        await this.apply(changes);
        return textReply([`committed ${changes.length} change(s) at once`], { applied: changes.length });
      }
      case 'reload':
        return this.serial(async () => {
          const summary = await this.context.reload();
          return textReply([summary], { reloaded: true, summary });
        });
      default: {
        const change = this.toChange(request);
        if (session.transaction) {
          // Validate now against what the transaction has so far, so a typo is reported at once.
          this.plan([...session.transaction, change]);
          session.transaction.push(change);
          return textReply([`queued (${session.transaction.length} in transaction)`], { queued: session.transaction.length });
        }
        await this.apply([change]);
        return textReply([], { applied: 1 });
      }
    }
  }

  /** Validate, persist, then apply; all or nothing. */
  private apply(changes: RouteChange[]): Promise<void> {
    return this.serial(async () => {
      const runtime = this.plan(changes);
      try {
        await this.context.store.save(runtime);
      } catch (error) {
        throw new ControlError('ESTATE', `could not save state to ${this.context.store.file} (${(error as Error).message}); nothing changed`);
      }
      this.context.router.rib.commit(runtime);
      for (const change of changes) this.context.log.info({ change: describeChange(change) }, `route change: ${describeChange(change)}`);
    });
  }

  private plan(changes: RouteChange[]) {
    try {
      return this.context.router.rib.plan(changes);
    } catch (error) {
      if (error instanceof RibError) throw new ControlError(error.code, error.message);
      throw error;
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
    const servers = this.context.servers();
    if (/^\d/.test(hop)) {
      let address: number;
      try {
        address = parseAddress(hop);
      } catch (error) {
        throw new ControlError('EBADNEXTHOP', (error as Error).message);
      }
      const server = servers.find((s) => s.address === address);
      return server ? { address, server: server.name } : { address };
    }
    const server = servers.find((s) => s.name === hop);
    if (!server) {
      const known = servers.map((s) => s.name);
      throw new ControlError('EUNKNOWNSERVER', `unknown server \`${hop}\`${known.length ? ` (known: ${known.join(', ')})` : '; no servers are configured'}`);
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
    const rows = routes.map((r) => [formatPrefix(r.prefix), describe(r), r.via[0]?.port ?? r.port ?? '-', sourceOf(r)]);
    return textReply(table(['PREFIX', 'TARGET', 'PORT', 'SOURCE'], rows), routes.map(routeJson));
  }

  private serverShow(): Reply {
    const { rib, resolver } = this.context.router;
    const routes = rib.routes();
    const servers = this.context.servers().map((s) => {
      const carrying = routes.filter((r) => r.type === 'unicast' && r.via[0].address === s.address).map((r) => formatPrefix(r.prefix));
      return { name: s.name, address: formatAddress(s.address), arp: resolver.stateOf(s.address) ?? 'unused', routes: carrying };
    });
    const rows = servers.map((s) => [s.name, s.address, s.arp, s.routes.join(' ') || '-']);
    return textReply(table(['SERVER', 'ADDRESS', 'ARP', 'ROUTES'], rows), servers);
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
    const counters = router.counters.snapshot(router.ports.names);
    const fib = router.tables.fib;
    const result = {
      uptimeSeconds: Math.round((Date.now() - this.context.startedAt) / 1000),
      routes: router.rib.size,
      fibMemoryBytes: fib.memoryBytes(),
      lastRouteChange: router.rib.lastChange ? new Date(router.rib.lastChange).toISOString() : null,
      neighbors: router.resolver.table.size,
      ...counters,
    };
    const lines = [
      `uptime ${result.uptimeSeconds}s  routes ${result.routes}  neighbors ${result.neighbors}  batches ${counters.batches}  last route change ${result.lastRouteChange ?? 'never'}`,
      ...table(['PORT', 'RX PACKETS', 'RX BYTES', 'TX PACKETS', 'TX BYTES', 'FORWARDED'],
        Object.entries(counters.ports).map(([name, c]) => [name, String(c.rxPackets), String(c.rxBytes), String(c.txPackets), String(c.txBytes), String(c.forwardedPackets)])),
      `drops: ${nonZero(counters.drops)}`,
      `icmp:  ${nonZero(counters.icmp)}`,
      `kernel: ${nonZero(counters.punts)}`,
    ];
    return textReply(lines, result);
  }
}

function nonZero(values: Record<string, number>): string {
  const parts = Object.entries(values).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'none';
}

function sourceOf(route: RibRoute): string {
  if (route.source === 'config') return `config:${route.sourceLine}`;
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
    overridesConfig: route.overrides === 'config',
  };
}

export function describeChange(change: RouteChange): string {
  if (change.op === 'del' || change.op === 'revert') return `${change.op} ${formatPrefix(change.prefix)}`;
  const r = change.route;
  const target = r.type === 'unicast' ? `via ${r.via.map((v) => v.server ?? formatAddress(v.address)).join(',')}` : r.type;
  return `${change.op} ${formatPrefix(r.prefix)} ${target}`;
}

/** Columns padded to the widest cell. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === cells.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ');
  return [line(header), ...rows.map(line)];
}
