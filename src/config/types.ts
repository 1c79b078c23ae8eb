// The typed configuration the daemon runs from: what `loadConfig` returns.
// Addresses and prefixes are already numbers (see src/util/ipv4.ts), server
// names in routes are already resolved, every default is filled in.

import type { Prefix } from '../util/ipv4.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What to do when the kernel would also forward the traffic vipr forwards. */
export const KERNEL_FORWARDING_POLICIES = ['refuse', 'disable'] as const;
export type KernelForwardingPolicy = (typeof KERNEL_FORWARDING_POLICIES)[number];

/** Whether vipr turns GRO/LRO off on its data-plane ports at start. */
export const OFFLOAD_POLICIES = ['disable', 'keep'] as const;
export type OffloadPolicy = (typeof OFFLOAD_POLICIES)[number];

/** Whether the kernel's own copy of transit frames on vipr's ports is dropped before its IP input. */
export const KERNEL_TRANSIT_POLICIES = ['drop', 'keep'] as const;
export type KernelTransitPolicy = (typeof KERNEL_TRANSIT_POLICIES)[number];

/**
 * ring: the native AF_PACKET ring backend (default); pcap: libpcap through
 * `cap`; xdp: AF_XDP with vipr's own XDP program; auto: xdp where it works,
 * else ring (the choice and why are logged at start).
 */
export const IO_BACKENDS = ['ring', 'pcap', 'xdp', 'auto'] as const;
export type IoBackend = (typeof IO_BACKENDS)[number];
/** The backend a daemon runs on once `auto` has been decided. */
export type PortBackend = Exclude<IoBackend, 'auto'>;

export const ROUTE_TYPES = ['unicast', 'unreachable', 'blackhole'] as const;
export type RouteType = (typeof ROUTE_TYPES)[number];

export interface InterfaceConfig {
  name: string;
  /** Override; when absent the daemon reads the MTU from the system. */
  mtu?: number;
}

export interface CheckTiming {
  intervalMs?: number;
  timeoutMs?: number;
  rise?: number;
  fall?: number;
}

export type CheckConfig =
  | ({ type: 'arp' } & CheckTiming)
  | ({ type: 'icmp' } & CheckTiming)
  | ({ type: 'tcp'; port: number } & CheckTiming)
  | ({ type: 'http'; port: number; path: string; host?: string; status: number; body?: string } & CheckTiming);

export interface ServerConfig {
  name: string;
  address: number;
  /** Health checks; a server without checks is always considered up (unless drained). */
  checks: CheckConfig[];
}

export interface HealthConfig {
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  holdDownMs: number;
  failback: 'auto' | 'manual';
  notify?: string;
  notifyTimeoutMs: number;
}

export interface RouteVia {
  /** Set when the route named a server; `address` is then that server's address. */
  server?: string;
  address: number;
}

export interface RouteConfig {
  prefix: Prefix;
  type: RouteType;
  /** Next hops in order of preference (the first healthy one carries the route); empty unless `type` is 'unicast'. */
  via: RouteVia[];
  /** 1-based line of the file the route came from. */
  sourceLine: number;
  /** The route file it came from (routeFiles); absent for routes in the YAML config. */
  sourceFile?: string;
}

export interface NeighborConfig {
  reachableMs: number;
  retransmitMs: number;
  probes: number;
  queueLength: number;
  maxEntries: number;
  /** ARP requests each port may send a second (a token bucket), after a burst of `requestBurst`; gateways are exempt. */
  requestsPerSecond: number;
  requestBurst: number;
}

export interface IcmpConfig {
  /** The global bucket: all ICMP errors together. */
  ratePerSecond: number;
  burst: number;
  /** A bucket per host the errors go to (Linux's icmp_ratelimit), in a table of at most `maxDestinations` hosts. */
  perDestination: { ratePerSecond: number; burst: number; maxDestinations: number };
}

export interface DataplaneConfig {
  batchSize: number;
  /** Data-plane worker threads; 0: the data plane runs on the main thread. */
  workers: number;
  /** The CPU(s) the data-plane thread(s) are pinned to, one per worker in order; unset: not pinned. */
  cpu?: number | number[];
}

