// Failover: turns server health into route choices. On every health change
// (or drain) the RIB picks each route group's active next hop again: routes
// leave a failed server at once; they come back only after the server has
// stayed up for the hold-down (so a flapping server cannot drag them back and
// forth), or, with manual failback, when the operator says so.

import type { HealthConfig } from '../config/types.js';
import type { Rib, RouteMove } from '../rib/rib.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { EventBus, RouteMoveEvent } from './events.js';
import type { HealthChange, HealthMonitor } from './monitor.js';

export class Failover {
  private holdDownTimers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly rib: Rib,
    private readonly monitor: HealthMonitor,
    private readonly events: EventBus,
    private health: HealthConfig,
  ) {
    rib.setAvailability({
      usable: (address) => {
        const server = monitor.byAddress(address);
        return !server || (server.state === 'up' && !server.drained);
      },
      stable: (address) => {
        const server = monitor.byAddress(address);
        return !server || (server.state === 'up' && !server.drained && performance.now() - server.upSince >= this.health.holdDownMs);
      },
      failback: () => this.health.failback,
    });
    monitor.on('change', (change) => this.onChange(change));
  }

  configure(health: HealthConfig): void {
    this.health = health;
  }

  stop(): void {
    for (const timer of this.holdDownTimers) clearTimeout(timer);
    this.holdDownTimers.clear();
  }

  /** Moves routes to their preferred healthy next hop now (operator's failback); returns what moved. */
  failback(): RouteMoveEvent[] {
    const moved = this.describe(this.rib.reselect(true));
    if (moved.length > 0) this.events.publish({ time: new Date().toISOString(), type: 'failback', reason: 'failback by the operator', routesMoved: moved });
    return moved;
  }

  private onChange(change: HealthChange): void {
    const moved = this.describe(this.rib.reselect());
    this.events.publish({
      time: new Date().toISOString(),
      type: 'server',
      server: change.server.name,
      oldState: change.oldState,
      newState: change.newState,
      reason: change.reason,
      routesMoved: moved,
    });
    if (change.newState === 'up' && this.health.failback === 'auto') {
      // Routes come back when the hold-down has passed, if the server is still up then.
      const timer = setTimeout(() => {
        this.holdDownTimers.delete(timer);
        const back = this.describe(this.rib.reselect());
        if (back.length > 0) {
          this.events.publish({
            time: new Date().toISOString(),
            type: 'failback',
            server: change.server.name,
            reason: `${change.server.name} stayed up for the ${this.health.holdDownMs} ms hold-down`,
            routesMoved: back,
          });
        }
      }, this.health.holdDownMs + 1);
      this.holdDownTimers.add(timer);
    }
  }

  /** Route moves in the words of events: server names where the next hop is a server. */
  describe(moves: RouteMove[]): RouteMoveEvent[] {
    const name = (address?: number) => {
      if (address === undefined) return null;
      return this.monitor.byAddress(address)?.name ?? formatAddress(address);
    };
    return moves.flatMap((move) => move.prefixes.map((prefix) => ({ prefix: formatPrefix(prefix), from: name(move.from), to: name(move.to) })));
  }
}
