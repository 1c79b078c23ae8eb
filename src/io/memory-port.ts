// An in-memory port: frames "sent" are kept (or only counted), frames
// "received" are pushed by the caller. Like DPDK's ring/null PMDs, it lets
// unit tests and the pipeline benchmark run the real data plane without NICs.

import type { FrameBatch } from '../dataplane/batch.js';
import type { TxPort } from '../dataplane/ports.js';

export class MemoryPort implements TxPort {
  /** Copies of the frames sent, oldest first (when `keep` is on). */
  readonly sent: Buffer[] = [];
  sentCount = 0;

  constructor(readonly name: string, private readonly keep = true) {}

  txBurst(batch: FrameBatch, slots: Uint16Array, count: number): number {
    this.sentCount += count;
    if (this.keep) {
      for (let k = 0; k < count; k++) {
        const i = slots[k];
        this.sent.push(Buffer.from(batch.slots[i].subarray(0, batch.length[i])));
      }
    }
    return count;
  }

  sendFrame(buf: Buffer, length: number): boolean {
    this.sentCount++;
    if (this.keep) this.sent.push(Buffer.from(buf.subarray(0, length)));
    return true;
  }

  /** Returns and forgets what was sent. */
  take(): Buffer[] {
    return this.sent.splice(0);
  }
}
