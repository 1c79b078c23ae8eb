// The AF_XDP port backend (io: xdp), through vipr-native's vipr_xdp addon
// (native-bindings/src/vipr_xdp_port.c): vipr's own XDP program on the
// interface, one AF_XDP socket per receive queue, and a packet socket that
// taps ARP.
//
// What reaches vipr: the program hands the sockets only transit IPv4 (to the
// port's MAC, not to one of the box's addresses) and passes everything else
// to the kernel, which never sees a transit frame (so no kernel-transit drop
// rule is needed), still answers for the router's addresses, and still gets
// ARP; vipr's copy of ARP comes from the tap. The program must know the box's
// addresses, so the daemon hands them over at start and whenever the kernel's
// change (setLocalAddresses), and the port's MAC when it changes (setMac).
//
// Receive and send work as in RingPort: the addon calls `drain` once per
// readable wakeup of any of the port's sockets; `drain` pulls whole bursts
// straight into the shared RX batch (the one copy: UMEM -> batch) until the
// rings are empty or the budget is spent. A burst sent is copied into UMEM
// frames and handed to the kernel with one kick (copy mode: a few, the kernel
// copies at most 32 frames per kick).
//
// The program is attached through a bpf_link owned by this process: when vipr
// exits, by SIGTERM or kill -9, the kernel detaches it. An interface is never
// left handing frames to a socket nobody reads.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SLOT_SIZE, type FrameBatch } from '../dataplane/batch.js';
import type { Port, RxSink } from './port.js';

const require = createRequire(import.meta.url);

/**
 * The addon's counters per port, in the order of the enum in
 * native-bindings/src/vipr_xdp_port.c: this one list gives both the indices
 * (XdpCounter) and the names stats() reports.
 */
export const XDP_COUNTER_NAMES = [
  'rxFrames', 'rxBytes',
  /** Longer than a batch slot: skipped. */
  'rxTooLong',
  /** Of rxFrames, ARP from the tap. */
  'rxArpFrames',
  /** VLAN-tagged ARP (not for an untagged port): skipped. */
  'rxArpTagged',
  /** Readable wakeups delivered to JS. */
  'rxWakeups',
  'txFrames', 'txBytes',
  /** Frames not sent: every transmit frame in flight, or refused. */
  'txFailed',
  /** Bursts cut short because every transmit frame was in flight. */
  'txBlocked',
  /** sendto() wakeups of the kernel's transmit. */
  'txKicks',
  /** recvfrom() wakeups of the driver's fill ring (zero-copy). */
  'fillWakeups',
  /** XDP_STATISTICS of the sockets: frames the kernel dropped, and why. */
  'kernelRxDropped', 'kernelRxInvalidDescs', 'kernelTxInvalidDescs', 'kernelRxRingFull', 'kernelRxFillRingEmpty',
  'kernelTxRingEmpty',
  /** ARP the tap's ring had no room for. */
  'arpKernelDrops',
  /** The XDP program's verdicts. */
  'xdpRedirected', 'xdpPassedLocalAddress', 'xdpPassedNotIpv4', 'xdpPassedOtherMac',
  /** Transit frames on a receive queue without a socket (queues added after start): the kernel drops them. */
  'xdpPassedNoSocket',
  /** Errors reported on the sockets (ENETDOWN while the link is down). */
  'socketErrors',
] as const;

export type XdpCounterName = (typeof XDP_COUNTER_NAMES)[number];
export const XdpCounter = Object.freeze(Object.fromEntries(XDP_COUNTER_NAMES.map((name, i) => [name, i]))) as {
  readonly [K in XdpCounterName]: number;
};

export interface XdpPortOptions {
  /** auto (default): the kernel tries zero-copy and falls back to copy; copy or zerocopy: that or fail. */
  mode?: 'auto' | 'copy' | 'zerocopy';
  /** auto (default): native (in the driver), else generic (after the kernel builds an skb); or only that one. */
  attach?: 'auto' | 'native' | 'generic';
  /**
   * UMEM frames per receive queue, a power of two: half on the fill ring for
   * receiving, half (queue 0) for sending. 4096 x 2 KB = 8 MB absorbs ~2 ms
   * of 1 Mpps while JS is busy, like the ring backend's 4096-frame ring.
   */
  frames?: number;
  /** Every IPv4 address of the box (host order): frames to them are the kernel's. */
  localAddresses?: readonly number[];
  /** Open the interface in this network namespace (a name under /run/netns, or a path). */
  netns?: string;
  /** Drain the rings on every event-loop turn instead of waiting for readiness: one core at 100%. */
  busyPoll?: boolean;
  /** Frames taken per wakeup before yielding to the event loop (see RingPortOptions.budget). */
  budget?: number;
}

