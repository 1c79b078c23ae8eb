// Route files: the full-table companion of the YAML config, one route per line.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, readLimited } from '../../src/config/load.js';
import { parseAddress, parsePrefix } from '../../src/util/ipv4.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-route-file-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const YAML = [
  'interfaces: [{ name: lan0 }]',
  'servers:',
  '  web1: { address: 192.168.1.2 }',
  '  web2: { address: 192.168.1.3 }',
  'routes:',
  '  - { prefix: 192.168.1.32/27, via: web1 }',
  'routeFiles: [full.routes]',
].join('\n') + '\n';

/** A config in a temp dir with `full.routes` beside it; returns the config path. */
async function withRouteFile(routes: string, yaml = YAML): Promise<{ config: string; routeFile: string }> {
  const dir = await tempDir();
  const config = join(dir, 'vipr.yaml');
  const routeFile = join(dir, 'full.routes');
  await writeFile(config, yaml);
  await writeFile(routeFile, routes);
  return { config, routeFile };
}

async function errorOf(routes: string, yaml = YAML): Promise<{ message: string; routeFile: string; config: string }> {
  const { config, routeFile } = await withRouteFile(routes, yaml);
  const error = await loadConfig(config).catch((caught: unknown) => caught);
  if (!(error instanceof ConfigError)) throw new Error(`expected a ConfigError, got ${String(error)}`);
  expect(error.message).not.toMatch(/\n/);
  return { message: error.message, routeFile, config };
}

