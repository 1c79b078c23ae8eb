// The daemon: reads the config, checks the box, opens the ports, compiles the
// routes and forwards until SIGTERM or SIGINT.

import type { Config } from '../config/types.js';
import { Drop } from '../dataplane/counters.js';
import type { PortDescription } from '../dataplane/ports.js';
import { Router } from './router.js';
import { describe as describeRoute } from '../rib/rib.js';
import type { Port, RxSink } from '../io/port.js';
import { PcapPort } from '../io/pcap-port.js';
import { formatAddress, formatPrefix } from '../util/ipv4.js';
import type { Logger } from './logger.js';
import {
  describeInterface, disableKernelForwarding, disableReceiveOffloads, kernelForwardingOn, SystemError,
} from './system.js';

export class Daemon {
  readonly router: Router;
  private readonly ports: Port[];
  private scheduled = false;
  private stopped = false;

  private constructor(readonly config: Config, readonly log: Logger, descriptions: PortDescription[]) {
    this.ports = descriptions.map((d, index) => new PcapPort(d.name, index));
    this.router = new Router(descriptions, this.ports, config, {
      onChange: (address, port, state, mac) =>
        log.info(
          { neighbor: formatAddress(address), port: descriptions[port].name, state, mac: mac || undefined },
          `neighbor ${formatAddress(address)} ${state}${mac ? ` at ${mac}` : ''}`,
        ),
    });
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
    const rib = daemon.router.rib;
    for (const d of descriptions) {
      log.info(
        { interface: d.name, mtu: d.mtu, addresses: d.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`) },
        `port ${d.name}: ${d.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`).join(', ')} mtu ${d.mtu}`,
      );
    }
    for (const route of rib.routes()) {
      if (route.source !== "config") continue;
      const target = describeRoute(route) + (route.via.length > 0 ? ` on ${route.via[0].port}` : '');
      log.info({ route: formatPrefix(route.prefix), line: route.sourceLine }, `route ${formatPrefix(route.prefix)} ${target}`);
    }
    daemon.open();
    log.info({ io: config.io, ports: names, routes: rib.size }, `ready: forwarding on ${names.join(', ')} with ${rib.size} routes`);
    return daemon;
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
    this.router.resolver.start();
    for (const port of this.ports) port.open(sink);
    this.router.resolver.kick(); // gateways pinned before the ports opened asked into the void
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    this.router.process();
  };

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.router.resolver.stop();
    for (const port of this.ports) port.close();
    this.log.info({ counters: this.router.counters.snapshot(this.router.ports.names) }, 'stopped');
  }
}
