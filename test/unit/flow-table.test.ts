// The flow table driven by frames from the packet builder, the way a stage
// will drive it: key and hash from the frame, track() on a route that keeps
// flows, refresh() on one that does not (the replies' default route).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SLOT_SIZE } from '../../src/dataplane/batch.js';
import { extractFlowKey, FLOW_KEY_WORDS, flowHash, NO_FLOW_KEY } from '../../src/dataplane/flow-key.js';
import {
  evictedCounter, EVICT_SCAN, FLOW_COUNTER_NAMES, FLOW_NOT_CREATED, FLOW_TABLE_DEFAULTS, FLOW_TABLE_FULL, FlowCounter,
  FlowKind, FlowTable, flowTableConfigProblems, NO_FLOW, SWEEP_PASS_MS, type FlowTableConfig, type FlowTimeouts,
} from '../../src/dataplane/flow-table.js';
import { icmpEcho, icmpErrorPayload, ipv4Frame, tcpSegment, udpPayload, type Ipv4Spec } from '../../src/packet/builder.js';
import { IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from '../../src/packet/layout.js';
import { formatAddress, parseAddress } from '../../src/util/ipv4.js';

const SEED = 0x5eed;
const WEB1 = 5;
const WEB2 = 6;
const VIP = '192.168.1.33';
const macs = { dstMac: '02:00:00:00:00:01', srcMac: '02:00:00:00:00:02' };
const S = 1000; // ms

function config(over: Omit<Partial<FlowTableConfig>, 'timeouts'> & { timeouts?: Partial<FlowTimeouts> } = {}): FlowTableConfig {
  return { ...FLOW_TABLE_DEFAULTS, ...over, timeouts: { ...FLOW_TABLE_DEFAULTS.timeouts, ...over.timeouts } };
}

/** A client's TCP connection to the VIP, as frames in either direction. */
function connection(client = '10.0.0.2', port = 40000, dstPort = 80) {
  const out = (flags: number, data = 0): Ipv4Spec => ({
    ...macs, src: client, dst: VIP, protocol: IPPROTO_TCP,
    payload: tcpSegment({ src: client, dst: VIP, srcPort: port, dstPort, flags, data }),
  });
  const back = (flags: number, data = 0): Ipv4Spec => ({
    ...macs, src: VIP, dst: client, protocol: IPPROTO_TCP,
    payload: tcpSegment({ src: VIP, dst: client, srcPort: dstPort, dstPort: port, flags, data }),
  });
  return { out, back };
}

/**
 * A table and the stage logic around it: packets towards the VIP travel a
 * route that keeps flows and currently points at `route.nextHop`; replies
 * travel the default route, which keeps none.
 */
function rig(over: Parameters<typeof config>[0] = {}) {
  const table = new FlowTable(config(over));
  const data = new Uint8Array(SLOT_SIZE);
  const keys = new Uint32Array(FLOW_KEY_WORDS);
  const route = { nextHop: WEB1 };
  const key = (spec: Ipv4Spec) => {
    const frame = ipv4Frame(spec);
    data.set(frame);
    const info = extractFlowKey(data, 0, frame.length, keys, 0);
    return { info, hash: flowHash(keys, 0, SEED) };
  };
  /** Forwards one packet at `now` (ms): returns the entry (or result code) and the next hop it went to. */
  const send = (spec: Ipv4Spec, now: number) => {
    const { info, hash } = key(spec);
    if (info === NO_FLOW_KEY) {
      table.counters[FlowCounter.noFlowKey]++;
      return { entry: NO_FLOW, nextHop: route.nextHop };
    }
    if (spec.dst === VIP) {
      const entry = table.track(keys, 0, hash, info, route.nextHop, now);
      return { entry, nextHop: entry >= 0 ? table.nextHopOf(entry) : route.nextHop };
    }
    return { entry: table.refresh(keys, 0, hash, info, now), nextHop: -1 };
  };
  /** The flow's entry as the control plane sees it, or undefined. */
  const flow = (spec: Ipv4Spec, now: number) => {
    const { info, hash } = key(spec);
    const entry = table.lookup(keys, 0, hash, info & ~0xff, now);
    return entry < 0 ? undefined : table.describe(entry, now);
  };
  return { table, route, send, flow, key, keys };
}

type Step = [direction: 'out' | 'back', flags: number, at: number];

describe('flow table: TCP state machine', () => {
  const { SYN, ACK, FIN, RST, PSH } = { SYN: TCP_SYN, ACK: TCP_ACK, FIN: TCP_FIN, RST: TCP_RST, PSH: TCP_PSH };
  const handshake: Step[] = [['out', SYN, 0], ['back', SYN | ACK, 10], ['out', ACK, 20]];
  const cases: { name: string; steps: Step[]; kind: string | undefined; state?: string[]; checkAt?: number }[] = [
    { name: 'SYN: embryonic', steps: [['out', SYN, 0]], kind: 'tcpEmbryonic', state: ['synFromInitiator'] },
    {
      name: 'SYN-ACK reply: still embryonic, replied',
      steps: [['out', SYN, 0], ['back', SYN | ACK, 10]], kind: 'tcpEmbryonic',
      state: ['synFromInitiator', 'synAckFromResponder', 'replied'],
    },
    { name: 'ACK after SYN-ACK: established', steps: handshake, kind: 'tcpEstablished', state: ['synFromInitiator', 'synAckFromResponder', 'established', 'replied'] },
    { name: 'data after the handshake: established', steps: [...handshake, ['out', ACK | PSH, 30], ['back', ACK, 40]], kind: 'tcpEstablished' },
    { name: 'ACK without SYN-ACK: still embryonic', steps: [['out', SYN, 0], ['out', ACK, 10]], kind: 'tcpEmbryonic' },
    {
      name: 'FIN from the client only: half closed, still established',
      steps: [...handshake, ['out', FIN | ACK, 30]], kind: 'tcpEstablished',
      state: ['synFromInitiator', 'synAckFromResponder', 'established', 'finFromInitiator', 'replied'],
    },
    { name: 'FIN both ways: closing', steps: [...handshake, ['out', FIN | ACK, 30], ['back', FIN | ACK, 40]], kind: 'tcpClosing' },
    { name: 'FIN both ways, server first: closing', steps: [...handshake, ['back', FIN | ACK, 30], ['out', FIN | ACK, 40]], kind: 'tcpClosing' },
    { name: 'FIN both ways lingers 10 s: there at 9.999 s', steps: [...handshake, ['out', FIN | ACK, 30], ['back', FIN | ACK, 40], ['out', ACK, 50]], kind: 'tcpClosing', checkAt: 50 + 10 * S - 1 },
    { name: 'FIN both ways lingers 10 s: gone at 10 s', steps: [...handshake, ['out', FIN | ACK, 30], ['back', FIN | ACK, 40], ['out', ACK, 50]], kind: undefined, checkAt: 50 + 10 * S },
    { name: 'RST from the server: closing', steps: [...handshake, ['back', RST, 30]], kind: 'tcpClosing', state: ['synFromInitiator', 'synAckFromResponder', 'established', 'reset', 'replied'] },
    { name: 'RST from the client during the handshake: closing', steps: [['out', SYN, 0], ['back', SYN | ACK, 10], ['out', RST, 20]], kind: 'tcpClosing' },
    { name: 'RST lingers 10 s then is gone', steps: [...handshake, ['out', RST, 30]], kind: undefined, checkAt: 30 + 10 * S },
    { name: 'a RST without an entry creates none', steps: [['out', RST | ACK, 0]], kind: undefined },
    { name: 'a reply without an entry creates none (replies keep no flows)', steps: [['back', ACK, 0]], kind: undefined },
    {
      name: 'restart: an ACK without an entry makes one, embryonic, mid-flow',
      steps: [['out', ACK | PSH, 0]], kind: 'tcpEmbryonic', state: ['midFlow'],
    },
    {
      name: 'restart: the server\'s answer establishes it',
      steps: [['out', ACK | PSH, 0], ['back', ACK, 10]], kind: 'tcpEstablished', state: ['established', 'midFlow', 'replied'],
    },
    { name: 'restart: a mid-flow entry nobody answers is gone after the embryonic timeout', steps: [['out', ACK, 0]], kind: undefined, checkAt: 10 * S },
    { name: 'SYN only: gone after 10 s', steps: [['out', SYN, 0]], kind: undefined, checkAt: 10 * S },
    { name: 'SYN only: there at 9.999 s', steps: [['out', SYN, 0]], kind: 'tcpEmbryonic', checkAt: 10 * S - 1 },
    { name: 'established: there at 299.999 s idle', steps: handshake, kind: 'tcpEstablished', checkAt: 20 + 300 * S - 1 },
    { name: 'established: gone at 300 s idle', steps: handshake, kind: undefined, checkAt: 20 + 300 * S },
    { name: 'a reply refreshes the flow', steps: [...handshake, ['back', ACK, 200 * S]], kind: 'tcpEstablished', checkAt: 200 * S + 300 * S - 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { send, flow } = rig();
      const { out, back } = connection();
      let last = 0;
      for (const [direction, flags, at] of c.steps) {
        send(direction === 'out' ? out(flags) : back(flags), at);
        last = at;
      }
      const seen = flow(out(ACK), c.checkAt ?? last);
      expect(seen?.kind).toBe(c.kind);
      if (c.state) expect(seen?.state).toEqual(c.state);
    });
  }

  it('describes the flow from the initiator\'s side, whoever sent last', () => {
    const { send, flow } = rig();
    const { out, back } = connection('203.0.113.9', 51000, 443);
    send(out(TCP_SYN), 0);
    send(back(TCP_SYN | TCP_ACK), 5);
    expect(flow(back(TCP_ACK), 1000)).toMatchObject({
      protocol: IPPROTO_TCP, initiator: { address: parseAddress('203.0.113.9') >>> 0, port: 51000 },
      responder: { address: parseAddress(VIP) >>> 0, port: 443 }, nextHop: WEB1, idleMs: 995, ageMs: 1000,
    });
  });

  it('a flow keeps its next hop when the route moves; a new flow takes the new one', () => {
    const { send, route } = rig();
    const old = connection('10.0.0.2', 40000);
    send(old.out(TCP_SYN), 0);
    send(old.back(TCP_SYN | TCP_ACK), 1);
    send(old.out(TCP_ACK), 2);
    route.nextHop = WEB2;
    expect(send(old.out(TCP_ACK | TCP_PSH), 3).nextHop).toBe(WEB1);
    expect(send(connection('10.0.0.2', 40001).out(TCP_SYN), 4).nextHop).toBe(WEB2);
  });

  it('a retransmitted SYN stays where the first one went', () => {
    const { send, route, table } = rig();
    const { out } = connection();
    send(out(TCP_SYN), 0);
    route.nextHop = WEB2;
    expect(send(out(TCP_SYN), 1000).nextHop).toBe(WEB1);
    expect(table.counters[FlowCounter.created]).toBe(1);
  });

  it('a new SYN on a closing flow (the client reusing its port) is a new flow on the current route', () => {
    const { send, route, table, flow } = rig();
    const { out, back } = connection();
    send(out(TCP_SYN), 0);
    send(back(TCP_SYN | TCP_ACK), 1);
    send(out(TCP_ACK), 2);
    send(out(TCP_FIN | TCP_ACK), 3);
    send(back(TCP_FIN | TCP_ACK), 4);
    route.nextHop = WEB2;
    expect(send(out(TCP_ACK), 5).nextHop).toBe(WEB1); // the last ACK still reaches the old server
    expect(send(out(TCP_SYN), 6).nextHop).toBe(WEB2);
    expect(flow(out(TCP_ACK), 6)).toMatchObject({ kind: 'tcpEmbryonic', state: ['synFromInitiator'], nextHop: WEB2 });
    expect(table.counters[FlowCounter.created]).toBe(2);
    expect(table.counters[FlowCounter.expired]).toBe(1);
    expect(table.size).toBe(1);
    expect(table.flowsOn(WEB1)).toBe(0);
    expect(table.flowsOn(WEB2)).toBe(1);
  });

  it('restart: flows already on a server stay there through a drain that follows', () => {
    // vipr restarted with web1 as the route's server: flows in progress meet vipr mid-way.
    const { send, route } = rig();
    const flows = Array.from({ length: 20 }, (_, i) => connection('10.0.0.2', 42000 + i));
    for (const f of flows) send(f.out(TCP_ACK | TCP_PSH, 100), 0);
    for (const f of flows) send(f.back(TCP_ACK), 5);
    route.nextHop = WEB2; // web1 drained
    for (const f of flows) expect(send(f.out(TCP_ACK), 10 * S).nextHop).toBe(WEB1);
    expect(send(connection('10.0.0.3', 1).out(TCP_SYN), 10 * S).nextHop).toBe(WEB2);
  });
});

