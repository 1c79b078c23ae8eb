// What the data plane knows of its ports, flattened into typed arrays so a
// stage compares a destination MAC or reads an MTU by port index.

export interface PortAddress {
  address: number;
  length: number;
}

export interface PortDescription {
  name: string;
  mac: Uint8Array;
  mtu: number;
  addresses: PortAddress[];
}

/** Up to 255 ports: port indices live in Uint8Arrays of the batch. */
export const MAX_PORTS = 255;

export class PortTable {
  readonly count: number;
  readonly names: string[];
  /** 6 bytes per port. */
  readonly mac: Uint8Array;
  readonly mtu: Uint16Array;
  /** The address ARP requests and ICMP errors leave from, per port (first configured address). */
  readonly primaryAddress: Uint32Array;
  readonly addresses: PortAddress[][];

  constructor(ports: PortDescription[]) {
    if (ports.length > MAX_PORTS) throw new RangeError(`at most ${MAX_PORTS} ports`);
    this.count = ports.length;
    this.names = ports.map((p) => p.name);
    this.mac = new Uint8Array(ports.length * 6);
    this.mtu = new Uint16Array(ports.length);
    this.primaryAddress = new Uint32Array(ports.length);
    this.addresses = ports.map((p) => p.addresses.map((a) => ({ address: a.address >>> 0, length: a.length })));
    ports.forEach((p, i) => {
      this.mac.set(p.mac, i * 6);
      this.mtu[i] = p.mtu;
      this.primaryAddress[i] = p.addresses.length > 0 ? p.addresses[0].address >>> 0 : 0;
    });
  }

  macOf(port: number): Uint8Array {
    return this.mac.subarray(port * 6, port * 6 + 6);
  }

  /** The port's address on the subnet containing `address`, else its primary address (control plane only). */
  sourceAddressFor(port: number, address: number): number {
    for (const a of this.addresses[port]) {
      const mask = a.length === 0 ? 0 : (~0 << (32 - a.length)) >>> 0;
      if (((a.address ^ address) & mask) >>> 0 === 0) return a.address;
    }
    return this.primaryAddress[port];
  }
}

/** What the data plane needs of a port backend to send. */
export interface TxPort {
  /** Sends the frames in `slots[0..count)` of `batch`; returns how many were sent. */
  txBurst(batch: import('./batch.js').FrameBatch, slots: Uint16Array, count: number): number;
  /** Sends one frame from `buf[0..length)` (slow path: ARP, ICMP, hold-queue flush). */
  sendFrame(buf: Buffer, length: number): boolean;
}
