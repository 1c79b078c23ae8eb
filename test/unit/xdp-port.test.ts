// The AF_XDP port's contract with its addon, without a network: the counter
// layout matches, bad arguments are refused before C touches memory, and a
// failure names the interface and the reason. What needs an interface (the
// program's verdicts, frames both ways, detaching) is in test/lab/xdp.test.ts.
import { describe, expect, it } from 'vitest';
import { FrameBatch, SLOT_SIZE } from '../../src/dataplane/batch.js';
import { capabilityMask, describeCapabilities, keptCapabilities, planPrivileges } from '../../src/daemon/privileges.js';
import { localAddresses, parseIpAddr } from '../../src/daemon/interfaces.js';
import { loadXdpNative, XDP_COUNTER_NAMES, XdpCounter, XdpPort, XdpUnavailableError } from '../../src/io/xdp-port.js';
import { parseAddress } from '../../src/util/ipv4.js';
import type { Config } from '../../src/config/types.js';

const native = loadXdpNative();
const counters = () => new Float64Array(native.COUNTERS);

describe('vipr-native AF_XDP addon', () => {
  it('exports the flat surface and a counter layout that matches XDP_COUNTER_NAMES', () => {
    for (const f of ['open', 'rxBurst', 'txBurst', 'send', 'setLocalAddresses', 'setMac', 'stats', 'start', 'stop', 'close', 'info'] as const) {
      expect(typeof native[f]).toBe('function');
    }
    expect(native.COUNTERS).toBe(XDP_COUNTER_NAMES.length);
    expect(XdpCounter.rxFrames).toBe(0);
    expect(XdpCounter.socketErrors).toBe(XDP_COUNTER_NAMES.length - 1);
    expect(XdpCounter.xdpRedirected + 4).toBe(XdpCounter.xdpPassedNoSocket); // the program's five verdicts, in its order
    expect(native.MAX_LOCAL_ADDRESSES).toBe(1024);
    expect(native.MAX_FRAME).toBe(2048 - 256);
  });

  it('names a missing interface and its errno', () => {
    let error: (Error & { code?: string }) | undefined;
    try {
      native.open('vxt-nonexistent', {}, counters());
    } catch (e) {
      error = e as Error & { code?: string };
    }
    expect(error?.message).toBe('interface vxt-nonexistent: no such interface: No such device');
    expect(error?.code).toBe('ENODEV');
  });

  it.each([
    [{ mode: 'fast' }, /options.mode must be 'auto', 'copy' or 'zerocopy'/],
    [{ attach: 'offload' }, /options.attach must be 'auto', 'native' or 'generic'/],
    [{ frames: 1000 }, /options.frames must be a power of two in 64..65536/],
    [{ frames: 32 }, /options.frames must be a power of two in 64..65536/],
    [{ netns: 'a/b' }, /netns must be a name or an absolute path/],
    [{ localAddresses: [1, 2] }, /options.localAddresses has the wrong type/],
    [{ localAddresses: new Uint32Array(1025) }, /more than 1024 addresses/],
  ])('refuses bad options %j', (options, message) => {
    expect(() => native.open('lo', options as never, counters())).toThrow(message);
  });

  it('refuses a counters array that is too short, and a handle that is not one', () => {
    expect(() => native.open('lo', {}, new Float64Array(3))).toThrow(/counters must hold/);
    const b = new FrameBatch(2);
    expect(() => native.rxBurst({} as never, b.data, 0, 1, SLOT_SIZE, b.length, b.port, 0)).toThrow(/XDP port handle/);
    expect(() => native.setLocalAddresses({} as never, new Uint32Array(1))).toThrow(/XDP port handle/);
  });

  it('XdpPort refuses more local addresses than the program holds, before opening anything', () => {
    const many = Array.from({ length: 1025 }, (_, i) => 0x0a000000 + i);
    expect(() => new XdpPort('lan0', 0, { localAddresses: many })).toThrow(
      'interface lan0: the box has 1025 IPv4 addresses; io: xdp handles at most 1024',
    );
    // Repeats count once.
    expect(() => new XdpPort('lan0', 0, { localAddresses: [...many.slice(0, 1000), ...many.slice(0, 1000)] })).not.toThrow();
  });

  it('says what to install when it is not built', () => {
    const error = new XdpUnavailableError('vipr-native was built without AF_XDP');
    expect(error.code).toBe('EXDP');
  });
});

describe('what io: xdp asks of the box', () => {
  const io = (value: Config['io']) => ({ io: value });

  it('keeps CAP_BPF and CAP_IPC_LOCK besides the two packet capabilities, only when AF_XDP may be used', () => {
    expect(keptCapabilities(io('ring'))).toEqual(['net_raw', 'net_admin']);
    expect(keptCapabilities(io('pcap'))).toEqual(['net_raw', 'net_admin']);
    expect(keptCapabilities(io('xdp'))).toEqual(['net_raw', 'net_admin', 'bpf', 'ipc_lock']);
    expect(keptCapabilities(io('auto'))).toEqual(['net_raw', 'net_admin', 'bpf', 'ipc_lock']);
    expect(capabilityMask(['net_raw', 'net_admin'])).toBe(0x3000n);
    expect(capabilityMask(keptCapabilities(io('xdp')))).toBe(0x3000n | (1n << 14n) | (1n << 39n));
  });

  it('names the capabilities a thread holds, and says when it holds more', () => {
    expect(describeCapabilities(0x3000n)).toBe('net_raw, net_admin');
    expect(describeCapabilities(0x3000n | (1n << 14n) | (1n << 39n), keptCapabilities(io('xdp')))).toBe('net_raw, net_admin, bpf, ipc_lock');
    expect(describeCapabilities(0x3000n | (1n << 39n))).toBe('0x8000003000 (more than net_raw, net_admin)');
  });

  it('re-runs itself through setpriv with the four capabilities for io: xdp', async () => {
    const config = { io: 'xdp', control: {}, user: undefined } as unknown as Config;
    const plan = await planPrivileges(config, ['node', 'vipr']);
    const caps = '-all,+net_raw,+net_admin,+bpf,+ipc_lock';
    expect(plan.argv).toEqual(expect.arrayContaining([`--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=${caps}`]));
  });

  it('hands the XDP program every IPv4 address of the box, not only the ports\', once each', () => {
    const states = parseIpAddr(JSON.stringify([
      { ifindex: 1, ifname: 'lo', mtu: 65536, link_type: 'loopback', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
      { ifindex: 2, ifname: 'lan0', mtu: 1500, link_type: 'ether', address: '02:00:00:00:00:01', flags: ['UP', 'LOWER_UP'],
        addr_info: [{ family: 'inet', local: '192.168.1.1', prefixlen: 27 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
          { family: 'inet', local: '192.168.1.30', prefixlen: 27 }] },
      { ifindex: 3, ifname: 'mgmt0', mtu: 1500, link_type: 'ether', address: '02:00:00:00:00:02',
        addr_info: [{ family: 'inet', local: '172.16.0.5', prefixlen: 24 }, { family: 'inet', local: '192.168.1.1', prefixlen: 32 }] },
    ]));
    expect(localAddresses(states).sort((a, b) => a - b)).toEqual(
      ['127.0.0.1', '172.16.0.5', '192.168.1.1', '192.168.1.30'].map(parseAddress).sort((a, b) => a - b),
    );
  });
});
