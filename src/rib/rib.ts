// The RIB: the router's intent compiled into a FIB. Control plane: plain,
// allocating TypeScript.
//
// Intent has three layers, later ones winning for the same prefix:
//   interface routes  connected subnets, the router's own addresses (to the
//                     kernel) and subnet broadcasts (never forwarded);
//   config routes     from the config file;
//   runtime changes   from the control socket (`route add/replace/del`),
//                     persisted by the caller so they survive a restart.
//
// How a change reaches the data plane:
//   load()    builds a whole new LpmTable beside the live one and publishes it
//             with one assignment to `tables.fib` (start, reload);
//   commit()  edits the live table in place, all edits of one change inside
//             one synchronous call. The data plane runs on the same thread
//             and reads `tables.fib` once per batch, so the call falls between
//             two batches: no frame sees half a change either way.

import { LpmTable } from '../fib/lpm.js';
import {
  NH_BLACKHOLE, NH_BROADCAST, NH_LOCAL, NH_UNREACHABLE, NextHopKind, type NextHopTable,
} from '../fib/nexthop.js';
import type { DataplaneTables } from '../dataplane/dataplane.js';
import type { PortTable } from '../dataplane/ports.js';
import type { NeighborResolver } from '../neighbor/resolver.js';
import type { RouteConfig, RouteType } from '../config/types.js';
import { contains, formatAddress, formatPrefix, maskOf, type Prefix } from '../util/ipv4.js';

export type RouteSource = 'connected' | 'local' | 'broadcast' | 'config' | 'runtime';

export interface Gateway {
  address: number;
  /** Server name, when the route named one. */
  server?: string;
}

/** A route as the operator states it (config file or control socket). */
export interface RouteSpec {
  prefix: Prefix;
  type: RouteType;
  /** Unicast: next hops in order of preference; the first carries the route. */
  via: Gateway[];
}

export interface RibRoute {
  prefix: Prefix;
  type: RouteType | 'connected' | 'local' | 'broadcast';
  source: RouteSource;
  /** Shared by every route with the same list: never modified. */
  via: readonly Readonly<Gateway & { port: string }>[];
  /** Port of interface routes. */
  port?: string;
  /** Line of the config file, for config routes. */
  sourceLine?: number;
  /** Runtime change that replaced a config route. */
  overrides?: 'config';
  /** The next hop the FIB leaf holds. */
  nextHop: number;
}

export type RouteChange =
  | { op: 'add' | 'replace'; route: RouteSpec }
  | { op: 'del'; prefix: Prefix }
  /** Drop the runtime change for a prefix: the config route (if any) is back. */
  | { op: 'revert'; prefix: Prefix };

/** Runtime changes relative to the config: a spec, or null for "deleted". */
export type RuntimeChanges = Map<string, RouteSpec | null>;

export class RibError extends Error {
  readonly code: string;
  constructor(message: string, code = 'EROUTE') {
    super(message);
    this.code = code;
  }
}

export const prefixKey = (p: Prefix): string => `${p.address >>> 0}/${p.length}`;

interface Compiled {
  routes: Map<string, RibRoute>;
  /** prefixKey of each config route, in order (the same strings as the keys of `routes`). */
  configKeys: string[];
  /** Every next-hop address in use -> its port. */
  gateways: Map<number, number>;
  /** Every distinct ordered next-hop list in use, by groupKey. */
  groups: Map<string, number[]>;
}

/** What the health checks say of a next hop (addresses without checks are always usable). */
export interface NextHopAvailability {
  /** Healthy and not drained: may carry traffic. */
  usable(address: number): boolean;
  /** Usable and up long enough (hold-down) to take routes back from a less preferred next hop. */
  stable(address: number): boolean;
  /** 'manual': routes stay on a working backup until the operator moves them back. */
  failback(): 'auto' | 'manual';
}

