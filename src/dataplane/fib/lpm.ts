// IPv4 longest-prefix-match table, DIR-24-8 layout (as DPDK rte_lpm).
//
// Reads:  a destination address (lookup) or a batch of them (lookupBatch).
// Sets:   a next-hop index per address, NO_ROUTE when nothing matches.
// Layout: tbl24 has one Uint16 entry per /24, so any route of length <= 24 is
//         answered with a single memory read. A /24 that holds a longer route
//         points to a 256-entry group in tbl8 instead (second read).
//
// The lookup arrays are the only thing the data plane touches. Everything else
// (depth arrays, the exact-match index, the free list) is control-plane state used
// to apply a route change by rewriting only the entries it owns.
//
// Tables are meant to be built beside the live one (LpmTable.build) and
// published with one assignment; editing a table in place is fine for the
// control plane, but readers must not cache `tbl8` across calls because a
// growing table replaces it.

import { allocate, type Memory } from '../memory.js';
import { PrefixIndex } from './prefix-index.js';

export const NO_ROUTE = 0;
// Entries keep the next hop in 15 bits; bit 15 marks a tbl8 group pointer.
export const MAX_NEXT_HOP = 0x7fff;

export interface LpmOptions {
  tbl8Groups?: number;
  /** How many routes the table will hold: its exact-match index starts that big. */
  expectedRoutes?: number;
  /**
   * 'shared': the lookup arrays live twice, in SharedArrayBuffers, for
   * data-plane worker threads (see "Two copies" below). 'local' (default): once.
   */
  memory?: Memory;
}

/** What the data plane reads of a table: the two lookup arrays. */
export interface FibView {
  readonly tbl24: Uint16Array;
  readonly tbl8: Uint16Array;
}

/** tbl24 is marked dirty in pages of this many entries: 4,096 pages, one byte each. */
const PAGE_BITS = 12;

const EXTENDED = 0x8000;
const PAYLOAD = 0x7fff;
const TBL24_ENTRIES = 1 << 24;
const GROUP_ENTRIES = 256;

// A tbl8 group is named by the 15 payload bits of a tbl24 entry, so there can
// never be more than 2^15 groups (8 Mi tbl8 entries, 24 MiB with depths).
const MAX_TBL8_GROUPS = 1 << 15;

// One group is needed per /24 that holds at least one route longer than /24.
// In the public BGP table those are filtered (well under 0.1% of prefixes),
// and a host-route-heavy FIB of a last-hop router has a few thousand VIPs in
// a handful of /24s. 8192 groups cost 6 MiB (4 MiB tbl8 + 2 MiB depths) and
// cover 8192 distinct /24s with long routes; beyond that tbl8 is doubled by
// copying, up to the 2^15 limit.
const DEFAULT_TBL8_GROUPS = 8192;

// MASKS[l] keeps the top l bits, as an unsigned 32-bit number.
const MASKS: readonly number[] = Array.from({ length: 33 }, (_, l) =>
  l === 0 ? 0 : (0xffffffff << (32 - l)) >>> 0,
);

// Two copies (memory 'shared'). Worker threads read one copy while the
// control plane edits the other: a change of many routes is made whole in the
// copy nobody reads, the readers are switched to it between two batches
// (src/router/fib-publisher.ts), and once none reads the old copy any more the
// pages the change touched are copied over, so both are the same again and
// the next change goes to the old one. No batch ever sees half a change, and
// no batch waits for one. Pages of tbl24 and groups of tbl8 that were written
// are remembered for that copy.
export class LpmTable implements FibView {
  /** The copy being edited (the only one when local). */
  tbl24: Uint16Array;
  tbl8: Uint16Array;
  /** Both copies, when shared; the one at `editing` is tbl24/tbl8 above. */
  readonly copies: readonly FibView[];
  private editing = 0;
  private readonly dirtyPages: Uint8Array;
  private readonly dirtyGroups: Uint8Array;
  private dirty = false;

  // Prefix length of the route that wrote each entry. For an extended tbl24
  // entry, the depth of the longest route of length <= 24 covering that /24.
  private readonly depth24: Uint8Array;
  private depth8: Uint8Array;
  // Stack of released group indices, reused before untouched ones.
  private freeGroups: Uint16Array;
  private freeCount: number;
  private groupCapacity: number;
  private groupsEverUsed: number;
  // Every route by (prefix, length): what a change needs to find covering routes.
  private readonly index: PrefixIndex;

