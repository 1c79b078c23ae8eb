// How long a config takes to load (what `vipr check-config`, a start and a
// reload pay), and that it grows linearly with the file.
//
// Run: npx tsc -p tsconfig.json && node --expose-gc dist/bench/config-load.js [--scale 1]
//
//   servers    YAML with N servers (block style) and a route per server, N =
//              20,000 and 100,000 (the second is over the config file limit:
//              parsed directly, to show the cost per server is flat);
//   routes     YAML with N routes in flow style, N = 5,000 and 20,000 (about
//              the 1 MiB limit);
//   route file a route file of N routes beside a small YAML file, N = 100,000
//              and 1,000,000 (a full table).
// `--scale 0.1` runs everything at a tenth of the size (a smoke run).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_FILE_LIMIT, loadConfig, parseConfig } from '../src/config/load.js';
import { numberArg, runIfMain } from './lib/program.js';

const prefixOf = (i: number) => `${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;

function serversYaml(n: number): string {
  const lines = ['interfaces:', '  - name: lan0', 'servers:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}:`, `    address: 10.${(i >> 8) & 255}.${i & 255}.1`);
  lines.push('routes:');
  for (let i = 0; i < n; i++) lines.push(`  - prefix: ${prefixOf(i)}`, `    via: s${i}`);
  return `${lines.join('\n')}\n`;
}

function routesYaml(n: number): string {
  const lines = ['interfaces: [{ name: lan0 }]', 'servers:', '  web1: { address: 192.168.1.2 }', '  web2: { address: 192.168.1.3 }', 'routes:'];
  for (let i = 0; i < n; i++) lines.push(`  - { prefix: ${prefixOf(i)}, via: [web1, web2] }`);
  return `${lines.join('\n')}\n`;
}

function routeFile(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${prefixOf(i)} via ${i % 3 === 0 ? 'web1,web2' : i % 3 === 1 ? 'web2' : '192.168.1.9'}`);
  return `${lines.join('\n')}\n`;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function report(what: string, n: number, bytes: number, ms: number): void {
  const limit = bytes > CONFIG_FILE_LIMIT && what.startsWith('YAML') ? ' (over the config file limit: parsed directly)' : '';
  console.log(
    `config-load: ${what}, ${n.toLocaleString('en')} × ${(bytes / 1024 / 1024).toFixed(1)} MiB: ${ms.toFixed(0)} ms, ` +
      `${((ms * 1000) / n).toFixed(1)} µs each, peak RSS so far ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB${limit}`,
  );
}

async function main(): Promise<number> {
  const flag = process.argv.indexOf('--scale');
  const scale = flag < 0 ? 1 : numberArg('--scale', process.argv[flag + 1], 0.001, 10);
  const size = (n: number) => Math.max(10, Math.round(n * scale));
  parseConfig(serversYaml(size(1000)), 'warm.yaml'); // warm-up

  for (const n of [size(20_000), size(100_000)]) {
    const text = serversYaml(n);
    gc();
    const start = performance.now();
    parseConfig(text, 'servers.yaml');
    report('YAML servers (and a route each)', n, text.length, performance.now() - start);
  }
  for (const n of [size(5_000), size(20_000)]) {
    const text = routesYaml(n);
    gc();
    const start = performance.now();
    parseConfig(text, 'routes.yaml');
    report('YAML routes', n, text.length, performance.now() - start);
  }
  const dir = await mkdtemp(join(tmpdir(), 'vipr-bench-config-'));
  try {
    const config = join(dir, 'vipr.yaml');
    await writeFile(config, routesYaml(0).replace('routes:', 'routeFiles: [full.routes]'));
    for (const n of [size(100_000), size(1_000_000)]) {
      const text = routeFile(n);
      await writeFile(join(dir, 'full.routes'), text);
      gc();
      const start = performance.now();
      const loaded = await loadConfig(config);
      if (loaded.routes.length !== n) throw new Error(`expected ${n} routes, got ${loaded.routes.length}`);
      report('route file', n, text.length, performance.now() - start);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return 0;
}

runIfMain(import.meta.url, 'config-load', main);
