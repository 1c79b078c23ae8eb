// The command grammar: a text line into a typed request. Pure: no I/O, so
// the CLI, the socket and the tests share it.
//
//   route show [PREFIX]
//   route add|replace PREFIX via NEXTHOP[,NEXTHOP...]
//   route add|replace PREFIX unreachable|blackhole
//   route del PREFIX
//   route revert PREFIX          drop the runtime change; the config route is back
//   server show | neighbor show | stats | reload | help | ping
//   status                       uptime, ports, routes and servers on one screen, with rates
//   begin | commit | abort       a transaction on this connection
//   trace FILE [prefix P] [port NAME] [drop REASON|drops] [count N] [seconds S]
//   trace stop                   end the running trace (its own connection gets the summary)
//
// PREFIX is CIDR (192.168.1.32/27), the article's address-plus-netmask form
// (192.168.1.32 255.255.255.224), or a bare address (/32). NEXTHOP is a
// server name or an IPv4 address.

import { Ipv4Error, parsePrefix, type Prefix } from '../util/ipv4.js';
import { ControlError } from './protocol.js';
import { MAX_TRACE_FRAMES, MAX_TRACE_SECONDS, type TraceOptions } from './trace.js';

export type RouteTarget = { type: 'unicast'; via: string[] } | { type: 'unreachable' | 'blackhole' };

export type Request =
  | { command: 'route show'; prefix?: Prefix }
  | { command: 'route add' | 'route replace'; prefix: Prefix; target: RouteTarget }
  | { command: 'route del' | 'route revert'; prefix: Prefix }
  | { command: 'server show'; name?: string }
  | { command: 'server drain' | 'server undrain'; name: string }
  | { command: 'route failback' }
  | { command: 'trace'; trace: TraceOptions }
  | { command: 'trace stop' }
  | { command: 'neighbor show' | 'stats' | 'reload' | 'help' | 'ping' | 'begin' | 'commit' | 'abort' | 'events' | 'status' | 'shutdown' };

/** Commands that change routes and may be part of a transaction. */
export type RouteChangeRequest = Extract<Request, { command: 'route add' | 'route replace' | 'route del' | 'route revert' }>;

export const HELP: readonly string[] = [
  'route show [PREFIX]                          routes, with where each came from',
  'route add PREFIX via NEXTHOP[,NEXTHOP...]    add a route (NEXTHOP: server name or address)',
  'route replace PREFIX via NEXTHOP[,...]       add or replace a route',
  'route add|replace PREFIX unreachable|blackhole',
  'route del PREFIX                             delete a route',
  'route revert PREFIX                          undo the runtime change to PREFIX',
  'route failback                               move routes back to their preferred healthy next hop now',
  'server show [NAME]                           health: state, why, since when, last check latency',
  'server drain NAME | server undrain NAME      take a server out of service at once, or return it',
  'neighbor show | stats                        ARP entries, counters',
  'status                                       one screen: uptime, port and route rates, servers (`vipr top` live)',
  'events                                       follow server and route events (until you disconnect)',
  'begin ... commit | abort                     apply several changes at once, or none',
  'reload                                       re-read the config file (a bad one changes nothing)',
  'shutdown                                     planned stop: a router of a pair gives its prefixes and address away first',
  'trace FILE [prefix P] [port NAME] [drop REASON|drops] [count N] [seconds S]',
  '                                             frames and their verdicts to a pcapng file (replies when done)',
  'trace stop                                   end the running trace',
  'PREFIX: 192.168.1.32/27 or 192.168.1.32 255.255.255.224',
];

const SINGLE = new Set(['stats', 'reload', 'help', 'ping', 'begin', 'commit', 'abort', 'events', 'status', 'shutdown']);
const NEXT_HOP = /^([a-z][a-z0-9_-]{0,31}|\d{1,3}(\.\d{1,3}){3})$/;

