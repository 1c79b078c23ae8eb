// A router of a pair: vipr tells keepalived and BIRD whether it can serve.
//
//   liveness link  carrier on while vipr forwards (ports open, every port up);
//                  off when it cannot or is stopping; gone when vipr dies.
//                  keepalived tracks it (the VRRP address moves away), BIRD's
//                  announcements hang on it (all withdrawn).
//   BIRD           announces each configured prefix while it has a healthy
//                  next hop (src/engines/bird.ts), re-checked on every route
//                  event and every CHECK_MS (operator changes publish none).
//   keepalived     checked at start; otherwise it only follows the link.
//
// A planned stop (`vipr ctl shutdown`, SIGTERM) gives everything away in the
// order that loses nothing, forwarding all the while:
//   1. withdraw every prefix from BIRD: the upstream sends new packets to the
//      other router;
//   2. wait until the upstream has stopped sending here: nothing forwarded
//      towards the announced prefixes' ports for bird.shutdownQuietMs, at most
//      bird.shutdownGraceMs;
//   3. carrier off: keepalived leaves MASTER with a priority-0 advert, the
//      other router takes the address and sends gratuitous ARP; vipr keeps
//      forwarding the servers' return traffic for keepalived.releaseMs;
//   4. the daemon stops.
// Nothing here stops forwarding: a BGP session that flaps, a BIRD that is
// gone or a keepalived that died change what is announced, never what vipr
// forwards of what it still receives.

import type { Config } from '../config/types.js';
import type { Logger } from 'pino';
import { PORT_COUNTERS, PortCounter, type Counters } from '../dataplane/counters.js';
import type { PortTable } from '../dataplane/ports.js';
import type { EventBus } from '../health/events.js';
import type { Rib } from '../rib/rib.js';
import { formatPrefix, type Prefix } from '../util/ipv4.js';
import { BirdAnnouncer, BirdError } from './bird.js';
import { findKeepalived, KeepalivedError } from './keepalived.js';
import { LivenessLink } from './liveness.js';

/** Operator route changes publish no event: how often the announced set is compared with the RIB. */
const CHECK_MS = 100;
/** How often the planned stop looks at the forwarded counters while it waits for the upstream. */
const QUIET_POLL_MS = 10;

/** What start() found and opened: the engines that answered and the liveness link (carrier off). */
export interface PairEngines {
  link: LivenessLink;
  bird?: BirdAnnouncer;
  /** keepalived's pid, when it was found. */
  keepalived?: number;
}

export interface PairStatus {
  liveness: { interface: string; carrier: boolean };
  bird?: { socket: string; announced: string[]; wanted: string[]; lastError: string | null; lastConfigured: string | null };
  keepalived?: { pid: number | null };
  draining: boolean;
}

export class PairStartError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

/**
 * Checks the engines the config names and opens the liveness link, carrier
 * off. Throws a one-line PairStartError when an engine that is not optional
 * is missing; an optional one gets a warning. Undefined without a pair config.
 */
export async function startEngines(config: Config, log: Logger): Promise<PairEngines | undefined> {
  if (!config.liveness) return undefined;
  const linkName = config.liveness.interface;
  let keepalived: number | undefined;
  if (config.keepalived) {
    try {
      keepalived = await findKeepalived(config.keepalived);
      log.info({ keepalived }, `keepalived: running as pid ${keepalived}; it tracks the liveness link ${linkName}`);
    } catch (error) {
      if (!(error instanceof KeepalivedError)) throw error;
      if (!config.keepalived.optional) throw new PairStartError(`${error.message} (or set keepalived.optional: true)`, error.code);
      log.warn(`${error.message}; starting anyway (keepalived.optional)`);
    }
  }
  let bird: BirdAnnouncer | undefined;
  if (config.bird) {
    bird = new BirdAnnouncer(config.bird, linkName, (message) => log.error(message), (prefixes) => {
      log.info({ announced: prefixes }, `bird: announcing ${prefixes.length ? prefixes.join(' ') : 'nothing'}`);
    });
    try {
      await bird.check();
      log.info({ socket: config.bird.socket, protocol: config.bird.protocol }, `bird: answering on ${config.bird.socket}; static protocol ${config.bird.protocol} takes ${config.bird.routesFile}`);
    } catch (error) {
      if (!(error instanceof BirdError)) throw error;
      if (!config.bird.optional) throw new PairStartError(`${error.message} (or set bird.optional: true)`, error.code);
      log.warn(`${error.message}; starting anyway (bird.optional): vipr writes ${config.bird.routesFile} for when it does`);
    }
  }
  const link = await LivenessLink.open(linkName).catch((error: Error & { code?: string }) => {
    throw new PairStartError(error.message, error.code ?? 'ELIVENESS');
  });
  log.info({ liveness: linkName }, `liveness link ${linkName} created, carrier off until vipr forwards`);
  return { link, bird, keepalived };
}

export interface PairContext {
  config: Config;
  rib: Rib;
  ports: PortTable;
  /** Every data-plane thread's counts added up, read when needed. */
  counters: () => Counters;
  events: EventBus;
  log: Logger;
}

export class Pair {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private forwarding = false;
  private drained: Promise<string[]> | undefined;
  private readonly prefixes: Prefix[];
  private wanted: string[] = [];

  constructor(private readonly engines: PairEngines, private readonly context: PairContext) {
    const { config } = context;
    // Unset: the routes to servers (the VIP prefixes), as the config has them.
    const servers = new Set(config.servers.map((s) => s.address));
    this.prefixes = config.bird?.announce
      ?? config.routes.filter((r) => r.type === 'unicast' && r.via.length > 0 && r.via.every((v) => servers.has(v.address))).map((r) => r.prefix);
  }

