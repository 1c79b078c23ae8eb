// Big config files: refused over the size limit with one line, and parsed in
// work that grows with the file, not its square (checked by counting work,
// not by timing it; the speed itself is in bench/config-load.ts).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { CONFIG_FILE_LIMIT, loadConfig, parseConfig } from '../../src/config/load.js';
import { countWork } from '../work-meter.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-config-scale-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const FILE = '/etc/vipr/vipr.yaml';

/** n servers (10.x.y.z) and one route per server, in the block style an operator's generator would write. */
function bigConfig(n: number, options: { serverAddress?: (i: number) => string; via?: (i: number) => string } = {}): string {
  const address = options.serverAddress ?? ((i: number) => `10.${(i >> 8) & 255}.${i & 255}.1`);
  const via = options.via ?? ((i: number) => `s${i}`);
  const lines = ['interfaces:', '  - name: lan0', 'servers:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}:`, `    address: ${address(i)}`);
  lines.push('routes:');
  for (let i = 0; i < n; i++) lines.push(`  - prefix: 100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, `    via: ${via(i)}`);
  return `${lines.join('\n')}\n`;
}

function parseOrError(text: string): unknown {
  try {
    return parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
}

async function work(text: string): Promise<number> {
  return countWork(() => parseOrError(text));
}

describe('config file size', () => {
  it(`a file over ${CONFIG_FILE_LIMIT / 1024 / 1024} MiB is refused in one line before it is parsed`, async () => {
    const dir = await tempDir();
    const path = join(dir, 'vipr.yaml');
    const padding = `# ${'x'.repeat(98)}\n`.repeat(Math.ceil(CONFIG_FILE_LIMIT / 100) + 10);
    await writeFile(path, `interfaces:\n  - name: lan0\n${padding}`);
    const error = await loadConfig(path).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(
      new RegExp(`^${path.replace(/[.]/g, '\\.')}: the file is 1\\.0 MiB \\(\\d+ bytes\\), over the 1 MiB limit for a config file; big route tables go in routeFiles`),
    );
    expect((error as ConfigError).message).not.toMatch(/\n/);
  });

  it('a file just under the limit is read', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vipr.yaml');
    const head = 'interfaces:\n  - name: lan0\n';
    await writeFile(path, head + '#'.repeat(CONFIG_FILE_LIMIT - head.length - 1) + '\n');
    expect((await loadConfig(path)).interfaces).toEqual([{ name: 'lan0' }]);
  });
});

describe('parsing work grows linearly with the file', () => {
  it('8x the servers and routes: at most 16x the work', async () => {
    const small = await work(bigConfig(250));
    const large = await work(bigConfig(2000));
    expect(parseOrError(bigConfig(2000))).not.toBeInstanceOf(ConfigError);
    expect(large / small).toBeLessThan(16);
  });

  it('every route naming an unknown server: linear, and the one error line stays short', async () => {
    const unknown = (n: number) => bigConfig(n, { via: (i) => `t${i}` });
    const small = await work(unknown(250));
    const large = await work(unknown(2000));
    expect(large / small).toBeLessThan(16);
    const error = parseOrError(unknown(2000)) as ConfigError;
    expect(error.message).toMatch(/^\/etc\/vipr\/vipr\.yaml:\d+:\d+: routes\[0\]\.via: unknown server "t0"/);
    expect(error.message.length).toBeLessThan(300);
  });

  it('every server with a bad address: linear, the first one reported', async () => {
    const bad = (n: number) => bigConfig(n, { serverAddress: (i) => `10.0.${i}.300` });
    const small = await work(bad(250));
    const large = await work(bad(2000));
    expect(large / small).toBeLessThan(16);
    expect((parseOrError(bad(2000)) as ConfigError).message).toMatch(/^\/etc\/vipr\/vipr\.yaml:5:14: servers\.s0\.address: /);
  });

  it('a duplicate key deep in a big mapping is still found, naming the first one', () => {
    const text = bigConfig(2000).replace('  s1999:\n', '  s7:\n');
    expect((parseOrError(text) as ConfigError).message).toMatch(/: YAML: duplicate key "s7"; it is already set at line 18$/);
  });
});
