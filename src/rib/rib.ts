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
//   interfacesChanged()  the kernel changed a port's addresses at run time:
//             the interface routes' difference is applied in place, in one
//             synchronous call (an interface route shadows a config or runtime
//             route for the same prefix until it goes);
//   plan()    checks route changes (a transaction's one at a time, each
//             against the ones before it) into a RoutePlan, changing nothing;
//             it refuses what the neighbour or next-hop table cannot hold;
//   commit()  applies a plan to the live table in place, all edits inside one
//             synchronous call, touching only the plan's prefixes; if any
//             step fails, every step before it is undone. The data plane runs
//             on the same thread and reads `tables.fib` once per batch, so the
//             call falls between two batches: no frame sees half a change.

import { LpmTable, MAX_NEXT_HOP } from '../dataplane/fib/lpm.js';
import {
  NH_BLACKHOLE, NH_BROADCAST, NH_FIRST_DYNAMIC, NH_LOCAL, NH_UNREACHABLE, NextHopKind, type NextHopTable,
} from '../dataplane/fib/nexthop.js';
import type { ControlTables } from '../dataplane/dataplane.js';
import type { PortTable } from '../dataplane/ports.js';
import type { NeighborResolver } from '../neighbor/resolver.js';
import type { RouteConfig, RouteType } from '../config/types.js';
import { contains, formatAddress, formatPrefix, maskOf, type Prefix } from '../util/ipv4.js';
import { connectedAddressRole, nextHopProblem, routePrefixProblem } from '../util/martians.js';

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
  /** Line of the config file (or of `sourceFile`), for config routes. */
  sourceLine?: number;
  /** The route file of a config route that came from one. */
  sourceFile?: string;
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

/** The FIB and the next-hop table throw RangeError when out of room: a RibError for the callers to report. */
function asRibError(error: unknown): unknown {
  return error instanceof RangeError ? new RibError(`${error.message}; nothing applied`, 'EFULL') : error;
}

export const prefixKey = (p: Prefix): string => `${p.address >>> 0}/${p.length}`;

interface Compiled {
  routes: Map<string, RibRoute>;
  /** prefixKey of each config route, in order (the same strings as the keys of `routes`). */
  configKeys: string[];
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

/** Group keys of the shared (frozen) next-hop lists, so a million routes over a few lists build a few strings. */
const groupKeys = new WeakMap<readonly { address: number }[], string>();

function groupKey(via: readonly { address: number }[]): string {
  let key = groupKeys.get(via);
  if (key === undefined) {
    key = via.map((v) => v.address >>> 0).join(',');
    if (Object.isFrozen(via)) groupKeys.set(via, key);
  }
  return key;
}

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

/** Next-hop slots a route change may allocate: every index the FIB can hold, less the fixed ones. */
const NEXT_HOP_SLOTS = MAX_NEXT_HOP + 1 - NH_FIRST_DYNAMIC;

/** What a RoutePlan reads of the live RIB (the Rib hands it over; the plan never writes it). */
interface LiveRib {
  route(key: string): RibRoute | undefined;
  readonly runtime: ReadonlyMap<string, RouteSpec | null>;
  config(key: string): RouteConfig | undefined;
  /** A runtime route for the spec (next hops checked against the ports). */
  resolve(spec: RouteSpec, where: string): RibRoute;
  fromConfig(config: RouteConfig): RibRoute;
  isPinned(gateway: number): boolean;
  hasGroup(key: string): boolean;
  /** Gateways pinned now, and how many may be. */
  pinnedGateways(): number;
  readonly gatewayCapacity: number;
  /** Next-hop slots in use now. */
  usedSlots(): number;
}

/**
 * Route changes validated against the RIB as it is, each seeing the ones
 * before it; what commit() applies. Built one change at a time (a
 * transaction validates each change as it is queued), so n changes cost
 * O(n) to plan, and commit touches only the prefixes in the plan.
 *
 * It also counts the gateways and next-hop slots its routes need that the
 * RIB does not have yet, so a change that cannot fit is refused here, before
 * anything is saved or pinned.
 */
export class RoutePlan {
  /** The prefixes the plan touches, as they will be: a route, or null for none. */
  readonly routes = new Map<string, RibRoute | null>();
  /** Their runtime changes as they will be: undefined = none (the config route, if any, stands). */
  readonly runtime = new Map<string, RouteSpec | null | undefined>();
  /** Gateways not pinned yet -> how many of the plan's routes name them. */
  private readonly newGateways = new Map<number, number>();
  /** Next-hop lists without a slot yet -> how many of the plan's routes use them. */
  private readonly newGroups = new Map<string, number>();
  private count = 0;

