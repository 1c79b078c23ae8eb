// Starting and stopping the daemon as an operator does: it refuses to run
// beside kernel forwarding and says how to turn it off, turns it off itself
// when the config says so, refuses a second instance on the same control
// socket, explains a bad config in one line, and stops cleanly on SIGTERM.
// And `vipr check-config`, the built CLI, on good and bad files.
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servers } from './failover-tools.js';
import { labConfigPath, labUp, REPO_ROOT, spawnIn, startVipr, waitFor, type Lab } from './harness.js';

/** The CPUs in a /proc/.../status file's Cpus_allowed_list ("0-1", "0,2-3"). */
function cpuList(status: string): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(status)?.[1];
  if (!list) throw new Error('no Cpus_allowed_list in the status file');
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i);
  });
}

describe('the daemon starts and stops like a service', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await labUp();
  });
  afterAll(async () => {
    await lab?.down();
  });

  const run = (config: string, timeoutMs = 15_000) =>
    lab.exec('router', [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', config], { timeoutMs });

  it('refuses to start while kernel forwarding is on, saying how to turn it off', async () => {
    await lab.exec('router', ['sysctl', '-qw', 'net.ipv4.conf.lan0.forwarding=1']);
    try {
      const result = await run(labConfigPath(lab));
      expect(result.code).toBe(1);
      const last = result.stderr.trim().split('\n').at(-1)!;
      expect(last).toMatch(/^vipr: kernel IPv4 forwarding is on for lan0: .*sysctl -w net\.ipv4\.conf\.lan0\.forwarding=0.*kernelForwarding: disable/);
    } finally {
      await lab.exec('router', ['sysctl', '-qw', 'net.ipv4.conf.lan0.forwarding=0']);
    }
  });

  it('turns kernel forwarding off itself with kernelForwarding: disable, and says so', async () => {
    await lab.exec('router', ['sysctl', '-qw', 'net.ipv4.conf.lan0.forwarding=1']);
    const config = `/run/vipr-lab/${lab.prefix}/disable.yaml`;
    const base = (await lab.exec('router', ['cat', labConfigPath(lab)])).stdout;
    await writeFile(config, base.replace('kernelForwarding: refuse', 'kernelForwarding: disable'));
    const vipr = await startVipr(lab, config);
    try {
      expect(vipr.logs.join('\n')).toContain('turned kernel IPv4 forwarding off on lan0');
      expect((await lab.exec('router', ['cat', '/proc/sys/net/ipv4/conf/lan0/forwarding'])).stdout.trim()).toBe('0');
      const answer = await lab.exec('client', ['curl', '-s', '-m', '3', '--retry', '3', '--retry-all-errors', 'http://192.168.1.65/']);
      expect(answer.stdout.trim()).toBe('web2');
    } finally {
      expect(await vipr.stop()).toBe(0);
    }
  });

  it('refuses a second vipr on the same control socket, and the first keeps forwarding', async () => {
    const first = await startVipr(lab);
    try {
      const second = await run(labConfigPath(lab));
      expect(second.code).toBe(1);
      expect(second.stderr.trim().split('\n').at(-1)).toMatch(/^vipr: another vipr is running on control socket \/run\/vipr-lab\/.*\/vipr\.sock/);
      // The running vipr's drop rule stays: the refused one does not undo what is not its own.
      expect((await lab.exec('router', ['nft', 'list', 'table', 'netdev', 'vipr_transit'])).code).toBe(0);
      const answer = await lab.exec('client', ['curl', '-s', '-m', '3', '--retry', '3', '--retry-all-errors', 'http://192.168.1.97/']);
      expect(answer.stdout.trim()).toBe('web3');
    } finally {
      expect(await first.stop()).toBe(0);
    }
  });

  it('a start that fails after installing the kernel-transit drop rule takes the rule away again', async () => {
    const transitRule = async () => (await lab.exec('router', ['nft', 'list', 'table', 'netdev', 'vipr_transit'])).code === 0;
    expect(await transitRule()).toBe(false);
    // Something else holds the metrics port: vipr gets as far as its metrics, then gives up.
    const holder = spawnIn(lab, 'router', [process.execPath, '-e', "require('net').createServer().listen(9108, '127.0.0.1', () => console.log('listening'))"]);
    try {
      await new Promise((resolve) => holder.stdout!.once('data', resolve));
      const config = `/run/vipr-lab/${lab.prefix}/busy-metrics.yaml`;
      await writeFile(config, `${(await lab.exec('router', ['cat', labConfigPath(lab)])).stdout}\nmetrics:\n  listen: "127.0.0.1:9108"\n`);
      const result = await run(config);
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^vipr: metrics: cannot listen on 127\.0\.0\.1:9108: /);
      expect(result.stderr).toContain('kernel\'s copy of transit IPv4 dropped at ingress'); // it did get that far
      expect(await transitRule()).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('explains a bad config in one line naming file, line and field, and does not start', async () => {
    const config = `/run/vipr-lab/${lab.prefix}/bad.yaml`;
    const base = (await lab.exec('router', ['cat', labConfigPath(lab)])).stdout;
    await writeFile(config, base.replace('prefix: 192.168.1.64/27', 'prefix: 192.168.1.65/27'));
    const result = await run(config);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(new RegExp(`^vipr: ${config}:\\d+:\\d+: routes\\[1\\]\\.prefix: 192\\.168\\.1\\.65/27 has host bits set; did you mean 192\\.168\\.1\\.64/27\\?$`));
  });

  it('a missing interface is named', async () => {
    const config = `/run/vipr-lab/${lab.prefix}/noif.yaml`;
    const base = (await lab.exec('router', ['cat', labConfigPath(lab)])).stdout;
    await writeFile(config, base.replace('- name: lan0', '- name: lan9'));
    const result = await run(config);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe('vipr: interface lan9 does not exist (see `ip link`)');
  });

  it('dataplane.cpu pins the data-plane worker alone; the main thread and the health-check thread run on the other CPUs', async () => {
    const allowed = cpuList(await readFile('/proc/self/status', 'utf8'));
    const cpu = allowed.at(-1)!;
    const others = allowed.filter((c) => c !== cpu);
    const config = `/run/vipr-lab/${lab.prefix}/pinned.yaml`;
    const base = (await lab.exec('router', ['cat', labConfigPath(lab)])).stdout;
    expect(base).toContain('  # cpu: 1\n');
    await writeFile(config, base.replace('  # cpu: 1\n', `  cpu: ${cpu}\n`));
    const vipr = await startVipr(lab, config);
    try {
      const pid = vipr.process.pid!;
      // The main thread (the control plane) is not pinned: it may run anywhere vipr may.
      expect(cpuList(await readFile(`/proc/${pid}/status`, 'utf8'))).toEqual(allowed);
      // The lab's servers have HTTP checks: the thread starts with the first of them.
      await waitFor(() => vipr.logs.some((line) => line.includes('health-check thread on CPU')), 5000);
      expect(vipr.logs.join('\n')).toContain(`data-plane worker(s) on CPU ${cpu}; health checks run on CPU ${others.join(',')}`);
      expect(vipr.logs.join('\n')).toContain(`data-plane worker 0 pinned to CPU ${cpu}`);
      const threads = await Promise.all((await readdir(`/proc/${pid}/task`)).map((tid) => readFile(`/proc/${pid}/task/${tid}/status`, 'utf8').catch(() => '')));
      const placed = threads.filter((status) => status !== '').map(cpuList);
      // One thread, the data-plane worker, on that CPU alone; the check thread on the others.
      expect(placed.filter((cpus) => cpus.join(',') === String(cpu)).length).toBe(1);
      expect(placed.filter((cpus) => cpus.join(',') === others.join(',')).length).toBeGreaterThanOrEqual(1);
      // Pinned, it forwards, and its checks keep every server up.
      expect((await lab.exec('client', ['ping', '-c', '3', '-i', '0.2', '-W', '1', '192.168.1.33'])).code).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 600)); // a dozen check intervals: fall 3 would have shown a failing thread
      const rows = await servers(lab);
      expect(rows.map((row) => `${row.name} ${row.state}`)).toEqual(['web1 up', 'web2 up', 'web3 up', 'web4 up']);
    } finally {
      await vipr.stop();
    }
  });

  it('refuses a dataplane.cpu it may not run on, naming the CPUs it may', async () => {
    const allowed = cpuList(await readFile('/proc/self/status', 'utf8'));
    const config = `/run/vipr-lab/${lab.prefix}/badcpu.yaml`;
    const base = (await lab.exec('router', ['cat', labConfigPath(lab)])).stdout;
    await writeFile(config, base.replace('  # cpu: 1\n', '  cpu: 1023\n'));
    const result = await run(config);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe(`vipr: dataplane.cpu: CPU 1023 is not one vipr may run on (allowed: ${allowed.join(',')})`);
  });

  it('stops cleanly on SIGTERM and SIGINT, removing its control socket', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const vipr = await startVipr(lab);
      vipr.process.kill(signal);
      // The one signal must be enough: wait for the daemon to exit by itself
      // (a second SIGTERM during Node's exit teardown would kill it with 143).
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([vipr.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 10_000)))]);
      clearTimeout(timer);
      if (code === 'timeout') await vipr.stop(1000);
      expect(code).toBe(0);
      await vipr.stop(); // drains its pipes; it has exited already
      expect(vipr.logs.some((line) => line.includes(`${signal}: stopping`))).toBe(true);
      expect((await lab.exec('router', ['test', '-e', `/run/vipr-lab/${lab.prefix}/vipr.sock`])).code).toBe(1);
    }
  });
});

