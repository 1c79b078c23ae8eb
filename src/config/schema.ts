// The config file's schema: shape, defaults, per-field checks, and the
// cross-field checks (names resolve, nothing is listed twice).
//
// Every message here is written for the operator who will read it after
// `FILE:LINE:COL: FIELD: ` (see load.ts): short, one line, saying what was
// found and what would be accepted.
//
// An issue about a clash with an earlier field (a prefix routed twice) carries
// `params: { earlier: path }`; the loader appends "at line N" for that field,
// since only the YAML document knows lines.

import { z } from 'zod';
import { formatAddress, formatPrefix, Ipv4Error, parseAddress, parsePrefix, type Prefix } from '../util/ipv4.js';
import { nextHopProblem, routePrefixProblem } from '../util/martians.js';
import { didYouMean, listSome } from './suggest.js';
import {
  IO_BACKENDS,
  KERNEL_FORWARDING_POLICIES,
  KERNEL_TRANSIT_POLICIES,
  LOG_LEVELS,
  OFFLOAD_POLICIES,
  ROUTE_TYPES,
  type Config,
  type RouteConfig,
  type RouteType,
} from './types.js';

export interface ConfigIssueParams {
  earlier?: PropertyKey[];
}

/** What the schema produces; the loader adds each route's source line. */
export type ParsedConfig = Omit<Config, 'routes'> & { routes: Omit<RouteConfig, 'sourceLine'>[] };

/** A value as the operator wrote it, for "got ..." in messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (key: value)',
  record: 'a mapping (name: value)',
  array: 'a list',
};

/**
 * The loader's default messages for zod's issue codes. Schema-level
 * messages below take precedence; this covers the rest.
 */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required but missing';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return undefined;
  }
};

type RawIssue = z.core.$ZodRawIssue;

/**
 * A strict mapping: unknown keys are errors (a misspelt key silently ignored
 * is a default silently used), with a suggestion when the key is close to a
 * known one. The loader points at the first unknown key.
 */
function strictMapping<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue: RawIssue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      const suggestion = didYouMean(issue.keys[0], known);
      return suggestion === '' ? `unknown key; known keys are ${known.join(', ')}` : `unknown key${suggestion}`;
    },
  });
}

function integer(min: number, max: number) {
  const error = (issue: RawIssue) =>
    issue.input === undefined ? undefined : `expected a whole number from ${min} to ${max}, got ${describeValue(issue.input)}`;
  return z.number({ error }).int().min(min).max(max);
}

function oneOf<const Values extends readonly [string, ...string[]]>(values: Values) {
  return z.enum(values, {
    error: (issue: RawIssue) => {
      if (issue.input === undefined) return undefined;
      const suggestion = typeof issue.input === 'string' ? didYouMean(issue.input, values) : '';
      return `expected one of ${values.join('|')}, got ${describeValue(issue.input)}${suggestion}`;
    },
  });
}

/** Runs an ip-num-backed parser inside zod so its error lands on this field. */
function ipv4Field<T>(parse: (text: string) => T) {
  return z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (error) {
      if (!(error instanceof Ipv4Error)) throw error;
      ctx.addIssue({ code: 'custom', message: error.message });
      return z.NEVER;
    }
  });
}

