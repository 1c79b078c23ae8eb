import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { parseAddress, parsePrefix } from '../../src/util/ipv4.js';

const FILE = '/etc/vipr/vipr.yaml';
const LAB_CONFIG = fileURLToPath(new URL('../../lab/vipr.yaml', import.meta.url));

/** One YAML line per argument, so a case's line numbers can be read off its index. */
function yaml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** The smallest valid file; most error cases add one bad line to it. */
const PORTS = ['interfaces:', '  - name: lan0'];

function errorOf(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, the file was accepted');
}

const DEFAULTS: Omit<Config, 'interfaces' | 'servers' | 'routes'> = {
  log: { level: 'info' },
  kernelForwarding: 'refuse',
  offloads: 'disable',
  kernelTransit: 'drop',
  io: 'ring',
  ring: { rxRing: 'v2', tx: 'sendmmsg', qdiscBypass: false, busyPoll: false },
  xdp: { mode: 'auto', attach: 'auto', frames: 4096, busyPoll: false },
  neighbors: { reachableMs: 30_000, retransmitMs: 1_000, probes: 3, queueLength: 64, maxEntries: 4_096, requestsPerSecond: 100, requestBurst: 256 },
  icmp: { ratePerSecond: 1_000, burst: 50, perDestination: { ratePerSecond: 1, burst: 6, maxDestinations: 4_096 } },
  dataplane: { batchSize: 256, workers: 1 },
  control: { socket: '/run/vipr/vipr.sock', mode: '0660' },
  health: { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto', notifyTimeoutMs: 10000 },
  state: { file: '/var/lib/vipr/state.json' },
  routeFiles: [],
};

const prefix = parsePrefix;
const address = parseAddress;

describe('lab/vipr.yaml', () => {
  it('is the article network, with health checks and backup next hops', async () => {
    const config = await loadConfig(LAB_CONFIG);
    const web = (n: number) => ({ server: `web${n}`, address: address(`192.168.1.${n + 1}`) });
    const check = { type: 'http', port: 80, path: '/health', status: 200, body: 'ok' } as const;
    expect(config).toEqual({
      ...DEFAULTS,
      health: { intervalMs: 50, timeoutMs: 100, rise: 2, fall: 3, holdDownMs: 3000, failback: 'auto', notifyTimeoutMs: 10000 },
      interfaces: [{ name: 'up0' }, { name: 'lan0' }],
      servers: [1, 2, 3, 4].map((n) => ({ name: `web${n}`, address: address(`192.168.1.${n + 1}`), checks: [check] })),
      routes: [
        { prefix: prefix('192.168.1.32/27'), type: 'unicast', via: [web(1), web(2)], sourceLine: 66 },
        { prefix: prefix('192.168.1.64/27'), type: 'unicast', via: [web(2), web(3)], sourceLine: 67 },
        { prefix: prefix('192.168.1.96/27'), type: 'unicast', via: [web(3), web(4)], sourceLine: 68 },
        { prefix: prefix('192.168.1.128/27'), type: 'unicast', via: [web(4), web(1)], sourceLine: 69 },
        { prefix: prefix('192.168.1.0/24'), type: 'unreachable', via: [], sourceLine: 71 },
        { prefix: prefix('0.0.0.0/0'), type: 'unicast', via: [{ address: address('10.0.0.254') }], sourceLine: 73 },
      ],
    } satisfies Config);
  });
});

describe('valid files', () => {
  it('fills every default', () => {
    expect(parseConfig(yaml(...PORTS), FILE)).toEqual({
      ...DEFAULTS,
      interfaces: [{ name: 'lan0' }],
      servers: [],
      routes: [],
    } satisfies Config);
  });

  it.each<[string, string, (config: Config) => unknown, unknown]>([
    [
      'every scalar setting overridden',
      yaml(
        'log: { level: debug }',
        'kernelForwarding: disable',
        'offloads: keep',
        'io: pcap',
        'kernelTransit: keep',
        ...PORTS,
        'neighbors: { reachableMs: 5000, retransmitMs: 200, probes: 5, queueLength: 0, maxEntries: 16, requestsPerSecond: 10, requestBurst: 20 }',
        'icmp: { ratePerSecond: 0, burst: 1, perDestination: { ratePerSecond: 2, burst: 3, maxDestinations: 100 } }',
        'dataplane: { batchSize: 4096 }',
        'control: { socket: /tmp/v.sock, mode: "0600", owner: root, group: 0 }',
        'state: { file: /tmp/vipr-state.json }',
      ),
      (config) => ({ ...config, interfaces: undefined, servers: undefined, routes: undefined }),
      {
        log: { level: 'debug' },
        kernelForwarding: 'disable',
        offloads: 'keep',
        kernelTransit: 'keep',
        io: 'pcap',
        ring: { rxRing: 'v2', tx: 'sendmmsg', qdiscBypass: false, busyPoll: false },
        xdp: { mode: 'auto', attach: 'auto', frames: 4096, busyPoll: false },
        interfaces: undefined,
        servers: undefined,
        routes: undefined,
        neighbors: { reachableMs: 5000, retransmitMs: 200, probes: 5, queueLength: 0, maxEntries: 16, requestsPerSecond: 10, requestBurst: 20 },
        icmp: { ratePerSecond: 0, burst: 1, perDestination: { ratePerSecond: 2, burst: 3, maxDestinations: 100 } },
        dataplane: { batchSize: 4096, workers: 1 },
        control: { socket: '/tmp/v.sock', mode: '0600', owner: 'root', group: 0 },
        health: { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto', notifyTimeoutMs: 10000 },
        state: { file: '/tmp/vipr-state.json' },
        routeFiles: [],
      },
    ],
    [
      'AF_XDP with every setting of its own',
      yaml(...PORTS, 'io: auto', 'xdp: { mode: zerocopy, attach: native, frames: 65536, busyPoll: true }'),
      (config) => [config.io, config.xdp],
      ['auto', { mode: 'zerocopy', attach: 'native', frames: 65536, busyPoll: true }],
    ],
    [
      'an interface MTU override',
      yaml('interfaces:', '  - name: up0', '    mtu: 9000', '  - { name: eth0.100, mtu: 68 }'),
      (config) => config.interfaces,
      [{ name: 'up0', mtu: 9000 }, { name: 'eth0.100', mtu: 68 }],
    ],
    [
      'servers keep file order, not name order',
      yaml(...PORTS, 'servers:', '  zeta: { address: 10.0.0.3 }', '  alpha: { address: 10.0.0.2 }', '  mid_1-x: { address: 10.0.0.4 }'),
      (config) => config.servers.map((server) => server.name),
      ['zeta', 'alpha', 'mid_1-x'],
    ],
    [
      'netmask form, bare address, block-style route with its source line',
      yaml(
        ...PORTS,
        'routes:',
        '  - { prefix: 192.168.1.32 255.255.255.224, via: 192.168.1.2 }',
        '  - prefix: 192.168.1.33',
        '    type: blackhole',
        '  - prefix: "10.0.0.0    255.0.0.0"',
        '    type: unicast',
        '    via: 10.0.0.254',
      ),
      (config) => config.routes,
      [
        { prefix: prefix('192.168.1.32/27'), type: 'unicast', via: [{ address: address('192.168.1.2') }], sourceLine: 4 },
        { prefix: prefix('192.168.1.33/32'), type: 'blackhole', via: [], sourceLine: 5 },
        { prefix: prefix('10.0.0.0/8'), type: 'unicast', via: [{ address: address('10.0.0.254') }], sourceLine: 7 },
      ],
    ],
    [
      'a server defined after the route that names it',
      yaml(...PORTS, 'routes:', '  - { prefix: 0.0.0.0/0, via: gw }', 'servers:', '  gw: { address: 10.0.0.254 }'),
      (config) => config.routes[0].via,
      [{ server: 'gw', address: address('10.0.0.254') }],
    ],
    [
      'YAML anchors and aliases',
      yaml(...PORTS, 'servers:', '  web1: &web { address: 192.168.1.2 }', 'routes:', '  - { prefix: 192.168.1.32/27, via: web1 }'),
      (config) => config.servers,
      [{ name: 'web1', address: address('192.168.1.2'), checks: [] }],
    ],
  ])('%s', (_name, text, pick, expected) => {
    expect(pick(parseConfig(text, FILE))).toEqual(expected);
  });
});

describe('bad files', () => {
  it.each<[string, string, string]>([
    // The example from the brief, character for character.
    [
      'host bits set in a CIDR prefix',
      yaml(
        'log:',
        '  level: info',
        'interfaces:',
        '  - name: up0',
        '  - name: lan0',
        'servers:',
        '  web1: { address: 192.168.1.2 }',
        '  web2: { address: 192.168.1.3 }',
        'routes:',
        '  - prefix: 192.168.1.32/27',
        '    via: web1',
        '  - prefix: 192.168.1.64/27',
        '    via: web2',
        '  - prefix: 192.168.1.33/27',
        '    via: web1',
      ),
      '/etc/vipr/vipr.yaml:14:13: routes[2].prefix: 192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?',
    ],
    [
      'host bits set in the netmask form',
      yaml(...PORTS, 'routes:', '  - { prefix: 192.168.1.33 255.255.255.224, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:15: routes[0].prefix: 192.168.1.33 255.255.255.224 has host bits set; did you mean 192.168.1.32 255.255.255.224?',
    ],
    [
      'non-contiguous netmask',
      yaml(...PORTS, 'routes:', '  - { prefix: 192.168.0.0 255.0.255.0, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:15: routes[0].prefix: "192.168.0.0 255.0.255.0" is not an IPv4 prefix: netmask 255.0.255.0 is not contiguous (all its one bits must come first)',
    ],
    [
      'prefix length out of range',
      yaml(...PORTS, 'routes:', '  - { prefix: 10.0.0.0/33, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:15: routes[0].prefix: "10.0.0.0/33" is not an IPv4 prefix: length "33" is not a whole number from 0 to 32',
    ],
    [
      'prefix that is not an address',
      yaml(...PORTS, 'routes:', '  - { prefix: 192.168.1/24, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:15: routes[0].prefix: "192.168.1/24" is not an IPv4 prefix: expected four decimal numbers separated by dots',
    ],
    [
      'prefix written as a number',
      yaml(...PORTS, 'routes:', '  - { prefix: 10, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:15: routes[0].prefix: expected a string, got 10',
    ],
    [
      'route without a prefix',
      yaml(...PORTS, 'routes:', '  - { via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:5: routes[0].prefix: required but missing',
    ],
    [
      'duplicate route prefix, written differently',
      yaml(...PORTS, 'routes:', '  - { prefix: 10.0.0.0/8, via: 10.0.0.1 }', '  - { prefix: 192.168.0.0/16, via: 10.0.0.1 }', '  - { prefix: 10.0.0.0 255.0.0.0, via: 10.0.0.2 }'),
      '/etc/vipr/vipr.yaml:6:15: routes[2].prefix: 10.0.0.0/8 is already routed by routes[0] at line 4',
    ],
    [
      'unknown server, close to a known one',
      yaml(...PORTS, 'servers:', '  web1: { address: 192.168.1.2 }', '  web2: { address: 192.168.1.3 }', 'routes:', '  - { prefix: 192.168.1.32/27, via: wbe1 }'),
      '/etc/vipr/vipr.yaml:7:37: routes[0].via: unknown server "wbe1"; did you mean "web1"? (known servers: web1, web2)',
    ],
    [
      'unknown server, nothing close',
      yaml(...PORTS, 'servers:', '  web1: { address: 192.168.1.2 }', 'routes:', '  - { prefix: 192.168.1.32/27, via: database }'),
      '/etc/vipr/vipr.yaml:6:37: routes[0].via: unknown server "database" (known servers: web1)',
    ],
    [
      'unknown server, no servers at all',
      yaml(...PORTS, 'routes:', '  - { prefix: 192.168.1.32/27, via: web1 }'),
      '/etc/vipr/vipr.yaml:4:37: routes[0].via: unknown server "web1"; no servers are defined',
    ],
    [
      'via address out of range',
      yaml(...PORTS, 'routes:', '  - { prefix: 0.0.0.0/0, via: 10.0.0.256 }'),
      '/etc/vipr/vipr.yaml:4:31: routes[0].via: "10.0.0.256" is not an IPv4 address: 256 is greater than 255',
    ],
    [
      'via a loopback address',
      yaml(...PORTS, 'routes:', '  - { prefix: 0.0.0.0/0, via: 127.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:31: routes[0].via: 127.0.0.1 is a loopback address and cannot be a next hop',
    ],
    [
      'unicast route without via',
      yaml(...PORTS, 'routes:', '  - prefix: 10.0.0.0/8'),
      '/etc/vipr/vipr.yaml:4:5: routes[0].via: required but missing: a unicast route needs a server name or an IPv4 address (or type: unreachable or blackhole)',
    ],
    [
      'unreachable route with via',
      yaml(...PORTS, 'routes:', '  - { prefix: 10.0.0.0/8, type: unreachable, via: 10.0.0.1 }'),
      '/etc/vipr/vipr.yaml:4:51: routes[0].via: not allowed: an unreachable route has no next hop',
    ],
    [
      'unknown route type',
      yaml(...PORTS, 'routes:', '  - { prefix: 10.0.0.0/8, type: blackhol }'),
      '/etc/vipr/vipr.yaml:4:33: routes[0].type: expected one of unicast|unreachable|blackhole, got "blackhol"; did you mean "blackhole"?',
    ],
    [
      'duplicate server address',
      yaml(...PORTS, 'servers:', '  web1: { address: 192.168.1.2 }', '  web2: { address: 192.168.1.2 }'),
      '/etc/vipr/vipr.yaml:5:20: servers.web2.address: 192.168.1.2 is already the address of server web1 at line 4',
    ],
    [
      'server name with a capital letter',
      yaml(...PORTS, 'servers:', '  Web1: { address: 192.168.1.2 }'),
      '/etc/vipr/vipr.yaml:4:3: servers.Web1: "Web1" is not a valid server name (a lower-case letter, then up to 31 of a-z 0-9 _ -)',
    ],
    [
      'server defined twice',
      yaml(...PORTS, 'servers:', '  web1: { address: 192.168.1.2 }', '  web1: { address: 192.168.1.3 }'),
      '/etc/vipr/vipr.yaml:5:3: YAML: duplicate key "web1"; it is already set at line 4',
    ],
    [
      'server address with a leading zero',
      yaml(...PORTS, 'servers:', '  web1: { address: 192.168.1.02 }'),
      '/etc/vipr/vipr.yaml:4:20: servers.web1.address: "192.168.1.02" is not an IPv4 address: "02" has a leading zero (some tools read that as octal)',
    ],
    [
      'server without an address',
      yaml(...PORTS, 'servers:', '  web1: { adress: 192.168.1.2 }'),
      '/etc/vipr/vipr.yaml:4:11: servers.web1.adress: unknown key; did you mean "address"?',
    ],
    [
      'missing interfaces',
      yaml('# nothing but a comment and a log level', 'log: { level: info }'),
      '/etc/vipr/vipr.yaml:2:1: interfaces: required but missing; list at least one data-plane port, e.g. [{ name: eth1 }]',
    ],
    [
      'empty interface list',
      yaml('interfaces: []'),
      '/etc/vipr/vipr.yaml:1:13: interfaces: empty; list at least one data-plane port, e.g. [{ name: eth1 }]',
    ],
    [
      'interfaces with nothing after the colon',
      yaml('interfaces:', 'log: { level: info }'),
      '/etc/vipr/vipr.yaml:1:12: interfaces: expected a list, got an empty value',
    ],
    [
      'duplicate interface name',
      yaml('interfaces:', '  - name: lan0', '  - name: up0', '  - name: lan0'),
      '/etc/vipr/vipr.yaml:4:11: interfaces[2].name: "lan0" is already listed by interfaces[0] at line 2',
    ],
    [
      'interface name longer than IFNAMSIZ allows',
      yaml('interfaces:', '  - name: a-very-long-name0'),
      '/etc/vipr/vipr.yaml:2:11: interfaces[0].name: "a-very-long-name0" is not a valid interface name (1 to 15 characters from A-Z a-z 0-9 _ . : -)',
    ],
    [
      'interface MTU below the IPv4 minimum',
      yaml('interfaces:', '  - { name: lan0, mtu: 60 }'),
      '/etc/vipr/vipr.yaml:2:24: interfaces[0].mtu: expected a whole number from 68 to 9000, got 60',
    ],
    [
      'misspelt interface key',
      yaml('interfaces:', '  - { name: lan0, mut: 1500 }'),
      '/etc/vipr/vipr.yaml:2:19: interfaces[0].mut: unknown key; did you mean "mtu"?',
    ],
    [
      'batch size too large',
      yaml(...PORTS, 'dataplane:', '  batchSize: 5000'),
      '/etc/vipr/vipr.yaml:4:14: dataplane.batchSize: expected a whole number from 1 to 4096, got 5000',
    ],
    [
      'batch size not a whole number',
      yaml(...PORTS, 'dataplane:', '  batchSize: 25.5'),
      '/etc/vipr/vipr.yaml:4:14: dataplane.batchSize: expected a whole number from 1 to 4096, got 25.5',
    ],
    [
      'batch size as a string',
      yaml(...PORTS, 'dataplane:', '  batchSize: "256"'),
      '/etc/vipr/vipr.yaml:4:14: dataplane.batchSize: expected a whole number from 1 to 4096, got "256"',
    ],
    [
      'unknown key close to a known one',
      yaml(...PORTS, 'log:', '  lvel: debug'),
      '/etc/vipr/vipr.yaml:4:3: log.lvel: unknown key; did you mean "level"?',
    ],
    [
      'snake_case top-level key',
      yaml(...PORTS, 'kernel_forwarding: refuse'),
      '/etc/vipr/vipr.yaml:3:1: kernel_forwarding: unknown key; did you mean "kernelForwarding"?',
    ],
    [
      'British spelling',
      yaml(...PORTS, 'neighbours:', '  probes: 3'),
      '/etc/vipr/vipr.yaml:3:1: neighbours: unknown key; did you mean "neighbors"?',
    ],
    [
      'unknown key with no close match',
      yaml(...PORTS, 'icmp:', '  colour: blue'),
      '/etc/vipr/vipr.yaml:4:3: icmp.colour: unknown key; known keys are ratePerSecond, burst, perDestination',
    ],
    [
      'per-destination ICMP rate of 0',
      yaml(...PORTS, 'icmp:', '  perDestination: { ratePerSecond: 0 }'),
      '/etc/vipr/vipr.yaml:4:36: icmp.perDestination.ratePerSecond: expected a whole number from 1 to 1000000, got 0',
    ],
    [
      'a per-destination table without room',
      yaml(...PORTS, 'icmp:', '  perDestination:', '    maxDestinations: 0'),
      '/etc/vipr/vipr.yaml:5:22: icmp.perDestination.maxDestinations: expected a whole number from 1 to 1048576, got 0',
    ],
    [
      'per-destination misspelt',
      yaml(...PORTS, 'icmp:', '  perDestination: { brust: 6 }'),
      '/etc/vipr/vipr.yaml:4:21: icmp.perDestination.brust: unknown key; did you mean "burst"?',
    ],
    [
      'ARP request burst as text',
      yaml(...PORTS, 'neighbors: { requestBurst: lots }'),
      '/etc/vipr/vipr.yaml:3:28: neighbors.requestBurst: expected a whole number from 1 to 1000000, got "lots"',
    ],
    [
      'log level misspelt',
      yaml(...PORTS, 'log: { level: warning }'),
      '/etc/vipr/vipr.yaml:3:15: log.level: expected one of trace|debug|info|warn|error, got "warning"; did you mean "warn"?',
    ],
    [
      'io backend that does not exist',
      yaml(...PORTS, 'io: dpdk'),
      '/etc/vipr/vipr.yaml:3:5: io: expected one of ring|pcap|xdp|auto, got "dpdk"',
    ],
    [
      'xdp mode misspelt',
      yaml(...PORTS, 'io: xdp', 'xdp: { mode: zerocpy }'),
      '/etc/vipr/vipr.yaml:4:14: xdp.mode: expected one of auto|copy|zerocopy, got "zerocpy"; did you mean "zerocopy"?',
    ],
    [
      'xdp attach mode that does not exist',
      yaml(...PORTS, 'xdp: { attach: offload }'),
      '/etc/vipr/vipr.yaml:3:16: xdp.attach: expected one of auto|native|generic, got "offload"',
    ],
    [
      'xdp frames not a power of two',
      yaml(...PORTS, 'xdp: { frames: 3000 }'),
      '/etc/vipr/vipr.yaml:3:16: xdp.frames: expected a power of two (64, 128, ... 65536), got 3000',
    ],
    [
      'xdp frames out of range',
      yaml(...PORTS, 'xdp: { frames: 32 }'),
      '/etc/vipr/vipr.yaml:3:16: xdp.frames: expected a whole number from 64 to 65536, got 32',
    ],
    [
      'xdp key misspelt',
      yaml(...PORTS, 'xdp: { busypoll: true }'),
      '/etc/vipr/vipr.yaml:3:8: xdp.busypoll: unknown key; did you mean "busyPoll"?',
    ],
    [
      'section that is not a mapping',
      yaml(...PORTS, 'neighbors: 5'),
      '/etc/vipr/vipr.yaml:3:12: neighbors: expected a mapping (key: value), got 5',
    ],
    [
      'top level that is a list',
      yaml('- interfaces'),
      '/etc/vipr/vipr.yaml:1:1: (top level): expected a mapping (key: value), got a list',
    ],
    ['empty file', '', '/etc/vipr/vipr.yaml:1:1: the file is empty; at least "interfaces" is required'],
    [
      'YAML syntax error: unclosed flow sequence',
      yaml('interfaces: [{ name: lan0 }', 'log: { level: info }'),
      '/etc/vipr/vipr.yaml:2:1: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
    [
      'YAML syntax error: tab indentation',
      yaml('interfaces:', '\t- name: lan0'),
      '/etc/vipr/vipr.yaml:2:1: YAML: Tabs are not allowed as indentation',
    ],
    [
      'YAML syntax error: misaligned keys',
      yaml('neighbors:', '  probes: 3', ' queueLength: 64', ...PORTS),
      '/etc/vipr/vipr.yaml:3:1: YAML: All mapping items must start at the same column',
    ],
    [
      'YAML alias without an anchor',
      yaml(...PORTS, 'log: *defaults'),
      '/etc/vipr/vipr.yaml:3:6: YAML: alias *defaults has no anchor &defaults before it',
    ],
    [
      'two documents in one file',
      yaml(...PORTS, '---', ...PORTS),
      '/etc/vipr/vipr.yaml:3:1: YAML: Source contains multiple documents; please use YAML.parseAllDocuments()',
    ],
    [
      'the first problem in the file wins, whatever the schema order',
      yaml('dataplane: { batchSize: 0 }', 'log: { level: loud }', ...PORTS),
      '/etc/vipr/vipr.yaml:1:25: dataplane.batchSize: expected a whole number from 1 to 4096, got 0',
    ],
  ])('%s', (_name, text, message) => {
    const error = errorOf(text);
    expect(error.message).toBe(message);
    expect(error.message).not.toContain('\n');
    expect(error.code).toBe('ECONFIG');
    // The structured fields say the same as the message.
    const [, line, column, rest] = /^\/etc\/vipr\/vipr\.yaml:(\d+):(\d+): (.*)$/.exec(error.message) ?? [];
    expect(error.file).toBe(FILE);
    expect(error.line).toBe(Number(line));
    expect(error.column).toBe(Number(column));
    expect(rest).toBe(error.field === undefined ? error.reason : `${error.field}: ${error.reason}`);
  });
});

describe('loadConfig', () => {
  it('reports a file it cannot read as a ConfigError without a position', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'vipr-config-'));
    try {
      const missing = join(directory, 'missing.yaml');
      const error = await loadConfig(missing).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(
        `${missing}: cannot read the config file: ENOENT: no such file or directory, open '${missing}'`,
      );
      expect((error as ConfigError).line).toBeUndefined();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('names the file it was given in errors', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'vipr-config-'));
    try {
      const path = join(directory, 'vipr.yaml');
      await writeFile(path, yaml(...PORTS, 'offloads: off'));
      await expect(loadConfig(path)).rejects.toThrow(
        `${path}:3:11: offloads: expected one of disable|keep, got "off"`,
      );
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

// ---- health checks, next-hop lists and the health section ----------------------

describe('health checks and next-hop lists', () => {
  const SERVERS = ['servers:', '  web1: { address: 192.168.1.2 }', '  web2: { address: 192.168.1.3 }'];
  /** One server with the checks given, one per line, under `checks:`. */
  const checked = (...checks: string[]) => [...PORTS, 'servers:', '  web1:', '    address: 192.168.1.2', '    checks:', ...checks.map((c) => `      - ${c}`)];
  const HEALTH_DEFAULTS = DEFAULTS.health;

  it.each<[string, string, (config: Config) => unknown, unknown]>([
    [
      'checks with their defaults (http: port 80, path /, status 200) and per-check timing',
      yaml(...checked(
        'type: http',
        '{ type: tcp, port: 443, fall: 5 }',
        '{ type: arp }',
        '{ type: icmp, intervalMs: 200, timeoutMs: 100, rise: 1 }',
        '{ type: http, port: 8080, path: /health, host: www.example.com, status: 204, body: ok }',
      )),
      (config) => config.servers,
      [{
        name: 'web1',
        address: address('192.168.1.2'),
        checks: [
          { type: 'http', port: 80, path: '/', status: 200 },
          { type: 'tcp', port: 443, fall: 5 },
          { type: 'arp' },
          { type: 'icmp', intervalMs: 200, timeoutMs: 100, rise: 1 },
          { type: 'http', port: 8080, path: '/health', host: 'www.example.com', status: 204, body: 'ok' },
        ],
      }],
    ],
    [
      'a server without checks has an empty list',
      yaml(...PORTS, ...SERVERS),
      (config) => config.servers.map((s) => s.checks),
      [[], []],
    ],
    [
      'a via list keeps its order and mixes names and addresses',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web2, 192.168.1.9, web1] }'),
      (config) => config.routes[0].via,
      [{ server: 'web2', address: address('192.168.1.3') }, { address: address('192.168.1.9') }, { server: 'web1', address: address('192.168.1.2') }],
    ],
    [
      'a one-element via list is the same as a single next hop',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web1] }', '  - { prefix: 192.168.1.64/27, via: web1 }'),
      (config) => config.routes.map((r) => r.via),
      [[{ server: 'web1', address: address('192.168.1.2') }], [{ server: 'web1', address: address('192.168.1.2') }]],
    ],
    [
      'an empty health section is all defaults',
      yaml(...PORTS, 'health: {}'),
      (config) => config.health,
      HEALTH_DEFAULTS,
    ],
    [
      'every health setting at its bound',
      yaml(...PORTS, 'health:', '  intervalMs: 10', '  timeoutMs: 5', '  rise: 100', '  fall: 1', '  holdDownMs: 0', '  failback: manual', '  notify: /usr/local/bin/vipr-notify --quiet', '  notifyTimeoutMs: 100'),
      (config) => config.health,
      { intervalMs: 10, timeoutMs: 5, rise: 100, fall: 1, holdDownMs: 0, failback: 'manual', notify: '/usr/local/bin/vipr-notify --quiet', notifyTimeoutMs: 100 },
    ],
    [
      'health settings at their upper bounds',
      yaml(...PORTS, 'health: { intervalMs: 3600000, timeoutMs: 600000, rise: 1, fall: 100, holdDownMs: 86400000, notifyTimeoutMs: 600000 }'),
      (config) => config.health,
      { ...HEALTH_DEFAULTS, intervalMs: 3_600_000, timeoutMs: 600_000, rise: 1, fall: 100, holdDownMs: 86_400_000, notifyTimeoutMs: 600_000 },
    ],
  ])('%s', (_name, text, pick, expected) => {
    expect(pick(parseConfig(text, FILE))).toEqual(expected);
  });

  it.each<[string, string, string]>([
    [
      'unknown check type',
      yaml(...checked('{ type: udp, port: 53 }')),
      '/etc/vipr/vipr.yaml:7:17: servers.web1.checks[0].type: unknown check type; expected one of arp|icmp|tcp|http',
    ],
    [
      'tcp check without a port',
      yaml(...checked('{ type: tcp }')),
      '/etc/vipr/vipr.yaml:7:9: servers.web1.checks[0].port: required but missing',
    ],
    [
      'a key of another check type',
      yaml(...checked('{ type: tcp, port: 80, path: /x }')),
      '/etc/vipr/vipr.yaml:7:32: servers.web1.checks[0].path: unknown key; known keys are type, port, intervalMs, timeoutMs, rise, fall',
    ],
    [
      'http path without a leading slash',
      yaml(...checked('{ type: http, path: health }')),
      '/etc/vipr/vipr.yaml:7:29: servers.web1.checks[0].path: must start with /',
    ],
    [
      'http status out of range',
      yaml(...checked('{ type: http, status: 600 }')),
      '/etc/vipr/vipr.yaml:7:31: servers.web1.checks[0].status: expected a whole number from 100 to 599, got 600',
    ],
    [
      'check fall of 0',
      yaml(...checked('type: arp', '{ type: icmp, fall: 0 }')),
      '/etc/vipr/vipr.yaml:8:29: servers.web1.checks[1].fall: expected a whole number from 1 to 100, got 0',
    ],
    [
      'checks as a mapping, not a list',
      yaml(...PORTS, 'servers:', '  web1:', '    address: 192.168.1.2', '    checks: { type: arp }'),
      '/etc/vipr/vipr.yaml:6:13: servers.web1.checks: expected a list, got a mapping',
    ],
    [
      'unknown server in a via list points at its element',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web1, web3] }'),
      '/etc/vipr/vipr.yaml:7:44: routes[0].via[1]: unknown server "web3"; did you mean "web1"? (known servers: web1, web2)',
    ],
    [
      'unknown server in a block-style via list',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - prefix: 192.168.1.32/27', '    via:', '      - web1', '      - wbe2'),
      '/etc/vipr/vipr.yaml:10:9: routes[0].via[1]: unknown server "wbe2"; did you mean "web2"? (known servers: web1, web2)',
    ],
    [
      'the same server twice in a via list',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web1, web2, web1] }'),
      '/etc/vipr/vipr.yaml:7:50: routes[0].via[2]: "web1" is listed twice',
    ],
    [
      'the same address twice in a via list',
      yaml(...PORTS, 'routes:', '  - { prefix: 0.0.0.0/0, via: [10.0.0.254, 10.0.0.254] }'),
      '/etc/vipr/vipr.yaml:4:44: routes[0].via[1]: 10.0.0.254 is listed twice',
    ],
    [
      'a server and its own address in one via list',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web1, 192.168.1.2] }'),
      '/etc/vipr/vipr.yaml:7:44: routes[0].via[1]: 192.168.1.2 is listed twice: "web1" is 192.168.1.2',
    ],
    [
      'an address and then the server that has it',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [192.168.1.3, web2] }'),
      '/etc/vipr/vipr.yaml:7:51: routes[0].via[1]: "web2" is listed twice: "web2" is 192.168.1.3',
    ],
    [
      'empty via list',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [] }'),
      '/etc/vipr/vipr.yaml:7:37: routes[0].via: empty list; name at least one next hop',
    ],
    [
      'a bad address in a via list points at its element',
      yaml(...PORTS, ...SERVERS, 'routes:', '  - { prefix: 192.168.1.32/27, via: [web1, 127.0.0.1] }'),
      '/etc/vipr/vipr.yaml:7:44: routes[0].via[1]: 127.0.0.1 is a loopback address and cannot be a next hop',
    ],
    [
      'health interval below its bound',
      yaml(...PORTS, 'health: { intervalMs: 9 }'),
      '/etc/vipr/vipr.yaml:3:23: health.intervalMs: expected a whole number from 10 to 3600000, got 9',
    ],
    [
      'health interval above its bound',
      yaml(...PORTS, 'health: { intervalMs: 3600001 }'),
      '/etc/vipr/vipr.yaml:3:23: health.intervalMs: expected a whole number from 10 to 3600000, got 3600001',
    ],
    [
      'health interval not a whole number',
      yaml(...PORTS, 'health: { intervalMs: 100.5 }'),
      '/etc/vipr/vipr.yaml:3:23: health.intervalMs: expected a whole number from 10 to 3600000, got 100.5',
    ],
    [
      'health timeout below its bound',
      yaml(...PORTS, 'health: { timeoutMs: 4 }'),
      '/etc/vipr/vipr.yaml:3:22: health.timeoutMs: expected a whole number from 5 to 600000, got 4',
    ],
    [
      'rise of 0',
      yaml(...PORTS, 'health: { rise: 0 }'),
      '/etc/vipr/vipr.yaml:3:17: health.rise: expected a whole number from 1 to 100, got 0',
    ],
    [
      'fall above 100',
      yaml(...PORTS, 'health: { fall: 101 }'),
      '/etc/vipr/vipr.yaml:3:17: health.fall: expected a whole number from 1 to 100, got 101',
    ],
    [
      'negative hold-down',
      yaml(...PORTS, 'health: { holdDownMs: -1 }'),
      '/etc/vipr/vipr.yaml:3:23: health.holdDownMs: expected a whole number from 0 to 86400000, got -1',
    ],
    [
      'hold-down above a day',
      yaml(...PORTS, 'health: { holdDownMs: 86400001 }'),
      '/etc/vipr/vipr.yaml:3:23: health.holdDownMs: expected a whole number from 0 to 86400000, got 86400001',
    ],
    [
      'failback misspelt',
      yaml(...PORTS, 'health: { failback: automatic }'),
      '/etc/vipr/vipr.yaml:3:21: health.failback: expected one of auto|manual, got "automatic"; did you mean "auto"?',
    ],
    [
      'empty notify command',
      yaml(...PORTS, 'health: { notify: "" }'),
      '/etc/vipr/vipr.yaml:3:19: health.notify: empty; give a shell command, or leave notify out',
    ],
    [
      'notify as a number',
      yaml(...PORTS, 'health: { notify: 5 }'),
      '/etc/vipr/vipr.yaml:3:19: health.notify: expected a string, got 5',
    ],
    [
      'notify timeout below its bound',
      yaml(...PORTS, 'health: { notifyTimeoutMs: 99 }'),
      '/etc/vipr/vipr.yaml:3:28: health.notifyTimeoutMs: expected a whole number from 100 to 600000, got 99',
    ],
    [
      'health key without its unit',
      yaml(...PORTS, 'health: { holdDown: 5000 }'),
      '/etc/vipr/vipr.yaml:3:11: health.holdDown: unknown key; did you mean "holdDownMs"?',
    ],
  ])('%s', (_name, text, message) => {
    const error = errorOf(text);
    expect(error.message).toBe(message);
    expect(error.code).toBe('ECONFIG');
  });
});

describe('next-hop lists are shared between routes', () => {
  it('routes naming the same next hops, in the same order and the same way, get one list object', () => {
    const config = parseConfig(yaml(
      ...PORTS,
      'servers:',
      '  web1: { address: 192.168.1.2 }',
      '  web2: { address: 192.168.1.3 }',
      'routes:',
      '  - { prefix: 192.168.2.0/24, via: [web1, web2] }',
      '  - { prefix: 192.168.3.0/24, via: [web1, web2] }',
      '  - { prefix: 192.168.4.0/24, via: [web2, web1] }',
      '  - { prefix: 192.168.5.0/24, via: [192.168.1.2, web2] }',
      '  - { prefix: 192.168.6.0/24, via: [web1, web2] }',
    ), FILE);
    const [a, b, reversed, byAddress, c] = config.routes.map((r) => r.via);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(reversed).not.toBe(a);
    expect(byAddress).not.toBe(a); // web1 by address: the list says so, as `route show` will
    expect(a).toEqual([{ server: 'web1', address: address('192.168.1.2') }, { server: 'web2', address: address('192.168.1.3') }]);
    expect(byAddress).toEqual([{ address: address('192.168.1.2') }, { server: 'web2', address: address('192.168.1.3') }]);
  });
});
