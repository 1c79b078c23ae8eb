// The control socket: a Unix stream socket speaking the line protocol of
// protocol.ts. Defensive by construction: who may connect is decided in one
// place (client-slots.ts), and each connection is bounded in line length,
// queued requests, unread output and idle time (connection.ts), so a broken
// or hostile client is answered or dropped and never disturbs the daemon or
// the data plane.

import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/types.js';
import { ClientSlots, EVICT_IDLE_AFTER_MS, MAX_COMMAND_CLIENTS, MAX_FOLLOWERS } from './client-slots.js';
import { Connection, OVERLONG } from './connection.js';
import { parseRequest, type Request } from './grammar.js';
import {
  ControlError, formatJsonReply, formatTextError, formatTextOk, MAX_LINE, type Reply,
} from './protocol.js';
import type { ControlService, Session } from './service.js';
import { INVALID_COMMAND } from './command-counts.js';
import { eventHeadline, type ViprEvent } from '../health/events.js';

export { MAX_COMMAND_CLIENTS, MAX_FOLLOWERS } from './client-slots.js';

/** A client silent this long (no request, or not taking its replies) is told so and disconnected. */
export const IDLE_TIMEOUT_MS = 60_000;
/** Refusals and evictions are logged at most this often, with counts: a flood must not flood the journal too. */
const FULL_REPORT_INTERVAL_MS = 10_000;

export class ControlServerError extends Error {
  readonly code = 'ECONTROL';
}

/** A live vipr answers on the control socket: its ports and system settings are its own, not to be undone. */
export class ControlSocketInUseError extends ControlServerError {}

export interface ControlServerOptions {
  /** Idle limit per client; IDLE_TIMEOUT_MS unless a test wants it short. */
  idleTimeoutMs?: number;
  /** How long a command connection must have been idle before a newcomer may take its slot; EVICT_IDLE_AFTER_MS by default. */
  evictIdleAfterMs?: number;
}

export class ControlServer {
  private server: Server | undefined;
  private readonly slots: ClientSlots<Connection>;
  private readonly idleTimeoutMs: number;
  /** Refused and evicted since the last report (see FULL_REPORT_INTERVAL_MS). */
  private full = { refused: 0, evicted: 0, reportedAt: -Infinity };

  constructor(
    private readonly config: ControlConfig,
    private readonly service: ControlService,
    private readonly log: Logger,
    options: ControlServerOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
    this.slots = new ClientSlots({
      commands: MAX_COMMAND_CLIENTS, followers: MAX_FOLLOWERS, evictIdleAfterMs: options.evictIdleAfterMs ?? EVICT_IDLE_AFTER_MS,
    });
  }

  get path(): string {
    return this.config.socket;
  }

