// The main thread's side of the data-plane workers (dataplane.workers >= 1):
// starts them over the shared tables, takes their slow-path work (ARP frames,
// frames to hold) to the neighbour resolver, hands frames back to them,
// publishes FIB changes, relays traces, and stops them.
//
// Publishing a FIB change (the RIB calls publishFib after each one): the
// change was made in the copy no worker reads; the control word switches the
// workers to it (each takes it at its next batch), the main thread waits until
// no worker is still inside a batch on the old copy (a batch lasts well under
// a millisecond), then brings the old copy up to date. A new table (reload) is
// sent to the workers, which take it between two batches and say so; the main
// thread waits for that before freeing what only the old table named.

import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { IcmpConfig, IoBackend, PortBackend, RingConfig, XdpConfig } from '../config/types.js';
import { FrameBatch, SLOT_SIZE } from '../dataplane/batch.js';
import { Counters } from '../dataplane/counters.js';
import type { FrameInjector, InjectAt, SlowPath } from '../dataplane/dataplane.js';
import type { LpmTable } from '../dataplane/fib/lpm.js';
import type { NextHopTable } from '../dataplane/fib/nexthop.js';
import { allocate } from '../dataplane/memory.js';
import type { NeighborTable } from '../dataplane/neighbor-table.js';
import type { PortTable } from '../dataplane/ports.js';
import { FrameQueue, RECORD_FIELDS } from '../dataplane/queue.js';
import type { TraceFilter, TraceSink, TraceVerdict } from '../dataplane/trace.js';
import { loadNative } from '../io/ring-port.js';
import { XDP_COUNTER_NAMES } from '../io/xdp-port.js';
import {
  ACTIVE_COPY, READING, SlowPathRecord, TRACE_SLOT, type FibBuffers, type FromWorker, type ToWorker, type WorkerSetup,
} from './threads-protocol.js';

/** Slow-path records a worker may queue before the main thread takes them: a hold pool's worth. */
const SLOW_PATH_RECORDS = 1024;
/** Frames the main thread may hand back at once (held frames of many neighbours, ARP requests). */
const INJECT_RECORDS = 1024;
/** Traced frames in flight to the pcapng writer. */
const TRACE_RECORDS = 256;
/** How long the main thread waits for a worker to leave the old FIB copy or take a new table before calling it stuck. */
const SWITCH_TIMEOUT_MS = 2000;

export interface ThreadsOptions {
  workers: number;
  io: IoBackend;
  ring: RingConfig;
  xdp: XdpConfig;
  /** The box's addresses at start (AF_XDP ports pass frames to them to the kernel). */
  localAddresses: number[];
  batchSize: number;
  icmp: IcmpConfig;
  /** Per worker, the CPU to pin it to (shorter than `workers`: the rest are not pinned). */
  cpus?: number[];
  /** Told when a worker reports something for the log (with the structured fields of the line, if any). */
  log?(level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>): void;
}

export interface SharedTables {
  ports: PortTable;
  nextHops: NextHopTable;
  neighbors: NeighborTable;
}

interface WorkerState {
  worker: Worker;
  setup: WorkerSetup;
  slowPath: FrameQueue;
  inject: FrameQueue;
  trace: FrameQueue;
  backendCounters: Float64Array[];
  exited: Promise<void>;
  /** Callers of refreshBackendStats waiting for this worker's answer. */
  statsWaiters: (() => void)[];
}

/** The worker script: dist/src/router/dataplane-worker.js (from a TypeScript run, the built one beside it). */
function workerScript(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return fileURLToPath(new URL('./dataplane-worker.js', import.meta.url));
  return fileURLToPath(new URL('../../dist/src/router/dataplane-worker.js', import.meta.url));
}

export class DataplaneThreads implements FrameInjector {
  /** One per worker, in shared memory: the data plane's counts. */
  readonly counters: Counters[];
  private readonly control: Int32Array;
  private readonly states: WorkerState[] = [];
  private fibSet = 0;
  private traceSink: TraceSink | null = null;
  private readonly traceBatch = new FrameBatch(1);
  private readonly traceReceived = Buffer.alloc(SLOT_SIZE);
  private stopping = false;
  /** The neighbour resolver, once it exists (it needs this as its injector first). */
  private slowPath: SlowPath = { arp: () => undefined, hold: () => undefined };

  constructor(
    private readonly tables: SharedTables,
    private readonly fib: () => LpmTable,
    private readonly options: ThreadsOptions,
  ) {
    const n = options.workers;
    this.control = allocate(Int32Array, READING + 2 * n, 'shared');
    this.counters = Array.from({ length: n }, () => new Counters(tables.ports.count, 'shared'));
  }

  connect(slowPath: SlowPath): void {
    this.slowPath = slowPath;
  }

  get workers(): number {
    return this.options.workers;
  }

  /** Where the FIB workers read lives (for a new table). */
  private fibBuffers(table: LpmTable): FibBuffers {
    return { copies: table.copies.map((copy) => ({ tbl24: copy.tbl24.buffer, tbl8: copy.tbl8.buffer })) };
  }