describe('flow table: UDP, ICMP and other protocols', () => {
  const udp = (client: string, port: number, reply = false): Ipv4Spec =>
    reply
      ? { ...macs, src: VIP, dst: client, protocol: IPPROTO_UDP, payload: udpPayload(10, 53, port) }
      : { ...macs, src: client, dst: VIP, protocol: IPPROTO_UDP, payload: udpPayload(10, port, 53) };

  it('a UDP flow: created by the client, replied by the server, kept on its next hop', () => {
    const { send, flow, route } = rig();
    send(udp('10.0.0.2', 5353), 0);
    expect(flow(udp('10.0.0.2', 5353), 0)).toMatchObject({ kind: 'udp', state: [], nextHop: WEB1 });
    send(udp('10.0.0.2', 5353, true), 1);
    expect(flow(udp('10.0.0.2', 5353), 1)?.state).toEqual(['replied']);
    route.nextHop = WEB2;
    expect(send(udp('10.0.0.2', 5353), 2).nextHop).toBe(WEB1);
  });

  it('ping: one flow per identifier, refreshed by the replies', () => {
    const { send, flow, table } = rig();
    const echo = (id: number, reply = false): Ipv4Spec =>
      reply ? { ...macs, src: VIP, dst: '10.0.0.2', payload: icmpEcho(id, 1, 16, 0) } : { ...macs, src: '10.0.0.2', dst: VIP, payload: icmpEcho(id, 1) };
    send(echo(1), 0);
    send(echo(1, true), 20 * S);
    send(echo(2), 0);
    expect(table.count(FlowKind.icmp)).toBe(2);
    expect(flow(echo(1), 20 * S + 30 * S - 1)?.kind).toBe('icmp');
    expect(flow(echo(2), 30 * S)).toBeUndefined();
  });

  it('an ICMP error finds its flow but neither creates nor refreshes one', () => {
    const { send, flow, table } = rig();
    const { out } = connection();
    const quoted = ipv4Frame(connection().back(TCP_ACK, 40)).subarray(14, 14 + 28);
    const error: Ipv4Spec = { ...macs, src: '10.0.0.254', dst: VIP, payload: icmpErrorPayload(3, 4, quoted, 1400) };
    expect(send(error, 0).entry).toBe(FLOW_NOT_CREATED);
    expect(table.size).toBe(0);
    send(out(TCP_SYN), 0);
    const sent = send(error, 9 * S);
    expect(sent.entry).toBeGreaterThanOrEqual(0);
    expect(sent.nextHop).toBe(WEB1);
    expect(flow(out(TCP_ACK), 10 * S)).toBeUndefined(); // the error did not refresh the SYN's 10 s
  });

  const timeouts: { name: string; packet: Ipv4Spec; timeout: number; custom: Partial<FlowTimeouts>; customTimeout: number }[] = [
    { name: 'UDP', packet: udp('10.0.0.2', 1000), timeout: 30, custom: { udp: 5 }, customTimeout: 5 },
    { name: 'ICMP', packet: { ...macs, src: '10.0.0.2', dst: VIP, payload: icmpEcho(7) }, timeout: 30, custom: { icmp: 2 }, customTimeout: 2 },
    { name: 'GRE (other)', packet: { ...macs, src: '10.0.0.2', dst: VIP, protocol: 47, payload: [0, 0, 8, 0] }, timeout: 30, custom: { other: 60 }, customTimeout: 60 },
    { name: 'UDP fragment', packet: { ...udp('10.0.0.2', 1000), fragment: 0x2000 }, timeout: 30, custom: { udp: 1.5 }, customTimeout: 1.5 },
    { name: 'TCP embryonic', packet: connection().out(TCP_SYN), timeout: 10, custom: { tcpEmbryonic: 3 }, customTimeout: 3 },
  ];
  for (const c of timeouts) {
    it(`idle timeout, ${c.name}: ${c.timeout} s by default, configurable`, () => {
      for (const [over, seconds] of [[{}, c.timeout], [c.custom, c.customTimeout]] as const) {
        const { send, flow, table } = rig({ timeouts: over });
        send(c.packet, 1000);
        expect(flow(c.packet, 1000 + seconds * S - 1)).toBeDefined();
        expect(flow(c.packet, 1000 + seconds * S)).toBeUndefined();
        expect(table.sweep(1000 + seconds * S - 1, 100)).toBe(0);
        expect(table.sweep(1000 + seconds * S, 100)).toBe(1);
        expect(table.size).toBe(0);
        expect(table.counters[FlowCounter.expired]).toBe(1);
      }
    });
  }

  it('malformed L4 headers: no flow key, counted, forwarded by the route, no entry', () => {
    const { send, table } = rig();
    const truncated = connection().out(TCP_SYN);
    truncated.payload = (truncated.payload as number[]).slice(0, 12);
    expect(send(truncated, 0)).toEqual({ entry: NO_FLOW, nextHop: WEB1 });
    expect(table.counters[FlowCounter.noFlowKey]).toBe(1);
    expect(table.size).toBe(0);
  });
});

