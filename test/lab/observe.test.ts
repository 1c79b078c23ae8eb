// Watching the router as an operator does: Prometheus metrics scraped with
// curl inside the router namespace, `vipr ctl status`, and `vipr top` in a
// pseudo-terminal (script(1)), against the real daemon in the lab.
//
// One lab and one daemon for the whole file; the daemon runs on a copy of the
// lab's config with a `metrics:` section on 127.0.0.1 (so only the router
// namespace reaches it).
// Needs the daemon built: npx tsc -p tsconfig.json

import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROP_NAMES, ICMP_SENT_NAMES, PORT_COUNTER_NAMES, PUNT_NAMES } from '../../src/dataplane/counters.js';
import {
  closeLabWithVipr, curlFromClient, labSocketPath, labWithVipr, REPO_ROOT, spawnIn, viprCtl, waitFor, type Lab, type ViprProcess,
} from './harness.js';
import { parseExposition, sampleValue as value } from '../exposition.js';

const VIPS = ['192.168.1.33', '192.168.1.65', '192.168.1.97', '192.168.1.129'];

interface StatsJson {
  batches: number;
  drops: Record<string, number>;
  punts: Record<string, number>;
  icmp: Record<string, number>;
  ports: Record<string, Record<string, number>>;
  backend: Record<string, Record<string, number>>;
}

/**
 * The lab's checks run every 50 ms with a 50 ms timeout, to test failover
 * fast; on a busy machine that flaps servers. Here the servers are watched,
 * not failed: checks every 500 ms with a 400 ms timeout keep them up.
 */
function calmChecks(config: string): string {
  const calm = config.replace(/^(\s+intervalMs:) \d+/m, '$1 500').replace(/^(\s+timeoutMs:) \d+/m, '$1 400');
  if (calm === config) throw new Error('no health intervalMs/timeoutMs in the lab config');
  return calm;
}

