// The daemon: reads the config, checks the box, opens the ports, compiles the
// routes and forwards until SIGTERM or SIGINT.

import type { Config } from '../config/types.js';
import { Drop } from '../dataplane/counters.js';
import type { PortDescription } from '../dataplane/ports.js';
import { Router } from './router.js';
import { describe as describeRoute, RibError, type RuntimeChanges } from '../rib/rib.js';
import { ConfigError } from '../config/errors.js';
import { interfaceAddressProblem } from '../config/interfaces.js';
import { formatFieldPath, loadConfig } from '../config/load.js';
import { ControlError } from '../control/protocol.js';
import { ControlServer, ControlSocketInUseError } from '../control/server.js';
import { ControlService } from '../control/service.js';
import { MetricsServer } from '../control/metrics.js';
import { StateError, StateStore } from '../control/state-store.js';
import { IcmpPinger } from '../health/checks.js';
import { EventBus } from '../health/events.js';
import { Failover } from '../health/failover.js';
import { describeCheck, HealthMonitor } from '../health/monitor.js';
import { ProbeThread } from '../health/probe-thread.js';
import type { Port, RxSink } from '../io/port.js';
import { PcapPort } from '../io/pcap-port.js';
import { RingPort } from '../io/ring-port.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { Logger } from './logger.js';
import {
  pinDataPlane, type Placement, describePort, disableKernelForwarding, disableReceiveOffloads, dropKernelTransit, kernelForwardingOn, parseMac,
  restoreKernelTransit, SystemError,
} from './system.js';
import { describeLink, InterfaceWatcher, linkUp, readInterfaces, type InterfaceState } from './interfaces.js';
import { Pair, startEngines, type PairEngines } from '../engines/pair.js';

function notifyOf(config: Config) {
  return config.health.notify ? { command: config.health.notify, timeoutMs: config.health.notifyTimeoutMs } : undefined;
}

export class Daemon {
  readonly router: Router;
  private readonly ports: Port[];
  private control: ControlServer | undefined;
  private service: ControlService | undefined;
  /** The Prometheus endpoint, when the config has a `metrics:` section. */
  private metrics: MetricsServer | undefined;
  readonly monitor: HealthMonitor;
  readonly events: EventBus;
  readonly failover: Failover;
  private readonly icmp = new IcmpPinger();
  /** TCP and HTTP checks run in a worker thread, off the data plane's event loop. */
  private readonly probes: ProbeThread;
  private scheduled = false;
  private stopped = false;
  /** Follows the kernel's changes to the ports (addresses, link, MTU, MAC) while running. */
  private readonly watcher: InterfaceWatcher;
  /** The kernel's state of each port as last applied (undefined: the interface is gone). */
  private readonly kernelPorts: (InterfaceState | undefined)[];
  /** Where the ports deliver frames; kept to reopen a port whose interface was made again. */
  private sink: RxSink | undefined;
  private readonly startedAt = Date.now();
  /** A router of a pair: the liveness link, BIRD and keepalived (src/engines/pair.ts); undefined for a single router. */
  private pair: Pair | undefined;
  /** Set by `vipr run`: how `vipr ctl shutdown` asks it to stop the process. */
  onStopRequest: ((reason: string) => void) | undefined;

