// The packet-ring port backend, through vipr-native (native-bindings/): an
// AF_PACKET socket per port with a memory-mapped RX ring and batched TX.
//
// Receive: the addon watches the socket with a uv_poll_t and calls `drain`
// once per readable wakeup (not per frame); `drain` pulls whole bursts from
// the ring straight into the shared RX batch - the one copy - until the ring
// is empty or the per-wakeup budget is spent, then asks the sink to process
// the batch. Send: a burst of slots is one sendmmsg (or one TX-ring kick).
// The socket sets PACKET_IGNORE_OUTGOING, so vipr never re-reads what it sent.
//
// Frames reach the batch "as on the wire": a VLAN tag the kernel moved into
// the ring header is put back, and a TCP/UDP checksum the sender left to
// offload (TP_STATUS_CSUMNOTREADY: a veth with tx checksumming on) is
// completed in C (IPv4 only; see docs/ARCHITECTURE.md, pitfalls of packet sockets).

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SLOT_SIZE, type FrameBatch } from '../dataplane/batch.js';
import type { Port, RxSink } from './port.js';

const require = createRequire(import.meta.url);

/** Counters the addon keeps per port, indices into `RingPort.counters` (mirrors native-bindings/src/vipr_port.c). */
export const enum RingCounter {
  rxFrames = 0,
  rxBytes,
  /** Longer than a batch slot (or cut short by the ring frame): skipped. */
  rxTooLong,
  /** CSUMNOTREADY IPv4 TCP/UDP frames whose checksum the addon completed. */
  rxChecksumCompleted,
  /** CSUMNOTREADY frames that are not IPv4 TCP/UDP: left as they were. */
  rxChecksumUnhandled,
  /** VLAN tags put back into frames from the ring header. */
  rxVlanRestored,
  /** Readable wakeups delivered to JS. */
  rxWakeups,
  txFrames,
  txBytes,
  /** Frames not sent: device queue full, or refused by the kernel. */
  txFailed,
  /** Bursts cut short because the device queue (or TX ring) was full. */
  txBlocked,
  /** PACKET_STATISTICS: frames the socket saw, drops included (updated by `stats()`). */
  kernelPackets,
  /** PACKET_STATISTICS: frames dropped because the RX ring was full. */
  kernelDrops,
  /** PACKET_STATISTICS: TPACKET_V3 queue freezes. */
  kernelFreezes,
  /** Errors reported on the socket (ENETDOWN while the link is down): read, counted, and polling goes on. */
  socketErrors,
  /** Frames the box itself sent, handed to a fanout group's socket (kernels without PACKET_FANOUT_FLAG_IGNORE_OUTGOING): skipped. */
  rxOutgoing,
  COUNT,
}

export const RING_COUNTER_NAMES: readonly string[] = [
  'rxFrames', 'rxBytes', 'rxTooLong', 'rxChecksumCompleted', 'rxChecksumUnhandled', 'rxVlanRestored',
  'rxWakeups', 'txFrames', 'txBytes', 'txFailed', 'txBlocked', 'kernelPackets', 'kernelDrops', 'kernelFreezes',
  'socketErrors', 'rxOutgoing',
];

