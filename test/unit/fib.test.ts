import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { LpmTable, NO_ROUTE, MAX_NEXT_HOP } from '../../src/dataplane/fib/lpm.js';
import { mulberry32 } from '../fixtures/random.js';

// ---------------------------------------------------------------------------
// Helpers

type Route = readonly [prefix: number, length: number, nextHop: number];

const mask = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0);

function ip(text: string): number {
  const [a, b, c, d] = text.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

function cidr(text: string): [number, number] {
  const [address, length] = text.split('/');
  return [ip(address), Number(length)];
}

// The model: a plain list of routes (plus an index so replace and delete
// stay O(1) while generating long scenarios). Two lookups over the same data:
// a linear scan of every route, and a map-per-length probe from /32 down.
class Reference {
  readonly list: Route[] = [];
  private readonly position = new Map<string, number>();
  private readonly byLength = Array.from({ length: 33 }, () => new Map<number, number>());

  insert(prefix: number, length: number, nextHop: number): void {
    const key = `${prefix}/${length}`;
    const at = this.position.get(key);
    if (at === undefined) {
      this.position.set(key, this.list.length);
      this.list.push([prefix, length, nextHop]);
    } else {
      this.list[at] = [prefix, length, nextHop];
    }
    this.byLength[length].set(prefix, nextHop);
  }

  delete(prefix: number, length: number): boolean {
    const key = `${prefix}/${length}`;
    const at = this.position.get(key);
    if (at === undefined) return false;
    const last = this.list.pop()!;
    if (at < this.list.length) {
      this.list[at] = last;
      this.position.set(`${last[0]}/${last[1]}`, at);
    }
    this.position.delete(key);
    this.byLength[length].delete(prefix);
    return true;
  }

  get(prefix: number, length: number): number {
    return this.byLength[length].get(prefix) ?? NO_ROUTE;
  }

  lookupLinear(address: number): number {
    let best = -1;
    let hop = NO_ROUTE;
    for (const [prefix, length, nextHop] of this.list) {
      if (length > best && ((address & mask(length)) >>> 0) === prefix) {
        best = length;
        hop = nextHop;
      }
    }
    return hop;
  }

  lookupByLength(address: number): number {
    for (let length = 32; length >= 0; length--) {
      const hop = this.byLength[length].get((address & mask(length)) >>> 0);
      if (hop !== undefined) return hop;
    }
    return NO_ROUTE;
  }
}

// The first and last address of a prefix and one either side of it: where an
// off-by-one in range arithmetic or group boundaries would show.
function boundaries(prefix: number, length: number): number[] {
  const last = (prefix + 2 ** (32 - length) - 1) >>> 0;
  return [prefix, last, (last + 1) >>> 0, (prefix - 1) >>> 0];
}

function sortedRoutes(routes: Iterable<Route>): Route[] {
  return [...routes].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
}

// One step of a scenario. Prefixes are derived from a few base addresses by
// randomising only the `spread` prefix bits just above the host part, so
// routes of every length pile up on the same ranges and overlap. `pick`
// chooses an existing route to replace or delete.
interface Step {
  kind: 'add' | 'replace' | 'deleteExisting' | 'deleteAny';
  base: number;
  flip: number;
  spread: number;
  length: number;
  nextHop: number;
  pick: number;
}

function stepPrefix(bases: readonly number[], step: Step): number {
  const flipped = (step.flip & ((1 << step.spread) - 1)) * 2 ** (32 - step.length);
  return ((bases[step.base] ^ flipped) & mask(step.length)) >>> 0;
}

interface Scenario {
  bases: number[];
  steps: Step[];
  probes: number[];
}

// Shares of prefix lengths, as [first length, last length, share] bands.
// Routes of /0-/7 rewrite up to 2^24 entries each, so they stay a small share
// to keep the large runs quick while every length still occurs.
type LengthMix = readonly (readonly [number, number, number])[];

// Even between /8 and /32, so that tbl8 groups see as much churn as tbl24.
const evenMix: LengthMix = [
  [0, 7, 0.01],
  [8, 16, 0.24],
  [17, 32, 0.75],
];

// Closer to a BGP table: mostly /17-/24, one route in eight longer than /24,
// which keeps tbl8 well under its 2^15-group limit at 100,000 routes.
const bgpLikeMix: LengthMix = [
  [0, 7, 0.0005],
  [8, 16, 0.1495],
  [17, 24, 0.725],
  [25, 32, 0.125],
];

function lengthFrom(u: number, mix: LengthMix): number {
  for (const [first, last, share] of mix) {
    if (u < share) return first + Math.floor((u / share) * (last - first + 1));
    u -= share;
  }
  return 32;
}

function randomScenario(
  seed: number,
  steps: number,
  baseCount: number,
  lengths: LengthMix,
  deleteShare: number,
): Scenario {
  const random = mulberry32(seed);
  const u32 = (): number => Math.floor(random() * 4294967296);
  const kind = (u: number): Step['kind'] =>
    u < deleteShare / 2 ? 'deleteAny' : u < deleteShare ? 'deleteExisting' : u < deleteShare + 0.1 ? 'replace' : 'add';
  const bases = Array.from({ length: baseCount }, u32);
  return {
    bases,
    steps: Array.from({ length: steps }, () => ({
      kind: kind(random()),
      base: Math.floor(random() * baseCount),
      flip: u32(),
      spread: Math.floor(random() * 17),
      length: lengthFrom(random(), lengths),
      nextHop: 1 + Math.floor(random() * MAX_NEXT_HOP),
      pick: u32(),
    })),
    probes: Array.from({ length: 2000 }, (_, i) => (i % 2 === 0 ? u32() : (bases[i % baseCount] ^ (u32() >>> 12)) >>> 0)),
  };
}

const stepArbitrary = (baseCount: number): fc.Arbitrary<Step> =>
  fc.record({
    kind: fc.oneof(
      { arbitrary: fc.constant<Step['kind']>('add'), weight: 5 },
      { arbitrary: fc.constantFrom<Step['kind']>('replace', 'deleteExisting', 'deleteAny'), weight: 3 },
    ),
    base: fc.nat({ max: baseCount - 1 }),
    flip: fc.nat({ max: 0xffffffff }),
    spread: fc.integer({ min: 0, max: 16 }),
    length: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 7 }), weight: 1 },
      { arbitrary: fc.integer({ min: 8, max: 16 }), weight: 8 },
      { arbitrary: fc.integer({ min: 17, max: 32 }), weight: 24 },
    ),
    nextHop: fc.integer({ min: 1, max: MAX_NEXT_HOP }),
    pick: fc.nat(),
  });

