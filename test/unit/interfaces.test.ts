// Ports from the kernel: what `ip -j addr show` says becomes vipr's picture of
// its ports, and changes at run time (an address added as keepalived adds a
// VRRP address, a subnet removed, a link down) move the interface routes, the
// next hops and the neighbours without a restart. Frames in, frames out: the
// data plane's answer is the proof.

import { describe, expect, it } from 'vitest';
import { articleRouter, LAN0, MAC, UP0, type ArticleRouter } from '../fixtures/article-router.js';
import { describeLink, linkUp, parseIpAddr } from '../../src/daemon/interfaces.js';
import { describePort } from '../../src/daemon/system.js';
import { arpFrame, icmpEcho, ipv4Frame } from '../../src/packet/builder.js';
import { formatAddress, formatPrefix, parseAddress, parsePrefix } from '../../src/util/ipv4.js';

// Trimmed from real `ip -j addr show` output on Debian 12 (iproute2 6.1).
const IP_ADDR_JSON = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, link_type: 'loopback', address: '00:00:00:00:00:00',
    addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  // Up, but no carrier yet: what os.networkInterfaces() leaves out.
  { ifindex: 8, ifname: 'up0', flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'], mtu: 1500, link_type: 'ether', address: '36:94:1d:28:4a:79',
    addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 24 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] },
  { ifindex: 9, ifname: 'lan0', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 9000, link_type: 'ether', address: '02:00:00:01:00:01',
    addr_info: [{ family: 'inet', local: '192.168.1.1', prefixlen: 27 }, { family: 'inet', local: '192.168.1.30', prefixlen: 32 }] },
  { ifindex: 10, ifname: 'eth9', flags: ['BROADCAST', 'MULTICAST'], mtu: 1500, link_type: 'ether', address: '02:00:00:09:00:01', addr_info: [] },
  { ifindex: 11, ifname: 'tun0', flags: ['POINTOPOINT', 'UP', 'LOWER_UP'], mtu: 1500, link_type: 'none',
    addr_info: [{ family: 'inet', local: '10.8.0.1', prefixlen: 24 }] },
]);

describe('reading ports from the kernel (ip -j addr show)', () => {
  const states = parseIpAddr(IP_ADDR_JSON);

  it.each([
    { name: 'up0', link: 'down (no carrier)', up: false, addresses: ['10.0.0.1/24'], mtu: 1500 },
    { name: 'lan0', link: 'up', up: true, addresses: ['192.168.1.1/27', '192.168.1.30/32'], mtu: 9000 },
    { name: 'eth9', link: 'down (admin down)', up: false, addresses: [], mtu: 1500 },
  ])('$name: link $link, addresses $addresses', ({ name, link, up, addresses, mtu }) => {
    const state = states.get(name)!;
    expect(describeLink(state)).toBe(link);
    expect(linkUp(state)).toBe(up);
    expect(state.addresses.map((a) => `${formatAddress(a.address)}/${a.length}`)).toEqual(addresses);
    expect(state.mtu).toBe(mtu);
  });

  it('a port without carrier is a port (down, with its address), not an error', () => {
    const port = describePort('up0', states.get('up0'));
    expect(port.up).toBe(false);
    expect(port.addresses).toHaveLength(1);
    expect([...port.mac].map((b) => b.toString(16).padStart(2, '0')).join(':')).toBe('36:94:1d:28:4a:79');
  });

  it.each([
    { name: 'nope', error: 'interface nope does not exist (see `ip link`)' },
    { name: 'tun0', error: 'interface tun0 is not Ethernet (link type none): vipr ports must be Ethernet' },
    { name: 'eth9', error: 'interface eth9 has no IPv4 address: vipr needs one per port to ARP from and to send ICMP errors from (`ip addr add ADDRESS/LENGTH dev eth9`)' },
  ])('refuses $name with one line', ({ name, error }) => {
    expect(() => describePort(name, states.get(name))).toThrow(error);
  });

  it('an absent interface is described as absent', () => {
    expect(describeLink(undefined)).toBe('absent');
  });

  it('output that is not JSON is one clear line', () => {
    expect(() => parseIpAddr('Device "x" does not exist.')).toThrow(/^cannot read interfaces: `ip -j addr show` printed no valid JSON/);
  });
});

