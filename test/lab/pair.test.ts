// Two routers (README "Two routers"): the pair lab (lab/lab.sh up --routers 2)
// with vipr in router1 and router2, BIRD announcing the VIP prefixes to the
// upstream (BGP + BFD, ECMP over both), keepalived holding the servers'
// gateway 192.168.1.1 by VRRP. Checked as an operator would: `birdc show
// route` on the upstream, `ip -br addr` on the routers, `vipr ctl status`,
// curl from the client, and under load with the trial bench/redundancy.ts measures (lab/lib/pair-trial.ts: a
// numbered UDP stream in 64 flows and long TCP downloads): a router killed,
// its uplink down, a planned `vipr ctl shutdown`. Bounds are loose here (an
// outage under 3 s, no reset, nothing lost on a planned stop); the figures
// are bench/redundancy.ts's.
//
// Health checks are taken out of the config (withoutChecks): a check failing
// on a busy machine would move VIP .33 off web1, where the stream's sink is.
// Needs the daemon built: npx tsc -p tsconfig.json
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { measureSpread, measureTrial, settle, upstreamNextHops, vrrpMaster, pairRouters, startRouter, VIP_PREFIXES, type PairContext, type PairRouter } from '../../lab/lib/pair-trial.js';
import { onLines } from '../../lab/lib/process.js';
import { buildStream } from '../../lab/lib/stream.js';
import { trialLab } from './failover-tools.js';
import {
  curlFromClient, execWithInput, labUp, pairConfigPath, pairCtl, REPO_ROOT, spawnIn, startPairVipr, waitFor, withoutChecks,
  type Lab, type PairRouterName, type ViprProcess,
} from './harness.js';

const LOAD = { rate: 5000, flows: 64, downloads: 20, downloadBytes: 75_000, downloadRate: 25_000, leadMs: 1000, afterMs: 2000 };
const birdc = (lab: Lab, node: 'upstream' | PairRouterName, words: string[]) => lab.exec(node, ['birdc', '-s', `/run/vipr-lab/${lab.prefix}/${node}/bird.ctl`, ...words]);
const gatewayOn = async (lab: Lab, router: PairRouterName) => (await lab.exec(router, ['ip', '-br', '-4', 'addr', 'show', 'dev', 'lan0'])).stdout.includes('192.168.1.1/');