  /**
   * Starts the workers one after the other (so each port's fanout group has
   * its members in worker order) and resolves when every one forwards.
   * Throws with the first worker's reason if one cannot start.
   */
  async start(): Promise<PortBackend> {
    const n = this.options.workers;
    const table = this.fib();
    table.editCopy(1 - Atomics.load(this.control, ACTIVE_COPY));
    const fanoutBase = n > 1 ? (process.pid * 16) & 0xff00 : undefined;
    // Room for either backend's counters (the ring's, or AF_XDP's).
    const COUNTERS = Math.max(loadNative().COUNTERS, XDP_COUNTER_NAMES.length);
    let io = this.options.io;
    let backend: PortBackend = io === 'auto' ? 'xdp' : (io as PortBackend);
    for (let index = 0; index < n; index++) {
      const slowPath = new FrameQueue(SLOW_PATH_RECORDS, SLOT_SIZE);
      const inject = new FrameQueue(INJECT_RECORDS, SLOT_SIZE);
      const trace = new FrameQueue(TRACE_RECORDS, TRACE_SLOT);
      const backendCounters = this.tables.ports.names.map(() => allocate(Float64Array, COUNTERS, 'shared'));
      const setup: WorkerSetup = {
        index, workers: n, io, ring: this.options.ring, xdp: this.options.xdp, localAddresses: this.options.localAddresses, fanoutBase, batchSize: this.options.batchSize, icmp: this.options.icmp,
        cpu: this.options.cpus?.[index],
        ports: this.tables.ports.buffers(), nextHops: this.tables.nextHops.buffers(), neighbors: this.tables.neighbors.buffers(),
        fib: this.fibBuffers(table), control: this.control.buffer, counters: this.counters[index].buffers(),
        backendCounters: backendCounters.map((c) => c.buffer), slowPath: slowPath.buffers(), inject: inject.buffers(), trace: trace.buffers(),
      };
      const worker = new Worker(workerScript(), { workerData: setup, name: `vipr-dataplane-${index}` });
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      const state: WorkerState = { worker, setup, slowPath, inject, trace, backendCounters, exited, statsWaiters: [] };
      this.states.push(state);
      await new Promise<void>((resolve, reject) => {
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`data-plane worker ${index} exited (${code}) before it was ready`)));
        worker.on('message', (message: FromWorker) => {
          if (message.type === 'ready') {
            if (message.cpu !== undefined) this.options.log?.('info', `data-plane worker ${index} pinned to CPU ${message.cpu}`);
            // io: auto is decided by the first worker; the others take what it took.
            backend = message.backend;
            io = message.backend;
            resolve();
          } else if (message.type === 'failed') reject(new Error(message.message));
          else this.onMessage(state, message);
        });
      });
      worker.removeAllListeners('error');
      worker.removeAllListeners('exit');
      worker.on('error', (error) => this.options.log?.('error', `data-plane worker ${index}: ${error.message}`));
      worker.on('exit', (code) => {
        Atomics.store(this.control, READING + index, 0); // it reads nothing any more
        if (!this.stopping) this.options.log?.('error', `data-plane worker ${index} exited (${code}): its share of the traffic is not forwarded`);
      });
    }
    return backend;
  }

  private onMessage(state: WorkerState, message: FromWorker): void {
    switch (message.type) {
      case 'wake':
        this.takeSlowPath(state);
        this.takeTraced(state);
        break;
      case 'trace-done':
        this.traceSink?.limitReached();
        break;
      case 'stats-done':
        state.statsWaiters.splice(0).forEach((done) => done());
        break;
      case 'log':
        // Lines about the ports read as the inline daemon's do (the same words, the same fields).
        this.options.log?.(message.level, message.message, { worker: state.setup.index, ...message.fields });
        break;
      default:
        break;
    }
  }

  private takeSlowPath(state: WorkerState): void {
    const queue = state.slowPath;
    queue.drain((k) => {
      const f = k * RECORD_FIELDS;
      const fields = queue.fields;
      const kind = fields[f] as SlowPathRecord;
      if (kind === SlowPathRecord.arp) this.slowPath.arp(queue.data, k * queue.slotSize, fields[f + 2], fields[f + 1]);
      else this.slowPath.hold(queue.data, k * queue.slotSize, fields[f + 2], fields[f + 1], fields[f + 3]);
    });
  }

  private takeTraced(state: WorkerState): void {
    const queue = state.trace;
    if (queue.length === 0) return;
    const batch = this.traceBatch;
    queue.drain((k) => {
      const sink = this.traceSink;
      if (!sink) return;
      const f = k * RECORD_FIELDS;
      const fields = queue.fields;
      const at = k * TRACE_SLOT;
      const receivedLength = fields[f + 2];
      this.traceReceived.set(queue.data.subarray(at, at + receivedLength));
      batch.data.set(queue.data.subarray(at + TRACE_SLOT / 2, at + TRACE_SLOT / 2 + fields[f + 6]));
      batch.port[0] = fields[f + 1];
      batch.egress[0] = fields[f + 5];
      batch.length[0] = fields[f + 6];
      batch.nextHop[0] = fields[f + 7];
      sink.frame(batch, 0, this.traceReceived, 0, receivedLength, fields[f] as TraceVerdict, fields[f + 3], fields[f + 4]);
    });
  }

  // ---- FrameInjector: frames the resolver hands back, to worker 0 (any worker can send on any port) ----

  inject(frame: Uint8Array, offset: number, length: number, ingressPort: number, at: InjectAt, arg: number): boolean {
    const state = this.states[0];
    if (!state || length > SLOT_SIZE) return false;
    const queue = state.inject;
    const k = queue.reserve();
    if (k < 0) return false;
    const f = k * RECORD_FIELDS;
    queue.fields[f] = at;
    queue.fields[f + 1] = ingressPort;
    queue.fields[f + 2] = length;
    queue.fields[f + 3] = arg;
    queue.data.set(frame.subarray(offset, offset + length), k * queue.slotSize);
    if (queue.commit()) this.post(state, { type: 'wake' });
    return true;
  }

  // ---- the FIB ----

  /** Makes the FIB's changes (or, when `replaced`, the new table) what the workers read; returns when they do. */
  publishFib(replaced: boolean): void {
    const table = this.fib();
    if (this.states.length === 0) {
      // Not started yet: both copies must simply agree, and the edits go to the copy workers will not read first.
      if (table.changed) {
        Atomics.store(this.control, ACTIVE_COPY, table.editingCopy);
        table.syncCopies();
      } else if (replaced) table.editCopy(1 - Atomics.load(this.control, ACTIVE_COPY));
      return;
    }
    if (replaced) {
      this.fibSet++;
      table.editCopy(1 - Atomics.load(this.control, ACTIVE_COPY));
      const fib = this.fibBuffers(table);
      for (const state of this.states) this.post(state, { type: 'fib', fib, set: this.fibSet });
      this.waitFor((index) => Atomics.load(this.control, READING + this.options.workers + index) === this.fibSet, 'take the new FIB');
      return;
    }
    if (!table.changed) return;
    const now = table.editingCopy;
    Atomics.store(this.control, ACTIVE_COPY, now);
    const old = 1 - now;
    this.waitFor((index) => Atomics.load(this.control, READING + index) !== old + 1, 'leave the old FIB copy');
    table.syncCopies();
  }

  /** Blocks (a batch is short) until `done(worker)` holds for every live worker. */
  private waitFor(done: (index: number) => boolean, what: string): void {
    const deadline = performance.now() + SWITCH_TIMEOUT_MS;
    for (const state of this.states) {
      const index = state.setup.index;
      while (!done(index)) {
        if (performance.now() > deadline) {
          this.options.log?.('error', `data-plane worker ${index} did not ${what} within ${SWITCH_TIMEOUT_MS} ms`);
          break;
        }
        Atomics.wait(this.control, READING + index, Atomics.load(this.control, READING + index), 1);
      }
    }
  }

  // ---- traces ----

  startTrace(filter: TraceFilter, sink: TraceSink): void {
    this.traceSink = sink;
    for (const state of this.states) this.post(state, { type: 'trace', filter });
  }

  stopTrace(): void {
    this.traceSink = null;
    for (const state of this.states) this.post(state, { type: 'trace-stop' });
  }

  get tracing(): boolean {
    return this.traceSink !== null;
  }

  // ---- ports ----

  /** The box's addresses changed: AF_XDP ports pass frames to them to the kernel. */
  setLocalAddresses(addresses: number[]): void {
    this.options.localAddresses = addresses;
    for (const state of this.states) this.post(state, { type: 'local-addresses', addresses });
  }

  /** A port's MAC changed (the XDP program matches frames to it). */
  setMac(port: number, mac: Uint8Array): void {
    for (const state of this.states) this.post(state, { type: 'mac', port, mac: [...mac] });
  }

  /** A port's interface was made again: every worker reopens its socket on it. */
  reopen(port: number): void {
    for (const state of this.states) this.post(state, { type: 'reopen', port });
  }

  /** Has every worker fold its sockets' kernel counters in (they live on its thread); resolves when all have, or after 500 ms. */
  async refreshBackendStats(): Promise<void> {
    await Promise.all(this.states.map((state) => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 500);
      state.statsWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.post(state, { type: 'stats' });
    })));
  }

  /** The ring backend's counters of a port, summed over the workers. */
  backendCounters(port: number): Float64Array {
    const sum = new Float64Array(this.states[0]?.backendCounters[port].length ?? 0);
    for (const state of this.states) {
      const counts = state.backendCounters[port];
      for (let i = 0; i < sum.length; i++) sum[i] += counts[i];
    }
    return sum;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const state of this.states) this.post(state, { type: 'stop' });
    await Promise.all(this.states.map((state) =>
      Promise.race([state.exited, new Promise<void>((resolve) => setTimeout(resolve, 2000).unref())]).then(() => state.worker.terminate())));
  }

  private post(state: WorkerState, message: ToWorker): void {
    state.worker.postMessage(message);
  }
}
