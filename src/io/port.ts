// A port backend: receive and send whole batches on one interface.
// Narrow on purpose: the pcap, packet-ring and AF_XDP backends implement the
// same few calls, and nothing else in vipr knows which one runs.

import type { FrameBatch } from '../dataplane/batch.js';
import type { TxPort } from '../dataplane/ports.js';

/** Where a port delivers received frames: the shared RX batch and the scheduler that processes it. */
export interface RxSink {
  readonly batch: FrameBatch;
  /** Frames were appended: process them soon (once per event-loop turn). */
  pending(): void;
  /** The batch is full: process it now, before appending more. */
  full(): void;
  /** A frame was too long for a slot (jumbo frames, or offloads left on). */
  tooLong(port: number): void;
}

export interface Port extends TxPort {
  readonly name: string;
  readonly index: number;
  /** Starts delivering received frames to `sink`. */
  open(sink: RxSink): void;
  close(): void;
  /** Backend counters (kernel drops, checksums completed, ...), read rarely. */
  stats?(): Record<string, number>;
  /**
   * Backends that sort frames before the kernel sees them (AF_XDP: transit to
   * vipr, the rest to the kernel) must know the box's IPv4 addresses, every
   * interface's, host order; the daemon calls this whenever they change.
   */
  setLocalAddresses?(addresses: readonly number[]): void;
  /** ... and the port's MAC, when it changes. */
  setMac?(mac: Uint8Array): void;
}

