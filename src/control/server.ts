// The control socket: a Unix stream socket speaking the line protocol of
// protocol.ts. Defensive by construction: every client is bounded in line
// length, idle time, unread output and number, so a broken or hostile client
// is answered or dropped and never disturbs the daemon or the data plane.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/types.js';
import { parseRequest, type Request } from './grammar.js';
import {
  ControlError, formatJsonReply, formatTextError, formatTextOk, MAX_LINE, type Reply,
} from './protocol.js';
import type { ControlService, Session } from './service.js';
import { INVALID_COMMAND } from './command-counts.js';
import type { ViprEvent } from '../health/events.js';

/** A client silent this long is told so and disconnected. */
export const IDLE_TIMEOUT_MS = 60_000;
/** More clients than this at once are refused: a hundred scripts plus room for the operator. */
export const MAX_CLIENTS = 256;
/** A client that stops reading is dropped once this much output waits for it. */
const MAX_PENDING_OUTPUT = 1 << 20;

export class ControlServerError extends Error {
  readonly code = 'ECONTROL';
}

/** A live vipr answers on the control socket: its ports and system settings are its own, not to be undone. */
export class ControlSocketInUseError extends ControlServerError {}

export interface ControlServerOptions {
  /** Idle limit per client; IDLE_TIMEOUT_MS unless a test wants it short. */
  idleTimeoutMs?: number;
}

export class ControlServer {
  private server: Server | undefined;
  private readonly clients = new Set<Socket>();
  private readonly idleTimeoutMs: number;

  constructor(
    private readonly config: ControlConfig,
    private readonly service: ControlService,
    private readonly log: Logger,
    options: ControlServerOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  }

  get path(): string {
    return this.config.socket;
  }

