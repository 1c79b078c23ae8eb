// Ports and the batch they fill, the same on the main thread (dataplane.workers:
// 0) and on each data-plane worker: the backend the config names, and the
// receive sink that processes the shared batch once per event-loop turn (or
// at once when it is full).

import type { IoBackend, RingConfig } from '../config/types.js';
import type { FrameBatch } from '../dataplane/batch.js';
import type { Port, RxSink } from '../io/port.js';
import { PcapPort } from '../io/pcap-port.js';
import { RingPort } from '../io/ring-port.js';

export interface PortHostOptions {
  io: IoBackend;
  ring: RingConfig;
  /** With several workers: each port's sockets form a PACKET_FANOUT group (flow hash), id = base + port index. */
  fanoutBase?: number;
  /** Per port: where the ring backend counts (shared memory on a worker). */
  backendCounters?: Float64Array[];
}

/** The port backends for `names`, not opened yet. */
export function makePorts(names: readonly string[], options: PortHostOptions): Port[] {
  const ring = options.ring;
  return names.map((name, index) =>
    options.io === 'ring'
      ? new RingPort(name, index, {
        rxRing: ring.rxRing, tx: ring.tx, qdiscBypass: ring.qdiscBypass, busyPoll: ring.busyPoll,
        ...(options.fanoutBase === undefined ? {} : { fanout: { id: (options.fanoutBase + index) & 0xffff, mode: 'hash' as const } }),
      }, options.backendCounters?.[index])
      : new PcapPort(name, index));
}

/**
 * The receive sink: ports append to `batch`; it is processed once per
 * event-loop turn (setImmediate), or at once when full. `onTooLong` counts a
 * frame too long for a slot (the port never hands it over).
 */
export function batchSink(batch: FrameBatch, process: () => void, onTooLong: () => void): RxSink {
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    process();
  };
  return {
    batch,
    pending: () => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(flush);
    },
    full: process,
    tooLong: onTooLong,
  };
}
