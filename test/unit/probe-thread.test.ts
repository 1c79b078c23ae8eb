// The daemon's probe thread: TCP and HTTP checks run in a worker thread
// (dist/src/health/probe-worker.js, built by `npm run build`), so their work
// never sits between two packet batches. The same checks give the same
// answers there as on this thread; the thread really does the work (this
// thread may be blocked meanwhile); a thread that dies or hangs turns into
// failed checks and a fresh thread, never into a stalled monitor.

import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CheckConfig } from '../../src/config/types.js';
import { runCheck, type CheckContext } from '../../src/health/checks.js';
import { ProbeThread } from '../../src/health/probe-thread.js';
import { parseAddress } from '../../src/util/ipv4.js';

const WORKER = new URL('../../dist/src/health/probe-worker.js', import.meta.url);
const LOCALHOST = parseAddress('127.0.0.1');
const TIMEOUT_MS = 300;

beforeAll(() => {
  if (!existsSync(fileURLToPath(WORKER))) throw new Error(`${fileURLToPath(WORKER)} is missing: run \`npm run build\` first (scripts/test.sh does)`);
});

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function thread(script: URL = WORKER): ProbeThread {
  const probes = new ProbeThread({ script });
  cleanups.push(() => probes.close());
  return probes;
}

async function listening<T extends TcpServer | HttpServer>(server: T): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return (server.address() as AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const NOT_HERE: CheckContext = {
  arp: { probe: async () => { throw new Error('no ARP here'); } },
  icmp: { ping: async () => { throw new Error('no ICMP here'); } } as unknown as CheckContext['icmp'],
};

describe('ProbeThread', () => {
  it('answers TCP and HTTP checks as this thread would', async () => {
    const http = await listening(createHttpServer((request, response) => {
      response.statusCode = request.url === '/health' ? 200 : 503;
      response.end('web1 ok');
    }));
    const refused = await closedPort();
    const checks: CheckConfig[] = [
      { type: 'tcp', port: http },
      { type: 'tcp', port: refused },
      { type: 'http', port: http, path: '/health', status: 200, body: 'web1' },
      { type: 'http', port: http, path: '/other', status: 200 },
      { type: 'http', port: http, path: '/health', status: 200, body: 'web2' },
    ];
    const probes = thread();
    for (const check of checks) {
      const here = await runCheck(check, LOCALHOST, TIMEOUT_MS, NOT_HERE);
      const there = await runCheck(check, LOCALHOST, TIMEOUT_MS, { ...NOT_HERE, remote: probes });
      expect({ ok: there.ok, reason: there.reason }).toEqual({ ok: here.ok, reason: here.reason });
      expect(there.latencyMs).toBeGreaterThanOrEqual(0);
    }
    expect(probes.starts).toBe(1);
  });

  it('ARP and ICMP checks stay on this thread', async () => {
    const probes = thread();
    const result = await runCheck({ type: 'arp' }, LOCALHOST, TIMEOUT_MS, { ...NOT_HERE, arp: { probe: async () => true }, remote: probes });
    expect(result.ok).toBe(true);
    expect(probes.starts).toBe(0);
  });

  it('does the work in its own thread: a check completes while this thread is blocked', async () => {
    // The kernel completes the handshake with this thread's listener by itself;
    // only the prober's own event loop must run to see it.
    const port = await listening(createTcpServer((socket) => socket.destroy()));
    const probes = thread();
    await probes.run({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS); // the worker is up
    const pending = probes.run({ type: 'tcp', port }, LOCALHOST, 5000);
    const blockedMs = 2000;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, blockedMs);
    const result = await pending;
    expect(result.ok).toBe(true);
    // Measured in the worker: had it waited for this thread, it would be >= blockedMs.
    // The bound is behaviour, not speed: a loopback connect taking a whole
    // second would take a machine far busier than any test run; how fast the
    // worker is belongs to a benchmark.
    expect(result.latencyMs).toBeLessThan(blockedMs / 2);
  });

  it('a thread that dies fails the checks in flight, and the next check starts a new one', async () => {
    const probes = thread();
    const port = await listening(createTcpServer((socket) => socket.destroy()));
    expect((await probes.run({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS)).ok).toBe(true);
    // A check to a port that accepts but never answers HTTP stays in flight.
    const silent = await listening(createTcpServer(() => undefined));
    const inFlight = probes.run({ type: 'http', port: silent, path: '/', status: 200 }, LOCALHOST, 5000);
    await (probes as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    const failed = await inFlight;
    expect(failed.ok).toBe(false);
    expect(failed.reason).toMatch(/^the probe thread exited with code \d+$/);
    expect((await probes.run({ type: 'tcp', port }, LOCALHOST, TIMEOUT_MS)).ok).toBe(true);
    expect(probes.starts).toBe(2);
  });

  it('a thread that never answers: the check fails after its timeout and a grace second', async () => {
    const mute = pathToFileURL(fileURLToPath(new URL('./fixtures/mute-worker.mjs', import.meta.url)));
    const probes = thread(mute);
    const result = await probes.run({ type: 'tcp', port: 9 }, LOCALHOST, 100);
    expect(result).toEqual({ ok: false, latencyMs: expect.any(Number), reason: 'the probe thread gave no answer within 1100 ms' });
    expect(result.latencyMs).toBeGreaterThanOrEqual(1000);
  });

  it('close fails what is in flight and refuses later checks', async () => {
    const probes = thread();
    const silent = await listening(createTcpServer(() => undefined));
    const inFlight = probes.run({ type: 'http', port: silent, path: '/', status: 200 }, LOCALHOST, 5000);
    await probes.close();
    expect(await inFlight).toMatchObject({ ok: false, reason: 'health checks stopped' });
    expect(await probes.run({ type: 'tcp', port: silent }, LOCALHOST, TIMEOUT_MS)).toMatchObject({ ok: false, reason: 'health checks stopped' });
  });
});
