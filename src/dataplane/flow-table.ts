// The flow table: which next hop each flow was placed on, so that a planned
// change (a drain, a reroute that keeps flows, a group losing a member) moves
// only new flows while established ones stay on their server until they end.
// Katran's connection table and LVS's connection hash do this job.
//
// Uses:  a flow key and its hash (flow-key.ts), the flow info of the packet,
//        the next hop its route places a new flow on, and the time (ms)
// Sets:  one entry per flow: next hop, last seen, TCP state, kind
// Gives: the entry (its next hop), or NO_FLOW / FLOW_TABLE_FULL / FLOW_NOT_CREATED
//
// Memory. All state lives in one ArrayBuffer (or SharedArrayBuffer: the
// control plane can read a worker's table) in fixed-size typed arrays, so a
// fresh zero-filled buffer is an empty table and no flow is an object:
//   records   32 B per flow: key (16 B), hash, next hop, last seen, state
//   links      8 B per flow: the eviction lists (and the free list)
//   created    4 B per flow: when the flow began, for `flow show`
//   index     16 B per flow: 2 slots of (entry, hash) per flow (load <= 0.5)
// = 60 B per flow, 60 MiB for the default 1,048,576 flows, plus 256 KiB of
// per-next-hop counts. FlowTable.byteLength(capacity) is the exact figure.
//
// The index is open addressing with linear probing over (entry + 1, hash)
// pairs: a probe compares hashes in the index and reads a record only when
// the hashes agree, and at load <= 0.5 a miss costs about 2.5 probes, a hit
// 1.5. Deletion is backward shift (as src/fib/prefix-index.ts): later members
// of a probe run move back into the hole, so no tombstones build up, however
// many flows come and go. Entry numbers never move: a handle stays valid
// until its flow is deleted (by sweep, eviction or the control plane).
//
// Times are ms from a monotonic clock the caller passes in; last seen is kept
// as 32-bit ms with wrap-around arithmetic, exact for ages under 49 days, so
// timeouts are capped at 24 days and the sweep must keep running (it visits
// every entry about once a second, see sweepDue).
//
// Expiry is incremental: sweep(now, n) looks at n entries from where it
// stopped, so expiry costs O(1) per batch, never a scan of the table;
// sweepDue(now) picks n from the time since the last call, so a full pass
// takes SWEEP_PASS_MS whatever the packet rate. A lookup treats an entry past
// its timeout as absent even before the sweep gets to it.
//
// Eviction. A full table makes room for a new flow by evicting, in this order:
// the oldest closing TCP flow (FIN both ways or RST, lingering); a flow past
// its timeout at the head of the active list; the oldest embryonic flow (TCP
// without a completed handshake or a reply, or UDP/ICMP/other without a
// reply); an active flow idle for at least evictIdleSeconds (or its timeout,
// if shorter), found CLOCK-style: the active list's head is evicted if idle,
// else moved to the tail, at most EVICT_SCAN times (and the sweep moves idle
// active flows to the head as it passes them). An established flow in use is
// never evicted: when nothing can go, the packet is forwarded by its route (or
// group hash) without an entry, FLOW_TABLE_FULL is returned and counted. So a
// SYN flood from random sources only churns embryonic entries.
//
// TCP. Both directions refresh a flow; the first packet's direction makes its
// sender the initiator. A SYN starts an embryonic flow, the initiator's ACK
// after the responder's SYN-ACK establishes it. A packet without SYN and
// without an entry (vipr restarted, or the entry was evicted) also creates an
// entry on the current route, embryonic and marked midFlow until the
// responder answers: then it is established. So a restarted vipr keeps flows
// on the server they are already on, and an ACK flood from random sources
// stays embryonic (the server answers it with RSTs, which close it). FIN from
// both sides or RST closes a flow: it lingers for timeouts.tcpClosing (the
// last ACK and retransmitted FINs reach the same server) and then expires; a
// new SYN on a closing flow (the client reusing its port) starts a new flow,
// placed afresh. RST is believed without sequence checks: a forged RST can
// only end an entry early, after which the next packet recreates it on the
// current route. A RST never creates an entry. ICMP errors (FLOW_ICMP_ERROR)
// find their flow but never create or refresh one.
//
// Threads. One thread owns a table and makes every change (per-packet calls,
// sweep, and the control-plane changes moveFlows/removeFlows/clear, which
// belong between two batches). Other threads may read it through a second
// FlowTable over the same SharedArrayBuffer (counters, sizes, flowsOn, describe);
// what they read may be a batch old, never torn in a way that matters: each
// value they read is one aligned 32- or 64-bit word.

import { indexOf } from './counters.js';
import { FLOW_ICMP_ERROR, FLOW_KEY_FRAGMENT, FLOW_KEY_WORDS, FLOW_REVERSED, flowKeyFields } from './flow-key.js';
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../packet/layout.js';

/** lookup/refresh: no live entry for this flow. */
export const NO_FLOW = -1;
/** insert/track: the table is full and nothing could be evicted; forward without an entry. Counted as tableFull. */
export const FLOW_TABLE_FULL = -2;
/** insert/track: this packet starts no flow (a RST, an ICMP error). */
export const FLOW_NOT_CREATED = -3;