  constructor(options: LpmOptions = {}) {
    const groups = options.tbl8Groups ?? DEFAULT_TBL8_GROUPS;
    if (!Number.isInteger(groups) || groups < 1 || groups > MAX_TBL8_GROUPS) {
      throw new RangeError(`lpm: tbl8Groups must be an integer in 1..${MAX_TBL8_GROUPS}, got ${groups}`);
    }
    const memory = options.memory ?? 'local';
    if (memory === 'shared') {
      // The lookup arrays cannot grow while workers hold them, so tbl8 is made as big as it can be:
      // 16 MiB of address space per copy, of which only the groups ever used take memory.
      this.copies = [0, 1].map(() => ({
        tbl24: allocate(Uint16Array, TBL24_ENTRIES, 'shared'),
        tbl8: allocate(Uint16Array, MAX_TBL8_GROUPS * GROUP_ENTRIES, 'shared'),
      }));
      this.tbl24 = this.copies[0].tbl24;
      this.tbl8 = this.copies[0].tbl8;
    } else {
      this.tbl24 = new Uint16Array(TBL24_ENTRIES);
      this.tbl8 = new Uint16Array(groups * GROUP_ENTRIES);
      this.copies = [this];
    }
    this.dirtyPages = new Uint8Array(TBL24_ENTRIES >> PAGE_BITS);
    this.dirtyGroups = new Uint8Array(memory === 'shared' ? MAX_TBL8_GROUPS : 0);
    this.depth24 = new Uint8Array(TBL24_ENTRIES);
    this.depth8 = new Uint8Array(groups * GROUP_ENTRIES);
    this.freeGroups = new Uint16Array(groups);
    this.freeCount = 0;
    this.groupCapacity = groups;
    this.groupsEverUsed = 0;
    this.index = new PrefixIndex(options.expectedRoutes ?? 0);
  }

  static build(routes: Iterable<readonly [number, number, number]>, options?: LpmOptions): LpmTable {
    // Inserting shorter prefixes first means every longer route lands on
    // entries that are already final for their coverage, and tbl8 groups are
    // created already filled with the right covering route.
    const byLength: (readonly [number, number, number])[][] = Array.from({ length: 33 }, () => []);
    let count = 0;
    for (const route of routes) {
      const length = route[1];
      checkLength(length);
      byLength[length].push(route);
      count++;
    }
    const table = new LpmTable({ expectedRoutes: count, ...options });
    for (const bucket of byLength) {
      for (const [prefix, length, nextHop] of bucket) table.insert(prefix, length, nextHop);
    }
    if (table.copies.length === 2) {
      // A new table starts with both copies the same.
      table.copies[1].tbl24.set(table.tbl24);
      table.copies[1].tbl8.set(table.tbl8);
      table.clearDirty();
    }
    return table;
  }

  /** Which copy the next edits go to (0 or 1; always 0 when local). */
  get editingCopy(): number {
    return this.editing;
  }

  /** Whether anything was written since the copies were last made the same. */
  get changed(): boolean {
    return this.dirty;
  }

  /**
   * Edits go to copy `index` from now on (the one readers do not use). Only
   * when both copies are the same (a new table, or right after syncCopies).
   */
  editCopy(index: number): void {
    if (this.copies.length !== 2 || index === this.editing) return;
    if (this.dirty) throw new Error('lpm: editCopy with unsynced changes');
    this.editing = index;
    this.tbl24 = this.copies[index].tbl24;
    this.tbl8 = this.copies[index].tbl8;
  }

  /**
   * Readers use the edited copy now, and none reads the other any more: copy
   * the pages and groups the edits touched into it, and edit it next.
   */
  syncCopies(): void {
    if (this.copies.length !== 2) return;
    const from = this.copies[this.editing];
    const to = this.copies[1 - this.editing];
    if (this.dirty) {
      const page = 1 << PAGE_BITS;
      for (let p = 0; p < this.dirtyPages.length; p++) {
        if (this.dirtyPages[p] === 0) continue;
        to.tbl24.set(from.tbl24.subarray(p * page, (p + 1) * page), p * page);
      }
      for (let g = 0; g < this.dirtyGroups.length; g++) {
        if (this.dirtyGroups[g] === 0) continue;
        to.tbl8.set(from.tbl8.subarray(g * GROUP_ENTRIES, (g + 1) * GROUP_ENTRIES), g * GROUP_ENTRIES);
      }
      this.clearDirty();
    }
    this.editing = 1 - this.editing;
    this.tbl24 = to.tbl24;
    this.tbl8 = to.tbl8;
  }

  private clearDirty(): void {
    this.dirtyPages.fill(0);
    this.dirtyGroups.fill(0);
    this.dirty = false;
  }

  private markPages(start24: number, count: number): void {
    this.dirty = true;
    for (let p = start24 >> PAGE_BITS, last = (start24 + count - 1) >> PAGE_BITS; p <= last; p++) this.dirtyPages[p] = 1;
  }

