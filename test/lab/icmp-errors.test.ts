// The ICMP errors vipr sends, as the client receives them: fragmentation
// needed (a DF packet larger than lan0's MTU), host unreachable (a route via a
// next hop that never answers ARP), net unreachable (the config's
// `192.168.1.0/24 unreachable`), time exceeded (traceroute), and the global
// rate limit on all of them (a flood of TTL-1 packets gets at most
// burst + rate x seconds errors). Each is checked with the operator's tools
// (ping, traceroute) and with tcpdump -vv -x in the client's namespace: what
// each error says and quotes, and its bytes, whose IP and ICMP checksums the
// test verifies with its own reference (test/reference-checksum.ts).
//
// vipr runs on the lab's config with, for this file: lan0's MTU 1400,
// 192.168.1.160/27 via 192.168.1.20 (an address nobody has), ARP probes every
// 100 ms, ICMP errors limited to 100/s with a burst of 20, and no health checks.
// Needs the daemon built: npx tsc -p tsconfig.json
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { referenceChecksum } from '../reference-checksum.js';
import {
  closeLabWithVipr, labWithVipr, startCapture, viprCtl, withoutChecks, type Capture, type Lab, type ViprProcess,
} from './harness.js';

const ROUTER = '10.0.0.1';
const CLIENT = '10.0.0.2';
const VIP = '192.168.1.33';
const LAN_MTU = 1400;
/** Routed via NO_ONE, a lan0 address no host answers ARP for. */
const BEHIND_NO_ONE = '192.168.1.161';
const NO_ONE = '192.168.1.20';
/** In 192.168.1.0/24 (unreachable), outside the VIPs' /27s. */
const UNROUTED = '192.168.1.200';
const RATE_PER_SECOND = 100;
const BURST = 20;

function icmpErrorConfig(text: string): string {
  const doc = parseDocument(withoutChecks(text));
  doc.setIn(['interfaces', 1], doc.createNode({ name: 'lan0', mtu: LAN_MTU }, { flow: true }));
  const routes = doc.getIn(['routes']) as { add(node: unknown): void };
  routes.add(doc.createNode({ prefix: '192.168.1.160/27', via: NO_ONE }, { flow: true }));
  doc.setIn(['neighbors', 'retransmitMs'], 100);
  doc.setIn(['icmp', 'ratePerSecond'], RATE_PER_SECOND);
  doc.setIn(['icmp', 'burst'], BURST);
  return doc.toString();
}