  async start(): Promise<void> {
    const path = this.config.socket;
    // mkdir's mode is cut by the umask: from a root shell with `umask 077` the
    // directories would be 0700 and shut the socket's group out. So the ones
    // made here get their mode again (existing ones are the operator's).
    const made = await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    if (made !== undefined) {
      for (let dir = dirname(path); dir.startsWith(made); dir = dirname(dir)) await chmod(dir, 0o755);
    }
    await this.clearStale(path);
    // Half-open: `printf 'route replace ...\n' | socat - UNIX-CONNECT:...` shuts its
    // side down right after sending; the replies still have to get out ('end' below closes ours).
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.log.error({ err: error }, `control socket: ${error.message}`));
    this.server = server;
    await chmod(path, parseInt(this.config.mode, 8));
    if (this.config.owner !== undefined || this.config.group !== undefined) {
      const uid = this.config.owner === undefined ? -1 : await lookupId('/etc/passwd', this.config.owner);
      const gid = this.config.group === undefined ? -1 : await lookupId('/etc/group', this.config.group);
      await chown(path, uid, gid);
    }
    this.log.info({ socket: path, mode: this.config.mode }, `control socket ${path} (mode ${this.config.mode})`);
  }

  async stop(): Promise<void> {
    await this.service.close(); // a running trace writes out and closes its file first
    for (const socket of this.clients) socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.config.socket).catch(() => undefined);
  }

  /** Refuses to start over a live vipr; removes a socket file nobody listens on. */
  private async clearStale(path: string): Promise<void> {
    const alive = await new Promise<boolean | 'absent'>((resolve) => {
      const probe = createConnection(path);
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ENOENT' ? 'absent' : false));
    });
    if (alive === true) {
      throw new ControlSocketInUseError(`another vipr is running on control socket ${path}; stop it first, or set control.socket to another path`);
    }
    if (alive === false) {
      // Only ever remove a socket: a mistyped control.socket must not delete a config file.
      const info = await lstat(path);
      if (!info.isSocket()) {
        throw new ControlServerError(`control socket path ${path} exists and is not a socket; refusing to remove it (set control.socket to another path)`);
      }
      await unlink(path);
      this.log.warn({ socket: path }, `removed stale control socket ${path} (nothing was listening)`);
    }
  }

  private accept(socket: Socket): void {
    if (this.clients.size >= MAX_CLIENTS) {
      socket.end(formatTextError(new ControlError('EBUSY', `too many control clients (${MAX_CLIENTS}); try again`)));
      return;
    }
    this.clients.add(socket);
    const hangup = new AbortController();
    const session: Session = {
      transaction: null,
      closed: hangup.signal,
      holdOpen: () => {
        socket.setTimeout(0);
        return () => {
          if (!socket.destroyed) socket.setTimeout(this.idleTimeoutMs);
        };
      },
    };
    let buffered: Buffer[] = [];
    let bufferedBytes = 0;
    let discarding = false;
    let chain: Promise<void> = Promise.resolve();

    const send = (text: string) => {
      if (socket.destroyed) return;
      socket.write(text);
      if (socket.writableLength > MAX_PENDING_OUTPUT) {
        this.log.warn('control client does not read its replies; dropped');
        socket.destroy();
      }
    };
    const follow = (subscribe: NonNullable<Reply['follow']>, json: boolean) => {
      // A follower waits for events, possibly for days: no idle limit, until it disconnects.
      socket.setTimeout(0);
      const unsubscribe = subscribe((item) => send(json ? JSON.stringify(item) + '\n' : formatEvent(item) + '\n'));
      socket.once('close', unsubscribe);
    };
    const enqueue = (line: Buffer) => {
      chain = chain.then(() => this.answer(line, session, send, follow));
    };

    socket.setTimeout(this.idleTimeoutMs);
    socket.on('timeout', () => {
      send(formatTextError(new ControlError('ETIMEOUT', `idle for ${this.idleTimeoutMs / 1000} s; closing`)));
      socket.end();
    });
    socket.on('data', (chunk: Buffer) => {
      let start = 0;
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== 0x0a) continue;
        const piece = chunk.subarray(start, i);
        start = i + 1;
        if (discarding) {
          discarding = false;
          continue;
        }
        const line = bufferedBytes > 0 ? Buffer.concat([...buffered, piece]) : piece;
        buffered = [];
        bufferedBytes = 0;
        enqueue(Buffer.from(line));
      }
      if (start < chunk.length && !discarding) {
        const rest = chunk.subarray(start);
        bufferedBytes += rest.length;
        buffered.push(Buffer.from(rest));
        if (bufferedBytes > MAX_LINE) {
          // Refuse once, then skip to the end of the line without keeping it.
          buffered = [];
          bufferedBytes = 0;
          discarding = true;
          chain = chain.then(() => {
            refuseInTransaction(session);
            send(formatTextError(new ControlError('ETOOLONG', `request longer than ${MAX_LINE} bytes; ignored up to the next newline`)));
          });
        }
      }
    });
    socket.on('end', () => {
      // A last request without a newline still gets its answer.
      if (bufferedBytes > 0 && !discarding) enqueue(Buffer.concat(buffered));
      buffered = [];
      chain = chain.then(() => {
        if (!socket.destroyed) socket.end();
      });
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      hangup.abort();
      this.clients.delete(socket);
      if (session.transaction && session.transaction.length > 0) {
        this.log.info({ dropped: session.transaction.length }, 'control client left with an open transaction; nothing applied');
      }
    });
  }

  private async answer(
    raw: Buffer, session: Session, send: (text: string) => void, follow: (subscribe: NonNullable<Reply['follow']>, json: boolean) => void,
  ): Promise<void> {
    let line = raw;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const bad = firstBinaryByte(line);
    const json = bad < 0 && line.length > 0 && line[0] === 0x7b; // '{'
    let id: unknown = null;
    let request: Request | undefined;
    try {
      if (line.length > MAX_LINE) throw new ControlError('ETOOLONG', `request longer than ${MAX_LINE} bytes`);
      if (bad >= 0) throw new ControlError('EBADREQUEST', `request is not text (byte 0x${line[bad].toString(16).padStart(2, '0')} at column ${bad + 1})`);
      const text = line.toString('utf8');
      if (text.includes('\ufffd')) throw new ControlError('EBADREQUEST', 'request is not valid UTF-8');
      let command = text;
      if (json) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch (error) {
          throw new ControlError('EBADJSON', `request is not valid JSON: ${(error as Error).message}`);
        }
        if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { command?: unknown }).command !== 'string') {
          throw new ControlError('EBADJSON', 'a JSON request is an object with a "command" string, e.g. {"id":1,"command":"route show"}');
        }
        id = (parsed as { id?: unknown }).id ?? null;
        command = (parsed as { command: string }).command;
      }
      if (!json && command.trim() === '') return; // blank lines are ignored in the text form
      request = parseRequest(command);
      const reply: Reply = await this.service.handle(request, session);
      this.service.commands.record(request.command, 'ok');
      if (reply.follow) {
        follow(reply.follow, json);
        return;
      }
      send(json ? formatJsonReply(id, reply) : formatTextOk(reply));
    } catch (error) {
      const controlError = error instanceof ControlError
        ? error
        : new ControlError('EINTERNAL', (error as Error).message ?? String(error));
      if (!(error instanceof ControlError)) this.log.error({ err: error }, 'control command failed unexpectedly');
      // A line that never became a request may have been meant as a change (the service counts its own refusals).
      if (request === undefined) refuseInTransaction(session);
      this.service.commands.record(request?.command ?? INVALID_COMMAND, 'error');
      send(json ? formatJsonReply(id, controlError) : formatTextError(controlError));
    }
  }
}

/** Inside a transaction, a refused request makes the whole transaction fail at commit. */
function refuseInTransaction(session: Session): void {
  if (session.transaction) session.refused = (session.refused ?? 0) + 1;
}

/** One event as a line for people. */
function formatEvent(item: unknown): string {
  const event = item as ViprEvent;
  const what = event.type === 'server' ? `server ${event.server} ${event.oldState} -> ${event.newState}` : `${event.type}${event.server ? ` ${event.server}` : ''}`;
  const moved = event.routesMoved.map((m) => `${m.prefix} ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`).join(', ');
  return `${event.time}  ${what}  (${event.reason})${moved ? `  routes: ${moved}` : ''}`;
}

/** Index of the first byte that has no place in a typed command (controls other than tab), or -1. */
function firstBinaryByte(line: Buffer): number {
  for (let i = 0; i < line.length; i++) {
    const b = line[i];
    if ((b < 0x20 && b !== 0x09) || b === 0x7f) return i;
  }
  return -1;
}

/** A user or group id from /etc/passwd or /etc/group (names or numbers). */
async function lookupId(file: string, who: string | number): Promise<number> {
  if (typeof who === 'number') return who;
  const text = await readFile(file, 'utf8');
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === who) return Number(fields[2]);
  }
  throw new ControlServerError(`control socket: no ${file === '/etc/passwd' ? 'user' : 'group'} named ${who} (in ${file})`);
}