// Step counts are drawn explicitly: fc.array's default size would keep
// nearly every table under 20 routes.
const smallScenarioArbitrary: fc.Arbitrary<Scenario> = fc
  .tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 10, max: 300 }))
  .chain(([baseCount, steps]) =>
    fc.record({
      bases: fc.array(fc.nat({ max: 0xffffffff }), { minLength: baseCount, maxLength: baseCount }),
      steps: fc.array(stepArbitrary(baseCount), { minLength: steps, maxLength: steps }),
      probes: fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 300 }),
    }),
  );

// Applies every step to the table and the reference, checking each result
// and the lookups around the changed prefix as it goes; then compares
// everything: exact matches, size, routes(), random probes, lookups at the
// boundaries of every route, and lookupBatch over all of them.
function runScenario(scenario: Scenario, lookup: (reference: Reference, address: number) => number): LpmTable {
  const table = new LpmTable();
  const reference = new Reference();
  const checkAt = (address: number): void => {
    const expected = lookup(reference, address);
    if (table.lookup(address) !== expected) {
      expect(table.lookup(address), `lookup(${address >>> 0})`).toBe(expected);
    }
  };

  for (const step of scenario.steps) {
    let prefix = stepPrefix(scenario.bases, step);
    let length = step.length;
    const existing = reference.list.length > 0 ? reference.list[step.pick % reference.list.length] : undefined;
    if ((step.kind === 'replace' || step.kind === 'deleteExisting') && existing) [prefix, length] = existing;

    if (step.kind === 'deleteExisting' || step.kind === 'deleteAny') {
      expect(table.delete(prefix, length)).toBe(reference.delete(prefix, length));
    } else {
      table.insert(prefix, length, step.nextHop);
      reference.insert(prefix, length, step.nextHop);
    }
    for (const address of boundaries(prefix, length)) checkAt(address);
  }

  expect(table.size).toBe(reference.list.length);
  for (const [prefix, length, nextHop] of reference.list) {
    if (table.get(prefix, length) !== nextHop) expect(table.get(prefix, length)).toBe(nextHop);
  }
  expect(sortedRoutes(table.routes())).toEqual(sortedRoutes(reference.list));

  const addresses = [...scenario.probes];
  for (const [prefix, length] of reference.list) addresses.push(...boundaries(prefix, length));
  for (const address of addresses) checkAt(address);

  const batch = Uint32Array.from(addresses);
  const out = new Uint16Array(batch.length);
  table.lookupBatch(batch, batch.length, out);
  for (let i = 0; i < batch.length; i++) {
    if (out[i] !== table.lookup(batch[i])) expect(out[i], `lookupBatch[${i}]`).toBe(table.lookup(batch[i]));
  }
  return table;
}

