// What RFC 1812 asks of a router, in the lab: ICMP errors limited per
// destination (a host flooding TTL-1 packets gets a handful of Time
// Exceeded; another host still gets its own) and fragmentation (a datagram
// bigger than the egress MTU without DF arrives whole at the server; with DF,
// the sender hears "fragmentation needed" with the MTU). vipr runs with
// lan0's MTU set to 1400 in its config; the wires stay at 1500, so the
// server accepts whatever vipr sends. Checked with ping, tcpdump, a UDP
// sender and listener, and `vipr ctl --json stats`.
//
// Needs the daemon built: npx tsc -p tsconfig.json
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onLines } from '../../lab/lib/process.js';
import {
  closeLabWithVipr, labWithVipr, spawnIn, startCapture, viprCtl, waitFor, withoutChecks, type Lab, type ViprProcess,
} from './harness.js';

const PAYLOAD_LENGTH = 1472; // a 1,500-byte IP datagram: 20 IP + 8 UDP + 1472
const PORT = 9999;

/** A UDP datagram of PAYLOAD_LENGTH bytes from the client, DF clear (`dont`) or set (`do`), via python3. */
function sendUdp(lab: Lab, to: string, df: 'dont' | 'do') {
  // IP_MTU_DISCOVER (10): IP_PMTUDISC_DONT (0) clears DF, IP_PMTUDISC_DO (2) sets it.
  return lab.exec('client', ['python3', '-c', [
    'import socket',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.setsockopt(socket.IPPROTO_IP, 10, ${df === 'dont' ? 0 : 2})`,
    `s.sendto(bytes((k * 7 + 3) & 255 for k in range(${PAYLOAD_LENGTH})), ('${to}', ${PORT}))`,
  ].join('\n')]);
}

const expectedPayload = Buffer.from(Array.from({ length: PAYLOAD_LENGTH }, (_, k) => (k * 7 + 3) & 255));

interface Stats {
  icmp: Record<string, number>;
  fragmentation: Record<string, number>;
  drops: Record<string, number>;
}

describe('vipr behaves as RFC 1812 asks (lan0 at MTU 1400)', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  beforeAll(async () => {
    ({ lab, vipr } = await labWithVipr('rfc1812', (text) => {
      const edited = withoutChecks(text).replace(/^ {2}- name: lan0\b.*$/m, '  - { name: lan0, mtu: 1400 }');
      if (edited === withoutChecks(text)) throw new Error('lab config: no lan0 line to give an MTU');
      return edited;
    }));
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const stats = async (): Promise<Stats> => {
    const r = await viprCtl(lab!, ['--json', 'stats']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Stats;
  };

  it('500 TTL-1 datagrams from one host in half a second: at most 10 Time Exceeded; a second address still gets its own', async () => {
    const add = await lab!.exec('client', ['ip', 'addr', 'add', '10.0.0.3/24', 'dev', 'eth0']);
    expect(add.code, add.stderr).toBe(0);
    const before = await stats();
    const cap = await startCapture(lab!, 'client', ['-i', 'eth0', 'icmp[icmptype] == icmp-timxceed']);
    let flood;
    let second;
    try {
      const started = Date.now();
      // 500 UDP datagrams with TTL 1, one a millisecond (ping stops at the first error it hears).
      const flooding = lab!.exec('client', ['python3', '-c', [
        'import socket, time',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        's.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)',
        'start = time.monotonic()',
        'for k in range(500):',
        `    s.sendto(b'ttl one %d' % k, ('192.168.1.33', ${PORT}))`,
        '    time.sleep(max(0, start + (k + 1) / 1000 - time.monotonic()))',
        "print('sent 500')",
      ].join('\n')], { timeoutMs: 15_000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
      second = await lab!.exec('client', ['ping', '-n', '-t', '1', '-c', '1', '-W', '2', '-I', '10.0.0.3', '192.168.1.33']);
      flood = await flooding;
      console.log(`500 TTL-1 datagrams sent in ${Date.now() - started} ms (with the second host's ping)`);
      await waitFor(() => cap.packets.some((p) => p.includes('> 10.0.0.3:')), 2_000, 50);
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await cap.stop();
    }
    expect(flood.stdout, flood.stderr).toContain('sent 500');
    const toFlooder = cap.packets.filter((p) => p.includes('10.0.0.1 > 10.0.0.2:'));
    const toSecond = cap.packets.filter((p) => p.includes('10.0.0.1 > 10.0.0.3:'));
    console.log(`Time Exceeded received: ${toFlooder.length} by 10.0.0.2 (500 sent), ${toSecond.length} by 10.0.0.3 (1 sent)`);
    expect(toFlooder.length, cap.packets.join('\n')).toBeGreaterThanOrEqual(1);
    expect(toFlooder.length, cap.packets.join('\n')).toBeLessThanOrEqual(10);
    expect(toSecond, second.stdout).toHaveLength(1);
    expect(second.stdout).toContain('Time to live exceeded');

    const after = await stats();
    const limited = after.icmp.rateLimitedPerDestination - before.icmp.rateLimitedPerDestination;
    expect(limited, JSON.stringify(after.icmp)).toBeGreaterThanOrEqual(490);
    expect(after.icmp.rateLimited - before.icmp.rateLimited, 'the global bucket was not what held them back').toBe(0);
  });

  it('a 1,500-byte UDP datagram without DF reaches web1 in two fragments and is delivered whole, byte for byte', async () => {
    const listener = spawnIn(lab!, 'web1', [process.execPath, '-e', [
      "const s = require('node:dgram').createSocket('udp4');",
      "s.on('message', (m) => { console.log('got ' + m.length + ' ' + m.toString('hex')); process.exit(0); });",
      `s.bind(${PORT}, () => console.log('listening'));`,
    ].join('\n')]);
    const lines: string[] = [];
    onLines(listener.stdout, (line) => lines.push(line));
    expect(await waitFor(() => lines.includes('listening'), 5_000, 20), 'the listener started').toBe(true);
    const cap = await startCapture(lab!, 'web1', ['-v', '-i', 'eth0', `host 192.168.1.33 and (udp port ${PORT} or ip[6:2] & 0x1fff != 0)`]);
    let sent;
    try {
      sent = await sendUdp(lab!, '192.168.1.33', 'dont');
      await waitFor(() => lines.some((l) => l.startsWith('got ')), 5_000, 20);
      await cap.waitForPackets(2, 2_000);
    } finally {
      await cap.stop();
    }
    expect(sent.code, sent.stderr).toBe(0);
    const got = lines.find((l) => l.startsWith('got '));
    expect(got, `listener said: ${lines.join(' | ')}`).toBeDefined();
    const [, length, hex] = got!.split(' ');
    expect(Number(length)).toBe(PAYLOAD_LENGTH);
    expect(hex).toBe(expectedPayload.toString('hex'));
    // On web1's wire: two fragments of at most 1400 bytes, TTL 63, MF on the first, the second at offset 1376.
    expect(cap.packets, cap.packets.join('\n')).toHaveLength(2);
    expect(cap.packets[0]).toMatch(/ttl 63, id \d+, offset 0, flags \[\+\], proto UDP \(17\), length 1396/);
    expect(cap.packets[1]).toMatch(/ttl 63, id \d+, offset 1376, flags \[none\], proto UDP \(17\), length 124/);
    const after = await stats();
    expect(after.fragmentation.packetsFragmented, JSON.stringify(after.fragmentation)).toBeGreaterThanOrEqual(1);
    expect(after.drops.mtuExceeded).toBe(0);
  });

  it('with DF set, the client hears Fragmentation Needed carrying MTU 1400, and web2 sees nothing', async () => {
    const atClient = await startCapture(lab!, 'client', ['-v', '-i', 'eth0', 'icmp[icmptype] == icmp-unreach']);
    const atWeb2 = await startCapture(lab!, 'web2', ['-i', 'eth0', `udp port ${PORT} or ip[6:2] & 0x1fff != 0`]);
    let sent;
    try {
      // To .65 (web2), so the path MTU the client learns from this does not touch the datagram above.
      sent = await sendUdp(lab!, '192.168.1.65', 'do');
      await atClient.waitForPackets(1, 3_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await atClient.stop();
      await atWeb2.stop();
    }
    expect(sent.code, sent.stderr).toBe(0);
    expect(atClient.packets, atClient.packets.join('\n')).toHaveLength(1);
    expect(atClient.packets[0]).toMatch(/10\.0\.0\.1 > 10\.0\.0\.2: ICMP 192\.168\.1\.65 unreachable - need to frag \(mtu 1400\)/);
    expect(atWeb2.packets, atWeb2.packets.join('\n')).toHaveLength(0);
    const after = await stats();
    expect(after.icmp.fragmentationNeeded).toBeGreaterThanOrEqual(1);
  });
});
