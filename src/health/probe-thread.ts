// TCP and HTTP checks in a worker thread (probe-worker.ts), so their work
// never sits between two packet batches on the data plane's thread. The
// daemon's thread keeps the schedule and the rise/fall state; each check is
// one message to the worker and one back. A worker that dies is started
// again on the next check; a check it never answers fails after its timeout
// plus a grace second, so a stuck worker is seen as failing checks, never as
// a silent stall of the health monitor.

import { Worker } from 'node:worker_threads';
import type { CheckConfig } from '../config/types.js';
import type { CheckResult, RemoteProber } from './checks.js';

export interface ProbeRequest {
  id: number;
  check: CheckConfig;
  address: number;
  timeoutMs: number;
}

export type ProbeReply = CheckResult & { id: number };

/** The worker's first message: where it runs (or why it could not be placed). */
export interface ProbeHello {
  hello: true;
  cpus?: number[];
  error?: string;
}

export interface ProbeWorkerData {
  /** Pin the worker to these CPUs (the ones the data plane thread does not use). */
  cpus?: number[];
}

export interface ProbeThreadOptions {
  script?: URL;
  /** CPUs for the worker; unset: it keeps what it inherits. */
  cpus?: number[];
  /** Called with the worker's first message each time one starts. */
  onStart?: (hello: ProbeHello) => void;
}

/** How long past its own timeout a check may take before the thread is presumed stuck. */
const GRACE_MS = 1000;

interface Pending {
  resolve: (result: CheckResult) => void;
  timer: NodeJS.Timeout;
  started: number;
}

export class ProbeThread implements RemoteProber {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;
  /** How many times the worker had to be started (1 in a healthy daemon). */
  starts = 0;

  private readonly script: URL;

  constructor(private readonly options: ProbeThreadOptions = {}) {
    this.script = options.script ?? new URL('./probe-worker.js', import.meta.url);
  }

  run(check: CheckConfig, address: number, timeoutMs: number): Promise<CheckResult> {
    const started = performance.now();
    if (this.closed) return Promise.resolve({ ok: false, latencyMs: 0, reason: 'health checks stopped' });
    const worker = this.spawn();
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, latencyMs: performance.now() - started, reason: `the probe thread gave no answer within ${timeoutMs + GRACE_MS} ms` });
      }, timeoutMs + GRACE_MS);
      this.pending.set(id, { resolve, timer, started });
      const request: ProbeRequest = { id, check, address, timeoutMs };
      worker.postMessage(request);
    });
  }

  /** Stops the worker; checks still waiting fail at once. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.failAll('health checks stopped');
    await worker?.terminate();
  }

  private spawn(): Worker {
    if (this.worker) return this.worker;
    const workerData: ProbeWorkerData = { cpus: this.options.cpus };
    const worker = new Worker(this.script, { workerData, resourceLimits: { maxOldGenerationSizeMb: 64 } });
    this.starts++;
    worker.unref();
    worker.on('message', (reply: ProbeReply | ProbeHello) => {
      if ('hello' in reply) {
        this.options.onStart?.(reply);
        return;
      }
      const pending = this.pending.get(reply.id);
      if (!pending) return; // answered after the grace period: already failed
      this.pending.delete(reply.id);
      clearTimeout(pending.timer);
      const { id: _id, ...result } = reply;
      pending.resolve(result);
    });
    const lost = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(why);
    };
    worker.on('error', (error) => lost(`the probe thread failed: ${error.message}`));
    worker.on('exit', (code) => lost(`the probe thread exited with code ${code}`));
    this.worker = worker;
    return worker;
  }

  private failAll(reason: string): void {
    const now = performance.now();
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      pending.resolve({ ok: false, latencyMs: now - pending.started, reason });
    }
    this.pending.clear();
  }
}
