// Neighbour (ARP) entries in typed arrays, with an open-addressing index by
// IPv4 address so the data plane resolves a connected destination without a
// Map, strings or allocation. The control plane (resolver.ts) owns every
// write; the data plane reads state and the ready-made Ethernet header.

export const enum NeighborState {
  free = 0,
  /** ARP request sent, no answer yet: frames wait in the hold queue. */
  incomplete,
  /** Answered recently: forward. */
  reachable,
  /** Older than reachableMs, refresh in progress: still forward (RFC 4861's STALE/DELAY idea, as Linux does for ARP). */
  stale,
  /** Never answered: ICMP host unreachable. */
  failed,
}

export const NEIGHBOR_STATE_NAMES = ['free', 'incomplete', 'reachable', 'stale', 'failed'] as const;

/** Bytes of ready-made Ethernet header per entry: destination MAC then source MAC. */
export const ETHER_PAIR = 12;

export class NeighborTable {
  readonly capacity: number;
  readonly address: Uint32Array;
  readonly port: Uint8Array;
  readonly state: Uint8Array;
  /** Destination MAC (the neighbour's) and source MAC (the port's), copied onto each forwarded frame. */
  readonly ether: Uint8Array;
  /** `ether` as 32-bit words: three per entry, for the data plane's word copies. */
  readonly etherWords: Uint32Array;
  /** Set by the data plane when an entry forwards a frame; the resolver clears it when it ages entries. */
  readonly used: Uint8Array;
  /**
   * Linear-probing index: slot holds entry index + 1, 0 = empty. Twice the
   * capacity rounded up to a power of two keeps the load factor at or under
   * 0.5, where linear probing averages under 1.5 probes per hit.
   */
  private readonly index: Int32Array;
  private readonly indexMask: number;
  private readonly freeList: number[] = [];
  private highWater = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.address = new Uint32Array(capacity);
    this.port = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.ether = new Uint8Array(capacity * ETHER_PAIR);
    this.etherWords = new Uint32Array(this.ether.buffer);
    this.used = new Uint8Array(capacity);
    let size = 2;
    while (size < capacity * 2) size <<= 1;
    this.index = new Int32Array(size);
    this.indexMask = size - 1;
  }

  private static hash(address: number): number {
    // Fibonacci hashing spreads the low-entropy host bits of one subnet.
    return Math.imul(address, 0x9e3779b1) >>> 0;
  }

  /** Entry index for `address`, or -1. Data-plane safe: no allocation. */
  find(address: number): number {
    const mask = this.indexMask;
    let slot = (NeighborTable.hash(address) >>> 16) & mask;
    for (;;) {
      const entry = this.index[slot];
      if (entry === 0) return -1;
      if (this.address[entry - 1] === address >>> 0) return entry - 1;
      slot = (slot + 1) & mask;
    }
  }

  /** Adds an entry in state incomplete; returns its index, or -1 when full. */
  add(address: number, port: number, portMac: Uint8Array): number {
    const existing = this.find(address);
    if (existing >= 0) return existing;
    let entry: number;
    if (this.freeList.length > 0) entry = this.freeList.pop()!;
    else if (this.highWater < this.capacity) entry = this.highWater++;
    else return -1;
    this.address[entry] = address >>> 0;
    this.port[entry] = port;
    this.state[entry] = NeighborState.incomplete;
    const e = entry * ETHER_PAIR;
    this.ether.fill(0, e, e + 6);
    this.ether.set(portMac, e + 6);
    const mask = this.indexMask;
    let slot = (NeighborTable.hash(address) >>> 16) & mask;
    while (this.index[slot] !== 0) slot = (slot + 1) & mask;
    this.index[slot] = entry + 1;
    return entry;
  }

  setMac(entry: number, mac: Uint8Array, macOffset = 0): void {
    const e = entry * ETHER_PAIR;
    for (let i = 0; i < 6; i++) this.ether[e + i] = mac[macOffset + i];
  }

  macOf(entry: number): string {
    const e = entry * ETHER_PAIR;
    const parts: string[] = [];
    for (let i = 0; i < 6; i++) parts.push(this.ether[e + i].toString(16).padStart(2, '0'));
    return parts.join(':');
  }

  /** Removes an entry; backward-shift deletion keeps probe chains intact without tombstones. */
  remove(entry: number): void {
    if (this.state[entry] === NeighborState.free) return;
    const mask = this.indexMask;
    let slot = (NeighborTable.hash(this.address[entry]) >>> 16) & mask;
    while (this.index[slot] !== entry + 1) slot = (slot + 1) & mask;
    // Shift later members of the cluster back into the hole when their home slot allows it.
    let hole = slot;
    let next = (hole + 1) & mask;
    while (this.index[next] !== 0) {
      const home = (NeighborTable.hash(this.address[this.index[next] - 1]) >>> 16) & mask;
      const distanceToHole = (next - hole) & mask;
      const distanceToHome = (next - home) & mask;
      if (distanceToHome >= distanceToHole) {
        this.index[hole] = this.index[next];
        hole = next;
      }
      next = (next + 1) & mask;
    }
    this.index[hole] = 0;
    this.state[entry] = NeighborState.free;
    this.address[entry] = 0;
    this.freeList.push(entry);
  }

  get size(): number {
    return this.highWater - this.freeList.length;
  }
}