  private constructor(
    private config: Config,
    private readonly configPath: string,
    readonly log: Logger,
    descriptions: PortDescription[],
    private readonly store: StateStore,
    runtime: RuntimeChanges | undefined,
    placement: Placement | undefined,
    kernelPorts: (InterfaceState | undefined)[],
  ) {
    this.kernelPorts = kernelPorts;
    this.watcher = new InterfaceWatcher({
      onState: (states) => this.applyInterfaces(states),
      onProblem: (message) => log.warn(message),
    });
    this.probes = new ProbeThread({
      cpus: placement?.others,
      onStart: (hello) => {
        if (hello.error) log.warn(`health-check thread: could not move off the data plane's CPU: ${hello.error}`);
        else if (hello.cpus) log.info({ cpus: hello.cpus }, `health-check thread on CPU ${hello.cpus.join(',')}`);
      },
    });
    const ring = config.ring;
    this.ports = descriptions.map((d, index) =>
      config.io === 'ring'
        ? new RingPort(d.name, index, { rxRing: ring.rxRing, tx: ring.tx, qdiscBypass: ring.qdiscBypass, busyPoll: ring.busyPoll })
        : new PcapPort(d.name, index));
    const events = {
      onChange: (address: number, port: number, state: string, mac: string) =>
        log.info(
          { neighbor: formatAddress(address), port: descriptions[port].name, state, mac: mac || undefined },
          `neighbor ${formatAddress(address)} ${state}${mac ? ` at ${mac}` : ''}`,
        ),
    };
    this.router = new Router(descriptions, this.ports, config, events, runtime);
    this.events = new EventBus(log, notifyOf(config));
    this.monitor = new HealthMonitor(config.health, { arp: this.router.resolver, icmp: this.icmp, remote: this.probes });
    this.monitor.configure(config.servers);
    this.failover = new Failover(this.router.rib, this.monitor, this.events, config.health);
  }

  /** Checks the box and the config, then starts forwarding. Throws with a one-line message. */
  static async start(config: Config, configPath: string, log: Logger): Promise<Daemon> {
    const names = config.interfaces.map((i) => i.name);
    const on = await kernelForwardingOn(names);
    if (on.length > 0) {
      if (config.kernelForwarding === 'refuse') {
        throw new SystemError(
          `kernel IPv4 forwarding is on for ${on.join(', ')}: the kernel and vipr would both forward every packet. ` +
          `Turn it off with \`sysctl -w ${on.map((n) => `net.ipv4.conf.${n}.forwarding=0`).join(' ')}\` ` +
          `(or net.ipv4.ip_forward=0), or set \`kernelForwarding: disable\` in the config`,
        );
      }
      await disableKernelForwarding(on);
      log.info({ interfaces: on }, `turned kernel IPv4 forwarding off on ${on.join(', ')}`);
    }
    // Read from the kernel whatever the carrier: a port that is down now forwards once its link comes up.
    const states = await readInterfaces();
    const kernelPorts = config.interfaces.map((i) => states.get(i.name));
    const descriptions = config.interfaces.map((i, p) => describePort(i.name, kernelPorts[p], i.mtu));
    await Daemon.checkAddresses(config, configPath, descriptions);
    // The engines of a pair answer (or the start stops here, in one line) before anything is set up.
    const engines = await startEngines(config, log);

    const placement = config.dataplane.cpu === undefined ? undefined : pinDataPlane(config.dataplane.cpu);
    if (placement) {
      log.info({ cpu: placement.cpu, others: placement.others }, `data plane thread pinned to CPU ${placement.cpu}` +
        (placement.others.length > 0 ? `; health checks run on CPU ${placement.others.join(',')}` : ' (the only CPU vipr may use: health checks share it)'));
    }
    if (config.offloads === 'disable') {
      for (const name of names) {
        const changed = await disableReceiveOffloads(name);
        if (changed.length > 0) log.info({ interface: name, changed }, `${name}: ${changed.join(', ')} (packet sockets must see frames as they were on the wire)`);
      }
    }

    if (config.kernelTransit === 'drop') {
      await dropKernelTransit(names);
      log.info({ interfaces: names }, `kernel's copy of transit IPv4 dropped at ingress on ${names.join(', ')} (nftables table netdev vipr_transit): vipr has its own`);
    }

    try {
      return await Daemon.build(config, configPath, log, descriptions, placement, kernelPorts, engines);
    } catch (error) {
      engines?.link.close();
      // A start that fails leaves no drop rule behind, unless the rule is a
      // running vipr's (the same table): that one keeps forwarding with it.
      if (config.kernelTransit === 'drop' && !(error instanceof ControlSocketInUseError)) await restoreKernelTransit();
      throw error;
    }
  }

