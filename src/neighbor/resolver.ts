// The neighbour resolver: vipr's own ARP on its data-plane ports. It asks for
// next hops' MACs, learns from replies (and from requests that name us),
// refreshes entries before trusting them past `reachableMs`, declares them
// failed after `probes` unanswered requests, and holds a bounded queue of
// frames per unresolved neighbour that it flushes when the answer comes.
//
// It runs on the slow path and its timer: the data plane only reads the
// NeighborTable and hands over frames it cannot rewrite yet.
//
// Hostile traffic it holds out against:
//   - a flood to random hosts of a big connected subnet: each port's ARP
//     requests pass a token bucket (neighbors.requestsPerSecond and
//     requestBurst); gateways (route next hops) are exempt, so a flood never
//     starves the refresh of the servers' entries. A new host the bucket
//     cannot ask for now gets no entry and no room in the shared hold pool
//     (its frame is dropped: arpRateLimited; the sender's retry finds a token
//     later), so the flood cannot fill the pool that frames for gateways
//     wait in. A retransmission the bucket holds back is counted, not taken
//     for an unanswered probe, and tried again a retransmit interval later.
//   - one target asked over and over: a target is asked at most once per
//     retransmitMs, also when the table is full and churns: an entry is only
//     evicted retransmitMs after its last request, and a new host that finds
//     no such entry is not resolved (neighborTableFull), as Linux refuses new
//     neighbours when gc_thresh3 is reached.
//   - ARP claiming one of the router's own addresses, or from a subnet's
//     network or broadcast address: dropped, counted, never learned.
// The router's addresses are read from the PortTable at each frame: they
// change at runtime (a VRRP address, say).

import { LRUCache } from 'lru-cache';
import { writeArpRequest } from '../packet/arp.js';
import {
  ARP_HLEN, ARP_HTYPE, ARP_LENGTH, ARP_OPER, ARP_PLEN, ARP_PTYPE, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA,
  ETHER_HEADER_LENGTH, ETHERTYPE_IPV4, IP_DST, IP_FLAG_DF, IP_FLAGS_FRAGMENT,
} from '../packet/layout.js';
import { NextHopKind, type NextHopTable } from '../dataplane/fib/nexthop.js';
import { SLOT_SIZE } from '../dataplane/batch.js';
import { ArpCounter, Drop, PORT_COUNTERS, Punt, PortCounter, type Counters } from '../dataplane/counters.js';
import { monotonicClock, type Clock } from '../dataplane/clock.js';
import type { FrameInjector, SlowPath } from '../dataplane/dataplane.js';
import { Next } from '../dataplane/next.js';
import type { PortTable } from '../dataplane/ports.js';
import { ETHER_PAIR, NEIGHBOR_STATE_NAMES, NeighborState, NeighborTable } from '../dataplane/neighbor-table.js';

export interface NeighborOptions {
  reachableMs: number;
  retransmitMs: number;
  probes: number;
  queueLength: number;
  maxEntries: number;
  /** ARP requests per port per second, after a burst of `requestBurst` (gateways exempt). */
  requestsPerSecond: number;
  requestBurst: number;
}

export interface NeighborEvents {
  /** A neighbour's state or MAC changed (for logs). */
  onChange?(address: number, port: number, state: string, mac: string): void;
}

/**
 * Gateways (route next hops) are pinned and never evicted; the LRU bounds only
 * the entries made for hosts on connected subnets, which traffic creates. Room
 * for this many pinned gateways is kept beside `maxEntries`.
 */
const PINNED_RESERVE = 1024;

/**
 * The hold pool is shared by all neighbours: 1024 frames of 2 KB (2 MB) covers
 * 16 next hops resolving at once with a full 64-frame queue each; beyond that
 * frames are dropped as holdQueueFull, as Linux drops past unres_qlen_bytes.
 */
const HOLD_POOL_FRAMES = 1024;

/**
 * How far past the least recently used neighbour an eviction looks for one
 * that may go (asked long enough ago): hosts that answered and went quiet
 * sit between busy ones; 16 finds one without walking a big table.
 */
const EVICTION_SCAN = 16;