  constructor(private readonly live: LiveRib, readonly version: number) {}

  /** Changes added so far. */
  get size(): number {
    return this.count;
  }

  /**
   * Validates one change against the plan so far and adds it. Throws
   * RibError, leaving the plan as it was, when the change is invalid.
   * `where` prefixes messages ("change 3: ").
   */
  add(change: RouteChange, where = ''): void {
    const prefix = 'route' in change ? change.route.prefix : change.prefix;
    const key = prefixKey(prefix);
    const existing = this.route(key);
    if (existing && (existing.source === 'connected' || existing.source === 'local' || existing.source === 'broadcast')) {
      throw new RibError(`${where}${formatPrefix(prefix)} is the ${existing.source} route of ${existing.port}; it follows the interface and cannot be changed`, 'EROUTEPROTECTED');
    }
    if (change.op === 'add' && existing) {
      throw new RibError(`${where}route ${formatPrefix(prefix)} already exists (${describe(existing)}); use \`route replace\``, 'EROUTEEXISTS');
    }
    if (change.op === 'del' && !existing) {
      throw new RibError(`${where}no route ${formatPrefix(prefix)} to delete`, 'ENOROUTE');
    }
    if (change.op === 'revert' && this.runtimeChange(key) === undefined) {
      throw new RibError(`${where}route ${formatPrefix(prefix)} has no runtime change to revert`, 'ENOROUTE');
    }
    const config = this.live.config(key);
    let route: RibRoute | null;
    let runtime: RouteSpec | null | undefined;
    if (change.op === 'add' || change.op === 'replace') {
      route = this.live.resolve(change.route, where);
      runtime = change.route;
    } else if (change.op === 'del') {
      route = null;
      runtime = config ? null : undefined;
    } else {
      route = config ? this.live.fromConfig(config) : null;
      runtime = undefined;
    }
    this.place(key, route, where);
    this.runtime.set(key, runtime);
    this.count++;
  }

  /** Every runtime change once the plan is applied, for the state file: O(runtime changes), once per save. */
  runtimeAfter(): RuntimeChanges {
    const after = new Map(this.live.runtime);
    for (const [key, spec] of this.runtime) {
      if (spec === undefined) after.delete(key);
      else after.set(key, spec);
    }
    return after;
  }

  private route(key: string): RibRoute | undefined {
    return this.routes.has(key) ? this.routes.get(key) ?? undefined : this.live.route(key);
  }

  private runtimeChange(key: string): RouteSpec | null | undefined {
    return this.runtime.has(key) ? this.runtime.get(key) : this.live.runtime.get(key);
  }

  /** Sets the planned route of a prefix, if what it needs still fits. */
  private place(key: string, route: RibRoute | null, where: string): void {
    const previous = this.routes.get(key) ?? null;
    this.need(previous, -1);
    this.need(route, +1);
    const problem = this.overflow(route, where);
    if (problem) {
      this.need(route, -1);
      this.need(previous, +1);
      throw problem;
    }
    this.routes.set(key, route);
  }

