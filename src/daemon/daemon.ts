// The daemon: reads the config, checks the box, opens the ports, compiles the
// routes and forwards until SIGTERM or SIGINT.

import type { Config, PortBackend } from '../config/types.js';
import { Drop } from '../dataplane/counters.js';
import type { PortDescription } from '../dataplane/ports.js';
import { batchSink, openBackend, PortBackendError } from '../router/port-host.js';
import { Router, type DataplaneMode } from '../router/router.js';
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
import { RING_COUNTER_NAMES } from '../io/ring-port.js';
import { XDP_COUNTER_NAMES } from '../io/xdp-port.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { Logger } from './logger.js';
import {
  placeDataPlane, type Placement, describePort, disableKernelForwarding, disableReceiveOffloads, driverOf, dropKernelTransit, kernelForwardingOn, parseMac,
  restoreKernelTransit, SystemError,
} from './system.js';
import { describeLink, InterfaceWatcher, linkUp, localAddresses, readInterfaces, type InterfaceState } from './interfaces.js';
import { Pair, startEngines, type PairEngines } from '../engines/pair.js';

function notifyOf(config: Config) {
  return config.health.notify ? { command: config.health.notify, timeoutMs: config.health.notifyTimeoutMs } : undefined;
}

/**
 * Data-plane worker threads for this config: dataplane.workers, except with
 * io: pcap, whose binding (cap) is not safe on a worker thread (it calls back
 * into the main thread's event loop): then the data plane runs inline.
 */
