// The AF_XDP port (io: xdp), first on a veth pair of its own, then as the
// operator meets it: vipr on the lab network with io: xdp.
//
// On the veth pair, frames of every kind are sent at the port from a packet
// socket on the other end, and the table says where each must go: transit
// IPv4 to vipr only; the box's own addresses, broadcast, other hosts' MACs
// and anything not IPv4 to the kernel only; ARP to the kernel and to vipr
// (the tap). Frames cross byte for byte both ways, the box's addresses and the
// port's MAC can change under it, a veth with two queues is read on both, and
// the program comes off the interface when the port closes and when the
// process holding it is killed with SIGKILL (the bpf_link dies with its fd).
//
// In the lab: the program is on both ports, the kernel still answers for the
// router (ping 10.0.0.1, health checks) and vipr still learns neighbours
// from ARP; there is no kernel-transit nftables rule; an address added at run
// time is the kernel's; stopping vipr, or killing it, takes the program away;
// a port io: xdp cannot use stops `vipr run` in one line, and io: auto falls
// back to ring. The forwarding session itself runs with io: xdp in
// forwarding.test.ts.
//
// Needs root, the addon built with AF_XDP (bash scripts/setup.sh) and the daemon built.
import { execFile, spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameBatch, SLOT_SIZE } from '../../src/dataplane/batch.js';
import type { RxSink } from '../../src/io/port.js';
import { RingPort } from '../../src/io/ring-port.js';
import { XdpCounter, XdpPort, type XdpPortOptions } from '../../src/io/xdp-port.js';
import { parseAddress } from '../../src/util/ipv4.js';
import {
  closeLabWithVipr, labConfigPath, labUp, labWithVipr, REPO_ROOT, startVipr, viprCtl, waitFor, withoutChecks,
  type Lab, type ViprProcess,
} from './harness.js';

const execFileP = promisify(execFile);
const NS = `vxt-${randomBytes(3).toString('hex')}`; // the port's side
const PEER = `${NS}-p`; // the wire's other end
const PORT_ADDRESS = '10.97.0.1';
const PEER_ADDRESS = '10.97.0.2';
/** An address of another interface of the box (loopback here): the kernel's too. */
const OTHER_LOCAL = '172.31.0.1';
const TRANSIT = '198.51.100.7';
const TEST_ETHERTYPE = 0x88b5;

async function sh(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(args[0], args.slice(1));
  return stdout;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Collects every frame a port delivers. */
class CollectingSink implements RxSink {
  readonly batch = new FrameBatch(32);
  readonly frames: Buffer[] = [];
  tooLongCount = 0;
  private scheduled = false;
  pending(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.take();
    });
  }
  full(): void {
    this.take();
  }
  tooLong(): void {
    this.tooLongCount++;
  }
  private take(): void {
    const b = this.batch;
    for (let i = 0; i < b.count; i++) this.frames.push(Buffer.from(b.data.subarray(i * SLOT_SIZE, i * SLOT_SIZE + b.length[i])));
    b.count = 0;
  }
  /** Frames carrying `tag` (built by frame() below), in arrival order. */
  tagged(tag: number): Buffer[] {
    return this.frames.filter((f) => tagOf(f) === tag);
  }
}

const mac = (text: string) => Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

/**
 * A test frame: to `destination` MAC, of `ethertype`; IPv4 ones to `to` with
 * a valid header; the tag and sequence number sit in the IPv4 identification
 * and the first payload bytes (or right after the Ethernet header).
 */
function frame(o: { destination: string; source: string; ethertype?: number; to?: string; tag: number; seq?: number; length?: number }): Buffer {
  const length = o.length ?? 64;
  const f = Buffer.alloc(length);
  mac(o.destination).copy(f, 0);
  mac(o.source).copy(f, 6);
  const ethertype = o.ethertype ?? 0x0800;
  f.writeUInt16BE(ethertype, 12);
  if (ethertype !== 0x0800 || length < 34) {
    f.writeUInt16BE(o.tag, 14);
    f.writeUInt32BE(o.seq ?? 0, 16);
    return f;
  }
  const total = length - 14;
  f[14] = 0x45;
  f.writeUInt16BE(total, 16);
  f.writeUInt16BE(o.tag, 18); // identification
  f[22] = 64;
  f[23] = 17;
  f.writeUInt32BE(parseAddress(PEER_ADDRESS), 26);
  f.writeUInt32BE(parseAddress(o.to ?? TRANSIT), 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 24);
  if (length >= 42) f.writeUInt32BE(o.seq ?? 0, 38);
  for (let i = 42; i < length; i++) f[i] = (i * 7 + (o.seq ?? 0)) & 0xff;
  return f;
}

