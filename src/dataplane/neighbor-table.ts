// Neighbour (ARP) entries in typed arrays, with an open-addressing index by
// IPv4 address so the data plane resolves a connected destination without a
// Map, strings or allocation. The control plane (resolver.ts) owns every
// write; the data plane reads state and the ready-made Ethernet header, from
// another thread when it runs on workers: an entry's state is written last
// (Atomics.store, a fence), so a reader that sees it usable sees its MAC.

import { AddressIndex } from './address-index.js';
import { allocate, type Memory } from './memory.js';

/** The table's shared buffers, to attach a worker's view (which only reads: find, state, MAC). */
export interface NeighborTableBuffers {
  capacity: number;
  address: ArrayBufferLike;
  port: ArrayBufferLike;
  state: ArrayBufferLike;
  ether: ArrayBufferLike;
  used: ArrayBufferLike;
  index: ArrayBufferLike;
}

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
  /** Address -> entry, over `address`. */
  private readonly index: AddressIndex;
  private readonly freeList: number[] = [];
  private highWater = 0;

  constructor(capacity: number, memory: Memory = 'local', buffers?: NeighborTableBuffers) {
    this.capacity = capacity;
    this.address = buffers ? new Uint32Array(buffers.address) : allocate(Uint32Array, capacity, memory);
    this.port = buffers ? new Uint8Array(buffers.port) : allocate(Uint8Array, capacity, memory);
    this.state = buffers ? new Uint8Array(buffers.state) : allocate(Uint8Array, capacity, memory);
    this.ether = buffers ? new Uint8Array(buffers.ether) : allocate(Uint8Array, capacity * ETHER_PAIR, memory);
    this.etherWords = new Uint32Array(this.ether.buffer, 0, (capacity * ETHER_PAIR) >> 2);
    this.used = buffers ? new Uint8Array(buffers.used) : allocate(Uint8Array, capacity, memory);
    this.index = new AddressIndex(this.address, capacity, memory, buffers?.index);
  }

  /** A worker's view: lookups and reads over the main thread's table; only the resolver there writes. */
  static attach(buffers: NeighborTableBuffers): NeighborTable {
    return new NeighborTable(buffers.capacity, 'shared', buffers);
  }

  buffers(): NeighborTableBuffers {
    return {
      capacity: this.capacity, address: this.address.buffer, port: this.port.buffer, state: this.state.buffer,
      ether: this.ether.buffer, used: this.used.buffer, index: this.index.slots.buffer,
    };
  }

  /** Entry index for `address`, or -1. Data-plane safe: no allocation. */
  find(address: number): number {
    return this.index.find(address);
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
    const e = entry * ETHER_PAIR;
    this.ether.fill(0, e, e + 6);
    this.ether.set(portMac, e + 6);
    Atomics.store(this.state, entry, NeighborState.incomplete);
    this.index.insert(entry); // findable only once complete
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

  /** Removes an entry. */
  remove(entry: number): void {
    if (this.state[entry] === NeighborState.free) return;
    this.index.remove(entry);
    Atomics.store(this.state, entry, NeighborState.free);
    this.address[entry] = 0;
    this.freeList.push(entry);
  }

  get size(): number {
    return this.highWater - this.freeList.length;
  }
}