/** What a flow is, for its timeout and eviction order. `free` marks an unused entry. */
export const FLOW_KIND_NAMES = ['free', 'tcpEmbryonic', 'tcpEstablished', 'tcpClosing', 'udp', 'icmp', 'other'] as const;
export const FlowKind = indexOf(FLOW_KIND_NAMES);
export type FlowKind = (typeof FlowKind)[keyof typeof FlowKind];

/** TCP and reply state of a flow, one bit each (bit i = FLOW_STATE_NAMES[i]). */
export const FLOW_STATE_NAMES = [
  'synFromInitiator',
  'synAckFromResponder',
  'established',
  'finFromInitiator',
  'finFromResponder',
  'reset',
  /** Created by a TCP packet without SYN: vipr did not see the handshake. */
  'midFlow',
  /** A packet from the responder has been seen. */
  'replied',
] as const;
const SYN_FROM_INITIATOR = 1 << 0;
const SYN_ACK_FROM_RESPONDER = 1 << 1;
const ESTABLISHED = 1 << 2;
const FIN_FROM_INITIATOR = 1 << 3;
const FIN_FROM_RESPONDER = 1 << 4;
const RESET = 1 << 5;
const MID_FLOW = 1 << 6;
const REPLIED = 1 << 7;
const FIN_BOTH = FIN_FROM_INITIATOR | FIN_FROM_RESPONDER;
// The rest of the state word: kind (bits 8-10), the initiator's direction
// (bit 11: its packets have FLOW_REVERSED, i.e. bit 8 of the info, set), the
// eviction list (bits 12-13).
const KIND_SHIFT = 8;
const KIND_MASK = 7 << KIND_SHIFT;
const INITIATOR_SHIFT = 11;
const LIST_SHIFT = 12;
const LIST_MASK = 3 << LIST_SHIFT;

/** Counters: one list makes the index and the names. Evictions by kind follow the order of FLOW_KIND_NAMES. */
export const FLOW_COUNTER_NAMES = [
  'created',
  /** Flows that ended: timed out (idle, or closed and lingered), or replaced by a new SYN after closing. */
  'expired',
  /** Flows deleted by the control plane (removeFlows, clear). */
  'removed',
  /** New flows forwarded without an entry: table full, nothing evictable. */
  'tableFull',
  /** Packets without a flow key (malformed or truncated L4 header); counted by the caller. */
  'noFlowKey',
  'evictedTcpEmbryonic',
  'evictedTcpEstablished',
  'evictedTcpClosing',
  'evictedUdp',
  'evictedIcmp',
  'evictedOther',
] as const;
export const FlowCounter = indexOf(FLOW_COUNTER_NAMES);
export type FlowCounter = (typeof FlowCounter)[keyof typeof FlowCounter];
/** counters[evictedCounter(kind)] counts evictions of flows of that kind. */
export const evictedCounter = (kind: number): number => FlowCounter.evictedTcpEmbryonic + kind - FlowKind.tcpEmbryonic;

/** Idle timeouts by kind, in seconds. */
export interface FlowTimeouts {
  tcpEstablished: number;
  tcpEmbryonic: number;
  /** The linger after FIN both ways or RST. */
  tcpClosing: number;
  udp: number;
  icmp: number;
  other: number;
}

export interface FlowTableConfig {
  /** flows.capacity: how many flows the table holds. */
  capacity: number;
  timeouts: FlowTimeouts;
  /** Under pressure, an active flow quiet for this long (or its timeout, if shorter) may be evicted. */
  evictIdleSeconds: number;
}

export const FLOW_TABLE_DEFAULTS: Readonly<FlowTableConfig> = Object.freeze({
  // 2^20: a 1 Gbit/s web front's concurrent connections with room to spare, at 60 MiB.
  capacity: 1_048_576,
  timeouts: Object.freeze({
    // Issue 10's figure (LVS keeps 900 s): longer than most keep-alive idles, and a vanished
    // client's entry is freed in 5 minutes, not 15.
    tcpEstablished: 300,
    // A handshake takes a round trip; 10 s covers SYN retransmissions at 1 s and 3 s.
    tcpEmbryonic: 10,
    // LVS's TCP "close" timeout: time for the last ACK and any retransmitted FIN.
    tcpClosing: 10,
    // Katran's UDP timeout; DNS and QUIC exchanges are far shorter, QUIC keep-alives come every 15-30 s.
    udp: 30,
    icmp: 30,
    other: 30,
  }),
  evictIdleSeconds: 30,
});

/** 2^24 flows (1 GiB of table): far beyond what one data-plane thread forwards for. */
export const MAX_FLOW_CAPACITY = 1 << 24;
/** Ages are 32-bit ms compared with wrap-around: a timeout must stay under 2^31 ms (24.8 days). */
export const MAX_FLOW_TIMEOUT_SECONDS = 2_147_483;

export interface FlowConfigProblem {
  /** Dotted path under the config file's `flows:` section, e.g. `flows.timeouts.udp`. */
  field: string;
  message: string;
}

