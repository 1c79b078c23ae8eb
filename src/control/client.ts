// A client of the control socket: the library `vipr ctl` (and tests) use.
// One connection, requests answered in order.

import { createConnection, type Socket } from 'node:net';
import { ControlError } from './protocol.js';

export interface TextAnswer {
  ok: boolean;
  lines: string[];
  /** `CODE: message` when not ok. */
  error?: { code: string; message: string };
}

export interface JsonAnswer {
  id: unknown;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

export class ControlClient {
  /** The start of a line whose end has not arrived yet, in pieces (a JSON reply can be one line of many MB). */
  private partial: string[] = [];
  private readonly waiting: ((line: string | null) => void)[] = [];
  private readonly lines: string[] = [];
  private closed = false;
  private nextId = 1;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      let start = 0;
      for (let at = chunk.indexOf('\n'); at >= 0; at = chunk.indexOf('\n', start)) {
        const piece = chunk.slice(start, at);
        start = at + 1;
        const line = this.partial.length > 0 ? this.partial.join('') + piece : piece;
        this.partial = [];
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
      if (start < chunk.length) this.partial.push(chunk.slice(start));
    });
    const end = () => {
      this.closed = true;
      for (const waiter of this.waiting.splice(0)) waiter(null);
    };
    socket.on('close', end);
    socket.on('error', end);
  }

  static connect(path: string, timeoutMs = 5000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection(path);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ControlError('ETIMEOUT', `no answer from control socket ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new ControlClient(socket));
      });
      socket.once('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
          ? ' (is vipr running? see --socket)'
          : error.code === 'EACCES'
            ? " (permission denied: only the socket's owner and group may use it; add this user to its group)"
            : '';
        reject(new ControlError('ECONNECT', `cannot connect to control socket ${path}: ${error.code ?? error.message}${hint}`));
      });
    });
  }

  private readLine(): Promise<string | null> {
    const queued = this.lines.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Sends one text command and collects its reply. */
  async text(command: string): Promise<TextAnswer> {
    this.socket.write(`${command}\n`);
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine();
      if (line === null) throw new ControlError('ECONNECT', 'control socket closed before the reply ended');
      if (line === 'ok') return { ok: true, lines };
      const error = /^error ([A-Z0-9_]+): (.*)$/.exec(line);
      if (error) return { ok: false, lines, error: { code: error[1], message: error[2] } };
      lines.push(line.startsWith(' ok') || line.startsWith(' error ') ? line.slice(1) : line);
    }
  }

  /** Sends one command in the JSON form. */
  async json(command: string): Promise<JsonAnswer> {
    const id = this.nextId++;
    this.socket.write(JSON.stringify({ id, command }) + '\n');
    const line = await this.readLine();
    if (line === null) throw new ControlError('ECONNECT', 'control socket closed before the reply');
    return JSON.parse(line) as JsonAnswer;
  }

  /** Sends a streaming command (`events`) and calls `onLine` for every line until the socket closes or a line is an error. */
  async stream(command: string, json: boolean, onLine: (line: string) => void): Promise<TextAnswer> {
    this.socket.write(json ? JSON.stringify({ id: this.nextId++, command }) + '\n' : `${command}\n`);
    for (;;) {
      const line = await this.readLine();
      if (line === null) return { ok: true, lines: [] };
      const error = /^error ([A-Z0-9_]+): (.*)$/.exec(line);
      if (error) return { ok: false, lines: [], error: { code: error[1], message: error[2] } };
      if (json && line.startsWith('{"id"')) {
        const answer = JSON.parse(line) as JsonAnswer;
        if (!answer.ok) return { ok: false, lines: [], error: answer.error };
      }
      onLine(line);
    }
  }

  close(): void {
    this.socket.end();
  }
}