const ALWAYS: NextHopAvailability = { usable: () => true, stable: () => true, failback: () => 'auto' };

/** A route moved from one next hop to another (or to none: withdrawn). */
export interface RouteMove {
  prefixes: Prefix[];
  from?: number;
  to?: number;
}

const groupKey = (via: readonly { address: number }[]): string => via.map((v) => v.address >>> 0).join(',');

/**
 * One next-hop slot per distinct ordered list of next hops: every route with
 * the same list points at it, and failover rewrites the slot (its neighbour
 * and port) in one write, never the routes.
 */
interface Group {
  nextHop: number;
  members: number[];
  /** Index into members of the one carrying traffic, -1 when none can. */
  active: number;
}

export class Rib {
  private routesByKey = new Map<string, RibRoute>();
  private configByKey = new Map<string, RouteConfig>();
  /** Resolved next-hop lists by their gateways, shared between routes (resolveSpec). */
  private readonly viaLists = new Map<string, readonly Readonly<Gateway & { port: string }>[]>();
  /** Route keys per next-hop group, so a failover names its prefixes without scanning every route. */
  private groupRoutes = new Map<string, Set<string>>();
  /** How many routes name each next-hop address: a gateway is unpinned when none does. */
  private gatewayUse = new Map<number, number>();
  private runtime: RuntimeChanges = new Map();
  /** Keys of the interface routes in `routesByKey` (connected, local, broadcast), as the ports had them last. */
  private interfaceKeys = new Set<string>();
  /**
   * Config or runtime routes for a prefix an interface route took over at run
   * time (an address added to a port): kept here, out of the FIB, and put back
   * when the interface route goes again.
   */
  private shadowed = new Map<string, RibRoute>();
  /** Pinned neighbour entry per next-hop address. */
  private gateways = new Map<number, { neighbor: number; port: number }>();
  private groups = new Map<string, Group>();
  private availability: NextHopAvailability = ALWAYS;
  private readonly connectedNextHop: number[] = [];
  /** When the FIB last changed (ms since epoch), for stats. */
  lastChange = 0;

  constructor(
    private readonly ports: PortTable,
    private readonly nextHops: NextHopTable,
    private readonly resolver: NeighborResolver,
    private readonly tables: DataplaneTables,
  ) {
    for (let port = 0; port < ports.count; port++) {
      this.connectedNextHop[port] = nextHops.allocate(NextHopKind.connected, port);
    }
  }

  /**
   * Compiles config routes plus runtime changes into a new FIB and swaps it in.
   * Throws RibError and changes nothing when anything is invalid.
   */
  load(configRoutes: readonly RouteConfig[], runtime: RuntimeChanges = this.runtime): void {
    this.viaLists.clear(); // lists no longer named go with the old routes
    const compiled = this.compile(configRoutes, runtime);
    this.ensureNextHops(compiled);
    const entries: [number, number, number][] = [];
    for (const route of compiled.routes.values()) {
      route.nextHop = this.nextHopFor(route);
      entries.push([route.prefix.address, route.prefix.length, route.nextHop]);
    }
    this.tables.fib = LpmTable.build(entries);
    this.routesByKey = compiled.routes;
    this.interfaceKeys = new Set([...compiled.routes].filter(([, r]) => isInterfaceRoute(r)).map(([key]) => key));
    this.shadowed = new Map();
    this.configByKey = new Map(configRoutes.map((r, i) => [compiled.configKeys[i], r]));
    this.runtime = new Map(runtime);
    this.groupRoutes = new Map();
    this.gatewayUse = new Map();
    for (const [key, route] of compiled.routes) this.retain(key, route);
    this.releaseUnused();
    this.lastChange = Date.now();
  }