describe('flow table: eviction', () => {
  const flowsUp = (send: ReturnType<typeof rig>['send'], count: number, at: number, client = '10.1.0.1') => {
    const flows = Array.from({ length: count }, (_, i) => connection(client, 10000 + i));
    for (const f of flows) {
      send(f.out(TCP_SYN), at);
      send(f.back(TCP_SYN | TCP_ACK), at);
      send(f.out(TCP_ACK), at);
    }
    return flows;
  };

  it('a full table evicts the oldest embryonic flow, never an established one in use', () => {
    const { send, table, flow } = rig({ capacity: 8 });
    const established = flowsUp(send, 4, 0);
    const syns = Array.from({ length: 4 }, (_, i) => connection('10.2.0.1', 20000 + i));
    syns.forEach((f, i) => send(f.out(TCP_SYN), i));
    const late = connection('10.3.0.1', 1);
    expect(send(late.out(TCP_SYN), 5).entry).toBeGreaterThanOrEqual(0);
    expect(flow(syns[0].out(TCP_ACK), 5)).toBeUndefined();
    for (const f of syns.slice(1)) expect(flow(f.out(TCP_ACK), 5)).toBeDefined();
    for (const f of established) expect(flow(f.out(TCP_ACK), 5)?.kind).toBe('tcpEstablished');
    expect(table.counters[evictedCounter(FlowKind.tcpEmbryonic)]).toBe(1);
  });

  it('a SYN flood from random sources does not push established flows out', () => {
    const { send, table, flow, route } = rig({ capacity: 256 });
    const established = flowsUp(send, 200, 0);
    route.nextHop = WEB2;
    let state = 12345;
    for (let i = 0; i < 20_000; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const flood = connection(formatAddress((0x0b000000 | (state >>> 8)) >>> 0), 1024 + (state & 0xfff));
      send(flood.out(TCP_SYN), 1000 + i);
    }
    for (const f of established) {
      expect(send(f.out(TCP_ACK), 21_000).nextHop).toBe(WEB1);
      expect(flow(f.out(TCP_ACK), 21_000)?.kind).toBe('tcpEstablished');
    }
    expect(table.counters[evictedCounter(FlowKind.tcpEmbryonic)]).toBeGreaterThan(19_000);
    expect(table.counters[evictedCounter(FlowKind.tcpEstablished)]).toBe(0);
    expect(table.counters[FlowCounter.tableFull]).toBe(0);
    expect(table.size).toBe(256);
  });

  it('full of established flows in use: the new flow is forwarded by its route without an entry, counted', () => {
    const { send, table, route } = rig({ capacity: 16 });
    flowsUp(send, 16, 0);
    route.nextHop = WEB2;
    expect(send(connection('10.9.9.9', 1).out(TCP_SYN), 1000)).toEqual({ entry: FLOW_TABLE_FULL, nextHop: WEB2 });
    expect(send(connection('10.9.9.9', 2).out(TCP_SYN), 1000).entry).toBe(FLOW_TABLE_FULL);
    expect(table.counters[FlowCounter.tableFull]).toBe(2);
    expect(table.size).toBe(16);
  });

  it('closing flows go first, then the oldest embryonic one', () => {
    const { send, table, flow } = rig({ capacity: 5 });
    const [established, closing] = flowsUp(send, 2, 0);
    send(closing.out(TCP_RST), 1);
    const syns = [connection('10.5.0.1', 1), connection('10.5.0.1', 2)];
    send(syns[0].out(TCP_SYN), 2);
    send(syns[1].out(TCP_SYN), 3);
    const udpFlow: Ipv4Spec = { ...macs, src: '10.6.0.1', dst: VIP, protocol: IPPROTO_UDP, payload: udpPayload(4, 7, 53) };
    send(udpFlow, 4); // no reply yet: evictable like an embryonic TCP flow, in creation order

    const newcomer = (n: number) => send(connection('10.7.0.1', n).out(TCP_SYN), 5 * S);
    expect(newcomer(1).entry).toBeGreaterThanOrEqual(0);
    expect(flow(closing.out(TCP_ACK), 5 * S)).toBeUndefined();
    expect(table.counters[evictedCounter(FlowKind.tcpClosing)]).toBe(1);
    expect(newcomer(2).entry).toBeGreaterThanOrEqual(0);
    expect(flow(syns[0].out(TCP_ACK), 5 * S)).toBeUndefined();
    expect(flow(syns[1].out(TCP_ACK), 5 * S)).toBeDefined();
    expect(newcomer(3).entry).toBeGreaterThanOrEqual(0);
    expect(newcomer(4).entry).toBeGreaterThanOrEqual(0);
    expect(flow(udpFlow, 5 * S)).toBeUndefined();
    expect(table.counters[evictedCounter(FlowKind.tcpEmbryonic)]).toBe(2);
    expect(table.counters[evictedCounter(FlowKind.udp)]).toBe(1);
    expect(flow(established.out(TCP_ACK), 5 * S)?.kind).toBe('tcpEstablished');
  });

  it('with nothing embryonic, an idle flow goes (evictIdleSeconds), found past busy ones; busy flows stay', () => {
    const { send, table, flow } = rig({ capacity: 4, evictIdleSeconds: 30 });
    const [busy, idle] = flowsUp(send, 2, 0);
    const udpFlow: Ipv4Spec = { ...macs, src: '10.6.0.1', dst: VIP, protocol: IPPROTO_UDP, payload: udpPayload(4, 7, 53) };
    send(udpFlow, 1);
    send({ ...udpFlow, src: VIP, dst: '10.6.0.1', payload: udpPayload(4, 53, 7) }, 1);
    const [busy2] = flowsUp(send, 1, 2, '10.1.0.2');
    send(busy.out(TCP_ACK), 29 * S);
    send(busy2.back(TCP_ACK), 29 * S);
    send(udpFlow, 29 * S);

    expect(send(connection('10.7.0.1', 1).out(TCP_SYN), 31 * S).entry).toBeGreaterThanOrEqual(0);
    expect(flow(idle.out(TCP_ACK), 31 * S)).toBeUndefined();
    expect(table.counters[evictedCounter(FlowKind.tcpEstablished)]).toBe(1);
    for (const f of [busy, busy2]) expect(flow(f.out(TCP_ACK), 31 * S)?.kind).toBe('tcpEstablished');
    expect(flow(udpFlow, 31 * S)?.kind).toBe('udp');
  });

  it('the sweep puts idle flows first in line, so eviction finds them at once', () => {
    const { send, table, flow } = rig({ capacity: 40, evictIdleSeconds: 30 });
    const flows = flowsUp(send, 40, 0);
    for (const f of flows.slice(0, 39)) send(f.out(TCP_ACK), 29 * S);
    table.sweep(31 * S, 40);
    // The one idle flow is the last of 40: without the sweep, EVICT_SCAN looks would not reach it.
    expect(send(connection('10.7.0.1', 1).out(TCP_SYN), 31 * S).entry).toBeGreaterThanOrEqual(0);
    expect(flow(flows[39].out(TCP_ACK), 31 * S)).toBeUndefined();
  });

  it('an expired flow at the head of the active list goes before an embryonic one', () => {
    const { send, table, flow } = rig({ capacity: 2 });
    const udpFlow: Ipv4Spec = { ...macs, src: '10.6.0.1', dst: VIP, protocol: IPPROTO_UDP, payload: udpPayload(4, 7, 53) };
    send(udpFlow, 0);
    send({ ...udpFlow, src: VIP, dst: '10.6.0.1', payload: udpPayload(4, 53, 7) }, 0);
    const syn = connection('10.5.0.1', 1);
    send(syn.out(TCP_SYN), 25 * S);
    send(connection('10.5.0.1', 2).out(TCP_SYN), 31 * S);
    expect(flow(syn.out(TCP_SYN), 31 * S)).toBeDefined();
    expect(table.counters[evictedCounter(FlowKind.udp)]).toBe(1);
  });

  it(`bounded work: a full table of busy flows looks at ${EVICT_SCAN} of them per new flow`, () => {
    const { send, table } = rig({ capacity: 64 });
    flowsUp(send, 64, 0);
    // Each refused newcomer sends EVICT_SCAN busy flows to the back of the line and stops.
    for (let i = 0; i < 64 / EVICT_SCAN; i++) expect(send(connection('10.8.0.1', i).out(TCP_SYN), 10).entry).toBe(FLOW_TABLE_FULL);
    expect(table.size).toBe(64);
  });
});

