// Privileges. vipr needs two capabilities and nothing else: CAP_NET_RAW
// (packet sockets, the ICMP check) and CAP_NET_ADMIN (nftables, ethtool, the
// forwarding sysctls, PACKET_QDISC_BYPASS). Under systemd the unit gives it
// exactly those. Started by hand as root, it would keep all of root's.
// With io: xdp (or auto) it also needs CAP_BPF, to load its XDP program and
// make its maps, and CAP_IPC_LOCK, since each AF_XDP port pins 8 MB of UMEM
// per queue and the default locked-memory limit (8 MB per user) would not
// hold two ports.
//
// Why it re-runs itself instead of dropping in place: Linux capabilities
// belong to threads, not processes, and by the time any vipr code runs Node
// has a dozen threads, one of which blocks every signal; capset(2) in the
// main thread would leave the others with full power, and no signal can ask
// that one to drop its own. So vipr, started as root, execs itself (execve:
// the same PID, the same arguments) through util-linux's `setpriv` with a
// bounding, inheritable and ambient set of just those two, no_new_privs, and
// the configured `user:` (its uid, gid and groups, plus the control socket's
// group so the socket can be handed to it). Every thread of the new image
// starts with those credentials, and so does every program vipr runs (ip,
// nft, ethtool, the notify command). Directories vipr writes are made (and
// given to the user) before the exec, while root may still.

import { constants, type Stats } from 'node:fs';
import { chmod, chown, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config } from '../config/types.js';
import { loadNative } from '../io/ring-port.js';
import { SystemError } from './system.js';

/** Capabilities vipr may keep, in setpriv's and capabilities(7)'s spelling, with their bit numbers (linux/capability.h). */
const CAPABILITY_BITS = { net_raw: 13n, net_admin: 12n, bpf: 39n, ipc_lock: 14n } as const;
export type Capability = keyof typeof CAPABILITY_BITS;
/** The capabilities vipr keeps with the packet backends (ring, pcap). */
export const KEPT_CAPABILITIES = ['net_raw', 'net_admin'] as const satisfies readonly Capability[];
/** ... and with AF_XDP (io: xdp, or auto, which may pick it). */
export const XDP_CAPABILITIES = ['net_raw', 'net_admin', 'bpf', 'ipc_lock'] as const satisfies readonly Capability[];
/** CAP_NET_ADMIN (12) and CAP_NET_RAW (13) as a capability mask. */
export const KEPT_MASK = capabilityMask(KEPT_CAPABILITIES);

/** The capabilities vipr keeps for this config. */
export function keptCapabilities(config: Pick<Config, 'io'>): readonly Capability[] {
  return config.io === 'xdp' || config.io === 'auto' ? XDP_CAPABILITIES : KEPT_CAPABILITIES;
}

export function capabilityMask(capabilities: readonly Capability[]): bigint {
  return capabilities.reduce((mask, c) => mask | (1n << CAPABILITY_BITS[c]), 0n);
}
/** Set in the environment of the re-run image, so it does not try again. */
export const REEXEC_MARK = 'VIPR_PRIVILEGES_DROPPED';
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

export interface Credentials {
  uid: number;
  gid: number;
  groups: number[];
  /** Effective and bounding capability masks of this thread. */
  effective: bigint;
  bounding: bigint;
}

/** The calling thread's credentials, from /proc (the kernel's own words). */
export async function readCredentials(path = '/proc/self/status'): Promise<Credentials> {
  const status = await readFile(path, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1].trim() ?? '';
  return {
    uid: Number(field('Uid').split(/\s+/)[1]),
    gid: Number(field('Gid').split(/\s+/)[1]),
    groups: field('Groups').split(/\s+/).filter(Boolean).map(Number),
    effective: BigInt(`0x${field('CapEff') || '0'}`),
    bounding: BigInt(`0x${field('CapBnd') || '0'}`),
  };
}

interface Account {
  name: string;
  uid: number;
  gid: number;
}

async function lookupUser(who: string | number): Promise<Account> {
  const lines = (await readFile('/etc/passwd', 'utf8')).split('\n');
  for (const line of lines) {
    const [name, , uid, gid] = line.split(':');
    if (name === '' || uid === undefined) continue;
    if ((typeof who === 'number' && Number(uid) === who) || name === who) return { name, uid: Number(uid), gid: Number(gid) };
  }
  throw new SystemError(`user: no user ${who} in /etc/passwd (create it, e.g. \`adduser --system --group --no-create-home vipr\`)`);
}

async function lookupGroup(who: string | number): Promise<number> {
  if (typeof who === 'number') return who;
  for (const line of (await readFile('/etc/group', 'utf8')).split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === who) return Number(gid);
  }
  throw new SystemError(`control.group: no group ${who} in /etc/group`);
}

/** The groups `user` is a member of besides its primary one (/etc/group). */
async function memberships(user: string): Promise<number[]> {
  const gids: number[] = [];
  for (const line of (await readFile('/etc/group', 'utf8')).split('\n')) {
    const [, , gid, members] = line.split(':');
    if (members?.split(',').includes(user)) gids.push(Number(gid));
  }
  return gids;
}

