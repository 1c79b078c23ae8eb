// AddressIndex against a Map: any sequence of adds and removes leaves every
// address findable at its entry and every removed one gone (backward-shift
// deletion keeps probe chains whole without tombstones).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AddressIndex } from '../../src/dataplane/address-index.js';

describe('AddressIndex', () => {
  it('agrees with a Map under random adds and removes', () => {
    const capacity = 64;
    // Few distinct addresses and some that share their low bits, so chains form and break.
    const address = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }).map((k) => (k << 16) >>> 0));
    const op = fc.record({ add: fc.boolean(), address });
    fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const keys = new Uint32Array(capacity);
      const index = new AddressIndex(keys, capacity);
      const model = new Map<number, number>();
      const free = Array.from({ length: capacity }, (_, k) => capacity - 1 - k);
      for (const { add, address: a } of ops) {
        const entry = model.get(a);
        if (add && entry === undefined && free.length > 0) {
          const e = free.pop()!;
          keys[e] = a;
          index.insert(e);
          model.set(a, e);
        } else if (!add && entry !== undefined) {
          index.remove(entry);
          model.delete(a);
          free.push(entry);
        }
        for (const [known, e] of model) expect(index.find(known)).toBe(e);
        expect(index.find(a)).toBe(model.get(a) ?? -1);
      }
    }), { numRuns: 200 });
  });

  it('a table larger than 65,536 slots finds everything', () => {
    const capacity = 100_000;
    const keys = new Uint32Array(capacity);
    const index = new AddressIndex(keys, capacity);
    for (let e = 0; e < capacity; e++) {
      keys[e] = (0x0a000000 + e * 3) >>> 0;
      index.insert(e);
    }
    for (let e = 0; e < capacity; e += 997) expect(index.find(keys[e])).toBe(e);
    expect(index.find(0x0b000000)).toBe(-1);
  });
});
