// Route changes through the whole control path, as `vipr ctl apply FILE` and
// `begin ... commit` drive it: each line parsed, resolved and validated as it
// is queued, then at commit the plan, the state file (temp file, fsync,
// rename) and the live FIB edit. The goal: 10,000 changes in one transaction
// in at most 100 ms.
//
// Run: npx tsc -p tsconfig.json && node dist/bench/transactions.js [--changes 10000]
//
// Scenarios, each on a fresh article router (test/fixtures/article-router.ts) with a
// real ControlService and StateStore in a temp directory, logging to /dev/null:
//   add      N `route add 100.x.y.z/32 via webK` in one transaction;
//   del      the same N routes deleted in one transaction;
//   single   one `route add` (no transaction) with 0 and with N runtime routes
//            already saved: the state file is rewritten whole on each change.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ServerConfig } from '../src/config/types.js';
import { parseRequest, type Request } from '../src/control/grammar.js';
import { ControlService, type Session } from '../src/control/service.js';
import { StateStore } from '../src/control/state-store.js';
import type { CheckContext } from '../src/health/checks.js';
import { EventBus } from '../src/health/events.js';
import { Failover } from '../src/health/failover.js';
import { HealthMonitor } from '../src/health/monitor.js';
import { parseAddress } from '../src/util/ipv4.js';
import { articleRouter } from '../test/fixtures/article-router.js';
import { numberArg, runIfMain } from './lib/program.js';

const SERVERS: ServerConfig[] = [2, 3, 4, 5].map((n) => ({ name: `web${n - 1}`, address: parseAddress(`192.168.1.${n}`), checks: [] }));
const HEALTH = { intervalMs: 1000, timeoutMs: 500, rise: 2, fall: 3, holdDownMs: 5000, failback: 'auto' as const, notifyTimeoutMs: 10_000 };
const GOAL_MS = 100;

async function service(dir: string): Promise<ControlService> {
  const article = articleRouter({}, { keepSent: false });
  const router = article.router;
  const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: true }));
  const events = new EventBus(log);
  const monitor = new HealthMonitor(HEALTH, { arp: router.resolver, icmp: undefined } as unknown as CheckContext);
  monitor.configure(SERVERS);
  return new ControlService({
    router, monitor, events, log,
    store: new StateStore(join(dir, 'state.json')),
    failover: new Failover(router.rib, monitor, events, HEALTH),
    servers: () => SERVERS,
    reload: async () => 'not in this bench',
    startedAt: Date.now(),
  });
}

const prefixOf = (i: number) => `100.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;

/** Sends the lines as one transaction; ms spent queueing and committing. */
async function transaction(control: ControlService, lines: string[]): Promise<{ queueMs: number; commitMs: number }> {
  const session: Session = { transaction: null };
  const handle = (line: string) => control.handle(parseRequest(line) as Request & { command: 'route add' }, session);
  const start = performance.now();
  await handle('begin');
  for (const line of lines) await handle(line);
  const queued = performance.now();
  await handle('commit');
  return { queueMs: queued - start, commitMs: performance.now() - queued };
}

async function single(control: ControlService, line: string): Promise<number> {
  const start = performance.now();
  await control.handle(parseRequest(line) as Request & { command: 'route add' }, { transaction: null });
  return performance.now() - start;
}

async function main(): Promise<number> {
  const flag = process.argv.indexOf('--changes');
  const n = flag < 0 ? 10_000 : numberArg('--changes', process.argv[flag + 1], 1, 1_000_000);
  const dir = await mkdtemp(join(tmpdir(), 'vipr-bench-transactions-'));
  try {
    const adds = Array.from({ length: n }, (_, i) => `route add ${prefixOf(i)} via web${1 + (i % 4)}`);
    const dels = adds.map((line) => `route del ${line.split(' ')[2]}`);

    // Warm-up: the same path once at a tenth of the size, so JIT compilation is not in the figures.
    const warm = await service(join(dir, 'warm'));
    await transaction(warm, adds.slice(0, Math.max(1, n / 10)));
    await transaction(warm, dels.slice(0, Math.max(1, n / 10)));

    const control = await service(join(dir, 'run'));
    const emptyMs = await single(control, 'route add 198.18.0.0/24 via web1');
    const add = await transaction(control, adds);
    const fullMs = await single(control, 'route add 198.18.1.0/24 via web2');
    const del = await transaction(control, dels);

    const line = (what: string, t: { queueMs: number; commitMs: number }) => {
      const total = t.queueMs + t.commitMs;
      console.log(
        `transactions: ${n.toLocaleString('en')} ${what} in one transaction: ${total.toFixed(1)} ms ` +
          `(queueing ${t.queueMs.toFixed(1)} ms, ${((t.queueMs * 1000) / n).toFixed(1)} µs per change; commit ${t.commitMs.toFixed(1)} ms) ` +
          `${total <= GOAL_MS ? 'within' : 'OVER'} the ${GOAL_MS} ms goal`,
      );
    };
    line('route add', add);
    line('route del', del);
    console.log(`transactions: one route add: ${emptyMs.toFixed(1)} ms with no runtime routes, ${fullMs.toFixed(1)} ms with ${n.toLocaleString('en')} (the state file is rewritten whole)`);
    return 0;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, 'transactions', main);