// ---------------------------------------------------------------------------
// Worked examples

describe('LpmTable lookups on the article table', () => {
  // Four /27s carved out of 192.168.1.0/24, the connected /27 below them and
  // a default route.
  const routes: [string, number][] = [
    ['0.0.0.0/0', 1],
    ['192.168.1.0/27', 2],
    ['192.168.1.32/27', 3],
    ['192.168.1.64/27', 4],
    ['192.168.1.96/27', 5],
    ['192.168.1.128/27', 6],
  ];
  const table = LpmTable.build(routes.map(([text, hop]) => [...cidr(text), hop] as const));

  const cases: { description: string; address: string; expected: number }[] = [
    { description: 'first address of the connected /27', address: '192.168.1.0', expected: 2 },
    { description: 'last address of the connected /27', address: '192.168.1.31', expected: 2 },
    { description: 'first address of the first /27', address: '192.168.1.32', expected: 3 },
    { description: 'inside the second /27', address: '192.168.1.70', expected: 4 },
    { description: 'last address of the third /27', address: '192.168.1.127', expected: 5 },
    { description: 'last address of the fourth /27', address: '192.168.1.159', expected: 6 },
    { description: 'just past the /27s falls back to the default', address: '192.168.1.160', expected: 1 },
    { description: 'top of the /24 uses the default', address: '192.168.1.255', expected: 1 },
    { description: 'neighbouring /24 uses the default', address: '192.168.2.1', expected: 1 },
    { description: 'anywhere else uses the default', address: '8.8.8.8', expected: 1 },
  ];
  for (const { description, address, expected } of cases) {
    it(description, () => {
      expect(table.lookup(ip(address))).toBe(expected);
      expect(table.lookup(ip(address) | 0)).toBe(expected);
    });
  }

  it('keeps one tbl8 group for the /24 and reports six routes', () => {
    expect(table.size).toBe(6);
    expect(table.tbl24[ip('192.168.1.0') >>> 8] & 0x8000).toBe(0x8000);
    expect(table.tbl24[ip('192.168.2.0') >>> 8]).toBe(1);
  });
});

