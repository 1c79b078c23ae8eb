// `vipr ctl trace` without namespaces: the article's router in memory
// (test/fixtures/article-router.ts), frames pushed through with a trace running, and
// the pcapng file it wrote read back (test/pcapng.ts, and tcpdump -r where it
// is installed). Table-driven: each frame with the verdict its comment must say.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { articleRouter, LAN0, MAC, UP0, type ArticleRouter } from '../fixtures/article-router.js';
import type { ServerConfig } from '../../src/config/types.js';
import { parseRequest } from '../../src/control/grammar.js';
import { ControlError } from '../../src/control/protocol.js';
import { ControlService, type ControlContext, type Session } from '../../src/control/service.js';
import { StateStore } from '../../src/control/state-store.js';
import { TraceSession, type TraceOptions, type TraceSummary } from '../../src/control/trace.js';
import { PacketTracer } from '../../src/dataplane/trace.js';
import { arpFrame, ipv4Frame, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import { parseAddress, parsePrefix } from '../../src/util/ipv4.js';
import { parsePcapng, type PcapngPacket } from '../pcapng.js';

const SERVERS = new Map([
  [parseAddress('192.168.1.2'), 'web1'], [parseAddress('192.168.1.3'), 'web2'],
  [parseAddress('192.168.1.4'), 'web3'], [parseAddress('192.168.1.5'), 'web4'],
]);

const fromClient = (over: Partial<Ipv4Spec> = {}): Ipv4Spec => ({
  dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst: '192.168.1.33', ttl: 64, ...over,
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-trace-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function resolved(): ArticleRouter {
  const r = articleRouter();
  r.resolveAll();
  return r;
}

async function startTrace(r: ArticleRouter, dir: string, options: Partial<TraceOptions> = {}): Promise<TraceSession> {
  const router = r.router;
  return TraceSession.start(
    { tap: router.trace, ports: router.ports, nextHops: router.tables.nextHops, serverNames: SERVERS },
    { file: 't.pcapng', ...options }, join(dir, 'traces'),
  );
}

async function packetsOf(summary: TraceSummary): Promise<PcapngPacket[]> {
  const file = parsePcapng(await readFile(summary.file));
  expect(file.application).toBe('vipr');
  expect(file.interfaces.map((i) => i.name)).toEqual(['up0', 'lan0']);
  expect(file.interfaces.every((i) => i.linkType === 1 && i.tsresol === 6)).toBe(true);
  expect(file.packets).toHaveLength(summary.packets);
  return file.packets;
}

let tcpdumpAvailable: boolean | undefined;
function tcpdump(file: string): string[] | undefined {
  if (tcpdumpAvailable === false) return undefined;
  try {
    const out = execFileSync('tcpdump', ['-r', file, '-nn'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    tcpdumpAvailable = true;
    return out.split('\n').filter((l) => l.trim());
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      tcpdumpAvailable = false;
      console.warn('tcpdump is not installed: skipping the tcpdump -r check');
      return undefined;
    }
    throw error;
  }
}

describe('trace: every verdict, in the order the batch held the frames', () => {
  const cases: { name: string; port: number; frame: Buffer; comment: string }[] = [
    { name: 'forwarded to web1', port: UP0, frame: ipv4Frame(fromClient()), comment: 'forwarded up0 -> lan0 via web1 (192.168.1.2)' },
    { name: 'bad checksum', port: UP0, frame: ipv4Frame(fromClient({ checksum: 0x1234 })), comment: 'drop: badChecksum' },
    { name: 'TTL 1', port: UP0, frame: ipv4Frame(fromClient({ ttl: 1 })), comment: 'drop: ttlExceeded (ICMP time exceeded to the sender)' },
    { name: 'unreachable route', port: UP0, frame: ipv4Frame(fromClient({ dst: '192.168.1.200' })), comment: 'drop: unreachableRoute (ICMP net unreachable to the sender)' },
    { name: 'blackhole', port: UP0, frame: ipv4Frame(fromClient({ dst: '198.51.100.7' })), comment: 'drop: blackholeRoute' },
    { name: 'to the router itself', port: UP0, frame: ipv4Frame(fromClient({ dst: '10.0.0.1' })), comment: 'punted to the kernel: local' },
    {
      name: 'ARP from web2', port: LAN0,
      frame: arpFrame({ operation: 'request', dstMac: 'ff:ff:ff:ff:ff:ff', srcMac: MAC.web2, senderMac: MAC.web2, senderAddress: '192.168.1.3', targetAddress: '192.168.1.1' }),
      comment: 'arp: to the neighbour resolver (the kernel has its own copy)',
    },
    {
      name: 'to a server on the connected subnet', port: UP0, frame: ipv4Frame(fromClient({ dst: '192.168.1.2' })),
      comment: 'forwarded up0 -> lan0 to web1 (192.168.1.2) (connected)',
    },
    {
      name: 'to an unresolved host on the connected subnet', port: UP0, frame: ipv4Frame(fromClient({ dst: '192.168.1.7' })),
      comment: 'held: waiting for ARP for 192.168.1.7 (connected) on lan0',
    },
    {
      name: 'return traffic to the default route', port: LAN0,
      frame: ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web1, src: '192.168.1.33', dst: '203.0.113.7' }),
      comment: 'forwarded lan0 -> up0 via 10.0.0.254',
    },
    {
      name: 'too big for lan0, DF clear', port: UP0, frame: ipv4Frame(fromClient({ dst: '192.168.1.34', payload: udpPayload(1500), protocol: 17 })),
      comment: 'fragmented: sent to web1 (192.168.1.2) on lan0 in pieces of at most 1500 bytes',
    },
    {
      name: 'ARP claiming the router\'s address', port: LAN0,
      frame: arpFrame({ operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web2, senderMac: MAC.web2, senderAddress: '192.168.1.1', targetMac: MAC.lan0, targetAddress: '192.168.1.1' }),
      comment: 'drop: arpOwnAddress',
    },
  ];

  it('writes a pcapng Wireshark and tcpdump read: each frame as received with its verdict, forwarded ones also as sent', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir);
    for (const c of cases) r.router.batch.push(c.port, c.frame, c.frame.length);
    r.router.process();
    const sentToWeb1 = r.lan0.take();
    const sentUpstream = r.up0.take().filter((f) => f.readUInt16BE(12) === 0x0800 && f[23] !== 1); // not the ICMP errors
    const summary = await trace.end('stopped');
    expect(summary).toMatchObject({ frames: cases.length, packets: cases.length + 3, missed: 0, ended: 'stopped' });

    const packets = await packetsOf(summary);
    const received = packets.filter((p) => p.direction === 1);
    expect(received.map((p) => p.comments[0])).toEqual(cases.map((c) => c.comment));
    received.forEach((p, k) => {
      expect(p.data.toString('hex'), cases[k].name).toBe(cases[k].frame.toString('hex'));
      expect(p.interfaceName).toBe(cases[k].port === UP0 ? 'up0' : 'lan0');
    });

    const sent = packets.filter((p) => p.direction === 2);
    expect(sent.map((p) => [p.interfaceName, p.comments[0]])).toEqual([
      ['lan0', 'sent lan0 -> web1 (192.168.1.2), TTL 63 (rewritten from up0)'],
      ['lan0', 'sent lan0 -> web1 (192.168.1.2) (connected), TTL 63 (rewritten from up0)'],
      ['up0', 'sent up0 -> 10.0.0.254, TTL 63 (rewritten from lan0)'],
    ]);
    // The sent copies are what the ports really sent: rewritten MACs, TTL 63.
    expect(sent[0].data.toString('hex')).toBe(ipv4Frame(fromClient({ dstMac: MAC.web1, srcMac: MAC.lan0, ttl: 63 })).toString('hex'));
    expect(sent[0].data.toString('hex')).toBe(sentToWeb1[0].toString('hex'));
    expect(sent[2].data.toString('hex')).toBe(sentUpstream[0].toString('hex'));
    // A forwarded frame's two packets follow each other, same timestamp.
    const first = packets.findIndex((p) => p.comments[0].startsWith('forwarded up0'));
    expect(packets[first + 1].direction).toBe(2);
    expect(packets[first + 1].timestamp).toBe(packets[first].timestamp);
    expect(Math.abs(packets[0].timestamp / 1000 - Date.now())).toBeLessThan(60_000);

    const lines = tcpdump(summary.file);
    if (lines) {
      expect(lines).toHaveLength(summary.packets);
      expect(lines[0]).toMatch(/IP 10\.0\.0\.2\.40000 > 192\.168\.1\.33\.9: UDP/);
      expect(lines.filter((l) => l.includes('192.168.1.33.9'))).toHaveLength(4); // received, sent, bad checksum, TTL 1
      expect(lines.some((l) => /ARP, Request who-has 192\.168\.1\.1 tell 192\.168\.1\.3/.test(l))).toBe(true);
    }
  });
});

