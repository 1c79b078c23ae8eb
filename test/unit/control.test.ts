// The control socket end to end, without namespaces: a real ControlServer on
// a Unix socket in a temp dir, the real ControlService, the article's router
// in memory (MemoryPorts) and a StateStore in the same temp dir (test/control-rig.ts).
// Every change is checked where it matters: the live FIB, the frames the data
// plane sends, and the state file.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { ControlClient } from '../../src/control/client.js';
import { MAX_LINE } from '../../src/control/protocol.js';
import { ControlServer } from '../../src/control/server.js';
import { ControlService } from '../../src/control/service.js';
import { StateStore } from '../../src/control/state-store.js';
import { formatAddress, formatPrefix, parseAddress } from '../../src/util/ipv4.js';
import { ARTICLE_ROUTES, articleRouter, MAC } from '../fixtures/article-router.js';
import {
  ADDRESS_OF, captureLogger, cleanups, client, controlContext, fibTarget, forwardedTo, readState, rig, routeRows, tempDir, Wire,
} from '../control-rig.js';

// ---- tests -----------------------------------------------------------------

describe('control socket: the two forms', () => {
  it('text form: output lines, then ok', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send('ping\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
    wire.send('route show 192.168.1.32/27\n');
    const reply = await wire.reply();
    expect(reply[0]).toMatch(/^PREFIX\s+TARGET\s.*\bPORT\s+SOURCE$/);
    expect(reply[1]).toMatch(/^192\.168\.1\.32\/27\s+via 192\.168\.1\.2\s.*\blan0\s+config:1$/);
    expect(reply[2]).toBe('ok');
  });

  it('text form: CRLF line ends (telnet, Windows socat) are accepted', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send('ping\r\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  it('a client that sends its requests and half-closes (printf ... | socat) still gets every reply', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.socket.end('route replace 192.168.1.32/27 via web2\nroute show 192.168.1.32/27\nping');
    await wire.done;
    const lines = wire.rest().split('\n');
    expect(lines[0]).toBe('ok');
    expect(lines[2]).toMatch(/^192\.168\.1\.32\/27\s+via web2/);
    // The last request had no newline: answered all the same.
    expect(lines.slice(3)).toEqual(['ok', 'pong', 'ok', '']);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
  });

  it('text form: a blank line is ignored, the next command answered', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send('\n   \nping\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  it('JSON form: {"id":7,"command":"route show"} → {"id":7,"ok":true,"result":[...]}', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send('{"id":7,"command":"route show"}\n');
    const answer = JSON.parse(await wire.line()) as { id: number; ok: boolean; result: { prefix: string; source: string }[] };
    expect(answer.id).toBe(7);
    expect(answer.ok).toBe(true);
    expect(answer.result.find((route) => route.prefix === '192.168.1.32/27')).toMatchObject({
      prefix: '192.168.1.32/27', type: 'unicast', source: 'config', sourceLine: 1, overridesConfig: false,
      via: [{ address: '192.168.1.2', port: 'lan0' }],
    });
  });

  it('JSON form: an error keeps the id and carries code and message', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send(JSON.stringify({ id: 'abc', command: 'route add 192.168.1.33/27 via web2' }) + '\n');
    expect(JSON.parse(await wire.line())).toEqual({
      id: 'abc', ok: false,
      error: { code: 'EBADPREFIX', message: '192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?' },
    });
  });

  it('JSON form: the client library round-trips a change', async () => {
    const r = await rig();
    const c = await client(r);
    expect(await c.json('route replace 192.168.1.32/27 via web2')).toEqual({ id: 1, ok: true, result: { applied: 1 } });
    const show = await c.json('route show 192.168.1.32/27');
    expect(show).toMatchObject({ id: 2, ok: true, result: [{ prefix: '192.168.1.32/27', source: 'runtime', overridesConfig: true }] });
  });
});

