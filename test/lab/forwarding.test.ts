// vipr forwards the article's network: the operator's session, as a test.
// The kernel in the router namespace does not forward (ip_forward=0); vipr
// runs there with lab/vipr.yaml and every transit packet is its work.
// Checked the way an operator would: curl, ping, traceroute, tcpdump on the
// server's wire, and finally the daemon's own counters when it stops.
//
// Needs the daemon built: npx tsc -p tsconfig.json
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, labWithVipr, startCapture, waitFor, withoutChecks, type Lab, type ViprProcess,
} from './harness.js';

const VIP_OWNER: Array<[string, string]> = [
  ['192.168.1.33', 'web1'],
  ['192.168.1.65', 'web2'],
  ['192.168.1.97', 'web3'],
  ['192.168.1.129', 'web4'],
];

const ROUTER_ADDRESS = '10.0.0.1';
const CLIENT_ADDRESS = '10.0.0.2';
/** Inside 192.168.1.0/24 (an unreachable route) but in none of the four VIP /27s. */
const UNROUTED_ADDRESS = '192.168.1.200';

type CountersSnapshot = {
  drops: Record<string, number>;
  icmp: Record<string, number>;
  ports: Record<string, Record<string, number>>;
};

// Every port backend passes the same session: the native AF_PACKET rings (the
// default), libpcap, and AF_XDP (vipr's XDP program, copy mode on veth).
describe.each(['ring', 'pcap', 'xdp'] as const)('vipr forwards the lab network with io: %s (kernel forwarding off)', (backend) => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;

  beforeAll(async () => {
    // Health checks are the failover tests' business: here a check that fails
    // on a busy machine would move a VIP to its backup in the middle of a count.
    ({ lab, vipr } = await labWithVipr(`vipr-${backend}`, (text) => withoutChecks(text.replace(/^io: \w+$/m, `io: ${backend}`))));
    expect(vipr.logs.join('\n')).toContain(`"io":"${backend}"`);
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const client = (cmd: string[], timeoutMs?: number) => lab!.exec('client', cmd, { timeoutMs });

  it('the router namespace does not forward by itself: ip_forward is 0', async () => {
    const r = await lab!.exec('router', [
      'sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv4.conf.up0.forwarding', 'net.ipv4.conf.lan0.forwarding',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['0', '0', '0']);
    const proc = await lab!.exec('router', ['cat', '/proc/sys/net/ipv4/ip_forward']);
    expect(proc.stdout.trim()).toBe('0');
  });

  it.each(VIP_OWNER)('curl http://%s/ from the client is answered by %s', async (vip, owner) => {
    // The first request may wait for vipr's ARP resolution of the server: retry for a while.
    let last = { code: -1, stdout: '', stderr: '' };
    await waitFor(async () => {
      last = await client(['curl', '-s', '--max-time', '2', `http://${vip}/`]);
      return last.code === 0;
    }, 6_000, 200);
    expect(last.code, `curl exit ${last.code}: ${last.stderr}`).toBe(0);
    expect(last.stdout).toBe(`${owner}\n`);
  });

  it.each(VIP_OWNER)('ping -c 3 %s from the client succeeds (replies arrive with ttl 63)', async (vip) => {
    const r = await client(['ping', '-c', '3', '-i', '0.2', '-W', '2', vip]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('3 packets transmitted, 3 received');
    const replies = r.stdout.split('\n').filter((l) => l.includes(`bytes from ${vip}`));
    expect(replies).toHaveLength(3);
    for (const line of replies) expect(line).toContain('ttl=63');
  });

  it('vipr decrements the TTL by exactly one: web1 sees ttl 63 for pings sent with ttl 64', async () => {
    const cap = await startCapture(lab!, 'web1', [
      '-v', '-i', 'eth0', `icmp[icmptype] == icmp-echo and src host ${CLIENT_ADDRESS} and dst host 192.168.1.33`,
    ]);
    let ping;
    try {
      ping = await client(['ping', '-c', '3', '-i', '0.2', '-W', '2', '-t', '64', '192.168.1.33']);
      await cap.waitForPackets(3, 3_000);
    } finally {
      await cap.stop();
    }
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    expect(cap.packets, cap.packets.join('\n')).toHaveLength(3);
    for (const packet of cap.packets) {
      expect(packet).toContain('ICMP echo request');
      expect(packet).toMatch(/\bttl 63\b/);
    }
    // The server answers with ttl 64; one hop back through vipr makes it 63.
    const replies = ping.stdout.split('\n').filter((l) => l.includes('bytes from 192.168.1.33'));
    expect(replies).toHaveLength(3);
    for (const line of replies) expect(line).toContain('ttl=63');
  });

  it(`a packet to ${UNROUTED_ADDRESS} gets Destination Net Unreachable from ${ROUTER_ADDRESS}`, async () => {
    const r = await client(['ping', '-c', '1', '-W', '2', UNROUTED_ADDRESS]);
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.stdout).toContain(`From ${ROUTER_ADDRESS}`);
    expect(r.stdout).toContain('Destination Net Unreachable');
  });

  it(`a ping with ttl 1 gets Time to live exceeded from ${ROUTER_ADDRESS}`, async () => {
    const r = await client(['ping', '-c', '1', '-W', '2', '-t', '1', '192.168.1.33']);
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.stdout).toContain(`From ${ROUTER_ADDRESS}`);
    expect(r.stdout).toContain('Time to live exceeded');
  });

  it(`traceroute to 192.168.1.33 shows ${ROUTER_ADDRESS}, then the VIP`, async () => {
    const r = await client(['traceroute', '-n', '-q', '1', '-w', '2', '192.168.1.33'], 30_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hops = r.stdout
      .split('\n')
      .map((l) => /^\s*(\d+)\s+(\S+)/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [Number(m[1]), m[2]]);
    expect(hops, r.stdout).toEqual([
      [1, ROUTER_ADDRESS],
      [2, '192.168.1.33'],
    ]);
  });

  it('forwards every packet exactly once: 200 pings, 200 echo requests at web1, no duplicates', async () => {
    const count = 200;
    const cap = await startCapture(lab!, 'web1', [
      '-i', 'eth0', `icmp[icmptype] == icmp-echo and src host ${CLIENT_ADDRESS} and dst host 192.168.1.33`,
    ]);
    let ping;
    let stats = '';
    try {
      ping = await client(['ping', '-i', '0.01', '-c', String(count), '-W', '2', '192.168.1.33'], 30_000);
      await cap.waitForPackets(count, 3_000);
      // A duplicate would arrive right behind its original; give it a moment to show.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      stats = (await cap.stop()).stderr;
    }
    expect(ping.code, ping.stdout.slice(-500) + ping.stderr).toBe(0);
    expect(ping.stdout).toContain(`${count} packets transmitted, ${count} received`);
    expect(ping.stdout).not.toContain('DUP!');
    expect(ping.stdout).not.toMatch(/duplicates/);

    const sequences = cap.packets.map((p) => {
      const m = /ICMP echo request, id \d+, seq (\d+)/.exec(p);
      return m ? Number(m[1]) : -1;
    });
    expect(sequences, `unparsed tcpdump lines:\n${cap.packets.filter((_, i) => sequences[i] < 0).join('\n')}`).not.toContain(-1);
    const seen = new Map<number, number>();
    for (const s of sequences) seen.set(s, (seen.get(s) ?? 0) + 1);
    const twice = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
    expect(twice, 'sequence numbers seen more than once at web1').toEqual([]);
    expect(seen.size, `distinct echo requests at web1 (tcpdump: ${stats.trim().replace(/\n/g, '; ')})`).toBe(count);
    expect(sequences).toHaveLength(count);
  });

  it('carries an 8 MB TCP transfer from web3 (192.168.1.97)', async () => {
    const who = await client(['curl', '-s', '--max-time', '5', 'http://192.168.1.97/']);
    expect(who.code, who.stderr).toBe(0);
    expect(who.stdout).toBe('web3\n');

    const size = 8_000_000;
    const dir = await mkdtemp(join(tmpdir(), 'vipr-fwd-'));
    try {
      const file = join(dir, 'body');
      const r = await client(
        ['curl', '-s', '--max-time', '30', '-o', file, '-w', '%{size_download} %{http_code}', `http://192.168.1.97/bytes/${size}`],
        40_000,
      );
      expect(r.code, `curl exit ${r.code}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toBe(`${size} 200`);
      // The server sends only 'x': any other byte was damaged on the way.
      const body = await readFile(file);
      expect(body.length).toBe(size);
      expect(body.every((b) => b === 0x78)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stops on SIGTERM with exit 0, and its counters show no unexpected drops', async () => {
    const code = await vipr!.stop(); // idempotent: afterAll gets the same code
    expect(code, `log tail:\n${vipr!.logs.slice(-10).join('\n')}`).toBe(0);
    const stopped = vipr!.records().filter((r) => r.msg === 'stopped');
    expect(stopped, `log tail:\n${vipr!.logs.slice(-10).join('\n')}`).toHaveLength(1);
    const counters = stopped[0].counters as CountersSnapshot;
    const shown = JSON.stringify(counters);

    // Expected drops: the TTL-1 probes (ping -t 1, traceroute's first hop) and
    // the packet to the unreachable route. Nothing else may have been dropped.
    expect(counters.drops.ttlExceeded, shown).toBeGreaterThanOrEqual(1);
    expect(counters.drops.unreachableRoute, shown).toBeGreaterThanOrEqual(1);
    const unexpected = Object.entries(counters.drops).filter(
      ([name, n]) => name !== 'ttlExceeded' && name !== 'unreachableRoute' && n !== 0,
    );
    expect(unexpected, shown).toEqual([]);
    expect(counters.drops.badChecksum).toBe(0);

    expect(counters.icmp.timeExceeded, shown).toBeGreaterThanOrEqual(1);
    expect(counters.icmp.netUnreachable, shown).toBeGreaterThanOrEqual(1);
    expect(counters.icmp.rateLimited, shown).toBe(0);
    // At least the 200 pings and the 8 MB transfer went through each port.
    expect(counters.ports.up0.forwardedPackets, shown).toBeGreaterThan(5000);
    expect(counters.ports.lan0.forwardedPackets, shown).toBeGreaterThan(200);
  });
});