  /**
   * Validates changes (applied in order, each seeing the ones before it) and
   * returns the runtime changes they produce. Changes nothing.
   */
  plan(changes: readonly RouteChange[]): RuntimeChanges {
    const runtime = new Map(this.runtime);
    // Only the changed prefixes are copied: the plan sees the live routes through this overlay.
    const overlay = new Map<string, RibRoute | null>();
    const effective = {
      get: (key: string) => (overlay.has(key) ? overlay.get(key) ?? undefined : this.routesByKey.get(key)),
      set: (key: string, route: RibRoute) => overlay.set(key, route),
      delete: (key: string) => overlay.set(key, null),
    };
    const configByKey = this.configByKey;
    changes.forEach((change, index) => {
      const where = changes.length > 1 ? `change ${index + 1}: ` : '';
      const prefix = 'route' in change ? change.route.prefix : change.prefix;
      const key = prefixKey(prefix);
      const existing = effective.get(key);
      if (existing && (existing.source === 'connected' || existing.source === 'local' || existing.source === 'broadcast')) {
        throw new RibError(`${where}${formatPrefix(prefix)} is the ${existing.source} route of ${existing.port}; it follows the interface and cannot be changed`, 'EROUTEPROTECTED');
      }
      if (change.op === 'add' && existing) {
        throw new RibError(`${where}route ${formatPrefix(prefix)} already exists (${describe(existing)}); use \`route replace\``, 'EROUTEEXISTS');
      }
      if (change.op === 'del' && !existing) {
        throw new RibError(`${where}no route ${formatPrefix(prefix)} to delete`, 'ENOROUTE');
      }
      if (change.op === 'revert' && !runtime.has(key)) {
        throw new RibError(`${where}route ${formatPrefix(prefix)} has no runtime change to revert`, 'ENOROUTE');
      }
      if (change.op === 'add' || change.op === 'replace') {
        const route = this.resolveSpec(change.route, 'runtime', where);
        route.overrides = configByKey.has(key) ? 'config' : undefined;
        effective.set(key, route);
        runtime.set(key, change.route);
      } else if (change.op === 'del') {
        effective.delete(key);
        if (configByKey.has(key)) runtime.set(key, null);
        else runtime.delete(key);
      } else {
        runtime.delete(key);
        const config = configByKey.get(key);
        if (config) effective.set(key, this.fromConfig(config));
        else effective.delete(key);
      }
    });
    return runtime;
  }

  /**
   * Applies validated runtime changes to the live FIB in place, in one
   * synchronous call (see the header). `runtime` comes from plan().
   */
  commit(runtime: RuntimeChanges): void {
    // Only prefixes whose runtime change differs are touched: O(changes), not O(routes).
    const changed = new Set<string>();
    for (const [key, spec] of runtime) if (this.runtime.get(key) !== spec || !this.runtime.has(key)) changed.add(key);
    for (const key of this.runtime.keys()) if (!runtime.has(key)) changed.add(key);
    const next = new Map<string, RibRoute | undefined>();
    const gateways = new Map<number, number>();
    const groups = new Map<string, number[]>();
    for (const key of changed) {
      let route: RibRoute | undefined;
      const spec = runtime.get(key);
      if (spec) {
        route = this.resolveSpec(spec, 'runtime', 'runtime ');
        if (this.configByKey.has(key)) route.overrides = 'config';
      } else if (spec === undefined) {
        const config = this.configByKey.get(key);
        route = config ? this.fromConfig(config) : undefined;
      }
      next.set(key, route);
      if (route) {
        for (const via of route.via) gateways.set(via.address, this.ports.names.indexOf(via.port));
        if (route.type === 'unicast') groups.set(groupKey(route.via), route.via.map((v) => v.address));
      }
    }
    this.ensureNextHops({ gateways, groups });
    const fib = this.tables.fib;
    for (const [key, route] of next) {
      const old = this.routesByKey.get(key);
      if (old) this.forget(key, old);
      if (route) {
        route.nextHop = this.nextHopFor(route);
        if (!old || old.nextHop !== route.nextHop) fib.insert(route.prefix.address, route.prefix.length, route.nextHop);
        this.routesByKey.set(key, route);
        this.retain(key, route);
      } else if (old) {
        fib.delete(old.prefix.address, old.prefix.length);
        this.routesByKey.delete(key);
      }
    }
    this.runtime = new Map(runtime);
    this.releaseUnused();
    this.lastChange = Date.now();
  }

