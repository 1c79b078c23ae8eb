// A control plane around the article's router, for the unit tests of the
// control socket: a real ControlServer on a Unix socket in a temp dir, the
// real ControlService, the article's router in memory (MemoryPorts) and a
// StateStore in the same temp dir. Also a raw connection (Wire) for what the
// client library would never send.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterEach } from 'vitest';
import type { RouteConfig } from '../src/config/types.js';
import { ControlClient } from '../src/control/client.js';
import { ControlServer, type ControlServerOptions } from '../src/control/server.js';
import { ControlService, type ControlContext } from '../src/control/service.js';
import { StateStore } from '../src/control/state-store.js';
import type { Router } from '../src/router/router.js';
import { NH_BLACKHOLE, NH_UNREACHABLE } from '../src/dataplane/fib/nexthop.js';
import { ipv4Frame } from '../src/packet/builder.js';
import { formatAddress, formatPrefix, parseAddress } from '../src/util/ipv4.js';
import { ARTICLE_ROUTES, ARTICLE_SERVERS, articleControlContext, articleRouter, MAC, UP0, type ArticleRouter } from './fixtures/article-router.js';

export const SERVERS = ARTICLE_SERVERS;
export const ADDRESS_OF: Record<string, string> = { web1: '192.168.1.2', web2: '192.168.1.3', web3: '192.168.1.4', web4: '192.168.1.5' };
/** What the daemon hands the service: the servers have no health checks (always up) and the monitor is never started. */
export const controlContext = articleControlContext;

export interface Rig {
  dir: string;
  socket: string;
  stateFile: string;
  article: ArticleRouter;
  router: Router;
  server: ControlServer;
  service: ControlService;
  context: ControlContext;
  /** Every log line (pino JSON) the server and service wrote. */
  logs: string[];
}

/** Run after each test, last first: servers stopped, connections closed, temp dirs removed. */
export const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'vipr-control-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function captureLogger(logs: string[]): Logger {
  return pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
}

export interface RigOptions {
  stateFile?: (dir: string) => string;
  /** Config routes after the article's own. */
  extraRoutes?: RouteConfig[];
  server?: ControlServerOptions;
}

export async function rig(options: RigOptions = {}): Promise<Rig> {
  const dir = await tempDir();
  const socket = join(dir, 'vipr.sock');
  const stateFile = options.stateFile ? options.stateFile(dir) : join(dir, 'state.json');
  const article = articleRouter(options.extraRoutes ? { routes: [...ARTICLE_ROUTES, ...options.extraRoutes] } : {});
  article.resolveAll();
  const logs: string[] = [];
  const log = captureLogger(logs);
  const context = controlContext(article.router, new StateStore(stateFile), log);
  const service = new ControlService(context);
  const server = new ControlServer({ socket, mode: '0660' }, service, log, options.server);
  await server.start();
  cleanups.push(() => server.stop());
  return { dir, socket, stateFile, article, router: article.router, server, service, context, logs };
}

export async function client(r: Rig): Promise<ControlClient> {
  const c = await ControlClient.connect(r.socket);
  cleanups.push(async () => c.close());
  return c;
}

/** The gateway the live FIB sends `address` to, or the special next hop's name. */
export function fibTarget(router: Router, address: string): string {
  const nextHop = router.tables.fib.lookup(parseAddress(address));
  if (nextHop === NH_UNREACHABLE) return 'unreachable';
  if (nextHop === NH_BLACKHOLE) return 'blackhole';
  return formatAddress(router.tables.nextHops.gateway[nextHop]);
}

/** Sends one frame from the client to `dst` through the data plane; the destination MAC of what leaves lan0. */
export function forwardedTo(article: ArticleRouter, dst: string): string | undefined {
  article.lan0.take();
  article.receive(UP0, ipv4Frame({ dstMac: MAC.up0, srcMac: MAC.client, src: '10.0.0.2', dst, ttl: 64 }));
  const out = article.lan0.take();
  if (out.length === 0) return undefined;
  return [...out[0].subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A route as a line of text, for comparing two RIBs. */
export const routeRows = (router: Router) =>
  router.rib.routes().map((r) => `${formatPrefix(r.prefix)} ${r.type} ${r.via.map((v) => formatAddress(v.address)).join(',')} ${r.source}`);

export const readState = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as { version: number; routes: unknown[] };

/** A raw connection, for what the client library would never send. */
export class Wire {
  private text = '';
  private waiters: (() => void)[] = [];
  closed = false;
  readonly done: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.text += chunk;
      this.wake();
    });
    this.done = new Promise((resolve) => socket.on('close', () => {
      this.closed = true;
      this.wake();
      resolve();
    }));
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      socket.once('connect', () => {
        const wire = new Wire(socket);
        cleanups.push(async () => void socket.destroy());
        resolve(wire);
      });
      socket.once('error', reject);
    });
  }

  private wake() {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next reply: its lines up to and including the `ok` or `error ...` line. */
  async reply(timeoutMs = 3000): Promise<string[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const lines = this.text.split('\n');
      const status = lines.findIndex((l, i) => i < lines.length - 1 && (l === 'ok' || l.startsWith('error ')));
      if (status >= 0) {
        const reply = lines.slice(0, status + 1);
        this.text = lines.slice(status + 1).join('\n');
        return reply;
      }
      if (this.closed) throw new Error(`connection closed; unanswered text: ${JSON.stringify(this.text.slice(0, 200))}`);
      if (Date.now() > end) throw new Error(`no reply within ${timeoutMs} ms; have ${JSON.stringify(this.text.slice(0, 200))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The next line (JSON replies are one line). */
  async line(timeoutMs = 3000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (!this.text.includes('\n')) {
      if (this.closed || Date.now() > end) throw new Error(`no line; have ${JSON.stringify(this.text.slice(0, 200))}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const at = this.text.indexOf('\n');
    const line = this.text.slice(0, at);
    this.text = this.text.slice(at + 1);
    return line;
  }

  /** Everything received and not yet taken. */
  rest(): string {
    return this.text;
  }
}