describe('trace filters and limits', () => {
  const mixed = (r: ArticleRouter) => {
    r.receive(
      UP0,
      ipv4Frame(fromClient()), // .33: 192.168.1.32/27, forwarded
      ipv4Frame(fromClient({ dst: '192.168.1.65' })), // .65: another /27
      ipv4Frame(fromClient({ checksum: 0x1234 })), // .33, dropped
      ipv4Frame(fromClient({ dst: '198.51.100.7' })), // blackhole
    );
    r.receive(LAN0, ipv4Frame({ dstMac: MAC.lan0, srcMac: MAC.web1, src: '192.168.1.33', dst: '203.0.113.7' })); // .33 as source
  };
  const comments = async (summary: TraceSummary) => (await packetsOf(summary)).filter((p) => p.direction === 1).map((p) => p.comments[0]);

  it('prefix matches source or destination', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir, { prefix: parsePrefix('192.168.1.32/27') });
    mixed(r);
    expect(await comments(await trace.end('stopped'))).toEqual([
      'forwarded up0 -> lan0 via web1 (192.168.1.2)', 'drop: badChecksum', 'forwarded lan0 -> up0 via 10.0.0.254',
    ]);
  });

  it('port matches the ingress port', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir, { port: 'lan0' });
    mixed(r);
    expect(await comments(await trace.end('stopped'))).toEqual(['forwarded lan0 -> up0 via 10.0.0.254']);
  });

  it('drops: every drop; drop REASON: that one', async () => {
    const dir = await tempDir();
    const r = resolved();
    let trace = await startTrace(r, dir, { drop: 'any' });
    mixed(r);
    expect(await comments(await trace.end('stopped'))).toEqual(['drop: badChecksum', 'drop: blackholeRoute']);
    trace = await startTrace(r, dir, { file: 'bh.pcap', drop: 'blackholeRoute', prefix: parsePrefix('198.51.100.0/24') });
    mixed(r);
    expect(await comments(await trace.end('stopped'))).toEqual(['drop: blackholeRoute']);
  });

  it('count: stops by itself after N frames, within one batch, and unhooks from the data plane', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir, { count: 2 });
    expect(r.router.dataplane.tracer).not.toBeNull();
    r.receive(UP0, ...Array.from({ length: 5 }, (_, k) => ipv4Frame(fromClient({ id: k + 1 }))));
    const summary = await trace.done;
    expect(summary).toMatchObject({ frames: 2, packets: 4, ended: 'count' });
    expect(r.router.dataplane.tracer).toBeNull();
    expect(r.lan0.take()).toHaveLength(5); // tracing never changes forwarding
  });

  it('seconds: stops by itself after the time limit', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir, { seconds: 0.05 });
    r.receive(UP0, ipv4Frame(fromClient()));
    const summary = await trace.done;
    expect(summary).toMatchObject({ frames: 1, packets: 2, ended: 'seconds' });
  });

  it('many batches and several writes: every packet lands, in order', async () => {
    const dir = await tempDir();
    const r = resolved();
    const trace = await startTrace(r, dir, { count: 5000 });
    let id = 0;
    for (let round = 0; round < 3; round++) {
      // 1200 frames in one event-loop turn: more blocks than one writev takes.
      for (let b = 0; b < 20; b++) r.receive(UP0, ...Array.from({ length: 60 }, () => ipv4Frame(fromClient({ id: ++id }))));
      await new Promise((resolve) => setImmediate(resolve));
    }
    const summary = await trace.end('stopped');
    expect(summary).toMatchObject({ frames: 3600, packets: 7200, missed: 0, ended: 'stopped' });
    const received = (await packetsOf(summary)).filter((p) => p.direction === 1);
    expect(received.map((p) => p.data.readUInt16BE(18))).toEqual(Array.from({ length: 3600 }, (_, k) => k + 1)); // IP IDs
  });

  it('refuses unknown ports and untraceable drop reasons, and never overwrites a file', async () => {
    const dir = await tempDir();
    const r = resolved();
    await expect(startTrace(r, dir, { port: 'eth9' })).rejects.toMatchObject({ code: 'EUNKNOWNPORT' });
    await expect(startTrace(r, dir, { drop: 'holdQueueFull' })).rejects.toMatchObject({ code: 'EBADARGS' });
    await expect(startTrace(r, dir, { file: 'relative/t.pcapng' })).rejects.toMatchObject({ code: 'ETRACEFILE' });
    await expect(startTrace(r, dir, { file: 't.txt' })).rejects.toMatchObject({ code: 'ETRACEFILE' });
    await mkdir(join(dir, 'traces'));
    await writeFile(join(dir, 'traces', 'exists.pcapng'), 'keep me');
    await expect(startTrace(r, dir, { file: 'exists.pcapng' })).rejects.toThrow(/exists/);
    expect(await readFile(join(dir, 'traces', 'exists.pcapng'), 'utf8')).toBe('keep me');
    expect(r.router.dataplane.tracer).toBeNull();
  });
});

