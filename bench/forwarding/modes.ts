// The routers the forwarding bench measures, each in a fresh lab, and where
// everything sits: the generator on CPU 0, the router on CPU 1.

export const VIP = '192.168.1.33';
export const UDP_DPORT = 9;
export const UDP_SPORT = 4000;
export const UP0_MAC = '02:00:00:00:00:01';
export const CLIENT_MAC = '02:00:00:00:00:02';
export const WEB1_MAC = '02:00:00:01:00:02';
export const CLIENT_IP = '10.0.0.2';
export const GEN_CPU = 0;
export const ROUTER_CPU = 1;

/** Frame sizes: the bench's name for them, and the bytes handed to the device (no FCS). */
export const SIZES = [
  { name: 64, frame: 60 },
  { name: 1500, frame: 1514 },
] as const;
export type SizeName = (typeof SIZES)[number]['name'];
export const frameOf = (size: SizeName): number => SIZES.find((s) => s.name === size)!.frame;

export const MODES = [
  'kernel', 'kernel-rps', 'cfwd', 'ring', 'ring-busy', 'pcap', 'ring-transit', 'ring-nohc', 'ring-nohc-busy', 'cfwd-busy',
  'cfwd-xdp', 'xdp', 'ring-inline', 'ring-w2',
] as const;
export type Mode = (typeof MODES)[number];

/** run unless --modes says otherwise */
export const DEFAULT_MODES: readonly Mode[] = ['kernel', 'kernel-rps', 'cfwd', 'cfwd-xdp', 'ring', 'xdp', 'ring-inline', 'ring-w2', 'ring-busy', 'pcap', 'ring-transit'];

export interface ModeSpec {
  label: string;
  /** a letter for the lab's prefix */
  letter: string;
  router: 'kernel' | 'cfwd' | 'vipr';
  /** kernel: RPS on up0 and lan0 to ROUTER_CPU */
  rps?: boolean;
  /** cfwd: spin instead of poll() */
  busyPoll?: boolean;
  /** cfwd: on AF_XDP (bench/lab/cfwd-xdp.c, vipr's own XDP program) instead of AF_PACKET rings */
  xdp?: boolean;
  /** vipr: changes to the lab's config (workers: dataplane.workers; 2 pins the second worker to the generator's CPU) */
  vipr?: { io?: 'pcap' | 'xdp'; noChecks?: boolean; busyPoll?: boolean; flipTransit?: boolean; workers?: number };
  /** the full set (flat out, zero-loss search, latency, profile) for the main ones; the variants measure what they are about */
  parts: { search: boolean; latency: boolean; profile: boolean };
}

export const SPECS: Record<Mode, ModeSpec> = {
  kernel: { label: 'Linux kernel (its work on the generator\'s CPU)', letter: 'k', router: 'kernel', parts: { search: true, latency: true, profile: false } },
  'kernel-rps': { label: 'Linux kernel, RPS to CPU 1', letter: 's', router: 'kernel', rps: true, parts: { search: true, latency: true, profile: false } },
  cfwd: { label: 'C forwarder, AF_PACKET (bench/lab/cfwd.c)', letter: 'c', router: 'cfwd', parts: { search: true, latency: true, profile: false } },
  'cfwd-xdp': { label: 'C forwarder, AF_XDP (bench/lab/cfwd-xdp.c)', letter: 'x', router: 'cfwd', xdp: true, parts: { search: true, latency: true, profile: false } },
  xdp: { label: 'vipr, io: xdp (AF_XDP, copy mode on veth)', letter: 'a', router: 'vipr', vipr: { io: 'xdp' }, parts: { search: true, latency: true, profile: true } },
  'ring-inline': { label: 'vipr ring, data plane on the main thread (dataplane.workers: 0)', letter: 'i', router: 'vipr', vipr: { workers: 0 }, parts: { search: true, latency: true, profile: false } },
  'ring-w2': { label: 'vipr ring, two data-plane workers (CPU 1 and the generator\'s CPU 0)', letter: 'w', router: 'vipr', vipr: { workers: 2 }, parts: { search: true, latency: true, profile: false } },
  'cfwd-busy': { label: 'C forwarder, AF_PACKET, busy poll', letter: 'd', router: 'cfwd', busyPoll: true, parts: { search: false, latency: true, profile: false } },
  ring: { label: 'vipr, io: ring (default config)', letter: 'r', router: 'vipr', vipr: {}, parts: { search: true, latency: true, profile: true } },
  'ring-busy': { label: 'vipr ring, ring.busyPoll: true', letter: 'y', router: 'vipr', vipr: { busyPoll: true }, parts: { search: false, latency: true, profile: false } },
  pcap: { label: 'vipr, io: pcap', letter: 'p', router: 'vipr', vipr: { io: 'pcap' }, parts: { search: true, latency: true, profile: true } },
  'ring-transit': { label: 'vipr ring, kernel transit copy the other way', letter: 't', router: 'vipr', vipr: { flipTransit: true }, parts: { search: false, latency: false, profile: false } },
  'ring-nohc': { label: 'vipr ring, no health checks', letter: 'n', router: 'vipr', vipr: { noChecks: true }, parts: { search: false, latency: true, profile: false } },
  'ring-nohc-busy': { label: 'vipr ring, no health checks, busyPoll', letter: 'b', router: 'vipr', vipr: { noChecks: true, busyPoll: true }, parts: { search: false, latency: true, profile: false } },
};