  private retain(key: string, route: RibRoute): void {
    if (route.type !== 'unicast') return;
    const group = groupKey(route.via);
    let keys = this.groupRoutes.get(group);
    if (!keys) this.groupRoutes.set(group, (keys = new Set()));
    keys.add(key);
    for (const via of route.via) this.gatewayUse.set(via.address, (this.gatewayUse.get(via.address) ?? 0) + 1);
  }

  private forget(key: string, route: RibRoute): void {
    if (route.type !== 'unicast') return;
    const group = groupKey(route.via);
    const keys = this.groupRoutes.get(group);
    keys?.delete(key);
    if (keys?.size === 0) this.groupRoutes.delete(group);
    for (const via of route.via) this.gatewayUse.set(via.address, (this.gatewayUse.get(via.address) ?? 1) - 1);
  }

  /**
   * The ports' addresses changed (the kernel's, at run time): interface routes
   * (connected subnets, own addresses, subnet broadcasts) are rebuilt from the
   * ports and the difference applied to the live FIB in one synchronous call.
   * An interface route wins over a config or runtime route for the same prefix,
   * as the kernel's connected route would; that route waits out of the FIB and
   * comes back when the address goes. Call reselect() next: next hops whose
   * subnet came or went change usability.
   */
  interfacesChanged(): { added: Prefix[]; removed: Prefix[] } {
    const fresh = new Map<string, RibRoute>();
    for (const route of this.interfaceRoutes()) fresh.set(prefixKey(route.prefix), route);
    const fib = this.tables.fib;
    const added: Prefix[] = [];
    const removed: Prefix[] = [];
    for (const key of this.interfaceKeys) {
      if (fresh.has(key)) continue;
      const old = this.routesByKey.get(key)!;
      removed.push(old.prefix);
      const waiting = this.shadowed.get(key);
      if (waiting) {
        this.shadowed.delete(key);
        this.routesByKey.set(key, waiting);
        this.retain(key, waiting);
        fib.insert(waiting.prefix.address, waiting.prefix.length, waiting.nextHop);
      } else {
        this.routesByKey.delete(key);
        fib.delete(old.prefix.address, old.prefix.length);
      }
    }
    for (const [key, route] of fresh) {
      const existing = this.routesByKey.get(key);
      if (existing && isInterfaceRoute(existing) && existing.type === route.type && existing.port === route.port) {
        fresh.set(key, existing);
        continue;
      }
      route.nextHop = this.nextHopFor(route);
      if (existing && !isInterfaceRoute(existing)) {
        this.forget(key, existing);
        this.shadowed.set(key, existing);
      }
      if (!existing || !isInterfaceRoute(existing)) added.push(route.prefix);
      this.routesByKey.set(key, route);
      fib.insert(route.prefix.address, route.prefix.length, route.nextHop);
    }
    this.interfaceKeys = new Set(fresh.keys());
    if (added.length > 0 || removed.length > 0) this.lastChange = Date.now();
    return { added, removed };
  }

  /** Config or runtime routes an interface route covers now (see interfacesChanged). */
  shadowedRoutes(): RibRoute[] {
    return [...this.shadowed.values()];
  }

  /** Where the health of next hops comes from; call reselect() after it changes. */
  setAvailability(availability: NextHopAvailability): void {
    this.availability = availability;
  }