function writableBy(info: Stats, account: Account, groups: readonly number[]): boolean {
  if (account.uid === 0) return true; // root owns what root made; a non-root owner is rare enough to be refused by the kernel with a clear EACCES
  if (info.uid === account.uid) return (info.mode & 0o300) === 0o300;
  if (groups.includes(info.gid)) return (info.mode & 0o030) === 0o030;
  return (info.mode & 0o003) === 0o003;
}

/**
 * A directory vipr writes in (state, traces, the control socket's): made for
 * the user when missing (and `create`); refused with a one-line error when it
 * exists and the user may not write there (vipr never takes over a directory
 * it did not make).
 */
async function prepareDirectory(path: string, account: Account, groups: readonly number[], what: string, create: boolean, mode = 0o750): Promise<void> {
  let info: Stats;
  try {
    info = await stat(path);
  } catch {
    if (!create) return;
    await mkdir(path, { recursive: true, mode: 0o755 }); // parents as root makes them, the last one given away
    await chmod(path, mode); // explicit: a root shell's umask 077 must not lock the group out
    await chown(path, account.uid, account.gid);
    return;
  }
  if (!info.isDirectory()) throw new SystemError(`${what}: ${path} is not a directory`);
  if (!writableBy(info, account, groups)) {
    throw new SystemError(`${what}: ${account.name} may not write in ${path}; \`chown ${account.name} ${path}\` or choose another path`);
  }
}

export interface PrivilegePlan {
  account: Account;
  groups: number[];
  argv: string[];
}

/**
 * What the re-run looks like for this config: who, which groups, the exact
 * setpriv command. Throws a one-line SystemError for a config that cannot
 * work with two capabilities (a control socket owned by another user).
 */
export async function planPrivileges(config: Config, argv: readonly string[] = [process.execPath, ...process.execArgv, ...process.argv.slice(1)]): Promise<PrivilegePlan> {
  const account = config.user === undefined ? { name: 'root', uid: 0, gid: 0 } : await lookupUser(config.user);
  const groups = new Set<number>([account.gid, ...(account.uid === 0 ? [] : await memberships(account.name))]);
  if (config.control.group !== undefined) groups.add(await lookupGroup(config.control.group));
  if (config.control.owner !== undefined) {
    const owner = typeof config.control.owner === 'number' ? config.control.owner : (await lookupUser(config.control.owner)).uid;
    if (owner !== account.uid) {
      throw new SystemError(
        `control.owner: vipr runs as ${account.name} without CAP_CHOWN and cannot give its socket to ${config.control.owner}; ` +
        `leave control.owner out (the socket is ${account.name}'s) and let people in through control.group`,
      );
    }
  }
  const caps = `-all,${keptCapabilities(config).map((c) => `+${c}`).join(',')}`;
  const setprivArgs = [
    ...(account.uid === 0 ? [] : [`--reuid=${account.uid}`, `--regid=${account.gid}`]),
    `--groups=${[...groups].join(',')}`,
    `--inh-caps=${caps}`, `--ambient-caps=${caps}`, `--bounding-set=${caps}`,
    '--no-new-privs',
  ];
  return { account, groups: [...groups], argv: ['setpriv', ...setprivArgs, '--', ...argv] };
}

/**
 * Started as root (and not already re-run): makes the directories vipr will
 * write, then replaces this process with itself under setpriv. Returns only
 * when there is nothing to do: not root (systemd's unit, or an operator's own
 * setup), or this is the re-run image. Throws a one-line SystemError otherwise.
 */
export async function dropPrivileges(config: Config, stateFile: string, socket: string): Promise<'not root' | 'dropped'> {
  if (process.env[REEXEC_MARK] === '1') {
    delete process.env[REEXEC_MARK]; // children (notify commands) need not see it
    return 'dropped';
  }
  if (process.getuid?.() !== 0) return 'not root';
  const plan = await planPrivileges(config);
  const stateDirectory = dirname(stateFile);
  await prepareDirectory(stateDirectory, plan.account, plan.groups, 'state.file', true);
  await prepareDirectory(`${stateDirectory}/traces`, plan.account, plan.groups, 'trace directory', false);
  // Anyone may pass through the socket's directory: the socket's own mode and group decide who talks to vipr.
  await prepareDirectory(dirname(socket), plan.account, plan.groups, 'control.socket', true, 0o755);
  const setpriv = await firstExisting(SETPRIV_PATHS);
  if (!setpriv) throw new SystemError('cannot drop root privileges: setpriv (util-linux) is not installed');
  const env = Object.entries({ ...process.env, [REEXEC_MARK]: '1' }).map(([k, v]) => `${k}=${v ?? ''}`);
  loadNative().exec(setpriv, plan.argv, env);
  throw new SystemError('cannot drop root privileges: exec returned'); // exec throws on failure; never reached otherwise
}

async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const path of paths) {
    try {
      if ((await stat(path)).mode & constants.S_IXUSR) return path;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** "net_raw, net_admin" for a mask, or the mask in hex when it holds more than `kept`. */
export function describeCapabilities(mask: bigint, kept: readonly Capability[] = KEPT_CAPABILITIES): string {
  if (mask === 0n) return 'none';
  if ((mask & ~capabilityMask(kept)) !== 0n) return `0x${mask.toString(16)} (more than ${kept.join(', ')})`;
  return kept.filter((c) => (mask & (1n << CAPABILITY_BITS[c])) !== 0n).join(', ');
}