/** What is wrong with a flow table config, one problem per field; empty when it is fine. */
export function flowTableConfigProblems(config: FlowTableConfig): FlowConfigProblem[] {
  const problems: FlowConfigProblem[] = [];
  const { capacity } = config;
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_FLOW_CAPACITY) {
    problems.push({ field: 'flows.capacity', message: `expected a whole number from 1 to ${MAX_FLOW_CAPACITY}, got ${capacity}` });
  }
  const seconds = (field: string, value: number) => {
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0.001 || value > MAX_FLOW_TIMEOUT_SECONDS) {
      problems.push({ field, message: `expected seconds from 0.001 to ${MAX_FLOW_TIMEOUT_SECONDS} (24 days), got ${value}` });
    }
  };
  for (const kind of FLOW_KIND_NAMES) {
    if (kind !== 'free') seconds(`flows.timeouts.${kind}`, config.timeouts[kind]);
  }
  seconds('flows.evictIdleSeconds', config.evictIdleSeconds);
  return problems;
}

/** A whole period over every entry of the table: how late an expired flow can be counted and freed. */
export const SWEEP_PASS_MS = 1000;
/** Active-list heads a full table looks at per new flow before giving up (bounded work under a flood). */
export const EVICT_SCAN = 8;

const RECORD_WORDS = 8;
const KEY_WORDS = FLOW_KEY_WORDS; // record words 0-3
const HASH = 4;
const NEXT_HOP = 5;
const LAST_SEEN = 6;
const STATE = 7;

/** Next hops are 16-bit indices (the FIB's leaves and a Maglev table's entries). */
export const FLOW_NEXT_HOPS = 1 << 16;

const LIST_CLOSING = 0;
const LIST_EMBRYONIC = 1;
const LIST_ACTIVE = 2;
const LISTS = 3;

// meta: the table's scalars, in the buffer so every thread sees them.
const M_CAPACITY = 0;
const M_SIZE = 1;
/** Entries [0, highWater) have been used; the rest are still fresh. */
const M_HIGH_WATER = 2;
/** Free list (entry + 1, 0 = empty), chained through links' next field. */
const M_FREE_HEAD = 3;
const M_SWEEP_HAND = 4;
const M_HEAD = 5; // + list: entry + 1 of the oldest, 0 = empty
const M_TAIL = M_HEAD + LISTS;
const M_KIND_COUNT = M_TAIL + LISTS; // + kind
const META_WORDS = M_KIND_COUNT + FLOW_KIND_NAMES.length;
/** times: Float64. */
const T_LAST_SWEEP = 0;
const TIME_WORDS = 2;

interface Layout {
  bytes: number;
  counters: number;
  times: number;
  meta: number;
  byNextHop: number;
  records: number;
  links: number;
  created: number;
  slotEntry: number;
  slotHash: number;
  slots: number;
}

const align64 = (n: number): number => Math.ceil(n / 64) * 64;

function indexSlots(capacity: number): number {
  let slots = 16;
  while (slots < capacity * 2) slots *= 2;
  return slots;
}

function layout(capacity: number): Layout {
  const slots = indexSlots(capacity);
  let at = 0;
  const take = (bytes: number) => {
    const start = at;
    at = align64(at + bytes);
    return start;
  };
  const counters = take(FLOW_COUNTER_NAMES.length * 8);
  const times = take(TIME_WORDS * 8);
  const meta = take(META_WORDS * 4);
  const byNextHop = take(FLOW_NEXT_HOPS * 4);
  const records = take(capacity * RECORD_WORDS * 4);
  const links = take(capacity * 2 * 4);
  const created = take(capacity * 4);
  const slotEntry = take(slots * 4);
  const slotHash = take(slots * 4);
  return { bytes: at, counters, times, meta, byNextHop, records, links, created, slotEntry, slotHash, slots };
}

/** A flow as the control plane shows it (allocates; never on the fast path). */
export interface FlowDescription {
  entry: number;
  protocol: number;
  fragment: boolean;
  /** Who sent the packet that created the entry, and to whom. */
  initiator: { address: number; port: number };
  responder: { address: number; port: number };
  nextHop: number;
  kind: Exclude<(typeof FLOW_KIND_NAMES)[number], 'free'>;
  state: (typeof FLOW_STATE_NAMES)[number][];
  idleMs: number;
  ageMs: number;
}

export interface FlowTableSummary {
  capacity: number;
  size: number;
  byKind: Record<Exclude<(typeof FLOW_KIND_NAMES)[number], 'free'>, number>;
  /** Live flows per next hop (only next hops with flows). */
  byNextHop: Map<number, number>;
  counters: Record<(typeof FLOW_COUNTER_NAMES)[number], number>;
}

/** Milliseconds since `stamp` (a last-seen or created word) at `now`, modulo 2^32. */
function age(now: number, stamp: number): number {
  return ((now >>> 0) - stamp) >>> 0;
}

function kindOf(protocol: number, fragment: boolean, flags: number): number {
  if (protocol === IPPROTO_TCP && !fragment) {
    return (flags & TCP_RST) !== 0 ? FlowKind.tcpClosing : FlowKind.tcpEmbryonic;
  }
  if (protocol === IPPROTO_UDP || protocol === IPPROTO_UDPLITE) return FlowKind.udp;
  if (protocol === IPPROTO_ICMP) return FlowKind.icmp;
  return FlowKind.other;
}

