// Reads the YAML config, checks it against the schema, reads the route files
// it names and returns the typed Config, or throws one ConfigError pointing
// at the first problem in the file.
//
// zod knows paths (`routes[2].prefix`), YAML knows positions; the document
// tree joins the two so every message says FILE:LINE:COL.

import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.js';
import { configErrorMap, configSchema, type ConfigIssueParams } from './schema.js';
import { interfaceAddressProblem, readInterfaceAddresses, type InterfaceAddresses, type InterfaceAddressReader } from './interfaces.js';
import { parseRouteFile, ROUTE_FILE_LIMIT, RoutedPrefixes } from './route-file.js';
import type { Config } from './types.js';

/**
 * The largest config file read. YAML costs far more than its size to parse
 * (a node with its position per value: about 250 bytes of memory and 70 µs of
 * CPU per route on a 2-core box), and a reload parses it inside the daemon. 1 MiB
 * holds about 20,000 routes in flow style (`- { prefix: ..., via: [...] }`,
 * ~50 bytes each) and parses in about 1.5 s and 250 MB; the article's own
 * file is 3 KB. A full table (1M routes would be ~50 MB of YAML, ~1 GB and a
 * minute to parse) goes in route files, one route per line (route-file.ts).
 */
export const CONFIG_FILE_LIMIT = 1024 * 1024;

export interface LoadOptions {
  /**
   * Where the box's interface addresses come from, to refuse servers and
   * next hops on the router's own, network or broadcast addresses: `ip -j
   * addr` by default; null to judge the file alone (a file for another box).
   */
  interfaceAddresses?: InterfaceAddressReader | null;
}

export async function loadConfig(path: string, options: LoadOptions = {}): Promise<Config> {
  const text = await readLimited(path, CONFIG_FILE_LIMIT, 'config file', 'big route tables go in routeFiles (one route per line, see the README)');
  const parsed = parseConfigDocument(text, path);
  const reader = options.interfaceAddresses === undefined ? readInterfaceAddresses : options.interfaceAddresses;
  const box = reader ? await reader(parsed.config.interfaces.map((i) => i.name)) : undefined;
  const problem = box && interfaceAddressProblem(parsed.config, box);
  if (problem) throw parsed.errorAt(problem.field, problem.message);
  await readRouteFiles(parsed, box);
  return parsed.config;
}

/** Appends each route file's routes to the config's (a file that cannot be read is reported at its routeFiles entry). */
async function readRouteFiles({ config, errorAt }: ParsedDocument, interfaces: InterfaceAddresses | undefined): Promise<void> {
  if (config.routeFiles.length === 0) return;
  const servers = new Map(config.servers.map((s) => [s.name, s.address]));
  const routed = new RoutedPrefixes(config.routes, errorAt.file);
  for (const [i, file] of config.routeFiles.entries()) {
    let text: string;
    try {
      text = await readLimited(file, ROUTE_FILE_LIMIT, 'route file', 'split the table over several route files');
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw errorAt(['routeFiles', i], `${file}: ${error.reason}`);
    }
    parseRouteFile(text, file, { servers, routes: config.routes, routed, interfaces });
  }
}

/** Reads a whole text file, refusing one over `limit` bytes without reading it. */
export async function readLimited(path: string, limit: number, what: string, hint: string): Promise<string> {
  const fail = (reason: string): never => {
    throw new ConfigError({ file: path }, reason);
  };
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    return fail(`cannot read the ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    const tooBig = (size: number) =>
      fail(`the file is ${(size / 1024 / 1024).toFixed(1)} MiB (${size} bytes), over the ${limit / 1024 / 1024} MiB limit for a ${what}; ${hint}`);
    const { size } = await handle.stat();
    if (size > limit) tooBig(size);
    // Read at most one byte past the limit: a file that grew since stat() is caught too.
    const buffer = Buffer.alloc(Math.min(size, limit) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) {
        if (length > limit) tooBig(length);
        break;
      }
    }
    return buffer.toString('utf8', 0, length);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    return fail(`cannot read the ${what}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await handle.close();
  }
}

/**
 * The YAML file alone (its routeFiles are named, not read: loadConfig reads
 * them). `path` is used in messages and to resolve relative route files.
 */
export function parseConfig(text: string, path: string): Config {
  return parseConfigDocument(text, path).config;
}

/** A parsed config and a way to point at any of its fields, for checks made after parsing. */
export interface ParsedDocument {
  config: Config;
  errorAt: ((field: readonly PropertyKey[], reason: string) => ConfigError) & { file: string };
}