describe('flow table: expiry sweep', () => {
  it('sweeps K entries per call, a whole pass per SWEEP_PASS_MS with sweepDue', () => {
    const { send, table } = rig({ capacity: 1000 });
    for (let i = 0; i < 1000; i++) send(connection('10.1.0.1', 10000 + i).out(TCP_SYN), 0);
    expect(table.sweep(10 * S, 10)).toBe(10);
    expect(table.size).toBe(990);
    table.sweepDue(10 * S); // sets the pace's starting point: everything left goes
    expect(table.size).toBe(0);

    for (let i = 0; i < 1000; i++) send(connection('10.1.0.1', 10000 + i).out(TCP_SYN), 20 * S);
    expect(table.sweepDue(30 * S - SWEEP_PASS_MS / 10)).toBe(0); // nothing is due yet
    expect(table.sweepDue(30 * S)).toBe(100); // a tenth of the pass, a tenth of the entries
    expect(table.sweepDue(30 * S + (SWEEP_PASS_MS * 9) / 10)).toBe(900);
    expect(table.counters[FlowCounter.expired]).toBe(2000);
  });

  it('live flows are never swept', () => {
    const { send, table } = rig({ capacity: 100 });
    for (let i = 0; i < 100; i++) send(connection('10.1.0.1', 10000 + i).out(TCP_SYN), 0);
    expect(table.sweep(9 * S, 1000)).toBe(0);
    expect(table.size).toBe(100);
  });
});