/** addConnected: the port's request bucket is empty, so no entry was made. */
const NO_REQUEST_TOKEN = -2;

export interface NeighborRow {
  address: number;
  port: string;
  state: string;
  mac: string;
  pinned: boolean;
  ageMs: number;
  probes: number;
  queued: number;
}

export class NeighborResolver implements SlowPath {
  readonly table: NeighborTable;
  private readonly pinned: Uint16Array;
  private readonly probesSent: Uint8Array;
  private readonly nextProbeAt: Float64Array;
  private readonly confirmedAt: Float64Array;
  private readonly changedAt: Float64Array;
  /** When the last request for the entry's address went out (-Infinity: never). */
  private readonly lastRequestAt: Float64Array;
  private readonly lru: LRUCache<number, number>;
  /** Per-port request bucket: tokens and when they were last topped up. */
  private readonly requestTokens: Float64Array;
  private readonly requestRefilledAt: Float64Array;
  /** Frames in all hold queues together. */
  private held = 0;
  // Hold queue: one FIFO per entry, linked through `holdNext` over a shared pool.
  private readonly holdData: Buffer;
  private readonly holdLength: Uint16Array;
  private readonly holdIngress: Uint8Array;
  private readonly holdNext: Int32Array;
  private readonly holdHead: Int32Array;
  private readonly holdTail: Int32Array;
  private readonly holdCount: Uint16Array;
  private holdFree = -1;
  private readonly arpFrame = Buffer.alloc(64);
  private timer: NodeJS.Timeout | undefined;
  /** ARP health probes waiting for an answer from an address. */
  private readonly probes = new Map<number, Set<() => void>>();

  constructor(
    private readonly ports: PortTable,
    /** Shared with the data plane, which reads it; only the resolver writes it. */
    table: NeighborTable,
    /** The data plane's doorway: held frames go back through it, and the ARP requests built here go out through it. */
    private readonly dataplane: FrameInjector,
    private readonly nextHops: NextHopTable,
    private readonly counters: Counters,
    private readonly options: NeighborOptions,
    private readonly events: NeighborEvents = {},
    private readonly clock: Clock = monotonicClock,
  ) {
    this.table = table;
    const capacity = table.capacity;
    if (capacity < NeighborResolver.tableCapacity(options)) throw new RangeError('neighbour table smaller than neighbors.maxEntries plus the gateways\' reserve');
    this.pinned = new Uint16Array(capacity);
    this.probesSent = new Uint8Array(capacity);
    this.nextProbeAt = new Float64Array(capacity);
    this.confirmedAt = new Float64Array(capacity);
    this.changedAt = new Float64Array(capacity);
    this.lastRequestAt = new Float64Array(capacity).fill(-Infinity);
    this.requestTokens = new Float64Array(ports.count).fill(options.requestBurst);
    this.requestRefilledAt = new Float64Array(ports.count).fill(clock());
    this.lru = new LRUCache<number, number>({
      max: options.maxEntries,
      // Only unpinGateway can make the LRU evict by itself (addConnected makes room first).
      dispose: (entry, address, reason) => {
        if (reason === 'evict' && this.pinned[entry] === 0 && this.table.address[entry] === address) this.forget(entry);
      },
    });
    this.holdData = Buffer.alloc(HOLD_POOL_FRAMES * SLOT_SIZE);
    this.holdLength = new Uint16Array(HOLD_POOL_FRAMES);
    this.holdIngress = new Uint8Array(HOLD_POOL_FRAMES);
    this.holdNext = new Int32Array(HOLD_POOL_FRAMES);
    for (let k = HOLD_POOL_FRAMES - 1; k >= 0; k--) {
      this.holdNext[k] = this.holdFree;
      this.holdFree = k;
    }
    this.holdHead = new Int32Array(capacity).fill(-1);
    this.holdTail = new Int32Array(capacity).fill(-1);
    this.holdCount = new Uint16Array(capacity);
  }

  /** How many entries the neighbour table needs for these options: maxEntries hosts, and room for the pinned gateways. */
  static tableCapacity(options: NeighborOptions): number {
    return options.maxEntries + PINNED_RESERVE;
  }