describe('a router pair under load', () => {
  let lab: Lab | undefined;
  let ctx: PairContext | undefined;
  let routers: PairRouter[] = [];

  beforeAll(async () => {
    lab = await labUp({ routers: 2 });
    const tl = trialLab(lab);
    routers = pairRouters(lab.prefix);
    for (const router of routers) {
      const config = pairConfigPath(lab, router.name);
      await writeFile(config, withoutChecks(await readFile(config, 'utf8')));
    }
    // The bench's routers (restarted by its trials) run in the harness's lab: its down() stops them.
    await startRouter(tl, routers[0]);
    await waitFor(() => gatewayOn(lab!, 'router1'), 10_000, 50);
    await startRouter(tl, routers[1]);
    ctx = { lab: tl, routers };
    await settle(tl);
  }, 120_000);

  afterAll(async () => {
    await lab?.down();
  }, 60_000);

  it('both routers announce every VIP prefix, the upstream sends each over both, router1 holds the gateway, curl reaches every VIP', async () => {
    const route = await birdc(lab!, 'upstream', ['show', 'route']);
    for (const prefix of VIP_PREFIXES) expect(route.stdout).toMatch(new RegExp(`${prefix.replace(/\./g, '\\.')}\\s+unicast \\[router[12]`));
    expect(route.stdout.match(/\[router1 /g)?.length).toBe(4);
    expect(route.stdout.match(/\[router2 /g)?.length).toBe(4);
    const hops = await upstreamNextHops(trialLab(lab!));
    for (const prefix of VIP_PREFIXES) expect(hops[prefix].sort()).toEqual(['router1', 'router2']);
    expect(await vrrpMaster(trialLab(lab!))).toBe('router1');
    for (const [vip, server] of [['192.168.1.33', 'web1'], ['192.168.1.65', 'web2'], ['192.168.1.97', 'web3'], ['192.168.1.129', 'web4']]) {
      expect((await curlFromClient(lab!, vip)).stdout.trim()).toBe(server);
    }
    const status = await pairCtl(lab!, 'router2', ['status']);
    expect(status.stdout).toMatch(/^pair: liveness vipr-alive up; bird announces 192\.168\.1\.32\/27 192\.168\.1\.64\/27 192\.168\.1\.96\/27 192\.168\.1\.128\/27; keepalived pid \d+$/m);
    expect((await lab!.exec('router2', ['ip', '-br', 'link', 'show', 'vipr-alive'])).stdout).toMatch(/vipr-alive\s+UP/);
  }, 60_000);

  it('the upstream\'s ECMP hash spreads a stream of 64 flows over both routers (each at least 30 %)', async () => {
    const spread = await measureSpread(ctx!, { rate: 5000, flows: 64, seconds: 2 });
    expect(spread.router1).toBeGreaterThanOrEqual(0.3);
    expect(spread.router2).toBeGreaterThanOrEqual(0.3);
  }, 60_000);

  it('a VIP prefix left without a healthy next hop is withdrawn from BIRD, and announced again when one returns', async () => {
    for (const server of ['web1', 'web2']) expect((await pairCtl(lab!, 'router1', ['server', 'drain', server])).code).toBe(0);
    await waitFor(async () => (await upstreamNextHops(trialLab(lab!)))['192.168.1.32/27'].join() === 'router2', 5000, 50);
    const hops = await upstreamNextHops(trialLab(lab!));
    expect(hops['192.168.1.32/27']).toEqual(['router2']);
    expect(hops['192.168.1.64/27'].sort()).toEqual(['router1', 'router2']); // web2 drained, web3 carries .64/27
    expect((await birdc(lab!, 'router1', ['show', 'route', 'protocol', 'vipr'])).stdout).not.toContain('192.168.1.32/27');
    expect((await curlFromClient(lab!, '192.168.1.33')).stdout.trim()).toBe('web1'); // through router2
    for (const server of ['web1', 'web2']) expect((await pairCtl(lab!, 'router1', ['server', 'undrain', server])).code).toBe(0);
    await settle(trialLab(lab!), 10_000);
  }, 60_000);

  it('kill -9 of the router holding the gateway: its liveness link is gone, keepalived and BIRD move everything to the other; the stream comes back, no download is reset', async () => {
    const trial = await measureTrial(ctx!, { ...LOAD, kind: 'kill' });
    expect(trial.router).toBe('router1');
    expect(trial.tcp.reset, JSON.stringify(trial.tcp)).toBe(0);
    expect(trial.tcp.completed, JSON.stringify(trial.tcp)).toBe(LOAD.downloads);
    expect(trial.outageMs).toBeLessThan(3000);
    // Back (measureTrial restarted it): router2 kept the address (nopreempt), router1 announces again.
    expect(await vrrpMaster(trialLab(lab!))).toBe('router2');
  }, 120_000);

  it('the router\'s uplink goes down: the address and the routes move to the other; no download is reset; back when the link returns', async () => {
    const trial = await measureTrial(ctx!, { ...LOAD, kind: 'uplink' });
    expect(trial.router).toBe('router2');
    expect(trial.tcp.reset, JSON.stringify(trial.tcp)).toBe(0);
    expect(trial.tcp.completed, JSON.stringify(trial.tcp)).toBe(LOAD.downloads);
    expect(trial.outageMs).toBeLessThan(3000);
  }, 120_000);

  it('a planned `vipr ctl shutdown` of the router holding the gateway loses no packet and resets no download', async () => {
    const trial = await measureTrial(ctx!, { ...LOAD, kind: 'shutdown' });
    expect(trial.lost, `lost ${trial.lost} of ${trial.sent} after the shutdown began`).toBe(0);
    expect(trial.tcp.reset).toBe(0);
    expect(trial.tcp.completed, JSON.stringify(trial.tcp)).toBe(LOAD.downloads);
  }, 120_000);

  it('a BGP session that flaps, and a BIRD that restarts, do not stop vipr forwarding what it still receives', async () => {
    const tl = trialLab(lab!);
    // A route on the upstream that BGP does not manage: the traffic keeps coming to router2 whatever its session does.
    expect((await lab!.exec('upstream', ['ip', 'route', 'add', '192.168.1.33/32', 'via', '10.0.0.2'])).code).toBe(0);
    const sink = spawnIn(lab!, 'web1', [process.execPath, `${REPO_ROOT}lab/udp-sink.mjs`, '--bind', '192.168.1.33', '--port', '9998', '--run-id', '7', '--name', 'web1']);
    const lines: string[] = [];
    onLines(sink.stdout, (line) => lines.push(line));
    await waitFor(() => lines.some((l) => l.includes('"listening"')), 10_000, 50);
    const gen = await execWithInputLater(lab!);
    for (let i = 0; i < 3; i++) {
      expect((await birdc(lab!, 'upstream', ['disable', 'router2'])).code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      expect((await birdc(lab!, 'upstream', ['enable', 'router2'])).code).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
    }
    // BIRD on router2 dies and comes back: vipr's configure fails meanwhile (said once), forwarding goes on.
    const pid = (await readFile(`/run/vipr-lab/${lab!.prefix}/router2/bird.pid`, 'utf8')).trim();
    process.kill(Number(pid), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    spawnIn(lab!, 'router2', ['bird', '-f', '-c', `/run/vipr-lab/${lab!.prefix}/router2/bird.conf`, '-s', `/run/vipr-lab/${lab!.prefix}/router2/bird.ctl`, '-P', `/run/vipr-lab/${lab!.prefix}/router2/bird.pid`]);
    const report = JSON.parse((await gen).stdout.trim().split('\n').pop()!) as { sent: number };
    await new Promise((r) => setTimeout(r, 300));
    sink.kill('SIGTERM');
    await waitFor(() => lines.some((l) => l.includes('"summary"')), 5000, 50);
    const summary = JSON.parse(lines.find((l) => l.includes('"summary"'))!) as { distinct: number; socketDrops: number };
    expect(summary.distinct + summary.socketDrops).toBe(report.sent);
    expect((await lab!.exec('upstream', ['ip', 'route', 'del', '192.168.1.33/32'])).code).toBe(0);
    // The restarted BIRD read vipr's routes file: router2 announces again, with nothing from vipr.
    await settle(tl, 30_000);
  }, 120_000);
});

/** 2 s of 1,000 packets/s to 192.168.1.33:9998 from the client (lab/udp-stream.c). */
async function execWithInputLater(lab: Lab) {
  const binary = await buildStream();
  return execWithInput(lab, 'client', [binary, '--dst', '192.168.1.33', '--port', '9998', '--rate', '1000', '--duration', '3', '--run-id', '7'], '', 30_000);
}

describe('starting a router of a pair', () => {
  let lab: Lab | undefined;
  beforeAll(async () => {
    lab = await labUp({ routers: 2 });
  }, 60_000);
  afterAll(async () => {
    await lab?.down();
  }, 60_000);

  const runVipr = (router: PairRouterName, config: string) =>
    lab!.exec(router, [process.execPath, `${REPO_ROOT}dist/src/cli/main.js`, 'run', '--config', config], { timeoutMs: 30_000 });

  it('a BIRD that is not running stops the start with one line; with bird.optional it starts and says so', async () => {
    const dir = `/run/vipr-lab/${lab!.prefix}/router1`;
    process.kill(Number((await readFile(`${dir}/bird.pid`, 'utf8')).trim()), 'SIGTERM');
    await waitFor(async () => (await lab!.exec('router1', ['birdc', '-s', `${dir}/bird.ctl`, 'show', 'status'])).code !== 0, 5000, 50);
    const r = await runVipr('router1', `${dir}/vipr.yaml`);
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').pop()!;
    expect(last).toMatch(new RegExp(`^vipr: bird: BIRD does not answer on ${dir}/bird\\.ctl \\(.*\\); is bird running\\? .*\\(or set bird\\.optional: true\\)$`));
    // Nothing left behind: the liveness link is not there.
    expect((await lab!.exec('router1', ['ip', 'link', 'show', 'vipr-alive'])).code).not.toBe(0);

    let vipr: ViprProcess | undefined;
    try {
      vipr = await startPairVipr(lab!, 'router1', (config) => config.replace(/^bird: \{ /m, 'bird: { optional: true, '));
      expect(vipr.logs.some((l) => l.includes('starting anyway (bird.optional)'))).toBe(true);
      // The routes file is there for when BIRD comes: it reads it at its start.
      const routes = await waitFor(() => readFile(`${dir}/bird-routes.conf`, 'utf8').catch(() => ''), 5000, 50);
      expect(routes).toContain('route 192.168.1.32/27 via "vipr-alive";');
      expect(vipr.logs.some((l) => /bird: configure on .* failed/.test(l))).toBe(true);
    } finally {
      expect(await vipr?.stop()).toBe(0);
    }
  }, 60_000);

  it('a keepalived that is not running stops the start with one line', async () => {
    const dir = `/run/vipr-lab/${lab!.prefix}/router2`;
    process.kill(Number((await readFile(`${dir}/keepalived.pid`, 'utf8')).trim()), 'SIGTERM');
    await waitFor(async () => (await lab!.exec('router2', ['sh', '-c', `test -e ${dir}/keepalived.pid`])).code !== 0, 5000, 50);
    const r = await runVipr('router2', `${dir}/vipr.yaml`);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n').pop()).toBe(
      `vipr: keepalived: not running (no pid file ${dir}/keepalived.pid); start it (systemctl start keepalived) with a vrrp_instance that tracks the liveness link (packaging/keepalived-router1.conf) (or set keepalived.optional: true)`,
    );
  }, 60_000);
});