  private markGroup(group: number): void {
    this.dirty = true;
    if (group < this.dirtyGroups.length) this.dirtyGroups[group] = 1;
  }

  get size(): number {
    return this.index.size;
  }

  lookup(address: number): number {
    const a = address >>> 0;
    const e = this.tbl24[a >>> 8];
    return (e & EXTENDED) === 0 ? e : this.tbl8[((e & PAYLOAD) << 8) | (a & 0xff)];
  }

  lookupBatch(addresses: Uint32Array, count: number, out: Uint16Array): void {
    if (count > addresses.length || count > out.length) {
      throw new RangeError(`lpm: batch of ${count} exceeds addresses (${addresses.length}) or out (${out.length})`);
    }
    // Read the arrays once per batch: the loop then touches only locals.
    const tbl24 = this.tbl24;
    const tbl8 = this.tbl8;
    for (let i = 0; i < count; i++) {
      const a = addresses[i];
      const e = tbl24[a >>> 8];
      out[i] = (e & EXTENDED) === 0 ? e : tbl8[((e & PAYLOAD) << 8) | (a & 0xff)];
    }
  }

  get(prefix: number, length: number): number {
    const p = checkPrefix(prefix, length);
    return this.index.get(p, length); // 0 = NO_ROUTE when absent
  }

  insert(prefix: number, length: number, nextHop: number): void {
    const p = checkPrefix(prefix, length);
    if (!Number.isInteger(nextHop) || nextHop < 1 || nextHop > MAX_NEXT_HOP) {
      throw new RangeError(`lpm: next hop must be an integer in 1..${MAX_NEXT_HOP}, got ${nextHop}`);
    }
    if (this.index.get(p, length) === nextHop) return;

    if (length <= 24) {
      this.writeTbl24Range(p >>> 8, 1 << (24 - length), length, nextHop);
    } else {
      // May grow tbl8 or throw; do it before any state changes.
      const group = this.groupFor(p >>> 8);
      this.markGroup(group);
      const base = (group << 8) | (p & 0xff);
      const end = base + (1 << (32 - length));
      const tbl8 = this.tbl8;
      const depth8 = this.depth8;
      for (let i = base; i < end; i++) {
        if (depth8[i] <= length) {
          tbl8[i] = nextHop;
          depth8[i] = length;
        }
      }
    }
    this.index.set(p, length, nextHop);
  }

  delete(prefix: number, length: number): boolean {
    const p = checkPrefix(prefix, length);
    if (!this.index.delete(p, length)) return false;

    // The whole freed range falls back to the same covering route.
    let coverHop = NO_ROUTE;
    let coverDepth = 0;
    for (let l = length - 1; l >= 0; l--) {
      const hop = this.index.get((p & MASKS[l]) >>> 0, l);
      if (hop !== NO_ROUTE) {
        coverHop = hop;
        coverDepth = l;
        break;
      }
    }

    if (length <= 24) {
      this.restoreTbl24Range(p >>> 8, 1 << (24 - length), length, coverHop, coverDepth);
      return true;
    }

    const index24 = p >>> 8;
    const group = this.tbl24[index24] & PAYLOAD;
    this.markGroup(group);
    const groupBase = group << 8;
    const base = groupBase | (p & 0xff);
    const end = base + (1 << (32 - length));
    const tbl8 = this.tbl8;
    const depth8 = this.depth8;
    for (let i = base; i < end; i++) {
      if (depth8[i] === length) {
        tbl8[i] = coverHop;
        depth8[i] = coverDepth;
      }
    }
    // Once nothing longer than /24 is left, the group holds one value copied
    // from the /24's covering route; fold it back into tbl24 and recycle.
    const first = tbl8[groupBase];
    for (let i = groupBase; i < groupBase + GROUP_ENTRIES; i++) {
      if (depth8[i] > 24 || tbl8[i] !== first) return true;
    }
    this.tbl24[index24] = first;
    this.markPages(index24, 1);
    this.depth24[index24] = depth8[groupBase];
    this.freeGroups[this.freeCount++] = group;
    return true;
  }

  /** Every route, shortest first, then by prefix (control plane: it sorts). */
  routes(): Array<[prefix: number, length: number, nextHop: number]> {
    return [...this.index.entries()].sort((a, b) => a[1] - b[1] || a[0] - b[0]);
  }

  memoryBytes(): number {
    return (
      this.copies.reduce((sum, copy) => sum + copy.tbl24.byteLength + copy.tbl8.byteLength, 0) +
      this.depth24.byteLength +
      this.depth8.byteLength +
      this.freeGroups.byteLength +
      this.index.byteLength
    );
  }