function listOf(kind: number, state: number): number {
  if (kind === FlowKind.tcpClosing) return LIST_CLOSING;
  if (kind === FlowKind.tcpEmbryonic) return LIST_EMBRYONIC;
  if (kind === FlowKind.tcpEstablished) return LIST_ACTIVE;
  return (state & REPLIED) !== 0 ? LIST_ACTIVE : LIST_EMBRYONIC;
}

export class FlowTable {
  readonly capacity: number;
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** FLOW_COUNTER_NAMES, for stats and metrics. */
  readonly counters: Float64Array;
  /** Live flows per next hop (index = next hop): drain bookkeeping and `server show`, O(1) to read. */
  readonly flowsByNextHop: Uint32Array;
  private readonly times: Float64Array;
  private readonly meta: Int32Array;
  private readonly records: Uint32Array;
  private readonly links: Int32Array;
  private readonly created: Uint32Array;
  private readonly slotEntry: Int32Array;
  private readonly slotHash: Uint32Array;
  private readonly mask: number;
  /** Timeout by kind, ms. */
  private readonly timeoutMs = new Float64Array(FLOW_KIND_NAMES.length);
  /** How long an active flow of each kind must be quiet to be evictable, ms. */
  private readonly evictIdleMs = new Float64Array(FLOW_KIND_NAMES.length);

  /** Bytes of the buffer a table of `capacity` flows needs. */
  static byteLength(capacity: number): number {
    return layout(capacity).bytes;
  }

  /**
   * `buffer`: where the table lives: nothing (a new ArrayBuffer), a buffer of
   * at least byteLength(capacity) bytes (a fresh zero-filled one is an empty
   * table; one already holding a table of the same capacity is shared, e.g. a
   * SharedArrayBuffer from a worker), or a function that makes one of the size
   * it is given.
   */
  constructor(config: FlowTableConfig, buffer?: ArrayBuffer | SharedArrayBuffer | ((byteLength: number) => ArrayBuffer | SharedArrayBuffer)) {
    const problems = flowTableConfigProblems(config);
    if (problems.length > 0) throw new RangeError(`${problems[0].field}: ${problems[0].message}`);
    const capacity = config.capacity;
    const at = layout(capacity);
    const memory = typeof buffer === 'function' ? buffer(at.bytes) : (buffer ?? new ArrayBuffer(at.bytes));
    if (memory.byteLength < at.bytes) {
      throw new RangeError(`flow table: a buffer of ${memory.byteLength} bytes is too small for ${capacity} flows (${at.bytes} needed)`);
    }
    this.capacity = capacity;
    this.buffer = memory;
    this.counters = new Float64Array(memory, at.counters, FLOW_COUNTER_NAMES.length);
    this.times = new Float64Array(memory, at.times, TIME_WORDS);
    this.meta = new Int32Array(memory, at.meta, META_WORDS);
    this.flowsByNextHop = new Uint32Array(memory, at.byNextHop, FLOW_NEXT_HOPS);
    this.records = new Uint32Array(memory, at.records, capacity * RECORD_WORDS);
    this.links = new Int32Array(memory, at.links, capacity * 2);
    this.created = new Uint32Array(memory, at.created, capacity);
    this.slotEntry = new Int32Array(memory, at.slotEntry, at.slots);
    this.slotHash = new Uint32Array(memory, at.slotHash, at.slots);
    this.mask = at.slots - 1;
    const existing = this.meta[M_CAPACITY];
    if (existing === 0) this.meta[M_CAPACITY] = capacity;
    else if (existing !== capacity) {
      throw new RangeError(`flow table: the buffer holds a table of ${existing} flows, not ${capacity}`);
    }
    const t = config.timeouts;
    const seconds = [0, t.tcpEmbryonic, t.tcpEstablished, t.tcpClosing, t.udp, t.icmp, t.other];
    for (let kind = 1; kind < seconds.length; kind++) {
      this.timeoutMs[kind] = Math.round(seconds[kind] * 1000);
      this.evictIdleMs[kind] = Math.min(this.timeoutMs[kind], Math.round(config.evictIdleSeconds * 1000));
    }
  }

  /** Live entries (expired ones the sweep has not reached yet included). */
  get size(): number {
    return this.meta[M_SIZE];
  }

  /** Live flows of one kind. */
  count(kind: FlowKind): number {
    return this.meta[M_KIND_COUNT + kind];
  }

  /** Live flows on `nextHop`. */
  flowsOn(nextHop: number): number {
    return this.flowsByNextHop[nextHop];
  }

  /** The next hop of a live entry. */
  nextHopOf(entry: number): number {
    return this.records[entry * RECORD_WORDS + NEXT_HOP];
  }

  // ---- per packet -------------------------------------------------------

