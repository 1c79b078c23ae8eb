// Packet tracing: the data plane's half of `vipr ctl trace`.
//
// Off the fast path (VPP's per-frame trace flag): the dispatcher reads
// `Dataplane.tracer` once per batch and, while it is null, does nothing else.
// While a trace runs, two walks over the batch surround the stages:
//
// Uses:  batch.data, batch.length, batch.port (before the stages); the
//        verdict the stages wrote in each slot: batch.next, batch.reason,
//        batch.nextHop, batch.egress (after). Nothing is looked up again.
// Sets:  nothing in the batch; its own copies of the matching frames
// Next:  hands every matching slot with its verdict to a TraceSink (the
//        control plane's pcapng writer, src/control/trace.ts)
//
// Why copy before the stages: ip4-rewrite changes the frame in place
// (Ethernet header, TTL, checksum) and ip4-input trims Ethernet padding, so
// after the stages the slot no longer holds what arrived. The copy is taken
// only while tracing and only of frames the prefix and port filters match
// (the drop filter needs the verdict, so it is applied after). The buffer for
// the copies is allocated once, when the trace starts; no allocation per
// packet on the data-plane side.

import { ARP, ETHER_HEADER_LENGTH, ETHERTYPE_ARP, ETHERTYPE_IPV4, IP_DST, IP_SRC } from '../packet/layout.js';
import { SLOT_SIZE, type FrameBatch } from './batch.js';
import { icmpErrorFor, Next } from './next.js';

/** What became of a traced frame. */
export const enum TraceVerdict {
  /** Rewritten and sent: reason = next-hop index, batch.egress[slot] = egress port. */
  forwarded = 0,
  /** Dropped silently: reason = Drop. */
  dropped,
  /** Dropped with an ICMP error to the sender: reason = Drop, icmp = the IcmpError it calls for. */
  icmpError,
  /** Left to the kernel: reason = Punt. */
  punted,
  /** ARP: the neighbour resolver learns from it (the kernel has its own copy): reason = Punt.arp. */
  arp,
  /** Parked until the next hop's MAC is known: reason = next-hop index. */
  held,
  /** Too big for the egress MTU, sent in fragments: reason = next-hop index, batch.egress[slot] = egress port. */
  fragmented,
}

/** The drop filter: only frames dropped for this reason, or for any reason. */
export const DROP_ANY = -2;
/** No filter on this field. */
export const ANY = -1;

export interface TraceFilter {
  /** Matches frames whose IPv4 source or destination (or ARP sender or target) is inside. */
  prefix?: { address: number; length: number };
  /** Ingress port index. */
  port?: number;
  /** A Drop reason, or DROP_ANY for every drop (silent or with an ICMP error). */
  drop?: number;
  /** Frames to trace before the tracer stops by itself (at least 1). */
  limit: number;
}

/** Where traced frames go (the control plane implements it; the data plane only calls it). */
export interface TraceSink {
  /**
   * One matching frame. `received[receivedOffset..+receivedLength)` is the
   * frame as it arrived; slot `slot` of `batch` holds it after the stages
   * (rewritten, for forwarded frames). Valid only during the call.
   */
  frame(
    batch: FrameBatch, slot: number, received: Buffer, receivedOffset: number, receivedLength: number,
    verdict: TraceVerdict, reason: number, icmp: number,
  ): void;
  /** The frame limit was reached: no more calls come. */
  limitReached(): void;
}

/** Starts or stops handing traced frames to a sink (`vipr ctl trace`), wherever the data plane runs. */
export interface TraceTap {
  readonly tracing: boolean;
  start(filter: TraceFilter, sink: TraceSink): void;
  stop(): void;
}

export class PacketTracer {
  /** Copies of the matching frames as they arrived, slot for slot. */
  private readonly received: Buffer;
  private readonly receivedLength: Uint16Array;
  /** 1 for the slots of the current batch the prefix and port filters match. */
  private readonly matched: Uint8Array;
  private readonly prefixAddress: number;
  private readonly prefixMask: number;
  private readonly hasPrefix: boolean;
  private readonly port: number;
  private readonly drop: number;
  /** Frames still to trace. */
  remaining: number;
  /** Frames handed to the sink so far. */
  traced = 0;

