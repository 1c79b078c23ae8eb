// Reads the YAML config, checks it against the schema and returns the typed
// Config, or throws one ConfigError pointing at the first problem in the file.
//
// zod knows paths (`routes[2].prefix`), YAML knows positions; the document
// tree joins the two so every message says FILE:LINE:COL.

import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.js';
import { configErrorMap, configSchema, type ConfigIssueParams } from './schema.js';
import type { Config } from './types.js';

export async function loadConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError({ file: path }, `cannot read the config file: ${reason}`);
  }
  return parseConfig(text, path);
}

/** `path` is only used in messages. */
export function parseConfig(text: string, path: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number, field?: string, reason = '') => {
    const { line, col } = lineCounter.linePos(offset);
    return new ConfigError({ file: path, line, column: col, field }, reason);
  };

  // Warnings too: an unresolved tag such as `!!int x` means the file does not
  // say what its author thinks it says.
  const yamlProblem = doc.errors[0] ?? doc.warnings[0];
  if (yamlProblem !== undefined) {
    throw at(yamlProblem.pos[0], undefined, `YAML: ${describeYamlError(yamlProblem, doc, lineCounter)}`);
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
  return { ...result.data, routes };
}

function describeYamlError(error: YAMLError, doc: Document, lineCounter: LineCounter): string {
  if (error.code === 'DUPLICATE_KEY') {
    const duplicate = findDuplicateKey(doc, error.pos[0]);
    if (duplicate !== undefined) {
      const line = lineCounter.linePos(duplicate.firstOffset).line;
      return `duplicate key ${JSON.stringify(duplicate.key)}; it is already set at line ${line}`;
    }
  }
  return error.message;
}

/** The key of the mapping pair starting at `offset`, and where that key first appeared. */
function findDuplicateKey(doc: Document, offset: number): { key: string; firstOffset: number } | undefined {
  let found: { key: string; firstOffset: number } | undefined;
  visit(doc, {
    Map(_key, map) {
      const duplicate = map.items.find((pair) => rangeStart(pair.key) === offset);
      if (duplicate === undefined) return undefined;
      const key = keyText(duplicate.key);
      const first = map.items.find((pair) => keyText(pair.key) === key);
      found = { key, firstOffset: rangeStart(first?.key) ?? offset };
      return visit.BREAK;
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
      const pair = node.items.find((item) => keyText(item.key) === String(segment));
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
