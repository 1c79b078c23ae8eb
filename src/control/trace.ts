// `vipr ctl trace`: the control plane's half of packet tracing. It turns a
// trace request into a data-plane filter, installs a PacketTracer on the
// dispatcher (src/dataplane/trace.ts), and writes what the tracer hands it to
// a pcapng file that Wireshark, tshark and tcpdump -r open:
//
//   - one interface (IDB) per vipr port, named like the port, so Wireshark's
//     frame.interface_name says where a packet was seen;
//   - every traced frame as received, on its ingress interface (inbound),
//     with the verdict as the packet comment (opt_comment): `forwarded up0 ->
//     lan0 via web1 (192.168.1.2)`, `drop: badChecksum`, `punted to the
//     kernel: local`, ... (Wireshark: pkt_comment, or Statistics > Capture
//     File Properties; tcpdump reads the file but does not print comments);
//   - forwarded frames a second time as sent, on the egress interface
//     (outbound), rewritten: new MACs, TTL - 1, new checksum.
//
// The request's connection waits until the trace ends (count, seconds,
// `trace stop`, the client disconnecting, or the daemon stopping), then gets
// one reply saying how many frames and packets were written. Strings and
// Buffers are made per traced packet here, off the data plane and only while
// tracing.

import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { FrameBatch } from '../dataplane/batch.js';
import { SLOT_SIZE } from '../dataplane/batch.js';
import { Drop, DROP_NAMES, PUNT_NAMES } from '../dataplane/counters.js';
import type { PortTable } from '../dataplane/ports.js';
import { DROP_ANY, TraceVerdict, type TraceFilter, type TraceSink, type TraceTap } from '../dataplane/trace.js';
import { NextHopKind, type NextHopTable } from '../dataplane/fib/nexthop.js';
import { IP_DST, IP_TTL } from '../packet/layout.js';
import { formatAddress, formatPrefix, type Prefix } from '../util/ipv4.js';
import { ControlError } from './protocol.js';

/** Frames traced when the request gives neither a count nor a time limit. */
export const DEFAULT_TRACE_FRAMES = 1000;
/**
 * The most frames one trace records: at up to two packets of at most
 * 2048 bytes each (received, and sent when forwarded) that bounds a file near
 * 400 MB, which Wireshark still opens.
 */
export const MAX_TRACE_FRAMES = 100_000;
/** The longest trace: a day. A forgotten trace ends with its connection anyway. */
export const MAX_TRACE_SECONDS = 86_400;
/**
 * Encoded packets waiting for the disk. A disk slower than the traced traffic
 * would otherwise grow the daemon's memory; past this, frames are skipped and
 * counted as `missed` in the reply.
 */
const MAX_PENDING_BYTES = 32 * 1024 * 1024;

/**
 * Drop reasons a trace can see: those the stages decide within a batch.
 * The others happen elsewhere: frameTooLong in the port (the frame never
 * reaches a batch), holdQueueFull, neighborTableFull, arpRateLimited and neighborUnreachable
 * in the neighbour resolver later, txFailed in the port's send.
 */
const UNTRACEABLE_DROPS: readonly number[] = [Drop.frameTooLong, Drop.holdQueueFull, Drop.neighborTableFull, Drop.arpRateLimited,
  Drop.neighborUnreachable, Drop.txFailed];
export const TRACEABLE_DROPS: readonly string[] = DROP_NAMES.filter((_, reason) => !UNTRACEABLE_DROPS.includes(reason));

/** The `trace` request, as the grammar parses it. */
export interface TraceOptions {
  /** A bare file name, or an absolute path in the trace directory. Ends in .pcapng or .pcap. */
  file: string;
  prefix?: Prefix;
  /** Ingress port name. */
  port?: string;
  /** A drop reason name, or 'any' for every drop. */
  drop?: string;
  count?: number;
  seconds?: number;
}

export type TraceEnd = 'count' | 'seconds' | 'stopped' | 'disconnected' | 'shutdown' | 'error';