  /** The ports are open: from now on the link and the announcements follow vipr's state. */
  start(): void {
    this.forwarding = true;
    this.unsubscribe = this.context.events.subscribe(() => this.refresh());
    this.timer = setInterval(() => this.refresh(), CHECK_MS);
    this.timer.unref();
    const { bird } = this.engines;
    if (bird) this.context.log.info({ prefixes: this.prefixes.map(formatPrefix) }, `bird: prefixes to announce while they have a healthy next hop: ${this.prefixes.map(formatPrefix).join(' ') || 'none'}`);
    this.refresh();
  }

  /** The prefixes with a healthy next hop now. */
  servable(): Prefix[] {
    const { rib } = this.context;
    return this.prefixes.filter((prefix) => {
      const route = rib.route(prefix);
      return route !== undefined && route.type === 'unicast' && rib.activeNextHop(route) !== undefined;
    });
  }

  private refresh(): void {
    if (this.drained || !this.forwarding) return;
    const { ports, log } = this.context;
    const down = ports.names.filter((_, p) => ports.linkUp[p] !== 1);
    const healthy = down.length === 0;
    const { link, bird } = this.engines;
    if (link.carrier !== healthy) {
      link.set(healthy);
      if (healthy) log.info({ liveness: link.name }, `liveness link ${link.name} up: every port is up and vipr forwards (keepalived may hold the address, BIRD announces)`);
      else log.warn({ liveness: link.name, down }, `liveness link ${link.name} down: port ${down.join(', ')} down (keepalived gives the address away, BIRD withdraws everything)`);
    }
    if (bird) {
      const servable = this.servable();
      const text = servable.map(formatPrefix);
      if (text.join(' ') !== this.wanted.join(' ') || bird.lastError !== undefined) {
        const withdrawn = this.wanted.filter((p) => !text.includes(p));
        if (withdrawn.length > 0) log.warn({ withdrawn }, `bird: withdrawing ${withdrawn.join(' ')}: no healthy next hop`);
        this.wanted = text;
        void bird.announce(servable);
      }
    }
  }

  /**
   * The planned stop's steps 1-3 (see the header), once; later calls get the
   * same promise. Resolves with what was done, a line per step.
   */
  drain(reason: string): Promise<string[]> {
    this.drained ??= this.giveAway(reason);
    return this.drained;
  }

  private async giveAway(reason: string): Promise<string[]> {
    const { config, log } = this.context;
    const { link, bird } = this.engines;
    const done: string[] = [];
    const say = (line: string) => {
      log.info(`${reason}: ${line}`);
      done.push(line);
    };
    if (bird && config.bird) {
      const had = bird.announced.length;
      this.wanted = [];
      await bird.announce([]);
      say(bird.lastError ? `could not withdraw from BIRD (${bird.lastError}); the liveness link takes the routes down next` : `withdrew ${had} prefix(es) from BIRD`);
      const waited = await this.upstreamQuiet(config.bird.shutdownGraceMs, config.bird.shutdownQuietMs);
      say(waited.quiet ? `the upstream stopped sending after ${waited.ms} ms` : `still receiving after the ${waited.ms} ms grace; going on`);
    }
    link.set(false);
    const release = config.keepalived?.releaseMs ?? 0;
    say(`liveness link ${link.name} down${config.keepalived ? `: keepalived gives the address away; forwarding its return traffic for ${release} ms more` : ''}`);
    if (release > 0) await new Promise((resolve) => setTimeout(resolve, release));
    return done;
  }

  /** Waits until nothing was forwarded towards the announced prefixes' ports for `quietMs`, at most `graceMs`. */
  private async upstreamQuiet(graceMs: number, quietMs: number): Promise<{ quiet: boolean; ms: number }> {
    const { rib, counters, ports } = this.context;
    const towards = new Set<number>();
    for (const prefix of this.prefixes) {
      for (const via of rib.route(prefix)?.via ?? []) towards.add(ports.names.indexOf(via.port));
    }
    towards.delete(-1);
    const forwarded = () => {
      let sum = 0;
      const ports = counters().ports;
      for (const p of towards) sum += ports[p * PORT_COUNTERS + PortCounter.forwardedPackets];
      return sum;
    };
    const start = performance.now();
    let last = forwarded();
    let lastChange = start;
    for (;;) {
      const now = performance.now();
      if (quietMs > 0 && now - lastChange >= quietMs) return { quiet: true, ms: Math.round(lastChange - start) };
      if (now - start >= graceMs) return { quiet: false, ms: Math.round(now - start) };
      await new Promise((resolve) => setTimeout(resolve, QUIET_POLL_MS));
      const count = forwarded();
      if (count !== last) {
        last = count;
        lastChange = performance.now();
      }
    }
  }

  status(): PairStatus {
    const { link, bird, keepalived } = this.engines;
    const { config } = this.context;
    return {
      liveness: { interface: link.name, carrier: link.carrier },
      bird: bird && config.bird ? {
        socket: config.bird.socket,
        announced: [...bird.announced],
        wanted: this.wanted,
        lastError: bird.lastError ?? null,
        lastConfigured: bird.lastConfiguredAt ? new Date(bird.lastConfiguredAt).toISOString() : null,
      } : undefined,
      keepalived: config.keepalived ? { pid: keepalived ?? null } : undefined,
      draining: this.drained !== undefined,
    };
  }

  /** The link goes with the daemon: both engines see vipr gone, as after a crash. */
  close(): void {
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.engines.link.close();
  }
}