  /**
   * The live entry of the flow keyed at keys[k..k+4) with `hash`
   * (flowHash of that key, a uint32; the same seed for every call on a
   * table), or NO_FLOW: absent, past its timeout, or a new SYN (without ACK)
   * on a closing flow, which starts a new flow. `info` is the packet's flow
   * info (never NO_FLOW_KEY: a packet without a key has no flow). Changes nothing.
   */
  lookup(keys: Uint32Array, k: number, hash: number, info: number, now: number): number {
    const slot = this.findSlot(keys, k, hash);
    if (slot < 0) return NO_FLOW;
    const entry = this.slotEntry[slot] - 1;
    const r = entry * RECORD_WORDS;
    const kind = (this.records[r + STATE] & KIND_MASK) >>> KIND_SHIFT;
    if (age(now, this.records[r + LAST_SEEN]) >= this.timeoutMs[kind]) return NO_FLOW;
    if (kind === FlowKind.tcpClosing && (info & (TCP_SYN | TCP_ACK | FLOW_ICMP_ERROR)) === TCP_SYN) return NO_FLOW;
    return entry;
  }

  /**
   * A packet of the flow of `entry` was seen at `now`: refreshes it and moves
   * its TCP state on. `info` is the packet's flow info (extractFlowKey).
   * ICMP errors change nothing.
   */
  update(entry: number, info: number, now: number): void {
    if ((info & FLOW_ICMP_ERROR) !== 0) return;
    const records = this.records;
    const r = entry * RECORD_WORDS;
    records[r + LAST_SEEN] = now >>> 0;
    const state = records[r + STATE];
    const fromResponder = ((info >>> 8) ^ (state >>> INITIATOR_SHIFT)) & 1;
    // The common case, a packet of an established flow without SYN, FIN or RST, changes nothing else.
    if ((info & (TCP_SYN | TCP_FIN | TCP_RST)) === 0 && (fromResponder === 0 || (state & REPLIED) !== 0) &&
      (state & KIND_MASK) !== FlowKind.tcpEmbryonic << KIND_SHIFT) {
      return;
    }
    this.transition(entry, state, info & 0xff, fromResponder);
  }

  /**
   * Creates the entry of a new flow on `nextHop` (a 16-bit next-hop index);
   * returns it, or FLOW_TABLE_FULL (counted), or FLOW_NOT_CREATED (RST, ICMP
   * error). An entry of the same key that lookup() would not return (timed
   * out, or closed and reopened by a SYN) is ended and replaced; a live one
   * is returned as it is.
   */
  insert(keys: Uint32Array, k: number, hash: number, info: number, nextHop: number, now: number): number {
    if ((info & FLOW_ICMP_ERROR) !== 0) return FLOW_NOT_CREATED;
    const word3 = keys[k + 3];
    const fragment = (word3 & FLOW_KEY_FRAGMENT) !== 0;
    const flags = info & 0xff;
    const kind = kindOf(word3 & 0xff, fragment, flags);
    if (kind === FlowKind.tcpClosing) return FLOW_NOT_CREATED; // a RST starts nothing
    if (nextHop >>> 16 !== 0) throw new RangeError(`flow table: next hop ${nextHop} is not a 16-bit index`);
    const records = this.records;
    let entry: number;
    const slot = this.findSlot(keys, k, hash);
    if (slot >= 0) {
      entry = this.slotEntry[slot] - 1;
      if (this.lookup(keys, k, hash, info, now) === entry) return entry;
      this.endFlow(entry);
      this.counters[FlowCounter.expired]++;
    } else {
      entry = this.allocate(now);
      if (entry < 0) {
        this.counters[FlowCounter.tableFull]++;
        return FLOW_TABLE_FULL;
      }
      const r = entry * RECORD_WORDS;
      for (let w = 0; w < KEY_WORDS; w++) records[r + w] = keys[k + w];
      records[r + HASH] = hash;
      const mask = this.mask;
      let free = hash & mask;
      while (this.slotEntry[free] !== 0) free = (free + 1) & mask;
      this.slotEntry[free] = entry + 1;
      this.slotHash[free] = hash;
      this.meta[M_SIZE]++;
    }
    let state = kind << KIND_SHIFT | ((info & FLOW_REVERSED) !== 0 ? 1 << INITIATOR_SHIFT : 0);
    if (kind === FlowKind.tcpEmbryonic) {
      if ((flags & (TCP_SYN | TCP_ACK)) === TCP_SYN) state |= SYN_FROM_INITIATOR;
      else state |= MID_FLOW;
      if ((flags & TCP_FIN) !== 0) state |= FIN_FROM_INITIATOR;
    }
    const list = listOf(kind, state);
    const r = entry * RECORD_WORDS;
    records[r + NEXT_HOP] = nextHop;
    records[r + LAST_SEEN] = now >>> 0;
    records[r + STATE] = state | list << LIST_SHIFT;
    this.created[entry] = now >>> 0;
    this.pushTail(list, entry);
    this.meta[M_KIND_COUNT + kind]++;
    this.flowsByNextHop[nextHop]++;
    this.counters[FlowCounter.created]++;
    return entry;
  }

  /**
   * The per-packet call on a route that keeps flows: the flow's entry,
   * refreshed, or a new one on `nextHop` (the route's or the group's
   * placement). Returns the entry (its next hop: nextHopOf), FLOW_TABLE_FULL
   * or FLOW_NOT_CREATED; for the last two, forward on `nextHop`.
   */
  track(keys: Uint32Array, k: number, hash: number, info: number, nextHop: number, now: number): number {
    const entry = this.lookup(keys, k, hash, info, now);
    if (entry >= 0) {
      this.update(entry, info, now);
      return entry;
    }
    return this.insert(keys, k, hash, info, nextHop, now);
  }