export interface RingPortOptions {
  /**
   * 'v2' (default): the kernel hands frames over one by one, so a lone packet
   * wakes vipr at once. 'v3': frames are handed over a block at a time, when
   * the block fills or `retireTimeoutMs` expires - fewer wakeups under load,
   * but up to that timeout of added latency at low rates (docs/ARCHITECTURE.md, pitfalls of packet sockets).
   */
  rxRing?: 'v2' | 'v3';
  /** Ring frame size, a power of two. 2048 holds a 1518-byte frame plus the ring's ~80-byte header. */
  frameSize?: number;
  /** Ring capacity in frames: 4096 x 2 KB = 8 MB absorbs ~4 ms of 1 Mpps while JS is busy. */
  frameCount?: number;
  /** Ring block size, a power of two of at least a page. Default 64 KB (v2) or 256 KB (v3). */
  blockSize?: number;
  /** TPACKET_V3 block retire timeout in ms (1 is the kernel's minimum). */
  retireTimeoutMs?: number;
  /** 'sendmmsg' (default): one system call per burst, no extra copy. 'ring': copy into a TX ring, one kick. */
  tx?: 'sendmmsg' | 'ring';
  /** TX ring frame size (tx: 'ring'): frames larger than this minus 32 bytes are refused. */
  txFrameSize?: number;
  txFrameCount?: number;
  /** PACKET_QDISC_BYPASS: send straight to the driver, skipping the qdisc (and its backpressure). */
  qdiscBypass?: boolean;
  /**
   * Open the interface in this network namespace (a name under /run/netns, as
   * `ip netns add` makes, or an absolute path) while the process stays where
   * it is: the socket keeps the namespace it was created in.
   */
  netns?: string;
  /** PACKET_FANOUT: several sockets (processes) share one interface's frames. */
  fanout?: { id: number; mode?: 'hash' | 'lb' | 'cpu' | 'rollover' | 'qm' };
  /**
   * Busy polling (off by default): instead of waiting for readiness, drain the
   * ring on every event-loop turn (setImmediate). Lowest latency, but it keeps
   * one core at 100% even when idle. Meant for benchmarks and dedicated boxes.
   */
  busyPoll?: boolean;
  /**
   * Frames taken per wakeup before yielding to the event loop, so one busy
   * port cannot starve the others, timers or the control socket. Leftovers
   * wake the loop again at once (the poll is level-triggered).
   */
  budget?: number;
}

/** Defaults, chosen in ring-port.ts and native-bindings together; see RingPortOptions. */
export const RING_DEFAULT_BUDGET = 1024;

/** The addon's surface (native-bindings/src/vipr_port.c). */
export interface ViprNative {
  /** Number of counters a port needs in its Float64Array. */
  readonly COUNTERS: number;
  open(ifname: string, options: RingPortOptions, counters: Float64Array): NativeHandle;
  rxBurst(handle: NativeHandle, data: Uint8Array, firstSlot: number, maxFrames: number, slotSize: number,
    lengths: Uint16Array, ports: Uint8Array, portIndex: number): number;
  txBurst(handle: NativeHandle, data: Uint8Array, slots: Uint16Array, count: number, slotSize: number,
    lengths: Uint16Array): number;
  send(handle: NativeHandle, buffer: Uint8Array, length: number): boolean;
  stats(handle: NativeHandle): void;
  start(handle: NativeHandle, onReadable: (status: number) => void): void;
  stop(handle: NativeHandle): void;
  close(handle: NativeHandle): void;
  info(handle: NativeHandle): RingInfo;
  /** The CPUs the calling thread may run on. */
  getThreadAffinity(): number[];
  /** Pins the calling thread (only it: sched_setaffinity(0, ...)) to these CPUs. */
  setThreadAffinity(cpus: number[]): void;
  /** execve(2): replaces the process image; returns only by throwing. */
  exec(path: string, argv: string[], env: string[]): never;
}

export interface RingInfo {
  version: 2 | 3;
  ifindex: number;
  fd: number;
  rxFrames: number;
  rxFrameSize: number;
  rxBlocks: number;
  rxBlockSize: number;
  txFrames: number;
  tx: 'sendmmsg' | 'ring';
  ringBytes: number;
  closed: boolean;
}

/** Opaque: the addon's port. */
export type NativeHandle = { readonly __viprNativeHandle: unique symbol };

export class NativeNotBuiltError extends Error {
  readonly code = 'ENATIVE';
}

let native: ViprNative | undefined;

/**
 * Loads the addon: the `vipr-native` dependency (a link to native-bindings/,
 * built by node-gyp at `npm ci`), else native-bindings/ beside src/ or dist/.
 * Throws a NativeNotBuiltError with a one-line fix when it is not built.
 */
export function loadNative(): ViprNative {
  if (native) return native;
  const candidates = [
    'vipr-native',
    fileURLToPath(new URL('../../native-bindings/index.js', import.meta.url)), // from src/io
    fileURLToPath(new URL('../../../native-bindings/index.js', import.meta.url)), // from dist/src/io
  ];
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      native = require(candidate) as ViprNative;
      return native;
    } catch (error) {
      firstError ??= error;
    }
  }
  throw new NativeNotBuiltError('vipr-native is not built: run `bash scripts/setup.sh`', { cause: firstError });
}