// ---- run-time changes on the article's router ----------------------------------

const CLIENT = '10.0.0.2';
const fromClient = (dst: string, ttl = 64, src = CLIENT) =>
  ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src, dst, ttl, payload: icmpEcho(1, 1, 8) });
const address = (text: string) => {
  const [a, l] = text.split('/');
  return { address: parseAddress(a), length: Number(l) };
};

/** What became of one frame from the client: forwarded (to whom), punted, or the ICMP error sent back. */
function fate(r: ArticleRouter, frame: Buffer): string {
  const punts = r.router.counters.punts.reduce((a, b) => a + b, 0);
  r.receive(UP0, frame);
  const back = r.up0.take();
  const out = r.lan0.take();
  if (out.length === 1 && out[0].readUInt16BE(12) === 0x0800) {
    const to = out[0].subarray(0, 6).toString('hex').match(/../g)!.join(':');
    return `forwarded to ${Object.entries(MAC).find(([, m]) => m === to)?.[0] ?? to}`;
  }
  if (out.length === 1 && out[0].readUInt16BE(12) === 0x0806) return 'held (ARP request on lan0)';
  if (back.length === 1 && back[0][23] === 1) {
    return `ICMP ${back[0][34]}/${back[0][35]} from ${formatAddress(back[0].readUInt32BE(26))}`;
  }
  if (r.router.counters.punts.reduce((a, b) => a + b, 0) === punts + 1 && back.length === 0 && out.length === 0) return 'punted to the kernel';
  return `unexpected: ${back.length} back, ${out.length} out`;
}

function resolved(): ArticleRouter {
  const r = articleRouter();
  r.resolveAll();
  return r;
}