describe('LpmTable route changes', () => {
  it('gives the freed range to the covering route on delete, and NO_ROUTE when none is left', () => {
    const table = new LpmTable();
    const chain: [string, number][] = [
      ['10.0.0.0/8', 1],
      ['10.1.0.0/16', 2],
      ['10.1.1.0/24', 3],
      ['10.1.1.128/25', 4],
      ['10.1.1.200/32', 5],
    ];
    for (const [text, hop] of chain) table.insert(...cidr(text), hop);
    const probe = (): number[] => ['10.1.1.200', '10.1.1.130', '10.1.1.1', '10.1.2.1', '10.2.0.0'].map((a) => table.lookup(ip(a)));
    expect(probe()).toEqual([5, 4, 3, 2, 1]);

    expect(table.delete(...cidr('10.1.1.0/24'))).toBe(true);
    expect(probe()).toEqual([5, 4, 2, 2, 1]);
    expect(table.delete(...cidr('10.1.1.128/25'))).toBe(true);
    expect(probe()).toEqual([5, 2, 2, 2, 1]);
    expect(table.delete(...cidr('10.1.1.200/32'))).toBe(true);
    expect(probe()).toEqual([2, 2, 2, 2, 1]);
    // With nothing longer than /24 left, the group is folded back into tbl24.
    expect(table.tbl24[ip('10.1.1.0') >>> 8]).toBe(2);
    expect(table.delete(...cidr('10.1.0.0/16'))).toBe(true);
    expect(probe()).toEqual([1, 1, 1, 1, 1]);
    expect(table.delete(...cidr('10.0.0.0/8'))).toBe(true);
    expect(probe()).toEqual([NO_ROUTE, NO_ROUTE, NO_ROUTE, NO_ROUTE, NO_ROUTE]);
    expect(table.size).toBe(0);
    expect(table.delete(...cidr('10.0.0.0/8'))).toBe(false);
  });

  it('lets a short route inserted later fill only the gaps around longer ones', () => {
    const table = new LpmTable();
    table.insert(...cidr('172.16.5.64/26'), 7);
    table.insert(...cidr('172.16.0.0/12'), 8);
    table.insert(...cidr('0.0.0.0/0'), 9);
    expect(table.lookup(ip('172.16.5.100'))).toBe(7);
    expect(table.lookup(ip('172.16.5.10'))).toBe(8);
    expect(table.lookup(ip('172.31.255.255'))).toBe(8);
    expect(table.lookup(ip('172.32.0.0'))).toBe(9);
    expect(table.delete(...cidr('0.0.0.0/0'))).toBe(true);
    expect(table.lookup(ip('172.32.0.0'))).toBe(NO_ROUTE);
    expect(table.lookup(ip('172.16.5.10'))).toBe(8);
  });

  it('replaces a next hop in place without changing size', () => {
    const table = new LpmTable();
    table.insert(...cidr('192.0.2.0/24'), 1);
    table.insert(...cidr('192.0.2.0/24'), 2);
    table.insert(...cidr('192.0.2.7/32'), 3);
    table.insert(...cidr('192.0.2.7/32'), 4);
    expect(table.size).toBe(2);
    expect(table.get(...cidr('192.0.2.0/24'))).toBe(2);
    expect(table.lookup(ip('192.0.2.7'))).toBe(4);
    expect(table.lookup(ip('192.0.2.8'))).toBe(2);
    expect(table.get(...cidr('192.0.2.0/25'))).toBe(NO_ROUTE);
    expect([...table.routes()]).toEqual([
      [ip('192.0.2.0'), 24, 2],
      [ip('192.0.2.7'), 32, 4],
    ]);
  });

  it('accepts prefixes given as signed 32-bit numbers and reports them unsigned', () => {
    const table = new LpmTable();
    table.insert(ip('203.0.113.0') | 0, 24, 5);
    expect(table.get(ip('203.0.113.0'), 24)).toBe(5);
    expect([...table.routes()]).toEqual([[ip('203.0.113.0'), 24, 5]]);
    expect(table.delete(ip('203.0.113.0') | 0, 24)).toBe(true);
  });

  it('handles /0 and /32 at both ends of the address space', () => {
    const table = new LpmTable();
    table.insert(0, 0, 1);
    table.insert(0, 32, 2);
    table.insert(0xffffffff, 32, 3);
    expect(table.lookup(0)).toBe(2);
    expect(table.lookup(1)).toBe(1);
    expect(table.lookup(0xffffffff)).toBe(3);
    expect(table.lookup(-1)).toBe(3);
    expect(table.lookup(0xfffffffe)).toBe(1);
  });
});

