// `vipr ctl` starts in about the time of a bare `node` because it loads only
// the socket client: never the daemon, its logger (pino), the metrics
// (prom-client), the config schema (zod, yaml) or a native addon. Checked on
// the built CLI (dist/, `npm run build`) with a module hook that lists what
// the process loaded; the time itself is measured in bench/ctl-latency.ts.

import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const HOOK = join(ROOT, 'test/unit/fixtures/import-log.mjs');

/** What only the daemon needs. */
const DAEMON_ONLY = [/\/node_modules\/(pino|pino-pretty|prom-client|zod|yaml|cap|raw-socket|ip-num|lru-cache)\//, /\.node$/, /native-bindings/, /\/dist\/src\/(daemon|dataplane|io|fib|health|config|rib|neighbor)\//];

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vipr-cli-imports-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with `args`; the modules it loaded. */
async function modulesLoadedBy(args: string[]): Promise<{ status: number | null; stderr: string; modules: string[] }> {
  const log = join(dir, `${args.join('-').replace(/\W+/g, '_')}.log`);
  const result = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], {
    encoding: 'utf8', env: { ...process.env, VIPR_IMPORT_LOG: log }, timeout: 30_000,
  });
  const modules = (await readFile(log, 'utf8')).split('\n').filter((line) => line && !line.startsWith('node:'));
  return { status: result.status, stderr: result.stderr, modules };
}

describe('vipr ctl loads only the socket client', () => {
  it.each([
    [['ctl', 'route', 'replace', '192.168.1.32/27', 'via', 'web2']],
    [['ctl', '--json', 'route', 'show']],
    [['ctl', 'events']],
    [['ctl', 'trace', 'x.pcapng', 'count', '1']],
  ])('vipr %j', async (args) => {
    const { status, stderr, modules } = await modulesLoadedBy([args[0], '--socket', join(dir, 'absent.sock'), ...args.slice(1)]);
    expect(stderr).toMatch(/^vipr: cannot connect to control socket .*absent\.sock: ENOENT/m);
    expect(status).toBe(1);
    expect(modules.some((m) => m.endsWith('/dist/src/control/client.js')), 'the client was loaded').toBe(true);
    expect(modules.filter((m) => DAEMON_ONLY.some((pattern) => pattern.test(m)))).toEqual([]);
  });

  it('the hook sees what `vipr check-config` loads (the config schema), so an empty list above means something', async () => {
    const { modules } = await modulesLoadedBy(['check-config', join(dir, 'absent.yaml')]);
    expect(modules.some((m) => /\/node_modules\/zod\//.test(m))).toBe(true);
    expect(modules.some((m) => /\/node_modules\/pino\//.test(m))).toBe(false);
  });
});