  /**
   * Picks the active next hop of every group again (after a health change, a
   * drain, a hold-down expiry). Each moved group is one write to its next-hop
   * slot. `force` (the operator asked) ignores manual failback and the hold-down.
   */
  reselect(force = false): RouteMove[] {
    const moves: RouteMove[] = [];
    for (const [key, group] of this.groups) {
      const active = this.select(group, force);
      if (active === group.active) continue;
      const from = group.active >= 0 ? group.members[group.active] : undefined;
      this.activate(group, active);
      const prefixes = [...(this.groupRoutes.get(key) ?? [])].map((k) => this.routesByKey.get(k)!.prefix);
      moves.push({ prefixes, from, to: active >= 0 ? group.members[active] : undefined });
    }
    if (moves.length > 0) this.lastChange = Date.now();
    return moves;
  }

  /** The next hop carrying a unicast route now, or undefined when it is withdrawn. */
  activeNextHop(route: RibRoute): number | undefined {
    const group = this.groups.get(groupKey(route.via));
    return group && group.active >= 0 ? group.members[group.active] : undefined;
  }

  routes(): RibRoute[] {
    return [...this.routesByKey.values()].sort(
      (a, b) => (a.prefix.address >>> 0) - (b.prefix.address >>> 0) || a.prefix.length - b.prefix.length,
    );
  }

  route(prefix: Prefix): RibRoute | undefined {
    return this.routesByKey.get(prefixKey(prefix));
  }

  runtimeChanges(): RuntimeChanges {
    return new Map(this.runtime);
  }

  get size(): number {
    return this.routesByKey.size;
  }

  // --- compiling ---

  private compile(configRoutes: readonly RouteConfig[], runtime: RuntimeChanges): Compiled {
    const routes = new Map<string, RibRoute>();
    for (const route of this.interfaceRoutes()) routes.set(prefixKey(route.prefix), route);
    const configKeys = configRoutes.map((r) => prefixKey(r.prefix));
    configRoutes.forEach((config, i) => {
      const key = configKeys[i];
      const clash = routes.get(key);
      if (clash) {
        throw new RibError(`route ${formatPrefix(config.prefix)} (line ${config.sourceLine}): duplicates the ${clash.source} route of ${clash.port}`);
      }
      if (runtime.has(key)) return; // replaced or deleted at run time
      routes.set(key, this.fromConfig(config));
    });
    const isConfigKey = new Set(configKeys);
    for (const [key, spec] of runtime) {
      if (spec === null) continue;
      const clash = routes.get(key);
      if (clash) throw new RibError(`runtime route ${formatPrefix(spec.prefix)}: duplicates the ${clash.source} route of ${clash.port}`);
      const route = this.resolveSpec(spec, 'runtime', 'runtime ');
      if (isConfigKey.has(key)) route.overrides = 'config';
      routes.set(key, route);
    }
    const gateways = new Map<number, number>();
    const groups = new Map<string, number[]>();
    for (const route of routes.values()) {
      for (const via of route.via) gateways.set(via.address, this.ports.names.indexOf(via.port));
      if (route.type === 'unicast') groups.set(groupKey(route.via), route.via.map((v) => v.address));
    }
    return { routes, configKeys, gateways, groups };
  }

  private fromConfig(config: RouteConfig): RibRoute {
    const spec: RouteSpec = { prefix: config.prefix, type: config.type, via: config.via };
    const route = this.resolveSpec(spec, 'config', `route ${formatPrefix(config.prefix)} (line ${config.sourceLine}): `);
    route.sourceLine = config.sourceLine;
    return route;
  }

