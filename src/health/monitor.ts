// Server health: runs each server's checks on their own timers and turns
// results into a state with rise/fall hysteresis (HAProxy's rise/fall,
// keepalived's retry counts). A server is up while every one of its checks
// is up; a check goes down after `fall` failures in a row and up again after
// `rise` successes in a row. Servers start up, as HAProxy's do, so a restart
// of vipr forwards at once; a dead server is found after fall failed checks,
// about (fall - 1) × max(interval, timeout) + timeout (checks never overlap).
//
// Drained servers stay checked but carry no routes until undrained.

import { EventEmitter } from 'node:events';
import type { CheckConfig, HealthConfig, ServerConfig } from '../config/types.js';
import { runCheck, type CheckContext, type CheckResult } from './checks.js';

export type ServerState = 'up' | 'down';

export interface CheckStatus {
  config: CheckConfig;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
  up: boolean;
  successes: number;
  failures: number;
  last?: CheckResult & { at: number };
}

export interface ServerHealth {
  name: string;
  address: number;
  state: ServerState;
  drained: boolean;
  /** When `state` (or drained) last changed, ms since epoch. */
  since: number;
  /** When the server last became up (monotonic ms, for the hold-down). */
  upSince: number;
  reason: string;
  checks: CheckStatus[];
}

export interface HealthChange {
  server: ServerHealth;
  oldState: string;
  newState: string;
  reason: string;
}

export function describeCheck(check: CheckConfig): string {
  switch (check.type) {
    case 'arp': return 'arp';
    case 'icmp': return 'icmp';
    case 'tcp': return `tcp:${check.port}`;
    case 'http': return `http:${check.port}${check.path}`;
  }
}

/** The state an operator sees: up, down, or draining (up or down, but carrying nothing). */
export function displayState(server: ServerHealth): string {
  return server.drained ? 'draining' : server.state;
}

export class HealthMonitor extends EventEmitter<{ change: [HealthChange] }> {
  private servers = new Map<string, ServerHealth>();
  private timers = new Set<NodeJS.Timeout>();
  private running = false;
  private generation = 0;

  constructor(private health: HealthConfig, private readonly context: CheckContext) {
    super();
  }

  /** (Re)configures the servers; known servers keep their state and drain flag. */
  configure(servers: readonly ServerConfig[], health: HealthConfig = this.health): void {
    this.health = health;
    const next = new Map<string, ServerHealth>();
    const now = performance.now();
    for (const server of servers) {
      const old = this.servers.get(server.name);
      const sameChecks = old && old.address === server.address && JSON.stringify(old.checks.map((c) => c.config)) === JSON.stringify(server.checks);
      // A server without checks is always up; new checks on a down server start
      // down, so it needs `rise` successes on each, as any down server does.
      const state: ServerState = server.checks.length === 0 ? 'up' : old?.state ?? 'up';
      next.set(server.name, {
        name: server.name,
        address: server.address,
        state,
        drained: old?.drained ?? false,
        since: old?.since ?? Date.now(),
        // At start every server counts as up long enough: there is nothing to fail back from.
        upSince: old?.upSince ?? now - health.holdDownMs,
        reason: server.checks.length === 0 ? 'no checks configured' : old?.reason ?? 'starting',
        // Timing is derived again (the health defaults may have changed); unchanged checks keep their counts.
        checks: server.checks.map((config, i) => {
          const status = this.checkStatus(config);
          const kept = sameChecks ? old!.checks[i] : undefined;
          return kept
            ? { ...status, up: kept.up, successes: kept.successes, failures: kept.failures, last: kept.last }
            : { ...status, up: state === 'up' };
        }),
      });
    }
    this.servers = next;
    if (this.running) this.restart();
  }

  start(): void {
    this.running = true;
    this.restart();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  list(): ServerHealth[] {
    return [...this.servers.values()];
  }

  get(name: string): ServerHealth | undefined {
    return this.servers.get(name);
  }

  byAddress(address: number): ServerHealth | undefined {
    for (const server of this.servers.values()) if (server.address === address) return server;
    return undefined;
  }

  /** Takes a server out of service at once, without waiting for checks. Returns false if already drained. */
  drain(name: string): boolean {
    const server = this.servers.get(name)!;
    if (server.drained) return false;
    const old = displayState(server);
    server.drained = true;
    server.since = Date.now();
    this.emit('change', { server, oldState: old, newState: 'draining', reason: 'drained by the operator' });
    return true;
  }

  undrain(name: string): boolean {
    const server = this.servers.get(name)!;
    if (!server.drained) return false;
    server.drained = false;
    server.since = Date.now();
    // The operator vouches for it: no hold-down before routes return.
    server.upSince = performance.now() - this.health.holdDownMs;
    this.emit('change', { server, oldState: 'draining', newState: server.state, reason: 'undrained by the operator' });
    return true;
  }

  private checkStatus(config: CheckConfig): CheckStatus {
    return {
      config,
      intervalMs: config.intervalMs ?? this.health.intervalMs,
      // May exceed the interval (as HAProxy's `timeout check` may exceed `inter`): a slow
      // check delays the next run rather than overlapping it.
      timeoutMs: config.timeoutMs ?? this.health.timeoutMs,
      rise: config.rise ?? this.health.rise,
      fall: config.fall ?? this.health.fall,
      up: true,
      successes: 0,
      failures: 0,
    };
  }

  private restart(): void {
    this.generation++;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const generation = this.generation;
    for (const server of this.servers.values()) {
      server.checks.forEach((check, i) => {
        // Spread the first runs so a hundred checks do not fire in the same tick.
        this.schedule(server, check, generation, (i * 7) % Math.max(1, check.intervalMs));
      });
    }
  }

  private schedule(server: ServerHealth, check: CheckStatus, generation: number, delay: number): void {
    const timer = setTimeout(async () => {
      this.timers.delete(timer);
      if (generation !== this.generation) return;
      const started = performance.now();
      const result = await runCheck(check.config, server.address, check.timeoutMs, this.context);
      if (generation !== this.generation) return;
      this.record(server, check, result);
      // Fixed rate: the next run starts one interval after this one started.
      this.schedule(server, check, generation, Math.max(0, check.intervalMs - (performance.now() - started)));
    }, delay);
    this.timers.add(timer);
  }

  private record(server: ServerHealth, check: CheckStatus, result: CheckResult): void {
    check.last = { ...result, at: Date.now() };
    if (result.ok) {
      check.failures = 0;
      check.successes++;
      if (!check.up && check.successes >= check.rise) check.up = true;
    } else {
      check.successes = 0;
      check.failures++;
      if (check.up && check.failures >= check.fall) check.up = false;
    }
    const state: ServerState = server.checks.every((c) => c.up) ? 'up' : 'down';
    if (state === server.state) return;
    const failing = server.checks.find((c) => !c.up);
    const reason = state === 'down'
      ? `${describeCheck(failing!.config)} failed ${failing!.fall} times: ${failing!.last?.reason ?? 'failed'}`
      : `all checks passed ${check.rise} times`;
    // A drained server's health still changes: say so, rather than "draining -> draining".
    const label = (s: ServerState) => (server.drained ? `draining (${s})` : s);
    const old = label(server.state);
    server.state = state;
    server.since = Date.now();
    server.reason = reason;
    if (state === 'up') server.upSince = performance.now();
    this.emit('change', { server, oldState: old, newState: label(state), reason });
  }
}
