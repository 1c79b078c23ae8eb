// The lab itself is right: with the kernel as the router (--kernel-router), the
// article's network works end to end. Later lab tests replace the kernel by vipr.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labUp, runLab, type Lab } from './harness.js';

const execFileP = promisify(execFile);

const VIP_OWNER: Array<[string, string]> = [
  ['192.168.1.33', 'web1'],
  ['192.168.1.65', 'web2'],
  ['192.168.1.97', 'web3'],
  ['192.168.1.129', 'web4'],
];

describe('lab (kernel router baseline)', () => {
  let lab: Lab;
  let prefix = '';

  beforeAll(async () => {
    lab = await labUp({ kernelRouter: true });
    prefix = lab.prefix;
  });

  afterAll(async () => {
    await lab?.down();
  });

  it('names namespaces after the prefix', () => {
    expect(prefix).toMatch(/^t[a-z0-9]{5}$/);
    expect(lab.ns('client')).toBe(`${prefix}-client`);
    expect(lab.ns('web4')).toBe(`${prefix}-web4`);
  });

  it.each(VIP_OWNER)('curl %s from the client is answered by %s', async (vip, owner) => {
    const r = await lab.exec('client', ['curl', '-s', '--max-time', '5', `http://${vip}/`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${owner}\n`);
  });

  it('pings a VIP through the router and learns the fixed router MAC', async () => {
    const r = await lab.exec('client', ['ping', '-c', '2', '-i', '0.2', '-W', '2', '192.168.1.65']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ttl=63/); // one routed hop
    const n = await lab.exec('client', ['ip', 'neigh', 'show', '10.0.0.1']);
    expect(n.stdout).toContain('02:00:00:00:00:01');
  });

  it('carries a multi-megabyte TCP transfer', async () => {
    const n = 8 * 1024 * 1024;
    const r = await lab.exec('client', [
      'curl', '-s', '--max-time', '20', '-o', '/dev/null', '-w', '%{size_download} %{http_code}',
      `http://192.168.1.97/bytes/${n}`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${n} 200`);
  });

  it('web servers never answer ARP for the VIPs on eth0', async () => {
    const r = await lab.exec('web1', ['sysctl', '-n', 'net.ipv4.conf.eth0.arp_ignore', 'net.ipv4.conf.eth0.arp_announce']);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual(['1', '2']);
  });

  it('status says the lab is up', async () => {
    const r = await runLab(['status', '--prefix', prefix]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`lab ${prefix}: up`);
  });

  it('down removes every namespace of the prefix', async () => {
    await lab.down();
    const r = await runLab(['status', '--prefix', prefix]);
    expect(r.code).toBe(1);
    const { stdout: list } = await execFileP('ip', ['netns', 'list']);
    expect(list.split('\n').filter((l) => l.startsWith(`${prefix}-`))).toEqual([]);
  });
});
