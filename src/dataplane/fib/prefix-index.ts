// Exact-match index of an LpmTable's routes: (prefix, length) -> next hop.
//
// The LPM arrays answer "which route covers this address"; this answers "is
// there a route 10.1.0.0/16, and what is its next hop", which a route change
// needs (to find the covering route a deleted one falls back to). It is an
// open-addressing hash table in three typed arrays (linear probing,
// backward-shift deletion, at most half full): about 14 bytes per route at a
// million routes, no objects for the garbage collector to trace, and no
// rehash after deletes (V8's Map compacts itself now and then, which costs a
// single route change tens of milliseconds on a million routes). It grows by
// doubling; LpmTable.build sizes it for the table up front.

const EMPTY = 0xff;
const MIN_CAPACITY = 16;
/** 2^30 slots: far beyond any IPv4 table (there are 2^33 - 1 prefixes, but no FIB holds a billion). */
const MAX_CAPACITY = 1 << 30;

export class PrefixIndex {
  private prefixes: Uint32Array;
  private lengths: Uint8Array;
  private hops: Uint16Array;
  private mask: number;
  private count = 0;

  /** `expected`: how many entries it will hold; it starts big enough for them. */
  constructor(expected = 0) {
    const capacity = capacityFor(expected);
    this.prefixes = new Uint32Array(capacity);
    this.lengths = new Uint8Array(capacity).fill(EMPTY);
    this.hops = new Uint16Array(capacity);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.prefixes.byteLength + this.lengths.byteLength + this.hops.byteLength;
  }

  /** The next hop of prefix/length, or 0 when there is no such entry (next hops are >= 1). */
  get(prefix: number, length: number): number {
    const slot = this.find(prefix, length);
    return slot < 0 ? 0 : this.hops[slot];
  }

  /** Sets prefix/length to `hop` (>= 1); returns the previous next hop, 0 if it was new. */
  set(prefix: number, length: number, hop: number): number {
    let slot = this.find(prefix, length);
    if (slot >= 0) {
      const previous = this.hops[slot];
      this.hops[slot] = hop;
      return previous;
    }
    if ((this.count + 1) * 2 > this.mask + 1) {
      this.grow();
      slot = this.find(prefix, length);
    }
    slot = ~slot;
    this.prefixes[slot] = prefix;
    this.lengths[slot] = length;
    this.hops[slot] = hop;
    this.count++;
    return 0;
  }

  /** Removes prefix/length; false when it was not there. */
  delete(prefix: number, length: number): boolean {
    let hole = this.find(prefix, length);
    if (hole < 0) return false;
    const { prefixes, lengths, hops, mask } = this;
    lengths[hole] = EMPTY;
    this.count--;
    // Backward shift: pull later entries of the probe run into the hole when
    // the hole lies between their home slot and where they are.
    for (let j = (hole + 1) & mask; lengths[j] !== EMPTY; j = (j + 1) & mask) {
      const home = slotHash(prefixes[j], lengths[j]) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        prefixes[hole] = prefixes[j];
        lengths[hole] = lengths[j];
        hops[hole] = hops[j];
        lengths[j] = EMPTY;
        hole = j;
      }
    }
    return true;
  }

  /** Every entry, in no particular order. */
  *entries(): IterableIterator<[prefix: number, length: number, hop: number]> {
    const { prefixes, lengths, hops } = this;
    for (let i = 0; i < lengths.length; i++) {
      if (lengths[i] !== EMPTY) yield [prefixes[i], lengths[i], hops[i]];
    }
  }

  /** The slot holding prefix/length, or ~(the empty slot where it would go). */
  private find(prefix: number, length: number): number {
    const { prefixes, lengths, mask } = this;
    for (let i = slotHash(prefix, length) & mask; ; i = (i + 1) & mask) {
      const l = lengths[i];
      if (l === EMPTY) return ~i;
      if (l === length && prefixes[i] === prefix) return i;
    }
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    if (capacity > MAX_CAPACITY) throw new RangeError(`lpm: more than ${MAX_CAPACITY / 2} routes`);
    const { prefixes, lengths, hops } = this;
    this.prefixes = new Uint32Array(capacity);
    this.lengths = new Uint8Array(capacity).fill(EMPTY);
    this.hops = new Uint16Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < lengths.length; i++) {
      if (lengths[i] === EMPTY) continue;
      const slot = ~this.find(prefixes[i], lengths[i]);
      this.prefixes[slot] = prefixes[i];
      this.lengths[slot] = lengths[i];
      this.hops[slot] = hops[i];
    }
  }
}

function capacityFor(expected: number): number {
  let capacity = MIN_CAPACITY;
  while (capacity < expected * 2 && capacity < MAX_CAPACITY) capacity *= 2;
  return capacity;
}

/** A 32-bit mix of prefix and length (murmur3's finaliser), so neighbouring prefixes spread over the table. */
function slotHash(prefix: number, length: number): number {
  let h = (prefix ^ Math.imul(length + 1, 0x9e3779b1)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
