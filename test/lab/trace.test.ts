// `vipr ctl trace` as an operator runs it: the real daemon in the lab's router
// namespace, the real CLI tracing while the client curls a VIP, then
// `tcpdump -r` on the file the daemon wrote, and its packet comments (the
// verdicts) read with test/pcapng.ts.
//
// The daemon runs on the lab's config without the servers' health checks, so
// a busy machine cannot fail a check and move 192.168.1.32/27 off web1 in the
// middle of the test.
// Needs the daemon built: npx tsc -p tsconfig.json

import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePcapng } from '../pcapng.js';
import {
  closeLabWithVipr, curlFromClient, labConfigPath, labWithVipr, viprCtl, waitFor, withoutChecks, type Lab, type ViprProcess,
} from './harness.js';

describe('vipr ctl trace', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  let dir = '';

  beforeAll(async () => {
    ({ lab, vipr } = await labWithVipr('trace-test', withoutChecks));
    dir = join(dirname(labConfigPath(lab)), 'traces'); // beside the lab's state file
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  /** Resolves once the daemon has logged that the trace to `file` started (from then on every batch is traced). */
  const started = (file: string) =>
    waitFor(() => vipr!.records().some((r) => typeof r.msg === 'string' && r.msg.startsWith(`trace to ${file} started`)), 10_000, 20);

  const tcpdump = async (file: string) => {
    const r = await lab!.exec('router', ['tcpdump', '-r', file, '-nn']);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.split('\n').filter((l) => l.trim());
  };

  it('while curl fetches 192.168.1.33: the file holds the flow both ways, as received and as sent, with verdicts', async () => {
    // Warm up ARP first, so the traced flow is forwarded rather than held.
    expect((await curlFromClient(lab!, '192.168.1.33')).stdout.trim()).toBe('web1');
    const file = join(dir, 'flow.pcapng');
    const ctl = viprCtl(lab!, ['trace', file, '--prefix', '192.168.1.32/27', '--count', '1000', '--seconds', '4'], { timeoutMs: 30_000 });
    expect(await started(file), 'the daemon logged the trace start').toBe(true);
    const curl = await curlFromClient(lab!, '192.168.1.33');
    expect(curl.stdout.trim()).toBe('web1');

    const r = await ctl;
    expect(r.code, r.stderr).toBe(0);
    const summary = /^trace (\S+): (\d+) packets written \((\d+) frames, \d+ bytes\); time limit reached$/m.exec(r.stdout);
    expect(summary, r.stdout).not.toBeNull();
    expect(summary![1]).toBe(file);
    const packets = Number(summary![2]);

    const lines = await tcpdump(file);
    expect(lines).toHaveLength(packets);
    // The handshake both ways, each seen twice: received on one port and sent on the other.
    const syn = lines.filter((l) => /IP 10\.0\.0\.2\.\d+ > 192\.168\.1\.33\.80: Flags \[S\],/.test(l));
    const synAck = lines.filter((l) => /IP 192\.168\.1\.33\.80 > 10\.0\.0\.2\.\d+: Flags \[S\.\],/.test(l));
    expect(syn).toHaveLength(2);
    expect(synAck).toHaveLength(2);
    expect(lines.some((l) => /192\.168\.1\.33\.80: Flags \[P\.\].*HTTP: GET \/ HTTP\/1\.1/.test(l))).toBe(true);

    const pcap = parsePcapng(await readFile(file));
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect(pcap.interfaces.map((i) => i.name)).toEqual(['up0', 'lan0']);
    const comments = pcap.packets.map((p) => `${p.interfaceName} ${p.direction === 1 ? 'in' : 'out'}: ${p.comments[0]}`);
    expect(new Set(comments)).toEqual(new Set([
      'up0 in: forwarded up0 -> lan0 via web1 (192.168.1.2)',
      'lan0 out: sent lan0 -> web1 (192.168.1.2), TTL 63 (rewritten from up0)',
      // The client is on up0's connected subnet: the reply goes straight to it.
      'lan0 in: forwarded lan0 -> up0 to 10.0.0.2 (connected)',
      'up0 out: sent up0 -> 10.0.0.2 (connected), TTL 63 (rewritten from lan0)',
    ]));
    expect(Number(summary![3]) * 2).toBe(packets); // every traced frame of the flow was forwarded
  });

  it('--file form, and `drops`: a datagram to an unreachable address is recorded with its reason', async () => {
    const file = join(dir, 'drops.pcapng');
    const ctl = viprCtl(lab!, ['trace', '--file', file, '--drop', 'any', '--count', '1', '--seconds', '20'], { timeoutMs: 30_000 });
    expect(await started(file)).toBe(true);
    // 192.168.1.200 is in the unreachable 192.168.1.0/24: vipr drops it and answers ICMP net unreachable.
    await waitFor(async () => {
      await lab!.exec('client', ['ping', '-c', '1', '-W', '1', '192.168.1.200']);
      return vipr!.records().some((r) => typeof r.msg === 'string' && r.msg.startsWith(`trace ${file}:`));
    }, 15_000, 100);
    const r = await ctl;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 1 packets written \(1 frames, \d+ bytes\); frame limit reached$/m);
    const lines = await tcpdump(file);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/IP 10\.0\.0\.2 > 192\.168\.1\.200: ICMP echo request/);
    const pcap = parsePcapng(await readFile(file));
    expect(pcap.packets[0].comments).toEqual(['drop: unreachableRoute (ICMP net unreachable to the sender)']);
  });

  it('refuses to overwrite a file or to write outside the trace directory, and `trace stop` ends a trace from another connection', async () => {
    const again = await viprCtl(lab!, ['trace', 'flow.pcapng', 'count', '1']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/ETRACEFILE: cannot create trace file .*flow\.pcapng: it exists/);
    const elsewhere = await viprCtl(lab!, ['trace', '/var/tmp/vipr-lab-trace.pcapng', 'count', '1']);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain(`vipr: ETRACEFILE: trace file \`/var/tmp/vipr-lab-trace.pcapng\`: trace files go in ${dir} only; give a bare name, e.g. \`vipr-lab-trace.pcapng\`\n`);
    expect((await lab!.exec('router', ['test', '-e', '/var/tmp/vipr-lab-trace.pcapng'])).code).not.toBe(0);

    const file = join(dir, 'stopped.pcapng');
    const ctl = viprCtl(lab!, ['trace', file, 'port', 'lan0'], { timeoutMs: 30_000 }); // the words form
    expect(await started(file)).toBe(true);
    const stop = await viprCtl(lab!, ['trace', 'stop']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toMatch(/^stopping the trace to .*stopped\.pcapng/);
    const r = await ctl;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped by `trace stop`$/m);
    await tcpdump(file); // a valid file, even if nothing matched
    // Forwarding is unaffected by all of this.
    expect((await curlFromClient(lab!, '192.168.1.65')).stdout.trim()).toBe('web2');
  });
});