/** How the kernel runs the port: logged at start. */
export interface XdpInfo {
  ifindex: number;
  queues: number;
  /** UMEM frames per queue. */
  frames: number;
  frameSize: number;
  /** The largest frame a UMEM frame holds after the kernel's headroom. */
  maxFrame: number;
  programId: number;
  localAddresses: number;
  mode: 'copy' | 'zerocopy';
  attach: 'native' | 'generic';
  /** attach: auto fell back to generic: why native was refused (errno text). */
  nativeRefused?: string;
  receivedPerQueue: number[];
  closed: boolean;
}

/** The addon's surface (native-bindings/src/vipr_xdp_port.c). */
export interface ViprXdpNative {
  readonly COUNTERS: number;
  readonly MAX_LOCAL_ADDRESSES: number;
  readonly MAX_FRAME: number;
  open(ifname: string, options: { mode?: string; attach?: string; frames?: number; netns?: string; localAddresses?: Uint32Array },
    counters: Float64Array): XdpHandle;
  rxBurst(handle: XdpHandle, data: Uint8Array, firstSlot: number, maxFrames: number, slotSize: number,
    lengths: Uint16Array, ports: Uint8Array, portIndex: number): number;
  txBurst(handle: XdpHandle, data: Uint8Array, slots: Uint16Array, count: number, slotSize: number, lengths: Uint16Array): number;
  send(handle: XdpHandle, buffer: Uint8Array, length: number): boolean;
  setLocalAddresses(handle: XdpHandle, addresses: Uint32Array): void;
  setMac(handle: XdpHandle, mac: Uint8Array): void;
  stats(handle: XdpHandle): void;
  start(handle: XdpHandle, onReadable: (status: number) => void): void;
  stop(handle: XdpHandle): void;
  close(handle: XdpHandle): void;
  info(handle: XdpHandle): XdpInfo;
}

/** Opaque: the addon's port. */
export type XdpHandle = { readonly __viprXdpHandle: unique symbol };

/** io: xdp cannot run on this box or interface; the message is one line and says why. */
export class XdpUnavailableError extends Error {
  readonly code = 'EXDP';
}

let native: ViprXdpNative | undefined;

/**
 * Loads the AF_XDP addon. Throws an XdpUnavailableError saying what to
 * install when it was not built (clang, libbpf-dev or libxdp-dev missing at
 * build time) or cannot be loaded (libxdp missing at run time).
 */
export function loadXdpNative(): ViprXdpNative {
  if (native) return native;
  const candidates = [
    'vipr-native/xdp.js',
    fileURLToPath(new URL('../../native-bindings/xdp.js', import.meta.url)), // from src/io
    fileURLToPath(new URL('../../../native-bindings/xdp.js', import.meta.url)), // from dist/src/io
  ];
  let loadError: Error | undefined;
  for (const candidate of candidates) {
    try {
      native = require(candidate) as ViprXdpNative;
      return native;
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      // "Cannot find module": try the next place. Anything else: it is there but does not load.
      if (e.code !== 'MODULE_NOT_FOUND') loadError ??= e;
    }
  }
  if (loadError) {
    throw new XdpUnavailableError(`the AF_XDP addon (vipr_xdp.node) does not load: ${loadError.message.split('\n')[0]}; install libxdp1 and libbpf1, or run \`bash scripts/setup.sh\``, { cause: loadError });
  }
  throw new XdpUnavailableError('vipr-native was built without AF_XDP (clang, libbpf-dev and libxdp-dev were missing at build time): `apt-get install clang libbpf-dev libxdp-dev` and run `bash scripts/setup.sh`');
}

export const XDP_DEFAULT_BUDGET = 1024;

export class XdpPort implements Port {
  /** The addon's counters for this port, written in place by C (see XdpCounter). */
  readonly counters: Float64Array;
  private readonly native: ViprXdpNative;
  private handle: XdpHandle | undefined;
  private sink: RxSink | undefined;
  private readonly budget: number;
  private tooLongSeen = 0;
  private spin: NodeJS.Immediate | undefined;
  private localAddresses: Uint32Array;

