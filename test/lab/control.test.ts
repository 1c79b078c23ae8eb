// Rerouting through the control socket, as an operator does it: the real
// daemon in the lab's router namespace, the real `vipr ctl` and socat on its
// socket, curl from the client to see which web server answers a VIP.
//
// One lab and one daemon for the whole file; the tests run in order and each
// starts from where the one before left the routes.
// Needs the daemon built: npx tsc -p tsconfig.json

import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeLabWithVipr, curlFromClient, labSocketPath, labWithVipr, socatControl, startVipr, viprCtl, waitFor, type Lab, type ViprProcess,
} from './harness.js';

/**
 * The config text with the route line for `prefix` replaced by `route`
 * (e.g. `{ prefix: 192.168.1.96/27, via: web1 }`), whatever next hops the
 * lab's config gives it.
 */
function withRoute(config: string, prefix: string, route: string): string {
  const line = new RegExp(`^(\\s*- )\\{ prefix: ${prefix.replace(/\./g, '\\.')},.*$`, 'm');
  if (!line.test(config)) throw new Error(`no route line for ${prefix} in the lab config`);
  return config.replace(line, `$1${route}`);
}

describe('rerouting through the control socket', () => {
  let lab: Lab | undefined;
  let vipr: ViprProcess | undefined;
  /** The daemon runs on this copy of the lab's config, so the reload tests can edit it. */
  let config = '';
  let original = '';
  let socket = '';

  beforeAll(async () => {
    ({ lab, vipr, config } = await labWithVipr('control-test', (text) => (original = text)));
    socket = labSocketPath(lab);
  });

  afterAll(async () => {
    await closeLabWithVipr(lab, vipr);
  });

  const answeredBy = async (vip: string) => {
    const r = await curlFromClient(lab!, vip);
    expect(r.code, `curl ${vip}: exit ${r.code} ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const ctl = (...args: string[]) => viprCtl(lab!, args);
  const logTail = () => vipr!.logs.slice(-15).join('\n');

  it('starts from the config: route show marks each route with its config line', async () => {
    expect(await answeredBy('192.168.1.33')).toBe('web1');
    const r = await ctl('route', 'show');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^192\.168\.1\.32\/27\s+via web1 \(192\.168\.1\.2\).*\blan0\s+config:\d+$/m);
    expect(r.stdout).toMatch(/^192\.168\.1\.64\/27\s+via web2 \(192\.168\.1\.3\).*\blan0\s+config:\d+$/m);
  });

  it('vipr ctl route replace 192.168.1.32/27 via web2: curl 192.168.1.33 answers web2, route show says runtime', async () => {
    const r = await ctl('route', 'replace', '192.168.1.32/27', 'via', 'web2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(await answeredBy('192.168.1.33')).toBe('web2');
    expect(await answeredBy('192.168.1.65')).toBe('web2');

    const show = await ctl('route', 'show', '192.168.1.32/27');
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^192\.168\.1\.32\/27\s+via web2 \(192\.168\.1\.3\).*\blan0\s+runtime \(overrides config\)$/m);
  });

  it('the same through socat in the text form: each command gets ok', async () => {
    const r = await socatControl(lab!, [
      'route replace 192.168.1.32 255.255.255.224 via web3',
      'route show 192.168.1.32/27',
      'ping',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toBe('ok');
    expect(lines[1]).toMatch(/^PREFIX\s+TARGET/);
    expect(lines[2]).toMatch(/^192\.168\.1\.32\/27\s+via web3 \(192\.168\.1\.4\).*\blan0\s+runtime/);
    expect(lines.slice(3)).toEqual(['ok', 'pong', 'ok']);
    expect(await answeredBy('192.168.1.33')).toBe('web3');
  });

  it('socat: a bad line gets a one-line error, the next line still ok', async () => {
    const r = await socatControl(lab!, ['route replace 192.168.1.33/27 via web2', 'ping']);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      'error EBADPREFIX: 192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?',
      'pong',
      'ok',
    ]);
  });

  it('vipr ctl --json route show parses as JSON', async () => {
    const r = await ctl('--json', 'route', 'show');
    expect(r.code, r.stderr).toBe(0);
    const routes = JSON.parse(r.stdout) as { prefix: string; source: string; via: { server?: string }[] }[];
    expect(Array.isArray(routes)).toBe(true);
    expect(routes.find((x) => x.prefix === '192.168.1.32/27')).toMatchObject({ source: 'runtime', via: [{ server: 'web3' }] });
    expect(routes.find((x) => x.prefix === '192.168.1.64/27')).toMatchObject({ source: 'config' });
  });

  it('an error exits non-zero with the one-line message on stderr; nothing changes', async () => {
    const r = await ctl('route', 'replace', '192.168.1.33/27', 'via', 'web1');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('vipr: EBADPREFIX: 192.168.1.33/27 has host bits set; did you mean 192.168.1.32/27?\n');

    const unknown = await ctl('route', 'replace', '192.168.1.32/27', 'via', 'web9');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('vipr: EUNKNOWNSERVER: unknown server `web9` (known: web1, web2, web3, web4)\n');

    const json = await ctl('--json', 'route', 'del', '192.168.1.160/27');
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: 'ENOROUTE' } });
    expect(await answeredBy('192.168.1.33')).toBe('web3');
  });

  it('vipr ctl with a socket nobody listens on: exit 1 and a hint', async () => {
    const r = await viprCtl(lab!, ['ping'], { socket: join(dirname(socket), 'nobody.sock') });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vipr: cannot connect to control socket .*nobody\.sock: ENOENT \(is vipr running\? see --socket\)\n$/);
  });

  it('vipr ctl apply FILE applies several changes at once', async () => {
    const file = join(dirname(socket), 'changes.txt');
    await writeFile(file, [
      '# move two VIPs',
      'route replace 192.168.1.32/27 via web4',
      '',
      'route replace 192.168.1.64 255.255.255.224 via web1   # the article form',
    ].join('\n') + '\n');
    const r = await ctl('apply', file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('committed 2 change(s) at once\n');
    expect(await answeredBy('192.168.1.33')).toBe('web4');
    expect(await answeredBy('192.168.1.65')).toBe('web1');
  });

  it('vipr ctl apply FILE with one bad line applies none and names FILE:LINE', async () => {
    const file = join(dirname(socket), 'bad-changes.txt');
    await writeFile(file, [
      'route replace 192.168.1.32/27 via web1',
      'route replace 192.168.1.64/27 via web2',
      'route replace 192.168.1.97/27 via web3',
      'route replace 192.168.1.128/27 via web1',
    ].join('\n') + '\n');
    const r = await ctl('apply', file);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`vipr: ${file}:3: EBADPREFIX: 192.168.1.97/27 has host bits set; did you mean 192.168.1.96/27?; nothing applied\n`);
    expect(await answeredBy('192.168.1.33')).toBe('web4');
    expect(await answeredBy('192.168.1.65')).toBe('web1');
    expect(await answeredBy('192.168.1.129')).toBe('web4');
  });

  it('vipr ctl - runs one command per stdin line', async () => {
    const r = await viprCtl(lab!, ['-'], { input: 'ping\n# a comment\nroute show 192.168.1.32/27\nroute show 192.168.1.200/32\n' });
    expect(r.code).toBe(1); // the last command failed
    expect(r.stdout).toMatch(/^pong\n/);
    expect(r.stdout).toMatch(/192\.168\.1\.32\/27\s+via web4/);
    expect(r.stderr).toBe('vipr: ENOROUTE: no route 192.168.1.200/32\n');
  });

  it('the change survives kill -9: after a restart curl still answers web4, and the log says it came from the state file', async () => {
    const state = JSON.parse(await readFile(join(dirname(socket), 'state.json'), 'utf8')) as { routes: { prefix: string }[] };
    expect(state.routes.map((r) => r.prefix).sort()).toEqual(['192.168.1.32/27', '192.168.1.64/27']);

    vipr!.process.kill('SIGKILL');
    const code = await vipr!.stop();
    expect(code).toBe(128 + 9);
    vipr = await startVipr(lab!, config);

    const messages = vipr.records().map((r) => String(r.msg));
    expect(messages, logTail()).toContain(`state: 2 runtime change(s) restored from ${join(dirname(socket), 'state.json')}`);
    expect(messages.some((m) => /^route 192\.168\.1\.32\/27 via web4 .*\(runtime change from .*state\.json\)$/.test(m)), logTail()).toBe(true);
    expect(messages.some((m) => m.startsWith('removed stale control socket')), logTail()).toBe(true);
    expect(await answeredBy('192.168.1.33')).toBe('web4');
    expect(await answeredBy('192.168.1.65')).toBe('web1');
  });

  it('route revert brings back the config route', async () => {
    const r = await ctl('route', 'revert', '192.168.1.32/27');
    expect(r.code, r.stderr).toBe(0);
    expect(await answeredBy('192.168.1.33')).toBe('web1');
    const show = await ctl('route', 'show', '192.168.1.32/27');
    expect(show.stdout).toMatch(/^192\.168\.1\.32\/27\s+via web1 \(192\.168\.1\.2\).*\blan0\s+config:\d+$/m);
    const again = await ctl('route', 'revert', '192.168.1.32/27');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^vipr: ENOROUTE: route 192\.168\.1\.32\/27 has no runtime change to revert\n$/);
  });

  it('vipr ctl reload: a valid edit of the config file takes effect', async () => {
    expect(await answeredBy('192.168.1.97')).toBe('web3');
    await writeFile(config, withRoute(original, '192.168.1.96/27', '{ prefix: 192.168.1.96/27, via: web1 }'));
    const r = await ctl('reload');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^reloaded .*control-test\.yaml: 6 config routes, 4 servers\n$/);
    expect(await answeredBy('192.168.1.97')).toBe('web1');
    // The runtime change from before the reload is kept.
    expect(await answeredBy('192.168.1.65')).toBe('web1');
    const show = await ctl('route', 'show', '192.168.1.64/27');
    expect(show.stdout).toMatch(/runtime \(overrides config\)$/m);
  });

  it('SIGHUP: a valid edit takes effect', async () => {
    await writeFile(config, withRoute(original, '192.168.1.128/27', '{ prefix: 192.168.1.128/27, via: web2 }'));
    const before = vipr!.logs.length;
    vipr!.process.kill('SIGHUP');
    const reloaded = await waitFor(() => vipr!.logs.slice(before).some((l) => l.includes('"msg":"reloaded ')), 5_000, 50);
    expect(reloaded, logTail()).toBe(true);
    expect(await answeredBy('192.168.1.129')).toBe('web2');
    // The .96 edit is gone from the file, so .97 is back on web3.
    expect(await answeredBy('192.168.1.97')).toBe('web3');
  });

  it('a broken config file (bad prefix) is refused with the reason; the running routes are kept', async () => {
    const broken = withRoute(
      withRoute(original, '192.168.1.128/27', '{ prefix: 192.168.1.128/27, via: web2 }'),
      '192.168.1.96/27', '{ prefix: 192.168.1.97/27, via: web1 }',
    );
    await writeFile(config, broken);
    const line = broken.split('\n').findIndex((l) => l.includes('192.168.1.97/27')) + 1;

    const r = await ctl('reload');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^vipr: ECONFIG: reload refused, running config kept: /);
    expect(r.stderr).toContain(`control-test.yaml:${line}:`);
    expect(r.stderr).toContain('192.168.1.97/27 has host bits set; did you mean 192.168.1.96/27?');

    // The same file by SIGHUP: refused and logged, nothing changes.
    const before = vipr!.logs.length;
    vipr!.process.kill('SIGHUP');
    const refused = await waitFor(() => vipr!.logs.slice(before).some((l) => l.includes('reload refused, running config kept')), 5_000, 50);
    expect(refused, logTail()).toBe(true);

    expect(await answeredBy('192.168.1.97')).toBe('web3');
    expect(await answeredBy('192.168.1.129')).toBe('web2');
    expect(await answeredBy('192.168.1.65')).toBe('web1');
    const ping = await ctl('ping');
    expect(ping.stdout).toBe('pong\n');
  });
});