  private writeTbl24Range(start: number, count: number, length: number, nextHop: number): void {
    this.markPages(start, count);
    const tbl24 = this.tbl24;
    const depth24 = this.depth24;
    const tbl8 = this.tbl8;
    const depth8 = this.depth8;
    const end = start + count;
    for (let i = start; i < end; i++) {
      // Group entries are never shallower than their /24's depth24, so a
      // more specific route there shields the whole group too.
      if (depth24[i] > length) continue;
      depth24[i] = length;
      const e = tbl24[i];
      if ((e & EXTENDED) === 0) {
        tbl24[i] = nextHop;
        continue;
      }
      // Longer routes inside the group keep their entries.
      this.markGroup(e & PAYLOAD);
      const base = (e & PAYLOAD) << 8;
      for (let j = base; j < base + GROUP_ENTRIES; j++) {
        if (depth8[j] <= length) {
          tbl8[j] = nextHop;
          depth8[j] = length;
        }
      }
    }
  }

  private restoreTbl24Range(
    start: number,
    count: number,
    length: number,
    coverHop: number,
    coverDepth: number,
  ): void {
    this.markPages(start, count);
    const tbl24 = this.tbl24;
    const depth24 = this.depth24;
    const tbl8 = this.tbl8;
    const depth8 = this.depth8;
    const end = start + count;
    for (let i = start; i < end; i++) {
      if (depth24[i] !== length) continue;
      depth24[i] = coverDepth;
      const e = tbl24[i];
      if ((e & EXTENDED) === 0) {
        tbl24[i] = coverHop;
        continue;
      }
      // The group's entries at this depth can only be the deleted route's:
      // a longer route would have raised them, a shorter one never replaces.
      this.markGroup(e & PAYLOAD);
      const base = (e & PAYLOAD) << 8;
      for (let j = base; j < base + GROUP_ENTRIES; j++) {
        if (depth8[j] === length) {
          tbl8[j] = coverHop;
          depth8[j] = coverDepth;
        }
      }
    }
  }

  // Returns the tbl8 group of a /24, creating it filled from the tbl24 entry.
  private groupFor(index24: number): number {
    const e = this.tbl24[index24];
    if ((e & EXTENDED) !== 0) return e & PAYLOAD;

    let group: number;
    if (this.freeCount > 0) {
      group = this.freeGroups[--this.freeCount];
    } else {
      if (this.groupsEverUsed === this.groupCapacity) this.growTbl8();
      group = this.groupsEverUsed++;
    }
    const base = group << 8;
    this.tbl8.fill(e, base, base + GROUP_ENTRIES);
    this.depth8.fill(this.depth24[index24], base, base + GROUP_ENTRIES);
    // Publish the pointer only once the group is complete.
    this.tbl24[index24] = EXTENDED | group;
    this.markGroup(group);
    this.markPages(index24, 1);
    return group;
  }

  private growTbl8(): void {
    if (this.groupCapacity === MAX_TBL8_GROUPS) {
      throw new RangeError(
        `lpm: tbl8 exhausted: all ${MAX_TBL8_GROUPS} groups (the 15-bit index limit) hold routes longer than /24`,
      );
    }
    const capacity = Math.min(this.groupCapacity * 2, MAX_TBL8_GROUPS);
    // Shared copies are made at the largest size: only the control-plane arrays grow.
    const tbl8 = this.copies.length === 2 ? this.tbl8 : new Uint16Array(capacity * GROUP_ENTRIES);
    if (tbl8 !== this.tbl8) tbl8.set(this.tbl8);
    const depth8 = new Uint8Array(capacity * GROUP_ENTRIES);
    depth8.set(this.depth8);
    const freeGroups = new Uint16Array(capacity);
    freeGroups.set(this.freeGroups.subarray(0, this.freeCount));
    this.tbl8 = tbl8;
    this.depth8 = depth8;
    this.freeGroups = freeGroups;
    this.groupCapacity = capacity;
  }
}

function checkLength(length: number): void {
  if (!Number.isInteger(length) || length < 0 || length > 32) {
    throw new RangeError(`lpm: prefix length must be an integer in 0..32, got ${length}`);
  }
}

// Accepts the prefix signed or unsigned (results of bitwise operators are
// signed) and returns it unsigned.
function checkPrefix(prefix: number, length: number): number {
  checkLength(length);
  if (!Number.isInteger(prefix) || prefix < -0x80000000 || prefix > 0xffffffff) {
    throw new RangeError(`lpm: prefix must be a 32-bit integer, got ${prefix}`);
  }
  const p = prefix >>> 0;
  if (((p & ~MASKS[length]) >>> 0) !== 0) {
    throw new RangeError(`lpm: prefix ${formatAddress(p)}/${length} has host bits set`);
  }
  return p;
}

function formatAddress(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}
