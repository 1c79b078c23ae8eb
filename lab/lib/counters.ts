// Counters that say where frames went in the lab: the kernel's per-link
// packet counts in each namespace, and vipr's own (`vipr ctl --json stats`).
// kernel up0 rx - vipr up0 rx is what arrived while vipr's port buffer was
// full (vipr not running): frames vipr never read.

import { netnsOf, viprCtlJson, type LabNode, type TrialLab } from './lab.js';
import { run } from './process.js';

export interface LinkCount {
  rx: number;
  tx: number;
  rxDropped: number;
  txDropped: number;
}

/** Every link's counters in a lab node (`ip -n NS -s -j link show`), and when they were read (performance.now() midpoint). */
export async function readLinks(prefix: string, node: LabNode): Promise<{ at: number; links: Record<string, LinkCount> }> {
  const r = await run('ip', ['-n', netnsOf(prefix, node), '-s', '-j', 'link', 'show'], 10_000);
  if (r.code !== 0) throw new Error(`ip -n ${netnsOf(prefix, node)} -s link show: ${r.stderr.trim()}`);
  const links: Record<string, LinkCount> = {};
  for (const l of JSON.parse(r.stdout) as Array<{ ifname: string; stats64?: { rx: { packets: number; dropped: number }; tx: { packets: number; dropped: number } } }>) {
    if (l.stats64) links[l.ifname] = { rx: l.stats64.rx.packets, tx: l.stats64.tx.packets, rxDropped: l.stats64.rx.dropped, txDropped: l.stats64.tx.dropped };
  }
  return { at: r.mid, links };
}

/** One link's counters, and when they were read. */
export async function readLink(prefix: string, node: LabNode, ifname: string): Promise<{ at: number; value: LinkCount }> {
  const { at, links } = await readLinks(prefix, node);
  const value = links[ifname];
  if (!value) throw new Error(`no link ${ifname} in ${netnsOf(prefix, node)}`);
  return { at, value };
}

/** Counters keyed `node.ifname`, of the links a measurement watches. */
export type LinkCounters = Record<string, LinkCount>;

/** The stream's path: client eth0, router up0 and lan0, web1 and web2 eth0. */
export const STREAM_PATH: ReadonlyArray<[LabNode, string[]]> = [
  ['client', ['eth0']],
  ['router', ['up0', 'lan0']],
  ['web1', ['eth0']],
  ['web2', ['eth0']],
];

export async function linkCounters(prefix: string, path: ReadonlyArray<[LabNode, string[]]> = STREAM_PATH): Promise<LinkCounters> {
  const out: LinkCounters = {};
  await Promise.all(
    path.map(async ([node, ifs]) => {
      const { links } = await readLinks(prefix, node);
      for (const name of ifs) if (links[name]) out[`${node}.${name}`] = links[name];
    }),
  );
  return out;
}

export function linkDelta(a: LinkCount, b: LinkCount): LinkCount {
  return { rx: b.rx - a.rx, tx: b.tx - a.tx, rxDropped: b.rxDropped - a.rxDropped, txDropped: b.txDropped - a.txDropped };
}

export function diffLinks(a: LinkCounters, b: LinkCounters): LinkCounters {
  const d: LinkCounters = {};
  for (const k of Object.keys(b)) if (a[k]) d[k] = linkDelta(a[k], b[k]);
  return d;
}

/** vipr's own counters: frames read on up0, sent and forwarded on lan0, drops by reason, batches run. */
export interface ViprStats {
  up0Rx: number;
  lan0Tx: number;
  forwarded: number;
  drops: Record<string, number>;
  batches: number;
}

export async function viprStats(lab: TrialLab, socket: string): Promise<ViprStats | undefined> {
  const s = await viprCtlJson<{ batches?: number; drops: Record<string, number>; ports: Record<string, { rxPackets: number; txPackets: number; forwardedPackets: number }> }>(lab, socket, ['stats']);
  if (!s?.ports) return undefined;
  return { up0Rx: s.ports.up0?.rxPackets ?? 0, lan0Tx: s.ports.lan0?.txPackets ?? 0, forwarded: s.ports.lan0?.forwardedPackets ?? 0, drops: s.drops, batches: s.batches ?? 0 };
}

/** The drop counters that changed between two reads. */
export function dropsDelta(a?: Record<string, number>, b?: Record<string, number>): Record<string, number> {
  if (!a || !b) return {};
  return Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)]).filter(([, v]) => v !== 0));
}
