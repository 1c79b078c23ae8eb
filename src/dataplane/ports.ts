// What the data plane knows of its ports, flattened into typed arrays so a
// stage compares a destination MAC or reads an MTU by port index.
//
// The kernel owns the ports: their addresses, MAC, MTU and link state change
// while vipr runs (an address added by keepalived, a cable pulled, an MTU
// raised), and the control plane writes the new values here in place. Stages
// read them per batch; the slow path (ARP, ICMP) reads them per frame, so
// nothing may keep a copy.

import { allocate, type Memory } from './memory.js';

export interface PortAddress {
  address: number;
  length: number;
}

export interface PortDescription {
  name: string;
  mac: Uint8Array;
  mtu: number;
  addresses: PortAddress[];
  /** Link up (admin up and carrier); true when absent (in-memory ports). */
  up?: boolean;
}

/** Up to 255 ports: port indices live in Uint8Arrays of the batch. */
export const MAX_PORTS = 255;

/**
 * IPv4 addresses kept per port where the data plane reads them: the kernel
 * allows more, but a router port with over 256 (a VRRP instance with that many
 * virtual addresses on one link) is refused with a warning by the control plane.
 */
export const MAX_PORT_ADDRESSES = 256;

/** The port table's buffers, to attach a worker's view (PortTable.attach). */
export interface PortTableBuffers {
  names: string[];
  mac: ArrayBufferLike;
  mtu: ArrayBufferLike;
  linkUp: ArrayBufferLike;
  primaryAddress: ArrayBufferLike;
  addressValues: ArrayBufferLike;
  addressLengths: ArrayBufferLike;
  addressCounts: ArrayBufferLike;
  addressVersions: ArrayBufferLike;
}

export class PortTable {
  readonly count: number;
  readonly names: string[];
  /** 6 bytes per port. */
  readonly mac: Uint8Array;
  readonly mtu: Uint16Array;
  /** The address ARP requests and ICMP errors leave from, per port (the kernel's first address; 0: none). */
  readonly primaryAddress: Uint32Array;
  /** 1 while the port's link is up (admin up and carrier) and it has an address, per port. */
  readonly linkUp: Uint8Array;
  /**
   * The addresses as the data plane reads them: MAX_PORT_ADDRESSES slots per
   * port (value, prefix length) and a count. The control plane rewrites a
   * port's list while a worker may be reading it, so each port has a version
   * (a seqlock): odd while a write is under way; a reader that sees it change
   * reads again. Only slow paths read addresses (ARP, ICMP sources).
   */
  private readonly addressValues: Uint32Array;
  private readonly addressLengths: Uint8Array;
  private readonly addressCounts: Uint16Array;
  private readonly addressVersions: Int32Array;
  /**
   * Control plane only: per port, replaced as a whole when the kernel's
   * addresses change (never edited in place). Empty in a worker's view.
   */
  readonly addresses: PortAddress[][];
  /** The link state in words, for the control plane: "up", "down (no carrier)", "absent", ... */
  readonly link: string[];

  constructor(ports: PortDescription[], memory: Memory = 'local', buffers?: PortTableBuffers) {
    if (ports.length > MAX_PORTS) throw new RangeError(`at most ${MAX_PORTS} ports`);
    const n = buffers ? buffers.names.length : ports.length;
    this.count = n;
    this.names = buffers ? buffers.names : ports.map((p) => p.name);
    this.mac = buffers ? new Uint8Array(buffers.mac) : allocate(Uint8Array, n * 6, memory);
    this.mtu = buffers ? new Uint16Array(buffers.mtu) : allocate(Uint16Array, n, memory);
    this.primaryAddress = buffers ? new Uint32Array(buffers.primaryAddress) : allocate(Uint32Array, n, memory);
    this.linkUp = buffers ? new Uint8Array(buffers.linkUp) : allocate(Uint8Array, n, memory);
    this.addressValues = buffers ? new Uint32Array(buffers.addressValues) : allocate(Uint32Array, n * MAX_PORT_ADDRESSES, memory);
    this.addressLengths = buffers ? new Uint8Array(buffers.addressLengths) : allocate(Uint8Array, n * MAX_PORT_ADDRESSES, memory);
    this.addressCounts = buffers ? new Uint16Array(buffers.addressCounts) : allocate(Uint16Array, n, memory);
    this.addressVersions = buffers ? new Int32Array(buffers.addressVersions) : allocate(Int32Array, n, memory);
    this.addresses = Array.from({ length: n }, () => []);
    this.link = ports.map((p) => (p.up === false ? 'down' : 'up'));
    ports.forEach((p, i) => {
      this.mac.set(p.mac, i * 6);
      this.mtu[i] = p.mtu;
      this.setAddresses(i, p.addresses);
      this.linkUp[i] = p.up === false ? 0 : 1;
    });
  }

  /** A worker's view of a table made on the main thread (same memory, no control-plane state). */
  static attach(buffers: PortTableBuffers): PortTable {
    return new PortTable([], 'shared', buffers);
  }

