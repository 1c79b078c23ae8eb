// The control socket against clients that try to break it: floods of idle
// connections, clients that vanish before their refusal, `events` followers
// that never leave, replies too big for one write, clients that never read.
// The daemon's side runs in this process, so /proc/self/fd counts its sockets.

import { readdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { RouteConfig } from '../../src/config/types.js';
import { MAX_COMMAND_CLIENTS, MAX_FOLLOWERS } from '../../src/control/server.js';
import { formatPrefix, parseAddress } from '../../src/util/ipv4.js';
import { ADDRESS_OF, client, rig, Wire } from '../control-rig.js';

const openFds = () => readdirSync('/proc/self/fd').length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds or `timeoutMs` passes; the last value. */
async function eventually<T>(read: () => T, check: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let value = read();
  while (!check(value) && Date.now() < end) {
    await sleep(20);
    value = read();
  }
  return value;
}

/** Every command slot taken by a connection that never says anything. */
const fillWithIdle = (socket: string) => Promise.all(Array.from({ length: MAX_COMMAND_CLIENTS }, () => Wire.connect(socket)));

/** `count` /30 routes in 100.64.0.0/10, spread over the four servers. */
function manyRoutes(count: number): RouteConfig[] {
  const gateways = Object.values(ADDRESS_OF).map(parseAddress);
  return Array.from({ length: count }, (_, i) => ({
    prefix: { address: (parseAddress('100.64.0.0') + i * 4) >>> 0, length: 30 },
    type: 'unicast' as const,
    via: [{ address: gateways[i % gateways.length] }],
    sourceLine: 100 + i,
  }));
}

describe('control socket: a full house is refused without harm', () => {
  it('clients that connect and close at once, while every slot is taken: refused, the daemon lives on', async () => {
    // No eviction: every newcomer is refused, each refusal written to a socket already closed.
    const r = await rig({ server: { evictIdleAfterMs: Infinity } });
    const idle = await fillWithIdle(r.socket);
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const socket = createConnection(r.socket);
        socket.on('error', () => resolve());
        socket.on('connect', () => {
          socket.destroy();
          resolve();
        });
      });
    }
    await sleep(200);
    // Still serving: one idle client leaves, an operator takes its slot.
    idle[0].socket.destroy();
    await idle[0].done;
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });

  it('a refused client that had sent a request: told EBUSY, and its socket is closed (no file descriptor kept)', async () => {
    const r = await rig({ server: { evictIdleAfterMs: Infinity } });
    const baseline = openFds();
    const idle = await fillWithIdle(r.socket);
    for (let round = 0; round < 3; round++) {
      const refused = await Promise.all(Array.from({ length: 40 }, async () => {
        const wire = await Wire.connect(r.socket);
        wire.send('ping\n');
        const reply = await wire.reply();
        wire.socket.destroy();
        await wire.done;
        return reply;
      }));
      for (const reply of refused) expect(reply).toEqual([`error EBUSY: too many control clients (${MAX_COMMAND_CLIENTS}); try again`]);
    }
    for (const wire of idle) wire.socket.destroy();
    // Both ends of every connection are closed again: back where we started.
    expect(await eventually(openFds, (n) => n <= baseline)).toBeLessThanOrEqual(baseline);
  });
});

