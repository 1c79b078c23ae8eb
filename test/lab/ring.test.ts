// The packet-ring port on a real veth pair: frames sent on one end arrive
// byte-exact on the other, nothing a port sends comes back to it
// (PACKET_IGNORE_OUTGOING), oversized frames are counted, and checksums a
// sender left to offload (TP_STATUS_CSUMNOTREADY) arrive completed.
//
// Needs root and the addon built (bash scripts/setup.sh). Everything happens
// in a throwaway namespace `vrt-<random>`; the test process stays where it is
// and opens its sockets there (RingPortOptions.netns).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameBatch, SLOT_SIZE } from '../../src/dataplane/batch.js';
import type { RxSink } from '../../src/io/port.js';
import { RingCounter, RingPort, type RingPortOptions } from '../../src/io/ring-port.js';

const execFileP = promisify(execFile);
const NS = `vrt-${randomBytes(3).toString('hex')}`;
/** IEEE local experimental ethertype: nothing in the namespace answers or sends it. */
const TEST_ETHERTYPE = 0x88b5;
const MTU = 4000;

async function sh(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(args[0], args.slice(1));
  return stdout;
}
const inNs = (...args: string[]) => sh('ip', 'netns', 'exec', NS, ...args);

/** Collects every received frame; a small batch so full() is exercised too. */
class CollectingSink implements RxSink {
  readonly batch = new FrameBatch(32);
  readonly frames: Array<{ port: number; bytes: Buffer }> = [];
  tooLongCount = 0;
  fullCalls = 0;
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
    this.fullCalls++;
    this.take();
  }
  tooLong(): void {
    this.tooLongCount++;
  }
  private take(): void {
    const b = this.batch;
    for (let i = 0; i < b.count; i++) {
      this.frames.push({ port: b.port[i], bytes: Buffer.from(b.data.subarray(i * SLOT_SIZE, i * SLOT_SIZE + b.length[i])) });
    }
    b.count = 0;
  }
  /** Frames of this test (our ethertype), in arrival order. */
  testFrames(): Buffer[] {
    return this.frames.filter((f) => f.bytes.readUInt16BE(12) === TEST_ETHERTYPE).map((f) => f.bytes);
  }
}

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A test frame: broadcast, our ethertype, a tag and sequence number, a pattern to `length`. */
function testFrame(tag: number, seq: number, length: number): Buffer {
  const f = Buffer.alloc(length);
  f.fill(0xff, 0, 6);
  f.set([0x02, 0, 0, 0, 0, 0x01], 6);
  f.writeUInt16BE(TEST_ETHERTYPE, 12);
  f.writeUInt16BE(tag, 14);
  f.writeUInt32BE(seq, 16);
  for (let i = 20; i < length; i++) f[i] = (i * 7 + seq) & 0xff;
  return f;
}