export function parseRequest(line: string): Request {
  const words = line.trim().split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0) throw new ControlError('EEMPTY', 'empty command; try `help`');
  const [first, second, ...rest] = words;
  if (SINGLE.has(first)) {
    if (words.length > 1) throw new ControlError('EBADARGS', `\`${first}\` takes no arguments`);
    return { command: first as 'stats' };
  }
  if (first === 'server' || first === 'servers') {
    if (second === undefined || second === 'show') {
      if (rest.length > 1) throw new ControlError('EBADARGS', `unexpected \`${rest[1]}\` after the server name`);
      return rest.length === 1 ? { command: 'server show', name: rest[0] } : { command: 'server show' };
    }
    if (second === 'drain' || second === 'undrain') {
      if (rest.length !== 1) throw new ControlError('EBADARGS', `\`server ${second}\` needs one server name, e.g. \`server ${second} web1\``);
      return { command: `server ${second}`, name: rest[0] };
    }
    throw new ControlError('EUNKNOWN', `unknown command \`server ${second}\`; server commands are show, drain, undrain`);
  }
  if (first === 'neighbor' || first === 'neighbors' || first === 'neighbour') {
    const noun = 'neighbor';
    if (second !== 'show' && second !== undefined) throw new ControlError('EUNKNOWN', `unknown command \`${first} ${second}\`; try \`${noun} show\``);
    if (rest.length > 0) throw new ControlError('EBADARGS', `\`${noun} show\` takes no arguments`);
    return { command: `${noun} show` as 'server show' };
  }
  if (first === 'trace') return parseTrace(words.slice(1));
  if (first !== 'route') throw new ControlError('EUNKNOWN', `unknown command \`${first}\`; try \`help\``);
  switch (second) {
    case undefined:
    case 'show': {
      if (rest.length === 0) return { command: 'route show' };
      const { prefix, used } = takePrefix(rest, 0);
      if (used < rest.length) throw new ControlError('EBADARGS', `unexpected \`${rest[used]}\` after the prefix`);
      return { command: 'route show', prefix };
    }
    case 'add':
    case 'replace': {
      if (rest.length === 0) throw new ControlError('EBADARGS', `\`route ${second}\` needs a prefix and a target, e.g. \`route ${second} 192.168.1.32/27 via web1\``);
      const { prefix, used } = takePrefix(rest, 0);
      const target = parseTarget(rest.slice(used), second);
      return { command: `route ${second}`, prefix, target };
    }
    case 'failback':
      if (rest.length > 0) throw new ControlError('EBADARGS', '`route failback` takes no arguments');
      return { command: 'route failback' };
    case 'del':
    case 'delete':
    case 'revert': {
      const command = second === 'revert' ? 'route revert' : 'route del';
      if (rest.length === 0) throw new ControlError('EBADARGS', `\`${command}\` needs a prefix`);
      const { prefix, used } = takePrefix(rest, 0);
      if (used < rest.length) throw new ControlError('EBADARGS', `unexpected \`${rest[used]}\` after the prefix`);
      return { command, prefix };
    }
    default:
      throw new ControlError('EUNKNOWN', `unknown command \`route ${second}\`; route commands are show, add, replace, del, revert, failback`);
  }
}

/** A prefix in one word (CIDR or bare address) or two (address netmask). */
function takePrefix(words: string[], at: number): { prefix: Prefix; used: number } {
  const word = words[at];
  const maybeMask = words[at + 1];
  const text = !word.includes('/') && maybeMask !== undefined && /^\d+\.\d+\.\d+\.\d+$/.test(maybeMask) ? `${word} ${maybeMask}` : word;
  try {
    return { prefix: parsePrefix(text), used: text === word ? at + 1 : at + 2 };
  } catch (error) {
    if (error instanceof Ipv4Error) throw new ControlError('EBADPREFIX', error.message);
    throw error;
  }
}

