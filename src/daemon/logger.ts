// Structured logs with pino: JSON lines for journald and log shippers,
// human-readable lines when a person watches a terminal.

import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/types.js';

export type { Logger };

export function createLogger(level: LogLevel = 'info', pretty = process.stderr.isTTY): Logger {
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
}
