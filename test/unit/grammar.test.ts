// The command grammar as tables: every form a person or a script types, and
// for each mistake the stable error code and the one line they will read.

import { describe, expect, it } from 'vitest';
import { parseRequest, type Request } from '../../src/control/grammar.js';
import { ControlError } from '../../src/control/protocol.js';
import { formatPrefix } from '../../src/util/ipv4.js';

/** A parsed request with its prefix written back as CIDR, so tables read as text. */
function shown(request: Request): Record<string, unknown> {
  const out: Record<string, unknown> = { ...request };
  if ('prefix' in request && request.prefix) out.prefix = formatPrefix(request.prefix);
  return out;
}

function errorOf(line: string): ControlError {
  try {
    parseRequest(line);
  } catch (error) {
    if (error instanceof ControlError) return error;
    throw error;
  }
  throw new Error(`\`${line}\` parsed, but an error was expected`);
}

describe('grammar: every command form parses', () => {
  const cases: { line: string; request: Record<string, unknown> }[] = [
    { line: 'route show', request: { command: 'route show' } },
    { line: 'route', request: { command: 'route show' } },
    { line: 'route show 192.168.1.32/27', request: { command: 'route show', prefix: '192.168.1.32/27' } },
    { line: 'route show 192.168.1.32 255.255.255.224', request: { command: 'route show', prefix: '192.168.1.32/27' } },
    { line: 'route show 192.168.1.33', request: { command: 'route show', prefix: '192.168.1.33/32' } },
    {
      line: 'route add 192.168.1.32/27 via web1',
      request: { command: 'route add', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web1'] } },
    },
    {
      line: 'route replace 192.168.1.32/27 via web2',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web2'] } },
    },
    {
      // The article's form: address and netmask as two words.
      line: 'route replace 192.168.1.32 255.255.255.224 via web2',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web2'] } },
    },
    {
      line: 'route add 192.168.1.200 via web3',
      request: { command: 'route add', prefix: '192.168.1.200/32', target: { type: 'unicast', via: ['web3'] } },
    },
    {
      line: 'route add 0.0.0.0/0 via 10.0.0.254',
      request: { command: 'route add', prefix: '0.0.0.0/0', target: { type: 'unicast', via: ['10.0.0.254'] } },
    },
    {
      line: 'route replace 192.168.1.32/27 via web1,web2',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web1', 'web2'] } },
    },
    {
      line: 'route replace 192.168.1.32/27 via web1, web2',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web1', 'web2'] } },
    },
    {
      line: 'route replace 192.168.1.32/27 via web1 , 192.168.1.4',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web1', '192.168.1.4'] } },
    },
    {
      line: 'route add 192.168.1.160/27 unreachable',
      request: { command: 'route add', prefix: '192.168.1.160/27', target: { type: 'unreachable' } },
    },
    {
      line: 'route replace 198.51.100.0 255.255.255.0 blackhole',
      request: { command: 'route replace', prefix: '198.51.100.0/24', target: { type: 'blackhole' } },
    },
    { line: 'route del 192.168.1.32/27', request: { command: 'route del', prefix: '192.168.1.32/27' } },
    { line: 'route delete 192.168.1.32 255.255.255.224', request: { command: 'route del', prefix: '192.168.1.32/27' } },
    { line: 'route revert 192.168.1.32/27', request: { command: 'route revert', prefix: '192.168.1.32/27' } },
    { line: 'server show', request: { command: 'server show' } },
    { line: 'servers', request: { command: 'server show' } },
    { line: 'neighbor show', request: { command: 'neighbor show' } },
    { line: 'neighbour', request: { command: 'neighbor show' } },
    { line: 'stats', request: { command: 'stats' } },
    { line: 'reload', request: { command: 'reload' } },
    { line: 'help', request: { command: 'help' } },
    { line: 'ping', request: { command: 'ping' } },
    { line: 'begin', request: { command: 'begin' } },
    { line: 'commit', request: { command: 'commit' } },
    { line: 'abort', request: { command: 'abort' } },
    {
      line: '  route   replace\t192.168.1.32/27   via  web2  ',
      request: { command: 'route replace', prefix: '192.168.1.32/27', target: { type: 'unicast', via: ['web2'] } },
    },
  ];
  it.each(cases)('$line', ({ line, request }) => {
    expect(shown(parseRequest(line))).toEqual(request);
  });
});

describe('grammar: each bad input gives its code and one line', () => {
  const cases: { what: string; line: string; code: string; message: string | RegExp }[] = [
    {
      what: 'host bits set (CIDR), with the fix',
      line: 'route add 192.168.1.33/27 via web2',
      code: 'EBADPREFIX',
      message: '192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?',
    },
    {
      what: 'host bits set (address and netmask), the fix in the same form',
      line: 'route replace 192.168.1.33 255.255.255.224 via web2',
      code: 'EBADPREFIX',
      message: '192.168.1.33 255.255.255.224 has host bits set; did you mean 192.168.1.32 255.255.255.224?',
    },
    { what: 'host bits set in route show', line: 'route show 192.168.1.33/27', code: 'EBADPREFIX', message: /did you mean 192\.168\.1\.32\/27\?$/ },
    { what: 'length above 32', line: 'route add 10.0.0.0/33 via web1', code: 'EBADPREFIX', message: /length "33" is not a whole number from 0 to 32/ },
    { what: 'non-contiguous netmask', line: 'route add 192.168.1.32 255.0.255.0 via web1', code: 'EBADPREFIX', message: /not contiguous/ },
    { what: 'octet above 255', line: 'route del 192.168.1.256/32', code: 'EBADPREFIX', message: /256 is greater than 255/ },
    { what: 'not an address at all', line: 'route del web1', code: 'EBADPREFIX', message: /"web1" is not an IPv4 prefix/ },
    { what: 'unknown command', line: 'frobnicate', code: 'EUNKNOWN', message: 'unknown command `frobnicate`; try `help`' },
    { what: 'unknown route verb', line: 'route flip 192.168.1.32/27', code: 'EUNKNOWN', message: /unknown command `route flip`; route commands are show, add, replace, del, revert/ },
    { what: 'unknown server verb', line: 'server kill', code: 'EUNKNOWN', message: /^unknown command `server kill`; / },
    { what: 'unknown neighbor verb', line: 'neighbor flush', code: 'EUNKNOWN', message: 'unknown command `neighbor flush`; try `neighbor show`' },
    { what: 'empty line', line: '   ', code: 'EEMPTY', message: 'empty command; try `help`' },
    { what: 'route add without arguments', line: 'route add', code: 'EBADARGS', message: /`route add` needs a prefix and a target/ },
    { what: 'route replace without a target', line: 'route replace 192.168.1.32/27', code: 'EBADARGS', message: /needs `via NEXTHOP`, `unreachable` or `blackhole` after the prefix/ },
    { what: 'via without next hops', line: 'route replace 192.168.1.32/27 via', code: 'EBADARGS', message: /`via` needs at least one next hop/ },
    { what: 'via with only commas', line: 'route replace 192.168.1.32/27 via , ,', code: 'EBADARGS', message: /`via` needs at least one next hop/ },
    { what: 'via with a trailing comma', line: 'route add 192.168.1.32/27 via web1,', code: 'EBADARGS', message: 'empty next hop after `web1,`: a comma must be followed by a next hop' },
    { what: 'via with a trailing comma and a space', line: 'route add 192.168.1.32/27 via web1, ', code: 'EBADARGS', message: /^empty next hop after `web1,`/ },
    { what: 'via with two commas in a row', line: 'route add 192.168.1.32/27 via web1,,web2', code: 'EBADARGS', message: 'empty next hop after `web1,`: a comma must be followed by a next hop' },
    { what: 'via with a leading comma', line: 'route add 192.168.1.32/27 via ,web1', code: 'EBADARGS', message: 'empty next hop before `,web1`: a comma must follow a next hop' },
    { what: 'route del without a prefix', line: 'route del', code: 'EBADARGS', message: '`route del` needs a prefix' },
    { what: 'route revert without a prefix', line: 'route revert', code: 'EBADARGS', message: '`route revert` needs a prefix' },
    { what: 'a word other than via', line: 'route add 192.168.1.32/27 to web1', code: 'EBADARGS', message: /not `to`$/ },
    { what: 'bad next hop: punctuation', line: 'route add 192.168.1.32/27 via web!', code: 'EBADNEXTHOP', message: '`web!` is neither a server name nor an IPv4 address' },
    { what: 'bad next hop: upper case', line: 'route add 192.168.1.32/27 via Web1', code: 'EBADNEXTHOP', message: /`Web1` is neither/ },
    { what: 'bad next hop: three octets', line: 'route add 192.168.1.32/27 via 192.168.1', code: 'EBADNEXTHOP', message: /`192\.168\.1` is neither/ },
    { what: 'extra words after show', line: 'route show 192.168.1.32/27 please', code: 'EBADARGS', message: 'unexpected `please` after the prefix' },
    { what: 'extra words after del', line: 'route del 192.168.1.32/27 now', code: 'EBADARGS', message: 'unexpected `now` after the prefix' },
    { what: 'extra words after revert', line: 'route revert 192.168.1.32/27 now', code: 'EBADARGS', message: 'unexpected `now` after the prefix' },
    { what: 'extra words after blackhole', line: 'route add 192.168.1.32/27 blackhole now', code: 'EBADARGS', message: 'unexpected `now` after `blackhole`' },
    { what: 'extra words after a single-word command', line: 'commit now', code: 'EBADARGS', message: '`commit` takes no arguments' },
    { what: 'extra words after neighbor show', line: 'neighbor show now', code: 'EBADARGS', message: '`neighbor show` takes no arguments' },
  ];
  it.each(cases)('$what: `$line` → $code', ({ line, code, message }) => {
    const error = errorOf(line);
    expect(error.code).toBe(code);
    if (typeof message === 'string') expect(error.message).toBe(message);
    else expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/[\r\n]/);
  });
});
