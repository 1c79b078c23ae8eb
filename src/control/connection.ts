// One client of the control socket: its request lines in, its replies out,
// each bounded and with an error path, so that nothing a client does (or
// fails to do) can throw in the daemon or grow its memory.
//
//   - In: lines of at most MAX_LINE bytes (longer ones are reported once and
//     skipped). Reading pauses while MAX_QUEUED_REQUESTS wait, so a client
//     that sends faster than it is answered is held back by its own socket.
//   - Out: replies go out in chunks, each waiting for 'drain', so a large
//     reply never sits whole in the socket's buffer and a slow reader only
//     slows itself. A client that takes nothing for the idle limit while
//     output waits for it is dropped.
//   - Idle: a connection with no request for the idle limit is told so and
//     closed; a running request (a trace) or an `events` follower is not idle.
//   - Every socket error ends the connection quietly; nothing is written to a
//     socket that is closing or closed.

import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { SlotHolder } from './client-slots.js';
import { ControlError, formatTextError, MAX_LINE } from './protocol.js';

/** Requests read ahead of their answers before reading pauses (plus what one read brought in). */
const MAX_QUEUED_REQUESTS = 32;
/** Replies are written in pieces of this size, each after the previous one left. */
const WRITE_CHUNK = 64 * 1024;
/**
 * Unread events a follower may have waiting before it is dropped: an event
 * line is a few hundred bytes, so this is thousands of events it did not take.
 */
const MAX_FOLLOWER_BACKLOG = 1 << 20;
/** A closing connection whose last line the client does not take within this is cut. */
const CLOSE_GRACE_MS = 1000;

/** A request line too long to keep: reported, not parsed. */
export const OVERLONG = Symbol('overlong');

export class Connection implements SlotHolder {
  /** Aborted when the connection closes: a running trace ends with it. */
  readonly hangup = new AbortController();
  /** A request is being answered (its reply may still be going out). */
  busy = false;
  /** An `events` follower: quiet is normal, not idle. */
  following = false;
  private lastActive = performance.now();
  private readonly queue: (Buffer | typeof OVERLONG)[] = [];
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private discarding = false;
  private ended = false;
  private closing = false;
  private wake: (() => void) | undefined;

  constructor(readonly socket: Socket, private readonly idleTimeoutMs: number, private readonly log: Logger) {
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.hangup.abort();
      this.notify();
    });
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('end', () => {
      // A last request without a newline still gets its answer.
      if (this.partialBytes > 0 && !this.discarding) this.queue.push(Buffer.concat(this.partial));
      this.partial = [];
      this.partialBytes = 0;
      this.ended = true;
      this.notify();
    });
    socket.setTimeout(idleTimeoutMs);
    socket.on('timeout', () => this.onTimeout());
  }

  get closed(): boolean {
    return this.closing || this.socket.destroyed;
  }

  idleSince(): number | undefined {
    if (this.busy || this.closed || this.queue.length > 0 || this.socket.writableLength > 0) return undefined;
    return this.lastActive;
  }

  /** The request lines, in order, until the client ends its side or the connection closes. */
  async *requests(): AsyncGenerator<Buffer | typeof OVERLONG> {
    for (;;) {
      if (this.closed) return;
      const next = this.queue.shift();
      if (next !== undefined) {
        if (this.queue.length < MAX_QUEUED_REQUESTS && this.socket.isPaused()) this.socket.resume();
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Writes `text`, a piece at a time as the client takes it; false if the connection closed first. */
  async write(text: string): Promise<boolean> {
    const bytes = Buffer.from(text, 'utf8');
    for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
      if (this.closed) return false;
      if (!this.socket.write(bytes.subarray(at, at + WRITE_CHUNK)) && !(await this.drained())) return false;
    }
    this.lastActive = performance.now();
    return true;
  }

  /** Writes an event line without waiting (events come when they come); a follower that stopped reading is dropped. */
  push(text: string): void {
    if (this.closed) return;
    this.socket.write(text);
    if (this.socket.writableLength > MAX_FOLLOWER_BACKLOG) this.drop('control client does not read its events; dropped');
  }

  /** Writes `line` (if any), ends the connection, and cuts it if the client does not take the line in time. */
  close(line?: string): void {
    if (this.closed) return;
    this.closing = true;
    this.notify();
    // What the client still sends is no longer read: let it flow away, so its end arrives.
    this.socket.removeAllListeners('data');
    this.socket.resume();
    this.socket.setTimeout(0);
    const cut = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    cut.unref();
    this.socket.once('close', () => clearTimeout(cut));
    const destroy = () => this.socket.destroy();
    if (line === undefined) this.socket.end(destroy);
    else this.socket.end(line, destroy);
  }

  /** Ends the connection at once, unanswered. */
  drop(reason: string): void {
    if (this.socket.destroyed) return;
    this.log.warn(reason);
    this.closing = true;
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    const queued = this.queue.length;
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, i);
      start = i + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      this.queue.push(this.partialBytes > 0 ? Buffer.concat([...this.partial, piece]) : Buffer.from(piece));
      this.partial = [];
      this.partialBytes = 0;
    }
    if (start < chunk.length && !this.discarding) {
      const rest = chunk.subarray(start);
      this.partial.push(Buffer.from(rest));
      this.partialBytes += rest.length;
      if (this.partialBytes > MAX_LINE) {
        // Reported once; the rest of the line is skipped without being kept.
        this.partial = [];
        this.partialBytes = 0;
        this.discarding = true;
        this.queue.push(OVERLONG);
      }
    }
    // Only whole requests count as activity: a client trickling bytes without ever ending a line stays evictable.
    if (this.queue.length > queued) this.lastActive = performance.now();
    if (this.queue.length >= MAX_QUEUED_REQUESTS) this.socket.pause();
    this.notify();
  }

  /** No traffic either way for the idle limit. */
  private onTimeout(): void {
    if (this.socket.writableLength > 0) {
      this.drop('control client does not read its replies; dropped');
    } else if (!this.busy && !this.following) {
      this.close(formatTextError(new ControlError('ETIMEOUT', `idle for ${this.idleTimeoutMs / 1000} s; closing`)));
    }
    // Otherwise a long request (a trace) or a quiet follower: the next write re-arms the limit.
  }

  private drained(): Promise<boolean> {
    if (this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => finish(true);
      const onClose = () => finish(false);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