  start(): void {
    // Ten ticks per retransmit interval keeps probe timing within 10% of the setting.
    const period = Math.max(10, Math.min(100, Math.floor(this.options.retransmitMs / 10)));
    this.timer = setInterval(() => this.tick(this.clock()), period);
    this.timer.unref();
  }

  /** Asks again at once for every unresolved entry (after the ports open, say). */
  kick(): void {
    for (let entry = 0; entry < this.table.capacity; entry++) {
      if (this.table.state[entry] === NeighborState.incomplete) this.sendRequest(entry, false);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Pins (and starts resolving) the neighbour entry of a gateway next hop. Returns the entry, or -1 when full. */
  pinGateway(address: number, port: number): number {
    let entry = this.table.find(address);
    if (entry >= 0 && this.table.port[entry] !== port) return -1;
    if (entry < 0) {
      entry = this.table.add(address, port, this.ports.macOf(port));
      if (entry < 0) return -1;
      this.pinned[entry]++; // before the first request, which pinned entries send past the bucket
      this.beginResolution(entry, this.clock());
      return entry;
    } else if (this.pinned[entry] === 0) {
      this.lru.delete(address); // pinned entries leave the LRU without being freed
    }
    this.pinned[entry]++;
    return entry;
  }

  unpinGateway(entry: number): void {
    if (entry < 0 || this.pinned[entry] === 0) return;
    if (--this.pinned[entry] === 0) this.lru.set(this.table.address[entry], entry);
  }

  /** How many gateways can be pinned at once, whatever traffic does to the learned entries beside them. */
  get gatewayCapacity(): number {
    return PINNED_RESERVE;
  }

  /**
   * Undoes the pinGateway() of a route change that failed, leaving the table
   * as it was: an entry that pin created goes again (rather than staying as
   * a learned one that could push a real one out of the LRU).
   */
  undoPin(entry: number, created: boolean): void {
    if (entry < 0 || this.pinned[entry] === 0) return;
    if (created && this.pinned[entry] === 1) this.removeEntry(entry);
    else this.unpinGateway(entry);
  }

  /**
   * Health check: asks for `address` on its port and resolves true when it
   * answers (any ARP from it) within `timeoutMs`. Independent of the entry's
   * state, so a stale cache never makes a dead server look alive.
   */
  probe(address: number, timeoutMs: number): Promise<boolean> {
    let port = -1;
    for (let p = 0; p < this.ports.count && port < 0; p++) if (this.onConnectedSubnet(p, address)) port = p;
    if (port < 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const answered = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const waiting = this.probes.get(address);
        waiting?.delete(answered);
        if (waiting?.size === 0) this.probes.delete(address);
        resolve(false);
      }, timeoutMs);
      let waiting = this.probes.get(address);
      if (!waiting) this.probes.set(address, (waiting = new Set()));
      waiting.add(answered);
      // Health checks are the operator's, bounded by the config: they do not draw on the bucket.
      const length = writeArpRequest(this.arpFrame, this.ports.macOf(port), this.ports.sourceAddressFor(port, address), address, null);
      if (this.dataplane.inject(this.arpFrame, 0, length, port, Next.send, port)) this.counters.arp[ArpCounter.requestsSent]++;
    });
  }

  /**
   * A port's link went down or came back (the kernel says so). Down: what
   * was learnt on it is forgotten, as Linux flushes a device's neighbours on
   * carrier loss, and frames waiting on it get host unreachable; gateways stay
   * pinned, failed. Up: every gateway on it is asked for again at once, so
   * routes that come back find their next hop resolved or resolving.
   */
  linkChanged(port: number, up: boolean): void {
    const table = this.table;
    const now = performance.now();
    for (let entry = 0; entry < table.capacity; entry++) {
      if (table.state[entry] === NeighborState.free || table.port[entry] !== port) continue;
      if (up) {
        if (this.pinned[entry] !== 0) this.beginResolution(entry, now);
      } else if (this.pinned[entry] === 0) {
        this.removeEntry(entry);
      } else {
        this.failHeld(entry);
        this.setState(entry, NeighborState.failed, now, false);
      }
    }
  }

  /** The port's MAC changed: every ready-made Ethernet header on it gets the new source. */
  macChanged(port: number): void {
    const table = this.table;
    const mac = this.ports.macOf(port);
    for (let entry = 0; entry < table.capacity; entry++) {
      if (table.state[entry] !== NeighborState.free && table.port[entry] === port) table.ether.set(mac, entry * ETHER_PAIR + 6);
    }
  }

  // --- slow-path handlers called by the data plane ---

  /**
   * Learns what an ARP frame says. The data plane's arp-input has counted it
   * and refused the senders no neighbour can be (the router's own addresses,
   * martians); what is left here is what the frame teaches.
   */
  arp(frame: Uint8Array, offset: number, length: number, port: number): void {
    this.learnFrom(frame, offset, length, port);
  }

  private learnFrom(frame: Uint8Array, offset: number, length: number, port: number): number {
    if (length < ETHER_HEADER_LENGTH + ARP_LENGTH) return -1;
    const o = offset;
    if (
      ((frame[o + ARP_HTYPE] << 8) | frame[o + ARP_HTYPE + 1]) !== 1 ||
      ((frame[o + ARP_PTYPE] << 8) | frame[o + ARP_PTYPE + 1]) !== ETHERTYPE_IPV4 ||
      frame[o + ARP_HLEN] !== 6 || frame[o + ARP_PLEN] !== 4
    ) return -1;
    const operation = (frame[o + ARP_OPER] << 8) | frame[o + ARP_OPER + 1];
    if (operation !== ARP_REQUEST && operation !== ARP_REPLY) return -1;
    const sender = readAddress(frame, o + ARP_SPA);
    const target = readAddress(frame, o + ARP_TPA);
    if (sender === 0) return -1; // an ARP probe (RFC 5227) says nothing about the sender yet
    if ((frame[o + ARP_SHA] & 1) !== 0) return -1; // a group MAC is never a neighbour's address
    const probes = this.probes.get(sender);
    if (probes !== undefined) {
      this.probes.delete(sender);
      for (const answered of probes) answered();
    }
    const namesUs = this.isPortAddress(port, target);
    let entry = this.table.find(sender);
    if (entry >= 0 && this.table.port[entry] !== port) return -1;
    if (entry < 0) {
      // Learn new neighbours only from frames addressed to us on a subnet we are on (as Linux does).
      if (!namesUs || !this.onConnectedSubnet(port, sender)) return -1;
      entry = this.addConnected(sender, port, false);
      if (entry < 0) return -1;
    }
    const now = this.clock();
    const state = this.table.state[entry];
    const macChanged = !this.sameMac(entry, frame, o + ARP_SHA);
    // Not usable while its MAC changes under a data-plane thread reading it: a frame meanwhile waits (and comes back).
    if (macChanged && (state === NeighborState.reachable || state === NeighborState.stale)) Atomics.store(this.table.state, entry, NeighborState.incomplete);
    this.table.setMac(entry, frame, o + ARP_SHA);
    if (namesUs || state === NeighborState.incomplete || state === NeighborState.failed) {
      this.confirmedAt[entry] = now;
      this.probesSent[entry] = 0;
      this.setState(entry, NeighborState.reachable, now, macChanged);
      this.flush(entry);
    } else if (macChanged) {
      this.setState(entry, NeighborState.stale, now, true);
    }
    return -1;
  }

  hold(frame: Uint8Array, offset: number, length: number, ingressPort: number, nextHop: number): void {
    let entry: number;
    if (this.nextHops.kind[nextHop] === NextHopKind.gateway) {
      entry = this.nextHops.neighbor[nextHop];
    } else {
      const destination = readAddress(frame, offset + IP_DST);
      entry = this.table.find(destination);
      if (entry < 0) entry = this.addConnected(destination, this.nextHops.port[nextHop]);
    }
    const now = this.clock();
    if (entry < 0) {
      if (entry === NO_REQUEST_TOKEN) this.counters.arp[ArpCounter.requestsRateLimited]++;
      this.dropHeld(frame, offset, length, ingressPort, entry === NO_REQUEST_TOKEN ? Drop.arpRateLimited : Drop.neighborTableFull, false);
      return;
    }
    const state = this.table.state[entry];
    if (state === NeighborState.failed) {
      // Try again after a failure, at most once per retransmit interval; until then answer at once.
      if (now - this.changedAt[entry] < this.options.retransmitMs) {
        this.dropHeld(frame, offset, length, ingressPort, Drop.neighborUnreachable, true);
        return;
      }
      this.beginResolution(entry, now);
    }
    if (this.holdCount[entry] >= this.options.queueLength || this.holdFree < 0) {
      this.dropHeld(frame, offset, length, ingressPort, Drop.holdQueueFull, false);
      return;
    }
    const slot = this.holdFree;
    this.holdFree = this.holdNext[slot];
    frame instanceof Buffer
      ? frame.copy(this.holdData, slot * SLOT_SIZE, offset, offset + length)
      : this.holdData.set(frame.subarray(offset, offset + length), slot * SLOT_SIZE);
    this.holdLength[slot] = length;
    this.holdIngress[slot] = ingressPort;
    this.holdNext[slot] = -1;
    if (this.holdTail[entry] >= 0) this.holdNext[this.holdTail[entry]] = slot;
    else this.holdHead[entry] = slot;
    this.holdTail[entry] = slot;
    this.holdCount[entry]++;
    this.held++;
    // Resolved since the data plane looked (an ARP reply earlier in this batch): send at once.
    if (state === NeighborState.reachable || state === NeighborState.stale) this.flush(entry);
  }

  // --- timer ---

  tick(now: number): void {
    const table = this.table;
    const options = this.options;
    for (let entry = 0; entry < table.capacity; entry++) {
      const state = table.state[entry];
      if (state === NeighborState.free) continue;
      if (table.used[entry] !== 0) {
        table.used[entry] = 0;
        if (this.pinned[entry] === 0) this.lru.get(table.address[entry]); // keep busy hosts from eviction
      }
      if (state === NeighborState.reachable) {
        if (now - this.confirmedAt[entry] >= options.reachableMs) {
          // Refresh: unicast first (the neighbour is probably still there), keep forwarding meanwhile.
          this.setState(entry, NeighborState.stale, now, false);
          this.nextProbeAt[entry] = now + options.retransmitMs;
          this.probesSent[entry] = this.sendRequest(entry, true, now) ? 1 : 0;
        }
      } else if (state === NeighborState.incomplete || state === NeighborState.stale) {
        if (now < this.nextProbeAt[entry]) continue;
        if (this.probesSent[entry] < options.probes) {
          // A request the bucket holds back is no unanswered probe: ask again next interval.
          this.nextProbeAt[entry] = now + options.retransmitMs;
          if (this.sendRequest(entry, false, now)) this.probesSent[entry]++;
        } else if (this.pinned[entry] === 0 && state === NeighborState.stale) {
          this.removeEntry(entry); // a connected host that went quiet: forget it
        } else {
          this.setState(entry, NeighborState.failed, now, false);
          this.failHeld(entry);
        }
      } else if (state === NeighborState.failed && this.pinned[entry] === 0 &&
        now - this.changedAt[entry] >= options.reachableMs) {
        this.removeEntry(entry);
      } else if (state === NeighborState.failed && this.pinned[entry] !== 0 &&
        now - this.changedAt[entry] >= options.reachableMs) {
        // Gateways are probed again now and then, so a server that comes back is found without traffic.
        this.beginResolution(entry, now);
      }
    }
  }

  // --- control plane views ---

  rows(now = this.clock()): NeighborRow[] {
    const rows: NeighborRow[] = [];
    const table = this.table;
    for (let entry = 0; entry < table.capacity; entry++) {
      const state = table.state[entry];
      if (state === NeighborState.free) continue;
      rows.push({
        address: table.address[entry],
        port: this.ports.names[table.port[entry]],
        state: NEIGHBOR_STATE_NAMES[state],
        mac: this.isZeroMac(entry) ? '' : table.macOf(entry),
        pinned: this.pinned[entry] !== 0,
        ageMs: Math.round(now - this.changedAt[entry]),
        probes: this.probesSent[entry],
        queued: this.holdCount[entry],
      });
    }
    return rows.sort((a, b) => a.address - b.address);
  }

  stateOf(address: number): string | undefined {
    const entry = this.table.find(address);
    return entry < 0 ? undefined : NEIGHBOR_STATE_NAMES[this.table.state[entry]];
  }

  /** Frames waiting in the hold queues, all neighbours together. */
  get heldFrames(): number {
    return this.held;
  }

  // --- internals ---

  /**
   * A new entry for a host on a connected subnet; `ask` sends the first
   * request (not when the host just told us). -1 when the table is full of
   * entries that may not go yet (see evictOldest), NO_REQUEST_TOKEN when the
   * port may not ask now.
   */
  private addConnected(address: number, port: number, ask = true): number {
    if (!this.onConnectedSubnet(port, address)) return -1;
    const now = this.clock();
    if (ask && !this.requestTokenAvailable(port, now)) return NO_REQUEST_TOKEN;
    // Make room first: the LRU must never evict by itself, past the rule below.
    if (this.lru.size >= this.options.maxEntries && !this.evictOldest(now)) return -1;
    const entry = this.table.add(address, port, this.ports.macOf(port));
    if (entry < 0) return -1;
    this.lru.set(address, entry);
    if (ask) this.beginResolution(entry, now);
    return entry;
  }

  /**
   * Forgets the least recently used host that was not asked for in the last
   * retransmitMs: forgetting one asked for more recently would let the next
   * frame to it ask again at once, and a flood cycling through more hosts than
   * the table holds would ask each of them over and over. Looks at the
   * EVICTION_SCAN least recently used only, so a full table costs a bounded walk.
   */
  private evictOldest(now: number): boolean {
    let scanned = 0;
    let victim = -1;
    let stale: number | undefined;
    for (const address of this.lru.rkeys()) {
      if (scanned++ === EVICTION_SCAN) break;
      const entry = this.lru.peek(address)!;
      if (this.table.address[entry] !== address || this.table.state[entry] === NeighborState.free) {
        stale = address; // cannot happen while removeEntry keeps the two in step; never wedge on it
        break;
      }
      if (now - this.lastRequestAt[entry] >= this.options.retransmitMs) {
        victim = entry;
        break;
      }
    }
    if (stale !== undefined) {
      this.lru.delete(stale);
      return true;
    }
    if (victim < 0) return false;
    this.removeEntry(victim);
    return true;
  }

  private beginResolution(entry: number, now: number): void {
    this.setState(entry, NeighborState.incomplete, now, false);
    this.nextProbeAt[entry] = now + this.options.retransmitMs;
    this.probesSent[entry] = this.sendRequest(entry, false, now) ? 1 : 0;
  }

  /** Removes an entry, from the LRU too (so a later eviction there cannot hit the entry's next occupant). */
  private removeEntry(entry: number): void {
    if (this.table.state[entry] === NeighborState.free) return;
    if (this.pinned[entry] === 0) this.lru.delete(this.table.address[entry]);
    this.forget(entry);
  }

  private forget(entry: number): void {
    if (this.table.state[entry] === NeighborState.free) return;
    this.failHeld(entry);
    this.events.onChange?.(this.table.address[entry], this.table.port[entry], 'removed', '');
    this.table.remove(entry);
    this.pinned[entry] = 0;
    this.lastRequestAt[entry] = -Infinity;
  }

  private setState(entry: number, state: NeighborState, now: number, macChanged: boolean): void {
    const old = this.table.state[entry];
    Atomics.store(this.table.state, entry, state); // a fence: the MAC written before it is seen with it
    if (old !== state || macChanged) {
      this.changedAt[entry] = now;
      this.events.onChange?.(this.table.address[entry], this.table.port[entry], NEIGHBOR_STATE_NAMES[state], this.table.macOf(entry));
    }
  }

  /** Asks for the entry's address, within the port's bucket unless the entry is a gateway's; false when held back. */
  private sendRequest(entry: number, unicast: boolean, now = this.clock()): boolean {
    const port = this.table.port[entry];
    const target = this.table.address[entry];
    // Nobody to ask on a port that is down, nor for an address no longer on its subnets (removed at run
    // time): the probe is spent unanswered, so the entry fails after its probes as with a silent host.
    if (this.ports.linkUp[port] === 0 || !this.onConnectedSubnet(port, target)) return true;
    if (this.pinned[entry] === 0 && !this.takeRequestToken(port, now)) {
      this.counters.arp[ArpCounter.requestsRateLimited]++;
      return false;
    }
    const mac = unicast ? this.table.ether.subarray(entry * ETHER_PAIR, entry * ETHER_PAIR + 6) : null;
    const length = writeArpRequest(this.arpFrame, this.ports.macOf(port), this.ports.sourceAddressFor(port, target), target, mac);
    this.lastRequestAt[entry] = now;
    if (this.dataplane.inject(this.arpFrame, 0, length, port, Next.send, port)) this.counters.arp[ArpCounter.requestsSent]++;
    return true;
  }

  private requestTokenAvailable(port: number, now: number): boolean {
    const elapsed = now - this.requestRefilledAt[port];
    if (elapsed > 0) {
      this.requestRefilledAt[port] = now;
      this.requestTokens[port] = Math.min(
        this.options.requestBurst, this.requestTokens[port] + (elapsed * this.options.requestsPerSecond) / 1000,
      );
    }
    return this.requestTokens[port] >= 1;
  }

  private takeRequestToken(port: number, now: number): boolean {
    if (!this.requestTokenAvailable(port, now)) return false;
    this.requestTokens[port] -= 1;
    return true;
  }

  /** Sends every frame waiting for `entry`, in arrival order. */
  private flush(entry: number): void {
    let slot = this.holdHead[entry];
    while (slot >= 0) {
      const following = this.holdNext[slot];
      this.forwardHeld(slot);
      this.releaseHold(slot);
      slot = following;
    }
    this.holdHead[entry] = this.holdTail[entry] = -1;
    this.holdCount[entry] = 0;
  }

  /** The neighbour never answered: each waiting frame gets ICMP host unreachable (rate limited). */
  private failHeld(entry: number): void {
    let slot = this.holdHead[entry];
    while (slot >= 0) {
      const following = this.holdNext[slot];
      this.dropHeld(this.holdData, slot * SLOT_SIZE, this.holdLength[slot], this.holdIngress[slot], Drop.neighborUnreachable, true);
      this.releaseHold(slot);
      slot = following;
    }
    this.holdHead[entry] = this.holdTail[entry] = -1;
    this.holdCount[entry] = 0;
  }

  /** Hands one held frame back to the data plane: looked up again, rewritten and sent like any other. */
  private forwardHeld(slot: number): void {
    this.dataplane.inject(this.holdData, slot * SLOT_SIZE, this.holdLength[slot], this.holdIngress[slot], Next.ip4Lookup, 0);
  }

  private dropHeld(frame: Uint8Array, offset: number, length: number, ingress: number, reason: Drop, answer: boolean): void {
    this.counters.drops[reason]++;
    if (answer) this.dataplane.inject(frame, offset, length, ingress, Next.icmpError, reason);
  }

  private releaseHold(slot: number): void {
    this.holdNext[slot] = this.holdFree;
    this.holdFree = slot;
    this.held--;
  }

  private isPortAddress(port: number, address: number): boolean {
    return this.ports.isOwnAddress(port, address);
  }

  private onConnectedSubnet(port: number, address: number): boolean {
    return this.ports.onConnectedSubnet(port, address);
  }

  private sameMac(entry: number, frame: Uint8Array, at: number): boolean {
    const e = entry * ETHER_PAIR;
    for (let k = 0; k < 6; k++) if (this.table.ether[e + k] !== frame[at + k]) return false;
    return true;
  }

  private isZeroMac(entry: number): boolean {
    const e = entry * ETHER_PAIR;
    for (let k = 0; k < 6; k++) if (this.table.ether[e + k] !== 0) return false;
    return true;
  }
}

function readAddress(frame: Uint8Array, at: number): number {
  return ((frame[at] << 24) | (frame[at + 1] << 16) | (frame[at + 2] << 8) | frame[at + 3]) >>> 0;
}
