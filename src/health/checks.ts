// Health probes, one function per check type. Each runs once and resolves
// to a result; it never throws and never outlives its timeout. They all aim
// at the server's own address (its NIC), never at a shared VIP: a VIP
// answers from whichever server the route points at, so it says nothing
// about any one server.

import { request } from 'node:http';
import { createConnection } from 'node:net';
import { createRequire } from 'node:module';
import type { CheckConfig } from '../config/types.js';
import { internetChecksum } from '../packet/checksum.js';
import { formatAddress } from '../util/ipv4.js';

export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  /** Why it failed, in a few words ("timeout after 40 ms", "HTTP 503"). */
  reason?: string;
}

/** ARP probing goes through vipr's own resolver on the server's port. */
export interface ArpProber {
  probe(address: number, timeoutMs: number): Promise<boolean>;
}

/** Runs TCP and HTTP checks elsewhere (the daemon's probe thread, probe-thread.ts). */
export interface RemoteProber {
  run(check: CheckConfig, address: number, timeoutMs: number): Promise<CheckResult>;
}

export interface CheckContext {
  arp: ArpProber;
  icmp: IcmpPinger;
  /** When set, TCP and HTTP checks go there instead of running on this thread. */
  remote?: RemoteProber;
}

export async function runCheck(check: CheckConfig, address: number, timeoutMs: number, context: CheckContext): Promise<CheckResult> {
  if (context.remote && (check.type === 'tcp' || check.type === 'http')) return context.remote.run(check, address, timeoutMs);
  const started = performance.now();
  const done = (ok: boolean, reason?: string): CheckResult => ({ ok, latencyMs: performance.now() - started, reason });
  try {
    switch (check.type) {
      case 'arp':
        return (await context.arp.probe(address, timeoutMs)) ? done(true) : done(false, `no ARP reply within ${timeoutMs} ms`);
      case 'icmp':
        return (await context.icmp.ping(address, timeoutMs)) ? done(true) : done(false, `no echo reply within ${timeoutMs} ms`);
      case 'tcp':
        return await tcpConnect(address, check.port, timeoutMs).then(
          () => done(true),
          (error: Error) => done(false, `TCP ${check.port}: ${error.message}`),
        );
      case 'http':
        return await httpGet(address, check, timeoutMs).then(
          () => done(true),
          (error: Error) => done(false, `HTTP ${check.port}${check.path}: ${error.message}`),
        );
    }
  } catch (error) {
    return done(false, (error as Error).message);
  }
}

function tcpConnect(address: number, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: formatAddress(address), port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no connection within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(error.code ?? error.message));
    });
  });
}

/** Bodies are read up to this much to look for the expected text. */
const MAX_BODY = 64 * 1024;

function httpGet(address: number, check: Extract<CheckConfig, { type: 'http' }>, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const host = formatAddress(address);
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const req = request(
      { host, port: check.port, path: check.path, method: 'GET', agent: false, headers: { host: check.host ?? host, 'user-agent': 'vipr-health', connection: 'close' } },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < MAX_BODY) body += chunk;
        });
        response.on('end', () => {
          clearTimeout(timer);
          if (response.statusCode !== check.status) reject(new Error(`status ${response.statusCode}, expected ${check.status}`));
          else if (check.body !== undefined && !body.includes(check.body)) reject(new Error(`body lacks ${JSON.stringify(check.body)}`));
          else resolve();
        });
        response.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      },
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new Error(error.code ?? error.message));
    });
    req.end();
  });
}

// --- ICMP echo through a raw socket (the `raw-socket` package): Node has no ICMP of its own. ---

interface RawSocket {
  send(buffer: Buffer, offset: number, length: number, address: string, callback: (error?: Error) => void): void;
  on(event: 'message', listener: (buffer: Buffer, source: string) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  close(): void;
}

const require = createRequire(import.meta.url);

export class IcmpPinger {
  private socket: RawSocket | undefined;
  private sequence = 0;
  private readonly identifier = process.pid & 0xffff;
  private readonly waiting = new Map<number, () => void>();

  private open(): RawSocket {
    if (this.socket) return this.socket;
    const raw = require('raw-socket') as { createSocket(options: { protocol: number }): RawSocket; Protocol: { ICMP: number } };
    const socket = raw.createSocket({ protocol: raw.Protocol.ICMP });
    socket.on('message', (buffer) => {
      // Raw IPv4 sockets deliver the IP header too.
      const ihl = (buffer[0] & 0x0f) * 4;
      if (buffer.length < ihl + 8 || buffer[ihl] !== 0) return; // echo reply only
      if (buffer.readUInt16BE(ihl + 4) !== this.identifier) return;
      const waiter = this.waiting.get(buffer.readUInt16BE(ihl + 6));
      waiter?.();
    });
    socket.on('error', () => undefined);
    this.socket = socket;
    return socket;
  }

  ping(address: number, timeoutMs: number): Promise<boolean> {
    const socket = this.open();
    this.sequence = (this.sequence + 1) & 0xffff;
    const sequence = this.sequence;
    const packet = Buffer.alloc(16);
    packet[0] = 8;
    packet.writeUInt16BE(this.identifier, 4);
    packet.writeUInt16BE(sequence, 6);
    packet.write('vipr', 8);
    packet.writeUInt16BE(internetChecksum(packet, 0, packet.length), 2);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(sequence);
        resolve(false);
      }, timeoutMs);
      this.waiting.set(sequence, () => {
        clearTimeout(timer);
        this.waiting.delete(sequence);
        resolve(true);
      });
      socket.send(packet, 0, packet.length, formatAddress(address), (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.waiting.delete(sequence);
        resolve(false);
      });
    });
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