function tagOf(f: Buffer): number {
  if (f.length >= 34 && f.readUInt16BE(12) === 0x0800) return f.readUInt16BE(18);
  return f.length >= 16 ? f.readUInt16BE(14) : -1;
}

let nextTag = 0x1000;

/** `ip -j -d link show NAME` in a namespace: the attached XDP program, if any. */
async function xdpOn(ns: string, name: string): Promise<{ id: number; mode: number } | undefined> {
  const [link] = JSON.parse(await sh('ip', '-n', ns, '-j', '-d', 'link', 'show', name)) as { xdp?: { mode: number; prog?: { id: number } } }[];
  return link.xdp?.prog ? { id: link.xdp.prog.id, mode: link.xdp.mode } : undefined;
}

describe('XdpPort on a veth pair', () => {
  const opened: Array<{ close(): void }> = [];
  let portMac = '';
  let peerMac = '';
  let peer: RingPort;
  const peerSink = new CollectingSink();

  const localAddresses = [parseAddress(PORT_ADDRESS), parseAddress(OTHER_LOCAL), parseAddress('127.0.0.1')];
  function xdp(options: XdpPortOptions = {}, name = 'xa'): { port: XdpPort; sink: CollectingSink } {
    const port = new XdpPort(name, 3, { localAddresses, ...options, netns: NS });
    const sink = new CollectingSink();
    opened.push(port);
    port.open(sink);
    return { port, sink };
  }

  /** Sends frames from the other end of the wire. */
  function send(...frames: Buffer[]): void {
    for (const f of frames) expect(peer.sendFrame(f, f.length)).toBe(true);
  }

  beforeAll(async () => {
    await sh('ip', 'netns', 'add', NS);
    await sh('ip', 'netns', 'add', PEER);
    for (const ns of [NS, PEER]) {
      // No IPv6: its router solicitations and MLD reports would be frames nobody asked for.
      await sh('ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    }
    await sh('ip', '-n', NS, 'link', 'add', 'xa', 'type', 'veth', 'peer', 'name', 'xb', 'netns', PEER);
    // Two receive queues on each side: the sender's flows spread over them.
    await sh('ip', '-n', NS, 'link', 'add', 'xm', 'numtxqueues', '2', 'numrxqueues', '2', 'type', 'veth', 'peer', 'name', 'xn', 'netns', PEER, 'numtxqueues', '2', 'numrxqueues', '2');
    await sh('ip', '-n', NS, 'addr', 'add', `${OTHER_LOCAL}/32`, 'dev', 'lo');
    await sh('ip', '-n', NS, 'addr', 'add', `${PORT_ADDRESS}/24`, 'dev', 'xa');
    await sh('ip', '-n', PEER, 'addr', 'add', `${PEER_ADDRESS}/24`, 'dev', 'xb');
    await sh('ip', '-n', NS, 'addr', 'add', '10.96.0.1/24', 'dev', 'xm');
    await sh('ip', '-n', PEER, 'addr', 'add', '10.96.0.2/24', 'dev', 'xn');
    for (const [ns, name] of [[NS, 'xa'], [PEER, 'xb'], [NS, 'xm'], [PEER, 'xn']]) await sh('ip', '-n', ns, 'link', 'set', name, 'up');
    // The peer behaves like a wire: no offloads (a checksum left to offload is no wire's).
    for (const name of ['xb', 'xn']) await sh('ip', 'netns', 'exec', PEER, 'ethtool', '-K', name, 'tso', 'off', 'gso', 'off', 'tx', 'off');
    portMac = (await sh('ip', 'netns', 'exec', NS, 'cat', '/sys/class/net/xa/address')).trim();
    peerMac = (await sh('ip', 'netns', 'exec', PEER, 'cat', '/sys/class/net/xb/address')).trim();
    peer = new RingPort('xb', 7, { netns: PEER });
    peer.open(peerSink);
    opened.push(peer);
  });

  afterAll(async () => {
    for (const p of opened) p.close();
    await execFileP('ip', ['netns', 'del', NS]).catch(() => undefined);
    await execFileP('ip', ['netns', 'del', PEER]).catch(() => undefined);
  });

  it('attaches its program natively on veth, in copy mode (veth has no zero-copy), and detaches it on close', async () => {
    const { port } = xdp();
    const info = port.info()!;
    expect(info).toMatchObject({ attach: 'native', mode: 'copy', queues: 1, frames: 4096, localAddresses: 3, closed: false });
    expect(await xdpOn(NS, 'xa')).toEqual({ id: info.programId, mode: 1 /* XDP_ATTACHED_DRV */ });
    port.close();
    port.close(); // twice is harmless
    expect(port.info()).toBeUndefined();
    expect(await xdpOn(NS, 'xa')).toBeUndefined();
  });

  it.each<[string, (tag: number) => Buffer, 'vipr' | 'kernel' | 'both', keyof typeof XdpCounter]>([
    ['transit IPv4 to the port', (tag) => frame({ destination: portMac, source: peerMac, tag }), 'vipr', 'xdpRedirected'],
    ['IPv4 to the port\'s own address', (tag) => frame({ destination: portMac, source: peerMac, to: PORT_ADDRESS, tag }), 'kernel', 'xdpPassedLocalAddress'],
    ['IPv4 to an address of another interface', (tag) => frame({ destination: portMac, source: peerMac, to: OTHER_LOCAL, tag }), 'kernel', 'xdpPassedLocalAddress'],
    ['IPv4 to the broadcast MAC', (tag) => frame({ destination: BROADCAST, source: peerMac, tag }), 'kernel', 'xdpPassedOtherMac'],
    ['IPv4 to a multicast MAC', (tag) => frame({ destination: '01:00:5e:00:00:05', source: peerMac, to: '224.0.0.5', tag }), 'kernel', 'xdpPassedOtherMac'],
    ['IPv4 to another host\'s MAC', (tag) => frame({ destination: '02:99:00:00:00:01', source: peerMac, tag }), 'kernel', 'xdpPassedOtherMac'],
    ['an ARP request', (tag) => frame({ destination: BROADCAST, source: peerMac, ethertype: 0x0806, tag, length: 60 }), 'both', 'xdpPassedNotIpv4'],
    ['another ethertype to the port', (tag) => frame({ destination: portMac, source: peerMac, ethertype: TEST_ETHERTYPE, tag }), 'kernel', 'xdpPassedNotIpv4'],
    ['IPv4 too short for a header (vipr counts it)', (tag) => frame({ destination: portMac, source: peerMac, tag, length: 24 }), 'vipr', 'xdpRedirected'],
  ])('%s goes to %s', async (_what, build, where, verdict) => {
    const { port, sink } = xdp();
    const tag = nextTag++;
    const count = 5;
    const before = port.stats()[verdict];
    send(...Array.from({ length: count }, () => build(tag)));
    await waitFor(() => port.stats()[verdict] - before >= count, 3_000, 5);
    await sleep(30); // anything delivered to vipr is in the sink by now
    expect(port.stats()[verdict] - before).toBe(count);
    expect(sink.tagged(tag).length).toBe(where === 'kernel' ? 0 : count);
    if (where === 'both') expect(port.counters[XdpCounter.rxArpFrames]).toBeGreaterThanOrEqual(count);
    port.close();
  });

  it('the kernel still answers for the port\'s address while transit goes to vipr', async () => {
    const { port, sink } = xdp();
    const ping = await sh('ip', 'netns', 'exec', PEER, 'ping', '-c', '3', '-i', '0.2', '-W', '1', PORT_ADDRESS);
    expect(ping).toContain('3 packets transmitted, 3 received');
    // The ARP the peer's kernel sent to find the port reached vipr too.
    expect(sink.frames.some((f) => f.readUInt16BE(12) === 0x0806)).toBe(true);
    expect(port.stats().xdpPassedLocalAddress).toBeGreaterThanOrEqual(3);
    port.close();
  });

  it('moves frames byte for byte both ways, in bursts larger than a batch', async () => {
    const { port, sink } = xdp();
    const tag = nextTag++;
    const count = 100; // > the sink's 32 slots, > copy mode's 32 frames per kick
    const inbound = Array.from({ length: count }, (_, i) => frame({ destination: portMac, source: peerMac, tag, seq: i, length: 60 + ((i * 97) % 1455) }));
    send(...inbound);
    await until('every frame at vipr', () => sink.tagged(tag).length >= count);
    sink.tagged(tag).forEach((f, i) => expect(f.equals(inbound[i]), `inbound frame ${i}`).toBe(true));

    const outTag = nextTag++;
    const batch = new FrameBatch(128);
    const outbound = Array.from({ length: count }, (_, i) => frame({ destination: peerMac, source: portMac, tag: outTag, seq: i, length: 60 + ((i * 89) % 1455) }));
    for (const f of outbound) batch.push(0, f, f.length);
    expect(port.txBurst(batch, Uint16Array.from({ length: count }, (_, i) => i), count)).toBe(count);
    const one = frame({ destination: peerMac, source: portMac, tag: outTag, seq: count, length: 200 });
    expect(port.sendFrame(one, one.length)).toBe(true);
    await until('every frame at the peer', () => peerSink.tagged(outTag).length >= count + 1);
    await sleep(30);
    const got = peerSink.tagged(outTag);
    expect(got.length).toBe(count + 1);
    [...outbound, one].forEach((f, i) => expect(got[i].equals(f), `outbound frame ${i}`).toBe(true));
    const stats = port.stats();
    expect(stats.txFrames).toBe(count + 1);
    expect(stats.txFailed).toBe(0);
    expect(stats.kernelRxDropped + stats.kernelRxRingFull + stats.kernelTxInvalidDescs).toBe(0);
    // Nothing vipr sent comes back to it.
    expect(sink.tagged(outTag)).toEqual([]);
    port.close();
  });

  it('follows the box\'s addresses and its MAC as they change', async () => {
    const { port, sink } = xdp();
    const toTransit = (tag: number, destination = portMac) => frame({ destination, source: peerMac, tag });
    const deliveredTo = async (f: Buffer, tag: number): Promise<'vipr' | 'kernel'> => {
      const passed = port.stats().xdpPassedLocalAddress + port.stats().xdpPassedOtherMac;
      send(f);
      await waitFor(() => sink.tagged(tag).length > 0 || port.stats().xdpPassedLocalAddress + port.stats().xdpPassedOtherMac > passed, 3_000, 5);
      return sink.tagged(tag).length > 0 ? 'vipr' : 'kernel';
    };
    let tag = nextTag++;
    expect(await deliveredTo(toTransit(tag), tag)).toBe('vipr');
    // keepalived adds TRANSIT to the box: from now on it is the kernel's.
    port.setLocalAddresses([...localAddresses, parseAddress(TRANSIT)]);
    expect(port.info()!.localAddresses).toBe(4);
    tag = nextTag++;
    expect(await deliveredTo(toTransit(tag), tag)).toBe('kernel');
    port.setLocalAddresses(localAddresses);
    tag = nextTag++;
    expect(await deliveredTo(toTransit(tag), tag)).toBe('vipr');
    // A new MAC: frames to the old one are another host's now.
    port.setMac(mac('02:55:00:00:00:01'));
    tag = nextTag++;
    expect(await deliveredTo(toTransit(tag), tag)).toBe('kernel');
    tag = nextTag++;
    expect(await deliveredTo(toTransit(tag, '02:55:00:00:00:01'), tag)).toBe('vipr');
    port.close();
  });

  it('reads every receive queue: flows a two-queue veth spreads over both all reach vipr', async () => {
    const { port, sink } = xdp({}, 'xm');
    expect(port.info()!.queues).toBe(2);
    const xmMac = (await sh('ip', 'netns', 'exec', NS, 'cat', '/sys/class/net/xm/address')).trim();
    await sh('ip', '-n', PEER, 'neigh', 'replace', TRANSIT, 'lladdr', xmMac, 'dev', 'xn');
    await sh('ip', '-n', PEER, 'route', 'replace', `${TRANSIT}/32`, 'dev', 'xn');
    // 64 UDP flows from the peer's own stack: the veth's transmit queue (so our receive queue) is picked per flow.
    await sh('ip', 'netns', 'exec', PEER, 'python3', '-c', [
      'import socket',
      'for p in range(64):',
      '    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `    s.sendto(b'vipr xdp queue test', ('${TRANSIT}', 20000 + p))`,
      '    s.close()',
    ].join('\n'));
    const udp = () => sink.frames.filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt32BE(30) === parseAddress(TRANSIT));
    await until('64 datagrams at vipr', () => udp().length >= 64);
    const perQueue = port.info()!.receivedPerQueue;
    expect(perQueue.length).toBe(2);
    expect(perQueue[0], `per queue: ${perQueue.join(', ')}`).toBeGreaterThan(0);
    expect(perQueue[1], `per queue: ${perQueue.join(', ')}`).toBeGreaterThan(0);
    expect(port.stats().xdpPassedNoSocket).toBe(0);
    port.close();
  });

  it('busy-poll mode receives without readiness wakeups', async () => {
    const { port, sink } = xdp({ busyPoll: true });
    const tag = nextTag++;
    send(frame({ destination: portMac, source: peerMac, tag, seq: 1 }), frame({ destination: portMac, source: peerMac, tag, seq: 2 }));
    await until('both frames', () => sink.tagged(tag).length >= 2);
    expect(port.counters[XdpCounter.rxWakeups]).toBe(0);
    port.close();
  });

  it('keeps receiving after its link goes down and comes back up', async () => {
    const { port, sink } = xdp();
    await sh('ip', '-n', NS, 'link', 'set', 'xa', 'down');
    await sh('ip', '-n', NS, 'link', 'set', 'xa', 'up');
    const tag = nextTag++;
    let seq = 0;
    await until('a frame after the flap', () => {
      peer.sendFrame(frame({ destination: portMac, source: peerMac, tag, seq: seq++ }), 64); // until the carrier is back
      return sink.tagged(tag).length > 0;
    }, 5_000);
    expect(await xdpOn(NS, 'xa')).toBeDefined();
    port.close();
  });

  it.each<[string, XdpPortOptions, RegExp]>([
    ['zero-copy, which veth does not offer', { mode: 'zerocopy' }, /^interface xa: AF_XDP zero-copy: Operation not supported; the driver does not offer it: set xdp.mode to copy or auto$/],
    ['a missing interface', {}, /^interface xa9: no such interface: No such device$/],
  ])('names the interface and the reason when it cannot open: %s', async (_what, options, message) => {
    const port = new XdpPort(options.mode ? 'xa' : 'xa9', 0, { ...options, netns: NS });
    expect(() => port.attach()).toThrow(message);
    expect(await xdpOn(NS, 'xa')).toBeUndefined(); // nothing left behind
  });

  it('refuses an interface another XDP program is on (attached by `ip link`), and leaves that program alone', async () => {
    await sh('ip', '-n', NS, 'link', 'set', 'dev', 'xa', 'xdp', 'obj', join(REPO_ROOT, 'native-bindings/build/Release/vipr_xdp.bpf.o'), 'sec', 'xdp');
    try {
      const theirs = await xdpOn(NS, 'xa');
      expect(theirs).toBeDefined();
      expect(() => new XdpPort('xa', 0, { netns: NS }).attach()).toThrow(
        'interface xa: attach the XDP program (native): Device or resource busy; another XDP program is attached: `ip link show xa`',
      );
      expect(await xdpOn(NS, 'xa')).toEqual(theirs);
    } finally {
      await sh('ip', '-n', NS, 'link', 'set', 'dev', 'xa', 'xdp', 'off');
    }
  });

  it('refuses a second port on an interface that has one, and an MTU its frames cannot hold', async () => {
    const { port } = xdp();
    expect(() => new XdpPort('xa', 0, { netns: NS }).attach()).toThrow(
      /^interface xa: bind an AF_XDP socket: Device or resource busy; queue 0 of this interface already has one \(another vipr\?\)$/,
    );
    expect(port.info()!.closed).toBe(false); // the first one is untouched
    port.close();
    await sh('ip', '-n', NS, 'link', 'set', 'xa', 'mtu', '4000');
    try {
      expect(() => new XdpPort('xa', 0, { netns: NS }).attach()).toThrow(
        'interface xa: MTU: Message too long; io: xdp carries frames of up to 1792 bytes (MTU 1774); this interface has MTU 4000: lower it or use io: ring',
      );
    } finally {
      await sh('ip', '-n', NS, 'link', 'set', 'xa', 'mtu', '1500');
    }
  });

  it('generic attach works where asked for', async () => {
    const { port } = xdp({ attach: 'generic', mode: 'copy' });
    expect(port.info()).toMatchObject({ attach: 'generic', mode: 'copy' });
    expect((await xdpOn(NS, 'xa'))?.mode).toBe(2); // XDP_ATTACHED_SKB
    port.close();
  });

  it('runs in worker threads (a port each, side by side); a worker that ends with its port open takes the program off and the process lives on', async () => {
    // What a data-plane worker will do. The second worker never closes its port:
    // its environment's teardown must (before this fix the process died of SIGSEGV
    // in a close callback of the unloaded addon).
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const x = require(${JSON.stringify(join(REPO_ROOT, 'native-bindings/xdp.js'))});
      const h = x.open(workerData.ifname, { netns: ${JSON.stringify(NS)} }, new Float64Array(x.COUNTERS));
      const data = Buffer.alloc(2048 * 32), lengths = new Uint16Array(32), ports = new Uint8Array(32);
      let received = 0;
      x.start(h, () => {
        received += x.rxBurst(h, data, 0, 32, 2048, lengths, ports, 0);
        if (received >= 3) {
          parentPort.postMessage({ received });
          if (workerData.close) x.close(h);
        }
      });
      parentPort.postMessage({ programId: x.info(h).programId });`;
    const workers = [{ ifname: 'xa', close: true }, { ifname: 'xm', close: false }].map((workerData) => new Worker(code, { eval: true, workerData }));
    try {
      const next = (w: Worker) => new Promise<Record<string, number>>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      const attached = await Promise.all(workers.map(next));
      expect((await xdpOn(NS, 'xa'))?.id).toBe(attached[0].programId);
      expect((await xdpOn(NS, 'xm'))?.id).toBe(attached[1].programId);
      const received = Promise.all(workers.map(next));
      const tag = nextTag++;
      const xmMac = (await sh('ip', 'netns', 'exec', NS, 'cat', '/sys/class/net/xm/address')).trim();
      const xn = new RingPort('xn', 8, { netns: PEER });
      opened.push(xn);
      xn.open(new CollectingSink());
      for (let i = 0; i < 3; i++) {
        send(frame({ destination: portMac, source: peerMac, tag, seq: i }));
        const f = frame({ destination: xmMac, source: peerMac, tag, seq: i });
        expect(xn.sendFrame(f, f.length)).toBe(true);
      }
      expect((await received).map((r) => r.received >= 3)).toEqual([true, true]);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    for (const name of ['xa', 'xm']) expect(await xdpOn(NS, name), name).toBeUndefined();
  });

  it('the program comes off the interface when the process holding it is killed with SIGKILL', async () => {
    const script = `const x = require(${JSON.stringify(join(REPO_ROOT, 'native-bindings/xdp.js'))});
      const h = x.open('xa', { netns: ${JSON.stringify(NS)} }, new Float64Array(x.COUNTERS));
      console.log('attached ' + x.info(h).programId);
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout!.setEncoding('utf8').once('data', (chunk: string) => resolve(chunk.trim()));
        child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
      });
      const id = Number(/^attached (\d+)$/.exec(line)?.[1]);
      expect((await xdpOn(NS, 'xa'))?.id).toBe(id);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    expect(await waitFor(async () => (await xdpOn(NS, 'xa')) === undefined, 3_000, 20)).toBe(true);
  });
});

