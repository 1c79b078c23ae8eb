// Ports and the batch they fill, the same on the main thread (dataplane.workers:
// 0) and on each data-plane worker: the backend the config names, and the
// receive sink that processes the shared batch once per event-loop turn (or
// at once when it is full).

import type { IoBackend, PortBackend, RingConfig, XdpConfig } from '../config/types.js';
import type { FrameBatch } from '../dataplane/batch.js';
import type { Port, RxSink } from '../io/port.js';
import { PcapPort } from '../io/pcap-port.js';
import { RingPort } from '../io/ring-port.js';
import { XdpPort } from '../io/xdp-port.js';

export interface PortHostOptions {
  io: IoBackend;
  ring: RingConfig;
  /** With several workers: each port's sockets form a PACKET_FANOUT group (flow hash), id = base + port index. */
  fanoutBase?: number;
  /** Per port: where the ring backend counts (shared memory on a worker). */
  backendCounters?: Float64Array[];
}

/** Packet-socket port backends (ring or pcap) for `names`, not opened yet. */
export function makePorts(names: readonly string[], options: PortHostOptions & { io: 'ring' | 'pcap' }): Port[] {
  const ring = options.ring;
  return names.map((name, index) =>
    options.io === 'ring'
      ? new RingPort(name, index, {
        rxRing: ring.rxRing, tx: ring.tx, qdiscBypass: ring.qdiscBypass, busyPoll: ring.busyPoll,
        ...(options.fanoutBase === undefined ? {} : { fanout: { id: (options.fanoutBase + index) & 0xffff, mode: 'hash' as const } }),
      }, options.backendCounters?.[index])
      : new PcapPort(name, index));
}

export type Say = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

/**
 * The ports on the configured backend. AF_XDP ports are attached at once,
 * because whether they work decides the rest: with io: xdp a port that cannot
 * be had throws one line naming the interface and the reason; with io: auto
 * the ring backend is used instead, and `say` says why. Packet-socket ports
 * open later (with the receive sink).
 */
export function openBackend(
  names: readonly string[], options: PortHostOptions & { xdp: XdpConfig; localAddresses: readonly number[] }, say: Say,
): { backend: PortBackend; ports: Port[] } {
  const io = options.io;
  if (io === 'pcap' || io === 'ring') return { backend: io, ports: makePorts(names, { ...options, io }) };
  const ports: XdpPort[] = [];
  try {
    for (const [index, name] of names.entries()) {
      const { mode, attach, frames, busyPoll } = options.xdp;
      const port = new XdpPort(name, index, { mode, attach, frames, busyPoll, localAddresses: options.localAddresses }, options.backendCounters?.[index]);
      port.attach();
      ports.push(port);
    }
  } catch (error) {
    for (const port of ports) port.close();
    const reason = (error as Error).message;
    if (io === 'xdp') throw new PortBackendError(`io: xdp: ${reason}`);
    say('warn', `io: auto: AF_XDP cannot be used (${reason}); using the AF_PACKET ring backend (io: ring)`, { io: 'auto', backend: 'ring', reason });
    return { backend: 'ring', ports: makePorts(names, { ...options, io: 'ring' }) };
  }
  for (const port of ports) {
    const info = port.info()!;
    const how = `${info.attach} XDP${info.nativeRefused ? ` (native refused: ${info.nativeRefused})` : ''}, ${info.mode === 'zerocopy' ? 'zero-copy' : 'copy mode'}, ` +
      `${info.queues} queue${info.queues === 1 ? '' : 's'}, ${info.frames} UMEM frames per queue`;
    say('info', `port ${port.name}: AF_XDP, ${how}, XDP program id ${info.programId}`,
      { interface: port.name, backend: 'xdp', attach: info.attach, mode: info.mode, queues: info.queues, programId: info.programId, nativeRefused: info.nativeRefused });
  }
  if (io === 'auto') say('info', `io: auto: using AF_XDP (io: xdp) on ${ports.map((p) => p.name).join(', ')}`, { io: 'auto', backend: 'xdp' });
  return { backend: 'xdp', ports };
}

/** A backend that cannot be had (io: xdp on an interface that refuses it): one line, for the operator. */
export class PortBackendError extends Error {
  readonly code = 'ESYSTEM';
}

/**
 * The receive sink: ports append to `batch`; it is processed once per
 * event-loop turn (setImmediate), or at once when full. `onTooLong` counts a
 * frame too long for a slot (the port never hands it over).
 */
export function batchSink(batch: FrameBatch, process: () => void, onTooLong: () => void): RxSink {
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    process();
  };
  return {
    batch,
    pending: () => {
      if (scheduled) return;
      scheduled = true;
      setImmediate(flush);
    },
    full: process,
    tooLong: onTooLong,
  };
}