export interface ControlConfig {
  /** Unix socket path of the control socket. */
  socket: string;
  /** File mode, octal text ("0660"). */
  mode: string;
  owner?: string | number;
  group?: string | number;
}

export interface StateConfig {
  /** Where runtime changes are kept across restarts. */
  file: string;
}

export interface MetricsConfig {
  /** Where the Prometheus endpoint listens: an IPv4 address (loopback unless the operator says otherwise) and a TCP port. */
  listen: { host: string; port: number };
}

export interface RingConfig {
  /** v2: frames handed over one by one (lowest latency); v3: in blocks (up to 1 ms more per hop at low rates). */
  rxRing: 'v2' | 'v3';
  /** sendmmsg: one system call per burst; ring: a memory-mapped TX ring. */
  tx: 'sendmmsg' | 'ring';
  /** Skip the kernel's queueing discipline on transmit (PACKET_QDISC_BYPASS). */
  qdiscBypass: boolean;
  /** Drain the ports on every event-loop turn instead of waiting for readiness: one core at 100%. */
  busyPoll: boolean;
}

export interface XdpConfig {
  /** auto: zero-copy where the driver offers it, else copy; copy or zerocopy: that or refuse to start. */
  mode: 'auto' | 'copy' | 'zerocopy';
  /** auto: native XDP (in the driver) where offered, else generic; native or generic: that or refuse to start. */
  attach: 'auto' | 'native' | 'generic';
  /** UMEM frames per receive queue (2 KB each), a power of two: half receive, half transmit. */
  frames: number;
  /** Drain the sockets on every event-loop turn instead of waiting for readiness: one core at 100%. */
  busyPoll: boolean;
}

/** The liveness link (src/engines/liveness.ts): the interface keepalived and BIRD track. */
export interface LivenessConfig {
  interface: string;
}

/** BIRD announces the prefixes this router can serve (src/engines/bird.ts). */
export interface BirdConfig {
  /** BIRD's control socket. */
  socket: string;
  /** The file vipr writes (one static route per prefix it can serve) and the `protocol static` includes. */
  routesFile: string;
  /** That `protocol static`'s name. */
  protocol: string;
  /** Prefixes to announce while they have a healthy next hop; unset: every config route whose next hops are all servers. */
  announce?: Prefix[];
  /** The birdc command. */
  birdc: string;
  /** Planned stop: after withdrawing, wait at most this long for the upstream to stop sending. */
  shutdownGraceMs: number;
  /** ... and stop waiting once nothing arrived for the announced prefixes for this long (0: always the whole grace). */
  shutdownQuietMs: number;
  /** Start (with a warning) when BIRD cannot be reached, instead of refusing. */
  optional: boolean;
}

/** keepalived holds the servers' gateway address by VRRP and tracks the liveness link. */
export interface KeepalivedConfig {
  /** keepalived's pid file: vipr checks at start that it runs, in this network namespace. */
  pidFile: string;
  /** Planned stop: how long vipr keeps forwarding after the liveness link went down, while the address moves. */
  releaseMs: number;
  optional: boolean;
}

export interface Config {
  log: { level: LogLevel };
  kernelForwarding: KernelForwardingPolicy;
  offloads: OffloadPolicy;
  kernelTransit: KernelTransitPolicy;
  /** Started as root: the user vipr runs as, by name or uid (unset: root, with its capabilities cut to two). */
  user?: string | number;
  io: IoBackend;
  ring: RingConfig;
  xdp: XdpConfig;
  interfaces: InterfaceConfig[];
  /** In file order. */
  servers: ServerConfig[];
  /** In file order: the YAML file's, then each route file's. */
  routes: RouteConfig[];
  /** Route files (one route per line), absolute; their routes are in `routes` once loadConfig has read them. */
  routeFiles: string[];
  neighbors: NeighborConfig;
  icmp: IcmpConfig;
  dataplane: DataplaneConfig;
  control: ControlConfig;
  health: HealthConfig;
  state: StateConfig;
  /** Prometheus metrics over HTTP; absent = off. */
  metrics?: MetricsConfig;
  /** A router of a pair (README "Two routers"); absent = a single router. Set whenever bird or keepalived is. */
  liveness?: LivenessConfig;
  bird?: BirdConfig;
  keepalived?: KeepalivedConfig;
}
