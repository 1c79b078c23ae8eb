// Addresses a config may not use: routes for blocks a router never forwards,
// and (where the box's interfaces are known) servers and next hops on the
// router's own address or a connected subnet's network or broadcast address.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readInterfaceAddresses } from '../../src/config/interfaces.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { parseAddress } from '../../src/util/ipv4.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FILE = '/etc/vipr/vipr.yaml';
const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

function errorOf(text: string): string {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError, the file was accepted');
}

describe('routes for blocks a router never forwards', () => {
  const cases: [string, string][] = [
    ['127.0.0.0/8', '127.0.0.0/8 is in 127.0.0.0/8 (loopback): a router never forwards to it (RFC 1812 5.3.7), so the route could never be used'],
    ['127.5.0.0/16', '127.5.0.0/16 is in 127.0.0.0/8 (loopback): a router never forwards to it (RFC 1812 5.3.7), so the route could never be used'],
    ['224.0.0.0/4', '224.0.0.0/4 is in 224.0.0.0/4 (multicast): vipr forwards unicast only, so the route could never be used'],
    ['232.1.0.0/16', '232.1.0.0/16 is in 224.0.0.0/4 (multicast): vipr forwards unicast only, so the route could never be used'],
    ['240.0.0.0/4', '240.0.0.0/4 is in 240.0.0.0/4 (reserved): a router never forwards to it (RFC 1812 5.3.7), so the route could never be used'],
    ['255.255.255.255/32', '255.255.255.255/32 is the limited broadcast address: a router never forwards it (RFC 1812 5.3.5.1)'],
    ['0.0.0.0/8', '0.0.0.0/8 is in 0.0.0.0/8 ("this network"): a router never forwards to it (RFC 1812 5.3.7), so the route could never be used'],
  ];
  it.each(cases)('%s in the YAML file', (prefix, message) => {
    expect(errorOf(yaml('interfaces: [{ name: lan0 }]', 'routes:', `  - { prefix: ${prefix}, type: blackhole }`)))
      .toBe(`${FILE}:3:15: routes[0].prefix: ${message}`);
  });

  it('in a route file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vipr-config-addresses-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'vipr.yaml'), yaml('interfaces: [{ name: lan0 }]', 'routeFiles: [t.routes]'));
    await writeFile(join(dir, 't.routes'), '10.0.0.0/8 blackhole\n  239.0.0.0/8 blackhole\n');
    await expect(loadConfig(join(dir, 'vipr.yaml'), { interfaceAddresses: null })).rejects.toThrow(
      `${join(dir, 't.routes')}:2:3: prefix: 239.0.0.0/8 is in 224.0.0.0/4 (multicast): vipr forwards unicast only, so the route could never be used`,
    );
  });

  it('the default route, and neighbours of the blocks, are fine', () => {
    for (const prefix of ['0.0.0.0/0', '0.0.0.0/1', '1.0.0.0/8', '126.255.255.0/24', '128.0.0.0/1', '223.255.255.255/32', '192.0.0.0/2']) {
      expect(() => parseConfig(yaml('interfaces: [{ name: lan0 }]', 'routes:', `  - { prefix: ${prefix}, type: blackhole }`), FILE)).not.toThrow();
    }
  });
});

describe("the box's own addresses (vipr run, check-config)", () => {
  const LAN0 = [{ address: parseAddress('192.168.1.1'), length: 27 }];
  const UP0 = [{ address: parseAddress('10.0.0.1'), length: 24 }];
  /** As if the box had up0 and lan0 with the lab's addresses, and no eth9. */
  const box = async (names: readonly string[]) => new Map(names.flatMap((name) => (name === 'lan0' ? [[name, LAN0]] : name === 'up0' ? [[name, UP0]] : [])) as [string, typeof LAN0][]);

  async function load(text: string, routes?: string): Promise<string | undefined> {
    const dir = await mkdtemp(join(tmpdir(), 'vipr-config-addresses-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'vipr.yaml'), text);
    if (routes !== undefined) await writeFile(join(dir, 't.routes'), routes);
    try {
      await loadConfig(join(dir, 'vipr.yaml'), { interfaceAddresses: box });
      return undefined;
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.message.slice(dir.length + 1);
    }
  }

  const PORTS = 'interfaces: [{ name: up0 }, { name: lan0 }, { name: eth9 }]';
  it.each<[string, string, string]>([
    ['a server on the router\'s own address', '  web1: { address: 192.168.1.1 }', 'vipr.yaml:3:20: servers.web1.address: 192.168.1.1 is this router\'s own address (lan0 192.168.1.1/27)'],
    ['a server on a subnet\'s network address', '  web1: { address: 192.168.1.0 }', 'vipr.yaml:3:20: servers.web1.address: 192.168.1.0 is the network address of lan0\'s subnet 192.168.1.0/27'],
    ['a server on a subnet\'s broadcast address', '  web1: { address: 10.0.0.255 }', 'vipr.yaml:3:20: servers.web1.address: 10.0.0.255 is the broadcast address of up0\'s subnet 10.0.0.0/24'],
  ])('%s', async (_what, server, message) => {
    expect(await load(yaml(PORTS, 'servers:', server))).toBe(message);
  });

  it('a next hop address in a route', async () => {
    expect(await load(yaml(PORTS, 'routes:', '  - { prefix: 0.0.0.0/0, via: [10.0.0.254, 192.168.1.31] }')))
      .toBe("vipr.yaml:3:44: routes[0].via[1]: 192.168.1.31 is the broadcast address of lan0's subnet 192.168.1.0/27");
  });

  it('a next hop address in a route file', async () => {
    expect(await load(yaml(PORTS, 'routeFiles: [t.routes]'), '203.0.113.0/24 via 192.168.1.2\n198.51.100.0/24 via 10.0.0.2, 10.0.0.1\n'))
      .toBe("t.routes:2:31: via: 10.0.0.1 is this router's own address (up0 10.0.0.1/24)");
  });

  it('addresses of interfaces this box does not have are not judged; a good file loads', async () => {
    expect(await load(yaml(PORTS, 'servers:', '  web1: { address: 192.168.1.2 }', 'routes:', '  - { prefix: 0.0.0.0/0, via: [10.0.0.254, web1] }'))).toBeUndefined();
  });
});

describe('reading the interfaces of this box', () => {
  it('`ip -j addr` for lo gives 127.0.0.1/8; an interface that does not exist is left out', async () => {
    const addresses = await readInterfaceAddresses(['lo', 'nosuchif0']);
    expect(addresses.get('lo')).toContainEqual({ address: parseAddress('127.0.0.1'), length: 8 });
    expect(addresses.has('nosuchif0')).toBe(false);
  });
});
