// The pcap port backend, through the `cap` package (libpcap).
//
// Captures inbound frames only (`inbound` filter), so vipr never re-reads
// what it sent; libpcap's immediate mode hands frames over one by one.
// cap copies each frame into one Buffer and emits an event per frame; the
// backend copies it into the shared RX batch, and the batch is processed once
// per event-loop turn (or at once when full). This backend is the portable
// baseline: one call into C per frame each way; the packet-ring backend
// (native-bindings) is the fast one.

import { createRequire } from 'node:module';
import { SLOT_SIZE, type FrameBatch } from '../dataplane/batch.js';
import type { Port, RxSink } from './port.js';

const require = createRequire(import.meta.url);

interface CapHandle {
  open(device: string, filter: string, bufferSize: number, buffer: Buffer): string;
  close(): void;
  send(buffer: Buffer, length?: number): void;
  on(event: 'packet', listener: (length: number, truncated: boolean) => void): void;
  removeAllListeners(): void;
}

/**
 * Kernel ring per port. `cap` fixes the snapshot length at 65535 bytes, so
 * libpcap sizes every ring slot for a 64 KB frame whatever the real size:
 * 64 MB holds about 1,000 frames (50 ms at 20,000 packets/s) while JS is busy.
 * Measured: 16 MB held 256. The ring backend has no such limit.
 */
const PCAP_BUFFER_BYTES = 64 * 1024 * 1024;
/** cap copies a frame into this; 64 KB so an oversized frame is seen (and counted) rather than truncated. */
const CAPTURE_BUFFER_BYTES = 65536;

export class PcapPort implements Port {
  private cap: CapHandle | undefined;
  private readonly captureBuffer = Buffer.alloc(CAPTURE_BUFFER_BYTES);

  constructor(readonly name: string, readonly index: number) {}

  open(sink: RxSink): void {
    const { Cap } = require('cap') as { Cap: new () => CapHandle };
    const cap = new Cap();
    const linkType = cap.open(this.name, 'inbound', PCAP_BUFFER_BYTES, this.captureBuffer);
    if (linkType !== 'ETHERNET') {
      cap.close();
      throw new Error(`interface ${this.name}: link type ${linkType} is not Ethernet`);
    }
    const batch = sink.batch;
    const index = this.index;
    const buffer = this.captureBuffer;
    cap.on('packet', (length: number, truncated: boolean) => {
      if (truncated || length > SLOT_SIZE) {
        sink.tooLong(index);
        return;
      }
      if (batch.count === batch.capacity) sink.full();
      batch.push(index, buffer, length);
      sink.pending();
    });
    this.cap = cap;
  }

  txBurst(batch: FrameBatch, slots: Uint16Array, count: number): number {
    const cap = this.cap;
    if (!cap) return 0;
    let sent = 0;
    for (let k = 0; k < count; k++) {
      const i = slots[k];
      try {
        cap.send(batch.slots[i], batch.length[i]);
        sent++;
      } catch {
        // ENOBUFS and friends: counted as txFailed by the caller.
      }
    }
    return sent;
  }

  sendFrame(buf: Buffer, length: number): boolean {
    if (!this.cap) return false;
    try {
      this.cap.send(buf, length);
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (!this.cap) return;
    this.cap.removeAllListeners();
    this.cap.close();
    this.cap = undefined;
  }
}
