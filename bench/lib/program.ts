// What every bench program does the same way: run its main when it is the
// script node was started with, read number flags, refuse to start where a lab
// bench cannot run.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { teardownAllSync, VIPR_CLI } from '../../lab/lib/lab.js';

/** Is the module at `moduleUrl` the script node was started with? */
export function isMain(moduleUrl: string): boolean {
  return process.argv[1] !== undefined && moduleUrl === pathToFileURL(resolve(process.argv[1])).href;
}

/** Runs a bench's main when its file is the script node was started with; labs down, then exit with its code. */
export function runIfMain(moduleUrl: string, name: string, main: () => Promise<number>): void {
  if (!isMain(moduleUrl)) return;
  main().then(
    (code) => {
      teardownAllSync();
      process.exit(code);
    },
    (error) => {
      process.stderr.write(`${name}: ${(error as Error).stack ?? error}\n`);
      teardownAllSync();
      process.exit(1);
    },
  );
}

/** A number from a bench's command line, in min..max; throws naming the flag otherwise. */
export function numberArg(name: string, value: string | undefined, min: number, max: number): number {
  const x = Number(value);
  if (value === undefined || !Number.isFinite(x) || x < min || x > max) throw new Error(`${name} must be a number in ${min}..${max}`);
  return x;
}

/** A comma-separated list of known names from a bench's command line; throws naming the unknown ones. */
export function listArg<T extends string>(name: string, value: string | undefined, known: readonly T[]): T[] {
  const items = (value ?? '').split(',').map((m) => m.trim()).filter(Boolean) as T[];
  const bad = items.filter((m) => !known.includes(m));
  if (bad.length || items.length === 0) throw new Error(`${name}: unknown ${bad.join(', ') || '(none)'}; known: ${known.join(', ')}`);
  return items;
}

/** Why a lab bench cannot run here (not root, vipr not built), or undefined. */
export function labBenchRefusal(): string | undefined {
  if (process.getuid?.() !== 0) return 'must run as root (network namespaces)';
  if (!existsSync(VIPR_CLI)) return `${VIPR_CLI} missing; build first: npx tsc -p tsconfig.json`;
  return undefined;
}

/** Text tables: the first column left-aligned, the others right-aligned. */
export function pad(rows: string[][], gap = '  '): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? (c ?? '').padEnd(widths[i]) : (c ?? '').padStart(widths[i]))).join(gap)).join('\n');
}

export const round = (x: number, digits = 0): number => Math.round(x * 10 ** digits) / 10 ** digits;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