describe('observing vipr: metrics, status and top', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let port = 0;
  let socket = '';

  beforeAll(async () => {
    // The namespace is new: no port in it is taken, any one will do.
    port = randomInt(20_000, 40_000);
    ({ lab, vipr } = await labWithVipr('observe-test', (text) => `${calmChecks(text)}\nmetrics:\n  listen: "127.0.0.1:${port}"\n`));
    socket = labSocketPath(lab);
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const ctl = (...args: string[]) => viprCtl(lab!, args);
  const scrape = async (): Promise<Map<string, number>> => {
    const r = await lab!.exec('router', ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:${port}/metrics`]);
    expect(r.code, `curl metrics: ${r.stderr}`).toBe(0);
    return parseExposition(r.stdout);
  };
  const stats = async (): Promise<StatsJson> => {
    const r = await ctl('--json', 'stats');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as StatsJson;
  };

  it('serves metrics on 127.0.0.1 of the router namespace, and says so in its log', async () => {
    const r = await lab!.exec('router', ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code} %{content_type}', `http://127.0.0.1:${port}/metrics`]);
    expect(r.stdout).toMatch(/^200 text\/plain; version=0\.0\.4/);
    expect(vipr!.records().some((record) => record.msg === `metrics on http://127.0.0.1:${port}/metrics`)).toBe(true);
    // Loopback only: the router's data-plane addresses do not answer on that port.
    const outside = await lab!.exec('router', ['curl', '-sS', '--max-time', '2', `http://10.0.0.1:${port}/metrics`]);
    expect(outside.code).not.toBe(0);
  });

  it('after curls through vipr, the scraped counters match `vipr ctl stats`', async () => {
    for (let round = 0; round < 3; round++) {
      for (const vip of VIPS) {
        const r = await curlFromClient(lab!, vip);
        expect(r.code, `curl ${vip}: ${r.stderr}`).toBe(0);
      }
    }
    // Health checks keep frames moving on lan0, so the scrape falls between two stats: before <= scraped <= after.
    const before = await stats();
    const samples = await scrape();
    const after = await stats();
    const between = (what: string, scraped: number, low: number, high: number) => {
      expect(scraped, `${what}: ${low} <= ${scraped} <= ${high}`).toBeGreaterThanOrEqual(low);
      expect(scraped, `${what}: ${low} <= ${scraped} <= ${high}`).toBeLessThanOrEqual(high);
    };
    const portMetric: Record<string, string> = {
      rxPackets: 'received_packets', rxBytes: 'received_bytes', txPackets: 'sent_packets', txBytes: 'sent_bytes', forwardedPackets: 'forwarded_packets',
    };
    for (const name of ['up0', 'lan0']) {
      expect(value(samples, 'vipr_port_up', { port: name }), `vipr_port_up ${name}`).toBe(1);
      for (const counter of PORT_COUNTER_NAMES) {
        const metric = `vipr_port_${portMetric[counter]}_total`;
        between(`${metric} ${name}`, value(samples, metric, { port: name }), before.ports[name][counter], after.ports[name][counter]);
      }
    }
    for (const reason of DROP_NAMES) between(`drops ${reason}`, value(samples, 'vipr_drops_total', { reason }), before.drops[reason], after.drops[reason]);
    for (const kind of PUNT_NAMES) between(`punts ${kind}`, value(samples, 'vipr_punts_total', { kind }), before.punts[kind], after.punts[kind]);
    for (const type of ICMP_SENT_NAMES) {
      between(`icmp ${type}`, value(samples, 'vipr_icmp_errors_sent_total', { type }), before.icmp[type], after.icmp[type]);
    }
    between('batches', value(samples, 'vipr_batches_total'), before.batches, after.batches);

    // Twelve HTTP exchanges went both ways: several frames each, forwarded on both ports.
    expect(value(samples, 'vipr_port_forwarded_packets_total', { port: 'lan0' })).toBeGreaterThanOrEqual(12 * 3);
    expect(value(samples, 'vipr_port_forwarded_packets_total', { port: 'up0' })).toBeGreaterThanOrEqual(12 * 3);
    // Per next-hop list: each VIP's /27 has its own list in the lab, and the replies go through the default route.
    for (const via of ['web1,web2', 'web2,web3', 'web3,web4', 'web4,web1']) {
      expect(value(samples, 'vipr_nexthop_packets_total', { via }), via).toBeGreaterThanOrEqual(3 * 3);
    }
    // The replies go to the client on up0's own subnet: the connected route's next hop.
    expect(value(samples, 'vipr_nexthop_packets_total', { via: 'connected:up0' })).toBeGreaterThanOrEqual(12 * 3);
    // Bytes too: at least a minimal frame per counted packet.
    for (const via of ['web1,web2', 'connected:up0']) {
      expect(value(samples, 'vipr_nexthop_bytes_total', { via }), via).toBeGreaterThanOrEqual(60 * value(samples, 'vipr_nexthop_packets_total', { via }));
    }
    expect(value(samples, 'vipr_fib_routes')).toBeGreaterThan(6);
    expect(value(samples, 'vipr_neighbors', { state: 'reachable' })).toBeGreaterThanOrEqual(5);
    expect(value(samples, 'vipr_control_commands_total', { command: 'stats', result: 'ok' })).toBeGreaterThanOrEqual(1);
  });

  it('the ring backend\'s own counters (kernel ring drops, transmit failures) are in `stats` and in the scrape', async () => {
    const r = await curlFromClient(lab!, VIPS[0]);
    expect(r.code, r.stderr).toBe(0);
    const before = await stats();
    const samples = await scrape();
    const after = await stats();
    for (const name of ['up0', 'lan0']) {
      // The kernel's PACKET_STATISTICS, folded in at each read: it saw at least what vipr read.
      expect(before.backend[name].kernelPackets, name).toBeGreaterThanOrEqual(before.backend[name].rxFrames);
      expect(before.backend[name].rxFrames, name).toBeGreaterThan(0);
      expect(before.backend[name].kernelDrops, name).toBe(0); // a few curls never fill a ring
      for (const counter of ['rxFrames', 'txFrames', 'kernelDrops', 'txFailed']) {
        const scraped = value(samples, 'vipr_port_backend_total', { port: name, counter });
        expect(scraped, `${name} ${counter}`).toBeGreaterThanOrEqual(before.backend[name][counter]);
        expect(scraped, `${name} ${counter}`).toBeLessThanOrEqual(after.backend[name][counter]);
      }
    }
    const text = await ctl('stats');
    expect(text.stdout).toMatch(/^ports: up0 none; lan0 none$/m);
  });

  it('server state, check latency, failovers and failbacks follow a drain', async () => {
    const start = await scrape();
    for (const server of ['web1', 'web2', 'web3', 'web4']) {
      expect(value(start, 'vipr_server_state', { server, state: 'up' }), server).toBe(1);
      const latency = value(start, 'vipr_server_check_latency_seconds', { server, check: 'http:80/health' });
      expect(latency, `${server} check latency`).toBeGreaterThan(0);
      expect(latency).toBeLessThan(1);
    }
    const failoversBefore = value(start, 'vipr_failovers_total', { server: 'web1' });
    const failbacksBefore = value(start, 'vipr_failbacks_total', { server: 'web1' });

    const drain = await ctl('server', 'drain', 'web1');
    expect(drain.code, drain.stderr).toBe(0);
    const drained = await scrape();
    expect(value(drained, 'vipr_server_state', { server: 'web1', state: 'draining' })).toBe(1);
    expect(value(drained, 'vipr_server_state_changes_total', { server: 'web1', state: 'draining' })).toBeGreaterThanOrEqual(1);
    // web1 carried 192.168.1.32/27 (web2 is its backup); 192.168.1.128/27 stays on web4.
    expect(value(drained, 'vipr_failovers_total', { server: 'web1' }) - failoversBefore).toBe(1);
    expect(value(drained, 'vipr_route_info', { prefix: '192.168.1.32/27', type: 'unicast', via: 'web1,web2', active: 'web2', source: 'config' })).toBe(1);
    expect((await curlFromClient(lab!, '192.168.1.33')).stdout.trim()).toBe('web2');

    const undrain = await ctl('server', 'undrain', 'web1');
    expect(undrain.code, undrain.stderr).toBe(0);
    const back = await scrape();
    expect(value(back, 'vipr_server_state', { server: 'web1', state: 'up' })).toBe(1);
    expect(value(back, 'vipr_failbacks_total', { server: 'web1' }) - failbacksBefore).toBe(1);
    expect(value(back, 'vipr_control_commands_total', { command: 'server drain', result: 'ok' })).toBe(1);
  });

  it('vipr ctl status: ports with rates, routes with their active next hop, servers', async () => {
    const r = await ctl('status');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^uptime \S+ {2}routes \d+ {2}neighbors \d+ {2}last route change .* {2}rates over \d\.\ds$/);
    expect(lines).toContainEqual(expect.stringMatching(/^PORT\s+STATE\s+RX PKT\/S\s+RX BIT\/S\s+TX PKT\/S\s+TX BIT\/S\s+FWD PKT\/S/));
    expect(lines).toContainEqual(expect.stringMatching(/^up0\s+up\s+\d/));
    expect(lines).toContainEqual(expect.stringMatching(/^lan0\s+up\s+\d/));
    expect(lines).toContainEqual(expect.stringMatching(/^192\.168\.1\.32\/27\s+web1\s+\S+\s+lan0\s+via web1 \(192\.168\.1\.2\), web2 \(192\.168\.1\.3\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^192\.168\.1\.0\/24\s+-\s+-\s+-\s+unreachable$/));
    for (const server of ['web1', 'web2', 'web3', 'web4']) {
      expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${server}\\s+192\\.168\\.1\\.\\d\\s+up\\s+`)));
    }

    // The JSON form: a rate measured while traffic flows.
    const json = viprCtl(lab!, ['--json', 'status']);
    for (let i = 0; i < 5; i++) await lab!.exec('client', ['curl', '-s', '--max-time', '2', 'http://192.168.1.65/']);
    const answer = await json;
    expect(answer.code, answer.stderr).toBe(0);
    const status = JSON.parse(answer.stdout) as { ports: { name: string; forwardedPerSecond: number }[]; routes: { prefix: string; active: string; packetsPerSecond: number }[] };
    expect(status.routes.find((route) => route.prefix === '192.168.1.64/27')).toMatchObject({ active: 'web2' });
    expect(status.ports.map((p) => p.name)).toEqual(['up0', 'lan0']);
  });

  /** `vipr top` in a pseudo-terminal: script(1) gives it one and passes our keys in. */
  async function runTop(quitKey: string): Promise<{ code: number | null; output: string }> {
    const command = `${process.execPath} ${REPO_ROOT}dist/src/cli/main.js top --socket ${socket}`;
    const child = spawnIn(lab!, 'router', ['script', '-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], cwd: REPO_ROOT });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Two screens: the second comes a second after the first, from the sample the first one kept.
    const drawn = await waitFor(() => (output.match(/^web4\s+192\.168\.1\.5\s+up/gm) ?? []).length >= 2, 10_000, 50);
    expect(drawn, `top drew two screens; output:\n${output}`).toBe(true);
    child.stdin!.write(quitKey);
    const code = await Promise.race([exited, new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 5_000))]);
    if (code === 'late') child.kill('SIGKILL');
    expect(code, `top quit on ${JSON.stringify(quitKey)}`).not.toBe('late');
    child.stdin!.end();
    return { code: code as number | null, output };
  }

  it('vipr top draws the status every second in a terminal and quits on q, putting the terminal back', async () => {
    const { code, output } = await runTop('q');
    expect(code).toBe(0);
    expect(output).toContain('\x1b[?1049h'); // the alternate screen...
    expect(output).toContain('\x1b[H\x1b[2J'); // ...cleared...
    expect(output).toMatch(/vipr top {2}\/run\/vipr-lab\/.*\(q or Ctrl-C quits\)/);
    expect(output).toMatch(/^up0\s+up\s+\d/m);
    expect(output).toMatch(/^192\.168\.1\.32\/27\s+web1\s+/m);
    expect(output.lastIndexOf('\x1b[?25h\x1b[?1049l')).toBeGreaterThan(output.lastIndexOf('web4')); // ...and left at the end
  });

  it('vipr top quits on Ctrl-C too', async () => {
    const { code, output } = await runTop('\x03');
    expect(code).toBe(0);
    expect(output).toContain('\x1b[?25h\x1b[?1049l');
  });
});