  /** Counts (or uncounts) the gateways and lists a planned route needs that the RIB lacks. */
  private need(route: RibRoute | null, delta: 1 | -1): void {
    if (route?.type !== 'unicast') return;
    const bump = <K>(counts: Map<K, number>, key: K) => {
      const count = (counts.get(key) ?? 0) + delta;
      if (count === 0) counts.delete(key);
      else counts.set(key, count);
    };
    for (const via of route.via) if (!this.live.isPinned(via.address)) bump(this.newGateways, via.address);
    const group = groupKey(route.via);
    if (!this.live.hasGroup(group)) bump(this.newGroups, group);
  }

  /**
   * Commit pins every new gateway and fills every new slot before it lets go
   * of the old ones (so no frame meets a half-made next hop): what it needs
   * at its peak is what the RIB has now plus everything new.
   */
  private overflow(route: RibRoute | null, where: string): RibError | undefined {
    const { gatewayCapacity } = this.live;
    const pinned = this.live.pinnedGateways();
    if (pinned + this.newGateways.size > gatewayCapacity) {
      const gateway = route!.via.find((v) => this.newGateways.has(v.address))!;
      return new RibError(
        `${where}next hop ${formatAddress(gateway.address)}: neighbour table full: ${gatewayCapacity} gateways at most, ` +
        `${pinned} in use and ${this.newGateways.size} more needed`, 'EFULL',
      );
    }
    if (this.live.usedSlots() + this.newGroups.size > NEXT_HOP_SLOTS) {
      return new RibError(`${where}next-hop table full: ${NEXT_HOP_SLOTS} next-hop lists at most`, 'EFULL');
    }
    return undefined;
  }
}

/** A gateway pinned, or a slot allocated, for a change that may still fail: what undoing it takes. */
interface Prepared {
  pinned: { address: number; entry: number; created: boolean }[];
  groups: string[];
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
  /** Bumped by every load and commit: a plan made before either is stale. */
  private version = 0;
  /** What plans read of this RIB. */
  private readonly live: LiveRib;
  /** When the FIB last changed (ms since epoch), for stats. */
  lastChange = 0;

  constructor(
    private readonly ports: PortTable,
    private readonly nextHops: NextHopTable,
    private readonly resolver: NeighborResolver,
    private readonly tables: ControlTables,
  ) {
    for (let port = 0; port < ports.count; port++) {
      this.connectedNextHop[port] = nextHops.allocate(NextHopKind.connected, port);
    }
    const rib = this;
    this.live = {
      route: (key) => this.routesByKey.get(key),
      get runtime() {
        return rib.runtime; // a getter: load() replaces the map
      },
      config: (key) => this.configByKey.get(key),
      resolve: (spec, where) => {
        const route = this.resolveSpec(spec, 'runtime', where);
        if (this.configByKey.has(prefixKey(spec.prefix))) route.overrides = 'config';
        return route;
      },
      fromConfig: (config) => this.fromConfig(config),
      isPinned: (gateway) => this.gateways.has(gateway),
      hasGroup: (key) => this.groups.has(key),
      pinnedGateways: () => this.gateways.size,
      gatewayCapacity: resolver.gatewayCapacity,
      usedSlots: () => nextHops.used,
    };
  }