describe('control socket: route changes reach the live FIB and the data plane', () => {
  it('route replace moves VIP .33 to web2: FIB, frames and route show agree', async () => {
    const r = await rig();
    const c = await client(r);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web1);

    expect(await c.text('route replace 192.168.1.32/27 via web2')).toEqual({ ok: true, lines: [] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
    expect(fibTarget(r.router, '192.168.1.63')).toBe(ADDRESS_OF.web2);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web2);
    // Neighbours untouched: .65 still goes to web2, .97 to web3.
    expect(forwardedTo(r.article, '192.168.1.65')).toBe(MAC.web2);
    expect(forwardedTo(r.article, '192.168.1.97')).toBe(MAC.web3);

    const show = await c.text('route show');
    expect(show.ok).toBe(true);
    const row = (prefix: string) => show.lines.find((l) => l.startsWith(`${prefix} `)) ?? '';
    expect(row('192.168.1.32/27')).toMatch(/via web2 \(192\.168\.1\.3\)\s.*\blan0\s+runtime \(overrides config\)$/);
    expect(row('192.168.1.64/27')).toMatch(/via 192\.168\.1\.3\s.*\blan0\s+config:2$/);
    expect(row('192.168.1.0/27')).toMatch(/connected/);
  });

  it('the article netmask form works end to end', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32 255.255.255.224 via web3')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web3);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web3);
  });

  it('a next hop given by address is shown with its server name', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 via 192.168.1.5')).ok).toBe(true);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web4);
    const show = await c.text('route show 192.168.1.32/27');
    expect(show.lines[1]).toMatch(/via web4 \(192\.168\.1\.5\)/);
  });

  it('via web1, web2: the first next hop carries the route', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 via web3, web4')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web3);
    const show = await c.text('route show 192.168.1.32/27');
    expect(show.lines[1]).toContain('via web3 (192.168.1.4), web4 (192.168.1.5)');
  });

  it('routes with the same next hops share one frozen list in the RIB; a different order is another list', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route add 172.16.1.0/24 via web3, web4')).ok).toBe(true);
    expect((await c.text('route add 172.16.2.0/24 via web3, web4')).ok).toBe(true);
    expect((await c.text('route add 172.16.3.0/24 via web4, web3')).ok).toBe(true);
    const via = (prefix: string) => r.router.rib.routes().find((route) => formatPrefix(route.prefix) === prefix)!.via;
    expect(via('172.16.2.0/24')).toBe(via('172.16.1.0/24'));
    expect(via('172.16.3.0/24')).not.toBe(via('172.16.1.0/24'));
    expect(Object.isFrozen(via('172.16.1.0/24'))).toBe(true);
    expect(Object.isFrozen(via('172.16.1.0/24')[0])).toBe(true);
    expect(fibTarget(r.router, '172.16.2.9')).toBe(ADDRESS_OF.web3);
    expect(fibTarget(r.router, '172.16.3.9')).toBe(ADDRESS_OF.web4);
  });

  it('route add a new /27, then del it: the covering unreachable route is back', async () => {
    const r = await rig();
    const c = await client(r);
    expect(fibTarget(r.router, '192.168.1.161')).toBe('unreachable');
    expect((await c.text('route add 192.168.1.160/27 via web3')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.161')).toBe(ADDRESS_OF.web3);
    expect(forwardedTo(r.article, '192.168.1.161')).toBe(MAC.web3);
    expect((await c.text('route show 192.168.1.160/27')).lines[1]).toMatch(/\sruntime$/);

    expect(await c.text('route add 192.168.1.160/27 via web4')).toMatchObject({ ok: false, error: { code: 'EROUTEEXISTS' } });
    expect((await c.text('route del 192.168.1.160/27')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.161')).toBe('unreachable');
    expect(await c.text('route show 192.168.1.160/27')).toMatchObject({ ok: false, error: { code: 'ENOROUTE' } });
    // Nothing is left in the state: the route was never in the config.
    expect((await readState(r.stateFile)).routes).toEqual([]);
  });

  it('route del of a config route, then revert: the config route is back', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route del 192.168.1.32/27')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe('unreachable');
    expect(forwardedTo(r.article, '192.168.1.33')).toBeUndefined();
    expect((await readState(r.stateFile)).routes).toEqual([{ prefix: '192.168.1.32/27', deleted: true }]);

    expect((await c.text('route revert 192.168.1.32/27')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect((await c.text('route show 192.168.1.32/27')).lines[1]).toMatch(/config:1$/);
    expect((await readState(r.stateFile)).routes).toEqual([]);
  });

  it('route replace, then revert: back to web1 in the FIB and on the wire', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    expect((await c.text('route revert 192.168.1.32/27')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    // web1 was unused while the route pointed at web2; its MAC may have to be
    // learned again, so answer ARP for it if vipr asks.
    const mac = forwardedTo(r.article, '192.168.1.33');
    if (mac === undefined) {
      r.article.resolveAll();
      expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web1);
    } else {
      expect(mac).toBe(MAC.web1);
    }
  });

  it('replace with blackhole and unreachable', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 blackhole')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe('blackhole');
    expect((await c.text('route replace 192.168.1.32/27 unreachable')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe('unreachable');
  });

  it('revert without a runtime change is refused', async () => {
    const r = await rig();
    const c = await client(r);
    expect(await c.text('route revert 192.168.1.32/27')).toMatchObject({ ok: false, error: { code: 'ENOROUTE' } });
  });
});

describe('control socket: bad requests are answered, nothing changes', () => {
  const cases: { what: string; line: string; code: string; message: RegExp }[] = [
    { what: 'unknown command', line: 'reboot', code: 'EUNKNOWN', message: /unknown command `reboot`; try `help`/ },
    { what: 'bad prefix (host bits)', line: 'route replace 192.168.1.33/27 via web2', code: 'EBADPREFIX', message: /did you mean 192\.168\.1\.32\/27\?/ },
    { what: 'unknown server', line: 'route replace 192.168.1.32/27 via web9', code: 'EUNKNOWNSERVER', message: /unknown server `web9` \(known: web1, web2, web3, web4\)/ },
    { what: 'next hop octet above 255', line: 'route replace 192.168.1.32/27 via 192.168.1.300', code: 'EBADNEXTHOP', message: /300 is greater than 255/ },
    { what: 'next hop off every subnet', line: 'route replace 192.168.1.32/27 via 172.16.0.1', code: 'EBADNEXTHOP', message: /not on a connected subnet/ },
    { what: "next hop is the router's own address", line: 'route replace 192.168.1.32/27 via 192.168.1.1', code: 'EBADNEXTHOP', message: /own address/ },
    { what: 'next hop listed twice', line: 'route replace 192.168.1.32/27 via web2,web2', code: 'EBADNEXTHOP', message: /listed twice/ },
    { what: 'a connected route', line: 'route replace 192.168.1.0/27 via web2', code: 'EROUTEPROTECTED', message: /connected route of lan0/ },
    { what: 'del of a missing route', line: 'route del 192.168.1.160/27', code: 'ENOROUTE', message: /no route 192\.168\.1\.160\/27 to delete/ },
    { what: 'commit without begin', line: 'commit', code: 'ETRANSACTION', message: /no transaction is open/ },
  ];
  it.each(cases)('$what: $code', async ({ line, code, message }) => {
    const r = await rig();
    const before = routeRows(r.router);
    const wire = await Wire.connect(r.socket);
    wire.send(`${line}\n`);
    const reply = await wire.reply();
    expect(reply).toHaveLength(1);
    expect(reply[0]).toMatch(new RegExp(`^error ${code}: `));
    expect(reply[0]).toMatch(message);
    expect(routeRows(r.router)).toEqual(before);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(existsSync(r.stateFile)).toBe(false);
    // The connection still works.
    wire.send('ping\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  it(`a line longer than ${MAX_LINE} bytes, in one write: error ETOOLONG, then the next line is answered`, async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send(`route show ${'x'.repeat(MAX_LINE)}\nping\n`);
    const reply = await wire.reply();
    expect(reply).toHaveLength(1);
    expect(reply[0]).toMatch(/^error ETOOLONG: request longer than 4096 bytes/);
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  it('an overlong line trickled in pieces: one ETOOLONG, the rest of it skipped, the next line answered', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    for (let i = 0; i < 10; i++) {
      wire.send('y'.repeat(1000));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect((await wire.reply())[0]).toMatch(/^error ETOOLONG: /);
    // More of the same line: skipped without another error.
    wire.send(`${'z'.repeat(50_000)}\nping\n`);
    expect(await wire.reply()).toEqual(['pong', 'ok']);
    expect(wire.rest()).toBe('');
  });

  it(`a line of exactly ${MAX_LINE} bytes is still parsed`, async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    const line = `route show ${'x'.repeat(MAX_LINE - 'route show '.length)}`;
    expect(line.length).toBe(MAX_LINE);
    wire.send(`${line}\n`);
    expect((await wire.reply())[0]).toMatch(/^error EBADPREFIX: /);
  });

  const garbage: { what: string; bytes: Buffer; message: RegExp }[] = [
    { what: 'NUL bytes', bytes: Buffer.from([0x00, 0x00, 0x72, 0x6f]), message: /request is not text \(byte 0x00 at column 1\)/ },
    { what: 'a control byte inside a command', bytes: Buffer.from('route\x01show'), message: /byte 0x01 at column 6/ },
    { what: '0xff bytes', bytes: Buffer.from([0xff, 0xfe, 0xff, 0x20, 0x70, 0x69, 0x6e, 0x67]), message: /request is not valid UTF-8/ },
    { what: 'random binary', bytes: Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff).filter((b) => b !== 0x0a)), message: /request is not/ },
  ];
  it.each(garbage)('binary garbage ($what): error EBADREQUEST, the connection still works', async ({ bytes, message }) => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send(Buffer.concat([bytes, Buffer.from('\n')]));
    const reply = await wire.reply();
    expect(reply).toHaveLength(1);
    expect(reply[0]).toMatch(/^error EBADREQUEST: /);
    expect(reply[0]).toMatch(message);
    wire.send('ping\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  const badJson: { what: string; line: string; message: RegExp }[] = [
    { what: 'not JSON', line: '{"id":1,"command":', message: /request is not valid JSON/ },
    { what: 'no command', line: '{"id":1}', message: /a JSON request is an object with a "command" string/ },
    { what: 'command not a string', line: '{"id":1,"command":["route","show"]}', message: /"command" string/ },
  ];
  it.each(badJson)('invalid JSON ($what): EBADJSON in the JSON form', async ({ line, message }) => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send(`${line}\n`);
    const answer = JSON.parse(await wire.line()) as { ok: boolean; error: { code: string; message: string } };
    expect(answer.ok).toBe(false);
    expect(answer.error.code).toBe('EBADJSON');
    expect(answer.error.message).toMatch(message);
    wire.send('ping\n');
    expect(await wire.reply()).toEqual(['pong', 'ok']);
  });

  it('a client that connects and never sends is told so and disconnected', async () => {
    const r = await rig({ server: { idleTimeoutMs: 300 } });
    const wire = await Wire.connect(r.socket);
    const started = Date.now();
    await wire.done;
    // Not before its idle time (less a margin: the server's timer started at
    // accept, a little before `started`). A lower bound tests behaviour: a busy
    // machine can only make the disconnection later.
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(wire.rest()).toBe('error ETIMEOUT: idle for 0.3 s; closing\n');
    // Others are still served.
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });

  it('a hundred clients at once, each doing route show and a replace: all answered, state consistent', async () => {
    const r = await rig();
    const names = ['web1', 'web2', 'web3', 'web4'];
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const c = await ControlClient.connect(r.socket);
        try {
          const show = await c.text('route show');
          const replace = await c.text(`route replace 192.168.1.32/27 via ${names[i % 4]}`);
          return { show: show.ok && show.lines.length > 5, replace: replace.ok };
        } finally {
          c.close();
        }
      }),
    );
    expect(results.filter((x) => !x.show || !x.replace)).toEqual([]);
    // Whatever replace came last, the RIB, the FIB, the data plane and the file say the same.
    const route = r.router.rib.route({ address: parseAddress('192.168.1.32'), length: 27 })!;
    const gateway = formatAddress(route.via[0].address);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(gateway);
    const name = names.find((n) => ADDRESS_OF[n] === gateway)!;
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC[name as keyof typeof MAC]);
    expect((await readState(r.stateFile)).routes).toEqual([{ prefix: '192.168.1.32/27', type: 'unicast', via: [{ address: gateway, ...(route.via[0].server ? { server: route.via[0].server } : {}) }] }]);
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });
});