// ---- vipr with io: xdp in the lab ------------------------------------------------

function logged(vipr: ViprProcess, pattern: RegExp): boolean {
  return vipr.records().some((r) => typeof r.msg === 'string' && pattern.test(r.msg));
}

describe('vipr with io: xdp on the lab network', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  const withXdp = (text: string) => text.replace(/^io: \w+$/m, 'io: xdp');

  beforeAll(async () => {
    // With health checks: they are the router's own traffic, which must still reach the kernel.
    ({ lab, vipr } = await labWithVipr('xdp', withXdp));
  });
  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const router = (cmd: string[]) => lab!.exec('router', cmd);

  it('logs its backend, attach and copy mode per port, and the program is on both ports', async () => {
    for (const port of ['up0', 'lan0']) {
      const record = vipr!.records().find((r) => r.interface === port && r.backend === 'xdp');
      expect(record?.msg).toMatch(new RegExp(`^port ${port}: AF_XDP, native XDP, copy mode, 1 queue, 4096 UMEM frames per queue, XDP program id \\d+$`));
      const [link] = JSON.parse((await router(['ip', '-j', '-d', 'link', 'show', port])).stdout) as { xdp?: { prog?: { id: number } } }[];
      expect(link.xdp?.prog?.id).toBe(record!.programId);
    }
    expect(vipr!.records().find((r) => typeof r.msg === 'string' && r.msg.startsWith('ready:'))).toMatchObject({ io: 'xdp', backend: 'xdp' });
    // The lab's ports are veths: the operator is told what their peers must do.
    for (const port of ['up0', 'lan0']) {
      expect(logged(vipr!, new RegExp(`^port ${port} is a veth: AF_XDP cannot finish checksums its peer leaves to offload`)), port).toBe(true);
    }
  });

  it('installs no kernel-transit nftables rule, and says why', async () => {
    expect(logged(vipr!, /^no kernel-transit rule: with AF_XDP the kernel never sees a transit frame/)).toBe(true);
    const table = await router(['nft', 'list', 'table', 'netdev', 'vipr_transit']);
    expect(table.code).not.toBe(0);
  });

  it('the router\'s own traffic still reaches the kernel: ping 10.0.0.1, and the health checks pass', async () => {
    const ping = await lab!.exec('client', ['ping', '-c', '3', '-i', '0.2', '-W', '2', '10.0.0.1']);
    expect(ping.stdout).toContain('3 packets transmitted, 3 received');
    expect(ping.stdout).toMatch(/ttl=64/); // the router's kernel, not something forwarded
    const servers = await waitFor(async () => {
      const list = JSON.parse((await viprCtl(lab!, ['--json', 'server', 'show'])).stdout) as { name: string; state: string }[];
      return list.every((s) => s.state === 'up') ? list : undefined;
    }, 10_000, 200);
    expect(servers?.map((s) => s.name)).toEqual(['web1', 'web2', 'web3', 'web4']);
  });

  it('vipr still learns its neighbours from ARP, and the kernel its own', async () => {
    const curl = await lab!.exec('client', ['curl', '-s', '--max-time', '3', 'http://192.168.1.33/']);
    expect(curl.stdout).toBe('web1\n');
    const neighbors = JSON.parse((await viprCtl(lab!, ['--json', 'neighbor', 'show'])).stdout) as { address: string; state: string; mac: string }[];
    const reachable = neighbors.filter((n) => n.state === 'reachable').map((n) => n.address).sort();
    expect(reachable).toEqual(expect.arrayContaining(['10.0.0.254', '192.168.1.2', '192.168.1.3', '192.168.1.4', '192.168.1.5']));
    // The kernel answered the client's ARP for 10.0.0.1 (ping above) and learnt the client from it.
    expect((await router(['ip', 'neigh', 'show', 'dev', 'up0'])).stdout).toMatch(/^10\.0\.0\.2 lladdr 02:00:00:00:00:02 /m);
    const stats = JSON.parse((await viprCtl(lab!, ['--json', 'stats'])).stdout) as { backend?: Record<string, Record<string, number>> };
    expect(JSON.stringify(stats)).toMatch(/"rxArpFrames":[1-9]/);
  });

  it('an address added to lan0 at run time is the kernel\'s at once (keepalived\'s VRRP address); removed, it is forwarded again', async () => {
    const address = '192.168.1.30';
    const ping = (extra: string[] = []) => lab!.exec('client', ['ping', '-n', '-c', '1', '-W', '1', ...extra, address]);
    expect((await ping()).code).not.toBe(0); // nobody has it: vipr forwards and nobody answers
    await router(['ip', 'addr', 'add', `${address}/27`, 'dev', 'lan0']);
    try {
      const answered = await waitFor(async () => {
        const r = await ping();
        return r.code === 0 ? r.stdout : '';
      }, 5_000, 100);
      expect(answered).toMatch(/ttl=64/);
    } finally {
      await router(['ip', 'addr', 'del', `${address}/27`, 'dev', 'lan0']);
    }
    await waitFor(() => logged(vipr!, new RegExp(`port lan0: address ${address.replaceAll('.', '\\.')}/27 removed`)), 5_000, 50);
    expect((await ping()).code).not.toBe(0);
  });

  it('forwards again after lan0 goes down and up', async () => {
    await router(['ip', 'link', 'set', 'lan0', 'down']);
    await router(['ip', 'link', 'set', 'lan0', 'up']);
    const answered = await waitFor(async () => (await lab!.exec('client', ['ping', '-c', '1', '-W', '1', '192.168.1.65'])).code === 0, 10_000, 100);
    expect(answered).toBe(true);
  });

  it('a second vipr is refused in one line before it touches the ports: the running one keeps its program and forwards', async () => {
    const before = await Promise.all(['up0', 'lan0'].map(async (port) => (await router(['ip', '-j', '-d', 'link', 'show', port])).stdout));
    const second = await router([process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', join(dirname(labConfigPath(lab!)), 'xdp.yaml')]);
    expect(second.code).toBe(1);
    expect(second.stderr.trim().split('\n').at(-1)).toMatch(/^vipr: another vipr is running on control socket /);
    const after = await Promise.all(['up0', 'lan0'].map(async (port) => (await router(['ip', '-j', '-d', 'link', 'show', port])).stdout));
    const programs = (links: string[]) => links.map((l) => (JSON.parse(l) as { xdp?: { prog?: { id: number } } }[])[0].xdp?.prog?.id);
    expect(programs(after)).toEqual(programs(before));
    expect(programs(after).every((id) => typeof id === 'number')).toBe(true);
    const curl = await lab!.exec('client', ['curl', '-s', '--max-time', '3', 'http://192.168.1.65/']);
    expect(curl.stdout).toBe('web2\n');
  });

  it('SIGTERM takes the program off both ports', async () => {
    expect(await vipr!.stop()).toBe(0);
    vipr = undefined;
    for (const port of ['up0', 'lan0']) expect((await router(['ip', 'link', 'show', port])).stdout).not.toMatch(/\bxdp\b/);
  });

  it('kill -9 takes it off too: the bpf_link dies with the process', async () => {
    vipr = await startVipr(lab!, join(dirname(labConfigPath(lab!)), 'xdp.yaml'));
    expect((await router(['ip', 'link', 'show', 'lan0'])).stdout).toMatch(/\bxdp\b/);
    vipr.process.kill('SIGKILL');
    await vipr.exited;
    vipr = undefined;
    for (const port of ['up0', 'lan0']) {
      expect(await waitFor(async () => !/\bxdp\b/.test((await router(['ip', 'link', 'show', port])).stdout), 3_000, 20), port).toBe(true);
    }
  });
});

describe('when AF_XDP cannot be had', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  beforeAll(async () => {
    lab = await labUp();
    // Frames of MTU 4000 do not fit a 2 KB UMEM frame: io: xdp refuses lan0.
    await lab.exec('router', ['ip', 'link', 'set', 'lan0', 'mtu', '4000']);
  });
  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  async function config(io: string): Promise<string> {
    const path = join(dirname(labConfigPath(lab!)), `io-${io}.yaml`);
    await writeFile(path, withoutChecks(await readFile(labConfigPath(lab!), 'utf8')).replace(/^io: \w+$/m, `io: ${io}`));
    return path;
  }

  it('io: xdp stops `vipr run` in one line naming the interface and the reason, and leaves no program behind', async () => {
    const r = await lab!.exec('router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', await config('xdp')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').at(-1)).toBe(
      'vipr: io: xdp: interface lan0: MTU: Message too long; io: xdp carries frames of up to 1792 bytes (MTU 1774); this interface has MTU 4000: lower it or use io: ring',
    );
    // up0 was attached before lan0 failed: taken off again.
    for (const port of ['up0', 'lan0']) expect((await lab!.exec('router', ['ip', 'link', 'show', port])).stdout).not.toMatch(/\bxdp\b/);
  });

  it('io: auto falls back to the ring backend, says why, and forwards', async () => {
    vipr = await startVipr(lab!, await config('auto'));
    const warning = vipr.records().find((r) => r.io === 'auto');
    expect(warning?.msg).toBe(
      'io: auto: AF_XDP cannot be used (interface lan0: MTU: Message too long; io: xdp carries frames of up to 1792 bytes (MTU 1774); this interface has MTU 4000: lower it or use io: ring); using the AF_PACKET ring backend (io: ring)',
    );
    expect(vipr.records().find((r) => typeof r.msg === 'string' && r.msg.startsWith('ready:'))).toMatchObject({ io: 'auto', backend: 'ring' });
    // The ring backend's own kernel-transit rule is back.
    expect((await lab!.exec('router', ['nft', 'list', 'table', 'netdev', 'vipr_transit'])).code).toBe(0);
    const curl = await waitFor(async () => (await lab!.exec('client', ['curl', '-s', '--max-time', '2', 'http://192.168.1.33/'])).stdout, 6_000, 200);
    expect(curl).toBe('web1\n');
  });
});