describe('vipr check-config FILE (the built CLI)', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vipr-check-config-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const checkConfig = (file: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [`${REPO_ROOT}dist/src/cli/main.js`, 'check-config', file], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
      });
    });

  /** LINE:COL (1-based) of the first `marker` in `text`: where the error must point. */
  const positionOf = (text: string, marker: string) => {
    const at = text.indexOf(marker);
    if (at < 0) throw new Error(`no ${JSON.stringify(marker)} in the file`);
    const before = text.slice(0, at);
    return `${before.split('\n').length}:${at - before.lastIndexOf('\n')}`;
  };

  it('a good file (the lab\'s config): exit 0, one line on stdout, nothing on stderr', async () => {
    const file = join(dir, 'good.yaml');
    await writeFile(file, await readFile(`${REPO_ROOT}lab/vipr.yaml`, 'utf8'));
    const r = await checkConfig(file);
    expect(r).toEqual({ code: 0, stdout: `${file}: ok (2 interfaces, 4 servers, 6 routes)\n`, stderr: '' });
  });

  const bad: Array<{ what: string; from: string; to: string; marker: string; error: string }> = [
    {
      what: 'a prefix with host bits set', from: 'prefix: 192.168.1.64/27', to: 'prefix: 192.168.1.65/27', marker: '192.168.1.65/27',
      error: 'routes[1].prefix: 192.168.1.65/27 has host bits set; did you mean 192.168.1.64/27?',
    },
    {
      what: 'a route via an unknown server', from: 'via: [web1, web2] }', to: 'via: [web1, web9] }', marker: 'web9',
      error: 'routes[0].via[1]: unknown server "web9"; did you mean "web1"? (known servers: web1, web2, web3, web4)',
    },
    {
      what: 'a misspelt key', from: '  rise: 2', to: '  rize: 2', marker: 'rize',
      error: 'health.rize: unknown key; did you mean "rise"?',
    },
    {
      what: 'a value of the wrong kind', from: 'intervalMs: 50 ', to: 'intervalMs: fifty ', marker: 'fifty',
      error: 'health.intervalMs: expected a whole number from 10 to 3600000, got "fifty"',
    },
  ];
  it.each(bad)('$what: exit 1, exactly one line `vipr: FILE:LINE:COL: field: what` on stderr, nothing on stdout', async ({ from, to, marker, error }) => {
    const text = (await readFile(`${REPO_ROOT}lab/vipr.yaml`, 'utf8')).replace(from, to);
    expect(text).toContain(to);
    const file = join(dir, 'bad.yaml');
    await writeFile(file, text);
    const r = await checkConfig(file);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vipr: ${file}:${positionOf(text, marker)}: ${error}\n` });
  });

  it('a YAML syntax error: the same one line, field `YAML`', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'interfaces:\n  - name: up0\n  - { name: lan0\n');
    const r = await checkConfig(file);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^vipr: ${file.replace(/[.]/g, '\\.')}:\\d+:\\d+: YAML: [^\\n]+\\n$`));
  });

  it('a file that is not there: exit 1, one line naming it', async () => {
    const file = join(dir, 'missing.yaml');
    const r = await checkConfig(file);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vipr: ${file}: cannot read the config file: ENOENT: no such file or directory, open '${file}'\n` });
  });
});