  constructor(readonly name: string, readonly index: number, readonly options: XdpPortOptions = {}, counters?: Float64Array) {
    this.native = loadXdpNative();
    // Shared memory when the port runs on a data-plane worker and the main thread reads its counts.
    this.counters = counters ?? new Float64Array(this.native.COUNTERS);
    if (this.native.COUNTERS !== XDP_COUNTER_NAMES.length) {
      throw new XdpUnavailableError(`the AF_XDP addon has ${this.native.COUNTERS} counters, this vipr expects ${XDP_COUNTER_NAMES.length}: run \`bash scripts/setup.sh\``);
    }
    this.budget = options.budget ?? XDP_DEFAULT_BUDGET;
    if (!(this.budget >= 1)) throw new RangeError(`xdp port ${name}: budget must be at least 1`);
    this.localAddresses = this.toLocal(options.localAddresses ?? []);
  }

  /**
   * Attaches the program and opens the sockets without delivering frames yet
   * (they wait in the rings until open(sink)): the daemon does this first, to
   * know whether io: xdp works before it builds the rest. Throws with the
   * interface, the step and the reason in one line. Idempotent.
   */
  attach(): void {
    if (this.handle) return;
    const { mode, attach, frames, netns } = this.options;
    this.handle = this.native.open(this.name, { mode, attach, frames, netns, localAddresses: this.localAddresses }, this.counters);
    this.tooLongSeen = this.counters[XdpCounter.rxTooLong];
  }

  /** Attaches (if not yet) and starts delivering to `sink`. */
  open(sink: RxSink): void {
    if (this.sink) throw new Error(`xdp port ${this.name} is already open`);
    this.attach();
    this.sink = sink;
    if (this.options.busyPoll) {
      const spin = (): void => {
        this.drain();
        if (this.handle) this.spin = setImmediate(spin);
      };
      this.spin = setImmediate(spin);
    } else {
      this.native.start(this.handle!, this.drain);
    }
  }

  /** Moves frames from the rings into the sink's batch, as RingPort.drain does. Called once per wakeup. */
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
      if (room <= 0) break;
      const n = native.rxBurst(handle, batch.data, batch.count, room, SLOT_SIZE, batch.length, batch.port, this.index);
      batch.count += n;
      received += n;
      budget -= n;
      if (n < room) break; // every ring is empty
    }
    const tooLong = this.counters[XdpCounter.rxTooLong];
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

  /**
   * The box's IPv4 addresses changed (host order, every interface): frames
   * to them go to the kernel from now on. Kept for a reopen.
   */
  setLocalAddresses(addresses: readonly number[]): void {
    this.localAddresses = this.toLocal(addresses);
    if (this.handle) this.native.setLocalAddresses(this.handle, this.localAddresses);
  }

  /** The port's MAC changed: the program compares destinations with it. */
  setMac(mac: Uint8Array): void {
    if (this.handle) this.native.setMac(this.handle, mac);
  }

  /** Reads the kernel's and the program's counts into the counters and returns them by name (control plane). */
  stats(): Record<string, number> {
    if (this.handle) this.native.stats(this.handle);
    const out: Record<string, number> = {};
    for (let i = 0; i < XDP_COUNTER_NAMES.length; i++) out[XDP_COUNTER_NAMES[i]] = this.counters[i];
    return out;
  }

  /** Mode, attach, queues and program, for logs and tests; undefined when closed. */
  info(): XdpInfo | undefined {
    return this.handle ? this.native.info(this.handle) : undefined;
  }

  /** Detaches the program and closes the sockets; idempotent. */
  close(): void {
    if (this.spin) clearImmediate(this.spin);
    this.spin = undefined;
    const handle = this.handle;
    if (!handle) return;
    this.native.stats(handle); // keep the last counts
    this.native.close(handle);
    this.handle = undefined;
    this.sink = undefined;
  }

  private toLocal(addresses: readonly number[]): Uint32Array {
    const unique = [...new Set(addresses.map((a) => a >>> 0))];
    if (unique.length > this.native.MAX_LOCAL_ADDRESSES) {
      throw new RangeError(`interface ${this.name}: the box has ${unique.length} IPv4 addresses; io: xdp handles at most ${this.native.MAX_LOCAL_ADDRESSES}`);
    }
    return Uint32Array.from(unique);
  }
}
