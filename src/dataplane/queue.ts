// A queue of frames between two threads: one writes, the other reads (a
// single-producer, single-consumer ring in a SharedArrayBuffer). It is how the
// data plane on a worker thread hands the control plane its slow-path work
// (ARP frames to learn from, frames to hold, trace copies) and how the control
// plane hands frames back (held frames, ARP requests it built).
//
// Records are fixed size: a few numbers and up to `slotSize` bytes of frame,
// copied in and out (rare work, small frames). A full queue refuses the record
// and counts it; nothing blocks. The consumer's thread sleeps in its event
// loop, so the producer rings a doorbell (the caller posts a message) only when
// the queue goes from quiet to busy: one message per burst, not per frame.

import { allocate } from './memory.js';

/** Numbers per record besides the frame: kind, port, length and five of the kind's own. */
export const RECORD_FIELDS = 8;
const HEAD = 0;
const TAIL = 1;
const DOORBELL = 2;
const REFUSED = 3;

export interface FrameQueueBuffers {
  capacity: number;
  slotSize: number;
  control: ArrayBufferLike;
  fields: ArrayBufferLike;
  data: ArrayBufferLike;
}

export class FrameQueue {
  readonly capacity: number;
  readonly slotSize: number;
  /** head, tail, doorbell, refused: counters that wrap at 2^32 (the capacity is a power of two, so indices stay right). */
  private readonly control: Uint32Array;
  /** RECORD_FIELDS numbers per record. */
  readonly fields: Int32Array;
  readonly data: Uint8Array;

  constructor(capacity: number, slotSize: number, buffers?: FrameQueueBuffers) {
    this.capacity = buffers?.capacity ?? capacity;
    this.slotSize = buffers?.slotSize ?? slotSize;
    this.control = buffers ? new Uint32Array(buffers.control) : allocate(Uint32Array, 4, 'shared');
    if ((this.capacity & (this.capacity - 1)) !== 0) throw new RangeError('FrameQueue: capacity must be a power of two');
    this.fields = buffers ? new Int32Array(buffers.fields) : allocate(Int32Array, this.capacity * RECORD_FIELDS, 'shared');
    this.data = buffers ? new Uint8Array(buffers.data) : allocate(Uint8Array, this.capacity * this.slotSize, 'shared');
  }

  static attach(buffers: FrameQueueBuffers): FrameQueue {
    return new FrameQueue(0, 0, buffers);
  }

  buffers(): FrameQueueBuffers {
    return { capacity: this.capacity, slotSize: this.slotSize, control: this.control.buffer, fields: this.fields.buffer, data: this.data.buffer };
  }

  /**
   * Producer: the record index to fill (fields at index * RECORD_FIELDS, frame
   * bytes at index * slotSize), or -1 when the queue is full (counted).
   * Nothing is visible to the consumer until commit().
   */
  reserve(): number {
    const tail = this.control[TAIL];
    if (((tail - Atomics.load(this.control, HEAD)) >>> 0) >= this.capacity) {
      Atomics.add(this.control, REFUSED, 1);
      return -1;
    }
    return tail % this.capacity;
  }

  /** Producer: publishes the reserved record; true when the consumer must be woken (ring the doorbell). */
  commit(): boolean {
    Atomics.store(this.control, TAIL, (this.control[TAIL] + 1) >>> 0);
    return Atomics.compareExchange(this.control, DOORBELL, 0, 1) === 0;
  }

  /**
   * Consumer: calls `take(index)` for each waiting record in order, then frees
   * them. Returns how many. Call when woken; it re-arms the doorbell first, so
   * a record published meanwhile rings again rather than being missed.
   */
  drain(take: (index: number) => void): number {
    Atomics.store(this.control, DOORBELL, 0);
    const tail = Atomics.load(this.control, TAIL);
    let head = this.control[HEAD];
    let count = 0;
    while (head !== tail) {
      take(head % this.capacity);
      head = (head + 1) >>> 0;
      count++;
      Atomics.store(this.control, HEAD, head); // one at a time: the producer gets room back at once
    }
    return count;
  }

  /** Records refused because the queue was full. */
  get refused(): number {
    return Atomics.load(this.control, REFUSED);
  }

  /** Records waiting. */
  get length(): number {
    return (Atomics.load(this.control, TAIL) - Atomics.load(this.control, HEAD)) >>> 0;
  }
}