  /**
   * Compiles config routes plus runtime changes into a new FIB and swaps it in.
   * Throws RibError and changes nothing when anything is invalid or does not fit.
   */
  load(configRoutes: readonly RouteConfig[], runtime: RuntimeChanges = this.runtime): void {
    this.viaLists.clear(); // lists no longer named go with the old routes
    const compiled = this.compile(configRoutes, runtime);
    const prepared: Prepared = { pinned: [], groups: [] };
    let fib: LpmTable;
    try {
      const entries: [number, number, number][] = [];
      for (const route of compiled.routes.values()) {
        if (route.type === 'unicast') this.prepareNextHops(route.via, prepared);
        route.nextHop = this.nextHopFor(route);
        entries.push([route.prefix.address, route.prefix.length, route.nextHop]);
      }
      fib = LpmTable.build(entries, { memory: this.tables.fibMemory });
    } catch (error) {
      this.undoPrepared(prepared);
      throw asRibError(error);
    }
    this.tables.fib = fib;
    // Data-plane threads take the new table before any next hop only the old one names is freed below.
    this.tables.publishFib?.(true);
    this.routesByKey = compiled.routes;
    this.interfaceKeys = new Set([...compiled.routes].filter(([, r]) => isInterfaceRoute(r)).map(([key]) => key));
    this.shadowed = new Map();
    this.configByKey = new Map(configRoutes.map((r, i) => [compiled.configKeys[i], r]));
    this.runtime = new Map(runtime);
    this.groupRoutes = new Map();
    this.gatewayUse = new Map();
    for (const [key, route] of compiled.routes) this.retain(key, route);
    this.releaseUnused(this.groups.keys(), this.gateways.keys());
    this.version++;
    this.lastChange = Date.now();
  }

  /**
   * Validates changes (applied in order, each seeing the ones before it) and
   * returns the plan commit() applies; add more with plan.add(). Changes nothing.
   */
  plan(changes: readonly RouteChange[] = []): RoutePlan {
    const plan = new RoutePlan(this.live, this.version);
    changes.forEach((change, index) => plan.add(change, changes.length > 1 ? `change ${index + 1}: ` : ''));
    return plan;
  }

  /** False once the RIB changed after the plan was made (commit would refuse it). */
  isCurrent(plan: RoutePlan): boolean {
    return plan.version === this.version;
  }

  /**
   * Applies a plan to the live FIB in place, in one synchronous call (see the
   * header), touching only the plan's prefixes. All or nothing: when a
   * gateway cannot be pinned or the FIB cannot take a route, everything done
   * so far is undone and RibError is thrown.
   */
  commit(plan: RoutePlan): void {
    if (plan.version !== this.version) {
      throw new RibError('the routes changed after this change was checked; nothing applied, send it again', 'ESTALE');
    }
    const prepared: Prepared = { pinned: [], groups: [] };
    /** Prefixes whose FIB entry this commit changed; routesByKey still holds what they were. */
    const edited: string[] = [];
    const fib = this.tables.fib;
    try {
      // Next hops first, so no leaf ever points at a slot that is not ready.
      for (const route of plan.routes.values()) if (route?.type === 'unicast') this.prepareNextHops(route.via, prepared);
      for (const [key, route] of plan.routes) {
        const old = this.routesByKey.get(key);
        if (route) {
          route.nextHop = this.nextHopFor(route);
          if (old?.nextHop === route.nextHop) continue;
          fib.insert(route.prefix.address, route.prefix.length, route.nextHop);
        } else if (old) {
          fib.delete(old.prefix.address, old.prefix.length);
        } else {
          continue;
        }
        edited.push(key);
      }
    } catch (error) {
      for (const key of edited.reverse()) {
        const old = this.routesByKey.get(key);
        const prefix = (old ?? plan.routes.get(key)!).prefix;
        if (old) fib.insert(prefix.address, prefix.length, old.nextHop);
        else fib.delete(prefix.address, prefix.length);
      }
      this.tables.publishFib?.(false); // both copies the same again
      this.undoPrepared(prepared);
      throw asRibError(error);
    }
    // Readers switch to the changed table before next hops it no longer names are freed.
    this.tables.publishFib?.(false);
    // Bookkeeping: nothing below can fail.
    const unusedGroups: string[] = [];
    const unusedGateways: number[] = [];
    for (const [key, route] of plan.routes) {
      const old = this.routesByKey.get(key);
      if (old) this.forget(key, old, unusedGroups, unusedGateways);
      if (route) {
        this.routesByKey.set(key, route);
        this.retain(key, route);
      } else {
        this.routesByKey.delete(key);
      }
    }
    for (const [key, spec] of plan.runtime) {
      if (spec === undefined) this.runtime.delete(key);
      else this.runtime.set(key, spec);
    }
    this.releaseUnused(unusedGroups, unusedGateways);
    this.version++;
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

  /** Drops a route from the group and gateway counts; groups and gateways it leaves unused go to the lists. */
  private forget(key: string, route: RibRoute, unusedGroups: string[], unusedGateways: number[]): void {
    if (route.type !== 'unicast') return;
    const group = groupKey(route.via);
    const keys = this.groupRoutes.get(group);
    keys?.delete(key);
    if (keys?.size === 0) {
      this.groupRoutes.delete(group);
      unusedGroups.push(group);
    }
    for (const via of route.via) {
      const use = (this.gatewayUse.get(via.address) ?? 1) - 1;
      this.gatewayUse.set(via.address, use);
      if (use === 0) unusedGateways.push(via.address);
    }
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
      // A shadowed route keeps its next hop (and the references that hold it) for when it comes back.
      if (existing && !isInterfaceRoute(existing)) this.shadowed.set(key, existing);
      if (!existing || !isInterfaceRoute(existing)) added.push(route.prefix);
      this.routesByKey.set(key, route);
      fib.insert(route.prefix.address, route.prefix.length, route.nextHop);
    }
    this.interfaceKeys = new Set(fresh.keys());
    this.tables.publishFib?.(false);
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
        throw new RibError(`route ${formatPrefix(config.prefix)} (${originOf(config)}): duplicates the ${clash.source} route of ${clash.port}`);
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
    return { routes, configKeys };
  }