  /** Checks the gateways of a spec against the ports. */
  private resolveSpec(spec: RouteSpec, source: RouteSource, where: string): RibRoute {
    if (spec.type === 'unicast' && spec.via.length === 0) throw new RibError(`${where}unicast route ${formatPrefix(spec.prefix)} needs a next hop`, 'EBADROUTE');
    if (spec.type !== 'unicast' && spec.via.length > 0) throw new RibError(`${where}${spec.type} route ${formatPrefix(spec.prefix)} takes no next hop`, 'EBADROUTE');
    // Routes with the same next-hop list share one (frozen) array: a million
    // routes over a few lists would otherwise carry a million copies.
    const cacheKey = spec.via.map((g) => `${g.address >>> 0}:${g.server ?? ''}`).join(',');
    const cached = this.viaLists.get(cacheKey);
    if (cached) return { prefix: spec.prefix, type: spec.type, source, via: cached, nextHop: 0 };
    const seen = new Set<number>();
    const via = spec.via.map((gateway) => {
      const port = this.portForGateway(gateway.address);
      const name = gateway.server ? `${gateway.server} (${formatAddress(gateway.address)})` : formatAddress(gateway.address);
      if (port < 0) {
        throw new RibError(`${where}next hop ${name} is not on a connected subnet of any interface (${this.describeSubnets()})`, 'EBADNEXTHOP');
      }
      if (this.isOwnAddress(gateway.address)) throw new RibError(`${where}next hop ${name} is this router's own address`, 'EBADNEXTHOP');
      if (seen.has(gateway.address)) throw new RibError(`${where}next hop ${name} is listed twice`, 'EBADNEXTHOP');
      seen.add(gateway.address);
      return Object.freeze({ ...gateway, port: this.ports.names[port] });
    });
    const shared = Object.freeze(via);
    this.viaLists.set(cacheKey, shared);
    return { prefix: spec.prefix, type: spec.type, source, via: shared, nextHop: 0 };
  }

  /** Pins a neighbour for every next-hop address and a slot for every group, before any leaf points at them. */
  private ensureNextHops(compiled: Pick<Compiled, 'gateways' | 'groups'>): void {
    for (const [gateway, port] of compiled.gateways) {
      if (this.gateways.has(gateway)) continue;
      const neighbor = this.resolver.pinGateway(gateway, port);
      if (neighbor < 0) throw new RibError(`next hop ${formatAddress(gateway)}: neighbour table full`, 'EFULL');
      this.gateways.set(gateway, { neighbor, port });
    }
    for (const [key, members] of compiled.groups) {
      if (this.groups.has(key)) continue;
      const first = this.gateways.get(members[0])!;
      const group: Group = { nextHop: this.nextHops.allocate(NextHopKind.gateway, first.port, members[0], first.neighbor), members, active: 0 };
      this.activate(group, this.select(group, true));
      this.groups.set(key, group);
    }
  }

  /** Frees the slots of groups no route uses and unpins next hops no route names. */
  private releaseUnused(): void {
    for (const [key, group] of this.groups) {
      if (this.groupRoutes.has(key)) continue;
      this.nextHops.release(group.nextHop);
      this.groups.delete(key);
    }
    for (const [gateway, { neighbor }] of this.gateways) {
      if ((this.gatewayUse.get(gateway) ?? 0) > 0) continue;
      this.resolver.unpinGateway(neighbor);
      this.gateways.delete(gateway);
      this.gatewayUse.delete(gateway);
    }
  }

  /**
   * Whether a next hop can be reached at all: its port's link is up and it is
   * still on one of that port's subnets (an address removed at run time takes
   * its subnet, and the next hops in it, away until it comes back).
   */
  private reachable(address: number): boolean {
    const gateway = this.gateways.get(address);
    if (!gateway) return false;
    return this.ports.linkUp[gateway.port] === 1 && this.ports.onConnectedSubnet(gateway.port, address);
  }