export interface TraceSummary {
  file: string;
  /** Frames the filter matched and the trace recorded. */
  frames: number;
  /** Packets (EPBs) written: one per frame, two per forwarded frame. */
  packets: number;
  bytes: number;
  /** Matching frames skipped because the disk fell behind. */
  missed: number;
  ended: TraceEnd;
  error?: string;
}

/** Where bare trace file names go: beside the state file, so the systemd unit's StateDirectory holds them. */
export function traceDirectory(stateFile: string): string {
  return join(stateFile.slice(0, Math.max(1, stateFile.lastIndexOf('/'))), 'traces');
}

/**
 * The file a request names, checked: a bare name, or an absolute path, in
 * `directory` itself; .pcapng or .pcap. The daemon runs as root when started
 * by hand, so it never writes a trace anywhere else.
 */
export function resolveTraceFile(file: string, directory: string): string {
  if (!/\.(pcapng|pcap)$/.test(file)) {
    throw new ControlError('ETRACEFILE', `trace file \`${file}\` must end in .pcapng or .pcap (vipr writes pcapng, which both name)`);
  }
  const path = file.includes('/') ? resolve(file) : join(directory, file);
  if ((file.includes('/') && !isAbsolute(file)) || dirname(path) !== resolve(directory)) {
    throw new ControlError('ETRACEFILE', `trace file \`${file}\`: trace files go in ${directory} only; give a bare name, e.g. \`${basename(file)}\``);
  }
  return path;
}

// ---- pcapng ----------------------------------------------------------------
// https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html
// Little-endian throughout; the byte-order magic tells readers so.

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 0x00000001;
const BLOCK_EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const LINKTYPE_ETHERNET = 1;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const EPB_FLAGS = 2;
export const DIRECTION_INBOUND = 1;
export const DIRECTION_OUTBOUND = 2;

const pad4 = (n: number) => (n + 3) & ~3;

function option(code: number, value: Buffer): Buffer {
  const out = Buffer.alloc(4 + pad4(value.length));
  out.writeUInt16LE(code, 0);
  out.writeUInt16LE(value.length, 2);
  value.copy(out, 4);
  return out;
}

function block(type: number, body: Buffer[]): Buffer {
  const length = 12 + body.reduce((sum, b) => sum + b.length, 0);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(type, 0);
  head.writeUInt32LE(length, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(length, 0);
  return Buffer.concat([head, ...body, tail], length);
}

const END_OF_OPTIONS = Buffer.alloc(4); // opt_endofopt: code 0, length 0

export function sectionHeader(application: string): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4); // major
  fixed.writeUInt16LE(0, 6); // minor
  fixed.writeBigInt64LE(-1n, 8); // section length: not given
  return block(BLOCK_SHB, [fixed, option(SHB_USERAPPL, Buffer.from(application)), END_OF_OPTIONS]);
}

export function interfaceDescription(name: string, snapLength: number): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(LINKTYPE_ETHERNET, 0);
  fixed.writeUInt32LE(snapLength, 4);
  return block(BLOCK_IDB, [fixed, option(IF_NAME, Buffer.from(name)), option(IF_TSRESOL, Buffer.from([6])), END_OF_OPTIONS]);
}

/** An Enhanced Packet Block: microsecond timestamp, the frame, a direction and a comment. */
export function enhancedPacket(
  interfaceId: number, micros: number, frame: Uint8Array, offset: number, length: number, direction: number, comment: string,
): Buffer {
  const fixed = Buffer.alloc(20 + pad4(length));
  fixed.writeUInt32LE(interfaceId, 0);
  fixed.writeUInt32LE(Math.floor(micros / 0x1_0000_0000), 4);
  fixed.writeUInt32LE(micros % 0x1_0000_0000, 8);
  fixed.writeUInt32LE(length, 12);
  fixed.writeUInt32LE(length, 16);
  fixed.set(frame.subarray(offset, offset + length), 20);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(direction, 0);
  return block(BLOCK_EPB, [fixed, option(OPT_COMMENT, Buffer.from(comment, 'utf8')), option(EPB_FLAGS, flags), END_OF_OPTIONS]);
}