  private fromConfig(config: RouteConfig): RibRoute {
    const spec: RouteSpec = { prefix: config.prefix, type: config.type, via: config.via };
    const route = this.resolveSpec(spec, 'config', `route ${formatPrefix(config.prefix)} (${originOf(config)}): `);
    route.sourceLine = config.sourceLine;
    if (config.sourceFile !== undefined) route.sourceFile = config.sourceFile;
    return route;
  }

  /** Checks the gateways of a spec against the ports. */
  private resolveSpec(spec: RouteSpec, source: RouteSource, where: string): RibRoute {
    if (spec.type === 'unicast' && spec.via.length === 0) throw new RibError(`${where}unicast route ${formatPrefix(spec.prefix)} needs a next hop`, 'EBADROUTE');
    if (spec.type !== 'unicast' && spec.via.length > 0) throw new RibError(`${where}${spec.type} route ${formatPrefix(spec.prefix)} takes no next hop`, 'EBADROUTE');
    const unroutable = routePrefixProblem(spec.prefix);
    if (unroutable !== undefined) throw new RibError(`${where}${unroutable}`, 'EBADPREFIX');
    // Routes with the same next-hop list share one (frozen) array: a million
    // routes over a few lists would otherwise carry a million copies.
    const cacheKey = spec.via.map((g) => `${g.address >>> 0}:${g.server ?? ''}`).join(',');
    const cached = this.viaLists.get(cacheKey);
    if (cached) return { prefix: spec.prefix, type: spec.type, source, via: cached, nextHop: 0 };
    const seen = new Set<number>();
    const interfaces = this.ports.names.map((name, port) => ({ name, addresses: this.ports.addresses[port] }));
    const via = spec.via.map((gateway) => {
      const special = nextHopProblem(gateway.address);
      if (special !== undefined) throw new RibError(`${where}next hop ${special}`, 'EBADNEXTHOP');
      const port = this.portForGateway(gateway.address);
      const name = gateway.server ? `${gateway.server} (${formatAddress(gateway.address)})` : formatAddress(gateway.address);
      if (port < 0) {
        throw new RibError(`${where}next hop ${name} is not on a connected subnet of any interface (${this.describeSubnets()})`, 'EBADNEXTHOP');
      }
      // The router's own address goes to the kernel; a subnet's network or broadcast address is no one host.
      const role = connectedAddressRole(gateway.address, interfaces);
      if (role !== undefined) throw new RibError(`${where}next hop ${name} ${role}`, 'EBADNEXTHOP');
      if (seen.has(gateway.address)) throw new RibError(`${where}next hop ${name} is listed twice`, 'EBADNEXTHOP');
      seen.add(gateway.address);
      return Object.freeze({ ...gateway, port: this.ports.names[port] });
    });
    const shared = Object.freeze(via);
    this.viaLists.set(cacheKey, shared);
    return { prefix: spec.prefix, type: spec.type, source, via: shared, nextHop: 0 };
  }