  /**
   * A server or next hop on the router's own address, or on a subnet's
   * network or broadcast address, stops the start. loadConfig checked the
   * same against `ip addr`; this catches an address that changed since.
   */
  private static async checkAddresses(config: Config, configPath: string, descriptions: PortDescription[]): Promise<void> {
    const box = new Map(descriptions.map((d) => [d.name, d.addresses] as const));
    const problem = interfaceAddressProblem(config, box);
    if (!problem) return;
    // Read the file again for the line and column (it throws); should it have changed meanwhile, say it without them.
    await loadConfig(configPath, { interfaceAddresses: async () => box });
    throw new ConfigError({ file: configPath, field: formatFieldPath(problem.field) }, problem.message);
  }

  /** The rest of start(): state, routes, control socket, metrics, ports. */
  private static async build(
    config: Config, configPath: string, log: Logger, descriptions: PortDescription[], placement: Placement | undefined,
    kernelPorts: (InterfaceState | undefined)[], engines: PairEngines | undefined,
  ): Promise<Daemon> {
    const names = config.interfaces.map((i) => i.name);
    const store = new StateStore(config.state.file);
    const runtime = await Daemon.loadState(store, log);
    let daemon: Daemon;
    try {
      daemon = new Daemon(config, configPath, log, descriptions, store, runtime, placement, kernelPorts);
    } catch (error) {
      if (!runtime || !(error instanceof RibError)) throw error;
      // Saved changes that no longer fit the config must not keep the router
      // down, nor be lost: the file is set aside where no later save writes.
      let aside: string;
      try {
        aside = await store.setAside('unfit');
      } catch (moveError) {
        throw new StateError(
          `saved runtime changes in ${store.file} do not fit the config (${error.message}), and the file cannot be set aside ` +
          `(${(moveError as Error).message}); move it away by hand to start from the config alone`,
        );
      }
      log.error({ err: error, keptAs: aside }, `saved runtime changes in ${store.file} do not fit the config (${error.message}); kept them as ${aside} and starting from the config alone`);
      daemon = new Daemon(config, configPath, log, descriptions, store, undefined, placement, kernelPorts);
    }
    const rib = daemon.router.rib;
    descriptions.forEach((d, p) => {
      const link = describeLink(kernelPorts[p]);
      daemon.router.ports.link[p] = link;
      const addresses = d.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`);
      log.info({ interface: d.name, mtu: d.mtu, addresses, link }, `port ${d.name}: ${addresses.join(', ')} mtu ${d.mtu}, link ${link}`);
      if (!d.up) log.warn({ interface: d.name, link }, `port ${d.name} is ${link}: vipr forwards on it as soon as its link comes up`);
    });
    // Each route gets its own line on a router the size of the article's; a full table gets a summary.
    const ROUTES_LOGGED = 64;
    const stated = rib.size <= ROUTES_LOGGED * 2 ? rib.routes().filter((r) => r.source === 'config' || r.source === 'runtime') : [];
    if (stated.length === 0 && rib.size > ROUTES_LOGGED * 2) {
      log.info({ routes: rib.size, runtimeChanges: rib.runtimeChanges().size }, `${rib.size} routes (${rib.runtimeChanges().size} changed at run time); \`vipr ctl route show\` lists them`);
    }
    for (const route of stated) {
      const target = describeRoute(route) + (route.via.length > 0 ? ` on ${route.via[0].port}` : '');
      const from = route.source === 'config' ? `${route.sourceFile ?? 'config'} line ${route.sourceLine}` : `runtime change from ${store.file}`;
      log.info({ route: formatPrefix(route.prefix), source: route.source, line: route.sourceLine }, `route ${formatPrefix(route.prefix)} ${target} (${from})`);
    }
    await daemon.startControl();
    await daemon.startMetrics();
    daemon.open();
    if (engines) {
      daemon.pair = new Pair(engines, { config, rib, ports: daemon.router.ports, counters: daemon.router.counters, events: daemon.events, log });
      daemon.pair.start();
    }
    log.info({ io: config.io, ports: names, routes: rib.size }, `ready: forwarding on ${names.join(', ')} with ${rib.size} routes`);
    return daemon;
  }