/** Appends pcapng blocks to a new file; writes are batched and ordered. */
export class PcapngWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> = Promise.resolve();
  private scheduled = false;
  private failure: Error | undefined;
  bytes = 0;

  private constructor(readonly path: string, private readonly handle: FileHandle, private readonly onError: (error: Error) => void) {}

  /** Creates `path` (never over an existing file, never through a symlink) and queues the header and one interface per port. */
  static async create(path: string, interfaces: readonly string[], onError: (error: Error) => void): Promise<PcapngWriter> {
    let handle: FileHandle;
    try {
      // O_CREAT | O_EXCL: an existing file or symlink is refused, so the daemon never overwrites anything.
      // 0640: readable by the daemon's group (`vipr`), as the state file is.
      handle = await open(path, 'wx', 0o640);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      const why = code === 'EEXIST' ? 'it exists (vipr never overwrites a file: remove it or pick another name)'
        : code;
      throw new ControlError('ETRACEFILE', `cannot create trace file ${path}: ${why}`);
    }
    const writer = new PcapngWriter(path, handle, onError);
    writer.queue(sectionHeader('vipr'));
    for (const name of interfaces) writer.queue(interfaceDescription(name, SLOT_SIZE));
    return writer;
  }

  /** Room for more? False once MAX_PENDING_BYTES wait for the disk. */
  get hasRoom(): boolean {
    return this.pendingBytes < MAX_PENDING_BYTES && this.failure === undefined;
  }

  queue(block: Buffer): void {
    this.pending.push(block);
    this.pendingBytes += block.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
  }

  /** Writes everything queued so far. */
  flush(): Promise<void> {
    const chunks = this.pending;
    if (chunks.length === 0) return this.writing;
    this.pending = [];
    let size = 0;
    for (const chunk of chunks) size += chunk.length;
    this.writing = this.writing.then(async () => {
      try {
        if (this.failure) return;
        // One buffer: writev takes at most IOV_MAX (1024) of them, and a short write resumes simply.
        const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
        let written = 0;
        while (written < size) {
          const { bytesWritten } = await this.handle.write(data, written, size - written);
          if (bytesWritten === 0) throw new Error('the file system accepted no bytes');
          written += bytesWritten;
        }
        this.bytes += size;
      } catch (error) {
        this.failure = error as Error;
        this.onError(this.failure);
      } finally {
        this.pendingBytes -= size;
      }
    });
    return this.writing;
  }

  /** Writes what is queued and closes the file; throws the first write error, if any. */
  async close(): Promise<void> {
    await this.flush();
    await this.handle.close();
    if (this.failure) throw this.failure;
  }
}

// ---- a running trace -------------------------------------------------------

export interface TraceTarget {
  /** Where traced frames come from: the data plane, inline or on worker threads. */
  tap: TraceTap;
  ports: PortTable;
  nextHops: NextHopTable;
  /** Server names by address, for the comments. */
  serverNames: ReadonlyMap<number, string>;
}

const ICMP_NAMES = ['time exceeded', 'net unreachable', 'host unreachable', 'fragmentation needed'];

/** One trace: installs the tracer, writes the file, resolves `done` with the summary when it ends. */
export class TraceSession implements TraceSink {
  readonly done: Promise<TraceSummary>;
  private resolveDone!: (summary: TraceSummary) => void;
  private readonly filter: TraceFilter;
  private timer: NodeJS.Timeout | undefined;
  private ending = false;
  private frames = 0;
  private packets = 0;
  private missed = 0;
  private writeError: string | undefined;