describe('control socket: transactions', () => {
  it('begin, two changes, commit: nothing moves before commit, both at once after', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('begin')).ok).toBe(true);
    expect(await c.text('route replace 192.168.1.32/27 via web2')).toEqual({ ok: true, lines: ['queued (1 in transaction)'] });
    expect(await c.text('route replace 192.168.1.64/27 via web1')).toEqual({ ok: true, lines: ['queued (2 in transaction)'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(fibTarget(r.router, '192.168.1.65')).toBe(ADDRESS_OF.web2);
    expect(existsSync(r.stateFile)).toBe(false);
    // Another client does not see the open transaction.
    const other = await client(r);
    expect((await other.text('route show 192.168.1.32/27')).lines[1]).toMatch(/config:1$/);

    expect(await c.text('commit')).toEqual({ ok: true, lines: ['committed 2 change(s) at once'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
    expect(fibTarget(r.router, '192.168.1.65')).toBe(ADDRESS_OF.web1);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web2);
    expect(forwardedTo(r.article, '192.168.1.65')).toBe(MAC.web1);
    expect((await readState(r.stateFile)).routes).toHaveLength(2);
    // The transaction is closed.
    expect(await c.text('commit')).toMatchObject({ ok: false, error: { code: 'ETRANSACTION' } });
  });

  it('changes in a transaction see the ones before them (add, then replace the same prefix)', async () => {
    const r = await rig();
    const c = await client(r);
    await c.text('begin');
    expect((await c.text('route add 192.168.1.160/27 via web3')).ok).toBe(true);
    expect(await c.text('route add 192.168.1.160/27 via web4')).toMatchObject({ ok: false, error: { code: 'EROUTEEXISTS' } });
  });

  it('a bad change inside a transaction: commit applies nothing (FIB and state file unchanged)', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.96/27 via web4')).ok).toBe(true);
    const stateBefore = await readFile(r.stateFile, 'utf8');
    const before = routeRows(r.router);

    expect((await c.text('begin')).ok).toBe(true);
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    expect(await c.text('route replace 192.168.1.64/27 via web9')).toMatchObject({ ok: false, error: { code: 'EUNKNOWNSERVER' } });
    const commit = await c.text('commit');
    expect(commit).toMatchObject({ ok: false, error: { code: 'ETRANSACTION' } });
    expect(commit.error!.message).toMatch(/1 request\(s\) in this transaction were refused; nothing applied/);
    expect(routeRows(r.router)).toEqual(before);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(await readFile(r.stateFile, 'utf8')).toBe(stateBefore);
    // The transaction is closed; a fresh one starts clean.
    expect((await c.text('begin')).ok).toBe(true);
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    expect(await c.text('commit')).toEqual({ ok: true, lines: ['committed 1 change(s) at once'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
  });

  it('garbage or an overlong line inside a transaction: commit applies nothing', async () => {
    const r = await rig();
    for (const junk of [Buffer.from([0x00, 0xff, 0x0a]), Buffer.from(`${'x'.repeat(MAX_LINE + 10)}\n`)]) {
      const wire = await Wire.connect(r.socket);
      wire.send('begin\nroute replace 192.168.1.32/27 via web2\n');
      wire.send(junk);
      wire.send('commit\n');
      const replies = [await wire.reply(), await wire.reply(), await wire.reply(), await wire.reply()];
      expect(replies[2][0]).toMatch(/^error (EBADREQUEST|ETOOLONG): /);
      expect(replies[3][0]).toMatch(/^error ETRANSACTION: 1 request\(s\) in this transaction were refused; nothing applied/);
      expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
      expect(existsSync(r.stateFile)).toBe(false);
    }
  });

  it('a failed route show inside a transaction does not spoil it', async () => {
    const r = await rig();
    const c = await client(r);
    await c.text('begin');
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    expect(await c.text('route show 192.168.1.160/27')).toMatchObject({ ok: false, error: { code: 'ENOROUTE' } });
    expect(await c.text('commit')).toEqual({ ok: true, lines: ['committed 1 change(s) at once'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
  });

  it('a typo (grammar error) inside a transaction: commit applies nothing', async () => {
    const r = await rig();
    const c = await client(r);
    await c.text('begin');
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    expect(await c.text('route replace 192.168.1.65/27 via web1')).toMatchObject({ ok: false, error: { code: 'EBADPREFIX' } });
    expect(await c.text('commit')).toMatchObject({ ok: false, error: { code: 'ETRANSACTION' } });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(existsSync(r.stateFile)).toBe(false);
  });

  it('a change that became invalid by commit time (another client took the prefix): commit applies nothing', async () => {
    const r = await rig();
    const a = await client(r);
    const b = await client(r);
    await a.text('begin');
    expect((await a.text('route replace 192.168.1.32/27 via web3')).ok).toBe(true);
    expect((await a.text('route add 192.168.1.160/27 via web3')).ok).toBe(true);
    expect((await b.text('route add 192.168.1.160/27 via web4')).ok).toBe(true);
    const stateBefore = await readFile(r.stateFile, 'utf8');

    const commit = await a.text('commit');
    expect(commit).toMatchObject({ ok: false, error: { code: 'EROUTEEXISTS' } });
    expect(commit.error!.message).toMatch(/^change 2: route 192\.168\.1\.160\/27 already exists/);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(fibTarget(r.router, '192.168.1.161')).toBe(ADDRESS_OF.web4);
    expect(await readFile(r.stateFile, 'utf8')).toBe(stateBefore);
  });

  it('abort drops the changes; nothing is applied or saved', async () => {
    const r = await rig();
    const c = await client(r);
    await c.text('begin');
    await c.text('route replace 192.168.1.32/27 via web2');
    expect(await c.text('abort')).toEqual({ ok: true, lines: ['transaction aborted: 1 change(s) dropped, nothing applied'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(existsSync(r.stateFile)).toBe(false);
    // Outside a transaction again: changes apply at once.
    expect((await c.text('route replace 192.168.1.32/27 via web2')).lines).toEqual([]);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
  });

  it('begin twice is refused; the open transaction is kept', async () => {
    const r = await rig();
    const c = await client(r);
    await c.text('begin');
    await c.text('route replace 192.168.1.32/27 via web2');
    expect(await c.text('begin')).toMatchObject({ ok: false, error: { code: 'ETRANSACTION' } });
    expect(await c.text('commit')).toEqual({ ok: true, lines: ['committed 1 change(s) at once'] });
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
  });

  it('a client that disconnects mid-transaction applies nothing', async () => {
    const r = await rig();
    const wire = await Wire.connect(r.socket);
    wire.send('begin\nroute replace 192.168.1.32/27 via web2\nroute replace 192.168.1.64/27 via web3\n');
    await wire.reply();
    await wire.reply();
    expect((await wire.reply())[0]).toBe('queued (2 in transaction)');
    wire.socket.destroy();
    await wire.done;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(fibTarget(r.router, '192.168.1.65')).toBe(ADDRESS_OF.web2);
    expect(existsSync(r.stateFile)).toBe(false);
    expect(r.logs.join('')).toContain('control client left with an open transaction; nothing applied');
    // The service is not stuck: the next client's change goes through.
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 via web4')).ok).toBe(true);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web4);
  });
});

describe('control socket: the state file', () => {
  it('after `route replace` says ok the file holds the change; a fresh RIB from it has the same routes', async () => {
    const r = await rig();
    const c = await client(r);
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);
    // Read at once, no waiting: the save happened before the reply.
    const state = await readState(r.stateFile);
    expect(state.version).toBe(1);
    expect(state.routes).toEqual([{ prefix: '192.168.1.32/27', type: 'unicast', via: [{ address: '192.168.1.3', server: 'web2' }] }]);
    expect((await c.text('route del 192.168.1.128/27')).ok).toBe(true);
    expect((await c.text('route add 192.168.1.160/27 via 192.168.1.4')).ok).toBe(true);
    // No temp files left beside it.
    expect((await readdir(r.dir)).sort()).toEqual(['state.json', 'vipr.sock']);
    expect((await stat(r.stateFile)).mode & 0o777).toBe(0o640);

    const fresh = articleRouter();
    const runtime = await new StateStore(r.stateFile).load();
    fresh.router.rib.load(ARTICLE_ROUTES, runtime);
    expect(routeRows(fresh.router)).toEqual(routeRows(r.router));
    expect(fibTarget(fresh.router, '192.168.1.33')).toBe(ADDRESS_OF.web2);
    expect(fibTarget(fresh.router, '192.168.1.129')).toBe('unreachable');
    expect(fibTarget(fresh.router, '192.168.1.161')).toBe(ADDRESS_OF.web3);
  });

  it('a save failure (state file under a regular file): error ESTATE, nothing changed', async () => {
    const r = await rig({ stateFile: (dir) => join(dir, 'not-a-directory', 'state.json') });
    await writeFile(join(r.dir, 'not-a-directory'), 'a regular file\n');
    const before = routeRows(r.router);
    const c = await client(r);
    const answer = await c.text('route replace 192.168.1.32/27 via web2');
    expect(answer.ok).toBe(false);
    expect(answer.error!.code).toBe('ESTATE');
    expect(answer.error!.message).toMatch(/^could not save state to .*not-a-directory\/state\.json \(.*\); nothing changed$/);
    expect(routeRows(r.router)).toEqual(before);
    expect(fibTarget(r.router, '192.168.1.33')).toBe(ADDRESS_OF.web1);
    expect(forwardedTo(r.article, '192.168.1.33')).toBe(MAC.web1);
    // A transaction fails the same way, as a whole.
    await c.text('begin');
    await c.text('route replace 192.168.1.32/27 via web2');
    await c.text('route replace 192.168.1.64/27 via web1');
    expect(await c.text('commit')).toMatchObject({ ok: false, error: { code: 'ESTATE' } });
    expect(routeRows(r.router)).toEqual(before);
  });
});

describe('control socket: the socket file', () => {
  it('is created with mode 0660', async () => {
    const r = await rig();
    const info = await stat(r.socket);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o660);
  });

  it('a second server on the same path refuses to start: another vipr is running', async () => {
    const r = await rig();
    const log: Logger = pino({ level: 'silent' });
    const second = new ControlServer({ socket: r.socket, mode: '0660' }, r.service, log);
    await expect(second.start()).rejects.toThrow(/another vipr is running on control socket/);
    // The first one is untouched and still answers.
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });

  it('a stale socket file (nobody listening) is removed and the server starts', async () => {
    const dir = await tempDir();
    const socket = join(dir, 'vipr.sock');
    // A process that listens, then dies without cleaning up, as after kill -9.
    try {
      execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    } catch {
      /* killed by its own SIGKILL, as intended */
    }
    expect((await stat(socket)).isSocket()).toBe(true);

    const logs: string[] = [];
    const log = captureLogger(logs);
    const article = articleRouter();
    const service = new ControlService(controlContext(article.router, new StateStore(join(dir, 'state.json')), log));
    const server = new ControlServer({ socket, mode: '0660' }, service, log);
    await server.start();
    cleanups.push(() => server.stop());
    expect(logs.join('')).toContain(`removed stale control socket ${socket}`);
    const c = await ControlClient.connect(socket);
    cleanups.push(async () => c.close());
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });

  it('a regular file at the socket path is not deleted; the server refuses to start', async () => {
    const dir = await tempDir();
    const path = join(dir, 'vipr.yaml');
    await writeFile(path, 'precious: true\n');
    const article = articleRouter();
    const log: Logger = pino({ level: 'silent' });
    const service = new ControlService(controlContext(article.router, new StateStore(join(dir, 'state.json')), log));
    const server = new ControlServer({ socket: path, mode: '0660' }, service, log);
    await expect(server.start()).rejects.toThrow(/not a socket/);
    expect(await readFile(path, 'utf8')).toBe('precious: true\n');
  });

  it('stop removes the socket file', async () => {
    const r = await rig();
    await r.server.stop();
    expect(existsSync(r.socket)).toBe(false);
  });
});