describe('flow table: index', () => {
  // The caller supplies the hash, so a bad one can force long probe runs,
  // wrap-around at the end of the index and every backward-shift case.
  const modelTest = (hashOf: (key: number) => number, capacity: number) => {
    const ops = fc.array(
      fc.oneof(
        fc.record({ op: fc.constant('track' as const), key: fc.integer({ min: 0, max: capacity - 1 }), nextHop: fc.integer({ min: 1, max: 3 }) }),
        fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 20_000 }) }),
        fc.record({ op: fc.constant('sweep' as const), entries: fc.integer({ min: 1, max: 40 }) }),
        fc.record({ op: fc.constant('remove' as const), nextHop: fc.integer({ min: 1, max: 3 }) }),
        fc.record({ op: fc.constant('move' as const), from: fc.integer({ min: 1, max: 3 }), to: fc.integer({ min: 1, max: 3 }) }),
      ),
      { maxLength: 300 },
    );
    fc.assert(
      fc.property(ops, (list) => {
        const table = new FlowTable(config({ capacity, timeouts: { udp: 10 } }));
        const keys = new Uint32Array(FLOW_KEY_WORDS);
        const setKey = (key: number) => keys.set([0x0a000000 + key, 0xc0a80121, (key << 16) | 53, IPPROTO_UDP]);
        const model = new Map<number, { nextHop: number; lastSeen: number }>();
        let now = 0;
        for (const step of list) {
          if (step.op === 'track') {
            setKey(step.key);
            const entry = table.track(keys, 0, hashOf(step.key), 0, step.nextHop, now);
            const known = model.get(step.key);
            if (known && now - known.lastSeen < 10_000) known.lastSeen = now;
            else model.set(step.key, { nextHop: step.nextHop, lastSeen: now });
            expect(table.nextHopOf(entry)).toBe(model.get(step.key)!.nextHop);
          } else if (step.op === 'advance') {
            now += step.ms;
          } else if (step.op === 'sweep') {
            table.sweep(now, step.entries);
          } else if (step.op === 'remove') {
            table.removeFlows(step.nextHop);
            for (const [key, flow] of model) if (flow.nextHop === step.nextHop) model.delete(key);
          } else {
            table.moveFlows(step.from, step.to);
            for (const flow of model.values()) if (flow.nextHop === step.from) flow.nextHop = step.to;
          }
          for (const [key, flow] of model) {
            if (now - flow.lastSeen >= 10_000) continue; // expired: swept or not, lookup must not find it
            setKey(key);
            const entry = table.lookup(keys, 0, hashOf(key), 0, now);
            expect(entry).toBeGreaterThanOrEqual(0);
            expect(table.nextHopOf(entry)).toBe(flow.nextHop);
          }
          for (let key = 0; key < capacity; key++) {
            const flow = model.get(key);
            if (flow && now - flow.lastSeen < 10_000) continue;
            setKey(key);
            expect(table.lookup(keys, 0, hashOf(key), 0, now)).toBe(NO_FLOW);
          }
          let live = 0;
          for (const flow of model.values()) if (now - flow.lastSeen < 10_000) live++;
          expect(table.size).toBeGreaterThanOrEqual(live);
          expect(table.size).toBeLessThanOrEqual(capacity);
          const byNextHop = [1, 2, 3].map((nh) => table.flowsOn(nh));
          expect(byNextHop.reduce((x, y) => x + y, 0)).toBe(table.size);
          expect(table.indexStats().used).toBe(table.size);
        }
      }),
      { numRuns: 150 },
    );
  };

  it('agrees with a Map: random hashes', () => modelTest((key) => flowHash(Uint32Array.of(key, 1, 2, 3), 0, SEED), 40));
  it('agrees with a Map: all keys in 4 home slots near the end of the index (long runs, wrap-around)', () =>
    modelTest((key) => (0xfffffffc + (key % 4)) >>> 0, 40));
  it('agrees with a Map: one home slot for every key', () => modelTest(() => 7, 24));

  it('no tombstones: 300,000 flows come and go through a 1,024-flow table', () => {
    const table = new FlowTable(config({ capacity: 1024, timeouts: { udp: 1 } }));
    const keys = new Uint32Array(FLOW_KEY_WORDS);
    let now = 0;
    let refused = 0;
    for (let i = 0; i < 300_000; i++) {
      keys.set([i, 0xc0a80121, 53, IPPROTO_UDP]);
      if (table.track(keys, 0, flowHash(keys, 0, SEED), 0, WEB1, now) < 0) refused++;
      if (i % 512 === 511) {
        now += 1000;
        table.sweep(now, 1024);
      }
    }
    expect(refused).toBe(0);
    const stats = table.indexStats();
    expect(stats.slots).toBe(2048);
    expect(stats.used).toBe(table.size);
    expect(stats.longestRun).toBeLessThan(40);
  });
});