  private constructor(private readonly target: TraceTarget, private readonly writer: PcapngWriter, filter: TraceFilter, readonly description: string) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.filter = filter;
  }

  /** Checks the request, creates the file and starts tracing. Throws ControlError with nothing started. */
  static async start(target: TraceTarget, options: TraceOptions, directory: string, signal?: AbortSignal): Promise<TraceSession> {
    if (target.tap.tracing) throw new ControlError('ETRACEBUSY', 'a trace is already running; `trace stop` ends it');
    const filter = traceFilter(options, target.ports);
    const path = resolveTraceFile(options.file, directory);
    await mkdir(directory, { recursive: true, mode: 0o750 });
    let session: TraceSession | undefined;
    const writer = await PcapngWriter.create(path, target.ports.names, (error) => session?.fail(error));
    session = new TraceSession(target, writer, filter, describeFilter(options, filter.limit));
    if (target.tap.tracing) {
      // Another trace started while the file was being created.
      await writer.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw new ControlError('ETRACEBUSY', 'a trace is already running; `trace stop` ends it');
    }
    target.tap.start(session.filter, session); // from the next batch on
    if (options.seconds !== undefined) session.timer = setTimeout(() => void session!.end('seconds'), options.seconds * 1000);
    if (signal) {
      if (signal.aborted) void session.end('disconnected');
      else signal.addEventListener('abort', () => void session!.end('disconnected'), { once: true });
    }
    return session;
  }

  get file(): string {
    return this.writer.path;
  }

  /** Frames recorded so far. */
  get traced(): number {
    return this.frames;
  }

  /** Stops tracing (the next batch no longer sees the tracer), writes what is left, and resolves `done`. Idempotent. */
  async end(why: TraceEnd): Promise<TraceSummary> {
    if (this.ending) return this.done;
    this.ending = true;
    this.target.tap.stop();
    clearTimeout(this.timer);
    let ended: TraceEnd = why;
    try {
      await this.writer.close();
    } catch (error) {
      this.writeError ??= (error as Error).message;
    }
    if (this.writeError) ended = 'error';
    this.resolveDone({
      file: this.writer.path, frames: this.frames, packets: this.packets, bytes: this.writer.bytes, missed: this.missed, ended,
      ...(this.writeError ? { error: this.writeError } : {}),
    });
    return this.done;
  }

  private fail(error: Error): void {
    this.writeError ??= error.message;
    void this.end('error');
  }

  // ---- TraceSink: called by the data plane, inside a batch ----

  frame(
    batch: FrameBatch, slot: number, received: Buffer, receivedOffset: number, receivedLength: number,
    verdict: TraceVerdict, reason: number, icmp: number,
  ): void {
    // With several data-plane threads each traces up to the limit: the session keeps only the first `limit`.
    if (this.ending || this.frames >= this.filter.limit) return;
    if (!this.writer.hasRoom) {
      this.missed++;
      return;
    }
    const micros = Math.round((performance.timeOrigin + performance.now()) * 1000);
    const ports = this.target.ports;
    const ingress = batch.port[slot];
    this.frames++;
    if (verdict === TraceVerdict.forwarded) {
      const egress = batch.egress[slot];
      const via = this.nextHopLabel(reason, received, receivedOffset);
      this.write(ingress, micros, received, receivedOffset, receivedLength, DIRECTION_INBOUND,
        `forwarded ${ports.names[ingress]} -> ${ports.names[egress]} ${this.target.nextHops.kind[reason] === NextHopKind.connected ? 'to' : 'via'} ${via}`);
      const off = slot * SLOT_SIZE;
      this.write(egress, micros, batch.data, off, batch.length[slot], DIRECTION_OUTBOUND,
        `sent ${ports.names[egress]} -> ${via}, TTL ${batch.data[off + IP_TTL]} (rewritten from ${ports.names[ingress]})`);
      return;
    }
    this.write(ingress, micros, received, receivedOffset, receivedLength, DIRECTION_INBOUND, this.comment(verdict, reason, icmp, received, receivedOffset));
  }

  limitReached(): void {
    // Not from inside the batch: the dispatcher is still walking it.
    setImmediate(() => void this.end('count'));
  }

  private write(port: number, micros: number, data: Uint8Array, offset: number, length: number, direction: number, comment: string): void {
    this.writer.queue(enhancedPacket(port, micros, data, offset, length, direction, comment));
    this.packets++;
  }

  private comment(verdict: TraceVerdict, reason: number, icmp: number, frame: Buffer, off: number): string {
    switch (verdict) {
      case TraceVerdict.dropped: return `drop: ${DROP_NAMES[reason]}`;
      case TraceVerdict.icmpError: return `drop: ${DROP_NAMES[reason]} (ICMP ${ICMP_NAMES[icmp] ?? icmp} to the sender)`;
      case TraceVerdict.punted: return `punted to the kernel: ${PUNT_NAMES[reason]}`;
      case TraceVerdict.arp: return 'arp: to the neighbour resolver (the kernel has its own copy)';
      case TraceVerdict.fragmented: {
        const egress = this.target.nextHops.port[reason];
        return `fragmented: sent to ${this.nextHopLabel(reason, frame, off)} on ${this.target.ports.names[egress]} in pieces of at most ${this.target.ports.mtu[egress]} bytes`;
      }
      case TraceVerdict.held: {
        const port = this.target.ports.names[this.target.nextHops.port[reason]];
        return `held: waiting for ARP for ${this.nextHopLabel(reason, frame, off)} on ${port}`;
      }
      default: return `verdict ${verdict}`;
    }
  }

  /** `web1 (192.168.1.2)`, `10.0.0.254`, or the destination itself on a connected subnet: `10.0.0.2 (connected)`. */
  private nextHopLabel(nextHop: number, frame: Uint8Array, off: number): string {
    const nextHops = this.target.nextHops;
    let address: number;
    if (nextHops.kind[nextHop] === NextHopKind.gateway) address = nextHops.gateway[nextHop];
    else {
      const d = off + IP_DST;
      address = ((frame[d] << 24) | (frame[d + 1] << 16) | (frame[d + 2] << 8) | frame[d + 3]) >>> 0;
    }
    const name = this.target.serverNames.get(address);
    const text = formatAddress(address);
    const label = name ? `${name} (${text})` : text;
    return nextHops.kind[nextHop] === NextHopKind.connected ? `${label} (connected)` : label;
  }
}