  /** The per-packet call on a route that keeps no flows (replies): refreshes the flow if there is one. */
  refresh(keys: Uint32Array, k: number, hash: number, info: number, now: number): number {
    const entry = this.lookup(keys, k, hash, info, now);
    if (entry >= 0) this.update(entry, info, now);
    return entry;
  }

  /**
   * Looks at up to `entries` entries from where the last sweep stopped and
   * frees those past their timeout; returns how many. Also moves active flows
   * idle long enough to be evicted to the front of the eviction order.
   */
  sweep(now: number, entries: number): number {
    const meta = this.meta;
    const highWater = meta[M_HIGH_WATER];
    if (highWater === 0) return 0;
    const records = this.records;
    const timeoutMs = this.timeoutMs;
    const evictIdleMs = this.evictIdleMs;
    let hand = meta[M_SWEEP_HAND];
    let expired = 0;
    for (let n = Math.min(entries, highWater); n > 0; n--) {
      if (hand >= highWater) hand = 0;
      const r = hand * RECORD_WORDS;
      const state = records[r + STATE];
      if (state !== 0) {
        const kind = (state & KIND_MASK) >>> KIND_SHIFT;
        const idle = age(now, records[r + LAST_SEEN]);
        if (idle >= timeoutMs[kind]) {
          this.endFlow(hand);
          this.unindex(hand);
          this.pushFree(hand);
          expired++;
        } else if (idle >= evictIdleMs[kind] && (state & LIST_MASK) >>> LIST_SHIFT === LIST_ACTIVE) {
          this.unlink(LIST_ACTIVE, hand);
          this.pushHead(LIST_ACTIVE, hand);
        }
      }
      hand++;
    }
    meta[M_SWEEP_HAND] = hand;
    this.counters[FlowCounter.expired] += expired;
    return expired;
  }

  /**
   * sweep() with as many entries as the time since the last call asks for,
   * so that a whole pass takes SWEEP_PASS_MS: call it once per batch and
   * from the idle loop. Returns how many flows expired.
   */
  sweepDue(now: number): number {
    const elapsed = now - this.times[T_LAST_SWEEP];
    if (!(elapsed > 0)) return 0;
    this.times[T_LAST_SWEEP] = now;
    const highWater = this.meta[M_HIGH_WATER];
    return this.sweep(now, Math.min(highWater, Math.ceil((highWater * elapsed) / SWEEP_PASS_MS)));
  }

  // ---- control plane (off the fast path; the owning thread, between batches) ----

  /**
   * Moves the live flows of next hop `from` in entries [first, end) to `to`;
   * returns how many. Call in slices (first, end) to spread a big table over
   * several batches.
   */
  moveFlows(from: number, to: number, first = 0, end = this.meta[M_HIGH_WATER]): number {
    if (to >>> 16 !== 0) throw new RangeError(`flow table: next hop ${to} is not a 16-bit index`);
    if (from === to) return 0;
    const records = this.records;
    let moved = 0;
    for (let entry = first; entry < end; entry++) {
      const r = entry * RECORD_WORDS;
      if (records[r + STATE] !== 0 && records[r + NEXT_HOP] === from) {
        records[r + NEXT_HOP] = to;
        moved++;
      }
    }
    this.flowsByNextHop[from] -= moved;
    this.flowsByNextHop[to] += moved;
    return moved;
  }

  /**
   * Deletes the live flows of next hop `nextHop` in entries [first, end)
   * (an unplanned failure: their next packets are placed afresh); returns
   * how many. Counted as removed.
   */
  removeFlows(nextHop: number, first = 0, end = this.meta[M_HIGH_WATER]): number {
    const records = this.records;
    let removed = 0;
    for (let entry = first; entry < end; entry++) {
      const r = entry * RECORD_WORDS;
      if (records[r + STATE] !== 0 && records[r + NEXT_HOP] === nextHop) {
        this.endFlow(entry);
        this.unindex(entry);
        this.pushFree(entry);
        removed++;
      }
    }
    this.counters[FlowCounter.removed] += removed;
    return removed;
  }

  /** Deletes every flow (counted as removed); counters otherwise stay. */
  clear(): void {
    this.counters[FlowCounter.removed] += this.meta[M_SIZE];
    const meta = this.meta;
    const capacity = meta[M_CAPACITY];
    meta.fill(0);
    meta[M_CAPACITY] = capacity;
    this.times[T_LAST_SWEEP] = 0;
    this.flowsByNextHop.fill(0);
    this.records.fill(0);
    this.links.fill(0);
    this.created.fill(0);
    this.slotEntry.fill(0);
    this.slotHash.fill(0);
  }

  /** Live entries, in entry order (allocates an iterator). */
  *entries(): IterableIterator<number> {
    const records = this.records;
    const highWater = this.meta[M_HIGH_WATER];
    for (let entry = 0; entry < highWater; entry++) {
      if (records[entry * RECORD_WORDS + STATE] !== 0) yield entry;
    }
  }