describe('trace off', () => {
  it('the dispatcher only compares one field to null: no tracer call, nothing recorded, no copy', async () => {
    const before = vi.spyOn(PacketTracer.prototype, 'beforeStages');
    const after = vi.spyOn(PacketTracer.prototype, 'afterStages');
    const r = resolved();
    expect(r.router.dataplane.tracer).toBeNull();
    for (let k = 0; k < 100; k++) r.receive(UP0, ipv4Frame(fromClient()), ipv4Frame(fromClient({ checksum: 1 })));
    expect(before).not.toHaveBeenCalled();
    expect(after).not.toHaveBeenCalled();

    // On, then off again: the batches after the end are not seen.
    const dir = await tempDir();
    const trace = await startTrace(r, dir);
    r.receive(UP0, ipv4Frame(fromClient()));
    expect(before).toHaveBeenCalledTimes(1);
    const summary = await trace.end('stopped');
    r.receive(UP0, ipv4Frame(fromClient()));
    expect(before).toHaveBeenCalledTimes(1);
    expect(after).toHaveBeenCalledTimes(1);
    expect(summary.frames).toBe(1);
    expect(parsePcapng(await readFile(summary.file)).packets).toHaveLength(2);
  });
});

describe('trace through the control service', () => {
  async function serviceRig() {
    const dir = await tempDir();
    const r = resolved();
    const log = pino({ level: 'silent' });
    const servers = [...SERVERS].map(([address, name]) => ({ name, address, checks: [] }) as ServerConfig);
    const context = { router: r.router, store: new StateStore(join(dir, 'state.json')), log, servers: () => servers } as unknown as ControlContext;
    return { dir, r, service: new ControlService(context) };
  }

  it('`trace NAME count 1` answers when the trace ends, with the packets written; a bare name goes to the trace directory', async () => {
    const { dir, r, service } = await serviceRig();
    const session: Session = { transaction: null };
    const reply = service.handle(parseRequest('trace t1.pcapng prefix 192.168.1.32 255.255.255.224 count 1'), session);
    await vi.waitFor(() => expect(r.router.dataplane.tracer).not.toBeNull());
    r.receive(UP0, ipv4Frame(fromClient({ dst: '192.168.1.65' })), ipv4Frame(fromClient()));
    const answer = await reply;
    const file = join(dir, 'traces', 't1.pcapng');
    expect(answer.lines).toEqual([`trace ${file}: 2 packets written (1 frames, ${(answer.result as TraceSummary).bytes} bytes); frame limit reached`]);
    expect(answer.result).toMatchObject({ file, frames: 1, packets: 2, ended: 'count' });
    expect(parsePcapng(await readFile(file)).packets.map((p) => p.comments[0])).toEqual([
      'forwarded up0 -> lan0 via web1 (192.168.1.2)', 'sent lan0 -> web1 (192.168.1.2), TTL 63 (rewritten from up0)',
    ]);
  });

  it('trace files go only in the trace directory, readable by the group (0640); anything else is refused naming it', async () => {
    const { dir, r, service } = await serviceRig();
    const traces = join(dir, 'traces');
    for (const file of [join(dir, 'elsewhere.pcapng'), '/var/tmp/vipr-test-never.pcapng', join(traces, '..', 'up.pcapng'), `${traces}-x/t.pcapng`, 'sub/t.pcapng']) {
      const refused = service.handle(parseRequest(`trace ${file} count 1`), { transaction: null });
      await expect(refused).rejects.toMatchObject({ code: 'ETRACEFILE', message: expect.stringContaining(`trace files go in ${traces}`) });
      expect(existsSync(file), file).toBe(false);
    }
    expect(existsSync(join(dir, 'up.pcapng'))).toBe(false);
    expect(r.router.dataplane.tracer).toBeNull();

    for (const [request, file] of [['trace t1.pcapng count 1', join(traces, 't1.pcapng')], [`trace ${join(traces, 't2.pcapng')} count 1`, join(traces, 't2.pcapng')]]) {
      const reply = service.handle(parseRequest(request), { transaction: null });
      await vi.waitFor(() => expect(r.router.dataplane.tracer).not.toBeNull());
      r.receive(UP0, ipv4Frame(fromClient()));
      expect((await reply).result).toMatchObject({ file, frames: 1 });
      expect((await stat(file)).mode & 0o777).toBe(0o640);
    }
    expect((await stat(traces)).mode & 0o777).toBe(0o750);
  });

  it('one trace at a time; `trace stop` ends it; a disconnect ends it', async () => {
    const { dir, r, service } = await serviceRig();
    const hangup = new AbortController();
    const reply = service.handle(parseRequest('trace a.pcapng'), { transaction: null });
    await vi.waitFor(() => expect(r.router.dataplane.tracer).not.toBeNull());
    await expect(service.handle(parseRequest('trace b.pcapng'), { transaction: null })).rejects.toMatchObject({ code: 'ETRACEBUSY' });
    r.receive(UP0, ipv4Frame(fromClient()));
    const stop = await service.handle(parseRequest('trace stop'), { transaction: null });
    expect(stop.lines[0]).toMatch(/^stopping the trace to .*a\.pcapng \(1 frames so far\)/);
    expect((await reply).result).toMatchObject({ frames: 1, packets: 2, ended: 'stopped' });
    await expect(service.handle(parseRequest('trace stop'), { transaction: null })).rejects.toMatchObject({ code: 'ENOTRACE' });

    const next = service.handle(parseRequest(`trace ${join(dir, 'traces', 'c.pcapng')} seconds 600`), { transaction: null, closed: hangup.signal });
    await vi.waitFor(() => expect(r.router.dataplane.tracer).not.toBeNull());
    hangup.abort();
    expect((await next).result).toMatchObject({ frames: 0, packets: 0, ended: 'disconnected' });
    expect(r.router.dataplane.tracer).toBeNull();
  });
});