/** The data-plane filter for a request; throws ControlError on a port or reason that does not exist. */
export function traceFilter(options: TraceOptions, ports: PortTable): TraceFilter {
  const filter: TraceFilter = { limit: options.count ?? (options.seconds === undefined ? DEFAULT_TRACE_FRAMES : MAX_TRACE_FRAMES) };
  if (options.prefix) filter.prefix = options.prefix;
  if (options.port !== undefined) {
    const index = ports.names.indexOf(options.port);
    if (index < 0) throw new ControlError('EUNKNOWNPORT', `unknown port \`${options.port}\` (ports: ${ports.names.join(', ')})`);
    filter.port = index;
  }
  if (options.drop !== undefined) {
    if (options.drop === 'any') filter.drop = DROP_ANY;
    else {
      const reason = (DROP_NAMES as readonly string[]).indexOf(options.drop);
      if (reason < 0 || !TRACEABLE_DROPS.includes(options.drop)) {
        throw new ControlError('EBADARGS', `cannot trace drop reason \`${options.drop}\` (traceable: ${TRACEABLE_DROPS.join(', ')}, or \`drops\` for all)`);
      }
      filter.drop = reason;
    }
  }
  return filter;
}

function describeFilter(options: TraceOptions, limit: number): string {
  const parts = [
    options.prefix ? `prefix ${formatPrefix(options.prefix)}` : '',
    options.port !== undefined ? `port ${options.port}` : '',
    options.drop !== undefined ? (options.drop === 'any' ? 'drops' : `drop ${options.drop}`) : '',
    `count ${limit}`,
    options.seconds !== undefined ? `seconds ${options.seconds}` : '',
  ];
  return parts.filter((p) => p).join(' ');
}

export function summaryLine(summary: TraceSummary): string {
  const why: Record<TraceEnd, string> = {
    count: 'frame limit reached', seconds: 'time limit reached', stopped: 'stopped by `trace stop`',
    disconnected: 'the client disconnected', shutdown: 'vipr is stopping', error: `write error: ${summary.error ?? 'unknown'}`,
  };
  const missed = summary.missed > 0 ? `, ${summary.missed} matching frame(s) missed (the disk fell behind)` : '';
  return `trace ${summary.file}: ${summary.packets} packets written (${summary.frames} frames, ${summary.bytes} bytes)${missed}; ${why[summary.ended]}`;
}