export class RingPort implements Port {
  /** The addon's counters for this port, written in place by C (see RingCounter). */
  readonly counters: Float64Array;
  private readonly native: ViprNative;
  private handle: NativeHandle | undefined;
  private sink: RxSink | undefined;
  private readonly budget: number;
  private tooLongSeen = 0;
  private spin: NodeJS.Immediate | undefined;

  constructor(readonly name: string, readonly index: number, readonly options: RingPortOptions = {}, counters?: Float64Array) {
    this.native = loadNative();
    // Shared memory when the port runs on a data-plane worker and the main thread reads its counts.
    this.counters = counters ?? new Float64Array(this.native.COUNTERS);
    if (this.counters.length < this.native.COUNTERS) throw new RangeError(`ring port ${name}: counters need ${this.native.COUNTERS} entries`);
    this.budget = options.budget ?? RING_DEFAULT_BUDGET;
    if (!(this.budget >= 1)) throw new RangeError(`ring port ${name}: budget must be at least 1`);
  }

  /** Opens the socket and its ring (throws with the interface name and errno) and starts delivering to `sink`. */
  open(sink: RxSink): void {
    if (this.handle) throw new Error(`ring port ${this.name} is already open`);
    this.handle = this.native.open(this.name, this.options, this.counters); // it ignores busyPoll and budget
    this.sink = sink;
    this.tooLongSeen = this.counters[RingCounter.rxTooLong];
    if (this.options.busyPoll) {
      const spin = (): void => {
        this.drain();
        if (this.handle) this.spin = setImmediate(spin);
      };
      this.spin = setImmediate(spin);
    } else {
      this.native.start(this.handle, this.drain);
    }
  }

  /**
   * Moves frames from the ring into the sink's batch: whole bursts, up to the
   * budget, processing the batch whenever it fills. Called once per wakeup.
   */
  readonly drain = (): void => {
    const handle = this.handle;
    const sink = this.sink;
    if (!handle || !sink) return;
    const batch = sink.batch;
    const native = this.native;
    let budget = this.budget;
    let received = 0;
    while (budget > 0) {
      if (batch.count === batch.capacity) sink.full();
      const room = Math.min(batch.capacity - batch.count, budget);
      if (room <= 0) break; // the sink did not empty the batch: leave the rest in the ring
      const n = native.rxBurst(handle, batch.data, batch.count, room, SLOT_SIZE, batch.length, batch.port, this.index);
      batch.count += n;
      received += n;
      budget -= n;
      if (n < room) break; // the ring is empty (skipped frames do not end a burst)
    }
    const tooLong = this.counters[RingCounter.rxTooLong];
    if (tooLong !== this.tooLongSeen) {
      for (let k = this.tooLongSeen; k < tooLong; k++) sink.tooLong(this.index);
      this.tooLongSeen = tooLong;
    }
    if (received > 0) sink.pending();
  };

  txBurst(batch: FrameBatch, slots: Uint16Array, count: number): number {
    if (!this.handle || count === 0) return 0;
    return this.native.txBurst(this.handle, batch.data, slots, count, SLOT_SIZE, batch.length);
  }

  sendFrame(buf: Buffer, length: number): boolean {
    if (!this.handle) return false;
    return this.native.send(this.handle, buf, length);
  }

  /** Folds the kernel's PACKET_STATISTICS into the counters and returns them by name (control plane). */
  stats(): Record<string, number> {
    if (this.handle) this.native.stats(this.handle);
    const out: Record<string, number> = {};
    for (let i = 0; i < RING_COUNTER_NAMES.length; i++) out[RING_COUNTER_NAMES[i]] = this.counters[i];
    return out;
  }

  /** Ring geometry and socket facts, for logs and tests; undefined when closed. */
  info(): RingInfo | undefined {
    return this.handle ? this.native.info(this.handle) : undefined;
  }

  close(): void {
    if (this.spin) clearImmediate(this.spin);
    this.spin = undefined;
    const handle = this.handle;
    if (!handle) return;
    this.native.stats(handle); // keep the kernel's last counts
    this.native.close(handle);
    this.handle = undefined;
    this.sink = undefined;
  }
}
