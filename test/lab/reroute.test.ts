// Reroutes through vipr lose nothing: a numbered 20 kpps UDP stream from the
// client to the VIP 192.168.1.33 while 192.168.1.32/27 moves between web1 and
// web2 100 times (`vipr ctl -`, one `route replace` every 10 ms). Every number
// sent must arrive exactly once, at web1 or web2, in order within each server's
// share, and both servers must get a share.
//
// The measurement is lab/lib/reroute-trial.ts (node dist/bench/reroute.js runs it with
// 1000 reroutes and against the kernel): lab/udp-stream.c (built with cc -O2
// into the temp dir) in the client namespace on CPU 0 at SCHED_FIFO, and
// lab/udp-sink.mjs in web1 and web2.
//
// vipr runs pinned to CPU 1, its main thread (the data plane) at SCHED_FIFO,
// like the generator, and the stream starts after a warm-up stream. The test is
// about reroutes, and lab tests share the machine with the unit tests (and
// whatever else runs): a port buffers only so much while vipr is not scheduled
// (the pcap backend 256 frames: 12.8 ms at 20 kpps), so at normal priority on a
// busy CPU vipr can drop packets with or without reroutes (bench modes vipr /
// vipr-steady). Even at SCHED_FIFO, a virtual machine can stop a CPU for tens
// of ms (bench: the stall probe); packets lost that way are lost before vipr
// reads them (kernel up0 rx > vipr up0 rx), so such an attempt is repeated
// (MAX_ATTEMPTS). The port backend is lab/vipr.yaml's (`io:`).
// vipr runs with the lab's config minus the servers' health checks: on a busy
// machine lab/vipr.yaml's HTTP checks (50 ms timeout, down after 3 failures)
// take servers down and move routes in the middle of the test. Should a health
// event still show up, vipr, not the test, moved the route: that attempt is
// repeated too.
//
// Needs the daemon built: npx tsc -p tsconfig.json
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configWithoutHealthChecks, viprIoOf, waitViprNeighbors, type TrialLab } from '../../lab/lib/lab.js';
import { makeRealtime, pinToCpu } from '../../lab/lib/process.js';
import { lossLocation, measureReroutes, table, type TrialResult } from '../../lab/lib/reroute-trial.js';
import { labSocketPath, labUp, spawnIn, startVipr, type Lab, type ViprProcess } from './harness.js';

const REROUTES = 100;
const RATE = 20_000;
/**
 * Attempts, when one was disturbed: packets lost *before* vipr read them (the
 * machine did not run vipr for longer than its port buffers, see above),
 * or a health event. Every attempt must apply every reroute and duplicate and
 * reorder nothing; an undisturbed one must also lose nothing after vipr read
 * it, and one attempt must lose nothing at all.
 */
const MAX_ATTEMPTS = 3;

describe('reroutes through vipr are lossless', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let exitCode: number | undefined;
  let config = '';

  beforeAll(async () => {
    lab = await labUp({ kernelRouter: false });
    try {
      config = configWithoutHealthChecks(lab.prefix);
      vipr = await startVipr(lab, config);
      const pid = vipr.process.pid!;
      await pinToCpu(pid, 1); // false on a 1-CPU machine: then it shares the generator's
      expect(await makeRealtime(pid), 'chrt -f vipr').toBe(true);
      await waitViprNeighbors(trialLab(lab), labSocketPath(lab));
    } catch (error) {
      await vipr?.stop();
      await lab.down();
      lab = undefined;
      throw error;
    }
  });

  afterAll(async () => {
    try {
      if (vipr) {
        exitCode = await vipr.stop();
        expect(exitCode, `vipr exit code; log tail:\n${vipr.logs.slice(-10).join('\n')}`).toBe(0);
      }
    } finally {
      await lab?.down();
    }
  });

  const routeChanges = () => vipr!.records().filter((r) => String(r.msg).startsWith('route change')).length;
  const events = () => vipr!.records().map((r) => String(r.msg)).filter((m) => m.startsWith('event:'));

  function trialLab(l: Lab): TrialLab {
    return { prefix: l.prefix, spawn: (node, cmd, opts) => spawnIn(l, node, cmd, opts), exec: (node, cmd, opts) => l.exec(node, cmd, opts) };
  }

  it(`${REROUTES} reroutes of 192.168.1.32/27 under ${RATE} pps: nothing lost, duplicated or reordered`, async () => {
    const attempts: TrialResult[] = [];
    const retried: string[] = [];
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const routeChangesBefore = routeChanges();
      const r: TrialResult = await measureReroutes(
        { mode: 'vipr-rt', lab: trialLab(lab!), socket: labSocketPath(lab!), viprEvents: events, viprIo: viprIoOf(config) },
        { reroutes: REROUTES, rate: RATE, intervalMs: 10, leadMs: 1000, tailMs: 1000 },
      );
      attempts.push(r);
      const report = `${table([r])}\ncounters: ${lossLocation(r)}${r.healthEvents.length ? `\nhealth events: ${r.healthEvents.join(' | ')}` : ''}`;
      console.log(`attempt ${attempt}:\n${report}`);
      const why = `\n${report}\nfirst loss bursts [seq, length]: ${JSON.stringify(r.merge.firstLossBursts)}`;

      // the stream really ran at the rate asked for
      expect(r.stream.errors, `send errors ${r.stream.last_error}${why}`).toBe(0);
      expect(r.stream.sent, why).toBeGreaterThanOrEqual(RATE * 2.5);
      expect(r.stream.rate, why).toBeGreaterThan(RATE * 0.95); // a stalled sender moves its schedule on

      // every reroute was applied
      expect(r.reroutes?.ok, `reroutes acked ok; applier: ${r.reroutes?.applierErrors}${why}`).toBe(REROUTES);
      expect(routeChanges() - routeChangesBefore, `route changes in vipr's log${why}`).toBe(REROUTES);

      // never a duplicate, never out of order
      expect(r.merge.unexpected, why).toBe(0);
      expect(r.merge.duplicated, `duplicated${why}`).toBe(0);
      expect(r.reordered, `reordered${why}`).toBe(0);

      if (r.healthEvents.length > 0) {
        // A health check moved or withdrew routes during the attempt: not our reroutes.
        retried.push(`attempt ${attempt}: vipr health events: ${r.healthEvents.join(' | ')}`);
        continue;
      }
      // the packets saw the reroutes
      expect(r.finalRoute.ok, `final route ${r.finalRoute.actual}, expected via ${r.finalRoute.expected}`).toBe(true);
      expect(r.merge.shares.web1, `web1's share${why}`).toBeGreaterThan(0);
      expect(r.merge.shares.web2, `web2's share${why}`).toBeGreaterThan(0);
      expect(r.merge.switches, `server changes along the sequence${why}`).toBeGreaterThanOrEqual(REROUTES * 0.9);

      // nothing lost once vipr has read it
      expect(r.lostAtViprPort, why).not.toBeNull();
      expect(r.lostElsewhere, `lost after vipr read them${why}`).toBe(0);
      if (r.merge.lost === 0) {
        expect(r.merge.received, why).toBe(r.stream.sent);
        return;
      }
      // Every lost packet was lost before vipr read it (its port buffer was
      // full while it did not run): a stall of the machine, not a reroute.
      retried.push(`attempt ${attempt}: ${r.lostAtViprPort} packets lost at vipr's port (its buffer full), none after`);
    }
    expect.fail(
      `no attempt out of ${MAX_ATTEMPTS} was undisturbed and lossless (io ${viprIoOf(config)}):\n` +
        `${retried.join('\n')}\n${table(attempts)}`,
    );
  });
});