describe('trace grammar', () => {
  it('parses the words form', () => {
    expect(parseRequest('trace /tmp/t.pcapng prefix 192.168.1.32 255.255.255.224 port up0 drops count 100 seconds 10')).toEqual({
      command: 'trace',
      trace: { file: '/tmp/t.pcapng', prefix: parsePrefix('192.168.1.32/27'), port: 'up0', drop: 'any', count: 100, seconds: 10 },
    });
    expect(parseRequest('trace t.pcap drop badChecksum')).toEqual({ command: 'trace', trace: { file: 't.pcap', drop: 'badChecksum' } });
    expect(parseRequest('trace stop')).toEqual({ command: 'trace stop' });
  });

  it.each([
    ['trace', 'EBADARGS'],
    ['trace /tmp/t.pcapng count 0', 'EBADARGS'],
    ['trace /tmp/t.pcapng count many', 'EBADARGS'],
    ['trace /tmp/t.pcapng seconds -1', 'EBADARGS'],
    ['trace /tmp/t.pcapng count 1 count 2', 'EBADARGS'],
    ['trace /tmp/t.pcapng port', 'EBADARGS'],
    ['trace /tmp/t.pcapng colour blue', 'EBADARGS'],
    ['trace /tmp/t.pcapng prefix 192.168.1.33/27', 'EBADPREFIX'],
    ['trace stop now', 'EBADARGS'],
  ])('%s: %s', (line, code) => {
    expect(() => parseRequest(line)).toThrow(ControlError);
    try {
      parseRequest(line);
    } catch (error) {
      expect((error as ControlError).code).toBe(code);
    }
  });
});