  private static async loadState(store: StateStore, log: Logger): Promise<RuntimeChanges | undefined> {
    try {
      const runtime = await store.load();
      if (store.removedTemporaries.length > 0) {
        log.info({ removed: store.removedTemporaries }, `state: removed ${store.removedTemporaries.length} temp file(s) of saves a crash interrupted: ${store.removedTemporaries.join(', ')}`);
      }
      if (runtime === undefined) log.info({ state: store.file }, `state: none saved at ${store.file}; routes come from the config alone`);
      else log.info({ state: store.file, changes: runtime.size }, `state: ${runtime.size} runtime change(s) restored from ${store.file}`);
      return runtime;
    } catch (error) {
      if (!(error instanceof StateError)) throw error;
      let aside: string;
      try {
        aside = await store.setAside('bad');
      } catch (moveError) {
        throw new StateError(`${error.message}, and the file cannot be set aside (${(moveError as Error).message}); move it away by hand to start from the config alone`);
      }
      log.error({ err: error, movedTo: aside }, `${error.message}; moved it to ${aside} and starting from the config alone`);
      return undefined;
    }
  }

  private async startControl(): Promise<void> {
    const service = new ControlService({
      router: this.router,
      monitor: this.monitor,
      failover: this.failover,
      events: this.events,
      store: this.store,
      log: this.log,
      servers: () => this.config.servers,
      reload: () => this.reload(),
      startedAt: this.startedAt,
      portStats: this.portStats,
      shutdown: () => this.shutdown(),
      pair: () => this.pair?.status(),
    });
    this.control = new ControlServer(this.config.control, service, this.log);
    await this.control.start();
    this.service = service;
  }

  /** Off unless configured. A port that cannot be had stops the start: the operator asked for metrics. */
  private async startMetrics(): Promise<void> {
    const config = this.config.metrics;
    if (!config || !this.service) return;
    const metrics = new MetricsServer(config.listen, {
      router: this.router, monitor: this.monitor, events: this.events, commands: this.service.commands, log: this.log,
      portStats: this.portStats,
    });
    try {
      await metrics.start();
    } catch (error) {
      await metrics.stop();
      await this.control?.stop();
      throw error;
    }
    this.metrics = metrics;
  }

  /** Re-reads the config file. A bad file changes nothing and throws with the reason. */
  async reload(): Promise<string> {
    let next: Config;
    try {
      next = await loadConfig(this.configPath);
    } catch (error) {
      throw new ControlError('ECONFIG', `reload refused, running config kept: ${(error as Error).message}`);
    }
    const fixed = (c: Config) => JSON.stringify([
      c.interfaces, c.io, c.ring, c.control, c.state, c.dataplane, c.neighbors, c.icmp, c.metrics ?? null, c.liveness ?? null, c.bird ?? null, c.keepalived ?? null,
    ]);
    const restartNeeded = fixed(next) !== fixed(this.config);
    try {
      this.router.rib.load(next.routes, this.router.rib.runtimeChanges());
    } catch (error) {
      throw new ControlError('ECONFIG', `reload refused, running config kept: ${(error as Error).message}`);
    }
    this.config = { ...this.config, routes: next.routes, servers: next.servers, log: next.log, health: next.health };
    this.monitor.configure(next.servers, next.health);
    this.failover.configure(next.health);
    this.events.setNotify(notifyOf(next));
    this.router.rib.reselect();
    this.log.level = next.log.level;
    const summary = `reloaded ${this.configPath}: ${next.routes.length} config routes, ${next.servers.length} servers` +
      (restartNeeded ? '; interfaces, io, control, state, dataplane, neighbors, icmp, metrics, liveness, bird and keepalived settings apply at the next restart' : '');
    this.log.info({ config: this.configPath }, summary);
    return summary;
  }