  /** Index of the member that should carry the group's routes, or -1. */
  private select(group: Group, force: boolean): number {
    const { members } = group;
    const health = this.availability;
    const availability: NextHopAvailability = {
      usable: (address) => this.reachable(address) && health.usable(address),
      stable: (address) => this.reachable(address) && health.stable(address),
      failback: () => health.failback(),
    };
    const current = group.active;
    if (force) {
      // The operator (or a new group) asks for the most preferred next hop that works, hold-down or not.
      for (let i = 0; i < members.length; i++) if (availability.usable(members[i])) return i;
      return -1;
    }
    if (availability.failback() === 'manual' && current >= 0 && availability.usable(members[current])) return current;
    // The first member that is stable, or is already active and still usable (no flapping back and forth).
    for (let i = 0; i < members.length; i++) {
      if (availability.usable(members[i]) && (i === current || availability.stable(members[i]))) return i;
    }
    // Nothing stable: any usable one beats withdrawing the route.
    for (let i = 0; i < members.length; i++) if (availability.usable(members[i])) return i;
    return -1;
  }

  /** One write to the group's slot: the data plane sees the old next hop or the new one. */
  private activate(group: Group, active: number): void {
    group.active = active;
    const nh = group.nextHop;
    if (active < 0) {
      this.nextHops.kind[nh] = NextHopKind.unreachable;
      return;
    }
    const member = this.gateways.get(group.members[active])!;
    this.nextHops.port[nh] = member.port;
    this.nextHops.gateway[nh] = group.members[active];
    this.nextHops.neighbor[nh] = member.neighbor;
    this.nextHops.kind[nh] = NextHopKind.gateway;
  }

  private nextHopFor(route: RibRoute): number {
    switch (route.type) {
      case 'connected': return this.connectedNextHop[this.ports.names.indexOf(route.port!)];
      case 'local': return NH_LOCAL;
      case 'broadcast': return NH_BROADCAST;
      case 'unreachable': return NH_UNREACHABLE;
      case 'blackhole': return NH_BLACKHOLE;
      case 'unicast': return this.groups.get(groupKey(route.via))!.nextHop;
    }
  }

  /** Connected subnets, the router's own addresses (/32, to the kernel) and subnet broadcasts (/32, never forwarded). */
  private interfaceRoutes(): RibRoute[] {
    const routes: RibRoute[] = [];
    for (let port = 0; port < this.ports.count; port++) {
      const name = this.ports.names[port];
      for (const { address, length } of this.ports.addresses[port]) {
        const network = (address & maskOf(length)) >>> 0;
        routes.push({ prefix: { address: network, length }, type: 'connected', source: 'connected', port: name, via: [], nextHop: 0 });
        routes.push({ prefix: { address, length: 32 }, type: 'local', source: 'local', port: name, via: [], nextHop: 0 });
        if (length <= 30) {
          const broadcast = (network | ~maskOf(length)) >>> 0;
          routes.push({ prefix: { address: broadcast, length: 32 }, type: 'broadcast', source: 'broadcast', port: name, via: [], nextHop: 0 });
        }
      }
    }
    return routes;
  }

  private portForGateway(gateway: number): number {
    let best = -1;
    let bestLength = -1;
    for (let port = 0; port < this.ports.count; port++) {
      for (const a of this.ports.addresses[port]) {
        if (a.length > bestLength && contains({ address: (a.address & maskOf(a.length)) >>> 0, length: a.length }, gateway)) {
          best = port;
          bestLength = a.length;
        }
      }
    }
    return best;
  }

  private isOwnAddress(address: number): boolean {
    return this.ports.addresses.some((list) => list.some((a) => a.address === address));
  }

  private describeSubnets(): string {
    return this.ports.names
      .map((name, port) => `${name}: ${this.ports.addresses[port].map((a) => formatPrefix({ address: (a.address & maskOf(a.length)) >>> 0, length: a.length })).join(', ') || 'no address'}`)
      .join('; ');
  }
}

function isInterfaceRoute(route: RibRoute): boolean {
  return route.source === 'connected' || route.source === 'local' || route.source === 'broadcast';
}

export function describe(route: RibRoute): string {
  if (route.type === 'unicast') {
    return `via ${route.via.map((v) => (v.server ? `${v.server} (${formatAddress(v.address)})` : formatAddress(v.address))).join(', ')}`;
  }
  return route.type;
}