const nextHopAddress = ipv4Field(parseAddress).superRefine((address, ctx) => {
  const problem = nextHopProblem(address);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** Linux's IFNAMSIZ is 16 including the terminating NUL. */
const INTERFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;
const SERVER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

const interfaceSchema = strictMapping({
  name: z.string().regex(INTERFACE_NAME, {
    error: (issue: RawIssue) =>
      `${describeValue(issue.input)} is not a valid interface name (1 to 15 characters from A-Z a-z 0-9 _ . : -)`,
  }),
  // 68 is the IPv4 minimum (RFC 791); 9000 is the usual jumbo frame.
  mtu: integer(68, 9000).optional(),
});

const absolutePath = z.string().regex(/^\/[^\0]*$/, { error: 'must be an absolute path' });
/** A user or group, by name or number. */
const userOrGroup = z.union([z.string().regex(/^[a-z_][a-z0-9_-]*\$?$/i), z.number().int().min(0)], {
  error: 'must be a user or group name, or a numeric id',
});

const LIST_PORTS = 'list at least one data-plane port, e.g. [{ name: eth1 }]';

const LISTEN_EXAMPLE = 'ADDRESS:PORT such as "127.0.0.1:9108" (an IPv4 address and a TCP port from 1 to 65535)';

/** "ADDRESS:PORT" for an HTTP listener: the address must be one of the box's, the kernel says which at bind time. */
const listenAddress = z.string({
  error: (issue: RawIssue) => (issue.input === undefined ? undefined : `expected ${LISTEN_EXAMPLE}, got ${describeValue(issue.input)}`),
}).transform((text, ctx) => {
  const match = /^([0-9.]+):([0-9]{1,5})$/.exec(text.trim());
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) {
    ctx.addIssue({ code: 'custom', message: `expected ${LISTEN_EXAMPLE}, got ${describeValue(text)}` });
    return z.NEVER;
  }
  try {
    return { host: formatAddress(parseAddress(match[1])), port };
  } catch (error) {
    if (!(error instanceof Ipv4Error)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
    return z.NEVER;
  }
});

/**
 * Prometheus metrics: off unless the section is there. `metrics:` on its own
 * (an empty value) turns them on with the defaults: loopback only, so the
 * counters are not on the network unless the operator says so.
 */
const metricsSchema = z.preprocess(
  (value) => (value === null ? {} : value),
  strictMapping({
    listen: listenAddress.default({ host: '127.0.0.1', port: 9108 }),
  }),
);

/** BIRD's names for protocols: a letter or _, then letters, digits and _. */
const BIRD_SYMBOL = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** The router pair: the liveness link and the engines that follow it (README "Two routers"). */
const livenessSchema = z.preprocess(
  (value) => (value === null ? {} : value),
  strictMapping({
    interface: z.string().regex(INTERFACE_NAME, {
      error: (issue: RawIssue) => `${describeValue(issue.input)} is not a valid interface name (1 to 15 characters from A-Z a-z 0-9 _ . : -)`,
    }).default('vipr-alive'),
  }),
);

const birdSchema = z.preprocess(
  (value) => (value === null ? {} : value),
  strictMapping({
    socket: absolutePath.default('/run/bird/bird.ctl'),
    routesFile: absolutePath.default('/run/vipr/bird-routes.conf'),
    protocol: z.string().regex(BIRD_SYMBOL, { error: 'must be a BIRD protocol name (a letter or _, then letters, digits, _)' }).default('vipr'),
    announce: z.array(ipv4Field(parsePrefix)).min(1, { error: 'empty list; name a prefix, or leave announce out to announce every route to servers' }).optional(),
    birdc: z.string().min(1, { error: 'empty; give the birdc command' }).default('birdc'),
    // Long enough for the upstream to take the withdrawal and stop sending: BGP updates travel in milliseconds.
    shutdownGraceMs: integer(0, 600_000).default(1_000),
    shutdownQuietMs: integer(0, 600_000).default(200),
    optional: z.boolean().default(false),
  }),
);

const keepalivedSchema = z.preprocess(
  (value) => (value === null ? {} : value),
  strictMapping({
    pidFile: absolutePath.default('/run/keepalived.pid'),
    // The backup takes over after its skew time (under one advert interval) and sends gratuitous ARP at once.
    releaseMs: integer(0, 60_000).default(300),
    optional: z.boolean().default(false),
  }),
);

/** Per-check timing; unset fields come from `health:`. */
const checkTiming = {
  intervalMs: integer(10, 3_600_000).optional(),
  timeoutMs: integer(5, 600_000).optional(),
  rise: integer(1, 100).optional(),
  fall: integer(1, 100).optional(),
};

const checkSchema = z.discriminatedUnion('type', [
  // vipr's own ARP request on the server's port: is its NIC there?
  strictMapping({ type: z.literal('arp'), ...checkTiming }),
  // ICMP echo to the server's own address.
  strictMapping({ type: z.literal('icmp'), ...checkTiming }),
  // TCP connect to a port of the server's own address.
  strictMapping({ type: z.literal('tcp'), port: integer(1, 65535), ...checkTiming }),
  // HTTP GET on the server's own address; the status must match, the body must contain `body` if given.
  strictMapping({
    type: z.literal('http'),
    port: integer(1, 65535).default(80),
    path: z.string().regex(/^\//, { error: 'must start with /' }).default('/'),
    host: z.string().optional(),
    status: integer(100, 599).default(200),
    body: z.string().optional(),
    ...checkTiming,
  }),
], {
  error: (issue: RawIssue) => issue.code === 'invalid_union' ? 'unknown check type; expected one of arp|icmp|tcp|http' : undefined,
});

const serverSchema = strictMapping({
  address: nextHopAddress,
  checks: z.array(checkSchema).default([]),
});

const servers = z
  .record(
    z.string().regex(SERVER_NAME, {
      error: (issue: RawIssue) =>
        `${describeValue(issue.input)} is not a valid server name (a lower-case letter, then up to 31 of a-z 0-9 _ -)`,
    }),
    serverSchema,
  )
  .transform((record) => Object.entries(record).map(([name, server]) => ({ name, address: server.address, checks: server.checks })));

/** Server names start with a letter, so a `via` starting with a digit is an address. */
type ViaText = { server: string } | { address: number };

/** A route's prefix: never inside a block a router does not forward to (loopback, multicast, ...). */
const routePrefix = ipv4Field(parsePrefix).superRefine((prefix, ctx) => {
  const problem = routePrefixProblem(prefix);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const routeSchema = strictMapping({
  prefix: routePrefix,
  type: oneOf(ROUTE_TYPES).default('unicast'),
  // One next hop, or a list in order of preference: the first healthy one carries the route.
  via: z.union([z.string(), z.array(z.string()).min(1, { error: 'empty list; name at least one next hop' })], {
    error: (issue: RawIssue) => issue.input === undefined ? undefined : `expected a server name, an IPv4 address or a list of them, got ${describeValue(issue.input)}`,
  }).optional(),
}).transform((route, ctx) => {
  const type: RouteType = route.type;
  const via: { text: ViaText; path: PropertyKey[] }[] = [];
  if (type === 'unicast') {
    if (route.via === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['via'],
        message: 'required but missing: a unicast route needs a server name or an IPv4 address (or type: unreachable or blackhole)',
      });
      return z.NEVER;
    }
    const list = typeof route.via === 'string' ? [route.via] : route.via;
    for (const [i, text] of list.entries()) {
      const path = typeof route.via === 'string' ? ['via'] : ['via', i];
      if (/^[0-9]/.test(text)) {
        const parsed = nextHopAddress.safeParse(text);
        if (!parsed.success) {
          ctx.addIssue({ code: 'custom', path, message: parsed.error.issues[0].message });
          return z.NEVER;
        }
        via.push({ text: { address: parsed.data }, path });
      } else {
        via.push({ text: { server: text }, path });
      }
    }
  } else if (route.via !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['via'],
      message: `not allowed: ${type === 'unreachable' ? 'an unreachable' : 'a blackhole'} route has no next hop`,
    });
    return z.NEVER;
  }
  return { prefix: route.prefix, type, via };
});

export const configSchema = strictMapping({
  log: strictMapping({ level: oneOf(LOG_LEVELS).default('info') }).prefault({}),
  kernelForwarding: oneOf(KERNEL_FORWARDING_POLICIES).default('refuse'),
  offloads: oneOf(OFFLOAD_POLICIES).default('disable'),
  kernelTransit: oneOf(KERNEL_TRANSIT_POLICIES).default('drop'),
  // Started as root, vipr runs as this user (with only CAP_NET_RAW and CAP_NET_ADMIN); unset: stays root, with only those two.
  user: userOrGroup.optional(),
  io: oneOf(IO_BACKENDS).default('ring'),
  ring: strictMapping({
    rxRing: oneOf(['v2', 'v3'] as const).default('v2'),
    tx: oneOf(['sendmmsg', 'ring'] as const).default('sendmmsg'),
    qdiscBypass: z.boolean().default(false),
    busyPoll: z.boolean().default(false),
  }).prefault({}),
  // io: xdp (and io: auto when AF_XDP works): see README, "AF_XDP".
  xdp: strictMapping({
    mode: oneOf(['auto', 'copy', 'zerocopy'] as const).default('auto'),
    attach: oneOf(['auto', 'native', 'generic'] as const).default('auto'),
    // 4096 x 2 KB = 8 MB per receive queue, pinned: ~2 ms of 1 Mpps while JS is busy.
    frames: integer(64, 65_536)
      .refine((n) => (n & (n - 1)) === 0, { error: (issue: RawIssue) => `expected a power of two (64, 128, ... 65536), got ${describeValue(issue.input)}` })
      .default(4_096),
    busyPoll: z.boolean().default(false),
  }).prefault({}),
  interfaces: z
    .array(interfaceSchema, {
      error: (issue: RawIssue) => (issue.input === undefined ? `required but missing; ${LIST_PORTS}` : undefined),
    })
    .min(1, { error: `empty; ${LIST_PORTS}` }),
  servers: servers.prefault({}),
  routes: z.array(routeSchema).default([]),
  // Big tables, one route per line (route-file.ts); relative paths are from the config file's directory.
  routeFiles: z.array(z.string().min(1, { error: 'empty; give a path' }).regex(/^[^\0]*$/, { error: 'must not contain NUL' })).default([]),
  neighbors: strictMapping({
    reachableMs: integer(1_000, 3_600_000).default(30_000),
    retransmitMs: integer(10, 60_000).default(1_000),
    probes: integer(1, 100).default(3),
    // 0 = do not hold frames while resolving: drop them and count the drop.
    queueLength: integer(0, 65_536).default(64),
    maxEntries: integer(1, 1_048_576).default(4_096),
    // ARP requests per port: a /24's worth at once (after a restart, say), then
    // 100 a second, so traffic to random hosts of a big connected subnet cannot
    // flood the LAN with broadcasts. Gateways are not limited.
    requestsPerSecond: integer(1, 1_000_000).default(100),
    requestBurst: integer(1, 1_000_000).default(256),
  }).prefault({}),
  icmp: strictMapping({
    // 0 = never send ICMP errors.
    ratePerSecond: integer(0, 1_000_000).default(1_000),
    burst: integer(1, 1_000_000).default(50),
    // Linux's defaults (icmp_ratelimit 1000 ms, a burst of 6): one host flooding
    // TTL-1 packets gets a handful of errors and leaves the global bucket to the others.
    perDestination: strictMapping({
      ratePerSecond: integer(1, 1_000_000).default(1),
      burst: integer(1, 1_000_000).default(6),
      maxDestinations: integer(1, 1_048_576).default(4_096),
    }).prefault({}),
  }).prefault({}),
  dataplane: strictMapping({
    batchSize: integer(1, 4_096).default(256),
    // Data-plane threads: each owns its share of the ports' receive queues
    // (PACKET_FANOUT by flow hash) and forwards on its own; 0 runs the data
    // plane on the main thread beside the control plane (as before 2026-12).
    workers: integer(0, 64).default(1),
    // Pin the data-plane threads: one CPU, or one per worker in order; the
    // health-check thread and Node's helper threads run on the others.
    cpu: z.union([integer(0, 1_023), z.array(integer(0, 1_023)).min(1)], {
      error: (issue: RawIssue) => (issue.input === undefined ? undefined : `expected a CPU number or a list of them, got ${describeValue(issue.input)}`),
    }).optional(),
  }).prefault({}).superRefine((dataplane, ctx) => {
    const cpus = dataplane.cpu === undefined ? [] : Array.isArray(dataplane.cpu) ? dataplane.cpu : [dataplane.cpu];
    if (cpus.length > Math.max(1, dataplane.workers)) {
      ctx.addIssue({ code: 'custom', path: ['cpu'], message: `${cpus.length} CPUs for ${dataplane.workers} worker(s): give at most one per worker` });
    }
    if (new Set(cpus).size !== cpus.length) ctx.addIssue({ code: 'custom', path: ['cpu'], message: 'a CPU is listed twice: each worker needs its own' });
  }),
  control: strictMapping({
    socket: absolutePath.default('/run/vipr/vipr.sock'),
    // Octal, as chmod takes it: owner and group may talk to the router, nobody else.
    mode: z.string().regex(/^0?[0-7]{3}$/, { error: 'must be an octal file mode such as "0660"' }).default('0660'),
    owner: userOrGroup.optional(),
    group: userOrGroup.optional(),
  }).prefault({}),
  health: strictMapping({
    // Defaults for every check (keepalived's delay_loop / HAProxy's inter, timeout, rise, fall).
    intervalMs: integer(10, 3_600_000).default(1_000),
    timeoutMs: integer(5, 600_000).default(500),
    rise: integer(1, 100).default(2),
    fall: integer(1, 100).default(3),
    // A server that comes back must stay up this long before routes move back to it.
    holdDownMs: integer(0, 86_400_000).default(5_000),
    // auto: routes move back after the hold-down; manual: they stay until `vipr ctl route failback`.
    failback: oneOf(['auto', 'manual'] as const).default('auto'),
    // Run on every server state change, with the event in its environment (VIPR_SERVER, VIPR_OLD_STATE, ...).
    notify: z.string().min(1, { error: 'empty; give a shell command, or leave notify out' }).optional(),
    notifyTimeoutMs: integer(100, 600_000).default(10_000),
  }).prefault({}),
  state: strictMapping({
    file: absolutePath.default('/var/lib/vipr/state.json'),
  }).prefault({}),
  metrics: metricsSchema.optional(),
  liveness: livenessSchema.optional(),
  bird: birdSchema.optional(),
  keepalived: keepalivedSchema.optional(),
}).transform((config, ctx): ParsedConfig => {
  const clash = (path: PropertyKey[], message: string, earlier: PropertyKey[]) => {
    const params: ConfigIssueParams = { earlier };
    ctx.addIssue({ code: 'custom', path, message, params });
  };

  // Only the first problem in the file is reported, so each section stops at
  // its first: a file of 20,000 bad routes costs what one does.
  const interfaceIndex = new Map<string, number>();
  for (const [i, port] of config.interfaces.entries()) {
    const first = interfaceIndex.get(port.name);
    if (first === undefined) interfaceIndex.set(port.name, i);
    else {
      clash(['interfaces', i, 'name'], `"${port.name}" is already listed by interfaces[${first}]`, ['interfaces', first]);
      break;
    }
  }

  const serverByAddress = new Map<number, string>();
  const serverAddress = new Map<string, number>();
  for (const server of config.servers) {
    serverAddress.set(server.name, server.address);
    const first = serverByAddress.get(server.address);
    if (first === undefined) serverByAddress.set(server.address, server.name);
    else {
      clash(
        ['servers', server.name, 'address'],
        `${formatAddress(server.address)} is already the address of server ${first}`,
        ['servers', first, 'address'],
      );
      break;
    }
  }

  const routeIndex = new Map<string, number>();
  // Routes with the same next hops share one list (a big table names a few lists many times).
  const viaLists = new Map<string, { server?: string; address: number }[]>();
  let knownServers: string[] | undefined;
  const routes: ParsedConfig['routes'] = [];
  for (const [i, route] of config.routes.entries()) {
    const issues = ctx.issues.length;
    const key = formatPrefix(route.prefix);
    const first = routeIndex.get(key);
    if (first === undefined) routeIndex.set(key, i);
    else clash(['routes', i, 'prefix'], `${key} is already routed by routes[${first}]`, ['routes', first]);

    const result: { prefix: Prefix; type: RouteType; via: { server?: string; address: number }[] } = {
      prefix: route.prefix,
      type: route.type,
      via: [],
    };
    // The same next hop twice, by name or by address, is refused here (the RIB would refuse it later, without a position).
    const listed = (address: number, path: PropertyKey[], server?: string): boolean => {
      const earlier = result.via.find((v) => v.address === address);
      if (earlier === undefined) return false;
      const what = server === undefined ? formatAddress(address) : `"${server}"`;
      // Once by name and once by address: say which name has that address.
      const named = earlier.server !== server ? (server ?? earlier.server) : undefined;
      const why = named === undefined ? '' : `: "${named}" is ${formatAddress(address)}`;
      ctx.addIssue({ code: 'custom', path: ['routes', i, ...path], message: `${what} is listed twice${why}` });
      return true;
    };
    for (const { text, path } of route.via) {
      if ('address' in text) {
        if (!listed(text.address, path)) result.via.push({ address: text.address });
        continue;
      }
      const name = text.server;
      const address = serverAddress.get(name);
      if (address === undefined) {
        knownServers ??= [...serverAddress.keys()];
        const message = knownServers.length === 0
          ? `unknown server "${name}"; no servers are defined`
          : `unknown server "${name}"${didYouMean(name, knownServers)} (known servers: ${listSome(knownServers)})`;
        ctx.addIssue({ code: 'custom', path: ['routes', i, ...path], message });
      } else if (!listed(address, path, name)) {
        result.via.push({ server: name, address });
      }
    }
    if (ctx.issues.length > issues) break;
    const viaKey = result.via.map((v) => `${v.address >>> 0}:${v.server ?? ''}`).join(',');
    const shared = viaLists.get(viaKey);
    if (shared) result.via = shared;
    else viaLists.set(viaKey, result.via);
    routes.push(result);
  }

  const interfaceNames = new Set(config.interfaces.map((i) => i.name));
  const liveness = config.liveness ?? (config.bird || config.keepalived ? { interface: 'vipr-alive' } : undefined);
  if (liveness && interfaceNames.has(liveness.interface)) {
    ctx.addIssue({ code: 'custom', path: ['liveness', 'interface'], message: `"${liveness.interface}" is a data-plane port; the liveness link is an interface of its own that vipr creates` });
  }
  return { ...config, routes, liveness };
});