  /** Connections held now, by budget. */
  get clients(): { commands: number; followers: number } {
    return this.slots.size;
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
    for (const connection of this.slots.all()) connection.socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.config.socket).catch(() => undefined);
  }

  /**
   * Throws a ControlSocketInUseError when a live vipr answers on the socket.
   * The daemon asks before it touches the ports (an XDP program attached by
   * a second vipr would take the running one's frames until it gave up).
   */
  static async refuseIfRunning(path: string): Promise<void> {
    if ((await probeSocket(path)) === true) throw inUse(path);
  }

  /** Refuses to start over a live vipr; removes a socket file nobody listens on. */
  private async clearStale(path: string): Promise<void> {
    const alive = await probeSocket(path);
    if (alive === true) throw inUse(path);
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
    const connection = new Connection(socket, this.idleTimeoutMs, this.log);
    const now = performance.now();
    const admission = this.slots.admit(connection, now);
    if (!admission.admitted) {
      connection.close(formatTextError(new ControlError('EBUSY', `too many control clients (${MAX_COMMAND_CLIENTS}); try again`)));
      this.reportFull('refused', now);
      return;
    }
    if (admission.evicted) {
      admission.evicted.close(formatTextError(new ControlError(
        'EBUSY', 'closed to make room for another client (every slot was taken; this connection was idle longest)',
      )));
      this.reportFull('evicted', now);
    }
    void this.serve(connection).catch((error: Error) => {
      this.log.error({ err: error }, `control client failed: ${error.message}`);
      connection.socket.destroy();
    });
  }

  /** Answers one connection's requests in order until it ends or closes. */
  private async serve(connection: Connection): Promise<void> {
    const session: Session = { transaction: null, closed: connection.hangup.signal };
    connection.socket.once('close', () => {
      this.slots.release(connection);
      if (session.transaction && session.transaction.length > 0) {
        this.log.info({ dropped: session.transaction.length }, 'control client left with an open transaction; nothing applied');
      }
    });
    for await (const line of connection.requests()) {
      connection.busy = true;
      try {
        if (line === OVERLONG) {
          refuseInTransaction(session);
          this.service.commands.record(INVALID_COMMAND, 'error');
          await connection.write(formatTextError(new ControlError('ETOOLONG', `request longer than ${MAX_LINE} bytes; ignored up to the next newline`)));
        } else {
          await this.answer(line, session, connection);
        }
      } finally {
        connection.busy = false;
      }
    }
    // The client ended its side: end ours once its replies are out.
    connection.close();
  }

  private async answer(raw: Buffer, session: Session, connection: Connection): Promise<void> {
    let line = raw;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    const bad = firstBinaryByte(line);
    const json = bad < 0 && line.length > 0 && line[0] === 0x7b; // '{'
    let id: unknown = null;
    let request: Request | undefined;
    let reply: Reply;
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
      reply = await this.service.handle(request, session);
      if (reply.follow && !this.slots.follow(connection)) {
        throw new ControlError('EBUSY', `too many event followers (${MAX_FOLLOWERS}); try again later`);
      }
      this.service.commands.record(request.command, 'ok');
    } catch (error) {
      const controlError = error instanceof ControlError
        ? error
        : new ControlError('EINTERNAL', (error as Error).message ?? String(error));
      if (!(error instanceof ControlError)) this.log.error({ err: error }, 'control command failed unexpectedly');
      // A line that never became a request may have been meant as a change (the service counts its own refusals).
      if (request === undefined) refuseInTransaction(session);
      this.service.commands.record(request?.command ?? INVALID_COMMAND, 'error');
      await connection.write(json ? formatJsonReply(id, controlError) : formatTextError(controlError));
      return;
    }
    if (reply.follow) {
      connection.following = true;
      const unsubscribe = reply.follow((item) => connection.push(json ? JSON.stringify(item) + '\n' : formatEvent(item) + '\n'));
      connection.socket.once('close', unsubscribe);
      return;
    }
    await connection.write(json ? formatJsonReply(id, reply) : formatTextOk(reply));
  }

  /** One log line per FULL_REPORT_INTERVAL_MS at most while the socket is full. */
  private reportFull(what: 'refused' | 'evicted', now: number): void {
    this.full[what]++;
    if (now - this.full.reportedAt < FULL_REPORT_INTERVAL_MS) return;
    const { refused, evicted } = this.full;
    this.log.warn({ refused, evicted, ...this.slots.size },
      `control socket full (${MAX_COMMAND_CLIENTS} clients): ${refused} refused, ${evicted} idle ones closed to make room`);
    this.full = { refused: 0, evicted: 0, reportedAt: now };
  }
}

/** Inside a transaction, a refused request makes the whole transaction fail at commit. */
function refuseInTransaction(session: Session): void {
  if (session.transaction) session.refused = (session.refused ?? 0) + 1;
}

/** One event as a line for people. */
function formatEvent(item: unknown): string {
  const event = item as ViprEvent;
  const what = eventHeadline(event);
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

function inUse(path: string): ControlSocketInUseError {
  return new ControlSocketInUseError(`another vipr is running on control socket ${path}; stop it first, or set control.socket to another path`);
}

/** true: something listens on the Unix socket; 'absent': no such file; false: a file nobody listens on. */
function probeSocket(path: string): Promise<boolean | 'absent'> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ENOENT' ? 'absent' : false));
  });
}