export function parseConfigDocument(text: string, path: string): ParsedDocument {
  const lineCounter = new LineCounter();
  // Duplicate keys are found below, in one pass: the yaml library's own check
  // compares each key with every earlier one of its mapping (quadratic in a
  // mapping of 20,000 servers).
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  const at = (offset: number, field?: string, reason = '') => {
    const { line, col } = lineCounter.linePos(offset);
    return new ConfigError({ file: path, line, column: col, field }, reason);
  };

  // Warnings too: an unresolved tag such as `!!int x` means the file does not
  // say what its author thinks it says.
  const yamlProblem = doc.errors[0] ?? doc.warnings[0];
  if (yamlProblem !== undefined) throw at(yamlProblem.pos[0], undefined, `YAML: ${yamlProblem.message}`);
  const duplicate = findDuplicateKey(doc);
  if (duplicate !== undefined) {
    const line = lineCounter.linePos(duplicate.firstOffset).line;
    throw at(duplicate.offset, undefined, `YAML: duplicate key ${JSON.stringify(duplicate.key)}; it is already set at line ${line}`);
  }
  const badAlias = findUnresolvedAlias(doc);
  if (badAlias !== undefined) {
    throw at(badAlias.offset, undefined, `YAML: alias *${badAlias.name} has no anchor &${badAlias.name} before it`);
  }
  if (doc.contents === null) throw at(0, undefined, 'the file is empty; at least "interfaces" is required');

  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // e.g. "Excessive alias count": the yaml library's guard against alias bombs.
    throw at(0, undefined, `YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const result = configSchema.safeParse(data, { error: configErrorMap });
  if (!result.success) throw firstIssueError(result.error.issues, doc, lineCounter, at);

  const routes = result.data.routes.map((route, i) => ({
    ...route,
    sourceLine: lineCounter.linePos(locate(doc, ['routes', i]).offset).line,
  }));
  const routeFiles = result.data.routeFiles.map((file) => resolve(dirname(path), file));
  const errorAt = Object.assign(
    (field: readonly PropertyKey[], reason: string) => {
      // `via: 10.0.0.1` is the one next hop that a list would hold at [0].
      const shown = !locate(doc, field).found && typeof field.at(-1) === 'number' ? field.slice(0, -1) : field;
      return at(locate(doc, shown).offset, formatFieldPath(shown), reason);
    },
    { file: path },
  );
  return { config: { ...result.data, routes, routeFiles }, errorAt };
}

/** The first key (in file order) that repeats an earlier key of its mapping, and where that earlier one is. */
function findDuplicateKey(doc: Document): { key: string; offset: number; firstOffset: number } | undefined {
  let found: { key: string; offset: number; firstOffset: number } | undefined;
  visit(doc, {
    Map(_key, map) {
      const seen = new Map<string, number>();
      for (const pair of map.items) {
        const key = keyText(pair.key);
        const offset = rangeStart(pair.key) ?? 0;
        const first = seen.get(key);
        if (first === undefined) seen.set(key, offset);
        // Mappings are visited outside-in, so a later mapping's duplicate may come earlier in the file.
        else if (found === undefined || offset < found.offset) found = { key, offset, firstOffset: first };
      }
    },
  });
  return found;
}

function keyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function findUnresolvedAlias(doc: Document): { name: string; offset: number } | undefined {
  let found: { name: string; offset: number } | undefined;
  visit(doc, {
    Alias(_key, alias) {
      if (alias.resolve(doc) === undefined) {
        found = { name: alias.source, offset: alias.range?.[0] ?? 0 };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return found;
}

/** `routes[2].prefix`, `servers.web1.address`, `(top level)`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(segment))) out += `${out === '' ? '' : '.'}${String(segment)}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out === '' ? '(top level)' : out;
}

interface Located {
  /** Where to point: the value, the key, or the nearest enclosing node that exists. */
  offset: number;
  /** False when the path does not exist in the file (a missing field). */
  found: boolean;
  /** For a missing field: where the enclosing node ends. */
  enclosingEnd?: number;
}

/**
 * Walks the YAML tree along a zod path. A missing field points at the mapping
 * that should hold it; `at: 'key'` points at the key rather than its value.
 */
function locate(doc: Document, path: readonly PropertyKey[], at?: 'key'): Located {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const segment = path[i];
    let next: unknown;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = pairsByKey(node).get(String(segment));
      if (pair !== undefined) {
        next = pair.value;
        keyOffset = rangeStart(pair.key);
      }
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (next === undefined && keyOffset === undefined) {
      return { offset, found: false, enclosingEnd: (node as Node | null | undefined)?.range?.[1] };
    }
    const last = i === path.length - 1;
    offset = (last && at === 'key' ? keyOffset : rangeStart(next)) ?? keyOffset ?? offset;
    node = next;
  }
  return { offset, found: true };
}

/** A mapping's pairs by key, made once per mapping: locating every issue of a 20,000-server file stays linear. */
const pairIndexes = new WeakMap<YAMLMap, Map<string, Pair>>();

function pairsByKey(map: YAMLMap): Map<string, Pair> {
  let index = pairIndexes.get(map);
  if (!index) {
    index = new Map();
    for (const pair of map.items) {
      const key = keyText(pair.key);
      if (!index.has(key)) index.set(key, pair as Pair);
    }
    pairIndexes.set(map, index);
  }
  return index;
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0];
}

function firstIssueError(
  issues: readonly z.core.$ZodIssue[],
  doc: Document,
  lineCounter: LineCounter,
  at: (offset: number, field?: string, reason?: string) => ConfigError,
): ConfigError {
  const located = issues.map((issue) => {
    let path: PropertyKey[] = [...issue.path];
    let message = issue.message;
    let pointAt: 'key' | undefined;
    const params = (issue.code === 'custom' ? issue.params : undefined) as ConfigIssueParams | undefined;
    if (issue.code === 'unrecognized_keys') {
      path = [...path, issue.keys[0]];
      pointAt = 'key';
    } else if (issue.code === 'invalid_key') {
      // A bad server name: the message is the name check's, the place is the key.
      message = issue.issues[0]?.message ?? message;
      pointAt = 'key';
    }
    if (params?.earlier !== undefined) {
      const earlier = locate(doc, params.earlier);
      if (earlier.found) message += ` at line ${lineCounter.linePos(earlier.offset).line}`;
    }
    const where = locate(doc, path, pointAt);
    // A missing field ranks after every other problem inside the same mapping:
    // `adress: ...` is better reported as the misspelt key than as `address`
    // missing.
    return { path, message, offset: where.offset, order: where.enclosingEnd ?? where.offset };
  });
  // zod reports in schema order; the operator reads the file top to bottom.
  located.sort((a, b) => a.order - b.order);
  const first = located[0];
  return at(first.offset, formatFieldPath(first.path), first.message);
}