  private open(): void {
    const sink: RxSink = {
      batch: this.router.batch,
      pending: () => {
        if (this.scheduled) return;
        this.scheduled = true;
        setImmediate(this.flush);
      },
      full: () => this.router.process(),
      tooLong: () => {
        this.router.counters.drops[Drop.frameTooLong]++;
      },
    };
    this.sink = sink;
    this.router.resolver.start();
    for (const port of this.ports) port.open(sink);
    this.router.resolver.kick(); // gateways pinned before the ports opened asked into the void
    this.watcher.start(); // and reads the ports once more: what changed since start() read them counts
    this.monitor.start();
    const checked = this.config.servers.filter((s) => s.checks.length > 0);
    if (checked.length > 0) {
      this.log.info({ servers: checked.map((s) => s.name) }, `health checks: ${checked.map((s) => `${s.name} (${s.checks.map(describeCheck).join(', ')})`).join('; ')}`);
    }
  }

  /**
   * The kernel's picture of the ports changed: apply what differs from the
   * last one, port by port. Addresses rebuild the interface routes (a VRRP
   * address added by keepalived becomes the router's own: the kernel answers
   * it; removed, traffic to it is forwarded again); link changes make next
   * hops on the port usable or not, and routes move at once (one event per
   * port); MTU and MAC are written where the data plane reads them. An
   * interface that vanished is a port that is down; made again (a new ifindex),
   * its socket is opened again.
   */
  private applyInterfaces(states: Map<string, InterfaceState>): void {
    if (this.stopped) return;
    const router = this.router;
    const { ports, rib, resolver } = router;
    const linkChanges: { port: number; was: string; now: string }[] = [];
    this.config.interfaces.forEach((configured, p) => {
      const before = this.kernelPorts[p];
      const now = states.get(configured.name);
      this.kernelPorts[p] = now;
      const name = configured.name;
      if (now !== undefined && now.mac !== undefined && now.mac !== before?.mac) {
        ports.mac.set(parseMac(now.mac), p * 6);
        resolver.macChanged(p);
        if (before?.mac !== undefined) this.log.warn({ interface: name, mac: now.mac }, `port ${name}: MAC changed to ${now.mac}`);
      }
      if (now !== undefined && configured.mtu === undefined && now.mtu !== ports.mtu[p]) {
        this.log.info({ interface: name, mtu: now.mtu }, `port ${name}: MTU ${ports.mtu[p]} -> ${now.mtu}`);
        ports.mtu[p] = now.mtu;
      }
      const addresses = now?.addresses ?? [];
      const key = (list: readonly { address: number; length: number }[]) => list.map((a) => `${a.address >>> 0}/${a.length}`).join(',');
      if (key(addresses) !== key(ports.addresses[p])) {
        const text = (list: readonly { address: number; length: number }[]) => new Set(list.map((a) => `${formatAddress(a.address)}/${a.length}`));
        const old = text(ports.addresses[p]);
        const fresh = text(addresses);
        const added = [...fresh].filter((a) => !old.has(a));
        const removed = [...old].filter((a) => !fresh.has(a));
        this.log.info({ interface: name, added, removed }, `port ${name}: ${[...added.map((a) => `address ${a} added`), ...removed.map((a) => `address ${a} removed`)].join(', ') || 'addresses reordered'}`);
        if (addresses.length === 0) this.log.warn({ interface: name }, `port ${name} has no IPv4 address left: it forwards nothing until it has one`);
        router.setPortAddresses(p, addresses);
      }
      const was = ports.linkUp[p] === 1;
      const up = now !== undefined && linkUp(now) && addresses.length > 0;
      ports.link[p] = up ? 'up' : now !== undefined && linkUp(now) ? 'down (no IPv4 address)' : describeLink(now);
      if (up !== was || describeLink(before) !== describeLink(now)) {
        router.setPortLink(p, up);
        if (up !== was) linkChanges.push({ port: p, was: was ? 'up' : 'down', now: up ? 'up' : 'down' });
        const link = ports.link[p];
        const how = up ? 'forwarding on it again' : 'routes through it move to other next hops or are withdrawn';
        (now === undefined ? this.log.error : up ? this.log.info : this.log.warn).call(this.log, { interface: name, link }, `port ${name}: link ${link} (${how})`);
      }
      if (now !== undefined && before !== undefined && now.ifindex !== before.ifindex && this.sink) {
        this.reopen(p, before.ifindex, now.ifindex);
      }
    });
    const moves = this.failover.describe(rib.reselect());
    const names = this.router.ports.names;
    if (linkChanges.length === 0) {
      if (moves.length > 0) this.events.publish({ time: new Date().toISOString(), type: 'routes', reason: 'port addresses changed', routesMoved: moves });
      return;
    }
    linkChanges.forEach((change, i) => {
      this.events.publish({
        time: new Date().toISOString(),
        type: 'port',
        port: names[change.port],
        oldState: change.was,
        newState: change.now,
        reason: `link ${ports.link[change.port]}`,
        routesMoved: i === 0 ? moves : [], // every move of this read, once
      });
    });
  }