function parseTarget(words: string[], verb: string): RouteTarget {
  if (words.length === 0) throw new ControlError('EBADARGS', `\`route ${verb}\` needs \`via NEXTHOP\`, \`unreachable\` or \`blackhole\` after the prefix`);
  const [kind, ...rest] = words;
  if (kind === 'unreachable' || kind === 'blackhole') {
    if (rest.length > 0) throw new ControlError('EBADARGS', `unexpected \`${rest[0]}\` after \`${kind}\``);
    return { type: kind };
  }
  if (kind !== 'via') throw new ControlError('EBADARGS', `expected \`via\`, \`unreachable\` or \`blackhole\` after the prefix, not \`${kind}\``);
  const via = nextHopList(rest.join(' '));
  for (const hop of via) {
    if (!NEXT_HOP.test(hop)) throw new ControlError('EBADNEXTHOP', `\`${hop}\` is neither a server name nor an IPv4 address`);
  }
  return { type: 'unicast', via };
}

/**
 * `web1,web2`, `web1, web2` or `web1 web2`. An empty place in the list
 * (`web1,`, `web1,,web2`, `,web1`) is refused: it is usually a next hop the
 * operator meant to type and did not, and the route must not go out without it.
 */
function nextHopList(text: string): string[] {
  const pieces = text.split(',').map((piece) => piece.trim().split(/\s+/).filter((w) => w.length > 0));
  if (pieces.every((words) => words.length === 0)) {
    throw new ControlError('EBADARGS', '`via` needs at least one next hop (a server name or an address)');
  }
  pieces.forEach((words, i) => {
    if (words.length > 0) return;
    if (i === 0) {
      throw new ControlError('EBADARGS', `empty next hop before \`,${pieces.find((p) => p.length > 0)![0]}\`: a comma must follow a next hop`);
    }
    throw new ControlError('EBADARGS', `empty next hop after \`${pieces[i - 1].at(-1) ?? ''},\`: a comma must be followed by a next hop`);
  });
  return pieces.flat();
}

/** `trace FILE [prefix P] [port NAME] [drop REASON|drops] [count N] [seconds S]` or `trace stop`. */
function parseTrace(words: string[]): Request {
  const usage = 'e.g. `trace /tmp/t.pcapng prefix 192.168.1.32/27 count 100 seconds 10`';
  if (words.length === 0) throw new ControlError('EBADARGS', `\`trace\` needs a file, ${usage}`);
  if (words[0] === 'stop') {
    if (words.length > 1) throw new ControlError('EBADARGS', '`trace stop` takes no arguments');
    return { command: 'trace stop' };
  }
  const trace: TraceOptions = { file: words[0] };
  const seen = new Set<string>();
  for (let at = 1; at < words.length;) {
    const word = words[at];
    if (seen.has(word === 'drops' ? 'drop' : word)) throw new ControlError('EBADARGS', `\`${word}\` given twice`);
    seen.add(word === 'drops' ? 'drop' : word);
    if (word === 'drops') {
      trace.drop = 'any';
      at++;
      continue;
    }
    const value = words[at + 1];
    if (!['prefix', 'port', 'drop', 'count', 'seconds'].includes(word)) {
      throw new ControlError('EBADARGS', `unexpected \`${word}\`; after the file come prefix P, port NAME, drop REASON (or drops), count N, seconds S`);
    }
    if (value === undefined) throw new ControlError('EBADARGS', `\`${word}\` needs a value, ${usage}`);
    if (word === 'prefix') {
      const { prefix, used } = takePrefix(words, at + 1);
      trace.prefix = prefix;
      at = used;
      continue;
    }
    if (word === 'port') trace.port = value;
    else if (word === 'drop') trace.drop = value;
    else if (word === 'count') {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_TRACE_FRAMES) {
        throw new ControlError('EBADARGS', `count must be a whole number from 1 to ${MAX_TRACE_FRAMES}, not \`${value}\``);
      }
      trace.count = Number(value);
    } else {
      if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0 || Number(value) > MAX_TRACE_SECONDS) {
        throw new ControlError('EBADARGS', `seconds must be a number above 0 and at most ${MAX_TRACE_SECONDS}, not \`${value}\``);
      }
      trace.seconds = Number(value);
    }
    at += 2;
  }
  return { command: 'trace', trace };
}
