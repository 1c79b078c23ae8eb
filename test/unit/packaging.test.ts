// What a real router box installs: packaging/vipr.yaml (the sample
// /etc/vipr/vipr.yaml) and packaging/vipr.service (the systemd unit). The
// config must load, be the article's network, and use the directories the
// unit gives vipr; the unit must pass `systemd-analyze verify` (Debian's
// `systemd` package, which scripts/setup.sh installs: without it that test
// fails, it is never skipped or passed unchecked).

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { formatAddress, formatPrefix } from '../../src/util/ipv4.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SAMPLE = join(ROOT, 'packaging/vipr.yaml');
const UNIT = join(ROOT, 'packaging/vipr.service');
const CLI = join(ROOT, 'dist/src/cli/main.js');

/** The unit file as key -> values (a key may repeat), per section. */
async function unitFile(): Promise<Map<string, string[]>> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of (await readFile(UNIT, 'utf8')).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1];
      continue;
    }
    const at = line.indexOf('=');
    const key = `${section}.${line.slice(0, at)}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(at + 1)]);
  }
  return keys;
}

describe('packaging/vipr.yaml, the sample /etc/vipr/vipr.yaml', () => {
  it('passes loadConfig (what `vipr check-config` and `vipr run` read)', async () => {
    const config = await loadConfig(SAMPLE);
    expect(config.interfaces.map((i) => i.name)).toEqual(['eth0', 'eth1']);
    expect(config.kernelForwarding).toBe('refuse'); // the unit forbids writing /proc/sys
    expect(config.health).toMatchObject({ intervalMs: 1000, fall: 3, rise: 2, holdDownMs: 30_000 });
    expect(config.health.timeoutMs).toBeLessThanOrEqual(config.health.intervalMs);
    expect(config.control.socket).toBe('/run/vipr/vipr.sock');
    expect(config.state.file).toBe('/var/lib/vipr/state.json');
  });

  it("is the article's network: the same servers and routes as lab/vipr.yaml", async () => {
    const sample = await loadConfig(SAMPLE);
    const lab = await loadConfig(join(ROOT, 'lab/vipr.yaml'));
    const servers = (c: typeof sample) => c.servers.map((s) => `${s.name} ${formatAddress(s.address)}`);
    const routes = (c: typeof sample) => c.routes.map((r) => `${formatPrefix(r.prefix)} ${r.type} ${r.via.map((v) => v.server ?? formatAddress(v.address)).join(',')}`);
    expect(servers(sample)).toEqual(servers(lab));
    expect(routes(sample)).toEqual(routes(lab));
    expect(routes(sample).slice(0, 4)).toEqual([
      '192.168.1.32/27 unicast web1,web2', '192.168.1.64/27 unicast web2,web3',
      '192.168.1.96/27 unicast web3,web4', '192.168.1.128/27 unicast web4,web1',
    ]);
  });

  it.skipIf(!existsSync(CLI))('passes `vipr check-config` (the built CLI)', () => {
    const out = execFileSync(process.execPath, [CLI, 'check-config', SAMPLE], { encoding: 'utf8' });
    expect(out).toBe(`${SAMPLE}: ok (2 interfaces, 4 servers, 6 routes)\n`);
  });
});

describe('packaging/vipr.service, the systemd unit', () => {
  it('runs the sample config from where README installs it, reloads on HUP, restarts on failure', async () => {
    const unit = await unitFile();
    expect(unit.get('Service.ExecStart')).toEqual(['/usr/local/bin/vipr run --config /etc/vipr/vipr.yaml']);
    expect(unit.get('Service.ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
    expect(unit.get('Service.Restart')).toEqual(['on-failure']);
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('/etc/vipr/vipr.yaml');
    expect(readme).toContain('packaging/vipr.service');
  });

  it('has CAP_NET_RAW and CAP_NET_ADMIN and nothing more, and a read-only system but for its own directories', async () => {
    const unit = await unitFile();
    const caps = (key: string) => (unit.get(key) ?? []).join(' ').split(/\s+/).sort();
    expect(caps('Service.AmbientCapabilities')).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(caps('Service.CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    expect(unit.get('Service.NoNewPrivileges')).toEqual(['yes']);
    expect(unit.get('Service.ProtectSystem')).toEqual(['strict']);
    expect(caps('Service.ReadWritePaths')).toEqual(['/run/vipr', '/var/lib/vipr']);
    expect(unit.get('Service.RuntimeDirectory')).toEqual(['vipr']);
    expect(unit.get('Service.StateDirectory')).toEqual(['vipr']);
    // The sample config's socket and state live in those directories.
    const config = await loadConfig(SAMPLE);
    expect(dirname(config.control.socket)).toBe('/run/vipr');
    expect(dirname(config.state.file)).toBe('/var/lib/vipr');
  });

  it('passes `systemd-analyze verify` with no warnings', async () => {
    const version = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    expect(version.status, 'systemd-analyze is not installed: bash scripts/setup.sh installs it (apt-get install systemd)').toBe(0);
    // verify also checks that ExecStart's binary exists: point it at a stand-in,
    // since /usr/local/bin/vipr is only there on an installed box.
    const dir = await mkdtemp(join(tmpdir(), 'vipr-unit-'));
    try {
      const bin = join(dir, 'vipr');
      await writeFile(bin, '#!/bin/sh\nexit 0\n');
      await chmod(bin, 0o755);
      const unit = join(dir, 'vipr.service');
      await writeFile(unit, (await readFile(UNIT, 'utf8')).replaceAll('/usr/local/bin/vipr', bin));
      const result = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
      // Unknown keys and bad values are only warnings (exit 0): any line about our unit fails the test.
      const aboutUs = `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.includes('vipr.service'));
      expect(aboutUs, aboutUs.join('\n')).toEqual([]);
      expect(result.status, result.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
