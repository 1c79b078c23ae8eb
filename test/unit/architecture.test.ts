// The shape of the code, checked: the data plane is a room with one door
// (src/dataplane imports nothing but itself and the wire formats), arrows
// between folders go one way only, and no module imports itself in a circle.
// Imports are read with TypeScript's own parser (value and type imports
// alike: both tie one module's shape to another's).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : files(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports of each file, as repository paths (a.ts -> [b.ts, ...]). */
function importGraph(dirs: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of dirs.flatMap((d) => files(join(ROOT, d)))) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => relative(ROOT, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))));
    graph.set(relative(ROOT, file), targets);
  }
  return graph;
}

/** Strongly connected components with more than one member (Tarjan): the import cycles. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    order.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!order.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, order.get(w)!));
      }
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!order.has(v)) visit(v);
  return found;
}

const folderOf = (path: string) => path.split('/').slice(0, 2).join('/'); // src/<folder>

describe('the architecture', () => {
  const src = importGraph(['src']);

  it('has no import cycles between files of src/', () => {
    expect(cycles(src)).toEqual([]);
  });

  it('has no import cycles between the folders of src/ (arrows between two rooms go one way)', () => {
    const folders = new Map<string, string[]>();
    for (const [file, targets] of src) {
      const from = folderOf(file);
      const out = folders.get(from) ?? [];
      for (const target of targets) if (folderOf(target) !== from && !out.includes(folderOf(target))) out.push(folderOf(target));
      folders.set(from, out);
    }
    expect(cycles(folders)).toEqual([]);
  });

  it.each([
    ['src/dataplane', ['src/dataplane', 'src/packet', 'src/util']],
    ['src/packet', ['src/packet', 'src/util']],
    ['src/util', ['src/util']],
  ])('%s imports only from %j', (folder, allowed) => {
    const outside = [...src]
      .filter(([file]) => file.startsWith(`${folder}/`))
      .flatMap(([file, targets]) => targets.filter((t) => !allowed.some((a) => t.startsWith(`${a}/`))).map((t) => `${file} -> ${t}`));
    expect(outside).toEqual([]);
  });

  it('the data plane imports no npm package but node: builtins', () => {
    const packages = files(join(ROOT, 'src/dataplane')).flatMap((file) =>
      ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles
        .map((f) => f.fileName)
        .filter((spec) => !spec.startsWith('.') && !spec.startsWith('node:'))
        .map((spec) => `${relative(ROOT, file)} -> ${spec}`));
    expect(packages).toEqual([]);
  });

  it('no test imports from bench/ (benches may use test fixtures, not the other way round)', () => {
    const tests = importGraph(['test']);
    const fromBench = [...tests].flatMap(([file, targets]) => targets.filter((t) => t.startsWith('bench/')).map((t) => `${file} -> ${t}`));
    expect(fromBench).toEqual([]);
  });

  it('the code cites docs that are in the repository (docs/ARCHITECTURE.md), not the design sketch outside it', () => {
    const cited = ['src', 'native-bindings/src', 'lab', 'scripts', 'test'].flatMap((dir) =>
      readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile() && /\.(ts|c|h|sh|mjs|js|yaml)$/.test(entry.name))
        .map((entry) => join(entry.parentPath, entry.name))
        .filter((path) => readFileSync(path, 'utf8').includes('DESIGN' + '.md'))
        .map((path) => relative(ROOT, path)));
    expect(cited).toEqual([]);
    expect(statSync(join(ROOT, 'docs/ARCHITECTURE.md')).isFile()).toBe(true);
  });

  it('the checker sees cycles (a graph with one is caught)', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
  });
});
