// Health probes against real sockets on 127.0.0.1, and the EventBus's notify
// command as a real child process. Everything here runs on real timers with
// short timeouts (tens of milliseconds), so the file stays well under a second
// or two.
//
// ARP and ICMP need vipr's ports and raw sockets: the lab tests cover them;
// here they only show that runCheck turns any prober answer (or throw) into a
// result.

import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createConnection, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckConfig } from '../../src/config/types.js';
import { runCheck, type CheckContext } from '../../src/health/checks.js';
import { EventBus, type ViprEvent } from '../../src/health/events.js';
import { parseAddress } from '../../src/util/ipv4.js';

const LOCALHOST = parseAddress('127.0.0.1');
/** Long enough for a loaded CI machine to connect over loopback, short enough to keep the file fast. */
const TIMEOUT_MS = 150;

const NO_PROBES: CheckContext = {
  arp: { probe: async () => { throw new Error('no ARP in this test'); } },
  icmp: { ping: async () => { throw new Error('no ICMP in this test'); } } as unknown as CheckContext['icmp'],
};

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listening<T extends TcpServer | HttpServer>(server: T): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A TCP server that accepts and keeps every connection open. */
async function tcpServer(): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const port = await listening(server);
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return port;
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  const port = await listening(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A port whose SYNs go unanswered: a listener with backlog 1 in a worker
 * whose event loop is blocked (it never accepts), its accept queue filled
 * first. Linux drops SYNs to a listener with a full accept queue, so a
 * connect there hangs until its own timeout, like one to a dead host.
 */
async function blackholePort(): Promise<number> {
  const release = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      parentPort.postMessage(server.address().port);
      // Block this thread's event loop: nothing is ever accepted.
      setImmediate(() => { Atomics.wait(workerData, 0, 0); server.close(); });
    });
    `,
    { eval: true, workerData: release },
  );
  const [port] = (await once(worker, 'message')) as [number];
  const fillers: Socket[] = [];
  cleanups.push(async () => {
    for (const socket of fillers) socket.destroy();
    Atomics.store(release, 0, 1);
    Atomics.notify(release, 0);
    await worker.terminate();
  });
  // Connect until one hangs: the queue is then full.
  for (let k = 0; k < 8; k++) {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    fillers.push(socket);
    const connected = await Promise.race([once(socket, 'connect').then(() => true), new Promise((resolve) => setTimeout(resolve, 50, false))]);
    if (!connected) return port;
  }
  throw new Error('the accept queue never filled; cannot make a port that drops SYNs');
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** An HTTP server on 127.0.0.1; `seen` collects the requests it got. */
async function httpServer(handler: Handler): Promise<{ port: number; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const server = createHttpServer((request, response) => {
    seen.push(request);
    handler(request, response);
  });
  const port = await listening(server);
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { port, seen };
}

const http = (port: number, over: Partial<Extract<CheckConfig, { type: 'http' }>> = {}): CheckConfig =>
  ({ type: 'http', port, path: '/', status: 200, ...over });

// ---- runCheck ---------------------------------------------------------------

describe('runCheck: tcp', () => {
  it('succeeds when the port accepts, and reports how long it took', async () => {
    const port = await tcpServer();
    const result = await runCheck({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(result).toEqual({ ok: true, latencyMs: expect.any(Number), reason: undefined });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(result.latencyMs).toBeLessThan(TIMEOUT_MS);
  });

  it('fails at once when the connection is refused', async () => {
    const port = await closedPort();
    const result = await runCheck({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(result).toEqual({ ok: false, latencyMs: expect.any(Number), reason: `TCP ${port}: ECONNREFUSED` });
    expect(result.latencyMs).toBeLessThan(TIMEOUT_MS);
  });

  it('fails after its timeout when nothing answers the SYN', async () => {
    const port = await blackholePort();
    const result = await runCheck({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(result).toEqual({ ok: false, latencyMs: expect.any(Number), reason: `TCP ${port}: no connection within ${TIMEOUT_MS} ms` });
    expect(result.latencyMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
    // Behaviour, not speed: the check's own timer ended it (the reason says so),
    // long before the kernel would give up on the SYN (about two minutes). How
    // soon after the timeout a busy event loop gets to it is not this test's business.
    expect(result.latencyMs).toBeLessThan(TIMEOUT_MS + 10_000);
  });
});

describe('runCheck: http', () => {
  const cases: {
    description: string;
    handler: Handler;
    check: (port: number) => CheckConfig;
    ok: boolean;
    reason?: (port: number) => string;
  }[] = [
    {
      description: 'status and body as expected',
      handler: (_request, response) => response.end('status: ok\n'),
      check: (port) => http(port, { path: '/health', body: 'ok' }),
      ok: true,
    },
    {
      description: 'another expected status',
      handler: (_request, response) => response.writeHead(204).end(),
      check: (port) => http(port, { status: 204 }),
      ok: true,
    },
    {
      description: 'wrong status',
      handler: (_request, response) => response.writeHead(503).end('ok'),
      check: (port) => http(port, { path: '/health', body: 'ok' }),
      ok: false,
      reason: (port) => `HTTP ${port}/health: status 503, expected 200`,
    },
    {
      description: 'a redirect is not followed: its status is the answer',
      handler: (_request, response) => response.writeHead(302, { location: '/elsewhere' }).end(),
      check: (port) => http(port),
      ok: false,
      reason: (port) => `HTTP ${port}/: status 302, expected 200`,
    },
    {
      description: 'body lacks the expected text',
      handler: (_request, response) => response.end('starting'),
      check: (port) => http(port, { path: '/health', body: 'ready' }),
      ok: false,
      reason: (port) => `HTTP ${port}/health: body lacks "ready"`,
    },
    {
      description: 'the expected text past the first chunk still counts',
      handler: (_request, response) => {
        response.write('x'.repeat(20_000));
        setTimeout(() => response.end('ready'), 5);
      },
      check: (port) => http(port, { body: 'ready' }),
      ok: true,
    },
    {
      description: 'accepts the connection but never answers: timeout',
      handler: () => undefined,
      check: (port) => http(port),
      ok: false,
      reason: (port) => `HTTP ${port}/: no answer within ${TIMEOUT_MS} ms`,
    },
    {
      description: 'headers sent, body never finished: timeout',
      handler: (_request, response) => response.write('ok'),
      check: (port) => http(port, { body: 'ok' }),
      ok: false,
      reason: (port) => `HTTP ${port}/: no answer within ${TIMEOUT_MS} ms`,
    },
    {
      description: 'connection closed without an answer',
      handler: (request) => request.socket.destroy(),
      check: (port) => http(port),
      ok: false,
      reason: (port) => `HTTP ${port}/: ECONNRESET`,
    },
  ];

  it.each(cases)('$description', async ({ handler, check, ok, reason }) => {
    const { port } = await httpServer(handler);
    const result = await runCheck(check(port), LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(result).toEqual({ ok, latencyMs: expect.any(Number), reason: reason?.(port) });
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    if (reason?.(port).includes('no answer')) expect(result.latencyMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 1);
    else expect(result.latencyMs).toBeLessThan(TIMEOUT_MS);
  });

  it('connection refused', async () => {
    const port = await closedPort();
    const result = await runCheck(http(port), LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(result).toEqual({ ok: false, latencyMs: expect.any(Number), reason: `HTTP ${port}/: ECONNREFUSED` });
  });

  it('asks for the path with the configured Host header (default: the address), identifies itself and closes', async () => {
    const { port, seen } = await httpServer((_request, response) => response.end());
    await runCheck(http(port, { path: '/health?deep=1', host: 'www.example.test' }), LOCALHOST, TIMEOUT_MS, NO_PROBES);
    await runCheck(http(port), LOCALHOST, TIMEOUT_MS, NO_PROBES);
    expect(seen.map((r) => [r.method, r.url, r.headers.host, r.headers['user-agent'], r.headers.connection])).toEqual([
      ['GET', '/health?deep=1', 'www.example.test', 'vipr-health', 'close'],
      ['GET', '/', '127.0.0.1', 'vipr-health', 'close'],
    ]);
  });
});

describe('runCheck: arp and icmp go through the context', () => {
  const cases: { description: string; check: CheckConfig; context: Partial<CheckContext>; ok: boolean; reason?: string }[] = [
    { description: 'arp answered', check: { type: 'arp' }, context: { arp: { probe: async () => true } }, ok: true },
    { description: 'arp silent', check: { type: 'arp' }, context: { arp: { probe: async () => false } }, ok: false, reason: `no ARP reply within ${TIMEOUT_MS} ms` },
    { description: 'icmp answered', check: { type: 'icmp' }, context: { icmp: { ping: async () => true } as unknown as CheckContext['icmp'] }, ok: true },
    {
      description: 'icmp silent', check: { type: 'icmp' }, context: { icmp: { ping: async () => false } as unknown as CheckContext['icmp'] },
      ok: false, reason: `no echo reply within ${TIMEOUT_MS} ms`,
    },
    // A probe that throws (raw socket not permitted, say) is a failed check, never an exception.
    {
      description: 'a prober that throws', check: { type: 'icmp' },
      context: { icmp: { ping: async () => { throw new Error('EPERM: raw socket'); } } as unknown as CheckContext['icmp'] },
      ok: false, reason: 'EPERM: raw socket',
    },
  ];
  it.each(cases)('$description', async ({ check, context, ok, reason }) => {
    const result = await runCheck(check, LOCALHOST, TIMEOUT_MS, { ...NO_PROBES, ...context });
    expect(result).toEqual({ ok, latencyMs: expect.any(Number), reason });
  });

  it('passes the address and the timeout on to the prober', async () => {
    const calls: [number, number][] = [];
    await runCheck({ type: 'arp' }, parseAddress('192.168.1.2'), 40, { ...NO_PROBES, arp: { probe: async (a, t) => (calls.push([a, t]), true) } });
    expect(calls).toEqual([[parseAddress('192.168.1.2'), 40]]);
  });
});

// ---- EventBus -----------------------------------------------------------------

const EVENT: ViprEvent = {
  time: '2025-01-01T00:00:00.000Z',
  type: 'server',
  server: 'web1',
  oldState: 'up',
  newState: 'down',
  reason: 'http:80/health failed 3 times: HTTP 80/health: status 503, expected 200',
  routesMoved: [
    { prefix: '192.168.1.32/27', from: 'web1', to: 'web2' },
    { prefix: '192.168.1.128/27', from: 'web1', to: null },
  ],
};

interface LogLine { level: number; msg: string; [key: string]: unknown }

function captureLogger(): { log: pino.Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-health-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function eventually<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, withinMs = 3_000): Promise<T> {
  const deadline = performance.now() + withinMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const readIfThere = (path: string) => readFile(path, 'utf8').catch(() => undefined);

/** Gone, or a zombie nobody reaped yet (PID 1 of a container may never reap): either way no longer running. */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('EventBus', () => {
  it('logs the event and hands it to every subscriber; an unsubscribed listener gets nothing', () => {
    const { log, lines } = captureLogger();
    const bus = new EventBus(log);
    const first: ViprEvent[] = [];
    const second: ViprEvent[] = [];
    bus.subscribe((event) => first.push(event));
    const unsubscribe = bus.subscribe((event) => second.push(event));
    unsubscribe();
    bus.publish(EVENT);
    expect(first).toEqual([EVENT]);
    expect(second).toEqual([]);
    expect(lines.map((l) => l.msg)).toEqual([
      `event: server web1 up -> down (${EVENT.reason}); routes: 192.168.1.32/27 web1 -> web2; 192.168.1.128/27 web1 -> withdrawn`,
    ]);
  });

  it('runs the notify command with the event in its environment', async () => {
    const dir = await tempDir();
    const { log } = captureLogger();
    // Written under another name and renamed, so the file is read only once complete.
    const bus = new EventBus(log, { command: `env > '${dir}/env.tmp' && mv '${dir}/env.tmp' '${dir}/env'`, timeoutMs: 5_000 });
    bus.publish(EVENT);
    const text = await eventually('the notify command', () => readIfThere(join(dir, 'env')));
    // Only what vipr sets: the test runner's own VIPR_TEST_* variables pass through the environment too.
    const env = Object.fromEntries(text.split('\n').filter((l) => l.startsWith('VIPR_') && !l.startsWith('VIPR_TEST_')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env).toEqual({
      VIPR_EVENT: 'server',
      VIPR_SERVER: 'web1',
      VIPR_PORT: '',
      VIPR_OLD_STATE: 'up',
      VIPR_NEW_STATE: 'down',
      VIPR_REASON: EVENT.reason,
      VIPR_ROUTES_MOVED: '192.168.1.32/27:web1>web2 192.168.1.128/27:web1>withdrawn',
      VIPR_EVENT_JSON: JSON.stringify(EVENT),
    });
    expect(JSON.parse(env.VIPR_EVENT_JSON)).toEqual(EVENT);
    // The daemon's own environment is passed on too (PATH, for commands named without a path).
    expect(text).toMatch(/^PATH=/m);
  });

  it('a failback event without a server leaves the server fields empty', async () => {
    const dir = await tempDir();
    const bus = new EventBus(captureLogger().log, { command: `env > '${dir}/env.tmp' && mv '${dir}/env.tmp' '${dir}/env'`, timeoutMs: 5_000 });
    bus.publish({ time: EVENT.time, type: 'failback', reason: 'failback by the operator', routesMoved: [{ prefix: '192.168.1.32/27', from: 'web2', to: 'web1' }] });
    const text = await eventually('the notify command', () => readIfThere(join(dir, 'env')));
    expect(text).toContain('\nVIPR_EVENT=failback\n');
    expect(text).toContain('\nVIPR_SERVER=\n');
    expect(text).toContain('\nVIPR_OLD_STATE=\n');
    expect(text).toContain('\nVIPR_ROUTES_MOVED=192.168.1.32/27:web2>web1\n');
  });

  it('a notify command that hangs does not hold up publish, and is killed with its children after notifyTimeoutMs', async () => {
    const dir = await tempDir();
    const { log, lines } = captureLogger();
    const timeoutMs = 200;
    const command = `sleep 30 & echo $! > '${dir}/child'; echo $$ > '${dir}/shell'; wait`;
    const bus = new EventBus(log, { command, timeoutMs });
    const seen: ViprEvent[] = [];
    bus.subscribe((event) => seen.push(event));

    const started = performance.now();
    // publish is synchronous: it has returned (and told the subscribers) while
    // the command it started still runs, so it did not wait for the command.
    // How fast it returns is a speed claim, for a benchmark, not asserted here.
    bus.publish(EVENT);
    expect(seen).toEqual([EVENT]);

    const shell = Number(await eventually('the shell pid', () => readIfThere(join(dir, 'shell'))));
    const child = Number(await eventually('the child pid', () => readIfThere(join(dir, 'child'))));
    expect(running(shell)).toBe(true);
    expect(running(child)).toBe(true);
    // Killed, the whole process group, and not before the timeout (a lower bound:
    // a busy machine can only make the kill later, never earlier).
    await eventually('the hung command to be killed', () => !running(shell) && !running(child), timeoutMs + 10_000);
    expect(performance.now() - started).toBeGreaterThanOrEqual(timeoutMs);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([`notify: ${command} still running after ${timeoutMs} ms; killed`]);
  });

  it('a failing command is logged and harmless: the next event notifies again', async () => {
    const dir = await tempDir();
    const { log, lines } = captureLogger();
    const bus = new EventBus(log, { command: 'exit 3', timeoutMs: 5_000 });
    expect(() => bus.publish(EVENT)).not.toThrow();
    await eventually('the failure to be logged', () => lines.find((l) => l.level === 40));
    expect(lines.filter((l) => l.level === 40).map((l) => [l.msg, l.code])).toEqual([['notify: exit 3 exited with 3', 3]]);

    bus.setNotify({ command: `/nonexistent/notify-script`, timeoutMs: 5_000 });
    bus.publish(EVENT);
    await eventually('the missing command to be logged', () => lines.filter((l) => l.level === 40).length >= 2 || undefined);
    expect(lines.filter((l) => l.level === 40)[1].msg).toBe('notify: /nonexistent/notify-script exited with 127');

    bus.setNotify({ command: `touch '${dir}/ran'`, timeoutMs: 5_000 });
    bus.publish(EVENT);
    await eventually('the next notify', () => readIfThere(join(dir, 'ran')).then((t) => (t === undefined ? undefined : true)));
  });

  it('at most 8 notify commands at once: more events are logged, not notified', async () => {
    const { log, lines } = captureLogger();
    const timeoutMs = 150;
    const bus = new EventBus(log, { command: 'sleep 30', timeoutMs });
    for (let k = 0; k < 9; k++) bus.publish(EVENT);
    const warnings = () => lines.filter((l) => l.level === 40).map((l) => l.msg);
    expect(warnings()).toEqual(['notify: 8 commands still running; not notifying this event']);
    await eventually('all eight to be killed', () => warnings().filter((m) => m.endsWith('killed')).length === 8 || undefined);
    // Room again once they are gone.
    await eventually('the slots to free up', async () => {
      lines.length = 0;
      bus.setNotify({ command: 'true', timeoutMs });
      bus.publish(EVENT);
      return warnings().length === 0 || undefined;
    });
  });
});
