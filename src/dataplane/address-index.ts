// An open-addressing index from IPv4 address to entry number, over a keys
// array its owner keeps (entry i's address is keys[i]). Typed arrays only: a
// lookup allocates nothing, so the data plane and its slow paths can use it
// per packet. Shared by the neighbour table and the ICMP per-destination limiter.

import { allocate, type Memory } from './memory.js';

export class AddressIndex {
  /**
   * Linear probing; a slot holds entry + 1, 0 = empty. At least twice the
   * capacity, rounded up to a power of two, keeps the load factor at or under
   * 0.5, where linear probing averages under 1.5 probes per hit.
   */
  readonly slots: Int32Array;
  private readonly mask: number;
  /** Fibonacci hashing keeps the product's top bits: they depend on every bit of the address. */
  private readonly shift: number;

  constructor(private readonly keys: Uint32Array, capacity: number, memory: Memory = 'local', slots?: ArrayBufferLike) {
    let bits = 1;
    while (1 << bits < capacity * 2) bits++;
    this.slots = slots ? new Int32Array(slots) : allocate(Int32Array, 1 << bits, memory);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
  }

  private home(address: number): number {
    return (Math.imul(address, 0x9e3779b1) >>> this.shift) & this.mask;
  }

  /** Entry holding `address`, or -1. */
  find(address: number): number {
    const keys = this.keys;
    const slots = this.slots;
    const mask = this.mask;
    const key = address >>> 0;
    for (let slot = this.home(key); ; slot = (slot + 1) & mask) {
      const entry = slots[slot];
      if (entry === 0) return -1;
      if (keys[entry - 1] === key) return entry - 1;
    }
  }

  /** Indexes `entry` under keys[entry]; the caller makes sure that address is not indexed yet. */
  insert(entry: number): void {
    const mask = this.mask;
    let slot = this.home(this.keys[entry]);
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = entry + 1;
  }

  /** Removes `entry` (still under keys[entry]); backward-shift deletion keeps probe chains whole without tombstones. */
  remove(entry: number): void {
    const slots = this.slots;
    const mask = this.mask;
    let hole = this.home(this.keys[entry]);
    while (slots[hole] !== entry + 1) {
      if (slots[hole] === 0) return; // not indexed
      hole = (hole + 1) & mask;
    }
    // Shift later members of the cluster back into the hole when their home slot allows it.
    for (let next = (hole + 1) & mask; slots[next] !== 0; next = (next + 1) & mask) {
      const home = this.home(this.keys[slots[next] - 1]);
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        slots[hole] = slots[next];
        hole = next;
      }
    }
    slots[hole] = 0;
  }
}