describe('addresses added and removed at run time', () => {
  it('a VRRP-style address on lan0: frames to it go to the kernel; removed, they are forwarded again', () => {
    const r = resolved();
    const vrrp = '192.168.1.30';
    expect(fate(r, fromClient(vrrp))).toBe('held (ARP request on lan0)'); // a host on the connected subnet
    r.router.setPortAddresses(LAN0, [address('192.168.1.1/27'), address(`${vrrp}/27`)]);
    expect(fate(r, fromClient(vrrp))).toBe('punted to the kernel');
    expect(r.router.rib.route(parsePrefix(`${vrrp}/32`))).toMatchObject({ type: 'local', port: 'lan0' });
    // The VIP routes did not move.
    expect(fate(r, fromClient('192.168.1.33'))).toBe('forwarded to web1');
    r.router.setPortAddresses(LAN0, [address('192.168.1.1/27')]);
    expect(r.router.rib.route(parsePrefix(`${vrrp}/32`))).toBeUndefined();
    expect(fate(r, fromClient(vrrp))).not.toBe('punted to the kernel');
  });

  it('a new subnet on up0: its hosts are connected, and ICMP errors to them come from its address', () => {
    const r = resolved();
    const newHost = '10.0.5.2';
    // Before: 10.0.5.0/24 is not connected, a TTL-1 frame from it gets Time Exceeded from up0's only address.
    expect(fate(r, fromClient('192.168.1.33', 1, newHost))).toBe('ICMP 11/0 from 10.0.0.1');
    r.router.setPortAddresses(UP0, [address('10.0.0.1/24'), address('10.0.5.1/24')]);
    expect(r.router.rib.route(parsePrefix('10.0.5.0/24'))).toMatchObject({ type: 'connected', port: 'up0' });
    expect(fate(r, fromClient('192.168.1.33', 1, newHost))).toBe('ICMP 11/0 from 10.0.5.1');
    r.router.setPortAddresses(UP0, [address('10.0.0.1/24')]);
    expect(r.router.rib.route(parsePrefix('10.0.5.0/24'))).toBeUndefined();
    expect(fate(r, fromClient('192.168.1.33', 1, newHost))).toBe('ICMP 11/0 from 10.0.0.1');
  });

  it('an interface route takes a prefix over from a config route, which comes back when the address goes', () => {
    const r = resolved();
    const { rib } = r.router;
    const vipNet = parsePrefix('192.168.1.32/27');
    expect(rib.route(vipNet)).toMatchObject({ source: 'config' });
    r.router.setPortAddresses(LAN0, [address('192.168.1.1/27'), address('192.168.1.40/27')]);
    // 192.168.1.40/27 is the subnet 192.168.1.32/27: the kernel's connected route, as Linux would have it.
    expect(rib.route(vipNet)).toMatchObject({ source: 'connected', port: 'lan0' });
    expect(rib.shadowedRoutes().map((route) => formatPrefix(route.prefix))).toEqual(['192.168.1.32/27']);
    r.router.setPortAddresses(LAN0, [address('192.168.1.1/27')]);
    expect(rib.route(vipNet)).toMatchObject({ source: 'config' });
    expect(rib.shadowedRoutes()).toEqual([]);
    expect(fate(r, fromClient('192.168.1.33'))).toBe('forwarded to web1');
  });

  it('the subnet of the next hops removed: routes through them are withdrawn; back, they forward again', () => {
    const r = resolved();
    r.router.setPortAddresses(LAN0, [address('192.168.2.1/24')]);
    expect(r.router.rib.reselect().map((m) => m.prefixes.map(formatPrefix)).flat().sort()).toEqual(
      ['192.168.1.128/27', '192.168.1.32/27', '192.168.1.64/27', '192.168.1.96/27'],
    );
    expect(fate(r, fromClient('192.168.1.33'))).toBe('ICMP 3/0 from 10.0.0.1');
    r.router.setPortAddresses(LAN0, [address('192.168.1.1/27')]);
    expect(r.router.rib.reselect()).toHaveLength(4);
    expect(fate(r, fromClient('192.168.1.33'))).toBe('forwarded to web1');
  });
});

describe('link down and up at run time', () => {
  it('lan0 down: routes through it are withdrawn at once and its neighbours forgotten; up: asked for again', () => {
    const r = resolved();
    const { rib, resolver } = r.router;
    r.router.setPortLink(LAN0, false);
    const moves = rib.reselect();
    expect(moves.map((m) => [m.prefixes.map(formatPrefix).join(), m.to])).toContainEqual(['192.168.1.32/27', undefined]);
    expect(fate(r, fromClient('192.168.1.33'))).toBe('ICMP 3/0 from 10.0.0.1');
    expect(resolver.stateOf(parseAddress('192.168.1.2'))).toBe('failed');
    expect(r.lan0.take()).toEqual([]); // nothing asked on a port that is down

    r.router.setPortLink(LAN0, true);
    // Every gateway on lan0 is asked for at once.
    const asked = r.lan0.take().map((f) => formatAddress(f.readUInt32BE(38))).sort();
    expect(asked).toEqual(['192.168.1.2', '192.168.1.3', '192.168.1.4', '192.168.1.5']);
    expect(rib.reselect()).toHaveLength(4);
    r.receive(LAN0, arpFrame({
      operation: 'reply', dstMac: MAC.lan0, srcMac: MAC.web1, senderMac: MAC.web1, senderAddress: '192.168.1.2', targetMac: MAC.lan0, targetAddress: '192.168.1.1',
    }));
    expect(fate(r, fromClient('192.168.1.33'))).toBe('forwarded to web1');
  });

  it('up0 down does not touch routes through lan0', () => {
    const r = resolved();
    r.router.setPortLink(UP0, false);
    const moved = r.router.rib.reselect().flatMap((m) => m.prefixes.map(formatPrefix));
    expect(moved).toEqual(['0.0.0.0/0']);
  });
});