describe('flow table: memory and sharing', () => {
  it('at most 100 bytes per flow at the default capacity, index included', () => {
    const bytes = FlowTable.byteLength(FLOW_TABLE_DEFAULTS.capacity);
    expect(bytes / FLOW_TABLE_DEFAULTS.capacity).toBeLessThanOrEqual(100);
    expect(bytes / FLOW_TABLE_DEFAULTS.capacity).toBeCloseTo(60.25, 1);
    const table = new FlowTable(config());
    expect(table.buffer.byteLength).toBe(bytes);
  });

  it('lives in a SharedArrayBuffer that a second view (another thread) reads', () => {
    const shared = new SharedArrayBuffer(FlowTable.byteLength(64));
    const owner = new FlowTable(config({ capacity: 64 }), shared);
    const reader = new FlowTable(config({ capacity: 64 }), shared);
    const { out } = connection();
    const keys = new Uint32Array(FLOW_KEY_WORDS);
    const frame = ipv4Frame(out(TCP_SYN));
    const info = extractFlowKey(frame, 0, frame.length, keys, 0);
    const entry = owner.track(keys, 0, flowHash(keys, 0, SEED), info, WEB1, 0);
    expect(reader.size).toBe(1);
    expect(reader.flowsOn(WEB1)).toBe(1);
    expect(reader.counters[FlowCounter.created]).toBe(1);
    expect(reader.describe(entry, 5)).toMatchObject({ kind: 'tcpEmbryonic', nextHop: WEB1, idleMs: 5 });
    expect(reader.lookup(keys, 0, flowHash(keys, 0, SEED), info, 1)).toBe(entry);
  });

  it('takes a buffer factory, refuses a buffer too small or holding another capacity', () => {
    let asked = 0;
    const table = new FlowTable(config({ capacity: 10 }), (bytes) => {
      asked = bytes;
      return new SharedArrayBuffer(bytes);
    });
    expect(asked).toBe(FlowTable.byteLength(10));
    expect(table.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(() => new FlowTable(config({ capacity: 10 }), new ArrayBuffer(100))).toThrow(/too small/);
    expect(() => new FlowTable(config({ capacity: 9 }), table.buffer)).toThrow(/holds a table of 10 flows, not 9/);
  });
});

describe('flow table: control plane', () => {
  it('counts, moves and removes the flows of a next hop; summary and entries', () => {
    const { send, table, route } = rig({ capacity: 100 });
    for (let i = 0; i < 30; i++) send(connection('10.1.0.1', 10000 + i).out(TCP_SYN), 0);
    route.nextHop = WEB2;
    for (let i = 0; i < 20; i++) send(connection('10.2.0.1', 10000 + i).out(TCP_SYN), 0);
    expect([table.flowsOn(WEB1), table.flowsOn(WEB2)]).toEqual([30, 20]);
    expect(table.moveFlows(WEB1, 9, 0, 10)).toBe(10); // a slice of the entries
    expect([table.flowsOn(WEB1), table.flowsOn(9)]).toEqual([20, 10]);
    expect(table.removeFlows(WEB2)).toBe(20);
    expect(table.counters[FlowCounter.removed]).toBe(20);
    const summary = table.summary();
    expect(summary).toMatchObject({ capacity: 100, size: 30, byKind: { tcpEmbryonic: 30, tcpEstablished: 0 } });
    expect([...summary.byNextHop]).toEqual([[WEB1, 20], [9, 10]]);
    expect(Object.keys(summary.counters)).toEqual([...FLOW_COUNTER_NAMES]);
    expect([...table.entries()].length).toBe(30);
    // The removed flows' packets are placed afresh.
    expect(send(connection('10.2.0.1', 10000).out(TCP_ACK), 1).nextHop).toBe(WEB2);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.flowsOn(WEB1)).toBe(0);
    expect(send(connection('10.1.0.1', 10000).out(TCP_ACK), 2).nextHop).toBe(WEB2);
  });

  it('names the field and the accepted range of a bad setting', () => {
    expect(flowTableConfigProblems(config())).toEqual([]);
    expect(flowTableConfigProblems(config({ capacity: 0, timeouts: { udp: -1 }, evictIdleSeconds: Number.NaN }))).toEqual([
      { field: 'flows.capacity', message: 'expected a whole number from 1 to 16777216, got 0' },
      { field: 'flows.timeouts.udp', message: 'expected seconds from 0.001 to 2147483 (24 days), got -1' },
      { field: 'flows.evictIdleSeconds', message: 'expected seconds from 0.001 to 2147483 (24 days), got NaN' },
    ]);
    expect(() => new FlowTable(config({ capacity: 1.5 }))).toThrow('flows.capacity: expected a whole number from 1 to 16777216, got 1.5');
  });

  it('refuses a next hop beyond 16 bits', () => {
    const { table, keys } = rig();
    keys.set([1, 2, 3, IPPROTO_UDP]);
    expect(() => table.insert(keys, 0, 1, 0, 0x10000, 0)).toThrow(/not a 16-bit index/);
  });
});