describe('route files', () => {
  it('routes come after the YAML ones, with their file and line; same next hops share one list', async () => {
    const { config: path, routeFile } = await withRouteFile([
      '# a comment line, then a blank one',
      '',
      '203.0.113.0/24   via 192.168.1.9',
      '198.51.100.0/24  via web1, web2   # primary, backup',
      '198.51.101.0/24  via web1,web2',
      '192.168.1.64 255.255.255.224 via web2',
      '192.0.2.0/24 blackhole',
      '192.168.1.0/24 unreachable',
      '10.9.9.9 via web1', // a bare address is a /32
    ].join('\n'));
    const config = await loadConfig(path);
    expect(config.routeFiles).toEqual([routeFile]);
    expect(config.routes.map((r) => [r.prefix, r.type, r.via, r.sourceLine, r.sourceFile])).toEqual([
      [parsePrefix('192.168.1.32/27'), 'unicast', [{ server: 'web1', address: parseAddress('192.168.1.2') }], 6, undefined],
      [parsePrefix('203.0.113.0/24'), 'unicast', [{ address: parseAddress('192.168.1.9') }], 3, routeFile],
      [parsePrefix('198.51.100.0/24'), 'unicast', [{ server: 'web1', address: parseAddress('192.168.1.2') }, { server: 'web2', address: parseAddress('192.168.1.3') }], 4, routeFile],
      [parsePrefix('198.51.101.0/24'), 'unicast', [{ server: 'web1', address: parseAddress('192.168.1.2') }, { server: 'web2', address: parseAddress('192.168.1.3') }], 5, routeFile],
      [parsePrefix('192.168.1.64/27'), 'unicast', [{ server: 'web2', address: parseAddress('192.168.1.3') }], 6, routeFile],
      [parsePrefix('192.0.2.0/24'), 'blackhole', [], 7, routeFile],
      [parsePrefix('192.168.1.0/24'), 'unreachable', [], 8, routeFile],
      [parsePrefix('10.9.9.9/32'), 'unicast', [{ server: 'web1', address: parseAddress('192.168.1.2') }], 9, routeFile],
    ]);
    expect(config.routes[3].via).toBe(config.routes[2].via);
  });

  it('an absolute path is taken as it is', async () => {
    const dir = await tempDir();
    const routeFile = join(dir, 'elsewhere.routes');
    await writeFile(routeFile, '203.0.113.0/24 via 192.168.1.9\n');
    const { config } = await withRouteFile('', YAML.replace('[full.routes]', `[${routeFile}]`));
    expect((await loadConfig(config)).routes.at(-1)!.sourceFile).toBe(routeFile);
  });

  const bad: [string, string, string][] = [
    ['host bits', '203.0.113.1/24 via web1', '1:1: prefix: 203.0.113.1/24 has host bits set; did you mean 203.0.113.0/24?'],
    ['no target', '203.0.113.0/24', '1:1: via: required but missing: `via NEXTHOP[,NEXTHOP...]`, `unreachable` or `blackhole` after the prefix'],
    ['a word other than via', '203.0.113.0/24 to web1', '1:16: via: expected `via`, `unreachable` or `blackhole` after the prefix, not `to`'],
    ['unknown server', '203.0.113.0/24 via web1,wbe2', '1:25: via: unknown server "wbe2"; did you mean "web2"? (known servers: web1, web2)'],
    ['trailing comma', '203.0.113.0/24 via web1,', '1:25: via: empty next hop after `web1,`: a comma must be followed by a next hop'],
    ['two commas', '203.0.113.0/24 via web1,,web2', '1:25: via: empty next hop after `web1,`: a comma must be followed by a next hop'],
    ['leading comma', '203.0.113.0/24 via ,web1', '1:19: via: empty next hop before the first comma: a comma must follow a next hop'],
    ['via and nothing', '203.0.113.0/24 via   # nothing', '1:16: via: `via` needs at least one next hop (a server name or an address)'],
    ['listed twice', '203.0.113.0/24 via web1 192.168.1.2', '1:25: via: 192.168.1.2 is listed twice: "web1" is 192.168.1.2'],
    ['a loopback next hop', '203.0.113.0/24 via 127.0.0.1', '1:20: via: 127.0.0.1 is a loopback address and cannot be a next hop'],
    ['bad address', '203.0.113.0/24 via 192.168.1.300', '1:20: via: "192.168.1.300" is not an IPv4 address: 300 is greater than 255'],
    ['junk for a next hop', '203.0.113.0/24 via Web!', '1:20: via: `Web!` is neither a server name nor an IPv4 address'],
    ['words after blackhole', '203.0.113.0/24 blackhole now', '1:26: blackhole: unexpected `now` after `blackhole`'],
    ['the same prefix twice', '203.0.113.0/24 via web1\n\n203.0.113.0/24 via web2', '3:1: prefix: 203.0.113.0/24 is already routed at ROUTES:1'],
    ['a prefix of the YAML file', '192.168.1.32/27 via web2', '1:1: prefix: 192.168.1.32/27 is already routed at CONFIG:6'],
  ];
  it.each(bad)('%s: one line, FILE:LINE:COL: field: what', async (_what, routes, expected) => {
    const { message, routeFile, config } = await errorOf(routes);
    expect(message).toBe(`${routeFile}:${expected.replace('ROUTES', routeFile).replace('CONFIG', config)}`);
  });

  it('a route file that cannot be read is reported at its routeFiles entry', async () => {
    const { config } = await withRouteFile('', YAML.replace('[full.routes]', '[full.routes, missing.routes]'));
    const error = await loadConfig(config).catch((caught: unknown) => caught) as ConfigError;
    expect(error.message).toMatch(new RegExp(`^${config}:7:27: routeFiles\\[1\\]: .*missing\\.routes: cannot read the route file: ENOENT`));
  });
});

describe('readLimited', () => {
  it('refuses a file over its limit without reading it, naming size and limit', async () => {
    const dir = await tempDir();
    const file = join(dir, 'big');
    await writeFile(file, 'x'.repeat(3 * 1024 * 1024 + 5));
    await expect(readLimited(file, 2 * 1024 * 1024, 'route file', 'split it')).rejects.toThrow(
      `${file}: the file is 3.0 MiB (3145733 bytes), over the 2 MiB limit for a route file; split it`,
    );
    expect(await readLimited(file, 4 * 1024 * 1024, 'route file', 'split it')).toHaveLength(3 * 1024 * 1024 + 5);
  });
});