  /** The port's interface was deleted and made again: its socket (and the transit rule's hook) belong to the old one. */
  private reopen(p: number, oldIndex: number, newIndex: number): void {
    const port = this.ports[p];
    this.log.warn({ interface: port.name, oldIndex, newIndex }, `port ${port.name}: the interface was made again (ifindex ${oldIndex} -> ${newIndex}); reopening it`);
    try {
      port.close();
      port.open(this.sink!);
    } catch (error) {
      this.log.error({ err: error }, `port ${port.name}: cannot reopen: ${(error as Error).message}`);
    }
    if (this.config.kernelTransit === 'drop') {
      dropKernelTransit(this.config.interfaces.map((i) => i.name)).catch((error: Error) => this.log.error(error.message));
    }
  }

  /** Each port backend's own counters (the ring's kernel drops and transmit failures); pcap has none. */
  private readonly portStats = (): Record<string, Record<string, number>> =>
    Object.fromEntries(this.ports.map((p) => [p.name, p.stats?.() ?? {}]));

  private readonly flush = (): void => {
    this.scheduled = false;
    this.router.process();
  };

  /**
   * A planned stop's first part: a router of a pair gives its prefixes and
   * its VRRP address away while it still forwards (src/engines/pair.ts).
   * Nothing to do for a single router. Once; the lines say what was done.
   */
  drain(reason: string): Promise<string[]> {
    return this.pair?.drain(reason) ?? Promise.resolve([]);
  }

  /** `vipr ctl shutdown`: drain, then the process stops (after the reply has gone out). */
  private async shutdown(): Promise<string[]> {
    if (!this.onStopRequest) throw new ControlError('ENOTSUPPORTED', 'this daemon was not started by `vipr run`; stop it the way it was started');
    const lines = await this.drain('vipr ctl shutdown');
    const request = this.onStopRequest;
    // The reply is written when this resolves; the stop closes every connection.
    setTimeout(() => request('vipr ctl shutdown'), 50);
    return [...lines, 'stopping'];
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.pair?.close();
    this.watcher.stop();
    this.monitor.stop();
    this.failover.stop();
    this.icmp.close();
    await this.probes.close();
    this.router.resolver.stop();
    for (const port of this.ports) port.close();
    if (this.config.kernelTransit === 'drop') await restoreKernelTransit();
    await this.control?.stop();
    await this.metrics?.stop();
    this.log.info({ counters: this.router.counters.snapshot(this.router.ports.names), backend: this.portStats() }, 'stopped');
  }
}
