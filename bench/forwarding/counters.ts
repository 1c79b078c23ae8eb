// The forwarding bench's counters: links along the path, the sinks' nft
// counters, the router's kernel IP counters and vipr's own. Inside a measured
// window only cheap commands run (ip, nft: no node start-up); everything else
// is read before and after the trial.

import { readLink, viprStats, type LinkCount, type ViprStats } from '../../lab/lib/counters.js';
import { labSocketPath, type LabNode } from '../../lab/lib/lab.js';
import { run } from '../../lab/lib/process.js';
import type { FwLab } from './routers.js';
import { SPECS } from './modes.js';

export interface Reading<T> {
  value: T;
  /** performance.now() midpoint of the read */
  t: number;
}

async function link(lab: FwLab, node: LabNode, ifname: string): Promise<Reading<LinkCount>> {
  const { at, value } = await readLink(lab.prefix, node, ifname);
  return { value, t: at };
}

async function nftCounter(lab: FwLab, node: LabNode): Promise<Reading<number>> {
  const r = await run('ip', ['netns', 'exec', lab.ns(node), 'nft', 'list', 'table', 'netdev', 'vbench'], 10_000);
  const m = /counter packets (\d+) bytes (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !m) throw new Error(`nft counter in ${lab.ns(node)}: ${r.stderr.trim() || r.stdout.trim()}`);
  return { value: Number(m[1]), t: r.mid };
}

async function snmp(lab: FwLab): Promise<Record<string, number>> {
  const r = await lab.exec('router', ['cat', '/proc/net/snmp'], { timeoutMs: 10_000 });
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  if (lines.length < 2) return {};
  const keys = lines[0].split(/\s+/).slice(1);
  const vals = lines[1].split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]]));
}

/** The few counters read at the edges of a measured window. */
export interface Inner {
  client: Reading<LinkCount>;
  up0: Reading<LinkCount>;
  lan0: Reading<LinkCount>;
  web1: Reading<LinkCount>;
  /** frames counted by the sinks of web1 and web2 together (the VIP's route fails over from web1 to web2) */
  delivered: Reading<number>;
  /** of those, at web2 */
  deliveredWeb2: number;
  routerDrop?: Reading<number>;
}

export async function readInner(lab: FwLab): Promise<Inner> {
  const [client, up0, lan0, web1, d1, d2, routerDrop] = await Promise.all([
    link(lab, 'client', 'eth0'),
    link(lab, 'router', 'up0'),
    link(lab, 'router', 'lan0'),
    link(lab, 'web1', 'eth0'),
    nftCounter(lab, 'web1'),
    nftCounter(lab, 'web2'),
    lab.benchTransitDrop ? nftCounter(lab, 'router') : Promise.resolve(undefined),
  ]);
  const delivered = { value: d1.value + d2.value, t: (d1.t + d2.t) / 2 };
  return { client, up0, lan0, web1, delivered, deliveredWeb2: d2.value, routerDrop };
}

/** Everything, before and after a trial (outside the measured window). */
export interface Outer extends Inner {
  snmp: Record<string, number>;
  vipr?: ViprStats;
}

export async function readOuter(lab: FwLab): Promise<Outer> {
  const [inner, ip, vipr] = await Promise.all([
    readInner(lab),
    snmp(lab),
    SPECS[lab.mode].router === 'vipr' ? viprStats(lab, labSocketPath(lab.prefix)) : Promise.resolve(undefined),
  ]);
  return { ...inner, snmp: ip, vipr };
}

export function snmpDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const keys = ['InReceives', 'InHdrErrors', 'InAddrErrors', 'ForwDatagrams', 'InDiscards', 'InDelivers', 'OutRequests', 'OutDiscards', 'OutNoRoutes'];
  return Object.fromEntries(keys.filter((k) => k in b).map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));
}