  /** A live entry as plain data, or undefined for a free one. */
  describe(entry: number, now: number): FlowDescription | undefined {
    const r = entry * RECORD_WORDS;
    const state = this.records[r + STATE];
    if (state === 0) return undefined;
    const key = flowKeyFields(this.records, r, (state >>> INITIATOR_SHIFT & 1) === 1);
    const names: FlowDescription['state'] = [];
    FLOW_STATE_NAMES.forEach((name, bit) => {
      if ((state & (1 << bit)) !== 0) names.push(name);
    });
    return {
      entry,
      protocol: key.protocol,
      fragment: key.fragment,
      initiator: { address: key.src, port: key.srcPort },
      responder: { address: key.dst, port: key.dstPort },
      nextHop: this.records[r + NEXT_HOP],
      kind: FLOW_KIND_NAMES[(state & KIND_MASK) >>> KIND_SHIFT] as FlowDescription['kind'],
      state: names,
      idleMs: age(now, this.records[r + LAST_SEEN]),
      ageMs: age(now, this.created[entry]),
    };
  }

  /** Occupancy, kinds, next hops and counters, for status and metrics. */
  summary(): FlowTableSummary {
    const byKind = {} as FlowTableSummary['byKind'];
    FLOW_KIND_NAMES.forEach((name, kind) => {
      if (name !== 'free') byKind[name] = this.meta[M_KIND_COUNT + kind];
    });
    const byNextHop = new Map<number, number>();
    this.flowsByNextHop.forEach((flows, nextHop) => {
      if (flows > 0) byNextHop.set(nextHop, flows);
    });
    const counters = {} as FlowTableSummary['counters'];
    FLOW_COUNTER_NAMES.forEach((name, i) => (counters[name] = this.counters[i]));
    return { capacity: this.capacity, size: this.size, byKind, byNextHop, counters };
  }

  /**
   * The index's health: slots, slots in use (always `size`: deletion leaves
   * no tombstones) and the longest probe run, which a hash-flooding attack
   * (a seed known to the attacker) would make long.
   */
  indexStats(): { slots: number; used: number; longestRun: number } {
    const slotEntry = this.slotEntry;
    let used = 0;
    let run = 0;
    let longestRun = 0;
    // Start after an empty slot so no run is split by the wrap-around.
    let start = 0;
    while (start < slotEntry.length && slotEntry[start] !== 0) start++;
    for (let n = 0; n < slotEntry.length; n++) {
      if (slotEntry[(start + n) & this.mask] !== 0) {
        used++;
        longestRun = Math.max(longestRun, ++run);
      } else run = 0;
    }
    return { slots: slotEntry.length, used, longestRun };
  }

  // ---- internals ----------------------------------------------------------

