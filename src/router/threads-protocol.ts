// What the main thread and the data-plane workers say to each other: the
// memory they share (set up once, in workerData), the records in the queues
// between them, and the few messages (doorbells and rare commands).

import type { IcmpConfig, IoBackend, PortBackend, RingConfig, XdpConfig } from '../config/types.js';
import type { CountersBuffers } from '../dataplane/counters.js';
import type { NextHopTableBuffers } from '../dataplane/fib/nexthop.js';
import type { NeighborTableBuffers } from '../dataplane/neighbor-table.js';
import type { PortTableBuffers } from '../dataplane/ports.js';
import type { FrameQueueBuffers } from '../dataplane/queue.js';
import type { TraceFilter } from '../dataplane/trace.js';

/** The two copies of the FIB's lookup arrays (src/dataplane/fib/lpm.ts, "Two copies"). */
export interface FibBuffers {
  copies: { tbl24: ArrayBufferLike; tbl8: ArrayBufferLike }[];
}

/**
 * The shared control words (an Int32Array): which FIB copy readers use, and
 * per worker what it reads now (0: between batches, else the copy + 1), so the
 * control plane knows when the other copy is free to edit.
 */
export const ACTIVE_COPY = 0;
export const READING = 1; // + worker index
/** After the READING words (READING + workers + worker index): the last new table a worker took. */

export interface WorkerSetup {
  index: number;
  workers: number;
  io: IoBackend;
  ring: RingConfig;
  xdp: XdpConfig;
  localAddresses: number[];
  /** PACKET_FANOUT group base id, with several workers. */
  fanoutBase?: number;
  batchSize: number;
  icmp: IcmpConfig;
  /** The CPU this worker's thread is pinned to, if any. */
  cpu?: number;
  ports: PortTableBuffers;
  nextHops: NextHopTableBuffers;
  neighbors: NeighborTableBuffers;
  fib: FibBuffers;
  control: ArrayBufferLike;
  counters: CountersBuffers;
  /** Per port: the ring backend's counters (Float64Array over it). */
  backendCounters: ArrayBufferLike[];
  /** Worker -> main: ARP frames, frames to hold. */
  slowPath: FrameQueueBuffers;
  /** Main -> worker: frames to inject. */
  inject: FrameQueueBuffers;
  /** Worker -> main: traced frames. */
  trace: FrameQueueBuffers;
}

/** Record kinds in the slow-path queue; fields: [kind, port, length, nextHop]. */
export const enum SlowPathRecord {
  arp = 1,
  hold,
}

/** Fields of an inject record: [at (Next), port (ingress), length, arg]. */

/**
 * Fields of a trace record: [verdict, ingress, receivedLength, reason, icmp,
 * egress, sentLength, nextHop]; the frame as received in the first half of
 * the slot, as sent (rewritten) in the second.
 */
export const TRACE_SLOT = 4096;

export type ToWorker =
  | { type: 'wake' }
  /** A new table (reload): the worker takes it between two batches and writes `set` into its FIB_SET word. */
  | { type: 'fib'; fib: FibBuffers; set: number }
  | { type: 'trace'; filter: TraceFilter }
  | { type: 'trace-stop' }
  | { type: 'reopen'; port: number }
  /** Fold the sockets' kernel counters (PACKET_STATISTICS) into the backend counters now, and say so. */
  | { type: 'stats' }
  | { type: 'local-addresses'; addresses: number[] }
  | { type: 'mac'; port: number; mac: number[] }
  | { type: 'stop' };

export type FromWorker =
  /** Forwarding; `backend`: the ports it opened (io: auto falls back from xdp to ring, and says why in a log message first). */
  | { type: 'ready'; cpu?: number; backend: PortBackend }
  | { type: 'failed'; message: string }
  | { type: 'wake' }
  | { type: 'trace-done' }
  | { type: 'stats-done' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string; fields?: Record<string, unknown> }
  | { type: 'stopped' };
