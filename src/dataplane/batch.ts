// A batch of frames in one preallocated buffer: the unit every data-plane
// stage works on (VPP's frame, DPDK's burst). Slots are fixed size and never
// move; stages loop over 0..count and address slot i at i * SLOT_SIZE.

/**
 * 2048 bytes holds the largest untagged Ethernet frame at the default MTU
 * (1514) with room for a VLAN tag, and keeps slots cache-line aligned.
 * Larger frames (jumbo, or GRO super-frames if offloads were left on) are
 * dropped and counted as `frameTooLong` by the port that receives them.
 */
export const SLOT_SIZE = 2048;

export class FrameBatch {
  readonly capacity: number;
  readonly data: Buffer;
  /** The same bytes as 32-bit words: slots are 4-byte aligned, so rewrite copies MACs a word at a time. */
  readonly words: Uint32Array;
  /** One Buffer view per slot, made once, for backends that need a Buffer starting at the frame. */
  readonly slots: Buffer[];
  /** Frame length per slot. */
  readonly length: Uint16Array;
  /** Ingress port index per slot. */
  readonly port: Uint8Array;
  /** Exit of the stage that saw the slot last (see `Next`): the verdict travels with the frame. */
  readonly next: Uint8Array;
  /** Why, for the exits that have a why: the Drop reason (drop, icmpError) or the Punt kind (punt, arp). */
  readonly reason: Uint16Array;
  /** Next-hop index from the FIB lookup (rewrite, tx, hold, fragment). */
  readonly nextHop: Uint16Array;
  /** Egress port per slot, set by rewrite. */
  readonly egress: Uint8Array;
  count = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
    // Large Buffer.alloc calls get their own ArrayBuffer (offset 0), which the word view needs.
    this.data = Buffer.alloc(capacity * SLOT_SIZE);
    if (this.data.byteOffset % 4 !== 0) throw new Error('batch buffer is not 4-byte aligned');
    this.words = new Uint32Array(this.data.buffer, this.data.byteOffset, (capacity * SLOT_SIZE) >> 2);
    this.slots = new Array(capacity);
    for (let i = 0; i < capacity; i++) this.slots[i] = this.data.subarray(i * SLOT_SIZE, (i + 1) * SLOT_SIZE);
    this.length = new Uint16Array(capacity);
    this.port = new Uint8Array(capacity);
    this.next = new Uint8Array(capacity);
    this.reason = new Uint16Array(capacity);
    this.nextHop = new Uint16Array(capacity);
    this.egress = new Uint8Array(capacity);
  }

  /** Copy a frame into the next free slot; false when the batch is full or the frame does not fit. */
  push(port: number, frame: Buffer, length: number): boolean {
    if (this.count === this.capacity || length > SLOT_SIZE) return false;
    const i = this.count++;
    frame.copy(this.data, i * SLOT_SIZE, 0, length);
    this.length[i] = length;
    this.port[i] = port;
    return true;
  }
}