  constructor(
    capacity: number,
    filter: TraceFilter,
    private readonly sink: TraceSink,
  ) {
    this.received = Buffer.alloc(capacity * SLOT_SIZE);
    this.receivedLength = new Uint16Array(capacity);
    this.matched = new Uint8Array(capacity);
    this.hasPrefix = filter.prefix !== undefined;
    const length = filter.prefix?.length ?? 0;
    this.prefixMask = length === 0 ? 0 : (~0 << (32 - length)) >>> 0;
    this.prefixAddress = ((filter.prefix?.address ?? 0) & this.prefixMask) >>> 0;
    this.port = filter.port ?? ANY;
    this.drop = filter.drop ?? ANY;
    this.remaining = Math.max(1, filter.limit);
  }

  /** Before the stages: marks the slots the prefix and port filters match and copies them as received. */
  beforeStages(batch: FrameBatch): void {
    const data = batch.data;
    const matched = this.matched;
    for (let i = 0, n = batch.count; i < n; i++) {
      matched[i] = 0;
      if (this.remaining === 0) continue;
      if (this.port !== ANY && batch.port[i] !== this.port) continue;
      const off = i * SLOT_SIZE;
      const length = batch.length[i];
      if (this.hasPrefix && !this.prefixMatches(data, off, length)) continue;
      matched[i] = 1;
      data.copy(this.received, off, off, off + length);
      this.receivedLength[i] = length;
    }
  }

  /** After the stages: hands each matched slot and its verdict (as the stages wrote it) to the sink, within the frame limit. */
  afterStages(batch: FrameBatch): void {
    const next = batch.next;
    const matched = this.matched;
    for (let i = 0, n = batch.count; i < n && this.remaining > 0; i++) {
      if (matched[i] === 0) continue;
      const exit = next[i];
      let verdict: TraceVerdict;
      let reason: number = batch.reason[i];
      let icmp = -1;
      if (exit === Next.tx) {
        verdict = TraceVerdict.forwarded;
        reason = batch.nextHop[i];
      } else if (exit === Next.drop) verdict = TraceVerdict.dropped;
      else if (exit === Next.icmpError) {
        verdict = TraceVerdict.icmpError;
        icmp = icmpErrorFor(reason);
      } else if (exit === Next.hold) {
        verdict = TraceVerdict.held;
        reason = batch.nextHop[i];
      } else if (exit === Next.fragment) {
        verdict = TraceVerdict.fragmented;
        reason = batch.nextHop[i];
      } else if (exit === Next.arp) verdict = TraceVerdict.arp;
      else verdict = TraceVerdict.punted;
      if (this.drop !== ANY) {
        const isDrop = verdict === TraceVerdict.dropped || verdict === TraceVerdict.icmpError;
        if (!isDrop || (this.drop !== DROP_ANY && reason !== this.drop)) continue;
      }
      this.remaining--;
      this.traced++;
      this.sink.frame(batch, i, this.received, i * SLOT_SIZE, this.receivedLength[i], verdict, reason, icmp);
      if (this.remaining === 0) this.sink.limitReached();
    }
  }

  /** IPv4 source or destination (ARP sender or target) inside the prefix. */
  private prefixMatches(data: Buffer, off: number, length: number): boolean {
    if (length < ETHER_HEADER_LENGTH) return false;
    const type = (data[off + 12] << 8) | data[off + 13];
    let src: number;
    let dst: number;
    if (type === ETHERTYPE_IPV4 && length >= IP_DST + 4) {
      src = off + IP_SRC;
      dst = off + IP_DST;
    } else if (type === ETHERTYPE_ARP && length >= ARP + 28) {
      src = off + ARP + 14; // sender protocol address
      dst = off + ARP + 24; // target protocol address
    } else {
      return false;
    }
    const mask = this.prefixMask;
    const want = this.prefixAddress;
    const a = ((data[src] << 24) | (data[src + 1] << 16) | (data[src + 2] << 8) | data[src + 3]) >>> 0;
    if (((a & mask) >>> 0) === want) return true;
    const b = ((data[dst] << 24) | (data[dst + 1] << 16) | (data[dst + 2] << 8) | data[dst + 3]) >>> 0;
    return ((b & mask) >>> 0) === want;
  }
}
