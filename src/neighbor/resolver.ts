// The neighbour resolver: vipr's own ARP on its data-plane ports. It asks for
// next hops' MACs, learns from replies (and from requests that name us),
// refreshes entries before trusting them past `reachableMs`, declares them
// failed after `probes` unanswered requests, and holds a bounded queue of
// frames per unresolved neighbour that it flushes when the answer comes.
//
// It runs on the slow path and its timer: the data plane only reads the
// NeighborTable and hands over frames it cannot rewrite yet.

import { LRUCache } from 'lru-cache';
import { writeArpRequest } from '../packet/arp.js';
import {
  ARP_HLEN, ARP_HTYPE, ARP_LENGTH, ARP_OPER, ARP_PLEN, ARP_PTYPE, ARP_REPLY, ARP_REQUEST, ARP_SHA, ARP_SPA, ARP_TPA,
  ETHER_HEADER_LENGTH, ETHERTYPE_IPV4, IP_DST, IP_FLAG_DF, IP_FLAGS_FRAGMENT,
} from '../packet/layout.js';
import { NextHopKind, type NextHopTable } from '../fib/nexthop.js';
import { SLOT_SIZE } from '../dataplane/batch.js';
import { Drop, PortCounter, type Counters } from '../dataplane/counters.js';
import type { NeighborSlowPath } from '../dataplane/dataplane.js';
import type { IcmpErrorSender } from '../dataplane/icmp-error.js';
import { rewriteFrame } from '../dataplane/ip4-rewrite.js';
import { IcmpError } from '../dataplane/next.js';
import type { PortTable, TxPort } from '../dataplane/ports.js';
import { ETHER_PAIR, NEIGHBOR_STATE_NAMES, NeighborState, NeighborTable } from './table.js';

