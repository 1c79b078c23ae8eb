// The daemon: reads the config, checks the box, opens the ports, compiles the
// routes and forwards until SIGTERM or SIGINT.

import type { Config } from '../config/types.js';
import { FrameBatch } from '../dataplane/batch.js';
import { Counters, Drop } from '../dataplane/counters.js';
import { Dataplane, type DataplaneTables } from '../dataplane/dataplane.js';
import { IcmpErrorSender } from '../dataplane/icmp-error.js';
import { PortTable, type PortDescription } from '../dataplane/ports.js';
import { LpmTable } from '../fib/lpm.js';
import { NextHopTable } from '../fib/nexthop.js';
import type { Port, RxSink } from '../io/port.js';
import { PcapPort } from '../io/pcap-port.js';
import { NeighborResolver } from '../neighbor/resolver.js';
import { Rib } from '../rib/rib.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { Logger } from './logger.js';
import {
  describeInterface, disableKernelForwarding, disableReceiveOffloads, kernelForwardingOn, SystemError,
} from './system.js';

export class Daemon {
  readonly counters: Counters;
  readonly tables: DataplaneTables;
  readonly portTable: PortTable;
  readonly resolver: NeighborResolver;
  readonly rib: Rib;
  readonly dataplane: Dataplane;
  private readonly ports: Port[];
  private readonly batch: FrameBatch;
  private scheduled = false;
  private stopped = false;

  private constructor(readonly config: Config, readonly log: Logger, descriptions: PortDescription[]) {
    this.portTable = new PortTable(descriptions);
    this.counters = new Counters(descriptions.length);
    this.ports = descriptions.map((d, index) => new PcapPort(d.name, index));
    const nextHops = new NextHopTable();
    this.batch = new FrameBatch(config.dataplane.batchSize);
    const icmp = new IcmpErrorSender(this.portTable, this.ports, this.counters, config.icmp);
    this.resolver = new NeighborResolver(this.portTable, this.ports, nextHops, this.counters, icmp, config.neighbors, {
      onChange: (address, port, state, mac) =>
        log.info({ neighbor: formatAddress(address), port: this.portTable.names[port], state, mac: mac || undefined }, `neighbor ${formatAddress(address)} ${state}`),
    });
    this.tables = { fib: new LpmTable({ tbl8Groups: 1 }), nextHops, neighbors: this.resolver.table };
    this.rib = new Rib(this.portTable, nextHops, this.resolver, this.tables);
    this.dataplane = new Dataplane(this.tables, this.portTable, this.ports, this.counters, icmp, this.resolver, config.dataplane.batchSize);
  }

  /** Checks the box and the config, then starts forwarding. Throws SystemError/RibError with a one-line message. */
  static async start(config: Config, log: Logger): Promise<Daemon> {
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
    const descriptions: PortDescription[] = [];
    for (const i of config.interfaces) descriptions.push(await describeInterface(i.name, i.mtu));
    if (config.offloads === 'disable') {
      for (const name of names) {
        const changed = await disableReceiveOffloads(name);
        if (changed.length > 0) log.info({ interface: name, changed }, `${name}: ${changed.join(', ')} (packet sockets must see frames as they were on the wire)`);
      }
    }
    const daemon = new Daemon(config, log, descriptions);
    daemon.rib.load(config.routes);
    for (const d of descriptions) {
      log.info(
        { interface: d.name, mtu: d.mtu, addresses: d.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`) },
        `port ${d.name}: ${d.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`).join(', ')} mtu ${d.mtu}`,
      );
    }
    for (const route of daemon.rib.routes()) {
      if (route.source !== 'config') continue;
      const target = route.via ? `via ${formatAddress(route.via.address)}${route.via.server ? ` (${route.via.server})` : ''} on ${route.via.port}` : route.type;
      log.info({ route: formatPrefix(route.prefix), line: route.sourceLine }, `route ${formatPrefix(route.prefix)} ${target}`);
    }
    daemon.open();
    log.info({ io: config.io, ports: names, routes: daemon.rib.size }, `ready: forwarding on ${names.join(', ')} with ${daemon.rib.size} routes`);
    return daemon;
  }

  private open(): void {
    const sink: RxSink = {
      batch: this.batch,
      pending: () => {
        if (this.scheduled) return;
        this.scheduled = true;
        setImmediate(this.flush);
      },
      full: () => this.dataplane.process(this.batch),
      tooLong: () => {
        this.counters.drops[Drop.frameTooLong]++;
      },
    };
    this.resolver.start();
    for (const port of this.ports) port.open(sink);
    this.resolver.kick(); // gateways pinned before the ports opened asked into the void
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    this.dataplane.process(this.batch);
  };

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.resolver.stop();
    for (const port of this.ports) port.close();
    this.log.info({ counters: this.counters.snapshot(this.portTable.names) }, 'stopped');
  }
}