  /**
   * Pins the gateways of a next-hop list and gives the list a slot, if it has
   * none yet, before any leaf points at it. What it did goes into `prepared`,
   * for undoPrepared() when the change fails later.
   */
  private prepareNextHops(via: RibRoute['via'], prepared: Prepared): void {
    for (const { address, port: portName } of via) {
      if (this.gateways.has(address)) continue;
      const port = this.ports.names.indexOf(portName);
      const created = this.resolver.table.find(address) < 0;
      const neighbor = this.resolver.pinGateway(address, port);
      if (neighbor < 0) throw new RibError(`next hop ${formatAddress(address)}: neighbour table full; nothing applied`, 'EFULL');
      this.gateways.set(address, { neighbor, port });
      prepared.pinned.push({ address, entry: neighbor, created });
    }
    const key = groupKey(via);
    if (this.groups.has(key)) return;
    const members = via.map((v) => v.address);
    const first = this.gateways.get(members[0])!;
    const group: Group = { nextHop: this.nextHops.allocate(NextHopKind.gateway, first.port, members[0], first.neighbor), members, active: 0 };
    this.activate(group, this.select(group, true));
    this.groups.set(key, group);
    prepared.groups.push(key);
  }

  /** Gives back what prepareNextHops() took for a change that failed: slots freed, pins undone. */
  private undoPrepared(prepared: Prepared): void {
    for (const key of prepared.groups) {
      this.nextHops.release(this.groups.get(key)!.nextHop);
      this.groups.delete(key);
    }
    for (const { address, entry, created } of prepared.pinned.reverse()) {
      this.resolver.undoPin(entry, created);
      this.gateways.delete(address);
    }
  }

  /** Frees the slots of the given groups that no route uses, and unpins the given next hops no route names. */
  private releaseUnused(groups: Iterable<string>, gateways: Iterable<number>): void {
    for (const key of groups) {
      const group = this.groups.get(key);
      if (!group || this.groupRoutes.has(key)) continue;
      this.nextHops.release(group.nextHop);
      this.groups.delete(key);
    }
    for (const gateway of gateways) {
      const pinned = this.gateways.get(gateway);
      if (!pinned || (this.gatewayUse.get(gateway) ?? 0) > 0) continue;
      this.resolver.unpinGateway(pinned.neighbor);
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
      Atomics.store(this.nextHops.kind, nh, NextHopKind.unreachable);
      return;
    }
    const member = this.gateways.get(group.members[active])!;
    this.nextHops.port[nh] = member.port;
    this.nextHops.gateway[nh] = group.members[active];
    // One word a data-plane thread reads whole (the egress port comes with the neighbour entry),
    // then the kind, last: a reader that sees "gateway" sees this neighbour.
    Atomics.store(this.nextHops.neighbor, nh, member.neighbor);
    Atomics.store(this.nextHops.kind, nh, NextHopKind.gateway);
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

  private describeSubnets(): string {
    return this.ports.names
      .map((name, port) => `${name}: ${this.ports.addresses[port].map((a) => formatPrefix({ address: (a.address & maskOf(a.length)) >>> 0, length: a.length })).join(', ') || 'no address'}`)
      .join('; ');
  }
}

/** Where a config route is written: "line 66" of the config, or "FILE:12" of a route file. */
function originOf(config: RouteConfig): string {
  return config.sourceFile === undefined ? `line ${config.sourceLine}` : `${config.sourceFile}:${config.sourceLine}`;
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
