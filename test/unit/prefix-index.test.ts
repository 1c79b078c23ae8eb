// The LPM's exact-match index (src/dataplane/fib/prefix-index.ts): an open-addressing
// hash table in typed arrays. Checked against a Map on random operation
// sequences, with few distinct keys so sets, replaces and deletes of the same
// entries collide and probe runs wrap around the end of the table.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PrefixIndex } from '../../src/dataplane/fib/prefix-index.js';

type Op = { kind: 'set' | 'delete' | 'get'; prefix: number; length: number; hop: number };

const key = (prefix: number, length: number) => `${prefix >>> 0}/${length}`;

function check(ops: Op[], expected = 0): void {
  const index = new PrefixIndex(expected);
  const reference = new Map<string, number>();
  for (const op of ops) {
    const k = key(op.prefix, op.length);
    switch (op.kind) {
      case 'set':
        expect(index.set(op.prefix, op.length, op.hop)).toBe(reference.get(k) ?? 0);
        reference.set(k, op.hop);
        break;
      case 'delete':
        expect(index.delete(op.prefix, op.length)).toBe(reference.delete(k));
        break;
      case 'get':
        expect(index.get(op.prefix, op.length)).toBe(reference.get(k) ?? 0);
        break;
    }
    expect(index.size).toBe(reference.size);
  }
  // Every entry is still found after all the shifting, and nothing else is there.
  for (const [k, hop] of reference) {
    const [prefix, length] = k.split('/').map(Number);
    expect(index.get(prefix, length)).toBe(hop);
  }
  const listed = [...index.entries()].map(([p, l, h]) => `${key(p, l)}=${h}`).sort();
  expect(listed).toEqual([...reference].map(([k, h]) => `${k}=${h}`).sort());
}

describe('PrefixIndex', () => {
  const op = (prefixes: fc.Arbitrary<number>) =>
    fc.record({
      kind: fc.constantFrom('set', 'set', 'delete', 'get') as fc.Arbitrary<Op['kind']>,
      prefix: prefixes,
      length: fc.integer({ min: 0, max: 32 }),
      hop: fc.integer({ min: 1, max: 0x7fff }),
    });

  it('agrees with a Map on random sets, deletes and gets (few keys: collisions and wrap-around)', () => {
    fc.assert(fc.property(fc.array(op(fc.integer({ min: 0, max: 40 })), { maxLength: 400 }), (ops) => check(ops)), { numRuns: 300 });
  });

  it('agrees with a Map over the whole address space, growing from the smallest size', () => {
    fc.assert(fc.property(fc.array(op(fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 2000 }), (ops) => check(ops)), { numRuns: 50 });
  });

  it('one prefix at every length is 33 different entries', () => {
    const index = new PrefixIndex();
    for (let length = 0; length <= 32; length++) index.set(0, length, length + 1);
    expect(index.size).toBe(33);
    for (let length = 0; length <= 32; length++) expect(index.get(0, length)).toBe(length + 1);
    for (let length = 0; length <= 32; length += 2) expect(index.delete(0, length)).toBe(true);
    for (let length = 0; length <= 32; length++) expect(index.get(0, length)).toBe(length % 2 ? length + 1 : 0);
  });

  it('sized for what it will hold, it stays at most half full without growing', () => {
    const index = new PrefixIndex(100_000);
    const bytes = index.byteLength;
    expect(bytes).toBe(262_144 * 7); // the next power of two above 2 x 100,000 slots
    for (let i = 0; i < 100_000; i++) index.set((i << 8) >>> 0, 24, 1 + (i % 0x7fff));
    expect(index.byteLength).toBe(bytes);
    expect(index.size).toBe(100_000);
    // Churn (delete one, add another) never grows or loses anything: no tombstones to pile up.
    for (let i = 0; i < 100_000; i++) {
      expect(index.delete((i << 8) >>> 0, 24)).toBe(true);
      index.set(((i << 8) | 0x80) >>> 0, 25, 7);
    }
    expect(index.byteLength).toBe(bytes);
    expect(index.size).toBe(100_000);
    expect(index.get(0x80, 25)).toBe(7);
    expect(index.get(0, 24)).toBe(0);
  });
});
