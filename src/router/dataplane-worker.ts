// A data-plane worker thread: its own ports (sockets opened here, in a
// PACKET_FANOUT group when there are several workers, so a flow's frames
// always reach the same worker), its own batch, stages and counters, over the
// tables the main thread keeps in shared memory. Its event loop does nothing
// but receive, process and send: no timer, socket or check of the control
// plane ever sits between two batches.
//
// What it cannot decide alone goes to the main thread through a queue (ARP
// frames to learn from, frames waiting for a neighbour); what the main thread
// hands back (held frames, ARP requests) comes through another. Route changes
// arrive as a switch between the FIB's two copies, read once per batch.

import { parentPort, workerData } from 'node:worker_threads';
import { FrameBatch, SLOT_SIZE } from '../dataplane/batch.js';
import { monotonicClock } from '../dataplane/clock.js';
import { Counters, Drop } from '../dataplane/counters.js';
import { Dataplane, type DataplaneTables, type InjectAt, type SlowPath } from '../dataplane/dataplane.js';
import type { FibView } from '../dataplane/fib/lpm.js';
import { NextHopTable } from '../dataplane/fib/nexthop.js';
import { IcmpErrorSender } from '../dataplane/icmp-error.js';
import { Ip4Fragmenter } from '../dataplane/ip4-fragment.js';
import { NeighborTable } from '../dataplane/neighbor-table.js';
import { PortTable } from '../dataplane/ports.js';
import { FrameQueue, RECORD_FIELDS } from '../dataplane/queue.js';
import { PacketTracer, type TraceSink, type TraceVerdict } from '../dataplane/trace.js';
import { loadNative } from '../io/ring-port.js';
import type { PortBackend } from '../config/types.js';
import type { Port } from '../io/port.js';
import { batchSink, openBackend } from './port-host.js';
import {
  ACTIVE_COPY, READING, SlowPathRecord, TRACE_SLOT, type FibBuffers, type FromWorker, type ToWorker, type WorkerSetup,
} from './threads-protocol.js';

const setup = workerData as WorkerSetup;
const port = parentPort!;
const say = (message: FromWorker) => port.postMessage(message);

const fibViews = (fib: FibBuffers): FibView[] =>
  fib.copies.map((copy) => ({ tbl24: new Uint16Array(copy.tbl24), tbl8: new Uint16Array(copy.tbl8) }));

class WorkerHost implements SlowPath, TraceSink {
  private readonly ports = PortTable.attach(setup.ports);
  private readonly counters = Counters.attach(setup.counters);
  private readonly control = new Int32Array(setup.control);
  private readonly reading = READING + setup.index;
  private fib = fibViews(setup.fib);
  private readonly tables: DataplaneTables;
  private readonly slowPath = FrameQueue.attach(setup.slowPath);
  private readonly injected = FrameQueue.attach(setup.inject);
  private readonly traced = FrameQueue.attach(setup.trace);
  private readonly backends: Port[];
  private readonly backend: PortBackend;
  private readonly dataplane: Dataplane;
  private readonly batch = new FrameBatch(setup.batchSize);
  private statsTimer: NodeJS.Timeout | undefined;

  constructor() {
    // io: auto tries AF_XDP and falls back to the ring backend, telling the main thread why (a log line).
    ({ backend: this.backend, ports: this.backends } = openBackend(this.ports.names, {
      io: setup.io, ring: setup.ring, xdp: setup.xdp, localAddresses: setup.localAddresses, fanoutBase: setup.fanoutBase,
      backendCounters: setup.backendCounters.map((buffer) => new Float64Array(buffer)),
    }, (level, message, fields) => say({ type: 'log', level, message, fields })));
    this.tables = { fib: this.fib[0], nextHops: NextHopTable.attach(setup.nextHops), neighbors: NeighborTable.attach(setup.neighbors) };
    const icmp = new IcmpErrorSender(this.ports, this.backends, this.counters, setup.icmp, monotonicClock);
    const fragmenter = new Ip4Fragmenter(this.ports, this.backends, this.counters);
    this.dataplane = new Dataplane(this.tables, this.ports, this.backends, this.counters, icmp, this, fragmenter, setup.batchSize);
  }

  start(): void {
    let cpu: number | undefined;
    if (setup.cpu !== undefined) {
      loadNative().setThreadAffinity([setup.cpu]);
      cpu = setup.cpu;
    }
    const sink = batchSink(this.batch, () => this.run(), () => this.counters.drops[Drop.frameTooLong]++);
    for (const backend of this.backends) backend.open(sink);
    // The ring's kernel counters (drops when its ring was full) are folded in here, where its socket lives.
    this.statsTimer = setInterval(() => {
      for (const backend of this.backends) backend.stats?.();
    }, 1000);
    this.statsTimer.unref();
    say({ type: 'ready', cpu, backend: this.backend });
  }