describe('LpmTable argument checks', () => {
  const table = new LpmTable();
  const cases: { description: string; call: () => unknown }[] = [
    { description: 'host bits set', call: () => table.insert(ip('10.0.0.1'), 24, 1) },
    { description: 'host bits set on delete', call: () => table.delete(ip('10.0.0.1'), 8) },
    { description: 'host bits set on get', call: () => table.get(ip('10.0.0.1'), 0) },
    { description: 'length -1', call: () => table.insert(0, -1, 1) },
    { description: 'length 33', call: () => table.insert(0, 33, 1) },
    { description: 'fractional length', call: () => table.insert(0, 1.5, 1) },
    { description: 'prefix beyond 32 bits', call: () => table.insert(2 ** 32, 32, 1) },
    { description: 'fractional prefix', call: () => table.insert(0.5, 32, 1) },
    { description: 'next hop 0', call: () => table.insert(0, 0, 0) },
    { description: 'next hop above MAX_NEXT_HOP', call: () => table.insert(0, 0, MAX_NEXT_HOP + 1) },
    { description: 'fractional next hop', call: () => table.insert(0, 0, 1.5) },
    { description: 'build with a bad length', call: () => LpmTable.build([[0, 40, 1]]) },
    { description: 'zero tbl8 groups', call: () => new LpmTable({ tbl8Groups: 0 }) },
    { description: 'more tbl8 groups than 15 bits can name', call: () => new LpmTable({ tbl8Groups: 32769 }) },
    {
      description: 'batch longer than its arrays',
      call: () => table.lookupBatch(new Uint32Array(4), 5, new Uint16Array(8)),
    },
  ];
  for (const { description, call } of cases) {
    it(`throws RangeError on ${description}`, () => {
      expect(call).toThrow(RangeError);
    });
  }

  it('leaves the table untouched after a rejected call', () => {
    expect(table.size).toBe(0);
    expect(table.lookup(0)).toBe(NO_ROUTE);
  });
});

describe('LpmTable tbl8 groups', () => {
  it('recycles groups: inserting and deleting long routes forever does not exhaust or grow tbl8', () => {
    const groups = 8;
    const table = new LpmTable({ tbl8Groups: groups });
    const reference = new Reference();
    for (const t of [table, reference]) t.insert(...cidr('100.64.0.0/10'), 1);
    const random = mulberry32(7);
    for (let round = 0; round < 500; round++) {
      // `groups` distinct /24s under 100.64.0.0/10, three long routes each,
      // every route its own next hop: where two overlap, the longer must win.
      const routes: Route[] = [];
      for (let g = 0; g < groups; g++) {
        const slash24 = (ip('100.64.0.0') + ((round * groups + g) % 16384) * 256) >>> 0;
        for (let k = 0; k < 3; k++) {
          const length = 25 + Math.floor(random() * 8);
          const prefix = ((slash24 | Math.floor(random() * 256)) & mask(length)) >>> 0;
          routes.push([prefix, length, 2 + g * 3 + k]);
        }
      }
      for (const [prefix, length, hop] of routes) {
        table.insert(prefix, length, hop);
        reference.insert(prefix, length, hop);
      }
      for (const [prefix, length] of routes) {
        // The same prefix drawn twice in a round: the later insert replaced the earlier.
        expect(table.get(prefix, length), `round ${round}: get ${prefix}/${length}`).toBe(reference.get(prefix, length));
        for (const address of boundaries(prefix, length)) {
          expect(table.lookup(address), `round ${round}: lookup ${address} (${prefix}/${length})`).toBe(reference.lookupLinear(address));
        }
      }
      for (const [prefix, length] of routes) {
        table.delete(prefix, length);
        reference.delete(prefix, length);
      }
      for (const [prefix] of routes) {
        expect(table.tbl24[prefix >>> 8]).toBe(1);
      }
    }
    expect(table.tbl8.length).toBe(groups * 256);
    expect(table.size).toBe(1);
  });

  it('grows tbl8 by copying when more groups are needed, keeping existing answers', () => {
    const table = new LpmTable({ tbl8Groups: 2 });
    const before = table.memoryBytes();
    for (let i = 0; i < 20; i++) table.insert((ip('198.18.0.0') + i * 256 + i) >>> 0, 32, 1 + i);
    expect(table.tbl8.length).toBeGreaterThanOrEqual(20 * 256);
    expect(table.memoryBytes()).toBeGreaterThan(before);
    for (let i = 0; i < 20; i++) {
      expect(table.lookup((ip('198.18.0.0') + i * 256 + i) >>> 0)).toBe(1 + i);
      expect(table.lookup((ip('198.18.0.0') + i * 256 + i + 1) >>> 0)).toBe(NO_ROUTE);
    }
  });

  it('throws a clear error once all 2^15 groups are in use, without changing the table', () => {
    const table = new LpmTable();
    for (let i = 0; i < 32768; i++) table.insert(i * 256, 25, 1);
    expect(() => table.insert(32768 * 256, 25, 2)).toThrow(/tbl8 exhausted/);
    expect(table.size).toBe(32768);
    expect(table.get(32768 * 256, 25)).toBe(NO_ROUTE);
    expect(table.lookup(32768 * 256)).toBe(NO_ROUTE);
    // A long route inside an existing group needs no new group.
    table.insert(5 * 256 + 200, 30, 3);
    expect(table.lookup(5 * 256 + 201)).toBe(3);
  });

  it('counts every typed array in memoryBytes', () => {
    const table = new LpmTable({ tbl8Groups: 16 });
    // tbl24 (2 B) + its depths (1 B) per /24, tbl8 (2 B) + depths (1 B) per
    // group entry, 2 B per free-list slot, and the exact-match index's 16
    // starting slots of 7 B (prefix 4, length 1, next hop 2).
    expect(table.memoryBytes()).toBe(3 * 2 ** 24 + 3 * 16 * 256 + 2 * 16 + 7 * 16);
  });
});

