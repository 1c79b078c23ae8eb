// Route files: big route tables beside the YAML config, one route per line,
// in the words of `vipr ctl route add`:
//
//   # full table from the upstream, 2026-11-25
//   203.0.113.0/24   via 10.0.0.254
//   198.51.100.0/24  via web1, web2        # first healthy next hop carries it
//   192.168.1.32 255.255.255.224 via web3  # the article's address + netmask form
//   192.0.2.0/24     blackhole
//
// YAML costs about 70 µs and 250 bytes per route to parse; a line here costs
// a few µs and no more than the route itself, so a full table (a million
// routes, ~40 MB) loads in seconds. Errors say FILE:LINE:COL: field: what, as
// the YAML loader's do.

import { formatAddress, formatPrefix, Ipv4Error, parseAddress, parsePrefix, type Prefix } from '../util/ipv4.js';
import { connectedAddressRole, nextHopProblem, routePrefixProblem } from '../util/martians.js';
import { ConfigError } from './errors.js';
import { didYouMean, listSome } from './suggest.js';
import type { InterfaceAddresses } from './interfaces.js';
import type { RouteConfig, RouteVia } from './types.js';

/**
 * The largest route file read: 64 MiB is about 1.5 million routes of ~40
 * bytes, more than a full IPv4 table (about 1M prefixes in 2026). A bigger
 * table is split over several files (each is read on its own).
 */
export const ROUTE_FILE_LIMIT = 64 * 1024 * 1024;

/** Routes of the config so far, by prefix, so each prefix is routed once across the YAML file and every route file. */
export class RoutedPrefixes {
  private readonly indexByPrefix = new Map<number, number>();

  constructor(private readonly routes: readonly RouteConfig[], private readonly configFile: string) {
    routes.forEach((route, i) => this.indexByPrefix.set(RoutedPrefixes.key(route.prefix), i));
  }

  /** A number, not a string: a million keys stay small. */
  private static key(prefix: Prefix): number {
    return (prefix.address >>> 0) * 33 + prefix.length;
  }

  /** Where the prefix is already routed ("vipr.yaml:66", "full.routes:12"), or undefined (and it is recorded). */
  claim(prefix: Prefix, index: number): string | undefined {
    const key = RoutedPrefixes.key(prefix);
    const earlier = this.indexByPrefix.get(key);
    if (earlier === undefined) {
      this.indexByPrefix.set(key, index);
      return undefined;
    }
    const route = this.routes[earlier];
    return `${route.sourceFile ?? this.configFile}:${route.sourceLine}`;
  }
}

export interface RouteFileContext {
  /** Server names -> addresses, from the YAML file. */
  servers: ReadonlyMap<string, number>;
  /** Every route so far; this file's are appended. */
  routes: RouteConfig[];
  routed: RoutedPrefixes;
  /** The box's interfaces, when known: next hops on their own, network or broadcast addresses are refused. */
  interfaces?: InterfaceAddresses;
}

