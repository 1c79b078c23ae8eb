// Server and route events: every state change is logged, streamed to
// `vipr ctl events` subscribers, and handed to the notify command of the
// config (keepalived's notify scripts) with the event in its environment.
// The notify command runs detached with a time limit: one that hangs or
// fails is logged and killed, and never holds up forwarding or checks.

import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

export interface RouteMoveEvent {
  prefix: string;
  from: string | null;
  to: string | null;
}

export interface ViprEvent {
  time: string;
  /**
   * server: a server's state changed; port: a port's link went down or came up
   * (or it vanished); failback: routes moved back after a hold-down; routes:
   * moved by the operator.
   */
  type: 'server' | 'port' | 'failback' | 'routes';
  server?: string;
  port?: string;
  oldState?: string;
  newState?: string;
  reason: string;
  routesMoved: RouteMoveEvent[];
}

/** What happened, in a few words: "server web1 up -> down", "port lan0 up -> down", "failback web1". */
export function eventHeadline(event: ViprEvent): string {
  if (event.type === 'server') return `server ${event.server} ${event.oldState} -> ${event.newState}`;
  if (event.type === 'port') return `port ${event.port} ${event.oldState} -> ${event.newState}`;
  return `${event.type}${event.server ? ` ${event.server}` : ''}`;
}

/** At most this many notify commands at once; more events are logged and not notified. */
const MAX_NOTIFY = 8;

export class EventBus {
  private readonly subscribers = new Set<(event: ViprEvent) => void>();
  private running = 0;

  constructor(private readonly log: Logger, private notify?: { command: string; timeoutMs: number }) {}

  setNotify(notify?: { command: string; timeoutMs: number }): void {
    this.notify = notify;
  }

  subscribe(listener: (event: ViprEvent) => void): () => void {
    this.subscribers.add(listener);
    return () => this.subscribers.delete(listener);
  }

  publish(event: ViprEvent): void {
    const moved = event.routesMoved.map((m) => `${m.prefix} ${m.from ?? 'none'} -> ${m.to ?? 'withdrawn'}`).join('; ');
    const what = eventHeadline(event);
    this.log.info({ event }, `event: ${what} (${event.reason})${moved ? `; routes: ${moved}` : ''}`);
    for (const listener of this.subscribers) listener(event);
    this.runNotify(event);
  }

  private runNotify(event: ViprEvent): void {
    if (!this.notify) return;
    if (this.running >= MAX_NOTIFY) {
      this.log.warn({ command: this.notify.command }, `notify: ${MAX_NOTIFY} commands still running; not notifying this event`);
      return;
    }
    const { command, timeoutMs } = this.notify;
    const env = {
      ...process.env,
      VIPR_EVENT: event.type,
      VIPR_SERVER: event.server ?? '',
      VIPR_PORT: event.port ?? '',
      VIPR_OLD_STATE: event.oldState ?? '',
      VIPR_NEW_STATE: event.newState ?? '',
      VIPR_REASON: event.reason,
      VIPR_ROUTES_MOVED: event.routesMoved.map((m) => `${m.prefix}:${m.from ?? 'none'}>${m.to ?? 'withdrawn'}`).join(' '),
      VIPR_EVENT_JSON: JSON.stringify(event),
    };
    let child;
    try {
      child = spawn('/bin/sh', ['-c', command], { env, stdio: 'ignore', detached: true });
    } catch (error) {
      this.log.warn({ err: error }, `notify: cannot run ${command}: ${(error as Error).message}`);
      return;
    }
    this.running++;
    const timer = setTimeout(() => {
      this.log.warn({ command, timeoutMs }, `notify: ${command} still running after ${timeoutMs} ms; killed`);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, timeoutMs);
    timer.unref();
    child.on('error', (error) => this.log.warn({ err: error }, `notify: ${command}: ${error.message}`));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      this.running--;
      if (code !== 0 && signal !== 'SIGKILL') this.log.warn({ command, code, signal }, `notify: ${command} exited with ${code ?? signal}`);
    });
    child.unref();
  }
}