// ---------------------------------------------------------------------------
// Properties against the reference

describe('LpmTable against a reference model', () => {
  it('matches the linear-scan reference on many small tables (10..300 steps, up to ~200 routes)', () => {
    fc.assert(
      fc.property(smallScenarioArbitrary, (scenario) => {
        runScenario(scenario, (reference, address) => reference.lookupLinear(address));
      }),
      { numRuns: 60 },
    );
  });

  it('matches the linear-scan reference on medium tables (300..3,000 steps, ~200..2,000 routes)', () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.integer({ min: 300, max: 3000 }),
        fc.integer({ min: 1, max: 16 }),
        (seed, steps, baseCount) => {
          runScenario(randomScenario(seed, steps, baseCount, evenMix, 0.2), (reference, address) =>
            reference.lookupLinear(address),
          );
        },
      ),
      { numRuns: 15 },
    );
  });

  it('matches the map-per-length reference on a table of over 100,000 prefixes', () => {
    // A linear scan would cost ~100,000 routes per lookup over ~450,000
    // lookups, so the reference here probes one exact-match map per length
    // from /32 down instead: the same answer, and still independent of the
    // DIR-24-8 arrays under test.
    const scenario = randomScenario(20240607, 160_000, 2048, bgpLikeMix, 0.1);
    const table = runScenario(scenario, (reference, address) => reference.lookupByLength(address));
    expect(table.size).toBeGreaterThanOrEqual(100_000);
  });

  it('build() answers exactly like incremental inserts of the same routes', () => {
    fc.assert(
      fc.property(smallScenarioArbitrary, ({ bases, steps, probes }) => {
        const routes: Route[] = steps.map((step) => [stepPrefix(bases, step), step.length, step.nextHop]);
        const built = LpmTable.build(routes);
        const incremental = new LpmTable();
        for (const [prefix, length, nextHop] of routes) incremental.insert(prefix, length, nextHop);

        expect(built.size).toBe(incremental.size);
        expect(sortedRoutes(built.routes())).toEqual(sortedRoutes(incremental.routes()));
        const addresses = [...probes, ...routes.flatMap(([prefix, length]) => boundaries(prefix, length))];
        for (const address of addresses) {
          if (built.lookup(address) !== incremental.lookup(address)) {
            expect(built.lookup(address), `lookup(${address})`).toBe(incremental.lookup(address));
          }
        }
      }),
      { numRuns: 25 },
    );
  });

  it('lookupBatch writes lookup() of each address and nothing past count', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 0xffffffff }), fc.integer({ min: 8, max: 32 }), fc.integer({ min: 1, max: MAX_NEXT_HOP })), {
          maxLength: 50,
        }),
        fc.array(fc.nat({ max: 0xffffffff }), { minLength: 1, maxLength: 500 }),
        (routes, addressList) => {
          const table = LpmTable.build(routes.map(([a, l, h]) => [(a & mask(l)) >>> 0, l, h] as const));
          const addresses = Uint32Array.from(addressList);
          const count = addresses.length - 1;
          const out = new Uint16Array(addresses.length).fill(0xffff);
          table.lookupBatch(addresses, count, out);
          for (let i = 0; i < count; i++) expect(out[i]).toBe(table.lookup(addresses[i]));
          expect(out[count]).toBe(0xffff);
        },
      ),
      { numRuns: 20 },
    );
  });
});