describe('ICMP errors, as the client receives them', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  beforeAll(async () => {
    ({ lab, vipr } = await labWithVipr('icmp-errors', icmpErrorConfig));
    const link = await lab.exec('router', ['ip', '-o', 'link', 'show', 'lan0']);
    expect(link.stdout).toContain('mtu 1500'); // the link itself is not lowered: vipr enforces the config's MTU
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const client = (cmd: string[], timeoutMs?: number) => lab!.exec('client', cmd, { timeoutMs });
  /** tcpdump -vv on the client's wire, ICMP from the router only. */
  const errorsAtClient = () => startCapture(lab!, 'client', ['-vv', '-x', '-i', 'eth0', `icmp and src host ${ROUTER} and dst host ${CLIENT}`]);
  const icmpCounters = async () => {
    const r = await viprCtl(lab!, ['--json', 'stats']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { icmp: Record<string, number> }).icmp;
  };
  /** The IP packet tcpdump -x printed (hex after its 0x0000: offsets). */
  const packetBytes = (packet: string): Buffer => {
    const dump = packet.slice(packet.indexOf('0x0000:'));
    return Buffer.from(dump.replace(/0x[0-9a-f]{4}:/g, '').replace(/\s+/g, ''), 'hex');
  };
  /** Every captured error has a right IPv4 header checksum and a right ICMP checksum. */
  const expectChecksumsRight = (packets: string[]) => {
    for (const p of packets) {
      const bytes = packetBytes(p);
      const headerLength = (bytes[0] & 0x0f) * 4;
      expect(bytes.length, p).toBe(bytes.readUInt16BE(2));
      expect(referenceChecksum(bytes.subarray(0, headerLength)), `IP header checksum: ${p}`).toBe(0);
      expect(referenceChecksum(bytes.subarray(headerLength)), `ICMP checksum: ${p}`).toBe(0);
    }
  };

  async function captured(run: () => Promise<void>, count: number): Promise<string[]> {
    const capture: Capture = await errorsAtClient();
    try {
      await run();
      await capture.waitForPackets(count, 5000);
    } finally {
      await capture.stop();
    }
    return capture.packets;
  }

  it(`a DF packet larger than lan0's MTU (${LAN_MTU}): fragmentation needed, with the MTU, quoting the packet as it arrived`, async () => {
    // Exactly the MTU passes: 1372 bytes of data + 8 (ICMP) + 20 (IP) = 1400.
    const fits = await client(['ping', '-n', '-M', 'do', '-s', String(LAN_MTU - 28), '-c', '1', '-W', '3', VIP]);
    expect(fits.code, fits.stdout + fits.stderr).toBe(0);
    expect(fits.stdout).toContain(`${LAN_MTU - 20} bytes from ${VIP}`); // ping counts ICMP bytes

    let ping = { code: 0, stdout: '', stderr: '' };
    const packets = await captured(async () => {
      ping = await client(['ping', '-n', '-M', 'do', '-s', String(LAN_MTU - 28 + 1), '-c', '1', '-W', '3', VIP]);
    }, 1);
    expect(ping.code, ping.stdout).not.toBe(0);
    expect(ping.stdout).toMatch(new RegExp(`From ${ROUTER} icmp_seq=1 Frag needed and DF set \\(mtu = ${LAN_MTU}\\)`));
    expect(packets, packets.join('\n')).toHaveLength(1);
    expect(packets[0]).toMatch(new RegExp(`${ROUTER} > ${CLIENT}: ICMP ${VIP} unreachable - need to frag \\(mtu ${LAN_MTU}\\)`));
    // The quoted header is the one the client sent: TTL 64 (not yet decremented), DF, its length.
    expect(packets[0]).toMatch(new RegExp(`ttl 64, .*flags \\[DF\\], proto ICMP \\(1\\), length ${LAN_MTU + 1}\\)\\s+${CLIENT} > ${VIP}: ICMP echo request`));
    expectChecksumsRight(packets);
  });

  it(`a route via a next hop that never answers ARP (${NO_ONE}): host unreachable after the probes`, async () => {
    const before = await icmpCounters();
    let ping = { code: 0, stdout: '', stderr: '' };
    const packets = await captured(async () => {
      ping = await client(['ping', '-n', '-c', '1', '-W', '5', BEHIND_NO_ONE]);
    }, 1);
    expect(ping.stdout).toMatch(new RegExp(`From ${ROUTER} icmp_seq=1 Destination Host Unreachable`));
    expect(packets, packets.join('\n')).toHaveLength(1);
    expect(packets[0]).toMatch(new RegExp(`${ROUTER} > ${CLIENT}: ICMP host ${BEHIND_NO_ONE.replace(/\./g, '\\.')} unreachable`));
    expect(packets[0]).toMatch(new RegExp(`${CLIENT} > ${BEHIND_NO_ONE.replace(/\./g, '\\.')}: ICMP echo request`));
    expectChecksumsRight(packets);
    expect((await icmpCounters()).hostUnreachable).toBe(before.hostUnreachable + 1);
    const neighbors = await viprCtl(lab!, ['neighbor', 'show']);
    expect(neighbors.stdout).toMatch(new RegExp(`^${NO_ONE.replace(/\./g, '\\.')}\\s.*\\b(failed|incomplete)\\b`, 'm'));
  });

  it(`an address under the unreachable route (${UNROUTED}): net unreachable`, async () => {
    let ping = { code: 0, stdout: '', stderr: '' };
    const packets = await captured(async () => {
      ping = await client(['ping', '-n', '-c', '1', '-W', '3', UNROUTED]);
    }, 1);
    expect(ping.stdout).toMatch(new RegExp(`From ${ROUTER} icmp_seq=1 Destination Net Unreachable`));
    expect(packets, packets.join('\n')).toHaveLength(1);
    expect(packets[0]).toMatch(new RegExp(`${ROUTER} > ${CLIENT}: ICMP net ${UNROUTED.replace(/\./g, '\\.')} unreachable`));
    expectChecksumsRight(packets);
  });

  it('traceroute: time exceeded from the router at hop 1, then the VIP', async () => {
    let trace = { code: 0, stdout: '', stderr: '' };
    const packets = await captured(async () => {
      trace = await client(['traceroute', '-n', '-q', '1', '-w', '3', '-m', '3', VIP], 30_000);
    }, 1);
    expect(trace.code, trace.stdout + trace.stderr).toBe(0);
    const hops = trace.stdout.split('\n').map((l) => /^\s*(\d+)\s+(\S+)/.exec(l)).filter((m) => m !== null).map((m) => `${m[1]} ${m[2]}`);
    expect(hops, trace.stdout).toEqual([`1 ${ROUTER}`, `2 ${VIP}`]);
    expect(packets, packets.join('\n')).toHaveLength(1);
    expect(packets[0]).toMatch(new RegExp(`${ROUTER} > ${CLIENT}: ICMP time exceeded in-transit`));
    expect(packets[0]).toMatch(new RegExp(`ttl 1, .*${CLIENT}\\.\\d+ > ${VIP}\\.\\d+: (\\[[^\\]]*\\] )?UDP`));
    expectChecksumsRight(packets);
  });

  it(`a flood of TTL-1 packets: at most burst + rate x seconds errors (${BURST} + ${RATE_PER_SECOND}/s), the rest counted as rate limited`, async () => {
    const flood = 3000;
    // From 100 addresses of the client (10.0.0.100-199), round robin: errors to
    // many hosts, so that the global limit decides, not any limit per host.
    const sources = Array.from({ length: 100 }, (_, i) => `10.0.0.${100 + i}`);
    for (const address of sources) {
      const added = await client(['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      expect(added.code, added.stderr).toBe(0);
    }
    // node's dgram in the client namespace: `flood` datagrams with TTL 1, as fast as the sockets take them.
    const script = `const dgram = require('dgram'); const sources = ${JSON.stringify(sources)}; let bound = 0; let done = 0;
      const sockets = sources.map((address) => { const s = dgram.createSocket('udp4'); s.bind(0, address, () => { s.setTTL(1); if (++bound === sources.length) go(); }); return s; });
      function go() { const b = Buffer.alloc(18);
        for (let i = 0; i < ${flood}; i++) sockets[i % sockets.length].send(b, 33434, '${VIP}', () => { if (++done === ${flood}) sockets.forEach((s) => s.close()); }); }`;
    const before = await icmpCounters();
    const capture = await startCapture(lab!, 'client', ['-vv', '-x', '-i', 'eth0', `icmp and src host ${ROUTER} and dst net 10.0.0.0/24 and icmp[icmptype] == icmp-timxceed`]);
    let seconds = 0;
    let sent = { code: 0, stdout: '', stderr: '' };
    try {
      // The bucket refills at RATE_PER_SECOND from here on: the window starts before the first packet.
      const started = performance.now();
      sent = await client([process.execPath, '-e', script], 30_000);
      await new Promise((resolve) => setTimeout(resolve, 500)); // errors still on their way
      await capture.stop();
      seconds = (performance.now() - started) / 1000;
    } finally {
      await capture.stop();
      for (const address of sources) await client(['ip', 'addr', 'del', `${address}/24`, 'dev', 'eth0']);
    }
    expect(sent.code, sent.stderr).toBe(0);
    const errors = capture.packets.length;
    const bound = BURST + Math.ceil(RATE_PER_SECOND * seconds);
    const after = await icmpCounters();
    const why = `${errors} errors for ${flood} packets in ${seconds.toFixed(2)} s (bound ${bound}); vipr's counters ${JSON.stringify(after)}`;
    console.log(why);
    expect(errors, why).toBeLessThanOrEqual(bound);
    expect(errors, why).toBeGreaterThanOrEqual(BURST); // the bucket was full: the first BURST get their error
    expect(after.timeExceeded - before.timeExceeded, why).toBe(errors); // what vipr sent is what the client got
    // Held back and counted (by whichever rate-limit counters vipr keeps: rateLimited...).
    const heldBack = (counters: Record<string, number>) => Object.entries(counters).filter(([name]) => name.startsWith('rateLimited')).reduce((sum, [, n]) => sum + n, 0);
    expect(heldBack(after) - heldBack(before), why).toBeGreaterThanOrEqual(flood / 2);
    expectChecksumsRight(capture.packets);
  });
});
