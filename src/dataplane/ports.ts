// What the data plane knows of its ports, flattened into typed arrays so a
// stage compares a destination MAC or reads an MTU by port index.
//
// The kernel owns the ports: their addresses, MAC, MTU and link state change
// while vipr runs (an address added by keepalived, a cable pulled, an MTU
// raised), and the control plane writes the new values here in place. Stages
// read them per batch; the slow path (ARP, ICMP) reads them per frame, so
// nothing may keep a copy.

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

export class PortTable {
  readonly count: number;
  readonly names: string[];
  /** 6 bytes per port. */
  readonly mac: Uint8Array;
  readonly mtu: Uint16Array;
  /** The address ARP requests and ICMP errors leave from, per port (the kernel's first address; 0: none). */
  readonly primaryAddress: Uint32Array;
  /** Per port, replaced as a whole when the kernel's addresses change (never edited in place). */
  readonly addresses: PortAddress[][];
  /** 1 while the port's link is up (admin up and carrier) and it has an address, per port. */
  readonly linkUp: Uint8Array;
  /** The link state in words, for the control plane: "up", "down (no carrier)", "absent", ... */
  readonly link: string[];

  constructor(ports: PortDescription[]) {
    if (ports.length > MAX_PORTS) throw new RangeError(`at most ${MAX_PORTS} ports`);
    this.count = ports.length;
    this.names = ports.map((p) => p.name);
    this.mac = new Uint8Array(ports.length * 6);
    this.mtu = new Uint16Array(ports.length);
    this.primaryAddress = new Uint32Array(ports.length);
    this.linkUp = new Uint8Array(ports.length);
    this.addresses = ports.map(() => []);
    this.link = ports.map((p) => (p.up === false ? 'down' : 'up'));
    ports.forEach((p, i) => {
      this.mac.set(p.mac, i * 6);
      this.mtu[i] = p.mtu;
      this.setAddresses(i, p.addresses);
      this.linkUp[i] = p.up === false ? 0 : 1;
    });
  }

  /** The port's IPv4 addresses now (control plane: the kernel changed them). */
  setAddresses(port: number, addresses: readonly PortAddress[]): void {
    this.addresses[port] = addresses.map((a) => ({ address: a.address >>> 0, length: a.length }));
    this.primaryAddress[port] = addresses.length > 0 ? addresses[0].address >>> 0 : 0;
  }

  /** Whether `address` is one of the port's own. */
  isOwnAddress(port: number, address: number): boolean {
    for (const a of this.addresses[port]) if (a.address === address >>> 0) return true;
    return false;
  }

  /** Whether `address` is inside one of the port's subnets. */
  onConnectedSubnet(port: number, address: number): boolean {
    for (const a of this.addresses[port]) {
      const mask = a.length === 0 ? 0 : (~0 << (32 - a.length)) >>> 0;
      if (((a.address ^ address) & mask) >>> 0 === 0) return true;
    }
    return false;
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