export function dataplaneWorkers(config: Config): number {
  if (config.io === 'pcap') return 0;
  // One AF_XDP port covers every receive queue of its interface (one socket each) and holds the
  // interface's one XDP program: a single worker owns it.
  if (config.io === 'xdp' || config.io === 'auto') return Math.min(config.dataplane.workers, 1);
  return config.dataplane.workers;
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
  private stopped = false;
  /** Follows the kernel's changes to the ports (addresses, link, MTU, MAC) while running. */
  private readonly watcher: InterfaceWatcher;
  /** The kernel's state of each port as last applied (undefined: the interface is gone). */
  private readonly kernelPorts: (InterfaceState | undefined)[];
  /** Where the ports deliver frames; kept to reopen a port whose interface was made again. */
  private sink: RxSink | undefined;
  /** The box's addresses as last handed to AF_XDP ports (sorted, joined). */
  private localKey = '';
  /** The backend the ports run on (io: auto decides at start). */
  private backend: PortBackend;
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
    /** Inline: the ports, open or attached; with workers: none here (each worker opens its own). */
    ports: Port[],
    backend: PortBackend,
    /** Whether this daemon installed the nftables kernel-transit rule (and so removes it). */
    private transitRule: boolean,
    /** The box's addresses now (AF_XDP ports hand frames to them to the kernel). */
    local: number[],
  ) {
    this.kernelPorts = kernelPorts;
    this.ports = ports;
    this.backend = backend;
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
    const workers = dataplaneWorkers(config);
    const events = {
      onChange: (address: number, port: number, state: string, mac: string) =>
        log.info(
          { neighbor: formatAddress(address), port: descriptions[port].name, state, mac: mac || undefined },
          `neighbor ${formatAddress(address)} ${state}${mac ? ` at ${mac}` : ''}`,
        ),
    };
    const mode: DataplaneMode = workers === 0
      ? { kind: 'inline', txPorts: this.ports }
      : {
        kind: 'threads',
        options: {
          workers, io: config.io, ring: config.ring, xdp: config.xdp, localAddresses: local, batchSize: config.dataplane.batchSize, icmp: config.icmp,
          cpus: placement?.cpus,
          log: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => log[level](fields ?? {}, message),
        },
      };
    this.router = new Router(descriptions, mode, config, events, runtime);
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

    const cpus = config.dataplane.cpu === undefined ? [] : ([] as number[]).concat(config.dataplane.cpu);
    const inline = dataplaneWorkers(config) === 0;
    if (inline && config.dataplane.workers > 0) {
      log.info(`io: ${config.io} runs the data plane on the main thread (libpcap's binding cannot run on a worker thread); dataplane.workers is ignored`);
    } else if (dataplaneWorkers(config) < config.dataplane.workers) {
      log.info(`io: ${config.io} runs one data-plane worker (an AF_XDP port covers all of its interface's queues); dataplane.workers: ${config.dataplane.workers} is taken as 1`);
    }
    const placement = cpus.length === 0 ? undefined : placeDataPlane(cpus, inline);
    if (placement) {
      const where = inline ? `data plane thread pinned to CPU ${cpus[0]}` : `data-plane worker(s) on CPU ${cpus.join(',')}`;
      log.info({ cpus: placement.cpus, others: placement.others }, where +
        (placement.others.length > 0 ? `; health checks run on CPU ${placement.others.join(',')}` : ' (the only CPU vipr may use: health checks share it)'));
    }
    if (config.offloads === 'disable') {
      for (const name of names) {
        const changed = await disableReceiveOffloads(name);
        if (changed.length > 0) log.info({ interface: name, changed }, `${name}: ${changed.join(', ')} (packet sockets must see frames as they were on the wire)`);
      }
    }

    // Nothing touches the ports while another vipr runs on them (its control socket answers).
    await ControlServer.refuseIfRunning(config.control.socket);
    // Inline, the backend first: with AF_XDP the kernel never sees transit frames, so no drop rule is
    // needed. With workers, each opens its own ports (io: auto decides there, and says which).
    const { backend, ports } = inline
      ? Daemon.openPorts(config, descriptions, states, log)
      : { backend: (config.io === 'auto' ? 'xdp' : config.io) as PortBackend, ports: [] as Port[] };
    const transitRule = config.kernelTransit === 'drop' && backend !== 'xdp';
    try {
      if (transitRule) await Daemon.installTransitRule(names, log);
      else if (backend === 'xdp') await Daemon.xdpNotes(names, log);
    } catch (error) {
      for (const port of ports) port.close();
      throw error;
    }

    try {
      return await Daemon.build(config, configPath, log, descriptions, placement, kernelPorts, ports, backend, transitRule, localAddresses(states), engines);
    } catch (error) {
      engines?.link.close();
      for (const port of ports) port.close(); // AF_XDP: the program comes off the interfaces now
      // A start that fails leaves no drop rule behind, unless the rule is a
      // running vipr's (the same table): that one keeps forwarding with it.
      if (transitRule && !(error instanceof ControlSocketInUseError)) await restoreKernelTransit();
      throw error;
    }
  }

  private static async installTransitRule(names: string[], log: Logger): Promise<void> {
    await dropKernelTransit(names);
    log.info({ interfaces: names }, `kernel's copy of transit IPv4 dropped at ingress on ${names.join(', ')} (nftables table netdev vipr_transit): vipr has its own`);
  }

  private static async xdpNotes(names: string[], log: Logger): Promise<void> {
    log.info({ interfaces: names }, `no kernel-transit rule: with AF_XDP the kernel never sees a transit frame (vipr's XDP program hands them to vipr before the kernel's IP input)`);
    // A veth's sender may leave TCP/UDP checksums to offload: AF_XDP carries no flag saying so (packet
    // sockets do, and the ring backend completes them), so vipr would forward them unfinished.
    for (const name of names) {
      if ((await driverOf(name)) !== 'veth') continue;
      log.warn({ interface: name }, `port ${name} is a veth: AF_XDP cannot finish checksums its peer leaves to offload, so the peer must send complete frames, as a wire does (\`ethtool -K PEER tx off tso off gso off\`)`);
    }
  }


  /** Inline: the ports on the configured backend (src/router/port-host.ts openBackend), as the daemon's. */
  private static openPorts(
    config: Config, descriptions: PortDescription[], states: Map<string, InterfaceState>, log: Logger,
  ): { backend: PortBackend; ports: Port[] } {
    try {
      return openBackend(descriptions.map((d) => d.name), { io: config.io, ring: config.ring, xdp: config.xdp, localAddresses: localAddresses(states) },
        (level, message, fields) => log[level](fields ?? {}, message));
    } catch (error) {
      throw error instanceof PortBackendError ? new SystemError(error.message) : error;
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
    kernelPorts: (InterfaceState | undefined)[], ports: Port[], backend: PortBackend, transitRule: boolean, local: number[],
    engines: PairEngines | undefined,
  ): Promise<Daemon> {
    const names = config.interfaces.map((i) => i.name);
    const store = new StateStore(config.state.file);
    const runtime = await Daemon.loadState(store, log);
    let daemon: Daemon;
    try {
      daemon = new Daemon(config, configPath, log, descriptions, store, runtime, placement, kernelPorts, ports, backend, transitRule, local);
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
      daemon = new Daemon(config, configPath, log, descriptions, store, undefined, placement, kernelPorts, ports, backend, transitRule, local);
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
    await daemon.open();
    if (engines) {
      daemon.pair = new Pair(engines, { config, rib, ports: daemon.router.ports, counters: () => daemon.router.totals(), events: daemon.events, log });
      daemon.pair.start();
    }
    log.info({ io: config.io, backend: daemon.backend, ports: names, routes: rib.size },
      `ready: forwarding on ${names.join(', ')} with ${rib.size} routes (io: ${daemon.backend})`);
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
      refreshPortStats: async () => this.router.threads?.refreshBackendStats(),
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
      refreshPortStats: async () => this.router.threads?.refreshBackendStats(),
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
      c.interfaces, c.io, c.ring, c.xdp, c.control, c.state, c.dataplane, c.neighbors, c.icmp, c.metrics ?? null, c.liveness ?? null, c.bird ?? null, c.keepalived ?? null,
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

  private async open(): Promise<void> {
    this.router.resolver.start();
    const threads = this.router.threads;
    if (threads) {
      // Each worker opens its own sockets on every port; io: auto is decided by the first.
      this.backend = await threads.start();
      this.log.info({ workers: threads.workers, backend: this.backend }, `data plane on ${threads.workers} worker thread(s), io: ${this.backend}`);
      const names = this.config.interfaces.map((i) => i.name);
      if (this.backend === 'ring' && this.config.io === 'auto' && this.config.kernelTransit === 'drop') {
        await Daemon.installTransitRule(names, this.log);
        this.transitRule = true;
      }
    } else {
      const sink = batchSink(this.router.batch, () => this.router.process(), () => this.router.counters.drops[Drop.frameTooLong]++);
      this.sink = sink;
      for (const port of this.ports) port.open(sink);
    }
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
        if (this.router.threads) this.router.threads.setMac(p, parseMac(now.mac));
        else this.ports[p].setMac?.(parseMac(now.mac));
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
      if (now !== undefined && before !== undefined && now.ifindex !== before.ifindex) {
        this.reopen(p, before.ifindex, now.ifindex);
      }
    });
    this.followLocalAddresses(states);
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

  /**
   * Hands the box's addresses to ports that sort frames before the kernel
   * (AF_XDP: frames to them are the kernel's). Called on every interface read,
   * so an address keepalived adds is the kernel's as soon as vipr's own FIB
   * knows it (the same read; nftables' fib lookup did this without a window).
   */
  private followLocalAddresses(states: Map<string, InterfaceState>): void {
    const local = localAddresses(states);
    const key = [...local].sort((a, b) => a - b).join(',');
    if (key === this.localKey) return;
    this.localKey = key;
    if (this.router.threads) {
      this.router.threads.setLocalAddresses(local);
      return;
    }
    for (const port of this.ports) {
      try {
        port.setLocalAddresses?.(local);
      } catch (error) {
        this.log.error({ err: error, interface: port.name }, `port ${port.name}: ${(error as Error).message}`);
      }
    }
  }

  /** The port's interface was deleted and made again: its socket (and the transit rule's hook) belong to the old one. */
  private reopen(p: number, oldIndex: number, newIndex: number): void {
    const name = this.router.ports.names[p];
    this.log.warn({ interface: name, oldIndex, newIndex }, `port ${name}: the interface was made again (ifindex ${oldIndex} -> ${newIndex}); reopening it`);
    if (this.router.threads) {
      this.router.threads.reopen(p);
    } else {
      try {
        this.ports[p].close();
        this.ports[p].open(this.sink!);
      } catch (error) {
        this.log.error({ err: error }, `port ${name}: cannot reopen: ${(error as Error).message}`);
      }
    }
    if (this.transitRule) {
      dropKernelTransit(this.config.interfaces.map((i) => i.name)).catch((error: Error) => this.log.error(error.message));
    }
  }

  /** Each port backend's own counters (the ring's kernel drops and transmit failures); pcap has none. */
  private readonly portStats = (): Record<string, Record<string, number>> => {
    const threads = this.router.threads;
    if (!threads) return Object.fromEntries(this.ports.map((p) => [p.name, p.stats?.() ?? {}]));
    const names: readonly string[] | undefined = this.backend === 'ring' ? RING_COUNTER_NAMES : this.backend === 'xdp' ? XDP_COUNTER_NAMES : undefined;
    return Object.fromEntries(this.router.ports.names.map((name, p) => {
      const counts = threads.backendCounters(p);
      return [name, names ? Object.fromEntries(names.map((counter, i) => [counter, counts[i]])) : {}];
    }));
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
    await this.router.threads?.stop();
    for (const port of this.ports) port.close();
    if (this.transitRule) await restoreKernelTransit();
    await this.control?.stop();
    await this.metrics?.stop();
    this.log.info({ counters: this.router.totals().snapshot(this.router.ports.names), backend: this.portStats() }, 'stopped');
  }
}