const TOKEN = /[^\s#]+/g;
const DOTTED_QUAD = /^\d+\.\d+\.\d+\.\d+$/;
const SERVER_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** Parses one route file's text into `context.routes`; throws ConfigError at the first bad line. */
export function parseRouteFile(text: string, file: string, context: RouteFileContext): void {
  // Routes with the same next hops share one list, as in the YAML loader.
  const viaLists = new Map<string, RouteVia[]>();
  let knownServers: string[] | undefined;
  const interfaces = context.interfaces && [...context.interfaces].map(([name, addresses]) => ({ name, addresses }));
  let line = 0;
  // The next '#' at or after the line start, searched again only once passed: one search per comment, not one over the rest of the file per line.
  let hash = -1;
  for (let start = 0; start < text.length;) {
    line++;
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    if (hash !== Infinity && hash < start) {
      hash = text.indexOf('#', start);
      if (hash < 0) hash = Infinity;
    }
    const contentEnd = Math.min(hash, end);
    const lineStart = start;
    start = end + 1;

    // Words with their columns, up to a comment.
    const words: { text: string; column: number }[] = [];
    TOKEN.lastIndex = lineStart;
    for (let match = TOKEN.exec(text); match && match.index < contentEnd; match = TOKEN.exec(text)) {
      words.push({ text: match[0], column: match.index - lineStart + 1 });
    }
    if (words.length === 0) continue;
    const fail = (column: number, field: string, reason: string): never => {
      throw new ConfigError({ file, line, column, field }, reason);
    };

    // PREFIX, or ADDRESS NETMASK.
    const withMask = words.length > 1 && DOTTED_QUAD.test(words[1].text) && !words[0].text.includes('/');
    const prefixText = withMask ? `${words[0].text} ${words[1].text}` : words[0].text;
    let prefix: Prefix;
    try {
      prefix = parsePrefix(prefixText);
    } catch (error) {
      if (!(error instanceof Ipv4Error)) throw error;
      return fail(words[0].column, 'prefix', error.message);
    }
    const unroutable = routePrefixProblem(prefix);
    if (unroutable !== undefined) fail(words[0].column, 'prefix', unroutable);
    const earlier = context.routed.claim(prefix, context.routes.length);
    if (earlier !== undefined) fail(words[0].column, 'prefix', `${formatPrefix(prefix)} is already routed at ${earlier}`);

    const rest = words.slice(withMask ? 2 : 1);
    const target = rest[0];
    if (target === undefined) fail(words[0].column, 'via', 'required but missing: `via NEXTHOP[,NEXTHOP...]`, `unreachable` or `blackhole` after the prefix');
    if (target.text === 'unreachable' || target.text === 'blackhole') {
      if (rest.length > 1) fail(rest[1].column, target.text, `unexpected \`${rest[1].text}\` after \`${target.text}\``);
      context.routes.push({ prefix, type: target.text, via: [], sourceLine: line, sourceFile: file });
      continue;
    }
    if (target.text !== 'via') fail(target.column, 'via', `expected \`via\`, \`unreachable\` or \`blackhole\` after the prefix, not \`${target.text}\``);

    // web1,web2 / web1, web2 / web1 web2; an empty place (`web1,`, `web1,,web2`) is refused.
    const hops: { text: string; column: number }[] = [];
    let column = target.column + target.text.length;
    const pieces = text.slice(lineStart + column - 1, contentEnd).split(',');
    for (const [i, piece] of pieces.entries()) {
      const before = hops.length;
      for (const word of piece.matchAll(/\S+/g)) hops.push({ text: word[0], column: column + word.index });
      if (hops.length === before && pieces.length > 1) {
        fail(column, 'via', i === 0
          ? 'empty next hop before the first comma: a comma must follow a next hop'
          : `empty next hop after \`${hops.at(-1)?.text ?? ''},\`: a comma must be followed by a next hop`);
      }
      column += piece.length + 1;
    }
    if (hops.length === 0) fail(target.column, 'via', '`via` needs at least one next hop (a server name or an address)');

    const via: RouteVia[] = [];
    for (const hop of hops) {
      let gateway: RouteVia;
      if (/^[0-9]/.test(hop.text)) {
        let address: number;
        try {
          address = parseAddress(hop.text);
        } catch (error) {
          if (!(error instanceof Ipv4Error)) throw error;
          return fail(hop.column, 'via', error.message);
        }
        const problem = nextHopProblem(address);
        if (problem !== undefined) fail(hop.column, 'via', problem);
        const role = interfaces && connectedAddressRole(address, interfaces);
        if (role) fail(hop.column, 'via', `${formatAddress(address)} ${role}`);
        gateway = { address };
      } else {
        const address = context.servers.get(hop.text);
        if (address === undefined) {
          if (!SERVER_NAME.test(hop.text)) fail(hop.column, 'via', `\`${hop.text}\` is neither a server name nor an IPv4 address`);
          knownServers ??= [...context.servers.keys()];
          fail(hop.column, 'via', knownServers.length === 0
            ? `unknown server "${hop.text}"; no servers are defined`
            : `unknown server "${hop.text}"${didYouMean(hop.text, knownServers)} (known servers: ${listSome(knownServers)})`);
        }
        gateway = { server: hop.text, address: address! };
      }
      const twice = via.find((v) => v.address === gateway.address);
      if (twice) {
        // Once by name and once by address: say which name has that address.
        const named = twice.server !== gateway.server ? (gateway.server ?? twice.server) : undefined;
        fail(hop.column, 'via', `${gateway.server ?? formatAddress(gateway.address)} is listed twice${named ? `: "${named}" is ${formatAddress(gateway.address)}` : ''}`);
      }
      via.push(gateway);
    }
    const viaKey = via.map((v) => `${v.address >>> 0}:${v.server ?? ''}`).join(',');
    let shared = viaLists.get(viaKey);
    if (!shared) viaLists.set(viaKey, (shared = via));
    context.routes.push({ prefix, type: 'unicast', via: shared, sourceLine: line, sourceFile: file });
  }
}