describe('LpmTable with two shared copies (data-plane worker threads)', () => {
  const sameCopies = (table: LpmTable) => {
    const [a, b] = table.copies;
    return Buffer.from(a.tbl24.buffer).equals(Buffer.from(b.tbl24.buffer)) && Buffer.from(a.tbl8.buffer).equals(Buffer.from(b.tbl8.buffer));
  };
  const lookupIn = (view: { tbl24: Uint16Array; tbl8: Uint16Array }, address: number) => {
    const e = view.tbl24[address >>> 8];
    return (e & 0x8000) === 0 ? e : view.tbl8[((e & 0x7fff) << 8) | (address & 0xff)];
  };

  it('edits change only the copy being edited; after syncCopies both are the same and the other is edited next', () => {
    const table = LpmTable.build([[0, 0, 1], [0x0a000000, 8, 2]], { memory: 'shared' });
    expect(table.copies).toHaveLength(2);
    expect(table.copies[0].tbl24.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(sameCopies(table)).toBe(true);
    const editing = table.editingCopy;
    const readers = table.copies[1 - editing];
    table.insert(0x0a010200, 24, 3);
    table.insert(0x0a010280, 25, 4); // a tbl8 group
    expect(lookupIn(table.copies[editing], 0x0a010281)).toBe(4);
    expect(lookupIn(readers, 0x0a010281)).toBe(2); // what readers see is untouched
    table.syncCopies();
    expect(sameCopies(table)).toBe(true);
    expect(table.editingCopy).toBe(1 - editing);
    table.delete(0x0a010280, 25);
    expect(lookupIn(table.copies[1 - editing], 0x0a010281)).toBe(3);
    expect(lookupIn(table.copies[editing], 0x0a010281)).toBe(4);
  });

  it('any sequence of changes, synced after each batch of them, leaves both copies equal to a local table', () => {
    fc.assert(fc.property(
      // Addresses in a few /24s of 10.0.0.0/22, so later changes land in groups and pages earlier ones made.
      fc.array(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 0x3ff }).map((low) => 0x0a000000 + low), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 1, max: 100 })), { maxLength: 12 }), { maxLength: 6 }),
      (batches) => {
        const shared = new LpmTable({ memory: 'shared', tbl8Groups: 4 });
        const local = new LpmTable({ tbl8Groups: 4 });
        const probes: number[] = [];
        for (const batch of batches) {
          for (const [add, address, length, hop] of batch) {
            const prefix = length === 0 ? 0 : (address & (0xffffffff << (32 - length))) >>> 0;
            probes.push(address >>> 0);
            if (add) {
              shared.insert(prefix, length, hop);
              local.insert(prefix, length, hop);
            } else {
              shared.delete(prefix, length);
              local.delete(prefix, length);
            }
          }
          shared.syncCopies();
          if (!sameCopies(shared)) return false;
          for (const address of probes) if (lookupIn(shared.copies[0], address) !== local.lookup(address)) return false;
        }
        return true;
      },
    ), { numRuns: 60 });
  });
});
