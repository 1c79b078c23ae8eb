// Fuzzing the config loader: the shipped configs, mutated the ways a hand
// edit or a broken generator would (bytes changed, lines deleted or doubled,
// indentation shifted, values swapped, YAML punctuation dropped in), always
// load or give exactly one `FILE:LINE:COL: field: what` line: never a stack
// trace, never another kind of exception. Bounded in runs and in time.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { parseRouteFile, RoutedPrefixes } from '../../src/config/route-file.js';
import type { RouteConfig } from '../../src/config/types.js';

const FILE = '/etc/vipr/vipr.yaml';
const SOURCES = ['../../lab/vipr.yaml', '../../packaging/vipr.yaml'].map((path) => ({
  name: path.replace('../../', ''),
  text: readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8'),
}));

/** Bytes worth trying: YAML syntax, quotes, control bytes, NUL, high bytes, digits and letters. */
const INTERESTING = [...':-[]{},#&*!|>\'"%@`?\t\n\r \0\x7f\xa0\u2028', ...'0123456789./abcz'];
const SNIPPETS = ['&a ', '*a', '!!int ', '!!str ', '!!binary ', '!!set ', '<<: *a', '? ', '- ', '{', '[', '"', "'", '|', '>-', '~', 'null', '1e999', '0x1F', '-1', '.inf', '__proto__: {}', 'constructor: 1', '%YAML 1.1\n---\n', '---\n', '...\n'];

type Mutation = (text: string) => string;

const lineMutation = (edit: (lines: string[], at: number) => void) =>
  fc.nat().map((position): Mutation => (text) => {
    const lines = text.split('\n');
    edit(lines, position % lines.length);
    return lines.join('\n');
  });

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // A byte replaced.
  fc.tuple(fc.nat(), fc.constantFrom(...INTERESTING)).map(([position, byte]): Mutation => (text) => {
    const at = position % (text.length + 1);
    return text.slice(0, at) + byte + text.slice(at + 1);
  }),
  // A byte inserted, or a character of any kind.
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...INTERESTING), fc.string({ minLength: 1, maxLength: 3, unit: 'binary' }))).map(([position, inserted]): Mutation => (text) => {
    const at = position % (text.length + 1);
    return text.slice(0, at) + inserted + text.slice(at);
  }),
  // A YAML construct dropped in.
  fc.tuple(fc.nat(), fc.constantFrom(...SNIPPETS)).map(([position, snippet]): Mutation => (text) => {
    const at = position % (text.length + 1);
    return text.slice(0, at) + snippet + text.slice(at);
  }),
  // A line deleted, doubled, or indented differently.
  lineMutation((lines, at) => void lines.splice(at, 1)),
  lineMutation((lines, at) => void lines.splice(at, 0, lines[at])),
  fc.tuple(fc.nat(), fc.integer({ min: -4, max: 4 })).map(([position, shift]): Mutation => (text) => {
    const lines = text.split('\n');
    const at = position % lines.length;
    lines[at] = shift >= 0 ? ' '.repeat(shift) + lines[at] : lines[at].replace(new RegExp(`^ {0,${-shift}}`), '');
    return lines.join('\n');
  }),
  // Two values swapped (`key: a` and `other: b` become `key: b` and `other: a`).
  fc.tuple(fc.nat(), fc.nat()).map(([first, second]): Mutation => (text) => {
    const lines = text.split('\n');
    const valued = lines.flatMap((line, i) => (/^\s*[-\w]+:\s*\S/.test(line) && !line.trimStart().startsWith('#') ? [i] : []));
    if (valued.length < 2) return text;
    const a = valued[first % valued.length];
    const b = valued[second % valued.length];
    const split = (line: string) => /^(\s*[-\w]+:\s*)(.*)$/.exec(line)!;
    const [, keyA, valueA] = split(lines[a]);
    const [, keyB, valueB] = split(lines[b]);
    lines[a] = keyA + valueB;
    lines[b] = keyB + valueA;
    return lines.join('\n');
  }),
);

/** Runs the loader; undefined when it accepts the file, else the one line it gave. Any other exception fails the property. */
function outcome(text: string): string | undefined {
  try {
    parseConfig(text, FILE);
    return undefined;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw new Error(`not a ConfigError: ${error instanceof Error ? error.stack : String(error)}`);
    return error.message;
  }
}

const ONE_LINE = /^\/etc\/vipr\/vipr\.yaml:(\d+):(\d+): (?:([^:\s]+): )?(.+)$/;

function checkMessage(message: string, text: string): void {
  expect(message).not.toMatch(/[\r\n\u2028\u2029]/);
  const match = ONE_LINE.exec(message);
  expect(match, message).not.toBeNull();
  const [, line, column, , what] = match!;
  expect(Number(line)).toBeGreaterThanOrEqual(1);
  expect(Number(line)).toBeLessThanOrEqual(text.split('\n').length + 1);
  expect(Number(column)).toBeGreaterThanOrEqual(1);
  expect(what.trim().length).toBeGreaterThan(0);
  expect(message).not.toMatch(/\n\s+at |\[object Object\]|undefined: /);
}

describe('config loader fuzzing', () => {
  it.each(SOURCES)('$name as shipped loads', ({ text }) => {
    expect(outcome(text)).toBeUndefined();
  });

  it.each(SOURCES)('$name mutated: loads, or one FILE:LINE:COL: field: what line', ({ text }) => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const mutated = mutations.reduce((current, mutate) => mutate(current), text);
        const message = outcome(mutated);
        if (message !== undefined) checkMessage(message, mutated);
      }),
      { numRuns: 600, seed: 20261125, interruptAfterTimeLimit: 20_000, endOnFailure: true },
    );
  });

  it('any text at all (short random strings, YAML snippets glued together)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200, unit: 'binary' }), fc.array(fc.constantFrom(...SNIPPETS, ...INTERESTING), { maxLength: 40 }).map((parts) => parts.join(''))), (text) => {
        const message = outcome(text);
        if (message !== undefined) checkMessage(message, text);
      }),
      { numRuns: 1000, seed: 7, interruptAfterTimeLimit: 10_000 },
    );
  });
});

describe('route file fuzzing', () => {
  const ROUTES = ['203.0.113.0/24 via web1, web2', '198.51.100.0/24 via 192.168.1.9 # upstream', '', '192.168.1.64 255.255.255.224 via web2', '192.0.2.0/24 blackhole', '10.0.0.0/8 unreachable'].join('\n') + '\n';
  it('mutated lines: parsed, or one FILE:LINE:COL: field: what line', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const text = mutations.reduce((current, mutate) => mutate(current), ROUTES);
        const routes: RouteConfig[] = [];
        try {
          parseRouteFile(text, '/etc/vipr/t.routes', { servers: new Map([['web1', 0xc0a80102], ['web2', 0xc0a80103]]), routes, routed: new RoutedPrefixes(routes, FILE) });
        } catch (error) {
          if (!(error instanceof ConfigError)) throw new Error(`not a ConfigError: ${error instanceof Error ? error.stack : String(error)}`);
          expect(error.message).toMatch(/^\/etc\/vipr\/t\.routes:\d+:\d+: [a-z]+: [^\n]+$/);
        }
      }),
      { numRuns: 1000, seed: 11, interruptAfterTimeLimit: 10_000 },
    );
  });
});