describe('control socket: an operator can always get in', () => {
  it(`more than ${MAX_FOLLOWERS} \`events\` followers: the extra ones are refused, commands still get in, followers still get events`, async () => {
    const r = await rig();
    const followers = await Promise.all(Array.from({ length: MAX_COMMAND_CLIENTS + 10 }, async () => {
      const wire = await Wire.connect(r.socket);
      wire.send('events\n');
      return wire;
    }));
    await sleep(300);
    const refused = followers.filter((wire) => wire.rest().startsWith('error '));
    expect(refused).toHaveLength(followers.length - MAX_FOLLOWERS);
    expect(refused[0].rest()).toBe(`error EBUSY: too many event followers (${MAX_FOLLOWERS}); try again later\n`);

    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
    const drain = await c.text('server drain web1');
    expect(drain.ok).toBe(true);
    expect(drain.lines[0]).toMatch(/^web1 drained: now draining/);
    // A refused follower's connection is still a command connection.
    refused[0].send('ping\n');
    await refused[0].reply(); // its EBUSY
    expect(await refused[0].reply()).toEqual(['pong', 'ok']);
    const following = followers.find((wire) => !wire.rest().startsWith('error '))!;
    await eventually(() => following.rest(), (text) => text.includes('web1'));
    expect(following.rest()).toMatch(/web1/);
  });

  it('a follower that stops reading is dropped once its unread events pile up; the others keep theirs', async () => {
    const r = await rig();
    const [stuck, reading] = await Promise.all([Wire.connect(r.socket), Wire.connect(r.socket)]);
    stuck.send('events\n');
    reading.send('{"id":1,"command":"events"}\n');
    await eventually(() => r.server.clients.followers, (n) => n === 2);
    stuck.socket.pause();
    const routesMoved = Array.from({ length: 20 }, (_, i) => ({ prefix: `10.${i}.0.0/16`, from: 'web1', to: 'web2' }));
    for (let i = 0; i < 5000; i++) {
      r.context.events.publish({ time: new Date().toISOString(), type: 'failback', reason: `event ${i}`, routesMoved });
      if (i % 100 === 0) await sleep(1); // the reading follower takes its share meanwhile
    }
    await eventually(() => r.logs.join(''), (logs) => logs.includes('control client does not read its events; dropped'));
    expect(r.logs.join('')).toContain('control client does not read its events; dropped');
    expect(r.server.clients.followers).toBe(1);
    await eventually(() => reading.rest(), (text) => text.includes('"reason":"event 4999"'));
    expect(reading.rest().split('\n').filter((line) => line.startsWith('{')).length).toBe(5000);
  });

  it('every command slot held by a silent client: a newcomer takes the slot of the one silent longest, which is told so', async () => {
    const r = await rig({ server: { evictIdleAfterMs: 200 } });
    const idle = await fillWithIdle(r.socket);
    await sleep(300);
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
    await idle[0].done;
    expect(idle[0].rest()).toBe('error EBUSY: closed to make room for another client (every slot was taken; this connection was idle longest)\n');
    expect(idle.filter((wire) => wire.closed)).toHaveLength(1);
  });

  it('clients trickling bytes that never end a line count as idle: the newcomer still gets in', async () => {
    const r = await rig({ server: { evictIdleAfterMs: 300 } });
    const tricklers = await fillWithIdle(r.socket);
    const timer = setInterval(() => { for (const wire of tricklers) if (!wire.closed) wire.send('p'); }, 50);
    try {
      await sleep(500);
      const c = await client(r);
      expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
    } finally {
      clearInterval(timer);
    }
  });

  it('connections that are not idle long enough are never evicted: the newcomer is refused instead', async () => {
    const r = await rig({ server: { evictIdleAfterMs: 60_000 } });
    const idle = await fillWithIdle(r.socket);
    const wire = await Wire.connect(r.socket);
    await wire.done;
    expect(wire.rest()).toBe(`error EBUSY: too many control clients (${MAX_COMMAND_CLIENTS}); try again\n`);
    expect(idle.some((w) => w.closed)).toBe(false);
  });
});

describe('control socket: large replies', () => {
  const ROUTES = 20_000;

  it(`route show with ${ROUTES} more routes, in both forms, through the client library`, async () => {
    const r = await rig({ extraRoutes: manyRoutes(ROUTES) });
    const size = r.router.rib.size;
    expect(size).toBeGreaterThan(ROUTES);
    const c = await client(r);
    const text = await c.text('route show');
    expect(text.ok).toBe(true);
    expect(text.lines).toHaveLength(size + 1); // the header
    const last = formatPrefix({ address: parseAddress('100.64.0.0') + (ROUTES - 1) * 4, length: 30 });
    expect(text.lines.some((line) => line.startsWith(`${last} `))).toBe(true);
    const json = await c.json('route show');
    expect(json.ok).toBe(true);
    const routes = json.result as { prefix: string }[];
    expect(routes).toHaveLength(size);
    expect(routes.some((route) => route.prefix === last)).toBe(true);
    // The connection is still in step: the next request gets its own answer.
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
  });

  it('a client that asks for large replies and never reads is dropped once output stalls; others are answered meanwhile', async () => {
    const r = await rig({ extraRoutes: manyRoutes(5000), server: { idleTimeoutMs: 500 } });
    const greedy = await Wire.connect(r.socket);
    greedy.socket.pause(); // never read
    greedy.send('route show\n'.repeat(200));
    await sleep(100);
    const c = await client(r);
    expect(await c.text('ping')).toEqual({ ok: true, lines: ['pong'] });
    expect((await c.text('route replace 192.168.1.32/27 via web2')).ok).toBe(true);

    await eventually(() => r.logs.join(''), (logs) => logs.includes('control client does not read its replies; dropped'));
    expect(r.logs.join('')).toContain('control client does not read its replies; dropped');
    greedy.socket.resume(); // to see the end of the connection
    await Promise.race([greedy.done, sleep(5000)]);
    expect(greedy.closed).toBe(true);
    // Work stopped when its output did: it was not answered ahead of its reading.
    const answered = r.service.commands.list().find((row) => row.command === 'route show')?.count ?? 0;
    expect(answered).toBeLessThan(200);
  });
});