export interface NeighborOptions {
  reachableMs: number;
  retransmitMs: number;
  probes: number;
  queueLength: number;
  maxEntries: number;
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

export class NeighborResolver implements NeighborSlowPath {
  readonly table: NeighborTable;
  private readonly pinned: Uint16Array;
  private readonly probesSent: Uint8Array;
  private readonly nextProbeAt: Float64Array;
  private readonly confirmedAt: Float64Array;
  private readonly changedAt: Float64Array;
  private readonly lru: LRUCache<number, number>;
  // Hold queue: one FIFO per entry, linked through `holdNext` over a shared pool.
  private readonly holdData: Buffer;
  private readonly holdWords: Uint32Array;
  /** One Buffer view per hold slot, made once, for sendFrame. */
  private readonly holdSlots: Buffer[];
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
    private readonly txPorts: readonly TxPort[],
    private readonly nextHops: NextHopTable,
    private readonly counters: Counters,
    private readonly icmp: IcmpErrorSender,
    private readonly options: NeighborOptions,
    private readonly events: NeighborEvents = {},
  ) {
    const capacity = options.maxEntries + PINNED_RESERVE;
    this.table = new NeighborTable(capacity);
    this.pinned = new Uint16Array(capacity);
    this.probesSent = new Uint8Array(capacity);
    this.nextProbeAt = new Float64Array(capacity);
    this.confirmedAt = new Float64Array(capacity);
    this.changedAt = new Float64Array(capacity);
    this.lru = new LRUCache<number, number>({
      max: options.maxEntries,
      dispose: (entry, _address, reason) => {
        if (reason === 'evict' && this.pinned[entry] === 0) this.removeEntry(entry);
      },
    });
    this.holdData = Buffer.alloc(HOLD_POOL_FRAMES * SLOT_SIZE);
    this.holdSlots = Array.from({ length: HOLD_POOL_FRAMES }, (_, k) => this.holdData.subarray(k * SLOT_SIZE, (k + 1) * SLOT_SIZE));
    this.holdWords = new Uint32Array(this.holdData.buffer, this.holdData.byteOffset, this.holdData.length >> 2);
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

  start(): void {
    // Ten ticks per retransmit interval keeps probe timing within 10% of the setting.
    const period = Math.max(10, Math.min(100, Math.floor(this.options.retransmitMs / 10)));
    this.timer = setInterval(() => this.tick(performance.now()), period);
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
      this.beginResolution(entry, performance.now());
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
      const length = writeArpRequest(this.arpFrame, this.ports.macOf(port), this.ports.sourceAddressFor(port, address), address, null);
      this.txPorts[port].sendFrame(this.arpFrame, length);
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

  arpInput(frame: Uint8Array, offset: number, length: number, port: number): void {
    if (length < ETHER_HEADER_LENGTH + ARP_LENGTH) return;
    const o = offset;
    if (
      ((frame[o + ARP_HTYPE] << 8) | frame[o + ARP_HTYPE + 1]) !== 1 ||
      ((frame[o + ARP_PTYPE] << 8) | frame[o + ARP_PTYPE + 1]) !== ETHERTYPE_IPV4 ||
      frame[o + ARP_HLEN] !== 6 || frame[o + ARP_PLEN] !== 4
    ) return;
    const operation = (frame[o + ARP_OPER] << 8) | frame[o + ARP_OPER + 1];
    if (operation !== ARP_REQUEST && operation !== ARP_REPLY) return;
    const sender = readAddress(frame, o + ARP_SPA);
    const target = readAddress(frame, o + ARP_TPA);
    if (sender === 0) return; // an ARP probe (RFC 5227) says nothing about the sender yet
    if ((frame[o + ARP_SHA] & 1) !== 0) return; // a group MAC is never a neighbour's address
    const probes = this.probes.get(sender);
    if (probes !== undefined) {
      this.probes.delete(sender);
      for (const answered of probes) answered();
    }
    const namesUs = this.isPortAddress(port, target);
    let entry = this.table.find(sender);
    if (entry >= 0 && this.table.port[entry] !== port) return;
    if (entry < 0) {
      // Learn new neighbours only from frames addressed to us on a subnet we are on (as Linux does).
      if (!namesUs || !this.onConnectedSubnet(port, sender)) return;
      entry = this.addConnected(sender, port, false);
      if (entry < 0) return;
    }
    const now = performance.now();
    const state = this.table.state[entry];
    const macChanged = !this.sameMac(entry, frame, o + ARP_SHA);
    this.table.setMac(entry, frame, o + ARP_SHA);
    if (namesUs || state === NeighborState.incomplete || state === NeighborState.failed) {
      this.confirmedAt[entry] = now;
      this.probesSent[entry] = 0;
      this.setState(entry, NeighborState.reachable, now, macChanged);
      this.flush(entry);
    } else if (macChanged) {
      this.setState(entry, NeighborState.stale, now, true);
    }
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
    const now = performance.now();
    if (entry < 0) {
      this.dropHeld(frame, offset, length, ingressPort, Drop.holdQueueFull, false);
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
          this.probesSent[entry] = 1;
          this.nextProbeAt[entry] = now + options.retransmitMs;
          this.sendRequest(entry, true);
        }
      } else if (state === NeighborState.incomplete || state === NeighborState.stale) {
        if (now < this.nextProbeAt[entry]) continue;
        if (this.probesSent[entry] < options.probes) {
          this.probesSent[entry]++;
          this.nextProbeAt[entry] = now + options.retransmitMs;
          this.sendRequest(entry, false);
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

  rows(now = performance.now()): NeighborRow[] {
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

  // --- internals ---

  /** A new entry for a host on a connected subnet; `ask` sends the first request (not when the host just told us). */
  private addConnected(address: number, port: number, ask = true): number {
    if (!this.onConnectedSubnet(port, address)) return -1;
    let entry = this.table.add(address, port, this.ports.macOf(port));
    if (entry < 0) {
      // Full: let the LRU evict its least recently used host, then try again.
      const oldest = this.lru.rkeys().next();
      if (!oldest.done) this.lru.delete(oldest.value);
      entry = this.table.add(address, port, this.ports.macOf(port));
      if (entry < 0) return -1;
    }
    this.lru.set(address, entry);
    if (ask) this.beginResolution(entry, performance.now());
    return entry;
  }

  private beginResolution(entry: number, now: number): void {
    this.setState(entry, NeighborState.incomplete, now, false);
    this.probesSent[entry] = 1;
    this.nextProbeAt[entry] = now + this.options.retransmitMs;
    this.sendRequest(entry, false);
  }

  private removeEntry(entry: number): void {
    if (this.table.state[entry] === NeighborState.free) return;
    this.failHeld(entry);
    this.events.onChange?.(this.table.address[entry], this.table.port[entry], 'removed', '');
    this.table.remove(entry);
    this.pinned[entry] = 0;
  }

  private setState(entry: number, state: NeighborState, now: number, macChanged: boolean): void {
    const old = this.table.state[entry];
    this.table.state[entry] = state;
    if (old !== state || macChanged) {
      this.changedAt[entry] = now;
      this.events.onChange?.(this.table.address[entry], this.table.port[entry], NEIGHBOR_STATE_NAMES[state], this.table.macOf(entry));
    }
  }

  private sendRequest(entry: number, unicast: boolean): void {
    const port = this.table.port[entry];
    const target = this.table.address[entry];
    // Nobody to ask on a port that is down, nor for an address no longer on its subnets (removed at run time).
    if (this.ports.linkUp[port] === 0 || !this.onConnectedSubnet(port, target)) return;
    const mac = unicast ? this.table.ether.subarray(entry * ETHER_PAIR, entry * ETHER_PAIR + 6) : null;
    const length = writeArpRequest(this.arpFrame, this.ports.macOf(port), this.ports.sourceAddressFor(port, target), target, mac);
    this.txPorts[port].sendFrame(this.arpFrame, length);
  }

  /** Sends every frame waiting for `entry`, in arrival order. */
  private flush(entry: number): void {
    let slot = this.holdHead[entry];
    while (slot >= 0) {
      const following = this.holdNext[slot];
      this.forwardHeld(slot, entry);
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

  /** Rewrites and sends one held frame (slot of the hold pool). */
  private forwardHeld(slot: number, entry: number): void {
    const offset = slot * SLOT_SIZE;
    const length = this.holdLength[slot];
    const port = this.table.port[entry];
    if (length - ETHER_HEADER_LENGTH > this.ports.mtu[port]) {
      this.counters.drops[Drop.mtuExceeded]++;
      if (this.holdData[offset + IP_FLAGS_FRAGMENT] & (IP_FLAG_DF >> 8)) {
        this.icmp.send(this.holdData, offset, length, this.holdIngress[slot], IcmpError.fragmentationNeeded, this.ports.mtu[port]);
      }
      return;
    }
    rewriteFrame(this.holdData, this.holdWords, offset, this.table.etherWords, entry);
    const row = port * PortCounter.COUNT;
    if (this.txPorts[port].sendFrame(this.holdSlots[slot], length)) {
      this.counters.ports[row + PortCounter.txPackets]++;
      this.counters.ports[row + PortCounter.txBytes] += length;
      this.counters.ports[row + PortCounter.forwardedPackets]++;
    } else {
      this.counters.drops[Drop.txFailed]++;
    }
  }

  private dropHeld(frame: Uint8Array, offset: number, length: number, ingress: number, reason: Drop, answer: boolean): void {
    this.counters.drops[reason]++;
    if (answer) this.icmp.send(frame, offset, length, ingress, IcmpError.hostUnreachable);
  }

  private releaseHold(slot: number): void {
    this.holdNext[slot] = this.holdFree;
    this.holdFree = slot;
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