  /** The index slot holding the key, or -1. */
  private findSlot(keys: Uint32Array, k: number, hash: number): number {
    const slotEntry = this.slotEntry;
    const slotHash = this.slotHash;
    const records = this.records;
    const mask = this.mask;
    const a = keys[k];
    const b = keys[k + 1];
    const ports = keys[k + 2];
    const word3 = keys[k + 3];
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const e1 = slotEntry[slot];
      if (e1 === 0) return -1;
      if (slotHash[slot] === hash) {
        const r = (e1 - 1) * RECORD_WORDS;
        if (records[r] === a && records[r + 1] === b && records[r + 2] === ports && records[r + 3] === word3) return slot;
      }
    }
  }

  private transition(entry: number, state: number, flags: number, fromResponder: number): void {
    const kind = (state & KIND_MASK) >>> KIND_SHIFT;
    let next = state;
    let nextKind = kind;
    if (fromResponder !== 0) next |= REPLIED;
    if (kind <= FlowKind.tcpClosing) {
      if ((flags & TCP_RST) !== 0) {
        next |= RESET;
        nextKind = FlowKind.tcpClosing;
      } else {
        if ((flags & TCP_SYN) !== 0) {
          if (fromResponder === 0 && (flags & TCP_ACK) === 0) next |= SYN_FROM_INITIATOR;
          else if (fromResponder !== 0 && (flags & TCP_ACK) !== 0) next |= SYN_ACK_FROM_RESPONDER;
        }
        if ((flags & TCP_FIN) !== 0) next |= fromResponder !== 0 ? FIN_FROM_RESPONDER : FIN_FROM_INITIATOR;
        if (kind === FlowKind.tcpEmbryonic) {
          // The third packet of the handshake, or any answer to a flow vipr met mid-way.
          const handshakeDone = fromResponder === 0 && (next & SYN_ACK_FROM_RESPONDER) !== 0 && (flags & (TCP_SYN | TCP_ACK)) === TCP_ACK;
          const confirmed = fromResponder !== 0 && (next & MID_FLOW) !== 0 && (flags & TCP_SYN) === 0;
          if (handshakeDone || confirmed) {
            next |= ESTABLISHED;
            nextKind = FlowKind.tcpEstablished;
          }
        }
        if ((next & FIN_BOTH) === FIN_BOTH) nextKind = FlowKind.tcpClosing;
      }
    }
    const list = (state & LIST_MASK) >>> LIST_SHIFT;
    const nextList = listOf(nextKind, next);
    if (nextKind !== kind) {
      this.meta[M_KIND_COUNT + kind]--;
      this.meta[M_KIND_COUNT + nextKind]++;
    }
    if (nextList !== list) {
      this.unlink(list, entry);
      this.pushTail(nextList, entry);
    }
    this.records[entry * RECORD_WORDS + STATE] = (next & ~(KIND_MASK | LIST_MASK)) | nextKind << KIND_SHIFT | nextList << LIST_SHIFT;
  }

  /** An entry for a new flow: a free one, a fresh one, or an evicted one; -1 when none can be had. */
  private allocate(now: number): number {
    const meta = this.meta;
    const free = meta[M_FREE_HEAD];
    if (free !== 0) {
      meta[M_FREE_HEAD] = this.links[(free - 1) * 2 + 1];
      return free - 1;
    }
    if (meta[M_HIGH_WATER] < this.capacity) return meta[M_HIGH_WATER]++;
    const victim = this.victim(now);
    if (victim < 0) return -1;
    const kind = (this.records[victim * RECORD_WORDS + STATE] & KIND_MASK) >>> KIND_SHIFT;
    this.endFlow(victim);
    this.unindex(victim);
    this.meta[M_SIZE]--;
    this.counters[evictedCounter(kind)]++;
    return victim;
  }

  /** The entry to evict for a new flow (see the header), or -1. */
  private victim(now: number): number {
    const meta = this.meta;
    const records = this.records;
    const closing = meta[M_HEAD + LIST_CLOSING];
    if (closing !== 0) return closing - 1;
    let head = meta[M_HEAD + LIST_ACTIVE];
    if (head !== 0) {
      const r = (head - 1) * RECORD_WORDS;
      const kind = (records[r + STATE] & KIND_MASK) >>> KIND_SHIFT;
      if (age(now, records[r + LAST_SEEN]) >= this.timeoutMs[kind]) return head - 1;
    }
    const embryonic = meta[M_HEAD + LIST_EMBRYONIC];
    if (embryonic !== 0) return embryonic - 1;
    for (let n = 0; n < EVICT_SCAN; n++) {
      head = meta[M_HEAD + LIST_ACTIVE];
      if (head === 0) return -1;
      const entry = head - 1;
      const r = entry * RECORD_WORDS;
      const kind = (records[r + STATE] & KIND_MASK) >>> KIND_SHIFT;
      if (age(now, records[r + LAST_SEEN]) >= this.evictIdleMs[kind]) return entry;
      // Second chance: in use, so it goes to the back of the line.
      this.unlink(LIST_ACTIVE, entry);
      this.pushTail(LIST_ACTIVE, entry);
    }
    return -1;
  }

  /** Takes a live entry out of its list and the counts and marks it free; its key stays in the index. */
  private endFlow(entry: number): void {
    const r = entry * RECORD_WORDS;
    const state = this.records[r + STATE];
    this.unlink((state & LIST_MASK) >>> LIST_SHIFT, entry);
    this.meta[M_KIND_COUNT + ((state & KIND_MASK) >>> KIND_SHIFT)]--;
    this.flowsByNextHop[this.records[r + NEXT_HOP]]--;
    this.records[r + STATE] = 0;
  }

  /** Removes an entry's slot from the index, shifting later members of its probe run back. */
  private unindex(entry: number): void {
    const slotEntry = this.slotEntry;
    const slotHash = this.slotHash;
    const mask = this.mask;
    let hole = this.records[entry * RECORD_WORDS + HASH] & mask;
    while (slotEntry[hole] !== entry + 1) hole = (hole + 1) & mask;
    for (let j = (hole + 1) & mask; slotEntry[j] !== 0; j = (j + 1) & mask) {
      const home = slotHash[j] & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slotEntry[hole] = slotEntry[j];
        slotHash[hole] = slotHash[j];
        hole = j;
      }
    }
    slotEntry[hole] = 0;
    slotHash[hole] = 0;
  }

  private pushFree(entry: number): void {
    this.links[entry * 2 + 1] = this.meta[M_FREE_HEAD];
    this.meta[M_FREE_HEAD] = entry + 1;
    this.meta[M_SIZE]--;
  }

  private pushTail(list: number, entry: number): void {
    const links = this.links;
    const meta = this.meta;
    const tail = meta[M_TAIL + list];
    links[entry * 2] = tail;
    links[entry * 2 + 1] = 0;
    if (tail !== 0) links[(tail - 1) * 2 + 1] = entry + 1;
    else meta[M_HEAD + list] = entry + 1;
    meta[M_TAIL + list] = entry + 1;
  }

  private pushHead(list: number, entry: number): void {
    const links = this.links;
    const meta = this.meta;
    const head = meta[M_HEAD + list];
    links[entry * 2] = 0;
    links[entry * 2 + 1] = head;
    if (head !== 0) links[(head - 1) * 2] = entry + 1;
    else meta[M_TAIL + list] = entry + 1;
    meta[M_HEAD + list] = entry + 1;
  }

  private unlink(list: number, entry: number): void {
    const links = this.links;
    const meta = this.meta;
    const previous = links[entry * 2];
    const next = links[entry * 2 + 1];
    if (previous !== 0) links[(previous - 1) * 2 + 1] = next;
    else meta[M_HEAD + list] = next;
    if (next !== 0) links[(next - 1) * 2] = previous;
    else meta[M_TAIL + list] = previous;
  }
}