  stop(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    for (const backend of this.backends) {
      backend.stats?.();
      backend.close();
    }
  }

  /**
   * One batch, and the frames handed back since the last: the FIB copy the
   * control plane says is current is read once, and this worker says it reads
   * it until the end, so the other copy may be edited meanwhile.
   */
  run(): void {
    const active = Atomics.load(this.control, ACTIVE_COPY);
    Atomics.store(this.control, this.reading, active + 1);
    this.tables.fib = this.fib[active];
    if (this.injected.length > 0) this.takeInjected();
    this.dataplane.process(this.batch);
    Atomics.store(this.control, this.reading, 0);
  }

  private takeInjected(): void {
    const queue = this.injected;
    queue.drain((k) => {
      const f = k * RECORD_FIELDS;
      const fields = queue.fields;
      this.dataplane.inject(queue.data, k * queue.slotSize, fields[f + 2], fields[f + 1], fields[f] as InjectAt, fields[f + 3]);
    });
  }

  onMessage(message: ToWorker): void {
    switch (message.type) {
      case 'wake':
        this.run(); // processes the injected frames (the batch may be empty)
        break;
      case 'fib':
        this.fib = fibViews(message.fib); // between two batches: message handlers never run inside one
        Atomics.store(this.control, READING + setup.workers + setup.index, message.set);
        Atomics.notify(this.control, READING + setup.index);
        break;
      case 'trace':
        this.dataplane.tracer = new PacketTracer(setup.batchSize, message.filter, this);
        break;
      case 'trace-stop':
        this.dataplane.tracer = null;
        break;
      case 'reopen': {
        const backend = this.backends[message.port];
        backend.close();
        backend.open(batchSink(this.batch, () => this.run(), () => this.counters.drops[Drop.frameTooLong]++));
        break;
      }
      case 'local-addresses':
        for (const backend of this.backends) backend.setLocalAddresses?.(message.addresses);
        break;
      case 'mac':
        this.backends[message.port].setMac?.(Uint8Array.from(message.mac));
        break;
      case 'stats':
        for (const backend of this.backends) backend.stats?.();
        say({ type: 'stats-done' });
        break;
      case 'stop':
        this.stop();
        say({ type: 'stopped' });
        port.close();
        break;
    }
  }

  // ---- SlowPath: records for the main thread ----

  arp(frame: Uint8Array, offset: number, length: number, ingress: number): void {
    this.record(SlowPathRecord.arp, frame, offset, length, ingress, 0);
  }

  hold(frame: Uint8Array, offset: number, length: number, ingress: number, nextHop: number): void {
    this.record(SlowPathRecord.hold, frame, offset, length, ingress, nextHop);
  }

  private record(kind: SlowPathRecord, frame: Uint8Array, offset: number, length: number, ingress: number, nextHop: number): void {
    const queue = this.slowPath;
    const k = queue.reserve();
    if (k < 0) {
      // The main thread is behind: the frame is lost as a hold would lose it.
      this.counters.drops[Drop.holdQueueFull]++;
      return;
    }
    const f = k * RECORD_FIELDS;
    queue.fields[f] = kind;
    queue.fields[f + 1] = ingress;
    queue.fields[f + 2] = length;
    queue.fields[f + 3] = nextHop;
    queue.data.set(frame.subarray(offset, offset + length), k * queue.slotSize);
    if (queue.commit()) say({ type: 'wake' });
  }

  // ---- TraceSink: traced frames for the main thread's pcapng writer ----

  frame(
    batch: FrameBatch, slot: number, received: Buffer, receivedOffset: number, receivedLength: number,
    verdict: TraceVerdict, reason: number, icmp: number,
  ): void {
    const queue = this.traced;
    const k = queue.reserve();
    if (k < 0) return; // counted by the queue; the writer reports it
    const f = k * RECORD_FIELDS;
    const fields = queue.fields;
    fields[f] = verdict;
    fields[f + 1] = batch.port[slot];
    fields[f + 2] = receivedLength;
    fields[f + 3] = reason;
    fields[f + 4] = icmp;
    fields[f + 5] = batch.egress[slot];
    fields[f + 6] = batch.length[slot];
    fields[f + 7] = batch.nextHop[slot];
    const at = k * TRACE_SLOT;
    queue.data.set(received.subarray(receivedOffset, receivedOffset + receivedLength), at);
    queue.data.set(batch.data.subarray(slot * SLOT_SIZE, slot * SLOT_SIZE + batch.length[slot]), at + TRACE_SLOT / 2);
    if (queue.commit()) say({ type: 'wake' });
  }

  limitReached(): void {
    say({ type: 'trace-done' });
  }
}

try {
  const host = new WorkerHost();
  port.on('message', (message: ToWorker) => host.onMessage(message));
  host.start();
} catch (error) {
  say({ type: 'failed', message: (error as Error).message });
}