/** Verifies an IPv4 TCP/UDP checksum over pseudo-header + segment: true when it sums to 0xffff. */
function l4ChecksumOk(frame: Buffer): boolean {
  const ihl = (frame[14] & 0x0f) * 4;
  const total = frame.readUInt16BE(16);
  const protocol = frame[23];
  const segment = frame.subarray(14 + ihl, 14 + total);
  let sum = 0;
  const add = (b: Buffer) => {
    for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
    if (b.length & 1) sum += b[b.length - 1] << 8;
  };
  add(frame.subarray(26, 34));
  sum += protocol + segment.length;
  add(segment);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('RingPort on a veth pair', () => {
  const open: RingPort[] = [];
  let macB = '';

  function pair(options: RingPortOptions): { a: RingPort; b: RingPort; sinkA: CollectingSink; sinkB: CollectingSink } {
    const a = new RingPort('va', 0, { ...options, netns: NS });
    const b = new RingPort('vb', 1, { ...options, netns: NS });
    const sinkA = new CollectingSink();
    const sinkB = new CollectingSink();
    a.open(sinkA);
    open.push(a);
    b.open(sinkB);
    open.push(b);
    return { a, b, sinkA, sinkB };
  }

  beforeAll(async () => {
    await sh('ip', 'netns', 'add', NS);
    // No IPv6: its router solicitations and MLD reports would be frames nobody asked for.
    await inNs('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    await sh('ip', '-n', NS, 'link', 'add', 'va', 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', 'vb', 'mtu', String(MTU));
    await sh('ip', '-n', NS, 'link', 'set', 'va', 'up');
    await sh('ip', '-n', NS, 'link', 'set', 'vb', 'up');
    await sh('ip', '-n', NS, 'link', 'set', 'lo', 'up');
    // The CSUMNOTREADY case: va keeps tx checksum offload (veth's default) and has an address.
    await sh('ip', '-n', NS, 'addr', 'add', '10.98.0.1/24', 'dev', 'va');
    macB = (await inNs('cat', '/sys/class/net/vb/address')).trim();
    await sh('ip', '-n', NS, 'neigh', 'replace', '10.98.0.2', 'lladdr', macB, 'dev', 'va');
  });

  afterAll(async () => {
    for (const p of open) p.close();
    await execFileP('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  describe.each([
    { rxRing: 'v2', tx: 'sendmmsg' },
    { rxRing: 'v2', tx: 'ring' },
    { rxRing: 'v3', tx: 'sendmmsg' },
    { rxRing: 'v3', tx: 'ring' },
  ] as const)('rx $rxRing, tx $tx', (options) => {
    it('receives exactly the burst sent on the other end, byte for byte, and never re-reads its own', async () => {
      const { a, b, sinkA, sinkB } = pair(options);
      const tag = Math.floor(Math.random() * 0xffff);
      const count = 100; // > batch capacity (32): the receiver's full() runs
      const batch = new FrameBatch(128);
      const sent: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const f = testFrame(tag, i, 60 + ((i * 97) % 1455)); // 60..1514 bytes
        batch.push(0, f, f.length);
        sent.push(f);
      }
      const slots = Uint16Array.from({ length: count }, (_, i) => i);
      expect(a.txBurst(batch, slots, count)).toBe(count);
      expect(a.sendFrame(testFrame(tag, count, 200), 200)).toBe(true);
      sent.push(testFrame(tag, count, 200));

      await until('all frames at vb', () => sinkB.testFrames().length >= sent.length);
      await sleep(30); // anything extra (duplicates, echoes) would arrive by now
      const got = sinkB.testFrames();
      expect(got.length).toBe(sent.length);
      got.forEach((f, i) => expect(f.equals(sent[i]), `frame ${i}`).toBe(true));
      expect(sinkB.frames.every((f) => f.port === 1)).toBe(true);
      // PACKET_IGNORE_OUTGOING: va's own socket never sees what it sent.
      expect(sinkA.testFrames()).toEqual([]);
      expect(a.counters[RingCounter.txFrames]).toBe(sent.length);
      expect(b.counters[RingCounter.rxFrames]).toBeGreaterThanOrEqual(sent.length);
      const stats = b.stats();
      expect(stats.kernelPackets).toBeGreaterThanOrEqual(sent.length);
      expect(stats.kernelDrops).toBe(0);
      expect(b.info()).toMatchObject({ version: options.rxRing === 'v3' ? 3 : 2, tx: options.tx });
      a.close();
      b.close();
    });
  });

  it('counts and skips a frame longer than a batch slot, and carries on', async () => {
    const { a, sinkB } = pair({});
    const tag = 0x7001;
    const big = testFrame(tag, 1, 3000); // fits the veth MTU, not a 2048-byte slot
    const small = testFrame(tag, 2, 100);
    expect(a.sendFrame(big, big.length)).toBe(true);
    expect(a.sendFrame(small, small.length)).toBe(true);
    await until('the small frame', () => sinkB.testFrames().length >= 1);
    await until('the too-long count', () => sinkB.tooLongCount >= 1);
    expect(sinkB.testFrames().map((f) => f.readUInt32BE(16))).toEqual([2]);
    expect(sinkB.tooLongCount).toBe(1);
  });

  it.each(['v2', 'v3'] as const)(
    'completes UDP and TCP checksums a veth sender left to offload (CSUMNOTREADY, rx %s)',
    async (rxRing) => {
      const { b, sinkB } = pair({ rxRing });
      const features = await inNs('ethtool', '-k', 'va');
      expect(features).toMatch(/tx-checksumming: on/);
      // A normal UDP socket and a TCP SYN from the namespace's stack, out of va.
      await inNs('python3', '-c', [
        'import socket',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        "for i in range(3): s.sendto(b'vipr checksum %d ' % i * (i + 5), ('10.98.0.2', 9999))",
        "s.sendto(b'odd', ('10.98.0.2', 9998))",
        't = socket.socket(); t.setblocking(False)',
        "try: t.connect(('10.98.0.2', 80))",
        'except BlockingIOError: pass',
      ].join('\n'));
      const l4 = () => sinkB.frames.map((f) => f.bytes).filter((f) => f.readUInt16BE(12) === 0x0800 && (f[23] === 17 || f[23] === 6));
      await until('4 UDP datagrams and a TCP SYN', () => l4().length >= 5);
      const frames = l4();
      expect(frames.filter((f) => f[23] === 17).length).toBe(4);
      expect(frames.filter((f) => f[23] === 6).length).toBeGreaterThanOrEqual(1);
      for (const f of frames) expect(l4ChecksumOk(f), `protocol ${f[23]} length ${f.length}`).toBe(true);
      // They really were left unfinished by the sender: the addon completed them.
      expect(b.counters[RingCounter.rxChecksumCompleted]).toBeGreaterThanOrEqual(5);
    },
  );

  it('busy-poll mode receives without readiness wakeups', async () => {
    const { a, b, sinkB } = pair({ busyPoll: true });
    const frames = [testFrame(0x7002, 1, 64), testFrame(0x7002, 2, 1000)];
    for (const f of frames) expect(a.sendFrame(f, f.length)).toBe(true);
    await until('both frames', () => sinkB.testFrames().length >= 2);
    expect(sinkB.testFrames().map((f) => f.readUInt32BE(16))).toEqual([1, 2]);
    expect(b.counters[RingCounter.rxWakeups]).toBe(0);
    b.close(); // stops the spinning immediate
    a.close();
  });

  it('keeps receiving after its link goes down and comes back up', async () => {
    const { a, b, sinkB } = pair({});
    await sh('ip', '-n', NS, 'link', 'set', 'vb', 'down');
    await until('the ENETDOWN report', () => b.counters[RingCounter.socketErrors] >= 1);
    expect(sinkB.testFrames()).toEqual([]);
    const rxBefore = b.counters[RingCounter.rxFrames];
    await sh('ip', '-n', NS, 'link', 'set', 'vb', 'up');
    const sent: Buffer[] = [];
    await until('a frame after the flap', () => {
      const frame = testFrame(0x7003, sent.length, 60);
      a.sendFrame(frame, frame.length); // until the carrier is back
      sent.push(frame);
      return sinkB.testFrames().length > 0;
    });
    // What arrives is what was sent after the flap, byte for byte, and counted.
    const [first] = sinkB.testFrames();
    const seq = first.readUInt32BE(16);
    expect(seq).toBeLessThan(sent.length);
    expect(first.equals(sent[seq]), `frame ${seq}`).toBe(true);
    expect(b.counters[RingCounter.rxFrames]).toBeGreaterThan(rxBefore);
  });

  it('a closed port sends nothing, reports no info, and closes twice harmlessly', () => {
    const { a } = pair({});
    a.close();
    a.close();
    expect(a.info()).toBeUndefined();
    expect(a.sendFrame(testFrame(1, 1, 60), 60)).toBe(false);
    const batch = new FrameBatch(1);
    batch.push(0, testFrame(1, 1, 60), 60);
    expect(a.txBurst(batch, Uint16Array.of(0), 1)).toBe(0);
  });

  it('names the interface and the reason when it cannot open', () => {
    const p = new RingPort('vrt-missing0', 0, { netns: NS });
    expect(() => p.open(new CollectingSink())).toThrow(/interface vrt-missing0: no such interface/);
  });
});
