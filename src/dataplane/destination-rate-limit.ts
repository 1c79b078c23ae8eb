// A token bucket per destination host, for ICMP errors: Linux's
// icmp_ratelimit over inet_peer (one error per `1000 / ratePerSecond` ms,
// after a burst; XRLIM_BURST_FACTOR is 6), in a table of bounded size.
//
// As in Linux the credit is kept in milliseconds: each error costs
// 1000 / ratePerSecond ms of credit, elapsed time adds credit up to `burst`
// errors' worth. Whole-millisecond clocks then give exact answers.
//
// The table holds at most `maxDestinations` hosts and forgets the least
// recently used one to make room (a list through typed arrays: no allocation
// per error). Forgetting a host that has been quiet for burst / rate seconds
// loses nothing, since its bucket would be full again anyway; a flood of
// errors to more hosts than the table holds is what the global bucket is for.

import { AddressIndex } from './address-index.js';

export interface DestinationLimits {
  ratePerSecond: number;
  burst: number;
  maxDestinations: number;
}

const NONE = -1;

export class DestinationRateLimiter {
  private readonly address: Uint32Array;
  /** Credit in ms (see above), and when it was last topped up. */
  private readonly credit: Float64Array;
  private readonly stamp: Float64Array;
  /** The recency list: `newer`/`older` neighbours of each entry; head = most recently used. */
  private readonly newer: Int32Array;
  private readonly older: Int32Array;
  private head = NONE;
  private tail = NONE;
  private readonly index: AddressIndex;
  private readonly capacity: number;
  private readonly cost: number;
  private readonly maxCredit: number;
  /** Hosts in the table. */
  size = 0;

  constructor(limits: DestinationLimits) {
    this.capacity = Math.max(1, limits.maxDestinations);
    this.address = new Uint32Array(this.capacity);
    this.credit = new Float64Array(this.capacity);
    this.stamp = new Float64Array(this.capacity);
    this.newer = new Int32Array(this.capacity);
    this.older = new Int32Array(this.capacity);
    this.index = new AddressIndex(this.address, this.capacity);
    this.cost = 1000 / limits.ratePerSecond;
    this.maxCredit = limits.burst * this.cost;
  }

  /** True, and one error's credit taken, when an error may go to `address` at `now` (ms). */
  allow(address: number, now: number): boolean {
    let entry = this.index.find(address);
    if (entry < 0) {
      if (this.size < this.capacity) entry = this.size++;
      else {
        entry = this.tail;
        this.index.remove(entry);
        this.unlink(entry);
      }
      this.address[entry] = address;
      this.index.insert(entry);
      this.credit[entry] = this.maxCredit;
    } else {
      const elapsed = now - this.stamp[entry];
      if (elapsed > 0) this.credit[entry] = Math.min(this.maxCredit, this.credit[entry] + elapsed);
      this.unlink(entry);
    }
    this.stamp[entry] = now;
    this.pushFront(entry);
    if (this.credit[entry] < this.cost) return false;
    this.credit[entry] -= this.cost;
    return true;
  }

  private unlink(entry: number): void {
    const newer = this.newer[entry];
    const older = this.older[entry];
    if (newer === NONE) this.head = older;
    else this.older[newer] = older;
    if (older === NONE) this.tail = newer;
    else this.newer[older] = newer;
  }

  private pushFront(entry: number): void {
    this.newer[entry] = NONE;
    this.older[entry] = this.head;
    if (this.head !== NONE) this.newer[this.head] = entry;
    this.head = entry;
    if (this.tail === NONE) this.tail = entry;
  }
}