  buffers(): PortTableBuffers {
    return {
      names: this.names, mac: this.mac.buffer, mtu: this.mtu.buffer, linkUp: this.linkUp.buffer,
      primaryAddress: this.primaryAddress.buffer, addressValues: this.addressValues.buffer,
      addressLengths: this.addressLengths.buffer, addressCounts: this.addressCounts.buffer,
      addressVersions: this.addressVersions.buffer,
    };
  }

  /** The port's IPv4 addresses now (control plane: the kernel changed them). Keeps the first MAX_PORT_ADDRESSES. */
  setAddresses(port: number, addresses: readonly PortAddress[]): void {
    this.addresses[port] = addresses.map((a) => ({ address: a.address >>> 0, length: a.length }));
    const kept = Math.min(addresses.length, MAX_PORT_ADDRESSES);
    const base = port * MAX_PORT_ADDRESSES;
    Atomics.add(this.addressVersions, port, 1); // odd: a write is under way
    for (let i = 0; i < kept; i++) {
      this.addressValues[base + i] = addresses[i].address >>> 0;
      this.addressLengths[base + i] = addresses[i].length;
    }
    this.addressCounts[port] = kept;
    this.primaryAddress[port] = kept > 0 ? addresses[0].address >>> 0 : 0;
    Atomics.add(this.addressVersions, port, 1);
  }

  /** Whether `address` is one of the port's own. */
  isOwnAddress(port: number, address: number): boolean {
    const a = address >>> 0;
    for (;;) {
      const version = Atomics.load(this.addressVersions, port);
      let found = false;
      if ((version & 1) === 0) {
        const base = port * MAX_PORT_ADDRESSES;
        for (let i = 0, n = this.addressCounts[port]; i < n && !found; i++) found = this.addressValues[base + i] === a;
        if (Atomics.load(this.addressVersions, port) === version) return found;
      }
    }
  }

  /** Whether `address` is inside one of the port's subnets. */
  onConnectedSubnet(port: number, address: number): boolean {
    return this.addressOnSubnet(port, address) !== -1;
  }

  /** The port's address on the subnet containing `address`, else its primary address. */
  sourceAddressFor(port: number, address: number): number {
    const own = this.addressOnSubnet(port, address);
    return own === -1 ? this.primaryAddress[port] : own;
  }

  /**
   * Why `sender` cannot be a neighbour on any port: 1 = it is one of the
   * router's own addresses, 2 = a subnet's network or broadcast address (of a
   * /30 or larger: /31 and /32 have none, RFC 3021); 0 = it can.
   */
  claimedBy(sender: number): number {
    const s = sender >>> 0;
    for (let port = 0; port < this.count; port++) {
      for (;;) {
        const version = Atomics.load(this.addressVersions, port);
        if ((version & 1) !== 0) continue;
        let verdict = 0;
        const base = port * MAX_PORT_ADDRESSES;
        for (let i = 0, n = this.addressCounts[port]; i < n && verdict === 0; i++) {
          const own = this.addressValues[base + i];
          const length = this.addressLengths[base + i];
          if (own === s) verdict = 1;
          else if (length <= 30) {
            const hostBits = ~(length === 0 ? 0 : (~0 << (32 - length))) >>> 0;
            const network = (own & ~hostBits) >>> 0;
            if (s === network || s === (network | hostBits) >>> 0) verdict = 2;
          }
        }
        if (Atomics.load(this.addressVersions, port) !== version) continue;
        if (verdict !== 0) return verdict;
        break;
      }
    }
    return 0;
  }

  macOf(port: number): Uint8Array {
    return this.mac.subarray(port * 6, port * 6 + 6);
  }

  /** The port's own address whose subnet holds `address`, or -1. */
  private addressOnSubnet(port: number, address: number): number {
    for (;;) {
      const version = Atomics.load(this.addressVersions, port);
      if ((version & 1) !== 0) continue;
      let own = -1;
      const base = port * MAX_PORT_ADDRESSES;
      for (let i = 0, n = this.addressCounts[port]; i < n && own === -1; i++) {
        const length = this.addressLengths[base + i];
        const mask = length === 0 ? 0 : (~0 << (32 - length)) >>> 0;
        const value = this.addressValues[base + i];
        if (((value ^ address) & mask) >>> 0 === 0) own = value;
      }
      if (Atomics.load(this.addressVersions, port) === version) return own;
    }
  }
}

/** What the data plane needs of a port backend to send. */
export interface TxPort {
  /** Sends the frames in `slots[0..count)` of `batch`; returns how many were sent. */
  txBurst(batch: import('./batch.js').FrameBatch, slots: Uint16Array, count: number): number;
  /** Sends one frame from `buf[0..length)` (slow path: ARP, ICMP, hold-queue flush). */
  sendFrame(buf: Buffer, length: number): boolean;
}
